"""Custom operations: tinygrad_cnn.Function on Tensors and Value arrays, hand-made Value nodes, and the
gradcheck that tests them (non-scalar outputs, the full Jacobian, gradcheck_numpy, unreliable numbers)."""
import numpy as np
import pytest
from hypothesis import given

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Function, Tensor, Value, values, viz
from tinygrad_cnn.testing import (GradcheckError, NumericallyUnreliable, central_differences, gradcheck, gradcheck_numpy,
                                  strategies)


class Softplus(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.logaddexp(0.0, x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad / (1.0 + np.exp(-x))


class Reverse(Function):
    """A reverse whose backward forgot to reverse: right for .sum(), wrong for everything else."""

    @staticmethod
    def forward(ctx, x):
        return x[::-1].copy()

    @staticmethod
    def backward(ctx, grad):
        return grad


class Scale(Function):
    """x * k for a number k passed through; records what needs_input_grad said."""
    seen = []

    @staticmethod
    def forward(ctx, x, k):
        ctx.k = k
        Scale.seen.append(ctx.needs_input_grad)
        return x * k

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.k, None


class Conv2dNumpy(Function):
    """A cross-correlation written in numpy loops, with its hand-written backward."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        (n, _, h, wd), (o, _, kh, kw) = x.shape, w.shape
        out = np.zeros((n, o, h - kh + 1, wd - kw + 1))
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                out[:, :, i, j] = np.einsum("nckl,ockl->no", x[:, :, i:i + kh, j:j + kw], w)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        kh, kw = w.shape[2:]
        dx, dw = np.zeros_like(x), np.zeros_like(w)
        for i in range(grad.shape[2]):
            for j in range(grad.shape[3]):
                dx[:, :, i:i + kh, j:j + kw] += np.einsum("no,ockl->nckl", grad[:, :, i, j], w)
                dw += np.einsum("no,nckl->ockl", grad[:, :, i, j], x[:, :, i:i + kh, j:j + kw])
        return dx, dw


def leaf(data):
    return Tensor(np.array(data, dtype=np.float64), requires_grad=True)


# --- Function on Tensors -------------------------------------------------------------------------------
@given(strategies.function_inputs(("n", "m")))
def test_a_users_softplus_passes_gradcheck_on_its_non_scalar_output(inputs):
    assert gradcheck(Softplus.apply, inputs)


def test_softplus_is_one_node_named_after_its_class_and_drawn_so():
    t = leaf(np.linspace(-3, 3, 7))
    y = Softplus.apply(t)
    assert y.op == "Softplus" and y.parents == (t,)
    np.testing.assert_allclose(y.data, np.log1p(np.exp(t.data)))
    (y * 2).sum().backward()
    np.testing.assert_allclose(t.grad, 2 / (1 + np.exp(-t.data)))
    assert "Softplus" in viz.to_dot(y.sum()).source


def test_a_reverse_that_forgot_to_reverse_passes_the_sum_but_not_gradcheck():
    t = leaf([1.0, 2.0, 3.0, 4.0])
    assert gradcheck(lambda t: Reverse.apply(t).sum(), [t])  # the .sum() pattern hides the routing bug
    with pytest.raises(GradcheckError, match=r"of sum\(output \* u\), u a random cotangent of shape \(4,\)"):
        gradcheck(Reverse.apply, [t])
    with pytest.raises(GradcheckError, match=r"of output element \(0,\)"):
        gradcheck(Reverse.apply, [t], full_jacobian=True)


def test_a_custom_conv_in_numpy_matches_conv2d_and_passes_gradcheck():
    rng = np.random.default_rng(0)
    x, w = leaf(rng.normal(size=(2, 2, 5, 4))), leaf(rng.normal(size=(3, 2, 2, 3)))
    np.testing.assert_allclose(Conv2dNumpy.apply(x, w).data, F.conv2d(x, w).data, rtol=1e-12)
    assert gradcheck(Conv2dNumpy.apply, [x, w])
    assert gradcheck(Conv2dNumpy.apply, [leaf(rng.normal(size=(1, 1, 3, 3))), leaf(rng.normal(size=(1, 1, 2, 2)))],
                     full_jacobian=True)


def test_non_tensor_arguments_pass_through_and_needs_input_grad_tells_which_need_one():
    Scale.seen.clear()
    t, c = leaf([1.0, 2.0]), Tensor([3.0, 4.0])
    out = Scale.apply(t, 2.5)
    out.sum().backward()
    np.testing.assert_array_equal(t.grad, [2.5, 2.5])
    Scale.apply(c, 2.0)
    assert Scale.seen == [(True, False), (False, False)]
    assert not Scale.apply(c, 2.0).requires_grad


class WrongCount(Softplus):
    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class WrongShape(Softplus):
    @staticmethod
    def backward(ctx, grad):
        return grad[:-1]


class NotAnArray(Softplus):
    @staticmethod
    def backward(ctx, grad):
        return "grad"


@pytest.mark.parametrize("op, error, words", [
    (WrongCount, ValueError, "WrongCount.backward returned 2 gradients but forward takes 1 input"),
    (WrongShape, RuntimeError, r"backward of WrongShape: the gradient for input 0 has shape \(2,\) but the input "
                               r"has shape \(3,\)"),
    (NotAnArray, TypeError, "NotAnArray.backward: the gradient for input 0 must be a numpy array or None, got str"),
])
def test_a_wrong_backward_is_refused_with_the_functions_name(op, error, words):
    with pytest.raises(error, match=words):
        op.apply(leaf([1.0, 2.0, 3.0])).sum().backward()
    with pytest.raises(error, match=words):  # on Value arrays the same checks, at apply
        op.apply(values([1.0, 2.0, 3.0]))


def test_forward_must_return_numbers():
    class Text(Function):
        @staticmethod
        def forward(ctx, x):
            return "x"
    with pytest.raises(TypeError, match="Text.forward must return a numpy array, got str"):
        Text.apply(leaf([1.0]))


# --- Function on Value arrays ------------------------------------------------------------------------
@given(strategies.arrays(shape=strategies.shapes(max_dims=2, max_side=3)))
def test_on_values_one_node_per_output_element_with_the_tensor_paths_numbers(data):
    x, t = values(data, "x"), leaf(data)
    out, expected = Softplus.apply(x), Softplus.apply(t)
    assert out.shape == expected.shape and all(v.op == "Softplus" for v in out.flat)
    np.testing.assert_allclose(out.numbers(), expected.data, rtol=1e-12)
    g = np.random.default_rng(0).normal(size=data.shape)
    out.backward(g)
    expected.backward(g)
    np.testing.assert_allclose(x.grads(), t.grad, rtol=1e-12, atol=1e-15)
    assert gradcheck(Softplus.apply, [values(data)])


def test_on_values_a_mixing_backward_gives_each_output_its_own_parents():
    x = values([1.0, 2.0, 3.0], "x")
    out = Conv2dNumpy.apply(x.reshape(1, 1, 1, 3), values([[[[1.0, -1.0]]]], "w"))
    assert [[p.name for p in v.parents] for v in out.flat] == [["x[0]", "x[1]", "w[0,0,0,0]", "w[0,0,0,1]"],
                                                               ["x[1]", "x[2]", "w[0,0,0,0]", "w[0,0,0,1]"]]


def test_tensors_and_values_do_not_mix():
    with pytest.raises(TypeError, match=r"Conv2dNumpy.apply: cannot mix Tensors \(inputs \[0\]\) and Values"):
        Conv2dNumpy.apply(leaf(np.ones((1, 1, 2, 2))), values(np.ones((1, 1, 1, 1))))


# --- hand-made Value nodes -----------------------------------------------------------------------------
@pytest.mark.parametrize("args, error, words", [
    (((Value(5.0),), "custom", ()), ValueError, "Value(..., op='custom') has 1 parent but 0 local derivatives"),
    (((Value(5.0),), "custom", ("a",)), TypeError, "local derivative 0 must be a real number, got str"),
    (((3.0,), "custom", (1.0,)), TypeError, "parent 0 must be a Value, got float"),
    (((Value(1.0), Value(2.0)), "custom", (1.0,)), ValueError, "has 2 parents but 1 local derivative"),
])
def test_a_hand_made_value_node_is_checked_when_made(args, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        Value(1.0, *args)


def test_a_hand_made_value_node_backpropagates_its_local_derivative():
    v = Value(2.0)
    Value(5.0, (v,), "custom", (3,)).backward()
    assert v.grad == 3.0


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_a_hand_made_value_node_keeps_any_number_of_parents_in_order(n):
    leaves = [Value(float(i)) for i in range(n)]
    parents = leaves + leaves[:1]  # the first parent twice: its two derivatives add up
    out = Value(1.0, parents, "custom", [10.0 * (i + 1) for i in range(len(parents))]) if n else Value(1.0)
    assert out.parents == (tuple(parents) if n else ()) and out.op == ("custom" if n else "")
    assert out.is_leaf == (n == 0)
    assert out.topo_order()[-1] is out and set(out.topo_order()[:-1]) == set(leaves)
    out.backward(2.0)
    assert [v.grad for v in leaves] == [20.0 * (i + 1) + (20.0 * (n + 1) if i == 0 else 0.0) for i in range(n)]


# --- gradcheck for code outside the package ------------------------------------------------------------
def test_gradcheck_numpy_checks_a_hand_written_vjp():
    x = np.linspace(-1, 1, 5)
    assert gradcheck_numpy(np.sin, lambda g, x: g * np.cos(x), [x])
    assert gradcheck_numpy(lambda a, b: a @ b, lambda g, a, b: (g @ b.T, a.T @ g), [np.ones((2, 3)), np.eye(3)])
    with pytest.raises(GradcheckError, match=r"wrong gradient for input 0 \(input 0, Tensor of shape \(5,\)\)"):
        gradcheck_numpy(lambda x: x[::-1], lambda g, x: g, [x])
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck_numpy(lambda a, b: a @ b, lambda g, a, b: (g @ b.T, a @ g), [np.arange(9.0).reshape(3, 3),
                                                                            np.eye(3) * 2])


# --- numerically unreliable ---------------------------------------------------------------------------
def test_a_derivative_lost_to_rounding_is_reported_as_unreliable_not_wrong():
    x = leaf([0.5])
    fn = lambda t: (t + 1e8) - 1e8  # noqa: E731  (d/dt = 1, but central differences see only 1e-8 steps)
    with pytest.raises(NumericallyUnreliable, match="numerically unreliable here, for input 0") as info:
        gradcheck(fn, [x])
    assert info.value.error > 1e-3 and info.value.analytic == 1.0


def test_a_kink_within_the_step_is_unreliable_too():
    with pytest.raises(NumericallyUnreliable, match="a kink within"):
        gradcheck(lambda t: t.relu().sum(), [leaf([1e-6, 1.0])])


def test_the_count_of_gradients_is_checked_either_way():
    class TooFew(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, grad):
            return (grad,)
    with pytest.raises(ValueError, match="TooFew.backward returned 1 gradient but forward takes 2 inputs"):
        TooFew.apply(leaf([1.0]), leaf([2.0])).sum().backward()
    with pytest.raises(ValueError, match="WrongCount.backward returned 2 gradients but forward takes 1 input$"):
        WrongCount.apply(leaf([1.0])).sum().backward()


def test_an_integer_forward_result_becomes_float64():
    class Count(Function):
        @staticmethod
        def forward(ctx, x):
            return (x > 0).astype(np.int64)

        @staticmethod
        def backward(ctx, grad):
            return np.zeros_like(grad)
    out = Count.apply(leaf([-1.0, 2.0]))
    assert out.dtype == np.float64 and out.data.tolist() == [0.0, 1.0]


# --- gradcheck's own machinery -------------------------------------------------------------------------
def test_central_differences_give_the_derivative_and_an_error_estimate():
    x = np.array([[0.5, -1.0], [2.0, 3.0]])
    grad, error = central_differences(lambda a: (a ** 3).sum(), x)
    np.testing.assert_allclose(grad, 3 * x ** 2, rtol=1e-8)
    assert grad.shape == error.shape == x.shape and np.all(error < 1e-6)
    _, noisy = central_differences(lambda a: ((a + 1e8) - 1e8).sum(), x)
    assert np.all(noisy > 1e-3)  # rounding at 1e8 swamps steps of 1e-6


def test_the_unreliable_report_names_the_element_the_steps_and_the_tolerance():
    x = Tensor([0.25, 0.5], requires_grad=True, name="t")
    fn = lambda t: (t * 2.0).sum() + ((t[1] + 1e8) - 1e8)  # noqa: E731  (element 1 rounds, element 0 does not)
    with pytest.raises(NumericallyUnreliable) as info:
        gradcheck(fn, [x])
    lines = str(info.value).splitlines()
    assert lines[0] == "gradcheck: the numeric derivative is numerically unreliable here, for input 0 (t, Tensor of " \
                       "shape (2,)) at element (1,):"
    assert lines[2] == "  analytic 3.0" and "estimated error" in lines[1] and "> the tolerance 0.00301" in lines[1]
    assert lines[3] == "  (central differences at eps=1e-06, 5e-07 and 2e-06 disagree: rounding in fn, or a kink " \
                       "within 2e-06); 1 of 2 elements of this input are so"
    assert info.value.index == (1,) and info.value.input == 0
    assert gradcheck(fn, [x], rtol=0.5)  # a looser tolerance: the same numbers now decide, and they agree


@pytest.mark.parametrize("kwargs, words", [(dict(eps=-1e-6), "eps must be a positive finite number"),
                                           (dict(rtol=-0.5), "atol and rtol must be >= 0")])
def test_negative_steps_and_tolerances_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        gradcheck(Softplus.apply, [leaf([1.0])], **kwargs)


def test_gradients_already_there_neither_count_nor_get_lost():
    t, v = leaf([0.5, -1.0]), values([0.5, -1.0])
    t.grad = np.array([7.0, 7.0])
    for x in v.flat:
        x.grad = 7.0
    assert gradcheck(Softplus.apply, [t]) and gradcheck(Softplus.apply, [v])
    np.testing.assert_array_equal(t.grad, [7.0, 7.0])
    np.testing.assert_array_equal(v.grads(), [7.0, 7.0])


def test_a_function_without_its_rules_says_which_one_is_missing():
    class NoBackward(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    out = NoBackward.apply(leaf([1.0]))
    with pytest.raises(NotImplementedError, match="a Function subclass must define backward"):
        out.sum().backward()
    with pytest.raises(NotImplementedError, match="a Function subclass must define forward"):
        Function.apply(leaf([1.0]))
