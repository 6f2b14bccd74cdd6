"""Record the 10-parameter CNN's scalar graph once and replay it over a batch of 32 images.

    python examples/replay_batch.py

Prints each image's loss, the batch's mean-loss gradient of the kernel F (what an optimiser step
would use), and, for image 3, its loss and its share of d mean loss / d x read from the replay and
from the recorded graph after ``load(3)`` (the same numbers; load replaces the parameters' .grad
with image 3's too, so read or step the batch's gradient first).
"""
import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tape, values
from tinygrad_cnn.models import tiny_cnn10

model = tiny_cnn10(engine="value")
x, t = values(np.zeros((1, 1, 5, 5)), name="x"), values([[1.0]], name="t")
loss = F.binary_cross_entropy(model(x), t)      # one example's graph
tape = Tape(loss, (x, t))
print(f"nodes = {len(tape)}")
print(f"levels = {len(tape.levels)}")

images = np.random.default_rng(0).integers(0, 3, (32, 1, 1, 5, 5)).astype(float)
labels = (np.arange(32) % 2).astype(float).reshape(32, 1, 1)
print(f"images = {images.reshape(32, 5, 5).tolist()!r}")
replay = tape(images, labels)
replay.backward(np.full(32, 1 / 32))            # the batch's mean loss
print(f"losses = {np.round(replay.data(loss), 6).tolist()}")
print(f"loss_3 = {float(replay.data(loss)[3])!r}")
print(f"grad_x_3 = {replay.grad(x)[3].reshape(5, 5).tolist()!r}")
print(f"mean_grad_F = {model[0].weight.grads().ravel().tolist()!r}")  # before load(3) replaces it
root = replay.load(3)                           # image 3's numbers into the recorded Values
print(f"loaded_loss_3 = {root.data!r}")
print(f"loaded_grad_x_3 = {[[v.grad for v in row] for row in x[0, 0]]!r}")
