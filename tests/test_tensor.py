"""The Tensor engine: every primitive's value against numpy and its gradient against central
finite differences (and a closed form where one is short), broadcasting, reductions with
axis/keepdims, the first-arg-max rule, movement ops, no_grad, detach, dtypes and the
backward driver's contract (accumulation, shared nodes, non-scalar outputs)."""
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_cnn.backend as backend
import tinygrad_cnn.nn.functional as F
import tinygrad_cnn.tensor as tensor
from tinygrad_cnn import Tensor, Value, no_grad
from tinygrad_cnn.testing import gradcheck, strategies

SEEDS = st.integers(0, 2 ** 32 - 1)
CLOSE = dict(rtol=1e-12, atol=1e-12)


@contextmanager
def reductions_by(way):
    """Run max/sum reductions numpy's way or by elementwise ufuncs over slices (the two ways of tensor._reduce)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(backend, "_MANY", 0 if way == "slices" else 10 ** 9)
        yield


def leaf(a, dtype=None):
    return Tensor(a, requires_grad=True, dtype=dtype)


def check(fn, *arrays):
    """gradcheck of sum(fn(*leaves) * G) with a fixed random G (every output entry weighted differently)."""
    leaves = [leaf(a) for a in arrays]
    shape = fn(*leaves).shape
    G = np.random.default_rng(1).normal(size=shape)
    assert gradcheck(lambda *ts: (fn(*ts) * G).sum(), leaves, atol=1e-6, rtol=1e-5)


# --- construction and attributes ---------------------------------------------------------------------
def test_data_is_float64_unless_float32_is_given_and_is_copied():
    source = np.array([[1, 2]], dtype=np.int64)
    assert Tensor(source).dtype == np.float64 and Tensor([1.0]).dtype == np.float64
    assert Tensor(np.float32([1.0])).dtype == np.float32 and Tensor([1.0], dtype=np.float32).dtype == np.float32
    assert Tensor(np.float16([1.0])).dtype == np.float64 and Tensor(True).dtype == np.float64
    data = np.zeros(2)
    t = Tensor(data)
    data[0] = 5.0
    assert t.data[0] == 0.0


def test_attributes_of_a_tensor():
    x = Tensor([[1.0, 2.0, 3.0]], requires_grad=True, name="x")
    assert x.shape == (1, 3) and x.ndim == 2 and x.size == 3 and len(x) == 1 and x.dtype == np.float64
    assert x.requires_grad and x.grad is None and x.name == "x" and x.op == "" and x.parents == () and x.is_leaf
    assert x.numpy() is x.data and Tensor([[2.5]]).item() == 2.5 and isinstance(Tensor([2.5]).item(), float)
    assert "requires_grad=True" in repr(x) and np.asarray(x) is x.data
    y = (x * 2).sum()
    assert y.op == "sum" and y.parents[0].op == "*" and y.requires_grad and not y.is_leaf


def test_the_contract_example():
    x = Tensor([[1.0, 2.0]], requires_grad=True)
    y = (x @ Tensor([[3.0], [4.0]])).relu().sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [[3.0, 4.0]])
    assert y.item() == 11.0


# --- elementwise primitives ---------------------------------------------------------------------------
BINARY = {  # op: (numpy value, d/da, d/db as functions of (a, b) broadcast)
    "+": (np.add, lambda a, b: np.ones_like(a), lambda a, b: np.ones_like(b)),
    "-": (np.subtract, lambda a, b: np.ones_like(a), lambda a, b: -np.ones_like(b)),
    "*": (np.multiply, lambda a, b: b, lambda a, b: a),
    "/": (np.divide, lambda a, b: 1 / b, lambda a, b: -a / b ** 2),
    "maximum": (np.maximum, lambda a, b: (a >= b) * 1.0, lambda a, b: (a < b) * 1.0),
}


def apply(op, a, b):
    return a.maximum(b) if op == "maximum" else {"+": a.__add__, "-": a.__sub__, "*": a.__mul__,
                                                  "/": a.__truediv__}[op](b)


def summed_back(G, shape):
    """Each entry of an input of ``shape`` gets the sum of G over the result entries it was copied to."""
    owner = np.broadcast_to(np.arange(int(np.prod(shape))).reshape(shape), G.shape)
    return np.bincount(owner.ravel(), weights=G.ravel(), minlength=int(np.prod(shape))).reshape(shape)


@pytest.mark.parametrize("op", BINARY)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3), seed=SEEDS)
def test_binary_ops_broadcast_and_sum_gradients_back_to_each_input_shape(op, shapes, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=shapes.input_shapes[0]), rng.normal(size=shapes.input_shapes[1])
    if op == "/":
        b = np.sign(b) * (np.abs(b) + 0.5)
    value, da, db = BINARY[op]
    ta, tb = leaf(a), leaf(b)
    out = apply(op, ta, tb)
    np.testing.assert_array_equal(out.data, value(a, b))
    G = rng.normal(size=out.shape)
    out.backward(G)
    A, B = np.broadcast_arrays(a, b)
    np.testing.assert_allclose(ta.grad, summed_back(G * da(A, B), a.shape), **CLOSE)
    np.testing.assert_allclose(tb.grad, summed_back(G * db(A, B), b.shape), **CLOSE)
    if op != "maximum" or np.all(np.abs(A - B) > 1e-3):  # finite differences need no tie nearby
        check(lambda x, y: apply(op, x, y), a, b)


def test_broadcast_gradient_is_the_sum_over_the_copies():
    a, b = leaf(np.ones((2, 3))), leaf([10.0, 20.0, 30.0])
    (a * b).backward(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(b.grad, [0 + 3, 1 + 4, 2 + 5])
    np.testing.assert_array_equal(a.grad, [[0, 20, 60], [30, 80, 150]])


@given(st.floats(-3, 3), SEEDS)
def test_numbers_and_numpy_arrays_on_either_side(number, seed):
    a = np.random.default_rng(seed).normal(size=(2, 3))
    t = leaf(a)
    for out, expected in [(t + number, a + number), (number + t, number + a), (t - number, a - number),
                          (number - t, number - a), (t * number, a * number), (number * t, number * a),
                          (a + t, a + a), (np.float64(number) * t, number * a), (a - t, a - a)]:
        assert isinstance(out, Tensor)
        np.testing.assert_allclose(out.data, expected, **CLOSE)
    (2.0 / (t * t + 1.0)).sum().backward()
    np.testing.assert_allclose(t.grad, -4.0 * a / (a * a + 1) ** 2, **CLOSE)


def test_maximum_tie_sends_the_gradient_to_self():
    a, b = leaf([1.0, 2.0, 3.0]), leaf([1.0, 1.0, 4.0])
    a.maximum(b).sum().backward()
    np.testing.assert_array_equal(a.grad, [1, 1, 0])
    np.testing.assert_array_equal(b.grad, [0, 0, 1])


UNARY = {  # name: (op, numpy value, derivative, safe inputs)
    "neg": (lambda t: -t, np.negative, lambda x: -np.ones_like(x), strategies.finite_floats()),
    "exp": (Tensor.exp, np.exp, np.exp, strategies.finite_floats()),
    "log": (Tensor.log, np.log, lambda x: 1 / x, strategies.finite_floats(0.1, 5)),
    "relu": (Tensor.relu, lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0,
             strategies.finite_floats(away_from=(0,))),
    "leaky_relu": (lambda t: t.leaky_relu(0.3), lambda x: np.where(x > 0, x, 0.3 * x),
                   lambda x: np.where(x > 0, 1, 0.3), strategies.finite_floats(away_from=(0,))),
    "sigmoid": (Tensor.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2,
                strategies.finite_floats()),
    "tanh": (Tensor.tanh, np.tanh, lambda x: 1 / np.cosh(x) ** 2, strategies.finite_floats()),
    "pow 3": (lambda t: t ** 3, lambda x: x ** 3, lambda x: 3 * x ** 2, strategies.finite_floats()),
    "pow -1.5": (lambda t: t ** -1.5, lambda x: x ** -1.5, lambda x: -1.5 * x ** -2.5,
                 strategies.finite_floats(0.2, 5)),
    "pow 0": (lambda t: t ** 0, np.ones_like, np.zeros_like, strategies.finite_floats()),
}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_ops_value_and_gradient(name, data):
    op, value, derivative, elements = UNARY[name]
    x = data.draw(strategies.arrays(elements=elements))
    t = leaf(x)
    out = op(t)
    np.testing.assert_allclose(out.data, value(x), rtol=1e-14, atol=1e-300)
    G = np.random.default_rng(0).normal(size=x.shape)
    out.backward(G)
    np.testing.assert_allclose(t.grad, G * derivative(x), rtol=1e-12, atol=1e-300)
    check(op, x)


def test_pow_0_at_0_has_gradient_0_and_relu_at_0_has_gradient_0():
    x = leaf([0.0, 0.0])
    (x ** 0 + x.relu()).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


@pytest.mark.parametrize("x", [-1e308, -1e4, -745.0, 0.0, 745.0, 1e4, 1e308])
def test_sigmoid_never_overflows(x):
    t = leaf([x])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        s = t.sigmoid()
        s.backward(np.ones(1))
    assert np.isfinite(s.data).all() and np.isfinite(t.grad).all()


# --- reductions --------------------------------------------------------------------------------------
def axes_for(ndim):
    single = st.integers(-ndim, ndim - 1)
    several = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)
    return st.none() | single | several


@pytest.mark.parametrize("way", ["numpy", "slices"])
@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@given(data=st.data(), keepdims=st.booleans())
def test_reductions_with_axis_and_keepdims(way, name, data, keepdims):
    x = data.draw(strategies.arrays(separation=0.01))  # distinct entries: one arg-max per group
    axis = data.draw(axes_for(x.ndim))
    with reductions_by(way):
        out = getattr(leaf(x), name)(axis=axis, keepdims=keepdims)
        np.testing.assert_allclose(out.data, getattr(np, name)(x, axis=axis, keepdims=keepdims), **CLOSE)
        check(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x)


@pytest.mark.parametrize("way", ["numpy", "slices"])
@given(strategies.shapes(max_dims=3), st.data())
def test_max_gradient_goes_to_the_first_largest_in_row_major_order(way, shape, data):
    x = np.random.default_rng(sum(shape)).integers(0, 2, size=shape).astype(float)  # ties everywhere
    axis = data.draw(axes_for(len(shape)))
    t = leaf(x)
    with reductions_by(way):
        t.max(axis=axis).sum().backward()
    axes = tuple(range(x.ndim)) if axis is None else tuple(a % x.ndim for a in np.atleast_1d(axis))
    expected = np.zeros_like(x)
    kept = [a for a in range(x.ndim) if a not in axes]
    for outer in np.ndindex(*[x.shape[a] for a in kept]):  # a loop over the groups, in row-major order inside
        best = None
        for inner in np.ndindex(*[x.shape[a] for a in sorted(axes)]):
            index = [0] * x.ndim
            for a, i in zip(kept, outer):
                index[a] = i
            for a, i in zip(sorted(axes), inner):
                index[a] = i
            if best is None or x[tuple(index)] > x[best]:
                best = tuple(index)
        expected[best] = 1.0
    np.testing.assert_array_equal(t.grad, expected)


def test_mean_of_a_column_and_sum_of_everything():
    x = leaf(np.arange(6.0).reshape(2, 3))
    (x.mean(axis=0) * Tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.5, 1.0, 1.5]] * 2)
    assert x.sum().item() == 15.0 and x.mean().item() == 2.5


# --- matrix products ----------------------------------------------------------------------------------
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.lists(st.integers(1, 2), max_size=2), SEEDS)
def test_matmul_of_matrices_and_batches(m, k, n, batch, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(*batch, m, k)), rng.normal(size=(k, n))
    np.testing.assert_allclose((leaf(a) @ leaf(b)).data, a @ b, **CLOSE)
    check(lambda x, y: x @ y, a, b)
    check(lambda x, y: x @ y, b.T, rng.normal(size=(*batch, k, m)))  # the batch on the right


@given(st.integers(1, 4), st.integers(1, 4), SEEDS)
def test_matmul_with_vectors_as_numpy(k, n, seed):
    rng = np.random.default_rng(seed)
    v, M, w = rng.normal(size=k), rng.normal(size=(k, n)), rng.normal(size=k)
    for x, y in [(v, M), (M.T, v), (v, w)]:
        out = leaf(x) @ leaf(y)
        assert out.shape == (x @ y).shape
        np.testing.assert_allclose(out.data, x @ y, **CLOSE)
        check(lambda p, q: p @ q, x, y)
    assert isinstance(M @ leaf(w[:n] if n <= k else rng.normal(size=n)), Tensor)


@st.composite
def tensordot_cases(draw):
    """Two shapes and the dims of each to sum against the other's (any order)."""
    common = draw(st.lists(st.integers(1, 3), max_size=3))
    free_a, free_b = draw(st.lists(st.integers(1, 3), max_size=2)), draw(st.lists(st.integers(1, 3), max_size=2))
    order_a = draw(st.permutations(range(len(common) + len(free_a))))
    order_b = draw(st.permutations(range(len(common) + len(free_b))))
    dims_a, dims_b = common + free_a, common + free_b
    shape_a = tuple(dims_a[i] for i in order_a)
    shape_b = tuple(dims_b[i] for i in order_b)
    axes_a = [list(order_a).index(i) for i in range(len(common))]
    axes_b = [list(order_b).index(i) for i in range(len(common))]
    return shape_a, shape_b, (axes_a, axes_b)


@given(tensordot_cases(), SEEDS)
def test_tensordot_matches_numpy_for_any_dims_in_any_order(case, seed):
    shape_a, shape_b, axes = case
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=shape_a), rng.normal(size=shape_b)
    np.testing.assert_allclose(leaf(a).tensordot(leaf(b), axes).data, np.tensordot(a, b, axes), **CLOSE)
    check(lambda x, y: x.tensordot(y, axes), a, b)


def test_tensordot_with_an_int_pairs_the_last_dims_with_the_first():
    a, b = np.arange(24.0).reshape(2, 3, 4), np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(leaf(a).tensordot(b, 2).data, np.tensordot(a, b, 2))
    np.testing.assert_array_equal(leaf(a).tensordot(b, 0).data, np.tensordot(a, b, 0))


def test_a_constant_operand_gets_no_gradient_computed():
    calls = []
    x, w = Tensor(np.ones((3, 2))), leaf(np.ones((2, 4)))
    out = x @ w
    (forward, _, rule_w), saved = out._local
    out._local = ((forward, lambda g, *saved: calls.append("x") or g, rule_w), saved)
    out.sum().backward()
    assert calls == [] and w.grad is not None and x.grad is None


# --- movement ops ---------------------------------------------------------------------------------------
@given(strategies.arrays(shape=strategies.shapes(max_dims=4)), st.data())
def test_reshape_transpose_flatten_and_T(x, data):
    perm = data.draw(st.permutations(range(x.ndim)))
    start = data.draw(st.integers(0, x.ndim - 1))
    cases = [(lambda t: t.reshape(-1), x.reshape(-1)), (lambda t: t.reshape(x.shape[::-1]), x.reshape(x.shape[::-1])),
             (lambda t: t.permute(*perm), x.transpose(perm)), (lambda t: t.transpose(tuple(perm)), x.transpose(perm)),
             (lambda t: t.T, x.T), (lambda t: t.transpose(), x.T),
             (lambda t: t.flatten(start), x.reshape(x.shape[:start] + (-1,))), (lambda t: t.flatten(), x.reshape(-1))]
    for fn, expected in cases:
        np.testing.assert_array_equal(fn(leaf(x)).data, expected)
        G = np.random.default_rng(0).normal(size=expected.shape)
        t = leaf(x)
        fn(t).backward(G)
        np.testing.assert_allclose((t.grad * x).sum(), (G * expected).sum(), **CLOSE)  # a permutation of entries
        check(fn, x)


INDICES = [(0,), (slice(1, None),), (Ellipsis, 0), (slice(None), [0, 0, 1]), ([1, 0, 1],),
           (np.array([True, False, True]),), (slice(None, None, -1), slice(None, None, 2))]


@pytest.mark.parametrize("index", INDICES, ids=str)
def test_indexing_and_its_gradient_adds_for_repeated_entries(index):
    x = np.arange(12.0).reshape(3, 4)
    t = leaf(x)
    out = t[index if len(index) > 1 else index[0]]
    np.testing.assert_array_equal(out.data, x[index if len(index) > 1 else index[0]])
    out.backward(np.ones(out.shape))
    counts = np.zeros_like(x)
    np.add.at(counts, index if len(index) > 1 else index[0], 1)
    np.testing.assert_array_equal(t.grad, counts)
    check(lambda t: t[index if len(index) > 1 else index[0]], x)


@pytest.mark.parametrize("mode", ["constant", "edge"])
@given(strategies.arrays(shape=strategies.shapes(max_dims=3, max_side=3)), st.data())
def test_pad_with_zeros_or_edges(mode, x, data):
    pads = tuple(data.draw(st.tuples(st.integers(0, 2), st.integers(0, 2))) for _ in range(x.ndim))
    pad = (lambda t: t.pad(pads)) if mode == "constant" else (
        lambda t: F.pad(t, tuple(n for pair in reversed(pads) for n in pair), "replicate"))
    np.testing.assert_array_equal(pad(leaf(x)).data, np.pad(x, pads, mode=mode))
    check(pad, x)


def test_edge_pad_gradient_adds_the_copies_to_the_edge():
    t = leaf([1.0, 2.0, 3.0])
    F.pad(t, (2, 1), "replicate").backward(np.array([1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]))
    np.testing.assert_array_equal(t.grad, [111.0, 1000.0, 110000.0])


@st.composite
def window_cases(draw):
    k = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(k))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(k))
    lead = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    spatial = tuple(draw(st.integers(w, w + 4)) for w in kernel)
    return lead + spatial, kernel, stride


@given(window_cases(), SEEDS)
def test_windows_view_and_its_scatter_add_gradient(case, seed):
    shape, kernel, stride = case
    x = np.random.default_rng(seed).normal(size=shape)
    out = leaf(x).windows(kernel, stride)
    k = len(kernel)
    counts = tuple((n - w) // s + 1 for n, w, s in zip(shape[-k:], kernel, stride))
    assert out.shape == shape[:-k] + counts + kernel
    for pos in np.ndindex(*counts):  # every window is the slice it should be
        window = out.data[(Ellipsis,) + pos + (slice(None),) * k]
        block = x[(Ellipsis,) + tuple(slice(p * s, p * s + w) for p, s, w in zip(pos, stride, kernel))]
        np.testing.assert_array_equal(window, block)
    t = leaf(x)
    t.windows(kernel, stride).backward(np.ones(out.shape))
    expected = np.zeros(shape)  # how many windows read each entry
    for pos in np.ndindex(*counts):
        expected[(Ellipsis,) + tuple(slice(p * s, p * s + w) for p, s, w in zip(pos, stride, kernel))] += 1
    np.testing.assert_array_equal(t.grad, expected)
    check(lambda t: t.windows(kernel, stride), x)


def test_the_window_view_is_read_only():
    out = Tensor(np.zeros((4, 4))).windows((2, 2), (1, 1))
    with pytest.raises(ValueError):
        out.data[0, 0, 0, 0] = 1.0


# --- the backward pass -----------------------------------------------------------------------------------
def test_a_node_used_twice_gets_the_sum_and_backward_twice_accumulates():
    x = leaf([2.0, 3.0])
    y = x * x + x
    y.backward(np.ones(2))
    np.testing.assert_array_equal(x.grad, [5.0, 7.0])
    y.backward(np.ones(2))
    np.testing.assert_array_equal(x.grad, [10.0, 14.0])
    y.zero_grad()
    assert x.grad is None and y.grad is None


def test_every_node_keeps_its_gradient_and_leaf_gradients_are_their_own_arrays():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    s = a + b
    out = (s * 2).sum()
    out.backward()
    np.testing.assert_array_equal(s.grad, [2.0, 2.0])
    assert out.grad == 1.0 and a.grad is not b.grad and not np.shares_memory(a.grad, b.grad)
    a.grad[0] = 99.0  # a leaf's gradient is writable and nobody else's
    np.testing.assert_array_equal(b.grad, [2.0, 2.0])


def test_backward_needs_a_gradient_for_a_non_scalar_and_checks_its_shape():
    y = leaf([1.0, 2.0]) * 2
    with pytest.raises(ValueError, match=r"a gradient is needed for a non-scalar output of shape \(2,\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"gradient shape \(3,\) does not match output shape \(2,\)"):
        y.backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).sum().backward()
    y.backward(Tensor([1.0, 1.0]))


def test_no_grad_records_nothing_and_restores_recording_even_after_an_error():
    x = leaf([1.0, 2.0])
    with no_grad():
        y = (x * 2).exp()
        with no_grad():
            pass
        assert not y.requires_grad and y.parents == () and y.op == "" and y.is_leaf  # as PyTorch: no grad_fn
    assert (x * 2).requires_grad
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert (x * 2).parents[0] is x


def test_detach_shares_the_numbers_and_cuts_the_graph():
    x = leaf([1.0, 2.0])
    d = (x * 3).detach()
    assert not d.requires_grad and d.parents == () and d.is_leaf
    y = (d * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [3.0, 6.0])


def test_float32_stays_float32_through_every_primitive_and_its_gradient():
    rng = np.random.default_rng(0)
    x, w = leaf(rng.normal(size=(2, 3, 4)), np.float32), leaf(rng.normal(size=(4, 2)), np.float32)
    y = (x @ w).tensordot(Tensor(np.ones((2, 5), np.float32)), ([2], [0])).relu().exp().log().sigmoid().tanh()
    z = (F.pad(y, (0, 0, 1, 1), "replicate").windows((2, 2), (1, 1)).max(axis=(-2, -1)) * 2.0 - 1.0) / 3.0
    loss = (z.maximum(0.1).leaky_relu() ** 2).transpose().reshape(-1)[1:].mean()
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    assert all(n.dtype == np.float32 and (n.grad is None or n.grad.dtype == np.float32) for n in loss.topo_order())


def test_mixed_float32_and_float64_promote_and_gradients_keep_each_inputs_dtype():
    a, b = leaf([1.0, 2.0], np.float32), leaf([3.0, 4.0])
    out = a * b
    assert out.dtype == np.float64
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_primitives_are_a_short_list_with_their_rules_beside_them():
    assert set(tensor.PRIMITIVES) == {"+", "-", "*", "/", "**", "maximum", "neg", "exp", "log", "relu", "leaky_relu",
                                      "sigmoid", "tanh", "sum", "max", "matmul", "tensordot", "reshape",
                                      "permute", "pad", "index", "windows"}
    assert all(len(entry) == 1 + (2 if op in tensor._BROADCASTING or op == "tensordot" else 1)
               for op, entry in tensor.PRIMITIVES.items())  # a forward and one rule per input
    x = leaf(np.ones((1, 1, 4, 4)))
    out = F.conv2d(F.max_pool2d(x, 2, padding=1), leaf(np.ones((1, 1, 2, 2))), leaf([0.0]), padding_mode="reflect")
    ops = {n.op for n in out.sum().topo_order()} - {""}
    assert ops <= set(tensor.PRIMITIVES)


def test_transpose_swaps_two_dims_as_torch_and_permute_reorders_them():
    data = np.arange(24.0).reshape(2, 3, 4)
    t = Tensor(data, requires_grad=True)
    swapped = t.transpose(0, 2)
    assert swapped.shape == (4, 3, 2)
    np.testing.assert_array_equal(swapped.data, np.swapaxes(data, 0, 2))
    np.testing.assert_array_equal(Tensor([[1.0, 2.0]]).transpose(0, 1).data, [[1.0], [2.0]])
    permuted = t.permute(2, 0, 1)
    np.testing.assert_array_equal(permuted.data, data.transpose(2, 0, 1))
    weights = np.arange(24.0).reshape(4, 2, 3)
    (permuted * Tensor(weights)).sum().backward()
    np.testing.assert_array_equal(t.grad, weights.transpose(1, 2, 0))


@pytest.mark.parametrize("x, k", [(0.0, 2.0), (0.0, 0.0), (3.0, 0.0), (-2.0, 2.0), (0.0, -1.0), (-0.0, 1e-16),
                                  (2.0, 3.0), (2.0, 1.0), (2.0, -1.0)])
def test_a_tensor_exponent_gives_the_value_engines_gradients_at_a_zero_base_or_exponent(x, k):
    a, b = Value(x), Value(k)
    (a ** b).backward()
    s, t = Tensor([x], requires_grad=True), Tensor([k], requires_grad=True)
    with np.errstate(all="ignore"):
        (s ** t).sum().backward()
    np.testing.assert_array_equal(s.grad, [a.grad])  # nan where nan, infinities with their sign
    np.testing.assert_array_equal(t.grad, [b.grad])
