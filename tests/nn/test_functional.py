"""nn.functional on both engines: every op's value and gradient against plain-loop references
(tests/nn/nn_loops.py) and central finite differences, over generated shapes, strides,
paddings, padding modes and channels; and the Value-array path against the Tensor path."""
import math
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nn_loops as ref
from engines import assert_engines_agree, assert_gradcheck, batched, on_tensors, on_values, output_shape, unbatched
import tinygrad_cnn.nn.functional as F
import tinygrad_cnn.backend as backend
from tinygrad_cnn import Tensor, Value, values
from tinygrad_cnn.autograd import layer
from tinygrad_cnn.testing import strategies

CLOSE = dict(rtol=1e-10, atol=1e-12)   # two float64 computations of the same sums, in other orders
SEEDS = st.integers(0, 2 ** 32 - 1)


@contextmanager
def reductions_by(way):
    """Pool numpy's way or by elementwise ufuncs over slices (the two ways of backend.reduce)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "_MANY", 0 if way == "slices" else 10 ** 9)
        yield


def conv_pads(padding, kernel):
    """((before, after), ...) per spatial dim for an int/tuple, 'valid' or 'same' padding."""
    if padding == "valid":
        return tuple((0, 0) for _ in kernel)
    if padding == "same":
        return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
    padding = (padding,) * len(kernel) if isinstance(padding, int) else padding
    return tuple((p, p) for p in padding)


def as_given(pair):
    """A (h, w) pair as an int when both agree (the int form is tested too), else as the pair."""
    return pair[0] if isinstance(pair, tuple) and pair[0] == pair[1] else pair


# --- conv2d ---------------------------------------------------------------------------------------------
@given(strategies.conv2d_configs(string_padding=True), SEEDS)
def test_conv2d_value_and_gradients_match_loops_and_finite_differences(cfg, seed):
    rng = np.random.default_rng(seed)
    x, w, b = strategies.conv2d_inputs(cfg, rng)
    stride, padding = as_given(cfg["stride"]), as_given(cfg["padding"])
    pads = conv_pads(cfg["padding"], cfg["kernel"])

    def conv(x, w, b):
        return F.conv2d(x, w, b, stride=stride, padding=padding, padding_mode=cfg["padding_mode"])

    def loops(x, w, b, G):
        return ref.conv2d_ref(x, w, b, cfg["stride"], pads, cfg["padding_mode"], G)
    check_conv(conv, loops, [x, w, b], cfg["batch"], rng)


def check_conv(conv, loops, inputs, batch, rng):
    """conv's value and gradients against the loop reference and central differences; returns
    the output gradient used."""
    x, w, b = inputs
    expected, *_ = loops(batched(x, batch), w, b, None)
    G = unbatched(rng.normal(size=expected.shape), batch)
    _, dx, dw, db = loops(batched(x, batch), w, b, batched(G, batch))
    out, (gx, gw, gb) = on_tensors(conv, inputs, G)
    np.testing.assert_allclose(out, unbatched(expected, batch), **CLOSE)
    np.testing.assert_allclose(gx, unbatched(dx, batch), **CLOSE)
    np.testing.assert_allclose(gw, dw, **CLOSE)
    if b is not None:
        np.testing.assert_allclose(gb, db, **CLOSE)
    assert_gradcheck(conv, inputs, G)
    return G


@given(strategies.conv2d_configs(max_channels=2, max_size=4, string_padding=True), SEEDS)
def test_conv2d_on_values_equals_conv2d_on_tensors(cfg, seed):
    rng = np.random.default_rng(seed)
    x, w, b = strategies.conv2d_inputs(cfg, rng)
    conv = lambda x, w, b: F.conv2d(x, w, b, cfg["stride"], cfg["padding"], cfg["padding_mode"])  # noqa: E731
    assert_engines_agree(conv, [x, w, b], rng.normal(size=output_shape(conv, x, w, b)))


def test_conv2d_on_values_has_one_node_per_multiply_and_add():
    X, W = values(np.arange(9.0).reshape(1, 1, 3, 3), "X"), values([[[[1.0, -1.0], [-1.0, 1.0]]]], "F")
    out = F.conv2d(X, W)
    ops = [node.op for node in out.sum().topo_order()]
    # 4 outputs, each 4 products summed by 3 adds; then 3 adds for the sum of the 4 outputs
    assert ops.count("*") == 16 and ops.count("+") == 4 * 3 + 3
    assert {node.name for node in out.sum().topo_order() if not node.parents} == {
        f"X[0,0,{i},{j}]" for i in range(3) for j in range(3)} | {f"F[0,0,{i},{j}]" for i in range(2) for j in range(2)}


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), SEEDS)
def test_conv2d_of_an_unbatched_input_is_the_batched_result_for_a_batch_of_one(c, o, k, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(c, 5, 6)), rng.normal(size=(o, c, k, k)), rng.normal(size=o)
    one = F.conv2d(Tensor(x), Tensor(w), Tensor(b), padding=1)
    assert one.shape == (o, 8 - k, 9 - k)
    np.testing.assert_array_equal(one.data, F.conv2d(Tensor(x[None]), Tensor(w), Tensor(b), padding=1).data[0])


# --- conv1d ---------------------------------------------------------------------------------------------
@st.composite
def conv1d_configs(draw, max_size=7):
    kernel, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.integers(0, 2) | st.sampled_from(["valid", "same"]))
    stride = 1 if padding == "same" else stride
    length = draw(st.integers(max(1, kernel - 2 * (padding if isinstance(padding, int) else 0)), max_size))
    return dict(batch=draw(st.integers(0, 2)), c=draw(st.integers(1, 3)), o=draw(st.integers(1, 3)), length=length,
                kernel=kernel, stride=stride, padding=padding, mode=draw(st.sampled_from(["zeros", "replicate"])),
                bias=draw(st.booleans()))


@given(conv1d_configs(), SEEDS)
def test_conv1d_value_and_gradients_match_loops_finite_differences_and_values(cfg, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(cfg["c"], cfg["length"]) if cfg["batch"] == 0 else (cfg["batch"], cfg["c"], cfg["length"]))
    w, b = rng.normal(size=(cfg["o"], cfg["c"], cfg["kernel"])), rng.normal(size=cfg["o"]) if cfg["bias"] else None
    (pads,) = conv_pads(cfg["padding"], (cfg["kernel"],))
    conv = lambda x, w, b: F.conv1d(x, w, b, cfg["stride"], cfg["padding"], cfg["mode"])  # noqa: E731
    loops = lambda x, w, b, G: ref.conv1d_ref(x, w, b, cfg["stride"], pads, cfg["mode"], G)  # noqa: E731
    G = check_conv(conv, loops, [x, w, b], cfg["batch"], rng)
    assert_engines_agree(conv, [x, w, b], G)


# --- pooling --------------------------------------------------------------------------------------------
def pool_fn(cfg):
    stride = cfg["stride"] if cfg["stride"] is None else as_given(cfg["stride"])
    pool = F.max_pool2d if cfg["mode"] == "max" else F.avg_pool2d
    return lambda x: pool(x, as_given(cfg["kernel"]), stride)


@pytest.mark.parametrize("way", ["numpy", "slices"])
@given(strategies.pool2d_configs(), SEEDS)
def test_pools_match_loops_finite_differences_and_the_value_path(way, cfg, seed):
    rng = np.random.default_rng(seed)
    x = strategies.pool2d_input(cfg, rng)  # entries far apart: one arg-max per window
    stride = cfg["kernel"] if cfg["stride"] is None else cfg["stride"]
    G = rng.normal(size=output_shape(pool_fn(cfg), x))
    expected, dx = ref.pool2d_ref(batched(x, cfg["batch"]), cfg["kernel"], stride, cfg["mode"],
                                  batched(G, cfg["batch"]))
    with reductions_by(way):
        out, (gx,) = on_tensors(pool_fn(cfg), [x], G)
    np.testing.assert_allclose(out, unbatched(expected, cfg["batch"]), **CLOSE)
    np.testing.assert_allclose(gx, unbatched(dx, cfg["batch"]), **CLOSE)
    assert_gradcheck(pool_fn(cfg), [x], G)
    assert_engines_agree(pool_fn(cfg), [x], G)


@pytest.mark.parametrize("way", ["numpy", "slices"])
@given(strategies.pool2d_configs(max_batch=1, max_channels=2), SEEDS)
def test_max_pool_tie_sends_the_gradient_to_the_first_largest_in_row_major_order_on_both_engines(way, cfg, seed):
    rng = np.random.default_rng(seed)
    shape = (cfg["channels"], cfg["height"], cfg["width"])
    x = rng.integers(0, 2, size=shape if cfg["batch"] == 0 else (cfg["batch"],) + shape).astype(float)  # many ties
    cfg = dict(cfg, mode="max")
    stride = cfg["kernel"] if cfg["stride"] is None else cfg["stride"]
    G = rng.uniform(1, 2, size=output_shape(pool_fn(cfg), x))
    _, dx = ref.pool2d_ref(batched(x, cfg["batch"]), cfg["kernel"], stride, "max", batched(G, cfg["batch"]))
    with reductions_by(way):
        for run in (on_tensors, on_values):
            _, (gx,) = run(pool_fn(cfg), [x], G)  # overlapping windows add in another order: 1e-15
            np.testing.assert_allclose(gx, unbatched(dx, cfg["batch"]), rtol=1e-15, atol=0)


def test_max_pool_of_a_constant_window_picks_its_top_left_entry():
    x = np.ones((1, 1, 4, 4))
    for run in (on_tensors, on_values):
        _, (gx,) = run(lambda x: F.max_pool2d(x, 2), [x], np.ones((1, 1, 2, 2)))
        np.testing.assert_array_equal(gx[0, 0], [[1, 0, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]])


# --- linear, flatten, activations ------------------------------------------------------------------------
@given(st.integers(0, 3), st.integers(1, 4), st.integers(1, 4), st.booleans(), SEEDS)
def test_linear_matches_loops_finite_differences_and_the_value_path(n, i, o, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, i) if n else (i,))    # n = 0: a single unbatched vector
    w, b = rng.normal(size=(o, i)), rng.normal(size=o) if bias else None
    G = rng.normal(size=(n, o) if n else (o,))
    expected, dx, dw, db = ref.linear_ref(x.reshape(-1, i), w, b, G.reshape(-1, o))
    out, (gx, gw, gb) = on_tensors(F.linear, [x, w, b], G)
    np.testing.assert_allclose(out, expected.reshape(G.shape), **CLOSE)
    np.testing.assert_allclose(gx, dx.reshape(x.shape), **CLOSE)
    np.testing.assert_allclose(gw, dw, **CLOSE)
    if bias:
        np.testing.assert_allclose(gb, db, **CLOSE)
    assert_gradcheck(F.linear, [x, w, b], G)
    assert_engines_agree(F.linear, [x, w, b], G)


@given(strategies.arrays(shape=strategies.shapes(min_dims=2, max_dims=4)), st.data())
def test_flatten_keeps_the_numbers_in_order_on_both_engines(x, data):
    start = data.draw(st.integers(-x.ndim, x.ndim - 1))
    flat = x.reshape(x.shape[:start % x.ndim] + (-1,))
    G = np.random.default_rng(0).normal(size=flat.shape)
    out, (gx,) = on_tensors(lambda x: F.flatten(x, start), [x], G)
    np.testing.assert_array_equal(out, flat)
    np.testing.assert_array_equal(gx, G.reshape(x.shape))
    assert_engines_agree(lambda x: F.flatten(x, start), [x], G)


def np_sigmoid(x):
    return np.exp(-np.logaddexp(0, -x))


ACTIVATIONS = {  # name: (fn, numpy value, numpy derivative), kinks avoided by the inputs
    "relu": (F.relu, lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                   lambda x: np.where(x > 0, 1.0, 0.2)),
    "leaky_relu default": (F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), lambda x: np.where(x > 0, 1.0, 0.01)),
    "sigmoid": (F.sigmoid, np_sigmoid, lambda x: np_sigmoid(x) * (1 - np_sigmoid(x))),
    "tanh": (F.tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
}


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(x=strategies.arrays(elements=strategies.finite_floats(away_from=(0.0,))))
def test_activations_match_numpy_finite_differences_and_the_value_path(name, x):
    fn, value, derivative = ACTIVATIONS[name]
    G = np.linspace(-1, 1, x.size).reshape(x.shape)
    out, (gx,) = on_tensors(fn, [x], G)
    np.testing.assert_allclose(out, value(x), **CLOSE)
    np.testing.assert_allclose(gx, G * derivative(x), **CLOSE)
    assert_gradcheck(fn, [x], G)
    assert_engines_agree(fn, [x], G)


@pytest.mark.parametrize("x", [-1e308, -1e4, -800.0, 0.0, 800.0, 1e4, 1e308])
def test_sigmoid_is_finite_for_any_finite_input_on_both_engines(x):
    for run in (on_tensors, on_values):
        out, (gx,) = run(F.sigmoid, [np.array([x])], np.ones(1))
        assert np.all(np.isfinite(out)) and np.all(np.isfinite(gx))
        np.testing.assert_allclose(out, np_sigmoid(np.array([x])), rtol=1e-15)


# --- softmax and log_softmax ------------------------------------------------------------------------------
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@given(x=strategies.arrays(shape=strategies.shapes(max_dims=3)), data=st.data())
def test_softmax_and_log_softmax_match_loops_finite_differences_and_the_value_path(log, x, data):
    dim = data.draw(st.integers(-x.ndim, x.ndim - 1))
    fn = (lambda x: F.log_softmax(x, dim)) if log else (lambda x: F.softmax(x, dim))
    G = np.random.default_rng(x.size).normal(size=x.shape)
    expected, dx = ref.softmax_ref(x, dim, G, log=log)
    out, (gx,) = on_tensors(fn, [x], G)
    np.testing.assert_allclose(out, expected, **CLOSE)
    np.testing.assert_allclose(gx, dx, **CLOSE)
    assert_gradcheck(fn, [x], G)
    assert_engines_agree(fn, [x], G)


def test_softmax_of_huge_logits_stays_finite():
    x = np.array([[1000.0, 0.0, -1000.0]])
    out, (gx,) = on_tensors(lambda x: F.log_softmax(x, 1), [x], np.ones((1, 3)))
    np.testing.assert_allclose(out, [[0.0, -1000.0, -2000.0]])
    assert np.all(np.isfinite(gx))


# --- losses ---------------------------------------------------------------------------------------------
LOSS_SHAPES = strategies.shapes(max_dims=3, max_side=3)


@given(LOSS_SHAPES, st.booleans(), SEEDS)
def test_binary_cross_entropy_matches_loops_finite_differences_and_the_value_path(shape, soft, seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.05, 0.95, size=shape)
    t = rng.uniform(0, 1, size=shape) if soft else rng.integers(0, 2, size=shape).astype(float)
    expected, dp = ref.bce_ref(p, t)
    loss, (gp,) = on_tensors(lambda p: F.binary_cross_entropy(p, t), [p])
    np.testing.assert_allclose(loss, expected, **CLOSE)
    np.testing.assert_allclose(gp, dp, **CLOSE)
    assert_gradcheck(lambda p: F.binary_cross_entropy(p, t), [p])
    assert_engines_agree(lambda p: F.binary_cross_entropy(p, t), [p])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_clamps_each_log_at_minus_100_without_nan(dtype):
    p, t = np.array([0.0, 1.0, 1.0, 0.0, 0.5]), np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    expected = (100 + 100 + 0 + 0 + math.log(2)) / 5
    loss, (gp,) = on_tensors(lambda p: F.binary_cross_entropy(p, t), [p], dtype=dtype)
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss, expected, rtol=1e-6 if dtype == np.float32 else 1e-15)
    # where a log is clamped it is constant: no gradient, and no 0 * inf = nan
    np.testing.assert_allclose(gp, [0.0, 0.0, -0.2, 0.2, -0.4], rtol=1e-6)
    loss_v, (gv,) = on_values(lambda p: F.binary_cross_entropy(p, t), [p])
    np.testing.assert_allclose(loss_v, expected, rtol=1e-15)
    np.testing.assert_allclose(gv, [0.0, 0.0, -0.2, 0.2, -0.4], rtol=1e-15)


def test_binary_cross_entropy_of_probabilities_below_exp_minus_100_is_clamped():
    p = np.array([1e-50, 1e-300, 5e-324])
    loss, (gp,) = on_tensors(lambda p: F.binary_cross_entropy(p, np.ones(3)), [p])
    assert loss == 100.0 and np.all(gp == 0)


@given(LOSS_SHAPES, SEEDS)
def test_binary_cross_entropy_with_logits_matches_loops_finite_differences_and_the_value_path(shape, seed):
    rng = np.random.default_rng(seed)
    z, t = rng.normal(scale=3, size=shape), rng.uniform(0, 1, size=shape)
    fn = lambda z: F.binary_cross_entropy_with_logits(z, t)  # noqa: E731
    expected, dz = ref.bce_logits_ref(z, t)
    loss, (gz,) = on_tensors(fn, [z])
    np.testing.assert_allclose(loss, expected, **CLOSE)
    np.testing.assert_allclose(gz, dz, **CLOSE)
    assert_gradcheck(fn, [z])
    assert_engines_agree(fn, [z])


@pytest.mark.parametrize("z", [1e308, -1e308, 1e4, -1e4, 745.0, -745.0, 0.0])
@pytest.mark.parametrize("t", [0.0, 1.0, 0.25])
def test_binary_cross_entropy_with_logits_is_finite_and_exact_for_extreme_logits(z, t):
    fn = lambda z: F.binary_cross_entropy_with_logits(z, np.full(2, t))  # noqa: E731
    expected = max(z, 0.0) - z * t + math.log1p(math.exp(-abs(z)))
    gradient = (np_sigmoid(np.float64(z)) - t) / 2
    for run in (on_tensors, on_values):
        loss, (gz,) = run(fn, [np.full(2, z)])
        assert np.isfinite(loss) and np.all(np.isfinite(gz))
        # log(1 + e) for log1p(e): exact but for an absolute 1e-16 when the loss is near 0
        np.testing.assert_allclose(loss, expected, rtol=1e-15, atol=1e-16)
        np.testing.assert_allclose(gz, gradient, rtol=1e-15, atol=1e-300)


@given(st.integers(1, 4), st.integers(1, 4), SEEDS)
def test_cross_entropy_matches_loops_finite_differences_and_the_value_path(n, classes, seed):
    rng = np.random.default_rng(seed)
    logits, target = rng.normal(scale=2, size=(n, classes)), rng.integers(0, classes, size=n)
    fn = lambda x: F.cross_entropy(x, target)  # noqa: E731
    expected, d = ref.cross_entropy_ref(logits, target)
    loss, (g,) = on_tensors(fn, [logits])
    np.testing.assert_allclose(loss, expected, **CLOSE)
    np.testing.assert_allclose(g, d, **CLOSE)
    assert_gradcheck(fn, [logits])
    assert_engines_agree(fn, [logits])


def test_cross_entropy_takes_targets_as_a_list_an_int_array_or_a_tensor():
    logits = Tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    losses = [F.cross_entropy(logits, t).item() for t in ([1, 2], np.array([1, 2]), Tensor([1, 2]), [1.0, 2.0])]
    assert len(set(losses)) == 1 and abs(losses[0] - ref.cross_entropy_ref(logits.data, [1, 2])[0]) < 1e-15


@given(LOSS_SHAPES, SEEDS)
def test_mse_loss_matches_loops_finite_differences_and_the_value_path(shape, seed):
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=shape), rng.normal(size=shape)
    expected, d = ref.mse_ref(x, t)
    loss, (g,) = on_tensors(lambda x: F.mse_loss(x, t), [x])
    np.testing.assert_allclose(loss, expected, **CLOSE)
    np.testing.assert_allclose(g, d, **CLOSE)
    assert_gradcheck(lambda x: F.mse_loss(x, t), [x])
    assert_engines_agree(lambda x: F.mse_loss(x, t), [x])


def test_a_lone_value_works_as_a_0_d_input():
    for loss in (lambda p: F.binary_cross_entropy(p, 1.0), lambda p: F.binary_cross_entropy_with_logits(p, 0.0),
                 lambda p: F.mse_loss(p, 2.0)):
        v, t = Value(0.3), Tensor(0.3, requires_grad=True)
        out_v, out_t = loss(v), loss(t)
        out_v.backward()
        out_t.backward()
        assert isinstance(out_v, Value) and abs(out_v.data - out_t.item()) < 1e-15 and abs(v.grad - t.grad) < 1e-15


def test_a_target_in_the_graph_gets_its_gradient_too():
    x, t = Tensor([1.0, 2.0], requires_grad=True), Tensor([0.5, 0.0], requires_grad=True)
    F.mse_loss(x, t).backward()
    np.testing.assert_allclose(t.grad, -x.grad)
    X, T = values([1.0, 2.0]), values([0.5, 0.0])
    F.mse_loss(X, T).backward()
    np.testing.assert_allclose(T.grads(), t.grad, rtol=1e-15)


# --- float32, layers -------------------------------------------------------------------------------------
FLOAT32_CASES = {  # name: (fn, input shapes)
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding=1, padding_mode="replicate"),
               [(2, 2, 5, 5), (3, 2, 3, 3), (3,)]),
    "conv1d": (lambda x, w: F.conv1d(x, w, stride=2, padding="valid"), [(2, 2, 7), (3, 2, 3)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), [(1, 2, 4, 4)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, (2, 1), 1), [(2, 4, 4)]),
    "linear": (F.linear, [(3, 4), (2, 4), (2,)]),
    "flatten": (F.flatten, [(2, 3, 2)]),
    "relu": (F.relu, [(3, 2)]), "leaky_relu": (F.leaky_relu, [(3, 2)]), "sigmoid": (F.sigmoid, [(3, 2)]),
    "tanh": (F.tanh, [(3, 2)]), "softmax": (lambda x: F.softmax(x, 1), [(3, 2)]),
    "log_softmax": (lambda x: F.log_softmax(x, 0), [(3, 2)]),
    "binary_cross_entropy": (lambda p: F.binary_cross_entropy(p.sigmoid(), np.ones((3, 2))), [(3, 2)]),
    "binary_cross_entropy_with_logits": (lambda z: F.binary_cross_entropy_with_logits(z, np.ones((3, 2))), [(3, 2)]),
    "cross_entropy": (lambda x: F.cross_entropy(x, [0, 1, 1]), [(3, 2)]),
    "mse_loss": (lambda x: F.mse_loss(x, np.ones((3, 2))), [(3, 2)]),
}


@pytest.mark.parametrize("name", FLOAT32_CASES)
def test_float32_inputs_give_float32_outputs_and_gradients_close_to_float64(name):
    fn, shapes = FLOAT32_CASES[name]
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=s) for s in shapes]
    shape = output_shape(fn, *arrays)
    G = None if shape == () else rng.normal(size=shape)
    out64, grads64 = on_tensors(fn, arrays, G)
    out32, grads32 = on_tensors(fn, arrays, G, dtype=np.float32)
    assert out32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32)
    np.testing.assert_allclose(out32, out64, rtol=1e-4, atol=1e-5)
    for g32, g64 in zip(grads32, grads64):
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5)


def test_the_nodes_of_a_functional_op_carry_its_name_unless_an_outer_layer_is_open():
    x, w = Tensor(np.ones((1, 1, 3, 3))), Tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    out = F.conv2d(x, w)
    assert {n.layer for n in out.topo_order() if n.parents} == {"conv2d"}
    with layer("block 1"):
        out = F.relu(F.conv2d(x, w))
    assert {n.layer for n in out.topo_order() if n.parents} == {"block 1"}
