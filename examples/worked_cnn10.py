"""The course material's worked example through the library: the 10-parameter CNN on its 5x5 image.

Every scalar is a Value, so every number of the forward and the backward pass is a graph node
with its own .grad. `tinygrad-cnn worked` lays the same numbers out in full, with the errata.
Run: python examples/worked_cnn10.py
"""
import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import values
from tinygrad_cnn.models import tiny_cnn10

image = [[2, 1, 0, 2, 1], [2, 1, 1, 0, 2], [1, 2, 0, 1, 0], [1, 0, 2, 1, 2], [2, 1, 1, 0, 0]]
X = values(image, name="X").reshape(1, 1, 5, 5)       # one image, one channel (NCHW)
model = tiny_cnn10(engine="value")                     # F = [[1,-1],[-1,1]], b1 = 1, w4 = [-1,1,-1,1], b4 = 0

conv, relu, pool, flatten, linear, sigmoid = model     # run the layers one by one to keep every output
z1 = conv(X)
a1 = relu(z1)
a2 = pool(a1)
a3 = flatten(a2)
z4 = linear(a3)
a4 = sigmoid(z4)
loss = F.binary_cross_entropy(a4, [[1.0]])             # label y = 1; natural log
loss.backward()                                        # fills .grad of every node above


def data(a):
    return np.vectorize(lambda v: v.data)(a).squeeze()


def grad(a):
    return np.vectorize(lambda v: v.grad)(a).squeeze()


def show(name, a):
    print(f"{name} = {(np.round(a, 6) + 0.0).tolist()}")


show("z1", data(z1))
show("a1", data(a1))
show("a2", data(a2))
show("z4", data(z4))
show("a4", data(a4))
show("loss", loss.data)
show("dL/dz4", grad(z4))
show("dL/da3", grad(a3))
show("dL/da1", grad(a1))
for short, param in zip(("F", "b1", "w4", "b4"), model.parameters()):
    show(f"dL/d{short}", grad(param))
