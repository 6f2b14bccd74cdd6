"""PyTorch parity in float64 for the PyTorch surface beyond the basics (run by `make parity`; skipped
without torch), on BOTH engines: every case runs on Tensors and on Value arrays (``values(...)``) and
must give PyTorch's values and the gradient of every input (and of every module parameter).

Covered: conv1d/conv2d with stride, padding (ints, tuples, 'valid', 'same'), dilation, groups
(depthwise included) and every padding_mode; conv_transpose1d/2d; F.pad; max_pool2d (indices too)
and avg_pool2d with their newer arguments; the losses with every reduction, weights, pos_weight,
K-dim, unbatched and class-probability targets and label smoothing; Tensor pow with a Tensor
exponent, minimum, min, view, expand; 0-d reductions and softmax; the matching nn modules.
Examples are tiny (sizes <= 6, channels <= 4, batch <= 2): Value graphs are slow.
"""
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, Value, nn, values
from tinygrad_cnn.testing import strategies

torch = pytest.importorskip("torch")
TF = torch.nn.functional
pytestmark = [pytest.mark.parity,
              pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")]

ENGINES = ("tensor", "value")
SEEDS = st.integers(0, 2 ** 32 - 1)
TOL = {"rtol": 1e-10, "atol": 1e-12}
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


# --- helpers ----------------------------------------------------------------------------------------------
def leaf(a, engine):
    """A fresh differentiable input holding ``a``: a Tensor that requires grad, or a ValueArray of leaves."""
    return Tensor(a, requires_grad=True) if engine == "tensor" else values(a)


def numbers(out):
    """The numbers of an output of either engine (a Tensor, a ValueArray or a single Value)."""
    return np.array(out.data) if isinstance(out, Value) else np.asarray(out.numbers())


def run_backward(out, G):
    """Backpropagate sum(out * G) (out itself when G is None) on either engine."""
    if isinstance(out, Tensor):
        out.backward(G)
        return
    flat = [out] if isinstance(out, Value) else list(np.asarray(out, dtype=object).flat)
    total = flat[0] if G is None else sum(v * float(g) for v, g in zip(flat, np.asarray(G).flat))
    total.backward()


def torch_backward(expected, seed):
    """Backward of torch's output: plain for a 0-d one, else against a random cotangent (returned)."""
    if expected.ndim == 0:
        expected.backward()
        return None
    G = np.random.default_rng(seed).normal(size=tuple(expected.shape))
    expected.backward(torch.tensor(G))
    return G


def torch_grads(ref, arrays):
    return [np.zeros_like(a) if r.grad is None else r.grad.numpy() for r, a in zip(ref, arrays)]


def check(ours, theirs, arrays, seed=0, engines=ENGINES, tol=TOL):
    """Run ``theirs`` on float64 torch leaves and ``ours`` on each engine's leaves made from ``arrays``;
    assert equal outputs and equal gradients of every input (backward of sum(out * G), G random,
    for a non-scalar output). Constants (targets, weights) go into the two functions' closures."""
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    expected = theirs(*ref)
    want = expected.detach().numpy()
    G = torch_backward(expected, seed)
    want_grads = torch_grads(ref, arrays)
    for engine in engines:
        mine = [leaf(a, engine) for a in arrays]
        out = ours(*mine)
        got = numbers(out)
        assert got.shape == want.shape, f"{engine}: output shape {got.shape}, torch {want.shape}"
        np.testing.assert_allclose(got, want, **tol, err_msg=f"{engine} engine: output")
        run_backward(out, G)
        for i, (m, g) in enumerate(zip(mine, want_grads)):
            np.testing.assert_allclose(m.grads(), g, **tol, err_msg=f"{engine} engine: gradient of input {i}")


def check_module(make_ours, module, x, seed=0, engines=ENGINES):
    """``module`` (a float64 torch module) against ``make_ours(engine)`` loaded with its weights:
    output, input gradient and every parameter's gradient, on each engine."""
    tx = torch.tensor(x, requires_grad=True)
    expected = module(tx)
    want = expected.detach().numpy()
    G = torch_backward(expected, seed)
    state = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    for engine in engines:
        ours = make_ours(engine)
        ours.load_state_dict(state)
        mx = leaf(x, engine)
        out = ours(mx)
        np.testing.assert_allclose(numbers(out), want, **TOL, err_msg=f"{engine} engine: output")
        run_backward(out, G)
        np.testing.assert_allclose(mx.grads(), tx.grad.numpy(), **TOL, err_msg=f"{engine} engine: input gradient")
        theirs = dict(module.named_parameters())
        assert [n for n, _ in ours.named_parameters()] == list(theirs)
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(p.grads(), theirs[name].grad.numpy(), **TOL,
                                       err_msg=f"{engine} engine: gradient of {name}")


def maybe_int(draw, values_):
    """A tuple of ints, or the one int when they are all equal and a coin says so."""
    values_ = tuple(values_)
    return values_[0] if len(set(values_)) == 1 and draw(st.booleans()) else values_


def spatial_shape(batch, channels, sizes):
    return ((batch,) if batch else ()) + (channels,) + tuple(sizes)


# --- configurations -------------------------------------------------------------------------------------------
@st.composite
def channel_groups(draw, max_channels=4):
    """(groups, C_in, C_out) with C_in, C_out <= max_channels divisible by groups; depthwise
    (C_in = groups) often."""
    groups = draw(st.integers(1, max_channels))
    per_in = 1 if draw(st.booleans()) else draw(st.integers(1, max_channels // groups))
    per_out = draw(st.integers(1, max_channels // groups))
    return groups, groups * per_in, groups * per_out


def conv_pads(padding, kernel, dilation):
    """(before, after) per spatial dim, as PyTorch pads an int, a tuple, 'valid' or 'same'."""
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "same":  # PyTorch: total d (k - 1), the smaller half before
        return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation)]
    padding = (padding,) * len(kernel) if isinstance(padding, int) else padding
    return [(p, p) for p in padding]


def torch_pad_tuple(pads):
    """F.pad's (last-dim left, right, next-to-last top, bottom, ...) for (before, after) per dim, first dim first."""
    return [side for before_after in reversed(pads) for side in before_after]


@st.composite
def conv_configs(draw, nd):
    groups, c_in, c_out = draw(channel_groups())
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    mode = draw(st.sampled_from(PADDING_MODES))
    padding = draw(st.sampled_from(["valid", "same"]) | st.integers(0, 2)
                   | st.tuples(*[st.integers(0, 2)] * nd))
    stride = (1,) * nd if padding == "same" else tuple(draw(st.integers(1, 2)) for _ in range(nd))
    pads = conv_pads(padding, kernel, dilation)
    sizes = []
    for k, d, (a, b) in zip(kernel, dilation, pads):
        low = max(1, d * (k - 1) + 1 - a - b)
        if mode == "reflect":
            low = max(low, max(a, b) + 1)
        elif mode == "circular":
            low = max(low, max(a, b))
        sizes.append(draw(st.integers(low, 6)))
    return {"nd": nd, "batch": draw(st.integers(0, 2)), "groups": groups, "c_in": c_in, "c_out": c_out,
            "kernel": kernel, "sizes": tuple(sizes), "stride": maybe_int(draw, stride), "padding": padding,
            "padding_mode": mode, "dilation": maybe_int(draw, dilation), "pads": pads, "bias": draw(st.booleans())}


def conv_arrays(cfg, rng):
    x = rng.normal(size=spatial_shape(cfg["batch"], cfg["c_in"], cfg["sizes"]))
    w = rng.normal(size=(cfg["c_out"], cfg["c_in"] // cfg["groups"]) + cfg["kernel"])
    b = rng.normal(size=cfg["c_out"])
    return x, w, b


def torch_conv(cfg):
    """PyTorch's conv for cfg: zeros padding through conv's own padding, the other modes through F.pad."""
    conv = TF.conv1d if cfg["nd"] == 1 else TF.conv2d
    opts = {"stride": cfg["stride"], "dilation": cfg["dilation"], "groups": cfg["groups"]}

    def run(x, w, b=None):
        if cfg["padding_mode"] == "zeros":
            return conv(x, w, b, padding=cfg["padding"], **opts)
        return conv(TF.pad(x, torch_pad_tuple(cfg["pads"]), mode=cfg["padding_mode"]), w, b, **opts)
    return run


@st.composite
def conv_transpose_configs(draw, nd, max_size=4):
    groups, c_in, c_out = draw(channel_groups(max_channels=4))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 3 if nd == 1 else 2)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    sizes = tuple(draw(st.integers(1, max_size)) for _ in range(nd))
    out = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1
                for n, s, p, d, k, o in zip(sizes, stride, padding, dilation, kernel, output_padding))
    assume(min(out) >= 1)
    return {"nd": nd, "batch": draw(st.integers(0, 2)), "groups": groups, "c_in": c_in, "c_out": c_out,
            "kernel": kernel, "sizes": sizes, "stride": maybe_int(draw, stride), "padding": maybe_int(draw, padding),
            "output_padding": maybe_int(draw, output_padding), "dilation": maybe_int(draw, dilation),
            "bias": draw(st.booleans())}


def conv_transpose_arrays(cfg, rng):
    x = rng.normal(size=spatial_shape(cfg["batch"], cfg["c_in"], cfg["sizes"]))
    w = rng.normal(size=(cfg["c_in"], cfg["c_out"] // cfg["groups"]) + cfg["kernel"])
    return x, w, rng.normal(size=cfg["c_out"])


@st.composite
def pool_configs(draw, kind):
    """A pooling configuration PyTorch accepts: padding <= kernel // 2 (and <= half the dilated kernel)."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if kind == "max" else (1, 1)
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    padding = tuple(draw(st.integers(0, min(k // 2, e // 2))) for k, e in zip(kernel, extent))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    sizes = tuple(draw(st.integers(max(1, e - 2 * p), 6)) for e, p in zip(extent, padding))
    cfg = {"batch": draw(st.integers(0, 2)), "channels": draw(st.integers(1, 3)), "sizes": sizes,
           "kernel": maybe_int(draw, kernel), "stride": stride if stride is None else maybe_int(draw, stride),
           "padding": maybe_int(draw, padding), "ceil_mode": draw(st.booleans())}
    if kind == "max":
        cfg["dilation"] = maybe_int(draw, dilation)
    else:
        cfg["count_include_pad"] = draw(st.booleans())
        cfg["divisor_override"] = draw(st.none() | st.integers(1, 5))
    return cfg


def pool_input(cfg, rng):
    """Distinct entries (a shuffled grid): no max-pool window holds a tie."""
    return strategies.distinct_values(rng, spatial_shape(cfg["batch"], cfg["channels"], cfg["sizes"]))


# --- convolution --------------------------------------------------------------------------------------------
def check_conv(conv, cfg, seed):
    x, w, b = conv_arrays(cfg, np.random.default_rng(seed))
    arrays = [x, w, b] if cfg["bias"] else [x, w]

    def ours(x, w, b=None):
        return conv(x, w, b, cfg["stride"], cfg["padding"], cfg["padding_mode"], dilation=cfg["dilation"],
                    groups=cfg["groups"])
    check(ours, torch_conv(cfg), arrays, seed)


@given(conv_configs(nd=2), SEEDS)
def test_conv2d_dilation_groups_padding_modes_match_torch(cfg, seed):
    check_conv(F.conv2d, cfg, seed)


@given(conv_configs(nd=1), SEEDS)
def test_conv1d_dilation_groups_padding_modes_match_torch(cfg, seed):
    check_conv(F.conv1d, cfg, seed)


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_depthwise_same_dilated_conv2d_matches_torch(mode):
    """One fixed depthwise case per padding mode: groups = C_in = 3, channel multiplier 2, 'same' with dilation 2."""
    rng = np.random.default_rng(7)
    cfg = {"nd": 2, "stride": 1, "padding": "same", "padding_mode": mode, "dilation": 2, "groups": 3,
           "pads": conv_pads("same", (3, 2), (2, 2))}
    x, w, b = rng.normal(size=(2, 3, 5, 6)), rng.normal(size=(6, 1, 3, 2)), rng.normal(size=6)
    check(lambda x, w, b: F.conv2d(x, w, b, 1, "same", mode, dilation=2, groups=3), torch_conv(cfg), [x, w, b])


@given(conv_transpose_configs(nd=2), SEEDS)
def test_conv_transpose2d_matches_torch(cfg, seed):
    x, w, b = conv_transpose_arrays(cfg, np.random.default_rng(seed))
    arrays = [x, w, b] if cfg["bias"] else [x, w]
    args = (cfg["stride"], cfg["padding"], cfg["output_padding"], cfg["groups"], cfg["dilation"])
    check(lambda x, w, b=None: F.conv_transpose2d(x, w, b, *args),
          lambda x, w, b=None: TF.conv_transpose2d(x, w, b, *args), arrays, seed)


@given(conv_transpose_configs(nd=1, max_size=5), SEEDS)
def test_conv_transpose1d_matches_torch(cfg, seed):
    x, w, b = conv_transpose_arrays(cfg, np.random.default_rng(seed))
    arrays = [x, w, b] if cfg["bias"] else [x, w]
    args = (cfg["stride"], cfg["padding"], cfg["output_padding"], cfg["groups"], cfg["dilation"])
    check(lambda x, w, b=None: F.conv_transpose1d(x, w, b, *args),
          lambda x, w, b=None: TF.conv_transpose1d(x, w, b, *args), arrays, seed)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("stride, padding, output_padding, groups, dilation",
                         [(2, 1, 1, 2, 1), (1, 0, 1, 4, 2), (3, 2, 2, 1, 2), (2, 0, 0, 2, 3)])
def test_conv_transpose_fixed_cases_match_torch(nd, stride, padding, output_padding, groups, dilation):
    """Fixed cases: output_padding up to max(stride, dilation) - 1, depthwise (groups = C_in = 4), dilation 3."""
    rng = np.random.default_rng(nd)
    x = rng.normal(size=(2, 4) + (3,) * nd)
    w, b = rng.normal(size=(4, 4 // groups) + (2, 3)[:nd]), rng.normal(size=4)
    args = (stride, padding, output_padding, groups, dilation)
    ours, theirs = (F.conv_transpose1d, TF.conv_transpose1d) if nd == 1 else (F.conv_transpose2d, TF.conv_transpose2d)
    check(lambda x, w, b: ours(x, w, b, *args), lambda x, w, b: theirs(x, w, b, *args), [x, w, b])


# --- padding ---------------------------------------------------------------------------------------------------
@st.composite
def constant_pads(draw):
    """(shape, pad) for mode 'constant': any rank, 1..rank padded dims, pads -2..2 (negative: crop;
    PyTorch crops the input first, so the two crops of a dim together leave at least one entry)."""
    shape = draw(strategies.shapes(min_dims=1, max_dims=4, max_side=4))
    pad = []
    for n in reversed(shape[len(shape) - draw(st.integers(1, len(shape))):]):
        before = draw(st.integers(-min(2, n - 1), 2))
        pad += [before, draw(st.integers(-min(2, n + min(before, 0) - 1), 2))]
    return shape, tuple(pad)


@given(constant_pads(), st.floats(-3, 3) | st.just(0.0), SEEDS)
def test_constant_pad_with_asymmetric_and_negative_pads_matches_torch(shape_pad, value, seed):
    shape, pad = shape_pad
    x = np.random.default_rng(seed).normal(size=shape)
    check(lambda x: F.pad(x, pad, "constant", value), lambda x: TF.pad(x, pad, "constant", value), [x], seed)


@pytest.mark.parametrize("size, pad", [(1, (2, -2)), (2, (2, -3)), (3, (-4, 2)), (3, (-2, -2))])
def test_constant_pad_cropping_more_than_the_input_raises_as_torch_does(size, pad):
    """PyTorch crops the input by the negative pads before it pads: crops beyond the input raise there
    even when size + left + right >= 0. Ours must raise too (not return some other shape)."""
    x = np.arange(1.0, size + 1)
    with pytest.raises(RuntimeError):
        TF.pad(torch.tensor(x), pad)
    for engine in ENGINES:
        with pytest.raises(ValueError):
            F.pad(leaf(x, engine), pad)


@st.composite
def copying_pads(draw):
    """(shape, pad, mode) for reflect/replicate/circular: the last 1 or 2 dims of a rank k+1 or k+2
    input (PyTorch's rule), pads 0..3 within what the mode allows."""
    mode = draw(st.sampled_from(["reflect", "replicate", "circular"]))
    k = draw(st.integers(1, 2))
    lead = tuple(draw(st.integers(1, 2)) for _ in range(draw(st.integers(1, 2))))
    spatial = tuple(draw(st.integers(1, 5)) for _ in range(k))
    pad = []
    for n in reversed(spatial):
        top = {"reflect": n - 1, "replicate": 3, "circular": n}[mode]
        pad += [draw(st.integers(0, min(3, top))), draw(st.integers(0, min(3, top)))]
    return lead + spatial, tuple(pad), mode


@given(copying_pads(), SEEDS)
def test_reflect_replicate_circular_pad_matches_torch(shape_pad_mode, seed):
    shape, pad, mode = shape_pad_mode
    x = np.random.default_rng(seed).normal(size=shape)
    check(lambda x: F.pad(x, pad, mode), lambda x: TF.pad(x, pad, mode), [x], seed)


# --- pooling ---------------------------------------------------------------------------------------------------
@given(pool_configs("max"), SEEDS)
def test_max_pool2d_new_arguments_and_indices_match_torch(cfg, seed):
    x = pool_input(cfg, np.random.default_rng(seed))
    args = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"], cfg["ceil_mode"])
    assume(np.isfinite(TF.max_pool2d(torch.tensor(x), *args).numpy()).all())  # no window all padding
    check(lambda x: F.max_pool2d(x, *args), lambda x: TF.max_pool2d(x, *args), [x], seed)
    want = TF.max_pool2d(torch.tensor(x), *args, return_indices=True)
    for engine in ENGINES:
        out, indices = F.max_pool2d(leaf(x, engine), *args, return_indices=True)
        np.testing.assert_allclose(numbers(out), want[0].numpy(), **TOL)
        assert np.asarray(indices).shape == tuple(want[1].shape)
        np.testing.assert_array_equal(indices, want[1].numpy(), err_msg=f"{engine} engine: indices")


@given(pool_configs("avg"), SEEDS)
def test_avg_pool2d_new_arguments_match_torch(cfg, seed):
    x = np.random.default_rng(seed).normal(size=spatial_shape(cfg["batch"], cfg["channels"], cfg["sizes"]))
    args = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["ceil_mode"], cfg["count_include_pad"],
            cfg["divisor_override"])
    check(lambda x: F.avg_pool2d(x, *args), lambda x: TF.avg_pool2d(x, *args), [x], seed)


# --- losses ------------------------------------------------------------------------------------------------------
def weight_for(kind, shape, rng, low=0.1, high=2.0):
    """None, a full-shape weight, one per last-dim entry, or a (1,) one that broadcasts."""
    sizes = {"none": None, "full": shape, "last": shape[-1:], "one": (1,)}[kind]
    return None if sizes is None else rng.uniform(low, high, size=sizes)


WEIGHT_KINDS = st.sampled_from(["none", "full", "last", "one"])


@given(strategies.shapes(max_dims=3), REDUCTIONS, WEIGHT_KINDS, SEEDS)
def test_binary_cross_entropy_reductions_and_weight_match_torch(shape, reduction, weight, seed):
    rng = np.random.default_rng(seed)
    p, t = rng.uniform(0.02, 0.98, size=shape), rng.uniform(size=shape)
    w = weight_for(weight, shape, rng)
    tw = None if w is None else torch.tensor(w)
    check(lambda p: F.binary_cross_entropy(p, t, w, reduction=reduction),
          lambda p: TF.binary_cross_entropy(p, torch.tensor(t), tw, reduction=reduction), [p], seed)


@given(strategies.shapes(max_dims=3), REDUCTIONS, WEIGHT_KINDS, st.booleans(), SEEDS)
def test_binary_cross_entropy_with_logits_weight_and_pos_weight_match_torch(shape, reduction, weight, pos, seed):
    rng = np.random.default_rng(seed)
    z, t = rng.normal(scale=3, size=shape), rng.uniform(size=shape)
    w, pw = weight_for(weight, shape, rng), rng.uniform(0.2, 3.0, size=shape[-1:]) if pos else None
    tw, tpw = (None if a is None else torch.tensor(a) for a in (w, pw))
    check(lambda z: F.binary_cross_entropy_with_logits(z, t, w, reduction=reduction, pos_weight=pw),
          lambda z: TF.binary_cross_entropy_with_logits(z, torch.tensor(t), tw, reduction=reduction, pos_weight=tpw),
          [z], seed)


@st.composite
def class_problems(draw, probabilities=True):
    """(logits shape, target) for a class loss: 'index' (N,), 'kdim' (N, d...), 'unbatched' (a 0-d
    index for a (C,) input), or class probabilities of the input's shape (batched, K-dim, unbatched)."""
    kinds = ["index", "kdim", "unbatched"] + (["probs", "probs_kdim", "probs_unbatched"] if probabilities else [])
    kind = draw(st.sampled_from(kinds))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    extra = tuple(draw(st.integers(1, 3)) for _ in range(draw(st.integers(1, 2)))) if "kdim" in kind else ()
    shape = (c,) if "unbatched" in kind else (n, c) + extra
    rng = np.random.default_rng(draw(SEEDS))
    if kind.startswith("probs"):
        e = np.exp(rng.normal(size=shape))
        target = e / e.sum(axis=0 if kind == "probs_unbatched" else 1, keepdims=True)
    elif kind == "unbatched":
        target = np.int64(rng.integers(0, c))
    else:
        target = rng.integers(0, c, size=(n,) + extra)
    return shape, np.asarray(target)


@given(class_problems(), REDUCTIONS, st.sampled_from([0.0, 0.1]) | st.floats(0, 1), SEEDS)
@example(((3,), np.array(2)), "mean", 0.1, 0)  # unbatched: a (C,) input, a 0-d class index
@example(((3,), np.array([0.2, 0.3, 0.5])), "mean", 0.0, 0)  # unbatched class probabilities
@example(((3,), np.array([0.2, 0.3, 0.5])), "sum", 0.2, 0)
def test_cross_entropy_targets_label_smoothing_and_reductions_match_torch(problem, reduction, smoothing, seed):
    shape, target = problem
    x = np.random.default_rng(seed).normal(scale=2, size=shape)
    check(lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing),
          lambda x: TF.cross_entropy(x, torch.tensor(target), reduction=reduction, label_smoothing=smoothing),
          [x], seed)


@given(class_problems(probabilities=False), REDUCTIONS, SEEDS)
def test_nll_loss_reductions_match_torch(problem, reduction, seed):
    shape, target = problem
    x = np.random.default_rng(seed).normal(size=shape)
    check(lambda x: F.nll_loss(x, target, reduction=reduction),
          lambda x: TF.nll_loss(x, torch.tensor(target), reduction=reduction), [x], seed)


@given(strategies.shapes(max_dims=3), REDUCTIONS, st.booleans(), SEEDS)
def test_mse_loss_reductions_match_torch_target_as_constant_or_graph_input(shape, reduction, graph_target, seed):
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=shape), rng.normal(size=shape)
    if graph_target:  # the target differentiable too
        check(lambda x, t: F.mse_loss(x, t, reduction=reduction),
              lambda x, t: TF.mse_loss(x, t, reduction=reduction), [x, t], seed)
    else:
        check(lambda x: F.mse_loss(x, t, reduction=reduction),
              lambda x: TF.mse_loss(x, torch.tensor(t), reduction=reduction), [x], seed)


# --- tensor methods ------------------------------------------------------------------------------------------
@st.composite
def broadcast_pairs(draw, max_dims=3):
    """Two shapes that broadcast: the second with some dims set to 1 or dropped from the front."""
    shape = draw(strategies.shapes(max_dims=max_dims, max_side=4))
    other = tuple(1 if draw(st.booleans()) else n for n in shape)[draw(st.integers(0, len(shape))):]
    return (shape, other) if draw(st.booleans()) else (other, shape)


@given(broadcast_pairs(), SEEDS)
def test_tensor_pow_with_a_tensor_exponent_matches_torch(shapes, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(0.2, 3.0, size=shapes[0]), rng.normal(size=shapes[1])
    check(lambda x, y: x ** y, lambda x, y: x ** y, [x, y], seed, engines=("tensor",))


@given(st.sampled_from([2.0, 0.5, 3, np.e]), strategies.shapes(max_dims=3), SEEDS)
def test_number_to_the_power_of_a_tensor_matches_torch(base, shape, seed):
    y = np.random.default_rng(seed).normal(size=shape)
    check(lambda y: base ** y, lambda y: base ** y, [y], seed, engines=("tensor",))


@given(broadcast_pairs(), SEEDS)
def test_minimum_matches_torch_on_both_engines(shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = shapes
    both = strategies.distinct_values(rng, (int(np.prod(a)) + int(np.prod(b)),))  # no ties anywhere
    x, y = both[:int(np.prod(a))].reshape(a), both[int(np.prod(a)):].reshape(b)
    check(lambda x, y: x.minimum(y), torch.minimum, [x, y], seed)


@given(strategies.shapes(max_dims=3), st.data(), st.booleans(), SEEDS)
def test_min_over_an_axis_matches_torch_amin_on_both_engines(shape, data, keepdims, seed):
    x = strategies.distinct_values(np.random.default_rng(seed), shape)
    axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    dims = tuple(range(len(shape))) if axis is None else axis
    check(lambda x: x.min(axis=axis, keepdims=keepdims), lambda x: torch.amin(x, dim=dims, keepdim=keepdims),
          [x], seed)


@given(strategies.shapes(max_dims=3), st.data(), SEEDS)
def test_view_matches_torch_on_both_engines(shape, data, seed):
    x = np.random.default_rng(seed).normal(size=shape)
    n = int(np.prod(shape))
    first = data.draw(st.sampled_from([d for d in range(1, n + 1) if n % d == 0]))
    new = data.draw(st.sampled_from([(n,), (-1,), (first, -1), (-1, first), (first, n // first, 1), (1, -1, 1)]))
    check(lambda x: x.view(new), lambda x: x.view(new), [x], seed)
    check(lambda x: x.view(*new), lambda x: x.view(*new), [x], seed)


@given(strategies.shapes(max_dims=3, max_side=3), st.data(), SEEDS)
def test_expand_matches_torch_on_both_engines(shape, data, seed):
    shape = tuple(1 if data.draw(st.booleans()) else n for n in shape)
    x = np.random.default_rng(seed).normal(size=shape)
    lead = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2)))
    sizes = lead + tuple(data.draw(st.integers(1, 3)) if n == 1 else data.draw(st.sampled_from([n, -1]))
                         for n in shape)
    check(lambda x: x.expand(*sizes), lambda x: x.expand(*sizes), [x], seed)
    check(lambda x: x.expand(sizes), lambda x: x.expand(sizes), [x], seed)


ZERO_D = {
    "sum(0)": (lambda x: x.sum(0), lambda x: x.sum(0)),
    "sum(-1)": (lambda x: x.sum(-1), lambda x: x.sum(-1)),
    "sum(0, keepdims)": (lambda x: x.sum(0, keepdims=True), lambda x: x.sum(0, keepdim=True)),
    "softmax(x, 0)": (lambda x: F.softmax(x, 0), lambda x: TF.softmax(x, 0)),
    "softmax(x, -1)": (lambda x: F.softmax(x, -1), lambda x: TF.softmax(x, -1)),
    "log_softmax(x, -1)": (lambda x: F.log_softmax(x, -1), lambda x: TF.log_softmax(x, -1)),
    "log_softmax(x, 0)": (lambda x: F.log_softmax(x, 0), lambda x: TF.log_softmax(x, 0)),
}


@pytest.mark.parametrize("name", ZERO_D)
@pytest.mark.parametrize("number", [-1.5, 0.0, 2.25])
def test_zero_d_sum_softmax_log_softmax_match_torch(name, number):
    ours, theirs = ZERO_D[name]
    check(ours, theirs, [np.array(number)])


# --- nn modules ------------------------------------------------------------------------------------------------
@given(st.sampled_from([1, 2]).flatmap(conv_configs), SEEDS)
@strategies.fewer_examples(2)
def test_conv1d_conv2d_modules_with_dilation_and_groups_match_torch(cfg, seed):
    x, _, _ = conv_arrays(cfg, np.random.default_rng(seed))
    kernel = cfg["kernel"] if cfg["nd"] == 2 or len(set(cfg["kernel"])) > 1 else cfg["kernel"][0]
    module = (torch.nn.Conv1d if cfg["nd"] == 1 else torch.nn.Conv2d)(
        cfg["c_in"], cfg["c_out"], kernel, cfg["stride"], cfg["padding"], cfg["dilation"], cfg["groups"], cfg["bias"],
        padding_mode=cfg["padding_mode"]).double()
    ours = nn.Conv1d if cfg["nd"] == 1 else nn.Conv2d
    check_module(lambda engine: ours(cfg["c_in"], cfg["c_out"], kernel, cfg["stride"], cfg["padding"],
                                     cfg["padding_mode"], cfg["bias"], engine=engine, dilation=cfg["dilation"],
                                     groups=cfg["groups"]), module, x, seed)


@given(conv_transpose_configs(nd=2, max_size=3), SEEDS)
@strategies.fewer_examples(2)
def test_conv_transpose2d_module_matches_torch(cfg, seed):
    x, _, _ = conv_transpose_arrays(cfg, np.random.default_rng(seed))
    args = (cfg["c_in"], cfg["c_out"], cfg["kernel"], cfg["stride"], cfg["padding"], cfg["output_padding"],
            cfg["groups"], cfg["bias"], cfg["dilation"])
    module = torch.nn.ConvTranspose2d(*args).double()
    check_module(lambda engine: nn.ConvTranspose2d(*args, engine=engine), module, x, seed)


@given(pool_configs("max"), SEEDS)
@strategies.fewer_examples(2)
def test_max_pool2d_module_with_new_arguments_matches_torch(cfg, seed):
    x = pool_input(cfg, np.random.default_rng(seed))
    args = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["dilation"])
    assume(np.isfinite(torch.nn.MaxPool2d(*args, ceil_mode=cfg["ceil_mode"])(torch.tensor(x)).numpy()).all())
    check(lambda x: nn.MaxPool2d(*args, ceil_mode=cfg["ceil_mode"])(x),
          lambda x: torch.nn.MaxPool2d(*args, ceil_mode=cfg["ceil_mode"])(x), [x], seed)
    _, want = torch.nn.MaxPool2d(*args, True, cfg["ceil_mode"])(torch.tensor(x))
    for engine in ENGINES:
        _, indices = nn.MaxPool2d(*args, True, cfg["ceil_mode"])(leaf(x, engine))
        np.testing.assert_array_equal(indices, want.numpy(), err_msg=f"{engine} engine: indices")


@given(pool_configs("avg"), SEEDS)
@strategies.fewer_examples(2)
def test_avg_pool2d_module_with_new_arguments_matches_torch(cfg, seed):
    x = np.random.default_rng(seed).normal(size=spatial_shape(cfg["batch"], cfg["channels"], cfg["sizes"]))
    args = (cfg["kernel"], cfg["stride"], cfg["padding"], cfg["ceil_mode"], cfg["count_include_pad"],
            cfg["divisor_override"])
    check(lambda x: nn.AvgPool2d(*args)(x), lambda x: torch.nn.AvgPool2d(*args)(x), [x], seed)


@given(st.sampled_from(["Softmax", "LogSoftmax"]), strategies.shapes(max_dims=3), st.data(), SEEDS)
@strategies.fewer_examples(2)
def test_softmax_modules_match_torch(name, shape, data, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(seed).normal(scale=3, size=shape)
    check(lambda x: getattr(nn, name)(dim)(x), lambda x: getattr(torch.nn, name)(dim)(x), [x], seed)
    check(lambda x: getattr(nn, name)(dim=dim)(x), lambda x: getattr(torch.nn, name)(dim=dim)(x), [x], seed)


@given(class_problems(), REDUCTIONS, st.floats(0, 1), SEEDS)
@strategies.fewer_examples(2)
def test_cross_entropy_and_nll_loss_modules_match_torch(problem, reduction, smoothing, seed):
    shape, target = problem
    x = np.random.default_rng(seed).normal(size=shape)
    tt = torch.tensor(target)
    check(lambda x: nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)(x, target),
          lambda x: torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)(x, tt), [x], seed)
    if target.dtype.kind == "i":
        check(lambda x: nn.NLLLoss(reduction=reduction)(x, target),
              lambda x: torch.nn.NLLLoss(reduction=reduction)(x, tt), [x], seed)


@given(strategies.shapes(max_dims=3), REDUCTIONS, WEIGHT_KINDS, st.booleans(), SEEDS)
@strategies.fewer_examples(2)
def test_binary_and_mse_loss_modules_match_torch(shape, reduction, weight, pos, seed):
    rng = np.random.default_rng(seed)
    z, p, t = rng.normal(scale=3, size=shape), rng.uniform(0.02, 0.98, size=shape), rng.uniform(size=shape)
    w, pw = weight_for(weight, shape, rng), rng.uniform(0.2, 3.0, size=shape[-1:]) if pos else None
    tw, tpw, tt = None if w is None else torch.tensor(w), None if pw is None else torch.tensor(pw), torch.tensor(t)
    check(lambda z: nn.BCEWithLogitsLoss(w, reduction, pw)(z, t),
          lambda z: torch.nn.BCEWithLogitsLoss(tw, reduction=reduction, pos_weight=tpw)(z, tt), [z], seed)
    check(lambda z: nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=pw)(z, t),
          lambda z: torch.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=tpw)(z, tt), [z], seed)
    check(lambda p: nn.BCELoss(w, reduction)(p, t),
          lambda p: torch.nn.BCELoss(tw, reduction=reduction)(p, tt), [p], seed)
    check(lambda z: nn.MSELoss(reduction)(z, t), lambda z: torch.nn.MSELoss(reduction=reduction)(z, tt), [z], seed)
