"""The ``tinygrad-cnn`` command: one sub-command per module of this package named in COMMANDS.

Each module defines ``register(subparsers)``, which adds its parser and sets ``func``
(called with the parsed arguments; returns the exit status). The modules are imported when
the parser is built, so they can use ``cli.UsageError``.
"""
import argparse
import importlib
import os
import sys

from .. import __version__

COMMANDS = ("worked", "check", "graph", "train")


class UsageError(Exception):
    """Bad input to an option: printed as one line, exit status 2."""


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
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except UsageError as e:
        print(f"tinygrad-cnn {args.command}: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
