"""Hypothesis strategies for gradient tests: yours and this project's.

    from hypothesis import given
    from tinygrad_cnn.testing import strategies as st_cnn

    @given(st_cnn.conv2d_configs())
    def test_my_conv(cfg): ...

Profiles ``ci`` (bounded, deterministic), ``dev`` and ``thorough`` are registered on import;
select one with ``settings.load_profile(name)`` (this project's tests read
``TINYGRAD_CNN_PROFILE``).
"""
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

settings.register_profile("ci", max_examples=15, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None)


def finite_floats(min_value=-5.0, max_value=5.0, away_from=(), margin=1e-3):
    """Finite float64 in [min_value, max_value], at least ``margin`` from every point in ``away_from``
    (the kinks of relu, max, abs... where a derivative does not exist)."""
    return st.floats(min_value, max_value, allow_nan=False, allow_infinity=False).filter(
        lambda x: all(abs(x - k) >= margin for k in away_from))


def shapes(min_dims=1, max_dims=3, min_side=1, max_side=4):
    """Array shapes."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def arrays(shape=None, elements=None, **shape_kwargs):
    """float64 arrays of ``shape`` (or a generated shape) with finite elements."""
    return hnp.arrays(np.float64, shapes(**shape_kwargs) if shape is None else shape,
                      elements=finite_floats() if elements is None else elements)


def well_separated(array, gap=1e-3):
    """True when no two entries are closer than ``gap``: max and its argmax are then stable
    under the finite-difference nudge."""
    flat = np.sort(np.ravel(array))
    return flat.size < 2 or np.min(np.diff(flat)) > gap


@st.composite
def conv2d_configs(draw, max_batch=2, max_channels=3, max_size=7, max_kernel=3, max_stride=2, max_padding=2):
    """A consistent conv2d configuration (always a valid output size) as a dict:
    batch (0 for an unbatched input), in_channels, out_channels, height, width, kernel (kH, kW),
    stride (sH, sW), padding (pH, pW), padding_mode, bias."""
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    padding = (draw(st.integers(0, max_padding)), draw(st.integers(0, max_padding)))
    height = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), max_size))
    width = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), max_size))
    return dict(batch=draw(st.integers(0, max_batch)), in_channels=draw(st.integers(1, max_channels)),
                out_channels=draw(st.integers(1, max_channels)), height=height, width=width, kernel=kernel,
                stride=(draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))),
                padding=padding, padding_mode=draw(st.sampled_from(["zeros", "replicate"])),
                bias=draw(st.booleans()))


@st.composite
def pool2d_configs(draw, max_batch=2, max_channels=3, max_size=7, max_kernel=3, max_stride=3):
    """A consistent pooling configuration: batch (0: unbatched), channels, height, width,
    kernel (kH, kW), stride (sH, sW) or None (stride = kernel)."""
    kernel = (draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel)))
    stride = draw(st.none() | st.tuples(st.integers(1, max_stride), st.integers(1, max_stride)))
    return dict(batch=draw(st.integers(0, max_batch)), channels=draw(st.integers(1, max_channels)),
                height=draw(st.integers(kernel[0], max_size)), width=draw(st.integers(kernel[1], max_size)),
                kernel=kernel, stride=stride)


def conv2d_inputs(cfg, rng):
    """Random x, weight, bias (bias None when cfg['bias'] is False) for a conv2d_configs() dict."""
    shape = (cfg["in_channels"], cfg["height"], cfg["width"])
    x = rng.normal(size=shape if cfg["batch"] == 0 else (cfg["batch"],) + shape)
    weight = rng.normal(size=(cfg["out_channels"], cfg["in_channels"]) + tuple(cfg["kernel"]))
    bias = rng.normal(size=cfg["out_channels"]) if cfg["bias"] else None
    return x, weight, bias


@st.composite
def small_cnns(draw, max_channels=3):
    """A small CNN and its input: dict with input shape (N, C, H, W), conv layers
    [(C_out, k, stride, padding)], a pool size after each, and the linear layer's outputs."""
    channels = draw(st.integers(1, max_channels))
    size = draw(st.integers(4, 8))
    layers, c, h = [], channels, size
    for _ in range(draw(st.integers(1, 2))):
        k = draw(st.integers(1, min(3, h)))
        out = draw(st.integers(1, max_channels))
        h = h - k + 1
        pool = draw(st.integers(1, max(1, min(2, h))))
        h = h // pool
        layers.append((out, k, pool))
        c = out
        if h < 2:
            break
    return dict(input_shape=(draw(st.integers(1, 2)), channels, size, size), convs=layers,
                features=c * h * h, classes=draw(st.integers(1, 3)))
