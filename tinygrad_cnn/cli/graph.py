"""``tinygrad-cnn graph``: a picture of the course material's CNN's computation graph after one
backward pass: every value with its data and gradient, every operation, grouped by layer."""
import os
import sys
import warnings

from .. import cli, viz
from .. import worked as W
from ..files import FORMATS, format_from_suffix

LEVELS = {"scalar": "value", "tensor": "tensor"}  # level -> engine


def register(subparsers):
    p = subparsers.add_parser(
        "graph", help="draw the computation graph of the course material's CNN (Graphviz)",
        description="Run the course material's CNN on its worked-example image (label 1, binary cross-entropy), "
                    "call loss.backward(), and draw the graph: every value with its data and gradient, every "
                    "operation, parameters in orange, grouped by layer. svg, png and pdf need Graphviz's "
                    "'dot' program; --format dot writes the DOT text without it.")
    p.add_argument("--model", choices=tuple(W.MODELS), default="cnn10",
                   help="cnn10: the 10-parameter worked example (default); square15: the 15-parameter square detector")
    p.add_argument("--level", choices=tuple(LEVELS), default="scalar",
                   help="scalar (default): one node per number (the Value engine); tensor: one node per array")
    p.add_argument("-o", "--output", metavar="PATH", help="the file to write (default graph.FORMAT)")
    p.add_argument("--format", choices=FORMATS, help="default: the suffix of PATH, else svg")
    p.add_argument("--collapse", action="store_true",
                   help="draw each layer as one operation per output (the textbook network diagram)")
    p.add_argument("--hide", choices=("data", "grad"), action="append", default=[],
                   help="leave the forward data or the gradients out of the boxes (repeatable)")
    p.add_argument("--max-nodes", type=int, default=1000, metavar="N",
                   help="above N drawn nodes, collapse the layers and warn (default 1000; 0: no limit)")
    p.set_defaults(func=run)


def run(args):
    fmt, path = _format_and_path(args.output, args.format)
    if args.max_nodes < 0:
        raise cli.UsageError(f"--max-nodes: expected a number >= 0, got {args.max_nodes}")
    try:
        viz.check_dot(fmt)
    except viz.DotNotFoundError as e:
        print(f"tinygrad-cnn graph: {e}", file=sys.stderr)
        return 1
    result = W.work(args.model, LEVELS[args.level])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", viz.GraphTooLargeWarning)
        try:
            draw(result, path, fmt, level=args.level, collapse=args.collapse, show_data="data" not in args.hide,
                 show_grad="grad" not in args.hide, max_nodes=args.max_nodes or None)
        except OSError as e:
            raise cli.UsageError(f"-o: cannot write {path}: {e.strerror or e}") from None
    for w in caught:
        print(f"tinygrad-cnn graph: {w.message}", file=sys.stderr)
    print(path)
    return 0


def draw(result, path, format="svg", level=None, **options):
    """Draw the graph of a ``worked.work`` result (its parameters marked, a title) to ``path``."""
    level = level or ("scalar" if result.engine == "value" else "tensor")
    title = (f"{result.model}: {W.MODELS[result.model].title}, label {result.label:g}, "
             f"{level} graph after loss.backward()")
    return viz.render(result.root, path, format, params=tuple(W.PARAMS), title=title, **options)


def draw_solution(solution, path, format="svg", level=None, **options):
    """Draw the graph of a worked solution of any network (its parameters marked, a title) to ``path``."""
    level = level or ("scalar" if solution.engine == "value" else "tensor")
    title = f"{solution.title}: {level} graph after loss.backward()"
    return viz.render(solution.root, path, format, params=solution.network, title=title, **options)


def _format_and_path(output, fmt):
    implied = format_from_suffix(output or "", default=fmt or "svg")
    if fmt and implied != fmt:
        raise cli.UsageError(f"--format {fmt} does not match the suffix of -o {output}")
    fmt = implied
    path = output or f"graph.{fmt}"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise cli.UsageError(f"-o: expected a path in an existing folder, got {path} ({folder} does not exist)")
    return fmt, path
