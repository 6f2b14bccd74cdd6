"""Details of the backward rules that gradient values alone do not pin down, found by `make mutate`
(mutants of these lines survived every gradcheck): the type and dtype of a gradient, and the
derivative chosen at a kink, where finite differences have no answer."""
import numpy as np

from tinygrad_cnn import Tensor, Value


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
