"""tinygrad_cnn.train with float32 models: inputs, evaluation and the data check in the model's dtype."""
import numpy as np
import pytest

from tinygrad_cnn import data, train
from tinygrad_cnn.models import digits_cnn, square_detector15
from tinygrad_cnn.optim import Adam


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_step_and_evaluate_run_in_the_models_dtype(dtype, monkeypatch):
    model = square_detector15(0, detector_init=True, dtype=dtype)
    assert train.dtype_of(model) == dtype
    X, y = data.squares(64, seed=0)  # float64 images
    seen = []

    def recorded(module, where):
        def forward(x, real=module.forward):
            out = real(x)
            seen.append((where, (x if where == "in" else out).dtype))
            return out
        monkeypatch.setattr(module, "forward", forward)
    recorded(model[0], "in")
    recorded(model[len(model) - 1], "out")
    train.fit(model, Adam(model.parameters(), lr=0.05), X, y, 1, batch_size=32)
    train.evaluate(model, X, y)
    # check_data's forward (classes_of), two steps, one evaluation batch
    assert seen == [("in", np.dtype(dtype)), ("out", np.dtype(dtype))] * 4
    assert {p.dtype for p in model.parameters()} == {p.grad.dtype for p in model.parameters()} == {np.dtype(dtype)}


def test_value_models_count_as_float64():
    assert train.dtype_of(square_detector15(engine="value")) == np.float64


def test_images_too_large_for_a_float32_model_are_refused_by_name():
    X, y = np.zeros((3, 1, 8, 8)), np.array([0, 1, 2])
    X[2, 0, 3, 3] = 1e39  # finite in float64, inf in float32
    train.check_data(digits_cnn(), X, y)
    with pytest.raises(ValueError, match=r"training images hold 1 values too large for the model's float32 "
                                         r"\(the first, 1e\+39, in image 2\)"):
        train.check_data(digits_cnn(dtype=np.float32), X, y)
