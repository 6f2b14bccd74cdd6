"""PyTorch's surface of nn.functional and Tensor/ValueArray, without PyTorch: conv dilation, groups
and padding modes, transposed convs, F.pad, the pooling options, the loss options, x ** y and
the other new Tensor ops, Dropout and train()/eval(), and the dim checks that used to give silent
wrong results.

Each op is checked three ways: its value (and gradients) against a plain-loop reference written
from PyTorch's definitions (tests/nn/nn_loops.py), its gradients against central differences in
float64 (a non-scalar output through a random cotangent G: sum(out * G)), and the Value-array
path against the Tensor path to 1e-12. Hypothesis draws small configurations; the Value engine
gets the tiniest ones.
"""
import math
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import nn_loops as ref
from engines import assert_engines_agree, assert_gradcheck, batched, cotangent, on_tensors, on_values, unbatched
import tinygrad_cnn.nn as nn
import tinygrad_cnn.backend as backend
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, values
from tinygrad_cnn.testing import gradcheck, strategies

CLOSE = dict(rtol=1e-10, atol=1e-12)   # the loop reference and the package: the same sums in other orders
SEEDS = st.integers(0, 2 ** 32 - 1)
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PAD_MODES = ("constant", "reflect", "replicate", "circular")


def as_given(values_):
    """A per-dim tuple as one int when its entries agree (so both forms get tested), else as the tuple."""
    values_ = tuple(values_)
    return values_[0] if len(set(values_)) == 1 else values_


# --- conv1d / conv2d: dilation, groups, padding modes, 'same' ------------------------------------------------
@st.composite
def conv_configs(draw, nd, max_size=6, max_channels=4, max_batch=2, max_kernel=3):
    """A conv configuration PyTorch accepts: groups (depthwise among them: one input channel per group),
    kernel, dilation (the dilated kernel fits in max_size), stride, padding (ints, or 'valid'/'same'),
    padding_mode, sizes that suit the mode (reflect: pad < size; circular: pad <= size), batch (0:
    unbatched), bias."""
    groups = draw(st.integers(1, max_channels))
    depthwise = draw(st.booleans())
    per_in = 1 if depthwise else draw(st.integers(1, max_channels // groups))
    per_out = draw(st.integers(1, max_channels // groups))
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, min(3, (max_size - 1) // (k - 1)) if k > 1 else 1)) for k in kernel)
    mode = draw(st.sampled_from(PADDING_MODES))
    padding = draw(st.sampled_from(["ints", "ints", "valid", "same"]))
    if padding == "ints":
        padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
        pads = tuple((p, p) for p in padding)
        stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    elif padding == "valid":
        pads = ((0, 0),) * nd
        stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    else:  # PyTorch's 'same': d (k - 1) in all, the extra one (when odd) at the end
        pads = tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
        stride = (1,) * nd
    sizes = []
    for k, d, (a, b) in zip(kernel, dilation, pads):
        least = max(1, d * (k - 1) + 1 - a - b, max(a, b) + 1 if mode == "reflect" else 1,
                    max(a, b) if mode == "circular" else 1)
        sizes.append(draw(st.integers(least, max(least, max_size))))
    return dict(batch=draw(st.integers(0, max_batch)), groups=groups, in_channels=groups * per_in,
                out_channels=groups * per_out, sizes=tuple(sizes), kernel=kernel, dilation=dilation, stride=stride,
                padding=padding, pads=pads, mode=mode, bias=draw(st.booleans()))


def conv_inputs(cfg, rng, transposed=False):
    """Input, weight and bias for a conv configuration; a transposed conv's weight is (C_in, C_out / groups, ...)."""
    lead = () if cfg["batch"] == 0 else (cfg["batch"],)
    x = rng.normal(size=lead + (cfg["in_channels"],) + cfg["sizes"])
    channels = (cfg["in_channels"], cfg["out_channels"] // cfg["groups"]) if transposed else (
        cfg["out_channels"], cfg["in_channels"] // cfg["groups"])
    w = rng.normal(size=channels + cfg["kernel"])
    b = rng.normal(size=cfg["out_channels"]) if cfg["bias"] else None
    return x, w, b


def conv_fn(cfg):
    nd = len(cfg["kernel"])
    conv = F.conv1d if nd == 1 else F.conv2d
    padding = cfg["padding"] if isinstance(cfg["padding"], str) else as_given(cfg["padding"])
    stride, dilation = as_given(cfg["stride"]), as_given(cfg["dilation"])
    return lambda x, w, b: conv(x, w, b, stride, padding, cfg["mode"], dilation=dilation, groups=cfg["groups"])


def conv_loops(cfg):
    if len(cfg["kernel"]) == 1:
        return lambda x, w, b, G: ref.conv1d_full_ref(x, w, b, cfg["stride"][0], cfg["pads"][0], cfg["mode"],
                                                      cfg["dilation"][0], cfg["groups"], G)
    return lambda x, w, b, G: ref.conv2d_full_ref(x, w, b, cfg["stride"], cfg["pads"], cfg["mode"], cfg["dilation"],
                                                  cfg["groups"], G)


def check_against_loops(fn, loops, inputs, batch, rng):
    """fn's value and gradients against the loop reference (which takes batched inputs) and central
    differences; returns the cotangent G used."""
    first, *rest = inputs
    expected, *_ = loops(batched(first, batch), *rest, None)
    G = unbatched(rng.normal(size=expected.shape), batch)
    _, *expected_grads = loops(batched(first, batch), *rest, batched(G, batch))
    out, grads_ = on_tensors(fn, inputs, G)
    np.testing.assert_allclose(out, unbatched(expected, batch), **CLOSE)
    expected_grads[0] = unbatched(expected_grads[0], batch)
    for a, got, want in zip(inputs, grads_, expected_grads):
        if a is not None:
            np.testing.assert_allclose(got, want, **CLOSE)
    assert_gradcheck(fn, inputs, G)
    return G


@pytest.mark.parametrize("nd", [1, 2], ids=["conv1d", "conv2d"])
@given(data=st.data(), seed=SEEDS)
def test_conv_dilation_groups_and_padding_modes_match_loops_and_finite_differences(nd, data, seed):
    cfg = data.draw(conv_configs(nd))
    rng = np.random.default_rng(seed)
    check_against_loops(conv_fn(cfg), conv_loops(cfg), list(conv_inputs(cfg, rng)), cfg["batch"], rng)


@pytest.mark.parametrize("nd", [1, 2], ids=["conv1d", "conv2d"])
@given(data=st.data(), seed=SEEDS)
def test_conv_dilation_groups_and_padding_modes_on_values_equal_tensors(nd, data, seed):
    cfg = data.draw(conv_configs(nd, max_size=4, max_batch=1, max_kernel=2 if nd == 2 else 3))
    rng = np.random.default_rng(seed)
    x, w, b = conv_inputs(cfg, rng)
    assert_engines_agree(conv_fn(cfg), [x, w, b], cotangent(rng, conv_fn(cfg), x, w, b))


@pytest.mark.parametrize("nd", [1, 2], ids=["conv1d", "conv2d"])
@pytest.mark.parametrize("mode", PADDING_MODES)
@given(kernel=st.integers(1, 3), dilation=st.integers(1, 3), size=st.integers(0, 3), seed=SEEDS)
def test_same_padding_with_dilation_keeps_the_size_and_pads_the_extra_one_at_the_end(nd, mode, kernel, dilation,
                                                                                      size, seed):
    rng = np.random.default_rng(seed)
    total = dilation * (kernel - 1)
    size += total + 1  # reflect needs pads below the size
    x, w = rng.normal(size=(1, 2) + (size,) * nd), rng.normal(size=(3, 2) + (kernel,) * nd)
    conv = F.conv1d if nd == 1 else F.conv2d
    out = conv(Tensor(x), Tensor(w), None, 1, "same", mode, dilation=dilation)
    assert out.shape == (1, 3) + (size,) * nd
    pads = (total // 2, total - total // 2)
    if nd == 1:
        expected, *_ = ref.conv1d_full_ref(x, w, None, 1, pads, mode, dilation, 1)
    else:
        expected, *_ = ref.conv2d_full_ref(x, w, None, (1, 1), (pads, pads), mode, (dilation, dilation), 1)
    np.testing.assert_allclose(out.data, expected, **CLOSE)


def test_depthwise_conv2d_convolves_each_channel_with_its_own_filters():
    rng = np.random.default_rng(7)
    x, w = rng.normal(size=(2, 3, 5, 5)), rng.normal(size=(6, 1, 3, 3))   # 2 filters per channel
    out = F.conv2d(Tensor(x), Tensor(w), None, 1, 1, "reflect", groups=3).data
    for c in range(3):
        alone = F.conv2d(Tensor(x[:, c:c + 1]), Tensor(w[2 * c:2 * c + 2]), None, 1, 1, "reflect").data
        np.testing.assert_allclose(out[:, 2 * c:2 * c + 2], alone, **CLOSE)


def test_conv_signature_sixth_positional_is_padding_mode_and_dilation_groups_are_keyword_only():
    rng = np.random.default_rng(0)
    x, w = Tensor(rng.normal(size=(1, 2, 5, 5))), Tensor(rng.normal(size=(2, 1, 3, 3)))
    by_position = F.conv2d(x, w, None, 1, 1, "circular", dilation=2, groups=2)
    by_keyword = F.conv2d(x, w, bias=None, stride=1, padding=1, padding_mode="circular", dilation=2, groups=2)
    np.testing.assert_array_equal(by_position.data, by_keyword.data)
    expected, *_ = ref.conv2d_full_ref(x.data, w.data, None, (1, 1), ((1, 1), (1, 1)), "circular", (2, 2), 2)
    np.testing.assert_allclose(by_position.data, expected, **CLOSE)
    with pytest.raises(TypeError):
        F.conv2d(x, w, None, 1, 1, "zeros", 2)
    with pytest.raises(TypeError):
        F.conv1d(Tensor(rng.normal(size=(1, 2, 5))), Tensor(rng.normal(size=(2, 1, 3))), None, 1, 1, "zeros", 2)


# --- conv_transpose1d / conv_transpose2d --------------------------------------------------------------------
@st.composite
def conv_transpose_configs(draw, nd, max_size=4, max_channels=4, max_batch=2, max_kernel=3, adjoint=False):
    """stride, padding, output_padding (< max(stride, dilation), or < stride with adjoint=True: then the
    conv of the output has the input's size), groups, dilation; the output size at least 1."""
    groups = draw(st.integers(1, max_channels))
    per_in, per_out = draw(st.integers(1, max_channels // groups)), draw(st.integers(1, max_channels // groups))
    kernel = tuple(draw(st.integers(1, max_kernel)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    sizes = tuple(draw(st.integers(1, max_size)) for _ in range(nd))
    output_padding = tuple(draw(st.integers(0, (s if adjoint else max(s, d)) - 1)) for s, d in zip(stride, dilation))
    padding = tuple(min(draw(st.integers(0, 2)), ((n - 1) * s + d * (k - 1) + o) // 2)
                    for n, s, d, k, o in zip(sizes, stride, dilation, kernel, output_padding))
    return dict(batch=draw(st.integers(0, max_batch)), groups=groups, in_channels=groups * per_in,
                out_channels=groups * per_out, sizes=sizes, kernel=kernel, stride=stride, dilation=dilation,
                padding=padding, output_padding=output_padding, bias=draw(st.booleans()))


def conv_transpose_inputs(cfg, rng):
    return conv_inputs(cfg, rng, transposed=True)


def conv_transpose_fn(cfg):
    nd = len(cfg["kernel"])
    conv = F.conv_transpose1d if nd == 1 else F.conv_transpose2d
    args = [as_given(cfg[k]) for k in ("stride", "padding", "output_padding")]
    return lambda x, w, b: conv(x, w, b, *args, cfg["groups"], as_given(cfg["dilation"]))


def conv_transpose_loops(cfg):
    keys = ("stride", "padding", "output_padding")
    if len(cfg["kernel"]) == 1:
        s, p, o = (cfg[k][0] for k in keys)
        return lambda x, w, b, G: ref.conv_transpose1d_ref(x, w, b, s, p, o, cfg["groups"], cfg["dilation"][0], G)
    s, p, o = (cfg[k] for k in keys)
    return lambda x, w, b, G: ref.conv_transpose2d_ref(x, w, b, s, p, o, cfg["groups"], cfg["dilation"], G)


@pytest.mark.parametrize("nd", [1, 2], ids=["conv_transpose1d", "conv_transpose2d"])
@given(data=st.data(), seed=SEEDS)
def test_conv_transpose_matches_the_scatter_loops_and_finite_differences(nd, data, seed):
    cfg = data.draw(conv_transpose_configs(nd))
    rng = np.random.default_rng(seed)
    check_against_loops(conv_transpose_fn(cfg), conv_transpose_loops(cfg), list(conv_transpose_inputs(cfg, rng)),
                        cfg["batch"], rng)


@pytest.mark.parametrize("nd", [1, 2], ids=["conv_transpose1d", "conv_transpose2d"])
@given(data=st.data(), seed=SEEDS)
def test_conv_transpose_on_values_equals_tensors(nd, data, seed):
    cfg = data.draw(conv_transpose_configs(nd, max_size=3, max_batch=1, max_kernel=2))
    rng = np.random.default_rng(seed)
    x, w, b = conv_transpose_inputs(cfg, rng)
    assert_engines_agree(conv_transpose_fn(cfg), [x, w, b], cotangent(rng, conv_transpose_fn(cfg), x, w, b))


@pytest.mark.parametrize("nd", [1, 2], ids=["conv_transpose1d", "conv_transpose2d"])
@given(data=st.data(), seed=SEEDS)
def test_conv_transpose_is_the_adjoint_of_conv_and_its_input_gradient(nd, data, seed):
    """<conv(x, w), y> = <x, conv_transpose(y, w)>, and conv_transpose(y, w) is d <conv(x, w), y> / dx."""
    cfg = data.draw(conv_transpose_configs(nd, adjoint=True))
    rng = np.random.default_rng(seed)
    y, w, _ = conv_transpose_inputs(cfg, rng)
    transposed = conv_transpose_fn(cfg)(Tensor(y), Tensor(w), None).data
    x = Tensor(rng.normal(size=transposed.shape), requires_grad=True)
    conv = F.conv1d if nd == 1 else F.conv2d
    out = conv(x, Tensor(w), None, as_given(cfg["stride"]), as_given(cfg["padding"]),
               dilation=as_given(cfg["dilation"]), groups=cfg["groups"])
    assert out.shape == y.shape
    np.testing.assert_allclose(np.sum(out.data * y), np.sum(x.data * transposed), rtol=1e-10, atol=1e-10)
    (out * y).sum().backward()
    np.testing.assert_allclose(x.grad, transposed, **CLOSE)


# --- F.pad ----------------------------------------------------------------------------------------------
@st.composite
def pad_configs(draw, max_side=4, max_dims=4):
    """x's shape, pads in PyTorch's order (last dim first) for 1..3 trailing dims, asymmetric and negative
    (crops), mode and value; sizes within what the mode allows (what is left after the crops: at least 1,
    and reflect pads below it, circular ones up to it)."""
    shape = draw(strategies.shapes(min_dims=1, max_dims=max_dims, max_side=max_side))
    mode = draw(st.sampled_from(PAD_MODES))
    padded = draw(st.integers(1, min(3, len(shape))))
    pad = []
    for n in reversed(shape[len(shape) - padded:]):
        before, after = draw(st.integers(-(n - 1), 3)), draw(st.integers(-(n - 1), 3))
        if max(-before, 0) + max(-after, 0) > n - 1:  # keep at least one entry
            after = max(after, 0)
        kept = n - max(-before, 0) - max(-after, 0)
        limit = kept - 1 if mode == "reflect" else kept if mode == "circular" else 3
        pad += [min(before, limit), min(after, limit)]
    return dict(shape=shape, pad=tuple(pad), mode=mode, value=draw(st.sampled_from([0.0, -1.5, 2.0])))


@given(pad_configs(), SEEDS)
def test_pad_matches_index_loops_finite_differences_and_the_value_path(cfg, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=cfg["shape"])
    fn = lambda x: F.pad(x, cfg["pad"], cfg["mode"], cfg["value"])  # noqa: E731
    expected, _ = ref.pad_ref(x, cfg["pad"], cfg["mode"], cfg["value"])
    G = rng.normal(size=expected.shape)
    _, dx = ref.pad_ref(x, cfg["pad"], cfg["mode"], cfg["value"], G)
    out, (gx,) = on_tensors(fn, [x], G)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)   # copies: exact
    np.testing.assert_allclose(gx, dx, **CLOSE)
    assert_gradcheck(fn, [x], G)
    assert_engines_agree(fn, [x], G)


def test_pad_order_is_last_dim_first_as_pytorch():
    x = np.arange(6.0).reshape(2, 3)
    out = F.pad(Tensor(x), (1, 0, 0, 2)).data   # width: 1 left, 0 right; height: 0 top, 2 bottom
    np.testing.assert_array_equal(out, [[0, 0, 1, 2], [0, 3, 4, 5], [0, 0, 0, 0], [0, 0, 0, 0]])
    out = F.pad(Tensor(x), (-1, 1), "reflect").data
    np.testing.assert_array_equal(out, [[1, 2, 1], [4, 5, 4]])
    out = F.pad(Tensor(x), (0, 0, 1, -1), "circular").data
    np.testing.assert_array_equal(out, [[0, 1, 2], [0, 1, 2]])


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_reflect_pad_past_a_crop_on_the_other_side_mirrors_the_input_as_pytorch(engine):
    """PyTorch reflects about the input's edge, the crop on the other side notwithstanding:
    F.pad(tensor([0., 1, 2, 3]), (-2, 2), 'reflect') == [2, 3, 2, 1] (the 1 comes from the cropped part)."""
    x = np.arange(4.0)
    expected, _ = ref.pad_ref(x, (-2, 2), "reflect")
    np.testing.assert_array_equal(expected, [2, 3, 2, 1])
    X = Tensor(x) if engine == "tensor" else values(x)
    np.testing.assert_array_equal((F.pad(X, (-2, 2), "reflect")).numbers(), expected)


PAD_ERRORS = {  # name: (shape, pad, mode, error, words in the message)
    "reflect too large, last dim": ((1, 2, 3), (3, 0), "reflect", ValueError, ["dim 2", "reflect"]),
    "reflect too large, dim 1": ((1, 2, 3), (0, 0, 0, 2), "reflect", ValueError, ["dim 1", "reflect"]),
    "reflect as large as the dim": ((2, 4), (1, 4), "reflect", ValueError, ["dim 1"]),
    "circular wraps twice": ((2, 3), (0, 0, 3, 0), "circular", ValueError, ["dim 0", "circular"]),
    "odd number of pads": ((2, 3), (1, 1, 1), "constant", ValueError, ["even"]),
    "more pads than dims": ((3,), (1, 1, 1, 1), "constant", ValueError, ["pad"]),
    "crop more than the dim": ((2, 3), (-2, -2), "constant", ValueError, ["crop"]),
    "unknown mode": ((2, 3), (1, 1), "mirror", ValueError, ["mode"]),
}


@pytest.mark.parametrize("engine", ["tensor", "value"])
@pytest.mark.parametrize("name", PAD_ERRORS)
def test_pad_errors_name_the_problem(name, engine):
    shape, pad, mode, error, words = PAD_ERRORS[name]
    x = np.ones(shape)
    with pytest.raises(error) as e:
        F.pad(Tensor(x) if engine == "tensor" else values(x), pad, mode)
    for word in words:
        assert word in str(e.value)


# --- max_pool2d and avg_pool2d with PyTorch's options -------------------------------------------------------
@st.composite
def pool_configs(draw, max_size=6, max_channels=3, max_batch=2, dilation=True):
    """kernel, stride (None: the kernel), padding (at most half the kernel, as PyTorch: kernel // 2),
    dilation, ceil_mode, sizes that fit the dilated kernel once padded; batch 0 is unbatched."""
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(2))
    dil = tuple(draw(st.integers(1, 2)) if dilation else 1 for _ in range(2))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    least = [max(1, d * (k - 1) + 1 - 2 * p) for k, d, p in zip(kernel, dil, padding)]
    sizes = tuple(draw(st.integers(n, max(n, max_size))) for n in least)
    return dict(batch=draw(st.integers(0, max_batch)), channels=draw(st.integers(1, max_channels)), sizes=sizes,
                kernel=kernel, stride=stride, padding=padding, dilation=dil, ceil_mode=draw(st.booleans()))


def pool_input(cfg, rng):
    lead = () if cfg["batch"] == 0 else (cfg["batch"],)
    return strategies.distinct_values(rng, lead + (cfg["channels"],) + cfg["sizes"])  # one arg-max per window


def max_pool_fn(cfg, return_indices=False):
    stride = None if cfg["stride"] is None else as_given(cfg["stride"])
    return lambda x: F.max_pool2d(x, as_given(cfg["kernel"]), stride, as_given(cfg["padding"]),
                                  as_given(cfg["dilation"]), cfg["ceil_mode"], return_indices)


def max_pool_loops(cfg, x, G=None):
    stride = cfg["kernel"] if cfg["stride"] is None else cfg["stride"]
    out, indices, dx = ref.max_pool2d_full_ref(batched(x, cfg["batch"]), cfg["kernel"], stride, cfg["padding"],
                                               cfg["dilation"], cfg["ceil_mode"], None if G is None else
                                               batched(G, cfg["batch"]))
    return unbatched(out, cfg["batch"]), unbatched(indices, cfg["batch"]), unbatched(dx, cfg["batch"])


@contextmanager
def reductions_by(way):
    """Pool numpy's way or by elementwise ufuncs over slices (the two ways of backend.reduce)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "_MANY", 0 if way == "slices" else 10 ** 9)
        yield


@pytest.mark.parametrize("way", ["numpy", "slices"])
@given(pool_configs(), SEEDS)
def test_max_pool2d_options_match_loops_finite_differences_and_indices(way, cfg, seed):
    rng = np.random.default_rng(seed)
    x = pool_input(cfg, rng)
    expected, indices, _ = max_pool_loops(cfg, x)
    assume(np.isfinite(expected).all())  # no dilated window entirely in the padding (PyTorch leaves it undefined)
    G = rng.normal(size=expected.shape)
    _, _, dx = max_pool_loops(cfg, x, G)
    with reductions_by(way):
        out, (gx,) = on_tensors(max_pool_fn(cfg), [x], G)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_allclose(gx, dx, **CLOSE)
    pooled, where = max_pool_fn(cfg, return_indices=True)(Tensor(x))
    np.testing.assert_array_equal(pooled.data, expected)
    assert where.dtype == np.int64
    np.testing.assert_array_equal(where, indices)
    assert_gradcheck(max_pool_fn(cfg), [x], G)


@given(pool_configs(max_size=4, max_channels=2, max_batch=1), SEEDS)
def test_max_pool2d_options_on_values_equal_tensors_indices_too(cfg, seed):
    rng = np.random.default_rng(seed)
    x = pool_input(cfg, rng)
    expected, indices, _ = max_pool_loops(cfg, x)
    assume(np.isfinite(expected).all())
    assert_engines_agree(max_pool_fn(cfg), [x], rng.normal(size=expected.shape))
    _, where = max_pool_fn(cfg, return_indices=True)(values(x))
    np.testing.assert_array_equal(where, indices)


@pytest.mark.parametrize("size, kernel, stride, padding, floor, ceil", [
    (5, 2, 2, 0, 2, 3),    # ceil_mode adds the window that starts at 4, inside the input
    (3, 2, 2, 1, 2, 2),    # ... but not one that would start at 3, in the right padding
    (4, 3, 2, 1, 2, 3),
    (6, 3, 3, 0, 2, 2),    # exact fit: ceil_mode changes nothing
    (2, 1, 2, 0, 1, 1),
])
def test_pool_output_sizes_floor_and_ceil_as_pytorch(size, kernel, stride, padding, floor, ceil):
    x = Tensor(np.arange(size * size, dtype=float).reshape(1, size, size))
    for ceil_mode, n in ((False, floor), (True, ceil)):
        assert ref.pool_output_size(size, kernel, stride, padding, 1, ceil_mode) == n
        assert F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode).shape == (1, n, n)
        assert F.avg_pool2d(x, kernel, stride, padding, ceil_mode).shape == (1, n, n)


@st.composite
def avg_pool_configs(draw, **kwargs):
    cfg = draw(pool_configs(dilation=False, **kwargs))
    return dict(cfg, count_include_pad=draw(st.booleans()), divisor_override=draw(st.none() | st.integers(1, 5)))


def avg_pool_fn(cfg):
    stride = None if cfg["stride"] is None else as_given(cfg["stride"])
    return lambda x: F.avg_pool2d(x, as_given(cfg["kernel"]), stride, as_given(cfg["padding"]),
                                  cfg["ceil_mode"], cfg["count_include_pad"], cfg["divisor_override"])


def avg_pool_loops(cfg, x, G):
    stride = cfg["kernel"] if cfg["stride"] is None else cfg["stride"]
    return ref.avg_pool2d_full_ref(x, cfg["kernel"], stride, cfg["padding"], cfg["ceil_mode"],
                                   cfg["count_include_pad"], cfg["divisor_override"], G)


@pytest.mark.parametrize("way", ["numpy", "slices"])
@given(avg_pool_configs(), SEEDS)
def test_avg_pool2d_options_match_loops_and_finite_differences(way, cfg, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=((cfg["batch"],) if cfg["batch"] else ()) + (cfg["channels"],) + cfg["sizes"])
    with reductions_by(way):
        check_against_loops(avg_pool_fn(cfg), lambda x, G: avg_pool_loops(cfg, x, G), [x], cfg["batch"], rng)


@given(avg_pool_configs(max_size=4, max_channels=2, max_batch=1), SEEDS)
def test_avg_pool2d_options_on_values_equal_tensors(cfg, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=((cfg["batch"],) if cfg["batch"] else ()) + (cfg["channels"],) + cfg["sizes"])
    assert_engines_agree(avg_pool_fn(cfg), [x], cotangent(rng, avg_pool_fn(cfg), x))


def test_avg_pool2d_divisor_counts_padding_only_with_count_include_pad_and_never_the_ceil_overhang():
    x = Tensor(np.ones((1, 3, 3)))
    # kernel 2, stride 2, padding 1, ceil_mode: windows rows -1..0 and 1..2 (no overhang); cols the same
    np.testing.assert_allclose(F.avg_pool2d(x, 2, 2, 1, True, True).data, [[[0.25, 0.5], [0.5, 1.0]]])
    np.testing.assert_allclose(F.avg_pool2d(x, 2, 2, 1, True, False).data, np.ones((1, 2, 2)))
    # kernel 2, stride 2, no padding, ceil_mode on 3: the last window is rows 2..3, row 3 past the input
    np.testing.assert_allclose(F.avg_pool2d(x, 2, 2, 0, True, True).data, np.ones((1, 2, 2)))
    np.testing.assert_allclose(F.avg_pool2d(x, 2, 2, 0, True, True, divisor_override=4).data,
                               [[[1.0, 0.5], [0.5, 0.25]]])


# --- losses -------------------------------------------------------------------------------------------
REDUCTIONS = ("mean", "sum", "none")
CLASS_SHAPES = st.sampled_from([(), (1,), (2,), (2, 3), (1, 2, 2)])   # the extra dims: () is unbatched (C,)


def class_input_shape(lead, classes):
    """(C,) for lead (), else (N, C, d...) for lead (N, d...)."""
    return (classes,) if lead == () else lead[:1] + (classes,) + lead[1:]


def loss_check(fn, arrays, expected, reduction, rng, engines=True):
    """A loss's value against its reference, gradients by central differences, and the Value path."""
    G = None if reduction != "none" or np.shape(expected) == () else rng.normal(size=np.shape(expected))
    out, _ = on_tensors(fn, arrays, G)
    assert np.shape(out) == np.shape(expected)
    np.testing.assert_allclose(out, expected, **CLOSE)
    assert_gradcheck(fn, arrays, G)
    if engines:
        assert_engines_agree(fn, arrays, G)


@given(CLASS_SHAPES, st.integers(1, 4), st.sampled_from(REDUCTIONS), SEEDS)
def test_nll_loss_reductions_k_dim_and_unbatched_match_loops(lead, classes, reduction, seed):
    rng = np.random.default_rng(seed)
    logp = np.log(rng.dirichlet(np.ones(classes), size=lead if lead else None))
    logp = np.moveaxis(logp, -1, 1) if lead else logp
    target = rng.integers(0, classes, size=lead)
    fn = lambda x: F.nll_loss(x, target, reduction=reduction)  # noqa: E731
    loss_check(fn, [logp], ref.nll_loss_ref(logp, target, reduction), reduction, rng)


@given(CLASS_SHAPES, st.integers(1, 4), st.sampled_from(REDUCTIONS), st.sampled_from([0.0, 0.1, 0.4, 1.0]),
       st.booleans(), SEEDS)
def test_cross_entropy_smoothing_probability_targets_k_dim_and_unbatched_match_loops(lead, classes, reduction,
                                                                                    smoothing, soft, seed):
    rng = np.random.default_rng(seed)
    shape = class_input_shape(lead, classes)
    logits = rng.normal(scale=2, size=shape)
    if soft:  # class probabilities, on the class dim
        target = rng.dirichlet(np.ones(classes), size=lead if lead else None)
        target = np.moveaxis(target, -1, 1) if lead else target
    else:
        target = rng.integers(0, classes, size=lead)
    fn = lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing)  # noqa: E731
    loss_check(fn, [logits], ref.cross_entropy_full_ref(logits, target, reduction, smoothing), reduction, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_of_an_unbatched_value_array_with_class_probabilities(reduction, smoothing):
    x, target = np.array([0.5, -1.0, 2.0]), np.array([0.2, 0.3, 0.5])
    fn = lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing)  # noqa: E731
    expected = ref.cross_entropy_full_ref(x, target, reduction, smoothing)
    out, _ = on_values(fn, [x])
    np.testing.assert_allclose(out, expected, **CLOSE)
    assert_engines_agree(fn, [x])


def test_cross_entropy_with_smoothing_of_one_ignores_the_target():
    logits = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    a = F.cross_entropy(Tensor(logits), [0, 1], label_smoothing=1.0).item()
    b = F.cross_entropy(Tensor(logits), [2, 2], label_smoothing=1.0).item()
    assert a == pytest.approx(b, rel=1e-14)
    assert a == pytest.approx(ref.cross_entropy_full_ref(logits, np.full((2, 3), 1 / 3)), rel=1e-12)


LOSS_SHAPES = st.sampled_from([(), (3,), (2, 3), (2, 1, 3)])
WEIGHTS = st.sampled_from(["none", "scalar", "last", "full"])


def loss_weight(kind, shape, rng):
    """A weight that broadcasts against ``shape``: None, a number, one per last-dim entry, or per element."""
    if kind == "none":
        return None
    if kind == "scalar":
        return np.array(rng.uniform(0.5, 2))
    return rng.uniform(0.5, 2, size=shape[-1:] if kind == "last" else shape)


@given(LOSS_SHAPES, WEIGHTS, st.sampled_from(REDUCTIONS), st.booleans(), SEEDS)
def test_binary_cross_entropy_weight_and_reductions_match_loops(shape, weight, reduction, soft, seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, size=shape)
    t = rng.uniform(0, 1, size=shape) if soft else rng.integers(0, 2, size=shape).astype(float)
    w = loss_weight(weight, shape, rng)
    fn = lambda p: F.binary_cross_entropy(p, t, w, reduction=reduction)  # noqa: E731
    loss_check(fn, [p], ref.bce_full_ref(p, t, w, reduction), reduction, rng)


@given(LOSS_SHAPES, WEIGHTS, st.booleans(), st.sampled_from(REDUCTIONS), SEEDS)
def test_binary_cross_entropy_with_logits_pos_weight_weight_and_reductions_match_loops(shape, weight, positive,
                                                                                       reduction, seed):
    rng = np.random.default_rng(seed)
    z, t = rng.normal(scale=3, size=shape), rng.uniform(0, 1, size=shape)
    w = loss_weight(weight, shape, rng)
    pw = rng.uniform(0.2, 4, size=shape[-1:]) if positive else None
    fn = lambda z: F.binary_cross_entropy_with_logits(z, t, w, reduction=reduction, pos_weight=pw)  # noqa: E731
    loss_check(fn, [z], ref.bce_logits_full_ref(z, t, w, pw, reduction), reduction, rng)


@pytest.mark.parametrize("engine", ["tensor", "value"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits_is_stable_with_pos_weight_for_logits_up_to_1e4(engine, reduction):
    z = np.array([[1e4, -1e4, 3e3, -3e3], [745.0, -745.0, 0.0, 40.0]])
    t = np.array([[0.0, 1.0, 0.3, 1.0], [1.0, 0.0, 0.5, 0.0]])
    pw, w = np.array([2.0, 0.5, 3.0, 1.0]), np.array([[1.0], [0.25]])
    G = np.linspace(-1, 1, z.size).reshape(z.shape) if reduction == "none" else None
    fn = lambda z: F.binary_cross_entropy_with_logits(z, t, w, reduction=reduction, pos_weight=pw)  # noqa: E731
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        out, (gz,) = (on_tensors if engine == "tensor" else on_values)(fn, [z], G)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(gz))
    np.testing.assert_allclose(out, ref.bce_logits_full_ref(z, t, w, pw, reduction), rtol=1e-14)
    # d/dz of w (pw t softplus(-z) + (1 - t) softplus(z)) = w ((1 - t) sigmoid(z) - pw t sigmoid(-z))
    sig = lambda u: np.exp(-np.logaddexp(0, -u))  # noqa: E731
    d = w * ((1 - t) * sig(z) - pw * t * sig(-z)) * (1 / z.size if reduction == "mean" else 1)
    np.testing.assert_allclose(gz, d if G is None else d * G, rtol=1e-12, atol=1e-300)


@given(LOSS_SHAPES, st.sampled_from(REDUCTIONS), SEEDS)
def test_mse_loss_reductions_match_loops(shape, reduction, seed):
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=shape), rng.normal(size=shape)
    fn = lambda x: F.mse_loss(x, t, reduction=reduction)  # noqa: E731
    loss_check(fn, [x], ref.mse_full_ref(x, t, reduction), reduction, rng)


# --- x ** y, 2 ** x, minimum, min, view, expand on Tensors and Value arrays ----------------------------------------
def pow_ref(x, y, G):
    """x ** y elementwise (y broadcast to x's shape), and d/dx = y x^(y - 1), d/dy = x^y ln x (summed over
    the dims y was broadcast along)."""
    yb = np.broadcast_to(y, x.shape)
    out, dx, dy = np.zeros(x.shape), np.zeros(x.shape), np.zeros(x.shape)
    for k in np.ndindex(x.shape):
        out[k] = math.pow(x[k], yb[k])
        dx[k] = G[k] * yb[k] * math.pow(x[k], yb[k] - 1)
        dy[k] = G[k] * out[k] * math.log(x[k])
    lead = dy.ndim - y.ndim
    dy = dy.sum(axis=tuple(range(lead)))
    return out, dx, dy.sum(axis=tuple(i for i, n in enumerate(y.shape) if n == 1), keepdims=True)


@st.composite
def pow_arrays(draw, max_side=3):
    shape = draw(strategies.shapes(max_dims=3, max_side=max_side))
    y_shape = draw(st.sampled_from([shape, shape[1:], tuple(1 if i % 2 else n for i, n in enumerate(shape))]))
    rng = np.random.default_rng(draw(SEEDS))
    return rng.uniform(0.3, 2.5, size=shape), rng.uniform(-2, 2, size=y_shape)


@given(pow_arrays())
def test_tensor_power_with_a_tensor_exponent_matches_loops_and_finite_differences(arrays):
    x, y = arrays
    G = np.random.default_rng(x.size).normal(size=x.shape)
    expected, dx, dy = pow_ref(x, y, G)
    out, (gx, gy) = on_tensors(lambda x, y: x ** y, [x, y], G)
    np.testing.assert_allclose(out, expected, **CLOSE)
    np.testing.assert_allclose(gx, dx, **CLOSE)
    np.testing.assert_allclose(gy, dy.reshape(y.shape), **CLOSE)
    assert_gradcheck(lambda x, y: x ** y, [x, y], G)


@given(pow_arrays(max_side=2))
def test_value_array_power_with_a_value_array_exponent_equals_tensors(arrays):
    x, y = arrays
    assert_engines_agree(lambda x, y: x ** y, [x, y], np.random.default_rng(0).normal(size=x.shape))


@given(pow_arrays(max_side=2))
def test_value_array_power_with_an_array_of_numbers_as_exponent_equals_tensors(arrays):
    x, y = arrays
    assert_engines_agree(lambda x: x ** y, [x], np.random.default_rng(0).normal(size=x.shape))


@given(strategies.arrays(shape=strategies.shapes(max_dims=3, max_side=3)))
def test_a_number_to_a_tensor_power_matches_loops_finite_differences_and_values(x):
    G = np.linspace(-1, 1, x.size).reshape(x.shape)
    expected = np.array([math.pow(2.0, v) for v in x.flat]).reshape(x.shape)
    out, (gx,) = on_tensors(lambda x: 2.0 ** x, [x], G)
    np.testing.assert_allclose(out, expected, **CLOSE)
    np.testing.assert_allclose(gx, G * expected * math.log(2.0), **CLOSE)
    assert_gradcheck(lambda x: 2.0 ** x, [x], G)


@given(strategies.arrays(shape=strategies.shapes(max_dims=2, max_side=3)))
def test_a_number_to_a_value_array_power_equals_tensors(x):
    assert_engines_agree(lambda x: 2.0 ** x, [x], np.linspace(-1, 1, x.size).reshape(x.shape))


def distinct_pair(seed, shape):
    """Two arrays of ``shape`` with every entry of both pairwise >= 0.01 apart (no ties for min)."""
    both = strategies.distinct_values(np.random.default_rng(seed), (2,) + shape)
    return both[0], both[1]


@given(strategies.shapes(max_dims=3, max_side=3), SEEDS)
def test_minimum_matches_loops_finite_differences_and_values(shape, seed):
    x, y = distinct_pair(seed, shape)
    G = np.random.default_rng(seed).normal(size=shape)
    expected = np.array([min(a, b) for a, b in zip(x.flat, y.flat)]).reshape(shape)
    out, (gx, gy) = on_tensors(lambda x, y: x.minimum(y), [x, y], G)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(gx, np.where(x < y, G, 0))
    np.testing.assert_array_equal(gy, np.where(x < y, 0, G))
    assert_gradcheck(lambda x, y: x.minimum(y), [x, y], G)
    assert_engines_agree(lambda x, y: x.minimum(y), [x, y], G)
    assert_engines_agree(lambda x: x.minimum(0.1), [x], G)   # a number as the other operand


def test_minimum_on_a_tie_sends_the_gradient_to_self_on_both_engines():
    x = np.array([1.0, 2.0, 3.0])
    for run in (on_tensors, on_values):
        _, (gx, gy) = run(lambda x, y: x.minimum(y), [x, x.copy()], np.ones(3))
        np.testing.assert_array_equal(gx, [1, 1, 1])
        np.testing.assert_array_equal(gy, [0, 0, 0])


@given(strategies.shapes(min_dims=1, max_dims=3, max_side=3), st.data(), st.booleans(), SEEDS)
def test_min_along_dims_matches_loops_finite_differences_and_values(shape, data, keepdims, seed):
    x = strategies.distinct_values(np.random.default_rng(seed), shape)
    axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    fn = lambda x: x.min(axis, keepdims)  # noqa: E731
    dims = range(len(shape)) if axis is None else [axis % len(shape)]
    kept = tuple(1 if d in dims else n for d, n in enumerate(shape))
    expected, where = np.full(kept, np.inf), np.zeros(shape, dtype=bool)
    for k in np.ndindex(shape):   # the smallest of each group, and where it is
        group = tuple(0 if d in dims else i for d, i in enumerate(k))
        if x[k] < expected[group]:
            expected[group] = x[k]
    for k in np.ndindex(shape):
        where[k] = x[k] == expected[tuple(0 if d in dims else i for d, i in enumerate(k))]
    expected = expected if keepdims else expected.reshape([n for d, n in enumerate(shape) if d not in dims])
    G = np.random.default_rng(seed).normal(size=expected.shape) if expected.ndim else None
    out, (gx,) = on_tensors(fn, [x], G)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(gx, where * (1.0 if G is None else np.reshape(G, kept)))
    assert_gradcheck(fn, [x], G)
    assert_engines_agree(fn, [x], G)


def test_min_on_a_tie_sends_the_gradient_to_the_first_smallest_on_both_engines():
    x = np.array([[2.0, 1.0, 1.0], [0.0, 0.0, 5.0]])
    for run in (on_tensors, on_values):
        _, (gx,) = run(lambda x: x.min(1), [x], np.ones(2))
        np.testing.assert_array_equal(gx, [[0, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize("shape, new", [((2, 3, 4), (6, 4)), ((2, 3, 4), (-1,)), ((2, 3, 4), (4, -1, 2)),
                                        ((6,), (1, 2, 3)), ((1,), ())])
def test_view_is_a_row_major_reshape_on_both_engines(shape, new):
    x = np.arange(float(np.prod(shape))).reshape(shape) - 3
    G = np.random.default_rng(0).normal(size=x.reshape(new).shape)
    for run in (on_tensors, on_values):
        out, (gx,) = run(lambda x: x.view(*new) if new else x.view(()), [x], G)
        np.testing.assert_array_equal(out, x.reshape(new))
        np.testing.assert_array_equal(gx, G.reshape(shape))
    assert_gradcheck(lambda x: x.view(new), [x], G)
    assert_engines_agree(lambda x: x.view(new), [x], G)


@pytest.mark.parametrize("shape, sizes", [((3, 1), (2, 3, 4)), ((3, 1), (-1, 5)), ((1,), (4,)), ((), (2, 2)),
                                          ((2, 1, 3), (2, 2, 2, -1))])
def test_expand_broadcasts_and_sums_the_gradient_back_on_both_engines(shape, sizes):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape)
    target = tuple(n if s == -1 else s for s, n in zip(sizes, (None,) * (len(sizes) - len(shape)) + shape))
    G = rng.normal(size=target)
    expected, dx = np.zeros(target), np.zeros(shape)
    lead = len(target) - len(shape)
    for k in np.ndindex(target):   # each output entry reads x at the index with broadcast dims at 0
        src = tuple(0 if n == 1 else i for i, n in zip(k[lead:], shape))
        expected[k] = x[src]
        dx[src] += G[k]
    for run in (on_tensors, on_values):
        out, (gx,) = run(lambda x: x.expand(*sizes), [x], G)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_allclose(gx, dx, **CLOSE)
    assert_gradcheck(lambda x: x.expand(sizes), [x], G)
    assert_engines_agree(lambda x: x.expand(sizes), [x], G)


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_expand_to_a_shape_that_does_not_broadcast_raises(engine):
    x = Tensor(np.ones((2, 3))) if engine == "tensor" else values(np.ones((2, 3)))
    for sizes in ((4, 3), (2, 3, 3), (3,)):
        with pytest.raises(ValueError, match="expand"):
            x.expand(*sizes)


# --- Dropout, train() and eval() --------------------------------------------------------------------------
ENGINES = ("tensor", "value")


def leaf(data, engine):
    return Tensor(data, requires_grad=True) if engine == "tensor" else values(data)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_in_training_zeroes_about_p_and_scales_the_rest_exactly(engine, p):
    shape = (100, 100) if engine == "tensor" else (20, 20)
    x = np.random.default_rng(3).uniform(0.5, 2, size=shape)   # no zeros of its own
    X = leaf(x, engine)
    out = nn.Dropout(p, seed=11)(X)
    y = out.numbers()
    dropped = y == 0
    # the fraction dropped: binomial, within 5 standard deviations
    assert abs(dropped.mean() - p) <= 5 * math.sqrt(p * (1 - p) / x.size)
    np.testing.assert_allclose(y[~dropped], x[~dropped] / (1 - p), rtol=1e-15, atol=0)
    ones = (nn.Dropout(p, seed=11)(leaf(np.ones(shape), engine))).numbers()
    np.testing.assert_array_equal(ones[ones != 0], 1 / (1 - p))   # the exact scale
    np.testing.assert_array_equal(ones == 0, dropped)              # the same seed: the same mask
    G = np.random.default_rng(4).normal(size=shape)
    (out * G).sum().backward()
    np.testing.assert_allclose(X.grads(), np.where(dropped, 0, G / (1 - p)), rtol=1e-15, atol=0)


@pytest.mark.parametrize("engine", ENGINES)
def test_dropout_with_a_seed_repeats_its_masks_and_draws_new_ones_each_call(engine):
    x = np.ones((6, 7))
    a, b, c = nn.Dropout(0.5, seed=5), nn.Dropout(0.5, seed=5), nn.Dropout(0.5, seed=6)
    first = [(a(leaf(x, engine))).numbers() for _ in range(3)]
    second = [(b(leaf(x, engine))).numbers() for _ in range(3)]
    for u, v in zip(first, second):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(first[0], first[1])
    assert not np.array_equal(first[0], (c(leaf(x, engine))).numbers())


def test_dropout_masks_are_the_same_on_both_engines_for_one_seed():
    x = np.random.default_rng(0).normal(size=(3, 5))
    G = np.random.default_rng(1).normal(size=(3, 5))
    assert_engines_agree(lambda x: nn.Dropout(0.3, seed=9)(x), [x], G)


@pytest.mark.parametrize("engine", ENGINES)
def test_dropout_in_eval_mode_and_with_p_0_is_the_identity(engine):
    x = np.random.default_rng(2).normal(size=(4, 5))
    for module in (nn.Dropout(0.5, seed=1).eval(), nn.Dropout(0.0, seed=1), nn.Dropout(1.0, seed=1).eval()):
        X = leaf(x, engine)
        out = module(X)
        np.testing.assert_array_equal(out.numbers(), x)
        (out * 2.0).sum().backward()
        np.testing.assert_array_equal(X.grads(), np.full(x.shape, 2.0))


@pytest.mark.parametrize("engine", ENGINES)
def test_dropout_with_p_1_zeroes_everything_without_nan_or_warnings(engine):
    x = np.random.default_rng(2).normal(size=(4, 5))
    X = leaf(x, engine)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        out = nn.Dropout(1.0, seed=1)(X)
        out.sum().backward()
    np.testing.assert_array_equal(out.numbers(), np.zeros(x.shape))
    np.testing.assert_array_equal(X.grads(), np.zeros(x.shape))


@pytest.mark.parametrize("p", [-0.1, 1.5, True, "0.5"])
def test_dropout_refuses_a_p_that_is_not_a_probability(p):
    with pytest.raises(ValueError, match="p"):
        nn.Dropout(p)
    with pytest.raises(ValueError, match="p"):
        F.dropout(Tensor(np.ones(3)), p)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.5, seed=0)
        self.inner = nn.Sequential(nn.Linear(4, 4, rng=np.random.default_rng(0)), nn.Dropout(0.5, seed=1))

    def forward(self, x):
        return self.inner(self.drop(x))


def test_train_and_eval_reach_every_nested_module_and_return_the_module():
    model = nn.Sequential(Block(), nn.ReLU(), nn.Sequential(nn.Sequential(nn.Dropout(0.2, seed=2))))
    modules = [m for _, m in model.named_modules()]
    assert len(modules) == 10 and all(m.training for m in modules)
    assert model.eval() is model
    assert not any(m.training for m in modules)
    x = Tensor(np.random.default_rng(0).normal(size=(3, 4)))
    np.testing.assert_array_equal(model(x).data, model(x).data)   # no dropout anywhere: deterministic
    np.testing.assert_array_equal(model(x).data, F.relu(model[0].inner[0](x)).data)
    assert model.train() is model and all(m.training for m in modules)
    model[0].train(False)
    assert not model[0].drop.training and not model[0].inner[1].training and model[2][0][0].training
    assert model.train(True) is model and all(m.training for m in modules)


# --- the fixed silent wrong results: negative permutes, out-of-range dims, 0-d tensors ---------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_permute_with_negative_dims_backpropagates_the_transposed_cotangent(engine):
    rng = np.random.default_rng(0)
    data = rng.random((3, 4, 5, 6))
    x = Tensor(data, requires_grad=True) if engine == "tensor" else values(data)
    out = x.permute(-2, -1, 1, 0)
    assert out.shape == (5, 6, 4, 3)
    G = rng.normal(size=(5, 6, 4, 3))
    expected_out, expected_grad = np.zeros((5, 6, 4, 3)), np.zeros((3, 4, 5, 6))
    for a, b, c, d in np.ndindex(3, 4, 5, 6):   # out[c, d, b, a] = x[a, b, c, d]
        expected_out[c, d, b, a] = data[a, b, c, d]
        expected_grad[a, b, c, d] = G[c, d, b, a]
    np.testing.assert_array_equal(out.numbers(), expected_out)
    (out * G).sum().backward()
    assert x.grads().shape == (3, 4, 5, 6)
    np.testing.assert_array_equal(x.grads(), expected_grad)


DIM_OPS = {  # name: fn(x, dim), for the ops that take a dim (or axis), on a 4-d input
    "sum": lambda x, d: x.sum(d),
    "sum tuple": lambda x, d: x.sum((0, d)),
    "sum keepdims": lambda x, d: x.sum(d, keepdims=True),
    "mean": lambda x, d: x.mean(d),
    "max": lambda x, d: x.max(d),
    "min": lambda x, d: x.min(d),
    "softmax": lambda x, d: F.softmax(x, d),
    "log_softmax": lambda x, d: F.log_softmax(x, d),
    "flatten start_dim": lambda x, d: x.flatten(d),
    "flatten end_dim": lambda x, d: x.flatten(0, d),
    "F.flatten": lambda x, d: F.flatten(x, d),
    "permute": lambda x, d: x.permute(0, 1, 2, d),
    "transpose first": lambda x, d: x.transpose(d, 1),
    "transpose second": lambda x, d: x.transpose(0, d),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dim", [4, 5, -5, 100])
@pytest.mark.parametrize("name", DIM_OPS)
def test_a_dim_out_of_range_raises_index_error(name, dim, engine):
    data = np.random.default_rng(0).random((2, 3, 2, 2))
    x = Tensor(data, requires_grad=True) if engine == "tensor" else values(data)
    with pytest.raises(IndexError):
        DIM_OPS[name](x, dim)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", [n for n in DIM_OPS if n not in ("sum tuple", "permute")])
def test_a_negative_dim_in_range_counts_from_the_end(name, engine):
    data = np.random.default_rng(0).random((2, 3, 2, 2))
    x = Tensor(data) if engine == "tensor" else values(data)
    for d in range(-4, 0):
        np.testing.assert_array_equal((DIM_OPS[name](x, d)).numbers(), (DIM_OPS[name](x, d + 4)).numbers())


@pytest.mark.parametrize("engine", ENGINES)
def test_0_d_inputs_take_dim_0_and_minus_1_with_gradients(engine):
    def scalar():
        return Tensor(2.5, requires_grad=True) if engine == "tensor" else values(2.5)
    for fn, value, grad in [(lambda x: x.sum(0), 2.5, 1.0), (lambda x: x.sum(-1), 2.5, 1.0),
                            (lambda x: x.mean(0), 2.5, 1.0), (lambda x: x.max(-1), 2.5, 1.0),
                            (lambda x: x.min(0), 2.5, 1.0), (lambda x: F.softmax(x, 0), 1.0, 0.0),
                            (lambda x: F.log_softmax(x, -1), 0.0, 0.0), (lambda x: F.softmax(x, -1), 1.0, 0.0)]:
        x = scalar()
        out = fn(x)
        assert np.shape(out.numbers()) == ()
        assert float(out.numbers()) == value
        (out * 3.0).backward()
        assert float(np.asarray(x.grads())) == 3.0 * grad


@pytest.mark.parametrize("fn", [lambda x: x.sum(0), lambda x: x.sum(-1), lambda x: F.softmax(x, 0),
                                lambda x: F.log_softmax(x, -1)], ids=["sum 0", "sum -1", "softmax", "log_softmax"])
def test_0_d_ops_pass_gradcheck(fn):
    assert gradcheck(lambda x: fn(x) * 1.5, [Tensor(0.7, requires_grad=True)], atol=1e-6, rtol=1e-5)


ZERO_D_DIM_OPS = {name: DIM_OPS[name] for name in ("sum", "sum keepdims", "mean", "max", "min", "softmax",
                                                      "log_softmax", "flatten start_dim", "flatten end_dim",
                                                      "F.flatten")}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dim", [1, -2])
@pytest.mark.parametrize("name", ZERO_D_DIM_OPS)
def test_0_d_inputs_refuse_other_dims_as_pytorch(name, dim, engine):
    """A 0-d input has the dims 0 and -1 only: torch.softmax(torch.tensor(2.5), 1) raises IndexError."""
    x = Tensor(2.5) if engine == "tensor" else values(2.5)
    with pytest.raises(IndexError):
        ZERO_D_DIM_OPS[name](x, dim)
