"""Hypothesis strategies for gradient tests: yours and this project's.

    from hypothesis import given
    from tinygrad_cnn.testing import gradcheck, strategies

    @given(strategies.small_cnns())
    def test_my_cnn(cnn):
        model, x = cnn
        assert gradcheck(lambda x, *params: model(x).sum(), [x, *model.parameters()])

Profiles ``ci`` (bounded and deterministic), ``dev`` and ``thorough`` are registered on
import; ``load_profile()`` loads the one named by the environment variable
``TINYGRAD_CNN_PROFILE`` (this project's conftest does; ``make test`` sets ``ci``).
"""
import os
from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from .. import nn
from ..nn import functional as F
from ..value_array import values
from ..autograd import no_grad
from ..tensor import Tensor

# --- profiles ---------------------------------------------------------------------------------
PROFILE_VARIABLE = "TINYGRAD_CNN_PROFILE"
PROFILES = {
    "ci": dict(max_examples=15, derandomize=True, database=None),   # the same examples on every run
    "dev": dict(max_examples=50),
    "thorough": dict(max_examples=500),
}
for _name, _options in PROFILES.items():
    settings.register_profile(_name, deadline=None, suppress_health_check=[HealthCheck.too_slow], **_options)


def load_profile(default="dev"):
    """Load the hypothesis profile named by $TINYGRAD_CNN_PROFILE (``default`` when unset); return its name."""
    name = os.environ.get(PROFILE_VARIABLE) or default
    try:
        settings.load_profile(name)
    except InvalidArgument:
        raise ValueError(f"{PROFILE_VARIABLE}={name!r} is not a hypothesis profile; "
                         f"this package registers {', '.join(PROFILES)}") from None
    return name


def fewer_examples(divisor):
    """Settings with the loaded profile's max_examples divided by ``divisor`` (at least 1), for slow tests."""
    return settings(max_examples=max(1, settings().max_examples // divisor))


# --- numbers and arrays -------------------------------------------------------------------------
def finite_floats(min_value=-5.0, max_value=5.0, away_from=(), margin=1e-3):
    """Finite float64 in [min_value, max_value], at least ``margin`` from every point in ``away_from``
    (the kinks of relu, max, abs... where a derivative does not exist)."""
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False).filter(
        lambda x: all(abs(x - k) >= margin for k in away_from))


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=4):
    """Array shapes (tuples of ints)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


KINKS = (0.0,)  # where relu, leaky_relu and |x| have no derivative


def arrays(shape=None, elements=None, *, separation=None, **shape_kwargs):
    """float64 arrays of ``shape`` (a tuple or a strategy; by default ``shapes(**shape_kwargs)``).

    Elements come from ``elements`` (default ``finite_floats(away_from=KINKS)``: in [-5, 5], at
    least 1e-3 from 0, the kink of relu, leaky_relu and abs), or, with ``separation=gap``,
    are distinct nonzero multiples of ``gap`` in [-5, 5]: any two differ by at least ``gap``
    (and from 0 by ``gap``), so a max and its arg-max do not change under a finite-difference nudge.
    """
    if separation is not None:
        if elements is not None:
            raise ValueError("arrays: give elements or separation, not both")
        steps = int(5.0 / separation)
        elements = st.integers(-steps, steps).filter(bool).map(lambda k: k * separation)
    shape = shapes(**shape_kwargs) if shape is None else shape
    return hnp.arrays(np.float64, shape, elements=finite_floats(away_from=KINKS) if elements is None else elements,
                      unique=separation is not None)


@st.composite
def function_inputs(draw, *signature, dtype=np.float64, elements=None, requires_grad=True, max_side=4):
    """Tensors fitting a declared ``signature``: one shape per input, each dim an int (fixed) or a
    name (one size drawn per name, shared by every input that names it), e.g. ``("n", "k"), ("k",)``
    for a matrix and a vector that multiply. Elements as ``arrays``' default (away from kinks)."""
    sizes = {}
    tensors = []
    for shape in signature:
        dims = tuple(d if isinstance(d, int) else sizes.setdefault(d, draw(st.integers(1, max_side))) for d in shape)
        data = draw(hnp.arrays(np.float64, dims, elements=finite_floats(away_from=KINKS) if elements is None
                               else elements))
        tensors.append(Tensor(data, requires_grad=requires_grad, dtype=dtype))
    return tuple(tensors)


def well_separated(array, gap=1e-3):
    """True when no two entries are closer than ``gap``: max and its arg-max are then stable
    under the finite-difference nudge."""
    flat = np.sort(np.ravel(array))
    return flat.size < 2 or np.min(np.diff(flat)) > gap


def distinct_values(rng, shape, gap=1e-2):
    """Random float64 data of ``shape`` in about [-2, 2], entries pairwise at least ``gap`` apart
    (a shuffled grid: a max has a single arg-max, far from a tie)."""
    n = int(np.prod(shape))
    step = max(gap, 4.0 / max(n, 1))
    return ((rng.permutation(n) - n / 2) * step + rng.uniform(0, gap / 10)).reshape(shape)


# --- layer configurations ----------------------------------------------------------------------------
@st.composite
def conv2d_configs(draw, max_batch=2, max_channels=3, max_size=7, max_kernel=3, max_stride=2, max_padding=2,
                   string_padding=False):
    """A consistent conv2d configuration (always a valid output size) as a dict:
    batch (0 for an unbatched input), in_channels, out_channels, height, width, kernel (kH, kW),
    stride (sH, sW), padding ((pH, pW), or also "valid"/"same" with string_padding=True),
    padding_mode ("zeros" or "replicate"), bias (bool)."""
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = (draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride)))
    padding = (draw(st.integers(0, max_padding)), draw(st.integers(0, max_padding)))
    if string_padding and draw(st.booleans()):
        padding = draw(st.sampled_from(["valid", "same"]))
        stride = (1, 1) if padding == "same" else stride
    pads = (0, 0) if isinstance(padding, str) else padding  # H >= kernel suits "valid" and "same" alike
    height = draw(st.integers(max(1, kernel[0] - 2 * pads[0]), max_size))
    width = draw(st.integers(max(1, kernel[1] - 2 * pads[1]), max_size))
    return dict(batch=draw(st.integers(0, max_batch)), in_channels=draw(st.integers(1, max_channels)),
                out_channels=draw(st.integers(1, max_channels)), height=height, width=width, kernel=kernel,
                stride=stride, padding=padding, padding_mode=draw(st.sampled_from(["zeros", "replicate"])),
                bias=draw(st.booleans()))


@st.composite
def pool2d_configs(draw, max_batch=2, max_channels=3, max_size=7, max_kernel=3, max_stride=3):
    """A consistent pooling configuration as a dict: batch (0: unbatched), channels, height, width,
    kernel (kH, kW), stride ((sH, sW), or None for stride = kernel), mode ("max" or "avg")."""
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = draw(st.none() | st.tuples(st.integers(1, max_stride), st.integers(1, max_stride)))
    return dict(batch=draw(st.integers(0, max_batch)), channels=draw(st.integers(1, max_channels)),
                height=draw(st.integers(kernel[0], max_size)), width=draw(st.integers(kernel[1], max_size)),
                kernel=kernel, stride=stride, mode=draw(st.sampled_from(["max", "avg"])))


def _input_shape(batch, channels, height, width):
    return (channels, height, width) if batch == 0 else (batch, channels, height, width)


def conv2d_inputs(cfg, rng):
    """Random x, weight, bias (bias None when cfg['bias'] is False) for a conv2d_configs() dict."""
    x = rng.normal(size=_input_shape(cfg["batch"], cfg["in_channels"], cfg["height"], cfg["width"]))
    weight = rng.normal(size=(cfg["out_channels"], cfg["in_channels"]) + tuple(cfg["kernel"]))
    bias = rng.normal(size=cfg["out_channels"]) if cfg["bias"] else None
    return x, weight, bias


def pool2d_input(cfg, rng):
    """Random x for a pool2d_configs() dict, entries pairwise >= 0.01 apart (a max has one arg-max)."""
    return distinct_values(rng, _input_shape(cfg["batch"], cfg["channels"], cfg["height"], cfg["width"]))


# --- small CNNs ---------------------------------------------------------------------------------------
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


@dataclass(frozen=True)
class ConvBlock:
    """Conv2d(in, out_channels, kernel, stride, padding, padding_mode) -> activation -> optional pool."""
    out_channels: int
    kernel: int
    stride: int
    padding: int
    padding_mode: str
    activation: str          # a key of ACTIVATIONS
    pool: str | None         # a key of POOLS, or None
    pool_kernel: int


@dataclass(frozen=True)
class CNNArchitecture:
    """A small CNN: conv blocks, Flatten, Linear(features, classes); weights and input from ``seed``."""
    batch: int
    in_channels: int
    size: int                # input height and width
    blocks: tuple            # of ConvBlock
    classes: int
    seed: int

    def features(self):
        """(channels, height, width) after the conv blocks."""
        c, h = self.in_channels, self.size
        for b in self.blocks:
            c, h = b.out_channels, (h + 2 * b.padding - b.kernel) // b.stride + 1
            h = h // b.pool_kernel if b.pool else h
        return c, h, h

    def build(self, engine="tensor"):
        """The nn.Sequential on ``engine`` ("tensor" or "value"); the same weights on both."""
        rng = np.random.default_rng([self.seed, 0])
        layers, c = [], self.in_channels
        for b in self.blocks:
            layers += [nn.Conv2d(c, b.out_channels, b.kernel, b.stride, b.padding, b.padding_mode,
                                 engine=engine, rng=rng), ACTIVATIONS[b.activation]()]
            layers += [POOLS[b.pool](b.pool_kernel)] if b.pool else []
            c = b.out_channels
        features = int(np.prod(self.features()))
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(features, self.classes, engine=engine, rng=rng))

    def input(self, engine="tensor", name="x"):
        """The (batch, in_channels, size, size) input: a Tensor that requires grad, or named leaf Values."""
        data = np.random.default_rng([self.seed, 1]).normal(size=(self.batch, self.in_channels, self.size, self.size))
        return Tensor(data, requires_grad=True, name=name) if engine == "tensor" else values(data, name)


@st.composite
def conv_blocks(draw, size, max_channels=2, activations=tuple(ACTIVATIONS), pools=(None, *POOLS)):
    """A ConvBlock that fits a size x size input (its output is at least 1 x 1)."""
    padding = draw(st.integers(0, 1))
    kernel = draw(st.integers(1, min(3, size + 2 * padding)))
    stride = draw(st.integers(1, 2))
    out = (size + 2 * padding - kernel) // stride + 1
    pool = draw(st.sampled_from(pools))
    return ConvBlock(draw(st.integers(1, max_channels)), kernel, stride, padding,
                     draw(st.sampled_from(["zeros", "replicate"])), draw(st.sampled_from(activations)),
                     pool, draw(st.integers(1, min(2, out))) if pool else 1)


@st.composite
def cnn_architectures(draw, min_blocks=1, max_blocks=2, max_batch=2, max_channels=2, min_size=3, max_size=6,
                      min_classes=1, max_classes=3, activations=tuple(ACTIVATIONS), pools=(None, *POOLS)):
    """A CNNArchitecture: ``min_blocks``..``max_blocks`` conv blocks that always leave a valid output size."""
    size = draw(st.integers(min_size, max_size))
    in_channels, blocks, h = draw(st.integers(1, max_channels)), [], size
    for _ in range(draw(st.integers(min_blocks, max_blocks))):
        block = draw(conv_blocks(h, max_channels, activations, pools))
        blocks.append(block)
        h = (h + 2 * block.padding - block.kernel) // block.stride + 1
        h = h // block.pool_kernel if block.pool else h
    return CNNArchitecture(draw(st.integers(1, max_batch)), in_channels, size, tuple(blocks),
                           draw(st.integers(min_classes, max_classes)), draw(st.integers(0, 2 ** 32 - 1)))


def small_cnns(engine="tensor", margin=1e-3, **architecture):
    """``(model, x)``: a built nn.Sequential on ``engine`` and its input, ready for gradcheck.

    The forward pass stays at least ``margin`` away from every kink (relu at 0, a tie in a
    max-pool window), so finite differences are valid. ``architecture``: cnn_architectures' options.
    """
    return cnn_architectures(**architecture).map(lambda a: (a.build(engine), a.input(engine))).filter(
        lambda cnn: kink_margin(*cnn) > margin)


def kink_margin(model, x):
    """The smallest distance to a kink in ``model(x)``: over every ReLU/LeakyReLU input entry
    |z|, and every MaxPool2d window the gap between its two largest entries.

    ``model`` is an nn.Sequential (nested ones too) of this package's modules; inf if it has no kink.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"kink_margin: model must be an nn.Sequential, got {type(model).__name__}")
    margin, h = np.inf, Tensor(x.numbers())
    with no_grad():
        for module in model:
            if isinstance(module, nn.Sequential):
                margin = min(margin, kink_margin(module, h))
            elif isinstance(module, (nn.ReLU, nn.LeakyReLU)):
                margin = min(margin, np.min(np.abs(h.data), initial=np.inf))
            elif type(module) is nn.MaxPool2d:
                margin = min(margin, _pool_gap(h, module))
            h = module(h)
    return float(margin)


def _pool_gap(h, pool):
    """The smallest gap between the two largest entries of a window of ``pool`` (its padding,
    dilation and ceil_mode included: the windows max_pool2d takes)."""
    windows, _ = F._pool("kink_margin", h, pool.kernel_size, pool.stride, pool.padding, pool.dilation,
                         pool.ceil_mode, -np.inf)
    flat = windows.data.reshape(windows.shape[:-2] + (-1,))
    if flat.shape[-1] < 2:
        return np.inf
    top2 = np.sort(flat, axis=-1)[..., -2:]
    with np.errstate(invalid="ignore"):  # two padded entries: -inf - -inf, no tie of real numbers
        gaps = top2[..., 1] - top2[..., 0]
    return np.min(np.nan_to_num(gaps, nan=np.inf), initial=np.inf)
