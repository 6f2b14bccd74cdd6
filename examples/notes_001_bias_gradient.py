"""Course note 001's bias gradient, beside the right one, on a small dense network.

The note's summary formula gives dL/db^l the same activation factor as dL/dW^l. The bias
adds 1 * b to each z, so the right dL/db is dL/dz itself (summed over the batch); the
note's is dL/dz times the activations going into the layer, which for one input is dL/dz
times the sum of those activations. The catalogue replays that mistake
(worked --mistake bias-grad-times-activation). The network is in
examples/models/notes_001_dense.json: Linear(3, 2), Sigmoid, Linear(2, 3), and
CrossEntropyLoss (softmax with cross-entropy on the logits).
Here x sums to -1.5, so the note's dL/db of the first layer has the wrong sign and its step
moves those biases uphill.
Run: python examples/notes_001_bias_gradient.py
"""
from pathlib import Path

import numpy as np

from tinygrad_cnn.worked import modelfile

MISTAKE = "bias-grad-times-activation"
FILE = Path(__file__).resolve().parent / "models" / "notes_001_dense.json"


def show(name, a):
    print(f"{name} = {(np.round(np.asarray(a, dtype=np.float64), 6) + 0.0).tolist()}")


spec = modelfile.load(FILE)
right = spec.work()                       # the engine's gradients, exact up to the sigmoid
note = spec.work(mistakes=(MISTAKE,))     # the same pass with note 001's bias gradient

print(f"{spec.title}; lr = {spec.lr}")
show("x", right.input)
print(f"target class = {int(right.target[0])}")
for layer in right.layers:
    show(f"{layer.name} output", layer.output)
logits = right.layers[-1].output
show("softmax(logits)", np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
show("loss", right.loss)
print()
print("The bias: the right dL/db = dL/dz (one input); the note's = dL/dz * (the activations going in)")
for layer in right.layers:
    if layer.type != "Linear":
        continue
    key = f"{layer.index}.bias"
    show(f"{layer.name} input", layer.input)
    show(f"{layer.name} sum of its input", layer.input.sum())
    show(f"{layer.name} dL/dz", layer.grad_output)
    show(f"{layer.name} right dL/db", right.params[key]["grad"])
    show(f"{layer.name} note's dL/db", note.params[key]["grad"])
    show(f"{layer.name} note's / right", note.params[key]["grad"] / right.params[key]["grad"])
    weight = f"{layer.index}.weight"
    show(f"{layer.name} dL/dW", right.params[weight]["grad"])
    same = np.array_equal(note.params[weight]["grad"], right.params[weight]["grad"])
    print(f"{layer.name} the note's dL/dW is the same: {same}")
print()
print("One step of gradient descent each way (the weights move the same):")
for key in right.params:
    if key.endswith("bias"):
        show(f"right b after the step ({key})", right.params[key]["after_step"])
        show(f"note's b after the step ({key})", note.params[key]["after_step"])
show("loss after one step, right", right.loss_after_step)
show("loss after one step, note's", note.loss_after_step)
