"""Course note 002's pooling and batch mean, each beside the right way.

(a) Its max-pool mask, np.isclose(x, the window's max repeated over the window), is 1 at
    every entry tied for the max, so each tied entry gets the window's whole gradient; only
    the first largest should (PyTorch's choice and the engine's). Catalogue entry
    pool-grad-to-all-ties replays it on examples/models/notes_002_pooling.json, a conv, a
    ReLU and a 2x2 max-pool with tied windows, on a batch of two images.
(b) Its average pool, x_patches.mean(axis=3).mean(axis=4) on the (N, H/2, 2, W/2, 2, C) view
    of an NHWC array, averages over the W/2 axis and then over the channels; the 2x2 window
    is axes 2 and 4. Shown with numpy beside avg_pool2d.
(c) Its softmax_backward sends dZ = y_pred - y back without 1/m and divides the parameter
    gradients by m at every layer: its parameter gradients are those of the mean loss, but
    every activation gradient is m times too large. Catalogue entry missing-batch-mean
    replays those activation gradients.
Run: python examples/notes_002_pooling.py
"""
from pathlib import Path

import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.worked import modelfile

FILE = Path(__file__).resolve().parent / "models" / "notes_002_pooling.json"


def show(name, a):
    print(f"{name} = {(np.round(np.asarray(a, dtype=np.float64), 6) + 0.0).tolist()}")


def show_images(name, a):
    """A batch (N, C, H, W) one image a line."""
    for n, image in enumerate(a):
        show(f"{name}, image {n}", image)


spec = modelfile.load(FILE)
right = spec.work()
m = right.input.shape[0]
print(f"{spec.title}; a batch of m = {m}, the loss is the mean over the batch")
print(" -> ".join(layer.name for layer in right.layers) + f" -> {right.loss_type}")
show("loss", right.loss)

print("\n(a) max-pool backward with tied windows")
pool = right.layers[2]
show_images("pool input (the ReLU's output)", pool.input)
for line in pool.kinks[:-1]:
    print(line[len("kink: "):])
ties = spec.work(mistakes=("pool-grad-to-all-ties",))
show_images("dL/d(pool output)", pool.grad_output)
show_images("right dL/d(pool input)", right.layers[1].grad_output)
show_images("note's dL/d(pool input)", ties.layers[1].grad_output)
nhwc = pool.input.transpose(0, 2, 3, 1)   # the note's layout; its mask and its backward, written out
top = np.repeat(np.repeat(pool.output.transpose(0, 2, 3, 1), 2, axis=1), 2, axis=2)
mask = np.isclose(nhwc, top).astype(int)
spread = mask * np.repeat(np.repeat(pool.grad_output.transpose(0, 2, 3, 1), 2, axis=1), 2, axis=2)
print(f"the note's own mask and backward on the NHWC layout give the same: "
      f"{np.allclose(spread.transpose(0, 3, 1, 2), ties.layers[1].grad_output)}")
for key in ("0.weight", "0.bias"):
    show(f"right dL/d({key})", right.params[key]["grad"])
    show(f"note's dL/d({key})", ties.params[key]["grad"])
window = np.array([1.0, 1.000001, 0.5, 0.0]).reshape(1, 2, 2, 1)   # one NHWC window whose max is unique
print("np.isclose's tolerance also takes a near-max: the note's mask on the window [[1, 1.000001], [0.5, 0]] = "
      f"{np.isclose(window, window.max()).astype(int).reshape(2, 2).tolist()}")

print("\n(b) average pooling on an NHWC array")
x = np.random.default_rng(2).integers(0, 10, (1, 4, 4, 3)).astype(np.float64)
N, H, W, C = x.shape
patches = x.reshape(N, H // 2, 2, W // 2, 2, C)
notes = patches.mean(axis=3).mean(axis=4)
mean = patches.mean(axis=(2, 4))
pooled = F.avg_pool2d(Tensor(x.transpose(0, 3, 1, 2)), 2).data.transpose(0, 2, 3, 1)
show("x (NHWC), as x.transpose(0, 3, 1, 2), channel by channel", x.transpose(0, 3, 1, 2))
print(f"note's x_patches.mean(axis=3).mean(axis=4): shape {notes.shape}, its [n, i, a, b] the mean over j and c of "
      "x[n, 2i + a, 2j + b, c]")
show("note's", notes)
print(f"right x_patches.mean(axis=(2, 4)): shape {mean.shape}")
show("right", mean)
print(f"avg_pool2d on x.transpose(0, 3, 1, 2), transposed back: shape {pooled.shape}")
show("avg_pool2d", pooled)
print(f"right equals avg_pool2d: {mean.shape == pooled.shape and np.allclose(mean, pooled)}")
print(f"note's equals the mean over the W/2 axis and the channels, x_patches.mean(axis=(3, 5)): "
      f"{np.allclose(notes, patches.mean(axis=(3, 5)))}")
maxed = F.max_pool2d(Tensor(x.transpose(0, 3, 1, 2)), 2).data.transpose(0, 2, 3, 1)
print(f"its max-pool forward, x_patches.max(axis=2).max(axis=3), equals max_pool2d: "
      f"{np.array_equal(patches.max(axis=2).max(axis=3), maxed)}")

print(f"\n(c) the batch mean (m = {m}): d loss / d each layer's output")
summed = spec.work(mistakes=("missing-batch-mean",))
both = spec.work(mistakes=("missing-batch-mean", "double-batch-mean"))
show("softmax(logits)", np.exp(right.layers[-1].output) / np.exp(right.layers[-1].output).sum(axis=1, keepdims=True))
show("right dL/d(logits), (y_pred - y) / m", right.layers[-1].grad_output)
show("note's dZ, y_pred - y", summed.layers[-1].grad_output)
for layer, wrong in zip(right.layers, summed.layers):
    ratio = wrong.grad_output[layer.grad_output != 0] / layer.grad_output[layer.grad_output != 0]
    print(f"{layer.name}: note's / right = {sorted(set(np.round(ratio, 12).tolist()))} "
          f"(at its {ratio.size} nonzero entries)")
show_images("right dL/dx", right.grad_input)
show_images("note's dL/dx", summed.grad_input)
print("the parameter gradients: the note divides by m at each layer (missing-batch-mean + double-batch-mean)")
for key in right.params:
    show(f"right dL/d({key})", right.params[key]["grad"])
    show(f"note's dL/d({key})", both.params[key]["grad"])
show("missing-batch-mean alone, dL/d(0.bias) (no 1/m anywhere)", summed.params["0.bias"]["grad"])
