"""Writing files: atomically (a temporary file beside the target, then ``os.replace``), in a format
named by the file's suffix, with Graphviz's ``dot`` program where a picture needs it."""
import contextlib
import os
import secrets
import shutil

FORMATS = ("svg", "png", "pdf", "jpg", "dot")  # what ``viz.render`` writes: dot draws all but the last


class DotNotFoundError(RuntimeError):
    """Graphviz's ``dot`` program is not on PATH (``render`` needs it for svg, png and pdf)."""


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """``with atomic_write(path) as f:`` write to ``f``, a new file beside ``path`` (mode "wb", or "w"
    for UTF-8 text), which replaces ``path`` when the block ends.

    A writer that wants a file name (not a file) writes to ``f.name``. If the block raises, its
    error propagates, ``path`` keeps its old content and the temporary file is removed.
    """
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{secrets.token_hex(4)}.tmp")
    f = open(tmp, mode.replace("w", "x"), encoding=None if "b" in mode else "utf-8")  # on failure, no file to remove
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):  # the writer may have removed it: keep its error
            os.unlink(tmp)
        raise


def format_from_suffix(path, formats=FORMATS, default=None):
    """The format that the suffix of ``path`` names ("g.SVG": "svg") if it is one of ``formats``; for
    any other suffix, ``default``, or a ValueError naming the suffix and ``formats`` if that is None."""
    suffix = os.path.splitext(os.fspath(path))[1][1:].lower()
    suffix = {"jpeg": "jpg", "gv": "dot"}.get(suffix, suffix)
    if suffix in formats:
        return suffix
    if default is None:
        raise ValueError(f"{path}: the suffix {'.' + suffix if suffix else '(none)'} names no format; "
                         f"expected one of {', '.join('.' + f for f in formats)}")
    return default


def require_dot(format="svg", instead="DOT text needs no program: format='dot' or to_dot(root).source"):
    """Raise DotNotFoundError, saying how to install Graphviz, unless its ``dot`` program is on PATH.

    ``format`` is what dot was to draw; ``instead`` ends the message with what works without it."""
    if shutil.which("dot") is None:
        raise DotNotFoundError(
            f"Graphviz's 'dot' program is not on PATH; it draws the {format} picture. Install it "
            "with 'sudo apt-get install graphviz' (Debian/Ubuntu), 'brew install graphviz' (macOS) or "
            f"'sudo dnf install graphviz' (Fedora); {instead}")
