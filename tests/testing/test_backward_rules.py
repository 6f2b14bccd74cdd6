"""Details of the backward rules that gradient values alone do not pin down, found by `make mutate`
(mutants of these lines survived the other tests): the type and dtype of a gradient, the
derivative chosen at a kink or a NaN, where finite differences have no answer, and shapes
the op tests do not reach (empty tensors, windows over three dims)."""
import numpy as np
import pytest

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, Value, values
from tinygrad_cnn.testing import gradcheck


def test_a_gradient_is_an_ndarray_of_its_tensors_dtype_for_0d_and_mixed_precision_graphs():
    x = Tensor(2.0, requires_grad=True)
    (x * 3.0).backward()  # numpy gives a scalar, not an array, for 0-d arithmetic
    assert type(x.grad) is np.ndarray and x.grad.shape == () and x.grad == 3.0
    a, b = Tensor(np.ones(3, np.float32), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    (a * b).sum().backward()  # a float64 gradient reaches the float32 leaf
    assert type(a.grad) is np.ndarray and a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_leaky_relu_at_its_kink_takes_the_negative_slope_on_both_engines_as_pytorch_does():
    x = Tensor([0.0, 1e-300, -1e-300], requires_grad=True)
    x.leaky_relu(0.1).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.1, 1.0, 0.1])
    v = Value(0.0)
    v.leaky_relu(0.1).backward()
    assert v.grad == 0.1


def test_broadcasting_with_an_empty_tensor_gives_gradients_of_each_inputs_shape():
    x, y = Tensor(np.zeros((0, 1)), requires_grad=True), Tensor(np.ones((1, 3)), requires_grad=True)
    (x + y).sum().backward()  # (0, 1) + (1, 3) -> (0, 3): nothing to add up, and y's gradient is 0
    assert x.grad.shape == (0, 1)
    np.testing.assert_array_equal(y.grad, np.zeros((1, 3)))


def test_windows_over_three_dims_scatter_their_gradient_back():
    data = np.random.default_rng(0).normal(size=(2, 4, 3, 4))
    r = np.random.default_rng(1).normal(size=(2, 3, 2, 2, 2, 2, 3))
    assert gradcheck(lambda x: (x.windows((2, 2, 3), (1, 1, 1)) * r).sum(), [Tensor(data, requires_grad=True)])


@pytest.mark.parametrize("side", [4, 64])  # small and large arrays take different ways to the arg-max
def test_a_max_with_a_nan_sends_the_gradient_to_the_first_nan_on_both_engines(side):
    data = np.arange(side * side, dtype=float).reshape(1, 1, side, side)
    data[0, 0, 0, 1] = data[0, 0, 1, 0] = np.nan
    x = Tensor(data, requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad[0, 0, :2, :2], [[0.0, 1.0], [0.0, 0.0]])  # as torch's max_pool2d
    assert x.grad.sum() == (side // 2) ** 2
    if side == 4:
        X = values(data)
        with np.errstate(invalid="ignore"):  # numpy notices the NaN comparisons of Value.max
            F.max_pool2d(X, 2).sum().backward()
        assert [v.grad for v in X[0, 0, :2, :2].flat] == [0.0, 1.0, 0.0, 0.0]
