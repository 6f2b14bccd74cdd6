"""tinygrad_cnn.models in float32: the layers' dtype, the float64 twin's weights rounded."""
import numpy as np
import pytest

from tinygrad_cnn.models import digits_cnn, mnist_cnn, square_detector15

MODELS = {"square_detector15": lambda **kw: square_detector15(1, detector_init=True, **kw),
          "digits_cnn": lambda **kw: digits_cnn(1, **kw), "mnist_cnn": lambda **kw: mnist_cnn(1, **kw)}


@pytest.mark.parametrize("name", MODELS)
def test_a_float32_model_is_its_float64_twin_rounded(name):
    single, double = MODELS[name](dtype=np.float32), MODELS[name]()
    assert {p.dtype for p in double.parameters()} == {np.dtype(np.float64)}  # the default
    assert {p.dtype for p in single.parameters()} == {np.dtype(np.float32)}
    assert all(p.requires_grad and p.parents == () for p in single.parameters())  # leaves
    assert [p.name for p in single.parameters()] == [p.name for p in double.parameters()]
    for key, value in double.state_dict().items():
        np.testing.assert_array_equal(single.state_dict()[key], value.astype(np.float32))
    assert single.input_shape == double.input_shape


def test_the_value_engine_takes_float64_only():
    assert square_detector15(engine="value", dtype=np.float64).parameters()[0].numbers().dtype == np.float64
    with pytest.raises(ValueError, match="dtype must be float64 or 'exact'"):
        digits_cnn(engine="value", dtype=np.float32)
