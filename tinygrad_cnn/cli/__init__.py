"""The ``tinygrad-cnn`` command: one sub-command per module of this package named in COMMANDS.

Each module defines ``register(subparsers)``, which adds its parser and sets ``func``
(called with the parsed arguments; returns the exit status). The modules are imported when
the parser is built, so they can use ``cli.UsageError``.

Ctrl-C (SIGINT) and SIGTERM stop a command with one line on stderr and exit status 130, no
traceback: ``func`` may catch ``Interrupt`` (a KeyboardInterrupt) to say where it stopped (raise
``Interrupted("...")``), and hold both signals with ``uninterrupted()`` while it writes a file.
"""
import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading

from .. import __version__

COMMANDS = ("worked", "check", "graph", "train")


class UsageError(Exception):
    """Bad input to an option: printed as one line, exit status 2."""


class Interrupted(Exception):
    """The command was stopped by Ctrl-C or SIGTERM; the message (one line) says where: exit status 130."""


class Interrupt(KeyboardInterrupt):
    """Ctrl-C or SIGTERM arrived: ``signal_name`` is "SIGINT" or "SIGTERM"."""

    def __init__(self, signal_name="SIGINT"):
        super().__init__(signal_name)
        self.signal_name = signal_name


INTERRUPTED = 130  # exit status: 128 + SIGINT, for SIGTERM too
_held = {"depth": 0, "pending": None}


def _on_signal(signum, frame):
    name = signal.Signals(signum).name
    if _held["depth"]:
        _held["pending"] = _held["pending"] or name
        return
    raise Interrupt(name)


def interrupt_in(error):
    """The KeyboardInterrupt that ``error`` comes from, or None. A Ctrl-C that lands in Python code that
    numpy calls from a C loop over objects (the value engine's ``np.dot``) can surface as a SystemError
    ("... returned a result with an exception set"), caused by it through a long chain."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


@contextlib.contextmanager
def uninterrupted():
    """Hold Ctrl-C and SIGTERM until the block ends, then raise ``Interrupt`` if one came: a file written
    in the block is written whole, and the code after it knows it was. (Only while ``main`` runs;
    elsewhere the block runs as it is.)"""
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
    if not _held["depth"] and _held["pending"]:
        name, _held["pending"] = _held["pending"], None
        raise Interrupt(name)


@contextlib.contextmanager
def _signals():
    """Ctrl-C and SIGTERM raise ``Interrupt`` (SIGINT only if it is not ignored, as for a job started in
    the background of a shell; SIGTERM only if its handler is the default)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(number)
        if handler in ((signal.default_int_handler,) if number == signal.SIGINT else (signal.SIG_DFL,)):
            previous[number] = signal.signal(number, _on_signal)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _held["pending"] = None


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tinygrad-cnn",
        description="Every number of a CNN's forward and backward pass, on a scalar or a tensor autograd engine.")
    parser.add_argument("--version", action="version", version=f"tinygrad-cnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv=None):
    try:
        parser = build_parser()  # imports numpy and the commands: seconds on a slow disk
    except KeyboardInterrupt:
        print("tinygrad-cnn: interrupted", file=sys.stderr)
        return INTERRUPTED
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    for key, value in vars(args).items():  # argparse takes --opt=-- as an empty list
        if value == [] and key != "hide":
            print(f"tinygrad-cnn {args.command}: --{key.replace('_', '-')}: expected a value, got '--'",
                  file=sys.stderr)
            return 2
    try:
        with _signals():
            return args.func(args) or 0
    except UsageError as e:
        print(f"tinygrad-cnn {args.command}: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"tinygrad-cnn {args.command}: {e}", file=sys.stderr)
        return INTERRUPTED
    except (KeyboardInterrupt, SystemError) as e:
        interrupt = interrupt_in(e)
        if interrupt is None:
            raise
        by = f" by {interrupt.signal_name}" if getattr(interrupt, "signal_name", "SIGINT") != "SIGINT" else ""
        print(f"tinygrad-cnn {args.command}: interrupted{by}", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
