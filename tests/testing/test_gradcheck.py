"""gradcheck, numerical_grad and analytic_grad themselves: what they compare, report, refuse and restore."""
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_cnn import Tensor, Value, values
from tinygrad_cnn.testing import GradcheckError, analytic_grad, gradcheck, numerical_grad
from tinygrad_cnn.testing import strategies


def scaled(x, slope, rule_slope):
    """slope * x on one Value, with a backward rule that claims rule_slope (to place errors exactly)."""
    return Value(slope * x.data, (x,), "scaled", (rule_slope,))


# --- agreement on correct gradients --------------------------------------------------------------
@given(strategies.arrays(shape=strategies.shapes(max_dims=2)), strategies.arrays(shape=(1,)))
def test_correct_tensor_gradients_pass_on_every_element(a, b):
    x, w = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    assert gradcheck(lambda x, w: ((x * w).tanh() + (x - w).sigmoid() * w).sum(), [x, w])


@given(strategies.arrays(shape=(2, 2), elements=strategies.finite_floats(0.5, 3.0)), strategies.finite_floats())
def test_correct_value_gradients_pass_for_value_arrays_and_single_values(a, c):
    X, c = values(a, "X"), Value(c, name="c")
    assert gradcheck(lambda X, c: (X * c).sum().tanh() + X[0, 1].log() * (X[1, 0] / c.exp()), [X, c])


@given(strategies.arrays(shape=(3,)))
def test_numerical_grad_matches_the_closed_form_derivative(a):
    x = Tensor(a, requires_grad=True)
    (numeric,) = numerical_grad(lambda x: (x ** 3 - x * 2).sum(), [x])
    np.testing.assert_allclose(numeric, 3 * a ** 2 - 2, rtol=1e-6, atol=1e-6)


def test_analytic_grad_returns_backward_gradients_in_numerical_grads_format():
    x, v, X = Tensor([1.0, 2.0], requires_grad=True), Value(3.0), values([[1.0], [4.0]])
    out = analytic_grad(lambda x, v, X: (x * x).sum() * v.data + (X * v).sum().data, [x, v, X])
    np.testing.assert_array_equal(out[0], [6.0, 12.0])
    assert out[1] == 0.0  # only .data of v was used: no graph reaches it
    np.testing.assert_array_equal(out[2], [[0.0], [0.0]])
    grads = analytic_grad(lambda v, X: (X * v).sum(), [v, X])
    assert grads[0] == 5.0 and isinstance(grads[0], float)
    np.testing.assert_array_equal(grads[1], [[3.0], [3.0]])


def test_a_function_that_ignores_its_inputs_has_zero_gradients():
    x = Tensor([1.0, 2.0], requires_grad=True)
    assert gradcheck(lambda x: Tensor(3.0), [x])
    np.testing.assert_array_equal(analytic_grad(lambda x: Tensor(3.0), [x])[0], [0.0, 0.0])


def test_a_tensor_without_requires_grad_is_held_constant_and_not_checked():
    x, c = Tensor([1.0, 2.0], requires_grad=True), Tensor([5.0, 7.0])
    calls = []

    def fn(x, c):
        calls.append(1)
        return (x * c).sum()
    assert numerical_grad(fn, [x, c])[1] is None and analytic_grad(fn, [x, c])[1] is None
    calls.clear()
    assert gradcheck(fn, [x, c])
    assert len(calls) == 2 + 6 * x.size and not c.requires_grad  # shape, backward, 3 differences each


# --- the tolerance and the report ------------------------------------------------------------------
@pytest.mark.parametrize("error, passes", [(0.9e-5 + 0.9e-3 * 2, True), (1.1e-5 + 1.1e-3 * 2, False)])
def test_tolerance_is_atol_plus_rtol_times_the_numeric_derivative(error, passes):
    x = Value(0.7)
    assert gradcheck(lambda x: scaled(x, 2.0, 2.0 + error), [x], raise_exception=False) is passes


def test_the_error_names_input_element_both_values_and_the_error():
    w = values([[0.5, -1.0, 2.0]], "w")
    b = Value(0.25, name="b")

    def fn(w, b):  # the rule of w[0, 1] is off by 3
        return scaled(w[0, 0], 2.0, 2.0) + scaled(w[0, 1], -1.0, 2.0) + w[0, 2] * b
    with pytest.raises(GradcheckError) as info:
        gradcheck(fn, [w, b])
    e = info.value
    assert (e.input, e.index) == (0, (0, 1))
    assert e.analytic == 2.0 and abs(e.numeric + 1.0) < 1e-8
    message = str(e)
    assert re.match(r"gradcheck: wrong gradient for input 0 \(Value array of shape \(1, 3\)\) "
                    r"at element \(0, 1\) \[w\[0,1\]\]:\n  analytic 2.0\n  numeric  -(1\.0|0\.9)", message)
    assert "|analytic - numeric| = 3 > atol + rtol * |numeric| = 0.00101" in message
    assert "(eps=1e-06, atol=1e-05, rtol=0.001)" in message
    assert "1 of 3 elements of this input differ; the largest difference, 3, is at element (0, 1) [w[0,1]]" in message


def test_the_report_gives_the_first_and_the_largest_mismatch_of_a_tensor(monkeypatch):
    import tinygrad_cnn.tensor as tensor
    factor = np.array([1.0, 2.0, 1.0, 5.0])  # a neg rule that is wrong at elements 1 and 3
    monkeypatch.setitem(tensor.PRIMITIVES, "neg", (lambda x: (-x, ()), lambda g: -g * factor))
    x = Tensor(np.zeros(4), requires_grad=True, name="x")
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda x: (-x).sum(), [x])
    assert (info.value.input, info.value.index, info.value.analytic) == (0, (1,), -2.0)
    assert str(info.value).startswith("gradcheck: wrong gradient for input 0 (x, Tensor of shape (4,)) "
                                      "at element (1,):\n  analytic -2.0\n  numeric  -1.0")
    assert str(info.value).endswith("2 of 4 elements of this input differ; the largest difference, 4, "
                                    "is at element (3,)")


def test_a_nan_gradient_is_a_mismatch():
    x = Value(1.0, name="x")
    with pytest.raises(GradcheckError, match=r"input 0 \(x, Value\):\n  analytic nan\n"):
        gradcheck(lambda x: scaled(x, 1.0, float("nan")), [x])


def test_an_analytic_gradient_of_the_wrong_shape_is_refused_by_the_core(monkeypatch):
    import tinygrad_cnn.backend as backend
    monkeypatch.setattr(backend, "unbroadcast", lambda g, shape: g)  # broadcast never summed back
    x, b = Tensor(np.ones((3, 2)), requires_grad=True), Tensor(np.ones((1, 2)), requires_grad=True, name="b")
    with pytest.raises(RuntimeError, match=r"backward of \+: the gradient for input 1 has shape \(3, 2\) but the "
                                           r"input has shape \(1, 2\)"):
        gradcheck(lambda x, b: ((x + b) * x).sum(), [x, b])


def test_raise_exception_false_returns_false_instead():
    assert gradcheck(lambda x: scaled(x, 1.0, 2.0), [Value(1.0)], raise_exception=False) is False


# --- restoring the inputs -----------------------------------------------------------------------------
@given(st.integers(1, 12))
def test_data_and_grads_are_restored_exactly_even_when_fn_raises(fail_at):
    x = Tensor(np.array([0.1, 0.2, 0.3]), requires_grad=True)
    X = values([[0.7, 1.0 / 3.0]])
    v = Value(2.0 / 7.0)
    x.grad, v.grad = np.array([9.0, 8.0, 7.0]), 5.0
    X[0, 0].grad = 4.0
    data, data_x, data_X, data_v = x.data, x.data.copy(), [u.data for u in X.flat], v.data
    calls = []

    def fn(x, X, v):
        calls.append(1)
        if len(calls) == fail_at:
            raise RuntimeError("boom")
        return (x * v.data).sum() * X[0, 0].data + (X[0, 1] * v).data

    for check in (numerical_grad, analytic_grad, gradcheck):
        calls.clear()
        try:
            check(fn, [x, X, v])
        except RuntimeError:
            pass
        assert x.data is data and np.array_equal(x.data, data_x)  # bit for bit, same array
        assert [u.data for u in X.flat] == data_X and v.data == data_v
        np.testing.assert_array_equal(x.grad, [9.0, 8.0, 7.0])
        assert (X[0, 0].grad, X[0, 1].grad, v.grad) == (4.0, 0.0, 5.0)


# --- bad arguments, refused before fn runs ----------------------------------------------------------------
def never(*args):
    raise AssertionError("fn must not run")


def readonly_leaf():
    x = Tensor([1.0, 2.0], requires_grad=True)
    x.data.flags.writeable = False
    return x


@pytest.mark.parametrize("inputs, error, match", [
    ([Tensor([1.0], dtype=np.float32, requires_grad=True)], TypeError,
     r"input 0 \(Tensor of shape \(1,\)\) is float32; central differences need float64"),
    ([Tensor([1.0], requires_grad=True) * 2], ValueError, r"input 0 .* is the result of '\*', not a leaf"),
    ([readonly_leaf()], ValueError, r"input 0 \(Tensor of shape \(2,\)\) has read-only data"),
    ([np.array([Value(1.0), 2.0], dtype=object)], TypeError, r"input 0 \(Value array of shape \(2,\)\) holds a float"),
    ([np.array([1.0, 2.0])], TypeError, r"input 0 must be a Tensor, a Value or an object array of Values, "
                                        r"got a numpy array of float64"),
    ([Value(1.0), 3.0], TypeError, r"input 1 must be .* got a float"),
    ([], ValueError, "inputs is empty"),
    ([Tensor([1.0])], ValueError, "no input requires a gradient"),
])
def test_bad_inputs_are_refused_with_a_clear_error(inputs, error, match):
    for check in (gradcheck, numerical_grad, analytic_grad):
        with pytest.raises(error, match=match):
            check(never, inputs)


@pytest.mark.parametrize("kwargs, match", [(dict(eps=0.0), "eps must be a positive finite number, got 0.0"),
                                           (dict(eps=float("inf")), "eps must be"),
                                           (dict(atol=-1.0), "atol and rtol must be >= 0, got atol=-1.0")])
def test_bad_tolerances_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gradcheck(never, [Value(1.0)], **kwargs)


def test_fn_must_return_a_graph_node():
    with pytest.raises(ValueError, match="fn must return a Tensor, a Value or a Value array, got float"):
        gradcheck(lambda x: 3.0, [Tensor([1.0, 2.0], requires_grad=True)])


def test_a_one_element_value_array_counts_as_a_scalar():
    assert gradcheck(lambda X: X * X, [values([[1.5]])])
