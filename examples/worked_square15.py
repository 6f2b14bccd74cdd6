"""The course material's square detector through the library, on the Tensor engine.

The 15-parameter CNN (6x6 -> conv 3x3 + ReLU -> max-pool 2x2 -> flatten 4 -> linear 4->1 ->
sigmoid) on a batch of generated images: noise (class 0), or noise with a 3x3 square of 0s
(class 1). One backward pass gives the gradient of the mean binary cross-entropy for all 15
parameters; gradcheck compares it with central finite differences.
`tinygrad-cnn worked --model square15` works one image through by hand.
Run: python examples/worked_square15.py
"""
import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.data import squares
from tinygrad_cnn.models import square_detector15
from tinygrad_cnn.testing import gradcheck

X, y = squares(8, seed=0)                      # X (8, 1, 6, 6), y (8,) of 0.0 / 1.0
model = square_detector15(seed=0)
x, target = Tensor(X), y.reshape(-1, 1)

p = model(x)                                   # (8, 1): the probability of "square"
loss = F.binary_cross_entropy(p, target)
loss.backward()


def show(name, a):
    print(f"{name} = {(np.round(a, 6) + 0.0).tolist()}")


show("labels", y)
show("p", p.data.ravel())
show("loss", loss.item())
print("parameters:", sum(param.data.size for param in model.parameters()))
for short, param in zip(("F", "b1", "w4", "b4"), model.parameters()):
    show(f"dL/d{short}", param.grad.squeeze())
# gradcheck nudges each parameter in place and raises GradcheckError on a mismatch
gradcheck(lambda *params: F.binary_cross_entropy(model(x), target), model.parameters())
print("gradcheck: the 15 gradients match central finite differences")
