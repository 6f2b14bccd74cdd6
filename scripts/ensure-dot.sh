#!/bin/sh
# Make sure Graphviz's `dot` is on PATH: install Debian's graphviz package when we may.
command -v dot >/dev/null 2>&1 && exit 0
echo "Graphviz's 'dot' is missing; installing the graphviz package..." >&2
if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q graphviz >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q graphviz >/dev/null; }
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo apt-get install -y -q graphviz >/dev/null 2>&1 || { sudo apt-get update -q >/dev/null 2>&1 && sudo apt-get install -y -q graphviz >/dev/null; }
    fi
fi
command -v dot >/dev/null 2>&1 && exit 0
cat >&2 <<'MSG'
Graphviz's 'dot' program is needed to draw the computation graphs, and it could not be
installed automatically (no root and no password-less sudo). Install it, then run make again:
    Debian/Ubuntu:  sudo apt-get install graphviz
    Fedora:         sudo dnf install graphviz
    macOS:          brew install graphviz
MSG
exit 1
