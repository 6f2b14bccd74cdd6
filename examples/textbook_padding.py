"""Zero padding versus the textbook's "same" padding (chapter 12, course material 003).

The textbook's "same padding" fills the border with copies of the nearest edge pixel: that is
PyTorch's (and this library's) padding_mode="replicate". PyTorch's padding="same" is something
else: it only chooses the amount of padding that keeps the size, and pads with zeros.
Run: python examples/textbook_padding.py
"""
import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor

X = Tensor([[[[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]]]])
blur = Tensor(np.ones((1, 1, 3, 3)))         # the sum of each 3x3 neighbourhood

zeros = F.conv2d(X, blur, padding=1).data[0, 0]
replicate = F.conv2d(X, blur, padding=1, padding_mode="replicate").data[0, 0]
same = F.conv2d(X, blur, padding="same").data[0, 0]
print("zero padding:             ", zeros.astype(int).tolist())
print("textbook 'same' padding:  ", replicate.astype(int).tolist())
print("padding='same' (PyTorch): ", same.astype(int).tolist())
print("all three keep the 5x5 size:", zeros.shape == replicate.shape == same.shape == (5, 5))
print("padding='same' equals zero padding:", bool(np.array_equal(same, zeros)))
print("the textbook's 'same' padding differs from zero padding in",
      int(np.sum(replicate != zeros)), "of 25 pixels, all on the border:",
      bool(np.array_equal(replicate[1:-1, 1:-1], zeros[1:-1, 1:-1])))
