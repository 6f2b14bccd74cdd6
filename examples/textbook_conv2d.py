"""The textbook's 2-D convolution example (chapter 12, course material 003) and its backprop formulas.

A 5x5 image X and a 3x3 filter W give Y = [[4, 3, 4], [2, 4, 3], [2, 3, 4]]. Then, for a loss
L = sum(G * Y), the engine's gradients are checked against the chapter's two formulas:
dL/dW = X cross-correlated with dL/dY (12.5), and dL/dX = dL/dY, zero-padded, cross-correlated
with W flipped both ways (12.6).
Run: python examples/textbook_conv2d.py
"""
import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor

X = Tensor([[[[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]]],
           requires_grad=True)
W = Tensor([[[[1, 0, 1], [0, 1, 0], [1, 0, 1]]]], requires_grad=True)

Y = F.conv2d(X, W)
print("Y =", Y.data[0, 0].astype(int).tolist())
print("Y[0,0] = sum of X[0:3, 0:3] * W =", int((X.data[0, 0, :3, :3] * W.data[0, 0]).sum()))

G = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0], [2.0, 1.0, -0.5]])   # dL/dY for L = sum(G * Y)
(Y * Tensor(G.reshape(1, 1, 3, 3))).sum().backward()
dW = F.conv2d(Tensor(X.data), Tensor(G.reshape(1, 1, 3, 3))).data
dX = F.conv2d(Tensor(G.reshape(1, 1, 3, 3)), Tensor(W.data[:, :, ::-1, ::-1].copy()), padding=2).data
print("dL/dW =", W.grad[0, 0].tolist())
print("dL/dW == conv(X, dL/dY) (12.5):", bool(np.allclose(W.grad, dW, rtol=0, atol=1e-12)))
print("dL/dX == conv(pad(dL/dY), flipped W) (12.6):", bool(np.allclose(X.grad, dX, rtol=0, atol=1e-12)))
