"""The textbook's 1-D convolution (chapter 12, course material 003), with conv1d on both engines.

x = (2, 1, 1, 7, -1, 2, 3, 1) and the filter w = (3, 2, -1) give y = (7, -2, 18, 17, -2, 11):
y_t = w . (x_t, x_t+1, x_t+2), a cross-correlation (no kernel flip), of length 8 - 3 + 1 = 6.
Run: python examples/textbook_conv1d.py
"""
import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, values

x = [[2, 1, 1, 7, -1, 2, 3, 1]]              # (C_in = 1, L = 8)
w = [[[3, 2, -1]]]                           # (C_out = 1, C_in = 1, K = 3)

y = F.conv1d(Tensor(x), Tensor(w)).data[0]
y_values = F.conv1d(values(x, "x"), values(w, "w"))[0]
print("y =", [int(v) for v in y])
print("y (Value engine) =", [int(v.data) for v in y_values])
print(f"length = {len(y)} = {len(x[0])} - {len(w[0][0])} + 1")
for t in range(2):
    terms = " + ".join(f"{a} * {b}" for a, b in zip(x[0][t:t + 3], w[0][0]))
    print(f"y_{t + 1} = {terms} = {int(y[t])}")

# Problem 12.1.3: y_t = 2 x_(t-1) - x_(t+1) is the filter (2, 0, -1) on the window (x_(t-1), x_t, x_(t+1)).
z = F.conv1d(Tensor(x), Tensor([[[2, 0, -1]]])).data[0]
x0 = np.array(x[0])
print("filter (2, 0, -1) matches 2 x_(t-1) - x_(t+1):", bool(np.array_equal(z, 2 * x0[:-2] - x0[2:])))
