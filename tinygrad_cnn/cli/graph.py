"""``tinygrad-cnn graph``: a picture of a network's computation graph after one backward pass: every
value with its data and gradient, every operation, grouped by layer."""
import sys
import warnings

from .. import cli, viz
from .. import worked as W
from ..files import FORMATS, atomic_write, format_from_suffix
from .train import check_output_file
from .worked import add_network_options, builtin_result, file_solution, read_lr

LEVELS = {"scalar": "value", "tensor": "tensor"}  # level -> engine


def register(subparsers):
    p = subparsers.add_parser(
        "graph", help="draw the computation graph of a worked network (Graphviz)",
        description="Work a network (the course material's CNN on its worked-example image by default, or a model "
                    "file), call loss.backward(), and draw the graph: every value with its data and gradient, "
                    "every operation, parameters in orange, grouped by layer. The suffix of -o decides the format "
                    "(.svg, .png, .pdf, .jpg: Graphviz's 'dot' draws them; .dot: the DOT text, no program needed); "
                    "-o - writes to standard output.")
    add_network_options(p)
    p.add_argument("--level", choices=tuple(LEVELS), default="scalar",
                   help="scalar (default): one node per number (the Value engine); tensor: one node per array")
    p.add_argument("-o", "--output", metavar="PATH", help="the file to write (default graph.FORMAT); - for standard "
                                                          "output")
    p.add_argument("--format", choices=FORMATS, help="default: the suffix of PATH, else svg")
    p.add_argument("--collapse", action="store_true",
                   help="draw each layer as one operation per output (the textbook network diagram)")
    p.add_argument("--expand", action="store_true",
                   help="draw the internals of composite ops (a loss, a softmax), each op its own node")
    p.add_argument("--rankdir", choices=("LR", "TB"),
                   help="left to right or top to bottom (default: by the graph's shape; deep tensor graphs stack TB)")
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
    lr, engine = read_lr(args.lr), LEVELS[args.level]
    options = dict(collapse=args.collapse, show_data="data" not in args.hide, show_grad="grad" not in args.hide,
                   max_nodes=args.max_nodes or None, expand=args.expand, rankdir=args.rankdir)
    if args.model in W.MODELS:
        result = builtin_result(args, engine, lr)
        root, params = result.root, tuple(W.PARAMS)
        title = f"{result.model}: {W.MODELS[result.model].title}, label {result.label:g}"
    else:
        solution = file_solution(args, engine, lr)
        root, params, title = solution.root, solution.network, solution.title
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", viz.GraphTooLargeWarning)
        dot = viz.to_dot(root, params=params, title=f"{title}, {args.level} graph after loss.backward()", **options)
        data = dot.source.encode("utf-8") if fmt == "dot" else dot.pipe(format=fmt)
    for w in caught:  # the library names its argument; here the option
        message = str(w.message).replace("max_nodes=None", "--max-nodes 0").replace("max_nodes=", "--max-nodes ")
        print(f"tinygrad-cnn graph: {message}", file=sys.stderr)
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return 0
    try:
        with atomic_write(path) as f:
            f.write(data)
    except OSError as e:
        raise cli.UsageError(f"-o: cannot write {path}: {e.strerror or e}") from None
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
    """The format and the path: -o's suffix decides (or --format, which must agree); an unknown suffix
    is refused; - is standard output (--format, else svg)."""
    if output == "-":
        return fmt or "svg", "-"
    if output:
        try:
            implied = format_from_suffix(output)
        except ValueError as e:
            raise cli.UsageError(f"-o: {e}") from None
        if fmt and implied != fmt:
            raise cli.UsageError(f"--format {fmt} does not match the suffix of -o {output}")
        fmt = implied
    fmt = fmt or "svg"
    path = output or f"graph.{fmt}"
    check_output_file(path, "-o")
    return fmt, path
