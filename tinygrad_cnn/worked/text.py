"""A worked solution as text, in the order a person works it: each layer's output with its formula,
then each gradient with the chain-rule step that made it, then one step of gradient descent."""
import textwrap

import numpy as np

MAX_NUMBERS = 2000  # more than this is no page to read: --json or --html instead
WIDTH = 100         # grids wider than this are printed in column blocks


class TooLarge(ValueError):
    """A solution with too many numbers to print."""


def number(v):
    """One number as a person writes it: an integer when it is one, else 6 decimals (never -0.000000)."""
    v = float(v)
    if v != v or v in (np.inf, -np.inf):
        return str(v)
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return f"{round(v, 6) + 0.0:.6f}".rstrip("0").rstrip(".")


def wrap(line, indent=2):
    """A long line wrapped at WIDTH, continuation lines indented further."""
    lead = " " * (len(line) - len(line.lstrip()))
    return textwrap.wrap(line, WIDTH, subsequent_indent=lead + " " * indent, break_on_hyphens=False) or [line]


def grid(a, indent=4):
    """A 0-, 1- or 2-D array as right-aligned rows, in blocks of columns when wider than WIDTH."""
    cells = np.vectorize(number, otypes=[object])(np.atleast_2d(np.asarray(a, dtype=np.float64)))
    width = max(len(c) for c in cells.flat) if cells.size else 1
    per_block = max(1, (WIDTH - indent) // (width + 2))
    lines = []
    for start in range(0, cells.shape[1], per_block):
        block = cells[:, start:start + per_block]
        if cells.shape[1] > per_block:
            lines.append(" " * indent + f"(columns {start} to {start + block.shape[1] - 1})")
        lines += [" " * indent + "  ".join(c.rjust(width) for c in row) for row in block]
    return lines


def _shape(a):
    return str(tuple(np.shape(a)))


def arrays(a, dims, indent=4):
    """An array of any rank as grids: the last two dims as rows and columns, one grid per index of
    the others, headed with the names in ``dims`` (as "image 0, channel 1")."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim <= 2:
        return grid(a, indent)
    lines = []
    for index in np.ndindex(a.shape[:-2]):
        head = ", ".join(f"{d} {i}" for d, i in zip(dims, index))
        lines.append(" " * indent + head + ":")
        lines += grid(a[index], indent + 2)
    return lines


def dims(ndim, batched):
    """Names of the leading dims of an array of ``ndim`` dims in NCHW (or NCL) layout."""
    names = (["image"] if batched else []) + ["channel"]
    return names[:max(0, ndim - 2)]


def _settings(m):
    kind = type(m).__name__
    if kind in ("Conv1d", "Conv2d", "ConvTranspose2d"):
        extra = [f"stride {m.stride}", f"padding {m.padding}"]
        if max(m.dilation) > 1:
            extra.append(f"dilation {m.dilation}")
        if m.groups > 1:
            extra.append(f"groups {m.groups}")
        if getattr(m, "padding_mode", "zeros") != "zeros":
            extra.append(f"padding_mode {m.padding_mode}")
        return f"{m.in_channels} -> {m.out_channels} channels, kernel {m.kernel_size}, " + ", ".join(extra)
    if kind == "Linear":
        return f"{m.in_features} -> {m.out_features} features"
    return ", ".join(f"{a} {getattr(m, a)!r}" for a in getattr(m, "args", ()) if a != "return_indices")


FORMULAS = {  # (forward, backward) in words; {k} and friends from the module
    "Conv2d": ("out[n,c,i,j] = sum over input channels k and kernel positions (u,v) of weight[c,k,u,v] * "
               "x[n,k, i*stride+u*dilation, j*stride+v*dilation] (x padded), + bias[c]",
               "dL/dx[n,k,...] = sum of weight[c,k,u,v] * dL/dout[n,c,i,j] over every (c,u,v,i,j) where x[n,k,...] "
               "was read; dL/dweight[c,k,u,v] = sum over n,i,j of dL/dout[n,c,i,j] * x[n,k, i*stride+u, j*stride+v]; "
               "dL/dbias[c] = sum over n,i,j of dL/dout[n,c,i,j]"),
    "Conv1d": ("out[n,c,i] = sum over input channels k and kernel positions u of weight[c,k,u] * "
               "x[n,k, i*stride+u*dilation] (x padded), + bias[c]",
               "dL/dx[n,k,...] = sum of weight[c,k,u] * dL/dout[n,c,i] where x[n,k,...] was read; "
               "dL/dweight[c,k,u] = sum over n,i of dL/dout[n,c,i] * x[n,k, i*stride+u]; "
               "dL/dbias[c] = sum over n,i of dL/dout[n,c,i]"),
    "ConvTranspose2d": ("out = the transpose of a conv: each x[n,k,i,j] adds x * weight[k,c,:,:] to out[n,c] at "
                        "(i*stride, j*stride) (then cropped by padding), + bias[c]",
                        "dL/dx = conv(dL/dout, weight) read back at each input position; dL/dweight[k,c,u,v] = "
                        "sum over n,i,j of x[n,k,i,j] * dL/dout[n,c, i*stride+u, j*stride+v]; dL/dbias[c] = sum of "
                        "dL/dout[:,c]"),
    "Linear": ("out[n,o] = sum over i of weight[o,i] * x[n,i] + bias[o]",
               "dL/dx[n,i] = sum over o of dL/dout[n,o] * weight[o,i]; dL/dweight[o,i] = sum over n of "
               "dL/dout[n,o] * x[n,i]; dL/dbias[o] = sum over n of dL/dout[n,o]"),
    "ReLU": ("out = max(x, 0)", "dL/dx = dL/dout * ReLU'(x), ReLU'(x) = 1 where x > 0, else 0"),
    "LeakyReLU": ("out = x where x > 0, else negative_slope * x",
                  "dL/dx = dL/dout * (1 where x > 0, else negative_slope)"),
    "Sigmoid": ("out = 1 / (1 + exp(-x))", "dL/dx = dL/dout * out * (1 - out)"),
    "Tanh": ("out = tanh(x)", "dL/dx = dL/dout * (1 - out^2)"),
    "Softmax": ("out = exp(x) / sum of exp(x) along dim",
                "dL/dx = out * (dL/dout - sum along dim of dL/dout * out)"),
    "LogSoftmax": ("out = x - log(sum of exp(x) along dim)",
                   "dL/dx = dL/dout - softmax(x) * sum along dim of dL/dout"),
    "MaxPool2d": ("out = the largest entry of each window",
                  "dL/dx = dL/dout sent to the largest entry of each window (listed above), 0 elsewhere; "
                  "added up where windows overlap"),
    "AvgPool2d": ("out = the mean of each window",
                  "dL/dx = dL/dout / (the window's divisor) sent to every entry of the window; added up where "
                  "windows overlap"),
    "Flatten": ("out = x with dims start_dim..end_dim merged (the numbers only move)",
                "dL/dx = dL/dout reshaped back (flatten only moves numbers)"),
}

LOSS_FORMULAS = {
    "BCELoss": ("L = mean over entries of -(y ln p + (1 - y) ln(1 - p))", "dL/dp = (-y/p + (1 - y)/(1 - p)) / count"),
    "BCEWithLogitsLoss": ("L = mean over entries of -(y ln sigmoid(z) + (1 - y) ln(1 - sigmoid(z)))",
                          "dL/dz = (sigmoid(z) - y) / count"),
    "MSELoss": ("L = mean over entries of (out - y)^2", "dL/dout = 2 (out - y) / count"),
    "CrossEntropyLoss": ("L = mean over images of -log softmax(out)[target]",
                         "dL/dout = (softmax(out) - onehot(target)) / N"),
    "NLLLoss": ("L = mean over images of -out[target]", "dL/dout = -onehot(target) / N"),
}


def count(solution):
    """How many numbers the text of a worked solution shows (as ``count_of`` its network)."""
    n = 2 * solution.input.size + sum(2 * s.output.size for s in solution.layers)
    return n + sum(3 * p["value"].size for p in solution.params.values())


def count_of(model, shape):
    """How many numbers the text of ``model`` on an input of ``shape`` shows (known before any work):
    the input and each layer's output with their gradients, each parameter's value, gradient and step."""
    from .network import _tensor_model, shapes_through
    outputs = shapes_through(_tensor_model(model), shape)
    n = 2 * int(np.prod(shape)) + sum(2 * int(np.prod(s)) for s in outputs)
    return n + sum(3 * int(np.prod(p.shape)) for p in model.parameters())


def too_large(model, shape):
    """A TooLarge error for the text of a network that has more than MAX_NUMBERS numbers, else None."""
    n = count_of(model, shape)
    return _too_large(n) if n > MAX_NUMBERS else None


def _too_large(n):
    return TooLarge(f"this network has {n} numbers to show, too many to print (at most {MAX_NUMBERS}): use "
                    f"--json for all of them, or --html for a page")


def _loss_words(solution):
    formula, grad = LOSS_FORMULAS[solution.loss_type]
    reduction = solution.loss_options.get("reduction", "mean")
    if reduction == "sum":
        formula, grad = formula.replace("mean over", "sum over"), grad.replace(" / count", "").replace(" / N", "")
    return formula, grad, reduction


def report(solution):
    """The solution as lines of text; TooLarge when it has more than MAX_NUMBERS numbers."""
    n = count(solution)
    if n > MAX_NUMBERS:
        raise _too_large(n)
    s = solution
    is_batch = batched(s)
    out = [f"Worked solution: {s.title}",
           f"Engine: {s.engine}. Every number is the engine's: values are the graph nodes' .data, gradients their "
           f".grad after one loss.backward().",
           "Exact: the decimals given are exact fractions, carried exactly through conv, linear, sums, ReLU, max "
           "and the pools (float64 from the first exp, log, sigmoid or tanh on), so every ReLU mask and max-pool "
           "winner is the hand computation's.", ""]
    if s.mistake:
        out += [f"!!! This solution has the mistake {s.mistake!r} made on purpose (marked !!! where it acts). "
                f"Its numbers are wrong.", ""]
    out += ["FORWARD PASS", f"x, the input {_shape(s.input)}{' (a batch)' if is_batch else ''}:"]
    out += arrays(s.input, dims(s.input.ndim, is_batch))
    keys = {}
    for key in s.params:
        keys.setdefault(int(key.split(".")[0]), []).append(key)
    for layer in s.layers:
        kind, m = layer.type, layer.module
        forward_words = FORMULAS[kind][0]
        out += ["", f"{layer.name}: {kind} ({_settings(m)})" if _settings(m) else f"{layer.name}: {kind}"]
        for key in keys.get(layer.index, ()):
            value = s.params[key]["value"]
            out += [f"  {key.split('.', 1)[1]} {_shape(value)}:"] + arrays(value, ["out channel", "in channel"])
        out += [f"  {forward_words}", f"  output {_shape(layer.output)}:"]
        out += arrays(layer.output, dims(layer.output.ndim, is_batch))
        if layer.winners is not None:
            out.append("  the largest of each window (only it passes a gradient back): " + "; ".join(
                f"out[{','.join(map(str, np.unravel_index(i, layer.output.shape)))}] = x[{','.join(map(str, w))}]"
                for i, w in enumerate(layer.winners)))
        out += [f"  {line}" for line in layer.kinks]
    formula, grad, reduction = _loss_words(s)
    out += ["", f"Loss: {s.loss_type} ({', '.join(f'{k}={v!r}' for k, v in s.loss_options.items()) or 'mean'})",
            f"  target {_shape(s.target)}: " + (" ".join(number(v) for v in np.ravel(s.target))),
            f"  {formula}", f"  L = {number(s.loss)}"] + _mark(s, "loss")
    out += ["", "BACKWARD PASS (the chain rule, from the loss back to the input)"]
    last = s.layers[-1]
    out += [f"dL/d(output of {last.name}) {_shape(last.grad_output)}, from the loss: {grad}"]
    out += arrays(last.grad_output, dims(last.grad_output.ndim, is_batch))
    for layer, below in zip(reversed(s.layers), [*reversed(s.layers[:-1]), None]):
        backward_words = FORMULAS[layer.type][1]
        target = f"output of {below.name}" if below is not None else "x, the input"
        grad_in = below.grad_output if below is not None else s.grad_input
        out += ["", f"{layer.name}: {backward_words}"] + _mark(s, layer.index)
        for key in keys.get(layer.index, ()):
            g = s.params[key]["grad"]
            summed = " (summed over every position it touched" + (
                " and over the images of the batch" if is_batch else "") + ")"
            mean = "; the loss's mean over the batch is already in dL/dout" if is_batch and reduction == "mean" else ""
            out += [f"  dL/d{key.split('.', 1)[1]} {_shape(g)}{summed}{mean}:"] + arrays(g, ["out channel", "in channel"])
        out += [f"  dL/d({target}) {_shape(grad_in)}:"] + arrays(grad_in, dims(grad_in.ndim, is_batch))
    out += ["", f"ONE STEP OF GRADIENT DESCENT, p <- p - lr * dL/dp, lr = {s.lr:g}:"] + _mark(s, "step")
    for key, p in s.params.items():
        out += [f"  {key} {_shape(p['after_step'])}:"] + arrays(p["after_step"], ["out channel", "in channel"])
    out.append(f"L = {number(s.loss)} -> {number(s.loss_after_step)} on this input")
    return [w for line in out for w in wrap(line)]


def _mark(s, place):
    return [f"  !!! the mistake made here: {s.marks[place]}"] if place in s.marks else []


def batched(s):
    """Whether the solution's input is a batch."""
    from .network import is_batched
    return is_batched([layer.module for layer in s.layers], s.input.shape)
