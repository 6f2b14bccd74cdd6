"""Pictures of training and of the worked example: heatmaps with the number printed in each cell.

The worked example's pictures (``worked_figures``) follow its page's convention: values on one
diverging scale (blue below 0, white at 0, red above), gradients on another (purple, white, green),
each figure with one symmetric range and a colour bar, every number as the text prints it.

Needs matplotlib (an optional extra: ``pip install 'tinygrad-cnn[plots]'``). Figures are made
without pyplot (no window, no global state) and written atomically (temp file + os.replace).
"""
import errno
import os

import numpy as np

try:
    from matplotlib.figure import Figure
except ImportError:
    raise ImportError("pictures need matplotlib, an optional extra: pip install 'tinygrad-cnn[plots]'") from None

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.font_manager import FontProperties
from matplotlib.patches import Rectangle

from . import nn
from .files import atomic_write
from .autograd import no_grad
from .tensor import Tensor
from .worked.page import GRAD_COLOURS, VALUE_COLOURS  # the page's colours
from .worked.text import number  # numbers as the text prints them

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


def _save(fig, path, dpi=100):
    """Write ``fig`` to ``path`` atomically, in the format its suffix names (png without one).

    A write that fails raises its own error (PermissionError, FileNotFoundError, ...) naming
    ``path``, not the temporary file beside it; ``path`` keeps its old content and no temporary
    file is left. A ``path`` that is a folder or another non-regular file (/dev/null) is refused."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "cannot write a picture there, it is a folder", path)
    if os.path.exists(path) and not os.path.isfile(path):
        raise OSError(errno.EEXIST, "cannot write a picture there, it is not a regular file", path)
    try:
        with atomic_write(path) as f:
            fig.savefig(f, format=os.path.splitext(path)[1][1:] or "png", dpi=dpi)
    except OSError as e:
        if e.errno is None or e.filename == path:
            raise
        raise type(e)(e.errno, e.strerror, path) from None  # not the temporary file's name
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
# The page's colour convention (worked.page): values on one diverging scale, blue below 0, white at 0,
# red above; gradients on another, purple below, white at 0, green above; each figure's range is
# +-max|number| over its panels. Numbers are printed as the text prints them (worked.text.number).
WORKED_DPI = 150
FIT = 0.8            # a cell's label is at most this fraction of the cell's width
FONT_PER_CELL = 0.4  # and its font at most this fraction of the cell's height
MAX_FONT = 13.0      # points
CELL = (0.5, 0.85)   # inches: a cell is as wide as its widest label needs at 10 pt, within these bounds
TITLE_FONT, SUPTITLE_FONT, TICK_FONT = 9.5, 11.5, 7


def diverging(name, colours, n=2048):
    """A colormap from colours[0] (at 0.0) through white (at 0.5) to colours[1] (at 1.0), linear in RGB
    as the page's cells are; ``colours`` are 0-255 RGB triples."""
    low, high = (tuple(c / 255 for c in rgb) for rgb in colours)
    return LinearSegmentedColormap.from_list(name, [low, (1.0, 1.0, 1.0), high], N=n)


VALUES_CMAP = diverging("worked values", VALUE_COLOURS)
GRADS_CMAP = diverging("worked gradients", GRAD_COLOURS)


def worked_panels(result):
    """The panels of a ``worked.work()`` result in working order: (forward, backward), each a list of
    rows of (title, array). The forward rows are the inputs and parameters, the conv layer and the
    head; the backward rows are the gradients in the order backpropagation reaches them, from dL/dz4
    (dL/da4, the loss's own step, is in the figure's title: on the scale it would make every other
    gradient of square15 nearly white)."""
    v, g, p = result.values, result.grads, result.params
    forward = [[("X, the input", result.X), ("F, the kernel", p["F"]), ("b1", p["b1"]), ("w4", p["w4"]),
                ("b4", p["b4"])],
               [("z1 = conv(X, F) + b1", v["z1"]), ("a1 = ReLU(z1)", v["a1"]), ("a2 = maxpool(a1)", v["a2"])],
               [("a3 = flatten(a2)", v["a3"]), ("z4 = w4 . a3 + b4", v["z4"]), ("a4 = sigmoid(z4)", v["a4"]),
                ("L, the loss", v["loss"])]]
    backward = [[("dL/dz4", g["z4"]), ("dL/dw4", g["w4"]), ("dL/db4", g["b4"]), ("dL/da3", g["a3"])],
                [("dL/da2", g["a2"]), ("dL/da1", g["a1"]), ("dL/dz1", g["z1"]), ("dL/dF", g["F"]),
                 ("dL/db1", g["b1"])]]
    return forward, backward


def _ink(v, scale):
    """The page's text colour: white on the darkest cells, else near-black."""
    return "#ffffff" if scale and abs(v) / scale > 0.6 else "#111111"


def grid_figure(rows, title, cmap, bar_label, boxes=None):
    """A Figure of the 2-D arrays ``rows`` (rows of (title, array); a vector is one row, a number one
    cell) on one colour scale: ``cmap`` with a norm symmetric about 0 (+-max|number| over every panel),
    shared by every panel and shown by a colour bar. Each cell holds its number as text.number prints
    it, in one font for the figure, scaled so that the widest number fits its cell; all cells are the
    same size. ``boxes``: {panel title: [(row, col)]} cells to outline."""
    rows = [[(t, np.atleast_2d(np.asarray(a, dtype=np.float64))) for t, a in row] for row in rows]
    arrays = [a for row in rows for _, a in row]
    scale = max((float(np.max(np.abs(a))) for a in arrays if a.size), default=0.0) or 1.0
    norm = Normalize(vmin=-scale, vmax=scale)
    fig = Figure(dpi=WORKED_DPI)
    renderer = FigureCanvasAgg(fig).get_renderer()

    def inches(s, size):  # the width of ``s`` drawn at ``size`` points
        return renderer.get_text_width_height_descent(s, FontProperties(size=size), ismath=False)[0] / fig.dpi

    labels = [[np.vectorize(number, otypes=[object])(a) for _, a in row] for row in rows]
    widest = max(inches(s, 10) for row in labels for cells in row for s in cells.flat)
    cell = min(CELL[1], max(CELL[0], widest / FIT))
    font = min(MAX_FONT, 10 * FIT * cell / widest, FONT_PER_CELL * cell * 72)

    left, right, gap = 0.35, 0.25, 0.45  # inches: margins and the space between panels (their row ticks)
    head = 0.35 + 0.25 * title.count("\n")
    top, above, below, between = head + 0.35, 0.32, 0.25, 0.2  # suptitle; a panel's title; its ticks; rows
    slots = [[max(a.shape[1] * cell, inches(t, TITLE_FONT) + 0.1) for t, a in row] for row in rows]
    width = left + right + max(sum(s) + gap * (len(s) - 1) for s in slots)
    width = max(width, inches(max(title.split("\n"), key=len), SUPTITLE_FONT) + 0.6, 4.5)
    heights = [above + max(a.shape[0] for _, a in row) * cell + below + between for row in rows]
    bar_block = 0.95  # the colour bar's title, the bar, its tick labels
    height = top + sum(heights) + bar_block
    width, height = (np.ceil(d * fig.dpi) / fig.dpi for d in (width, height))  # whole pixels, as the PNG
    fig.set_size_inches(width, height)

    def rect(x, y_top, w, h):  # inches from the left and from the top -> figure fraction
        return [x / width, 1 - (y_top + h) / height, w / width, h / height]

    y = top
    for row, row_labels, row_slots, row_height in zip(rows, labels, slots, heights):
        x = left
        for (name, a), cells, slot in zip(row, row_labels, row_slots):
            h, w = a.shape
            ax = fig.add_axes(rect(x + (slot - w * cell) / 2, y + above, w * cell, h * cell))
            ax.imshow(a, cmap=cmap, norm=norm, interpolation="nearest", aspect="auto")
            for (i, j), v in np.ndenumerate(a):
                ax.text(j, i, cells[i, j], ha="center", va="center", fontsize=font, color=_ink(v, scale))
            for i, j in (boxes or {}).get(name, ()):
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="black", lw=1.6))
            ax.set_title(name, fontsize=TITLE_FONT, pad=4)
            ax.set_xticks(range(w) if w > 1 else [])
            ax.set_yticks(range(h) if h > 1 else [])
            ax.set_xticks(np.arange(w + 1) - 0.5, minor=True)
            ax.set_yticks(np.arange(h + 1) - 0.5, minor=True)
            ax.grid(which="minor", color="0.78", lw=0.5)
            ax.tick_params(which="both", labelsize=TICK_FONT, length=0, pad=2)
            x += slot + gap
        y += row_height
    bar_width = min(width - 1.0, 6.0)
    cax = fig.add_axes(rect((width - bar_width) / 2, y + 0.3, bar_width, 0.16))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=cax, orientation="horizontal")
    ticks = [-scale, 0.0, scale]
    bar.set_ticks(ticks, labels=[number(t) for t in ticks])
    cax.tick_params(labelsize=8)
    cax.set_title(f"{bar_label}: one colour scale for every panel, {number(-scale)} to {number(scale)}",
                  fontsize=9, pad=4)
    fig.suptitle(title, fontsize=SUPTITLE_FONT, y=1 - 0.15 / height, va="top")
    return fig


def worked_pictures(result):
    """[(file name, Figure)]: forward.png (X, F, b1, w4, b4; z1, a1, a2; a3, z4, a4, L on the values'
    scale, the max of each pooling window boxed in a1) and gradients.png (dL/d z4, w4, b4, a3; a2, a1,
    z1, F, b1 on the gradients' scale) of a ``worked.work()`` result."""
    forward, backward = worked_panels(result)
    model, label = result.model, number(result.label)
    return [("forward.png", grid_figure(
                forward, f"forward pass of {model}, label y = {label}: every value on one colour scale\n"
                         f"boxed in a1: the max of each pooling window, the one a2 keeps (and the one that "
                         f"gets its gradient)", VALUES_CMAP, "values (blue below 0, white at 0, red above)",
                boxes={"a1 = ReLU(z1)": result.winners})),
            ("gradients.png", grid_figure(
                backward, f"backward pass of {model}, label y = {label}: from dL/dL = 1 and "
                          f"dL/da4 = {number(result.grads['a4'])}, every gradient\nin the order "
                          f"backpropagation reaches it, on one colour scale", GRADS_CMAP,
                "gradients (purple below 0, white at 0, green above)"))]


def worked_figures(folder, result):
    """Write forward.png and gradients.png (see ``worked_pictures``) of a ``worked.work()`` result to
    ``folder``, each atomically. Returns the paths."""
    os.makedirs(folder, exist_ok=True)
    return [_save(fig, os.path.join(folder, name), dpi=WORKED_DPI) for name, fig in worked_pictures(result)]
