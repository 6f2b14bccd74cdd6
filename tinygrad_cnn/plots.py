"""Pictures of training and of the worked example: heatmaps with the number printed in each cell.

Needs matplotlib (an optional extra: ``pip install 'tinygrad-cnn[plots]'``). Figures are made
without pyplot (no window, no global state) and written atomically (temp file + os.replace).
"""
import os

import numpy as np

try:
    from matplotlib.figure import Figure
except ImportError:
    raise ImportError("pictures need matplotlib, an optional extra: pip install 'tinygrad-cnn[plots]'") from None

from . import nn
from .files import atomic_write
from .autograd import no_grad
from .tensor import Tensor

NUMBERS_UP_TO = 10  # print the numbers in maps up to this many rows and columns; larger maps are colour only


def _format(a):
    top = np.max(np.abs(a)) if a.size else 0.0
    return "{:.1f}" if top >= 10 else "{:.2f}" if top >= 0.1 or top == 0 else "{:.2g}"


def heatmap(ax, a, title="", numbers=None):
    """Draw the 2-D array ``a`` (a vector as one row) on matplotlib axes ``ax``, with each cell's number
    (``numbers``: True, False, or None for maps up to NUMBERS_UP_TO on a side).

    Signed maps use a blue-white-red scale centred on 0; maps >= 0 a white-to-blue one."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    top = float(np.max(np.abs(a))) or 1.0
    signed = a.min() < 0
    image = ax.imshow(a, cmap="RdBu_r" if signed else "Blues", vmin=-top if signed else 0.0, vmax=top)
    if numbers or numbers is None and max(a.shape) <= NUMBERS_UP_TO:
        fmt, size = _format(a), max(5.5, 10.0 - 0.45 * max(a.shape))
        for (i, j), v in np.ndenumerate(a):
            dark = abs(v) > 0.6 * top
            ax.text(j, i, fmt.format(v + 0.0), ha="center", va="center", fontsize=size,
                    color="white" if dark else "black")
    ax.set_title(title, fontsize=9)
    ax.set_xticks(range(a.shape[1]) if a.shape[1] <= NUMBERS_UP_TO else [])
    ax.set_yticks(range(a.shape[0]) if a.shape[0] <= NUMBERS_UP_TO else [])
    ax.tick_params(labelsize=7, length=0)
    return image


def _save(fig, path):
    path = os.fspath(path)
    with atomic_write(path) as f:
        fig.savefig(f, format=os.path.splitext(path)[1][1:] or "png", dpi=100)
    return path


def draw_maps(path, rows, title=""):
    """Write a figure of heatmaps to ``path`` (.png, .svg, .pdf): ``rows`` is a list of rows, each a list
    of (title, 2-D array) pairs drawn left to right (rows of one map each are put side by side).
    Returns ``path``."""
    if all(len(row) == 1 for row in rows):
        rows = [[row[0] for row in rows]]
    width = max(len(row) for row in rows)
    side = max(2.0, min(3.2, 0.4 * max(np.atleast_2d(a).shape[1] for row in rows for _, a in row)))
    head = 0.6 if title else 0.1  # inches above the maps
    fig = Figure(figsize=(side * width, side * len(rows) + head))
    axes = fig.subplots(len(rows), width, squeeze=False, gridspec_kw=dict(wspace=0.25, hspace=0.45))
    fig.subplots_adjust(left=0.2 / width, right=1 - 0.05 / width, bottom=0.15 / len(rows),
                        top=1 - (head + 0.35) / (side * len(rows) + head))
    for r, row in enumerate(rows):
        for c in range(width):
            if c < len(row):
                label, a = row[c]
                heatmap(axes[r, c], a, label)
            else:
                axes[r, c].axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path)


# --- training pictures ------------------------------------------------------------------------------
def _curves(path, history, test_accuracy):
    fig = Figure(figsize=(10, 3.6))
    ax_loss, ax_acc = fig.subplots(1, 2)
    steps = [s for stats in history for s in stats["steps"]]
    ends = np.cumsum([len(stats["steps"]) for stats in history])
    x = np.arange(1, len(steps) + 1)
    for ax, column, name in ((ax_loss, 0, "loss"), (ax_acc, 1, "accuracy")):
        ax.plot(x, [s[column] for s in steps], color="0.75", lw=0.8, label=f"each step's batch {name}")
        ax.plot(ends, [stats[name] for stats in history], "o-", color="C0", label=f"training {name}, epoch mean")
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    if test_accuracy is not None:
        ax_acc.axhline(test_accuracy, color="C3", ls="--", label=f"test accuracy {test_accuracy:.4f}")
    ax_loss.set_yscale("log")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _conv_layers(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _kernels(path, model):
    name, conv = _conv_layers(model)[0]
    weight, bias = (np.asarray(model.state_dict()[f"{name}.{k}"]) for k in ("weight", "bias"))
    def title(o, i):
        return f"kernel {o}" + (f", input {i}" if weight.shape[1] > 1 else "") + (f"\nbias {bias[o]:.3f}" if i == 0 else "")

    rows = [[(title(o, i), weight[o, i]) for i in range(weight.shape[1])] for o in range(weight.shape[0])]
    if weight.shape[1] == 1:  # one input channel: lay the kernels out in rows of up to 8
        flat = [row[0] for row in rows]
        rows = [flat[k:k + 8] for k in range(0, len(flat), 8)]
    return draw_maps(path, rows, f"the learned kernels of layer {name} ({type(conv).__name__})")


def feature_maps(model, image):
    """[(label, (C, H, W) array)]: ``image`` (C, H, W) and each 4-D output of ``model``'s layers in turn."""
    out, maps = Tensor(np.asarray(image, dtype=np.float64)[None]), [("input", np.asarray(image))]
    with no_grad():
        for name, layer in enumerate(model):
            out = layer(out)
            if out.ndim == 4:
                maps.append((f"{name}: {type(layer).__name__}", out.data[0]))
    return maps, out.data[0]


def _feature_maps(path, model, image):
    maps, output = feature_maps(model, image)
    rows = [[(f"{label}" + (f", ch {c}" if len(a) > 1 else ""), a[c]) for c in range(len(a))] for label, a in maps]
    result = (f"output {output[0]:.4f} (class {int(output[0] > 0.5)})" if output.size == 1
              else f"predicted class {int(np.argmax(output))}")
    return draw_maps(path, rows, f"one test image through the network: {result}")


def training_figures(folder, model, history, example, test_accuracy=None):
    """Write curves.png (loss and accuracy per step and per epoch), kernels.png (the first conv layer's
    kernels) and feature_maps.png (``example`` (C, H, W) through each layer) to ``folder``.

    ``history`` is ``train.fit``'s list of epoch stats. Returns the paths written."""
    os.makedirs(folder, exist_ok=True)
    written = []
    if history:
        written.append(_curves(os.path.join(folder, "curves.png"), history, test_accuracy))
    written.append(_kernels(os.path.join(folder, "kernels.png"), model))
    written.append(_feature_maps(os.path.join(folder, "feature_maps.png"), model, example))
    return written


# --- the worked example -----------------------------------------------------------------------------
def worked_figures(folder, result):
    """Write forward.png (X, F, z1, a1, a2) and gradients.png (dL/d a2, a1, z1, F, and the vectors
    dL/d a3 and dL/d w4 as rows) of a ``worked.work()`` result to ``folder``. Returns the paths."""
    os.makedirs(folder, exist_ok=True)
    v, g = result.values, result.grads
    forward = [[("X, the input", result.X), ("F, the kernel", result.params["F"])],
               [("z1 = conv(X, F) + b1", v["z1"]), ("a1 = ReLU(z1)", v["a1"]), ("a2 = maxpool(a1)", v["a2"])]]
    backward = [[("dL/da2", g["a2"]), ("dL/da1", g["a1"]), ("dL/dz1", g["z1"]), ("dL/dF", g["F"])],
                [("dL/da3", g["a3"]), ("dL/dw4", g["w4"])]]
    loss = f"loss {v['loss']:.4f}, label {result.label:g}, a4 = {v['a4']:.4f}"
    return [draw_maps(os.path.join(folder, "forward.png"), forward, f"forward pass ({result.model}): {loss}"),
            draw_maps(os.path.join(folder, "gradients.png"), backward,
                      f"backward pass: dL/db1 = {g['b1']:.4g}, dL/db4 = {g['b4']:.4g}, dL/dz4 = {g['z4']:.4g}")]
