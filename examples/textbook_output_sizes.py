"""The textbook's output-size formulas (chapter 12, course material 003) against conv2d's and
max_pool2d's actual shapes.

An m x m image and a (2k+1) x (2k+1) filter at stride s give, per side:
  with padding (k pixels each side): floor((m + s - 1) / s)
  without padding:                   floor((m + s - 2k - 1) / s)
and pooling by D x D patches gives floor(m / D).
Run: python examples/textbook_output_sizes.py
"""
import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor


def conv_side(m, k, s, padded):
    """The width of conv2d's output for an m x m image and a (2k+1) x (2k+1) filter."""
    image, kernel = Tensor(np.zeros((1, 1, m, m))), Tensor(np.zeros((1, 1, 2 * k + 1, 2 * k + 1)))
    return F.conv2d(image, kernel, stride=s, padding=k if padded else 0).shape[-1]


def pool_side(m, d):
    return F.max_pool2d(Tensor(np.zeros((1, 1, m, m))), d).shape[-1]


def textbook_conv(m, k, s, padded):
    return (m + s - 1) // s if padded else (m + s - 2 * k - 1) // s


print("the chapter's examples (formula / engine):")
print(f"  5x5 image, 3x3 filter, padding, stride 2 (Example 12.2.5): "
      f"{textbook_conv(5, 1, 2, True)} / {conv_side(5, 1, 2, True)}")
print(f"  10x10 image, 5x5 filter, no padding, stride 1 (Problem 12.2.4): "
      f"{textbook_conv(10, 2, 1, False)} / {conv_side(10, 2, 1, False)}")
print(f"  6x6 image pooled by 2x2 (Example 12.2.7): {6 // 2} / {pool_side(6, 2)}")
print(f"  4x4 map pooled by 2x2 (the square detector, whose table says 3): {4 // 2} / {pool_side(4, 2)}")

conv_cases = [(m, k, s, padded) for m in range(1, 13) for k in range(3) for s in range(1, 4)
              for padded in (True, False) if padded or m >= 2 * k + 1]
pool_cases = [(m, d) for m in range(1, 13) for d in range(1, m + 1)]
bad = [c for c in conv_cases if textbook_conv(*c) != conv_side(*c)]
bad += [c for c in pool_cases if c[0] // c[1] != pool_side(*c)]
print(f"checked {len(conv_cases)} conv cases (m = 1..12, k = 0..2, s = 1..3, padded or not) and "
      f"{len(pool_cases)} pooling cases: {len(bad)} disagree")
