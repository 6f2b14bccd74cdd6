"""``tinygrad-cnn worked``: every number of a small CNN's forward and backward pass, in the order a
person works it, with the course material's mistakes shown where they happen."""
import contextlib
import io
import json
import math
import os
import sys
import warnings

import numpy as np

from .. import cli, nn
from .. import worked as W
from ..files import DotNotFoundError, atomic_write, require_dot
from ..worked import modelfile, text
from ..worked.network import KINKS
from ..worked.page import page
from .train import check_output_file, check_plots

ARRAY_HELP = "a JSON list, or the path of a .npy or text file"


def register(subparsers):
    p = subparsers.add_parser(
        "worked", help="every value and gradient of the course material's CNN, with its errata",
        description="Run the course material's small CNN on one image and print every intermediate value "
                    "and every gradient (read from the graph nodes after loss.backward()), in the order a "
                    "person works it, with the material's wrong numbers beside the right ones.")
    add_network_options(p)
    p.add_argument("--dump-model", metavar="PATH", help="write the built-in --model as a model file to PATH "
                                                        "(a template to edit) and stop")
    p.add_argument("--mistake", metavar="NAME", choices=tuple(W.mistakes.CATALOGUE),
                   help="make this mistake of the catalogue on purpose, marked where it acts (a teacher's "
                        "demonstration): " + ", ".join(W.mistakes.CATALOGUE))
    p.add_argument("--engine", choices=nn.ENGINES, default="value",
                   help="value (default): one graph node per scalar, so every number a person writes by hand "
                        "is a node with its own .grad; tensor: numpy arrays (same numbers to 1e-12)")
    p.add_argument("--json", action="store_true", help="print one JSON object (values and gradients) instead")
    p.add_argument("--svg", metavar="PATH", help="also draw the computation graph to PATH (needs Graphviz's dot)")
    p.add_argument("--html", metavar="PATH", help="also write the solution as one self-contained page to PATH: "
                                                  "heatmaps, formulas, the graph and a step-through of the backward "
                                                  "pass (opens with no network)")
    p.add_argument("--plots", metavar="DIR", help="also draw X, F, z1, a1, a2 and each gradient map as heatmaps "
                                                  "to DIR/forward.png and DIR/gradients.png (needs matplotlib)")
    p.set_defaults(func=run)


def add_network_options(p):
    """The options that say which network, input and numbers to work (worked and graph share them)."""
    p.add_argument("--model", default="cnn10", metavar="cnn10|square15|FILE.json",
                   help="cnn10: the 10-parameter worked example (default); square15: the 15-parameter square "
                        "detector; or a model file (any small network: see the README)")
    p.add_argument("--lr", metavar="N", help="the learning rate of the one step shown (default 0.01; a model "
                                             "file's own lr otherwise)")
    p.add_argument("--x", metavar="ARRAY", help=f"the input image, n x n ({ARRAY_HELP})")
    p.add_argument("--kernel", metavar="ARRAY", help=f"the conv kernel F, k x k ({ARRAY_HELP})")
    p.add_argument("--b1", metavar="N", help="the conv bias")
    p.add_argument("--w4", metavar="ARRAY", help=f"the 4 weights of the linear layer ({ARRAY_HELP})")
    p.add_argument("--b4", metavar="N", help="the linear layer's bias")
    p.add_argument("--label", metavar="0|1", help="the image's class y (default 1)")
    p.add_argument("--seed", metavar="S", help="square15: the seed of its parameters and generated image (default 0)")


def builtin_result(args, engine, lr):
    """The worked result of a built-in with the options given (a ``worked.Worked``)."""
    arrays = {k: None if getattr(args, k) is None else read_array(getattr(args, k), f"--{k}") for k in ("x", "kernel", "w4")}
    try:
        return W.work(args.model, engine, b1=args.b1, b4=args.b4, label=args.label, seed=_seed(args.seed),
                      lr=W.LEARNING_RATE if lr is None else lr, **arrays)
    except W.InputError as e:
        raise cli.UsageError(f"--{e.arg}: {e.detail}") from None


def file_solution(args, engine, lr, mistakes=(), text_first=False):
    """The solution of a model file (or of a built-in, as a network, for --mistake); ``text_first``: the
    text will be printed, so a network too large for it is refused before any work."""
    given = [f"--{k}" for k in BUILTIN_ONLY if getattr(args, k, None) is not None]
    builtin = args.model in W.MODELS
    if given and not builtin:
        raise cli.UsageError(f"{', '.join(given)}: only for the built-ins (cnn10, square15); a model file holds its "
                             f"own input, parameters and target")
    if given:
        raise cli.UsageError(f"{', '.join(given)}: not with --mistake (it works the built-in's own numbers)")
    if not builtin and not os.path.exists(args.model) and not args.model.endswith(".json"):
        raise cli.UsageError(f"--model: expected cnn10, square15 or a model file (.json), got {args.model!r}")
    try:
        if builtin:
            net, x, target = W.spec_model(args.model)
            f = modelfile.ModelFile(W.MODELS[args.model].title, net, None, {}, x, [target], {"type": "BCELoss"},
                                    W.LEARNING_RATE)
        else:
            f = modelfile.load(args.model)
        if lr is not None:
            f.lr = lr
        if text_first and not builtin:  # refused before any work
            error = text.too_large(f.model, f.x.shape)
            if error:
                raise cli.UsageError(f"--model: {error}")
        return f.work(engine, mistakes)
    except (modelfile.ModelFileError, W.NetworkError) as e:
        raise cli.UsageError(f"--model: {e}") from None


MAX_FILE = 4 << 20  # an input file (array, model file, answers) larger than this is no hand exercise


def read_text(path, option):
    """The text of the input file ``path`` (a regular file of at most MAX_FILE bytes), or a UsageError."""
    if os.path.isdir(path):
        raise cli.UsageError(f"{option}: {path} is a folder, not a file")
    if not os.path.isfile(path):
        raise cli.UsageError(f"{option}: {path} is not a regular file")
    if os.path.getsize(path) > MAX_FILE:
        raise cli.UsageError(f"{option}: {path} is {os.path.getsize(path)} bytes, more than an exercise needs "
                             f"(at most {MAX_FILE})")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise cli.UsageError(f"{option}: cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise cli.UsageError(f"{option}: {path} is not a text file") from None


def read_array(text, option):
    """ARRAY: a JSON list, or a .npy / text file (whitespace- or comma-separated numbers, or JSON)."""
    if os.path.exists(text):
        try:
            if text.endswith(".npy"):
                if not os.path.isfile(text) or os.path.getsize(text) > MAX_FILE:
                    raise cli.UsageError(f"{option}: {text} is not a regular file of at most {MAX_FILE} bytes")
                a = np.load(text, allow_pickle=False)
                if a.dtype.kind not in "biuf":
                    raise cli.UsageError(f"{option}: {text} holds {a.dtype} data, not real numbers")
                return a
            content = read_text(text, option)
            if content.lstrip().startswith("["):
                return _json(content, option, f" in {text}")
            with warnings.catch_warnings():  # an empty file: numpy warns, and the shape check says it
                warnings.simplefilter("ignore")
                return np.loadtxt(io.StringIO(content.replace(",", " ")), dtype=np.float64)
        except OSError as e:
            raise cli.UsageError(f"{option}: cannot read {text}: {e.strerror or e}") from None
        except (ValueError, EOFError, UnicodeDecodeError) as e:
            why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise cli.UsageError(f"{option}: {text} is not a .npy file or a text file of numbers ({why})") from None
    if text.lstrip().startswith("["):
        return _json(text, option, "")
    raise cli.UsageError(f"{option}: expected {ARRAY_HELP}; {text!r} is neither (no such file)")


def _json(text, option, where):
    try:
        return json.loads(text)
    except ValueError as e:
        raise cli.UsageError(f"{option}: expected a JSON list{where}, got invalid JSON ({e})") from None
    except RecursionError:
        raise cli.UsageError(f"{option}: expected a JSON list{where}, got one nested too deep") from None


def _seed(text):
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise cli.UsageError(f"--seed: expected a non-negative integer, got {text!r}") from None


BUILTIN_ONLY = ("x", "kernel", "b1", "w4", "b4", "label", "seed")


def read_lr(text_):
    if text_ is None:
        return None
    try:
        lr = float(text_)
    except ValueError:
        lr = math.nan
    if not math.isfinite(lr):
        raise cli.UsageError(f"--lr: expected a finite number, got {text_!r}")
    return lr


def check_output(path, option, suffix=None):
    """Refuse an output path that cannot be written (or has another suffix), before any work."""
    if suffix and not path.endswith(suffix):
        raise cli.UsageError(f"{option}: expected a path ending in {suffix}, got {path}")
    check_output_file(path, option)


def run(args):
    lr = read_lr(args.lr)
    if args.model not in W.MODELS or args.mistake:
        return _run_model_file(args, lr)
    if args.dump_model:
        check_output(args.dump_model, "--dump-model", ".json")
        net, x, target = W.spec_model(args.model, _seed(args.seed))
        modelfile.dump(args.dump_model, modelfile.to_json(W.MODELS[args.model].title, net, x, target, "BCELoss", 0.01,
                                                          ["conv", "ReLU", "max-pool", "flatten", "linear", "sigmoid"]))
        print(f"model file written to {args.dump_model} (edit it, then: tinygrad-cnn worked --model {args.dump_model})")
        return 0
    if args.svg:
        _check_svg(args.svg)
    if args.html:
        check_output(args.html, "--html", ".html")
    if args.plots:
        check_plots(args.plots)
    result = builtin_result(args, args.engine, lr)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print("\n".join(report(result)))
    if args.svg:
        _draw(result, args.svg, sys.stderr if args.json else sys.stdout)
    if args.html:
        write_page(args.html, page(result.solution, errata=result.errata), sys.stderr if args.json else sys.stdout)
    if args.plots:
        from .. import plots
        written = plots.worked_figures(args.plots, result)
        print(f"pictures: {', '.join(written)}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _run_model_file(args, lr):
    """``worked --model FILE.json``: any small network."""
    if args.dump_model:
        raise cli.UsageError("--dump-model: writes a built-in (--model cnn10 or square15); a model file is one already")
    if args.plots:
        raise cli.UsageError("--plots: only for the built-ins (cnn10, square15); --html draws any network")
    if args.svg:
        _check_svg(args.svg)
    if args.html:
        check_output(args.html, "--html", ".html")
    solution = file_solution(args, args.engine, lr, (args.mistake,) if args.mistake else (),
                             text_first=not args.json and not args.html)
    if args.json:
        print(json.dumps(solution.to_json()))
    elif not args.html:
        try:
            print("\n".join(text.report(solution)))
        except text.TooLarge as e:
            raise cli.UsageError(f"--model: {e}") from None
    else:  # the text when it is not too large; the page in any case
        with contextlib.suppress(text.TooLarge):
            print("\n".join(text.report(solution)))
    if args.html:
        write_page(args.html, page(solution), sys.stderr if args.json else sys.stdout)
    if args.svg:
        from .graph import draw_solution
        try:
            draw_solution(solution, args.svg, "svg")
        except OSError as e:
            raise cli.UsageError(f"--svg: cannot write {args.svg}: {e.strerror or e}") from None
        print(f"graph picture written to {args.svg}", file=sys.stderr if args.json else sys.stdout)
    return 0


def write_page(path, content, out):
    try:
        with atomic_write(path, "w") as f:
            f.write(content)
    except OSError as e:
        raise cli.UsageError(f"--html: cannot write {path}: {e.strerror or e}") from None
    print(f"page written to {path}", file=out)


def _check_svg(path):
    check_output(path, "--svg", ".svg")  # an SVG picture in a file named .svg (tinygrad-cnn graph writes others)
    try:
        require_dot("svg", instead="the text report needs no program: leave out --svg")
    except DotNotFoundError as e:
        raise cli.UsageError(f"--svg: {e}") from None


def _draw(result, path, out):
    from .graph import draw  # Graphviz is needed only here
    try:
        draw(result, path, "svg")
    except OSError as e:
        raise cli.UsageError(f"--svg: cannot write {path}: {e.strerror or e}") from None
    print(f"graph picture written to {path}", file=out)


# --- layout ------------------------------------------------------------------------------------------
def _texts(a):
    """Numbers as text: integers when every entry is one, else 6 decimals."""
    a = np.asarray(a, dtype=np.float64) + 0.0
    whole = np.all(np.isfinite(a)) and np.all(a == np.round(a)) and np.all(np.abs(a) < 1e15)
    return np.vectorize(lambda v: str(int(v)) if whole else f"{round(v, 6) + 0.0:.6f}", otypes=[object])(a)


def _grid(a, indent=4):
    cells = np.atleast_2d(_texts(a))
    width = max(len(c) for c in cells.flat)
    return [" " * indent + "  ".join(c.rjust(width) for c in row) for row in cells]


def _inline(a):
    if isinstance(a, tuple):
        return "x".join(map(str, a))
    cells = _texts(a)
    return cells.item() if cells.ndim == 0 else "[" + "  ".join(cells) + "]"


def _show(a):
    """One line for a number, a shape or a vector; grid lines for a matrix."""
    return _grid(a, 0) if np.ndim(a) == 2 and not isinstance(a, tuple) else [_inline(a)]


def _erratum(e):
    left, right = _show(e.material), _show(e.right)
    lines = [f"  ! Course material erratum: {e.title}"]
    head = "the material's:"
    if len(left) == len(right) == 1:
        lines.append(f"  !   {head} {left[0]}    the right one: {right[0]}")
    else:
        width = max(len(s) for s in left + [head])
        lines.append(f"  !   {head.ljust(width)}    the right one:")
        lines += [f"  !   {a.ljust(width)}    {b}" for a, b in zip(left, right)]
    return lines + [f"  !   {line}" for line in e.lines]


def _with_errata(result, step, lines):
    return lines + [line for e in result.errata_at(step) for line in _erratum(e)]


def _matrix(result, step, heading, a):
    return _with_errata(result, step, [heading] + _grid(a))


def _line(result, step, text, a):
    return _with_errata(result, step, [f"{text:<52} = {_inline(a)}"])


def report(r):
    """The worked example as lines of text: forward values, then gradients, each with its step."""
    v, g, p = r.values, r.grads, r.params
    n, k, m = len(r.X), len(p["F"]), len(v["a1"])
    seed = f", seed {r.seed}" if r.seed is not None else ""
    rows, cols = np.shape(v["a2"])
    won = [f"a2[{i // cols},{i % cols}] = a1[{a},{b}] = {_inline(v['a1'][a, b])}" for i, (a, b) in enumerate(r.winners)]
    out = [f"Worked example: {W.MODELS[r.model].title}{seed}",
           f"Engine: {r.engine}. Every number is the engine's: values are the graph nodes' .data, gradients",
           "their .grad after one loss.backward(). The formulas name each step; they are not evaluated here.",
           "", "FORWARD PASS",
           f"X, the input image ({n}x{n}), label y = {_inline(r.label)}", *_grid(r.X),
           f"F, the conv kernel ({k}x{k})", *_grid(p["F"]),
           f"b1 = {_inline(p['b1'])}    w4 = {_inline(p['w4'])}    b4 = {_inline(p['b4'])}", ""]
    out += _matrix(r, "z1", f"z1 = conv(X, F) + b1   ({m}x{m}; z1[i,j] = sum over k,l of F[k,l] * X[i+k,j+l], + b1)", v["z1"])
    out += _matrix(r, "a1", "a1 = ReLU(z1) = max(z1, 0)", v["a1"])
    zeros = [f"z1[{i},{j}]" for i, j in np.argwhere(np.asarray(v["z1"]) == 0)]
    if zeros:  # exactly 0 (the pass is exact): at ReLU's kink
        out.append(f"  kink: {', '.join(zeros)} = 0 exactly: {KINKS['ReLU']}")
    out += _matrix(r, "a2", "a2 = maxpool(a1), 2x2 windows, stride 2   (2x2)", v["a2"])
    out += ["  the max of each window (only it passes a gradient back):"]
    out += ["    " + "    ".join(won[i * cols:(i + 1) * cols]) for i in range(rows)]
    ties = [f"a2[{a},{b}]" for a in range(rows) for b in range(cols)
            if np.sum(v["a1"][2 * a:2 * a + 2, 2 * b:2 * b + 2] == v["a2"][a, b]) > 1]
    if ties:
        out.append(f"  kink: a tie for the max of the window of {', '.join(ties)}: {KINKS['MaxPool2d']}")
    out += _line(r, "a3", "a3 = flatten(a2)", v["a3"])
    out += _line(r, "z4", "z4 = w4 . a3 + b4", v["z4"])
    out += _line(r, "a4", "a4 = sigmoid(z4) = 1 / (1 + exp(-z4))", v["a4"])
    out += _line(r, "loss", "L = -(y ln a4 + (1 - y) ln(1 - a4))", v["loss"])
    out += ["", "BACKWARD PASS (the chain rule, from the loss back to the parameters)"]
    out += _line(r, "dL/da4", "dL/da4 = -y/a4 + (1 - y)/(1 - a4)", g["a4"])
    out += _line(r, "dL/dz4", "dL/dz4 = dL/da4 * sigmoid'(z4), sigmoid' = a4(1-a4)", g["z4"])
    out += _line(r, "dL/dw4", "dL/dw4 = dL/dz4 * a3", g["w4"])
    out += _line(r, "dL/db4", "dL/db4 = dL/dz4 * 1", g["b4"])
    out += _line(r, "dL/da3", "dL/da3 = dL/dz4 * w4", g["a3"])
    out += _matrix(r, "dL/da2", "dL/da2 = dL/da3 reshaped to 2x2 (flatten only moves numbers)", g["a2"])
    out += _matrix(r, "dL/da1", "dL/da1 = dL/da2 sent to each window's max (listed above), 0 elsewhere", g["a1"])
    out += _matrix(r, "dL/dz1", "dL/dz1 = dL/da1 * ReLU'(z1)   [ReLU'(z1) = 1 where z1 > 0, else 0]", g["z1"])
    out += _matrix(r, "dL/dF", "dL/dF = conv(X, dL/dz1): dL/dF[k,l] = sum over i,j of dL/dz1[i,j] * X[i+k,j+l]", g["F"])
    exact = " (exactly)" if g["b1"] == 0 else ""
    out += _with_errata(r, "dL/db1", [f"{'dL/db1 = sum over i,j of dL/dz1[i,j]':<52} = {_inline(g['b1'])}{exact}"])
    u = r.update
    out += ["", f"ONE STEP OF GRADIENT DESCENT on this image, p <- p - lr * dL/dp, lr = {u['lr']}:",
            f"L = {_inline(u['loss'])} -> {_inline(u['descent'])}"]
    return _with_errata(r, "update", out)
