"""The textbook's two hand-designed detectors (chapter 12, course material 003), run on images.

Both are conv + ReLU, then a conv that covers the whole map + sigmoid, on 8x8 gray images with
integer pixels 0..255. The first layer outputs 1 exactly where the pattern is and 0 elsewhere;
the second sums those with weight 10 and bias -5: o = 5 (or more) with the pattern, -5 without,
so the output is sigmoid(5) = 0.9933 or sigmoid(-5) = 0.0067.
  255-pixel detector: 1x1 conv of weight 1, bias -254, ReLU; 8x8 conv of 10s, bias -5, sigmoid.
  plus detector: 3x3 plus-shaped kernel of 1s, bias -1274, ReLU; 6x6 conv of 10s, bias -5, sigmoid.
Run: python examples/textbook_detectors.py
"""
import numpy as np

from tinygrad_cnn import Tensor
from tinygrad_cnn.nn import Conv2d, ReLU, Sequential, Sigmoid

PLUS = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def detector(kernel, bias):
    """conv(kernel, bias) + ReLU, then a conv of 10s over the whole map, bias -5, + sigmoid (8x8 input)."""
    k = len(kernel)
    net = Sequential(Conv2d(1, 1, k), ReLU(), Conv2d(1, 1, 8 - k + 1), Sigmoid())
    net.load_state_dict({"0.weight": np.reshape(kernel, (1, 1, k, k)), "0.bias": [bias],
                         "2.weight": np.full((1, 1, 9 - k, 9 - k), 10.0), "2.bias": [-5.0]})
    return net


rng = np.random.default_rng(0)
background = rng.integers(0, 255, size=(8, 8))          # 0..254: no pixel is 255
with_pixel = background.copy()
with_pixel[5, 2] = 255
with_plus = background.copy()
with_plus[3, 4] = with_plus[2, 4] = with_plus[4, 4] = with_plus[3, 3] = with_plus[3, 5] = 255
near_plus = with_plus.copy()
near_plus[3, 4] = 250                                   # the textbook's near miss: 4 x 255 + 250 - 1274 = -4

pixel_net, plus_net = detector([[1.0]], -254.0), detector(PLUS, -1274.0)
for name, net, image in (("255-pixel detector, no 255 pixel", pixel_net, background),
                         ("255-pixel detector, one 255 pixel", pixel_net, with_pixel),
                         ("plus detector, no plus", plus_net, background),
                         ("plus detector, a plus of 255s", plus_net, with_plus),
                         ("plus detector, the plus with a 250 centre", plus_net, near_plus)):
    x = Tensor(image.reshape(1, 1, 8, 8).astype(np.float64))
    first = net[0](x)                                   # before the ReLU
    o = net[2](net[1](first))                           # before the sigmoid
    print(f"{name}: largest first-layer value {first.data.max():g}, o = {o.item():g}, "
          f"sigmoid(o) = {net(x).item():.4f}")
