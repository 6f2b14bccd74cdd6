#!/bin/sh
# The browser tests of the HTML page drive Debian's chromium with its chromedriver: install both
# when we may. Without them those tests skip with a message; nothing else needs a browser.
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && exit 0
echo "chromium (for the browser tests of the HTML page) is missing; installing Debian's chromium and chromium-driver..." >&2
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || { sudo apt-get update -q >/dev/null 2>&1 && sudo apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }
    fi
fi
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && exit 0
cat >&2 <<'MSG'
chromium could not be installed automatically (no root and no password-less sudo), so the
browser tests of the HTML page will be skipped. To run them, install it and run make again:
    Debian/Ubuntu:  sudo apt-get install chromium chromium-driver
MSG
exit 0
