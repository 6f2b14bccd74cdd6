"""The scalar engine: every op's value and gradient, how gradients accumulate, numerics at the
edges of the float range, bad operands, and ``values``."""
import gc
import math
import operator
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinygrad_cnn import Value, values
from tinygrad_cnn.testing import gradcheck
from tinygrad_cnn.testing.strategies import finite_floats

TIGHT = dict(atol=1e-7, rtol=1e-6)  # float64 central differences are good to ~1e-9 on these inputs
MANY = settings(max_examples=8 * settings().max_examples)  # for cheap tests over a wide input space


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x)) if x >= 0 else np.exp(x) / (1 + np.exp(x))


# --- every op: value against numpy, gradient against central finite differences -----------------
# name: (the op on a Value, numpy's value for a float64, inputs away from kinks and poles)
UNARY = {
    "neg": (operator.neg, np.negative, finite_floats()),
    "exp": (Value.exp, np.exp, finite_floats()),
    "log": (Value.log, np.log, finite_floats(0.05, 5.0)),
    "relu": (Value.relu, lambda x: np.maximum(x, 0.0), finite_floats(away_from=(0.0,))),
    "sigmoid": (Value.sigmoid, np_sigmoid, finite_floats(-30.0, 30.0)),
    "tanh": (Value.tanh, np.tanh, finite_floats()),
    "** 2": (lambda a: a ** 2, np.square, finite_floats()),
    "** 3": (lambda a: a ** 3, lambda x: x ** 3, finite_floats()),
    "** 1": (lambda a: a ** 1, lambda x: x, finite_floats()),
    "** 0": (lambda a: a ** 0, lambda x: x ** 0, finite_floats()),
    "** -1": (lambda a: a ** -1, np.reciprocal, finite_floats(away_from=(0.0,), margin=0.1)),
    "** -2": (lambda a: a ** -2, lambda x: x ** -2.0, finite_floats(away_from=(0.0,), margin=0.1)),
    "** 0.5": (lambda a: a ** 0.5, np.sqrt, finite_floats(0.05, 5.0)),
    "** -1.5": (lambda a: a ** -1.5, lambda x: x ** -1.5, finite_floats(0.1, 5.0)),
    "** int exponent": (lambda a: a ** np.int64(4), lambda x: x ** 4, finite_floats()),
}


@pytest.mark.parametrize("name", UNARY)
@given(data=st.data())
def test_unary_op_value_matches_numpy_and_gradient_matches_finite_differences(name, data):
    op, reference, inputs = UNARY[name]
    x = data.draw(inputs, label="x")
    a = Value(x)
    out = op(a)
    assert type(out.data) is float and out.parents == (a,) and out.grad == 0.0
    assert out.data == pytest.approx(float(reference(np.float64(x))), rel=1e-14, abs=1e-300)
    assert gradcheck(op, [Value(x)], **TIGHT)


@given(finite_floats(away_from=(0.0,)), finite_floats(0.0, 1.0))
def test_leaky_relu_value_and_gradient_for_any_slope(x, slope):
    out = Value(x).leaky_relu(slope)
    assert out.data == (x if x > 0 else slope * x)
    assert gradcheck(lambda a: a.leaky_relu(slope), [Value(x)], **TIGHT)


BINARY = {"+": (operator.add, np.add), "-": (operator.sub, np.subtract), "*": (operator.mul, np.multiply),
          "/": (operator.truediv, np.divide)}


@pytest.mark.parametrize("op", BINARY)
@given(finite_floats(), finite_floats(away_from=(0.0,), margin=0.1))
def test_binary_op_with_values_and_with_plain_numbers_on_either_side(op, x, y):
    fn, reference = BINARY[op]
    expected = float(reference(np.float64(x), np.float64(y)))
    a, b = Value(x), Value(y)
    for out, leaves in ((fn(a, b), (a, b)), (fn(a, y), (a,)), (fn(x, b), (b,))):
        assert out.data == expected and type(out.data) is float  # IEEE arithmetic: exactly numpy's result
        assert out.op == op and all(any(p is leaf for p in out.parents) for leaf in leaves)
        assert sorted(p.data for p in out.parents) == sorted([x, y])  # a plain number became a leaf
    assert gradcheck(fn, [Value(x), Value(y)], **TIGHT)
    assert gradcheck(lambda a: fn(a, y), [Value(x)], **TIGHT)   # Value op number
    assert gradcheck(lambda b: fn(x, b), [Value(y)], **TIGHT)   # number op Value (the reflected form)


@given(finite_floats(0.1, 4.0), finite_floats(-3.0, 3.0))
def test_a_value_to_the_power_of_a_value_matches_numpy_and_finite_differences(x, k):
    assert same_float((Value(x) ** Value(k)).data, float(np.power(x, k)))  # C pow: numpy's to an ulp or so
    assert same_float((2.0 ** Value(k)).data, float(np.power(2.0, k)))
    assert gradcheck(lambda a, b: a ** b, [Value(x), Value(k)], **TIGHT)
    assert gradcheck(lambda b: x ** b, [Value(k)], **TIGHT)  # number ** Value (the reflected form)


@pytest.mark.parametrize("x, k, dx, dk", [
    (0.0, 2.0, 0.0, 0.0),              # d/dk x ** k at x = 0 is taken as 0 for k >= 0, as PyTorch does
    (0.0, 0.0, 0.0, 0.0),              # 0 ** 0 = 1; d/dx is 0 when k = 0, whatever x
    (3.0, 0.0, 0.0, math.log(3.0)),
    (-2.0, 2.0, -4.0, math.nan),       # ln of a negative base: nan
    (0.0, -1.0, -math.inf, -math.inf),  # 0 ** -1 = inf, and inf * ln 0
    (-0.0, 1e-16, math.inf, 0.0),      # -0 ** (1e-16 - 1) is +inf: 1e-16 - 1 is no odd integer
])
def test_a_value_exponent_at_a_zero_base_or_a_zero_exponent(x, k, dx, dk):
    a, b = Value(x), Value(k)
    (a ** b).backward()
    assert same_float(a.grad, dx) and same_float(b.grad, dk)


@given(finite_floats(), finite_floats())
def test_max_value_and_gradient_away_from_a_tie(x, y):
    assume(abs(x - y) > 1e-3)
    assert Value(x).max(Value(y)).data == max(x, y) == Value(x).max(y).data
    assert gradcheck(lambda a, b: a.max(b), [Value(x), Value(y)], **TIGHT)
    assert gradcheck(lambda a: a.max(y), [Value(x)], **TIGHT)


# --- the kinks: exact conventions (as PyTorch, except max's tie, which goes to self) -------------
@pytest.mark.parametrize("x", [0.0, -0.0])
def test_relu_at_zero_has_gradient_zero(x):
    a = Value(x)
    out = a.relu()
    out.backward()
    assert out.data == 0.0 and a.grad == 0.0


def test_leaky_relu_at_zero_has_the_negative_slope_as_gradient():
    a = Value(0.0)
    a.leaky_relu(0.2).backward()
    assert a.grad == 0.2


@pytest.mark.parametrize("other", [Value(1.5), 1.5])
def test_max_tie_sends_the_whole_gradient_to_self(other):
    a = Value(1.5)
    out = a.max(other)
    out.backward()
    assert out.data == 1.5 and a.grad == 1.0
    if isinstance(other, Value):
        assert other.grad == 0.0


def test_max_of_a_node_with_itself_gives_gradient_one():
    a = Value(-2.0)
    a.max(a).backward()
    assert a.grad == 1.0


def test_max_sends_the_gradient_to_the_larger_input():
    a, b = Value(1.0), Value(3.0)
    out = a.max(b)
    (out * 2).backward()
    assert out.data == 3.0 and (a.grad, b.grad) == (0.0, 2.0)


# --- composites ------------------------------------------------------------------------------------
SAFE_UNARY = {  # defined for every real input, smooth: finite differences work anywhere
    "tanh": (Value.tanh, np.tanh),
    "sigmoid": (Value.sigmoid, np_sigmoid),
    "neg": (operator.neg, np.negative),
    "square": (lambda a: a ** 2, np.square),
    "log1p_sq": (lambda a: (1 + a * a).log(), lambda x: np.log(1 + x * x)),
    "exp_tanh": (lambda a: a.tanh().exp(), lambda x: np.exp(np.tanh(x))),
}
SAFE_BINARY = {
    "+": (operator.add, np.add),
    "-": (operator.sub, np.subtract),
    "*": (operator.mul, np.multiply),
    "/": (lambda a, b: a / (1 + b * b), lambda x, y: x / (1 + y * y)),
}


def expressions(n_leaves=3):
    """Random expression trees: a leaf index, ("unary", name, child) or ("binary", name, left, right)."""
    def extend(children):
        return (st.tuples(st.just("unary"), st.sampled_from(sorted(SAFE_UNARY)), children)
                | st.tuples(st.just("binary"), st.sampled_from(sorted(SAFE_BINARY)), children, children))
    return st.recursive(st.integers(0, n_leaves - 1), extend, max_leaves=8)


def evaluate(tree, leaves, table_index):
    """Evaluate a tree on Values (table_index 0) or on numpy float64 numbers (table_index 1)."""
    if isinstance(tree, int):
        return leaves[tree]
    if tree[0] == "unary":
        return SAFE_UNARY[tree[1]][table_index](evaluate(tree[2], leaves, table_index))
    fn = SAFE_BINARY[tree[1]][table_index]
    return fn(evaluate(tree[2], leaves, table_index), evaluate(tree[3], leaves, table_index))


@given(expressions(), st.lists(finite_floats(-2.0, 2.0), min_size=3, max_size=3))
def test_random_composite_expressions_value_and_gradients(tree, xs):
    out = evaluate(tree, [Value(x) for x in xs], 0)
    if isinstance(out, Value):
        assert out.data == pytest.approx(float(evaluate(tree, [np.float64(x) for x in xs], 1)), rel=1e-12, abs=1e-12)
        assert gradcheck(lambda a, b, c: evaluate(tree, [a, b, c], 0), [Value(x) for x in xs], **TIGHT)


@given(finite_floats(0.2, 3.0))
def test_the_api_tour_expression(x):
    def f(a):
        b = a * 3 - a ** 2 / (1 + a)
        return b.exp().log().relu() + b.sigmoid() + b.tanh() + b.leaky_relu(0.01) + a.max(b)
    b = 3 * x - x ** 2 / (1 + x)
    assume(abs(x - b) > 1e-3)
    expected = max(b, 0.0) + 1 / (1 + math.exp(-b)) + math.tanh(b) + b + max(x, b)  # b > 0 here
    assert f(Value(x)).data == pytest.approx(expected, rel=1e-12)
    assert gradcheck(f, [Value(x)], **TIGHT)


def test_micrograd_readme_expression():
    """micrograd's README example; its numbers (4 decimals) were checked there against PyTorch."""
    a, b = Value(-4.0), Value(2.0)
    c = a + b
    d = a * b + b ** 3
    c = c + (c + 1)
    c = c + (1 + c + (-a))
    d = d + (d * 2 + (b + a).relu())
    d = d + (3 * d + (b - a).relu())
    e = c - d
    f = e ** 2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    assert (round(g.data, 4), round(a.grad, 4), round(b.grad, 4)) == (24.7041, 138.8338, 645.5773)


# --- identities, reuse and accumulation ---------------------------------------------------------------
@given(finite_floats(away_from=(0.0,), margin=1e-2))
def test_self_difference_and_self_quotient_and_their_gradients(x):
    a = Value(x)
    diff = a - a
    diff.backward()
    assert diff.data == 0.0 and a.grad == 0.0
    b = Value(x)
    quotient = b / b
    quotient.backward()
    assert quotient.data == 1.0 and b.grad == 0.0


@given(finite_floats())
def test_a_node_used_twice_in_one_op_gets_both_contributions(x):
    a = Value(x)
    (a * a).backward()
    assert a.grad == pytest.approx(2 * x, rel=1e-15, abs=0.0)
    b = Value(x)
    (b + b).backward()
    assert b.grad == 2.0
    c = Value(x)
    (c * c * c).backward()
    assert c.grad == pytest.approx(3 * x * x, rel=1e-14)


@given(st.lists(finite_floats(), min_size=1, max_size=30), finite_floats())
def test_a_shared_weight_gets_the_sum_over_its_uses(xs, w):
    weight = Value(w)
    inputs = [Value(x) for x in xs]
    loss = sum((weight * x for x in inputs), Value(0.0))
    loss.backward()
    assert weight.grad == pytest.approx(math.fsum(xs), rel=1e-12, abs=1e-12)
    assert all(x.grad == w for x in inputs)


def test_one_node_used_many_times_in_a_deep_sum():
    a = Value(0.5)
    total = a
    for _ in range(4999):
        total = total + a
    total.backward()
    assert a.grad == 5000.0 and total.data == 2500.0


@given(finite_floats(-2.0, 2.0), finite_floats(-2.0, 2.0))
def test_backward_twice_accumulates_and_zero_grad_resets_every_node(x, y):
    a, b = Value(x), Value(y)
    hidden = (a * b).tanh()
    out = hidden + a.sigmoid()
    out.backward()
    first = (a.grad, b.grad, hidden.grad, out.grad)
    out.backward()
    assert (a.grad, b.grad, hidden.grad, out.grad) == tuple(2 * g for g in first)
    out.zero_grad()
    assert (a.grad, b.grad, hidden.grad, out.grad) == (0.0, 0.0, 0.0, 0.0)
    out.backward()
    assert (a.grad, b.grad, hidden.grad, out.grad) == first


def test_backward_of_a_leaf_sets_its_own_gradient():
    a = Value(3.0)
    a.backward()
    assert a.grad == 1.0


@pytest.fixture
def collector_paused():
    """Pause the cyclic garbage collector: building a million-node graph, it would walk the growing
    graph again and again (seconds) and find nothing to free (Value nodes make no cycles)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_million_node_chain_backpropagates_without_recursion(collector_paused):
    x = start = Value(0.5)
    one = Value(1.0)
    links = 1_000_000 - 2  # two leaves and the links: a million nodes
    for _ in range(links):
        x = x + one
    x.backward()
    assert start.grad == 1.0 and one.grad == links and x.data == 0.5 + links


def test_a_deep_chain_zero_grads_and_backpropagates_twice(collector_paused):
    x = start = Value(1.0)
    for _ in range(100_000):  # a hundred times Python's default recursion limit
        x = -x
    x.backward()
    x.backward()
    assert start.grad == 2.0 and x.grad == 2.0
    x.zero_grad()
    assert start.grad == 0.0 and x.grad == 0.0


# --- the edges of the float range: IEEE results like numpy, never an exception --------------------
@pytest.mark.parametrize("expression, expected", [
    (lambda: Value(1e308) + Value(1e308), math.inf),
    (lambda: Value(-1e308) - 1e308, -math.inf),
    (lambda: Value(1e308) * 10, math.inf),
    (lambda: Value(-1e308) * Value(1e308), -math.inf),
    (lambda: Value(1e308) ** 2, math.inf),
    (lambda: Value(-1e308) ** 3, -math.inf),
    (lambda: Value(1e-308) / 1e10, 1e-318),
    (lambda: Value(800.0).exp(), math.inf),
    (lambda: Value(1000.0).exp(), math.inf),
    (lambda: Value(-800.0).exp(), 0.0),
    (lambda: Value(800.0).sigmoid(), 1.0),
    (lambda: Value(-800.0).sigmoid(), 0.0),
    (lambda: Value(1e308).sigmoid(), 1.0),
    (lambda: Value(-1e308).sigmoid(), 0.0),
    (lambda: Value(800.0).tanh(), 1.0),
    (lambda: Value(-800.0).tanh(), -1.0),
    (lambda: Value(0.0).log(), -math.inf),
    (lambda: Value(-1.0).log(), math.nan),
    (lambda: Value(0.0) / 0.0, math.nan),
    (lambda: Value(1.0) / 0.0, math.inf),
    (lambda: Value(-1.0) / Value(0.0), -math.inf),
    (lambda: Value(1.0) / Value(-0.0), -math.inf),
    (lambda: Value(0.0) ** -1, math.inf),
    (lambda: Value(-0.0) ** -1, -math.inf),
    (lambda: Value(-8.0) ** (1 / 3), math.nan),
    (lambda: Value(math.nan).relu(), math.nan),
    (lambda: Value(math.nan).max(1.0), math.nan),
    (lambda: Value(1.0).max(math.nan), math.nan),
])
def test_extreme_inputs_give_ieee_results_and_backpropagate_without_raising(expression, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a RuntimeWarning
        out = expression()
        out.backward()
    np.testing.assert_equal(out.data, expected)
    assert type(out.data) is float and all(type(p.grad) is float for p in out.parents)


def same_float(ours, theirs, ulps=4, atol=0.0):
    """Equal as IEEE numbers: nan matches nan, an infinity only itself, finite numbers within
    ``atol`` plus a few ulps (libraries' exp and tanh differ in the last bit)."""
    if math.isnan(theirs) or math.isinf(theirs):
        return math.isnan(ours) if math.isnan(theirs) else ours == theirs
    return abs(ours - theirs) <= atol + ulps * math.ulp(theirs)


ANY_FLOAT = st.floats() | st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -3.0, 800.0, -800.0, 1e308, -1e308,
                                            5e-324, math.inf, -math.inf, math.nan])
# name: (the op, numpy's value, numpy's local derivative). 1 - t * t cancels near t = 1, so a last-bit
# difference in tanh or sigmoid shows there as an absolute error of about 1e-16 (hence ATOL).
UNARY_EDGES = {
    "exp": (Value.exp, np.exp, np.exp),
    "log": (Value.log, np.log, np.reciprocal),
    "tanh": (Value.tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "sigmoid": (Value.sigmoid, np_sigmoid, lambda x: np_sigmoid(x) * (1 - np_sigmoid(x))),
    "relu": (Value.relu, lambda x: x if not x <= 0 else np.float64(0.0), lambda x: np.float64(0.0 if x <= 0 else 1.0)),
    "neg": (operator.neg, np.negative, lambda x: np.float64(-1.0)),
}
ATOL = 1e-15
BINARY_EDGES = {  # name: (the op, numpy's value, numpy's local derivatives (as PyTorch writes them))
    "+": (operator.add, np.add, lambda x, y: (1.0, 1.0)),
    "-": (operator.sub, np.subtract, lambda x, y: (1.0, -1.0)),
    "*": (operator.mul, np.multiply, lambda x, y: (y, x)),
    "/": (operator.truediv, np.divide, lambda x, y: (1 / y, -(x / y) / y)),
    "max": (Value.max, lambda x, y: np.maximum(x, y), lambda x, y: (1.0, 0.0) if x >= y or x != x else (0.0, 1.0)),
    "**": (lambda a, b: a ** b.data, np.power, lambda x, y: (0.0 if y == 0 else y * np.power(x, y - 1), 0.0)),
    "** Value": (operator.pow, np.power, lambda x, y: (0.0 if y == 0 else y * np.power(x, y - 1),
                                                      0.0 if x == 0 and y >= 0 else np.power(x, y) * np.log(x))),
}


@pytest.mark.parametrize("name", UNARY_EDGES)
@MANY
@given(ANY_FLOAT)
def test_unary_ops_on_any_float_match_numpy(name, x):
    op, value, derivative = UNARY_EDGES[name]
    a = Value(x)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("error")
        out = op(a)
        out.backward()
    with np.errstate(all="ignore"):
        expected, slope = value(np.float64(x)), derivative(np.float64(x))
    assert same_float(out.data, float(expected))
    assert same_float(a.grad, float(slope), atol=ATOL)


@pytest.mark.parametrize("name", BINARY_EDGES)
@MANY
@given(ANY_FLOAT, ANY_FLOAT)
def test_binary_ops_on_any_floats_match_numpy(name, x, y):
    op, value, derivatives = BINARY_EDGES[name]
    # numpy takes x ** 0.5 as sqrt(x), so (-inf) ** 0.5 is nan there; C99 pow (ours) says +inf. The
    # derivative of x ** 1.5 holds x ** 0.5.
    assume(not (name.startswith("**") and x == -math.inf and y in (0.5, 1.5)))
    a, b = Value(x), Value(y)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("error")
        out = op(a, b)
        out.backward()
    with np.errstate(all="ignore"):
        expected, (da, db) = value(np.float64(x), np.float64(y)), derivatives(np.float64(x), np.float64(y))
    assert same_float(out.data, float(expected))
    assert same_float(a.grad, float(da)) and same_float(b.grad, float(db))


# --- bad operands ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, type_name", [
    (lambda: Value(2) * "a", "str"),
    (lambda: Value(None), "NoneType"),
    (lambda: "a" + Value(1), "str"),
    (lambda: Value(1) - [1.0], "list"),
    (lambda: (1, 2) - Value(1), "tuple"),
    (lambda: Value(1) / {}, "dict"),
    (lambda: {} / Value(1), "dict"),
    (lambda: Value(1) + 1j, "complex"),
    (lambda: Value(1).max("2"), "str"),
    (lambda: Value(1) ** "2", "str"),
    (lambda: Value(1).leaky_relu(None), "NoneType"),
    (lambda: Value("1.0"), "str"),
    (lambda: Value(np.array([1.0, 2.0])), "ndarray"),
])
def test_a_non_number_operand_raises_a_type_error_naming_its_type(make, type_name):
    with pytest.raises(TypeError, match=rf"\b{type_name}\b"):
        make()


@pytest.mark.parametrize("number", [3, 3.0, np.float64(3), np.float32(3), np.int64(3), True, np.bool_(True)])
def test_numbers_of_any_kind_become_python_floats(number):
    for out in (Value(number), Value(1.0) * number, number * Value(1.0), Value(1.0).max(number)):
        assert type(out.data) is float and out.data == float(number)


# --- the node's public face -------------------------------------------------------------------------------
def test_leaves_and_op_nodes_expose_op_parents_and_name():
    a = Value(2.0, name="a")
    b = a * 3
    assert (a.op, a.parents, a.name, a.grad) == ("", (), "a", 0.0)
    assert b.op == "*" and b.parents[0] is a and b.parents[1].data == 3.0 and b.name is None
    assert a.is_leaf and b.parents[1].is_leaf and not b.is_leaf and not a.relu().is_leaf
    assert [x.op for x in (a + a, a - a, a / a, -a, a ** 2, a.exp(), a.log(), a.relu(), a.leaky_relu(),
                           a.sigmoid(), a.tanh(), a.max(a))] == \
        ["+", "-", "/", "neg", "**2", "exp", "log", "relu", "leaky_relu", "sigmoid", "tanh", "max"]
    assert repr(a) == "Value(data=2, grad=0, name='a')" and repr(b) == "Value(data=6, grad=0)"


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 1, 3), (0,), (2, 0)])
def test_values_gives_named_leaves_of_the_same_shape(shape):
    data = np.arange(int(np.prod(shape)), dtype=float).reshape(shape) * 0.5
    grid = values(data, name="X")
    assert grid.shape == shape and grid.dtype == object
    for index in np.ndindex(shape):
        leaf = grid[index]
        assert isinstance(leaf, Value) and leaf.data == data[index] and leaf.parents == () and leaf.op == ""
        assert leaf.name == ("X" if not shape else "X[" + ",".join(map(str, index)) + "]")
    assert len({id(v) for v in grid.flat}) == grid.size  # every element its own leaf


def test_values_names_match_the_worked_example_and_default_to_none():
    assert [v.name for v in values([[1, 2], [3, 4]], name="X").flat] == ["X[0,0]", "X[0,1]", "X[1,0]", "X[1,1]"]
    assert all(v.name is None for v in values([1.0, 2.0]).flat)
    assert [type(v.data) for v in values([1, True]).flat] == [float, float]


@pytest.mark.parametrize("bad, error, message", [
    (["a", "b"], TypeError, "got str"), (None, TypeError, "got NoneType"), ([1.0, 2j], TypeError, "got complex"),
    (np.array([Value(1.0)]), TypeError, "got Value"), ([[1.0], [2.0, 3.0]], ValueError, "rectangular"),
])
def test_values_refuses_what_is_not_an_array_of_numbers(bad, error, message):
    with pytest.raises(error, match=message):
        values(bad)


# --- PyTorch as an independent reference ----------------------------------------------------------------
TORCH_UNARY = {
    "exp": (Value.exp, "exp"), "log": (Value.log, "log"), "relu": (Value.relu, "relu"),
    "sigmoid": (Value.sigmoid, "sigmoid"), "tanh": (Value.tanh, "tanh"), "neg": (operator.neg, "neg"),
    "leaky_relu": (lambda a: a.leaky_relu(0.1), "leaky_relu"),
    "** 3": (lambda a: a ** 3, 3.0), "** 2.5": (lambda a: a ** 2.5, 2.5), "** -1.5": (lambda a: a ** -1.5, -1.5),
}


def torch_unary(torch, name, t):
    """PyTorch's op; an exponent goes to torch.pow (its 0.5 and -0.5 are sqrt and rsqrt, not C99 pow)."""
    if isinstance(name, float):
        return torch.pow(t, name)
    return torch.nn.functional.leaky_relu(t, 0.1) if name == "leaky_relu" else getattr(torch, name)(t)


@pytest.mark.parity
@pytest.mark.parametrize("name", TORCH_UNARY)
@given(st.floats(-50.0, 50.0) | st.sampled_from([0.0, -0.0, 800.0, -800.0, 1e308, -1e308, math.inf, -math.inf]))
def test_unary_ops_match_pytorch_including_kinks_and_extremes(name, x):
    torch = pytest.importorskip("torch")
    op, torch_name = TORCH_UNARY[name]
    a, t = Value(x), torch.tensor(x, dtype=torch.float64, requires_grad=True)
    op(a).backward()
    out = torch_unary(torch, torch_name, t)
    out.backward()
    assert same_float(op(Value(x)).data, out.item(), ulps=8)
    assert same_float(a.grad, t.grad.item(), ulps=8, atol=ATOL)


@pytest.mark.parity
@pytest.mark.parametrize("op", ["+", "-", "*", "/", "max", "** Value"])
@given(st.floats(-1e3, 1e3) | st.sampled_from([0.0, -0.0, 1e308, -1e308, math.inf]),
       st.floats(-1e3, 1e3) | st.sampled_from([0.0, -0.0, 1e-308, math.inf]))
def test_binary_ops_match_pytorch(op, x, y):
    torch = pytest.importorskip("torch")
    assume(op != "max" or x != y)  # torch.maximum splits a tie's gradient in halves; ours goes to self
    fn = BINARY_EDGES[op][0]
    a, b = Value(x), Value(y)
    s, t = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, y))
    fn(a, b).backward()
    reference = torch.maximum(s, t) if op == "max" else fn(s, t)
    reference.backward()
    assert same_float(fn(Value(x), Value(y)).data, reference.item())
    assert same_float(a.grad, s.grad.item()) and same_float(b.grad, t.grad.item())
