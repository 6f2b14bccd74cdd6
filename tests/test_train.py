"""The training library: short runs on both engines, determinism, resume, best-of starts, data checks."""
import re
import time

import numpy as np
import pytest

from tinygrad_cnn import Tensor, checkpoint, data, train
from tinygrad_cnn.models import digits_cnn, mnist_cnn, square_detector15
from tinygrad_cnn.optim import SGD, Adam

X_SQ, Y_SQ = data.squares(300, seed=5)


def params(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def same(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def run(epochs, engine="tensor", seed=3, start=None):
    """A short squares run; ``start`` = (epoch, checkpoint path) resumes."""
    model = square_detector15(seed, engine)
    optimizer = Adam(model.parameters(), lr=0.05)
    start_epoch = checkpoint.restore(start[1], model, optimizer) if start else 0
    history = train.fit(model, optimizer, X_SQ, Y_SQ, epochs, batch_size=32, seed=seed, start_epoch=start_epoch)
    return model, optimizer, history


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def forward_numpy(state, X):
    """The square detector written with numpy loops (an independent reference)."""
    F, b1, w4, b4 = state["0.weight"][0, 0], state["0.bias"][0], state["4.weight"][0], state["4.bias"][0]
    out = []
    for x in X[:, 0]:
        z1 = np.array([[np.sum(x[i:i + 3, j:j + 3] * F) + b1 for j in range(4)] for i in range(4)])
        a2 = np.maximum(z1, 0).reshape(2, 2, 2, 2).max(axis=(1, 3))
        out.append(sigmoid(a2.ravel() @ w4 + b4))
    return np.array(out)


def test_fit_lowers_the_loss_and_reports_each_epoch():
    model, _, history = run(3)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert len(history[0]["steps"]) == -(-len(X_SQ) // 32)
    assert history[-1]["loss"] < history[0]["loss"]
    step_losses = [s[0] for s in history[0]["steps"]]
    # the running epoch loss is the image-weighted mean of the batch losses
    sizes = [32] * (len(X_SQ) // 32) + [len(X_SQ) % 32]
    assert np.isclose(history[0]["loss"], np.dot(step_losses, sizes) / len(X_SQ))


def test_same_seed_same_numbers_and_another_seed_other_numbers():
    a, _, ha = run(2)
    b, _, hb = run(2)
    c, _, _ = run(2, seed=4)
    assert same(params(a), params(b)) and [h["steps"] for h in ha] == [h["steps"] for h in hb]
    assert not same(params(a), params(c))


def test_resume_from_a_checkpoint_gives_the_uninterrupted_numbers(tmp_path):
    whole, opt_whole, history = run(3)
    part, opt_part, _ = run(1)
    checkpoint.save(tmp_path / "c.npz", part, opt_part, 1)
    resumed, opt_resumed, rest = run(3, start=(1, tmp_path / "c.npz"))
    assert same(params(whole), params(resumed))
    assert [h["steps"] for h in history[1:]] == [h["steps"] for h in rest]
    assert all(np.array_equal(opt_whole.state_dict()[k], v) for k, v in opt_resumed.state_dict().items())


def test_value_engine_trains_the_same_numbers_as_the_tensor_engine():
    X, y = X_SQ[:48], Y_SQ[:48]
    models = {}
    for engine in ("tensor", "value"):
        model = square_detector15(7, engine)
        train.fit(model, SGD(model.parameters(), lr=0.5), X, y, 2, batch_size=16, seed=1)
        models[engine] = params(model)
    assert not same(params(square_detector15(7)), models["tensor"])
    for k in models["tensor"]:
        np.testing.assert_allclose(models["value"][k], models["tensor"][k], rtol=0, atol=1e-10)


def test_evaluate_matches_a_numpy_forward_pass():
    model, _, _ = run(2)
    X, y = data.squares(200, seed=11)
    p = forward_numpy(model.state_dict(), X)
    loss, accuracy = train.evaluate(model, X, y, batch_size=64)
    assert accuracy == np.mean((p > 0.5) == y)
    assert np.isclose(loss, -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)), rtol=1e-10)


def test_multiclass_loss_is_cross_entropy_and_predictions_argmax():
    rng = np.random.default_rng(0)
    X, y = rng.uniform(size=(5, 1, 8, 8)), np.array([0, 3, 9, 3, 1])
    model = digits_cnn(2)
    loss, predicted = train.loss_and_predictions(model, X, y)
    logits = model(Tensor(X)).data
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert np.isclose(loss.item(), -log_p[np.arange(5), y].mean(), rtol=1e-12)
    assert np.array_equal(predicted, logits.argmax(axis=1))


def test_best_of_keeps_the_start_with_the_best_validation_accuracy():
    X, y, X_val, y_val = X_SQ[:200], Y_SQ[:200], X_SQ[200:], Y_SQ[200:]
    rng = np.random.default_rng(0)
    reported = []

    def make(i):
        model = square_detector15(rng)
        return model, Adam(model.parameters(), lr=0.05)

    model, optimizer, history, kept = train.best_of(make, 6, X, y, X_val, y_val, epochs=1, seed=2,
                                                     on_start=lambda i, loss, acc: reported.append((acc, -loss)))
    # each start trained alone gives the numbers reported, and the kept one is the best of them
    again = np.random.default_rng(0)
    for i in range(6):
        alone = square_detector15(again)
        train.fit(alone, Adam(alone.parameters(), lr=0.05), X, y, 1, seed=2)
        loss, acc = train.evaluate(alone, X_val, y_val)
        assert reported[i] == (acc, -loss)
        if i == kept:
            assert same(params(alone), params(model))
    assert kept == max(range(6), key=lambda i: reported[i])
    assert len(set(reported)) > 1 and len(history) == 1 and optimizer.params[0] is model.parameters()[0]


@pytest.mark.parametrize("X, y, message", [
    (np.zeros((4, 1, 7, 7)), np.zeros(4), r"training images are 1x7x7 \(C x H x W\), the model takes 1x6x6"),
    (np.zeros((4, 6, 6)), np.zeros(4), r"\(N, C, H, W\) array of numbers, got shape \(4, 6, 6\)"),
    (np.zeros((4, 1, 6, 6)), np.zeros(3), r"labels must have shape \(4,\), one per image, got \(3,\)"),
    (np.zeros((4, 1, 6, 6)), np.array([0, 1, 2, 1]), r"classes 0..1 of the model; label 2 \(image 2\)"),
    (np.zeros((4, 1, 6, 6)), np.array([0, 0.5, 1, 1]), r"label 0.5 \(image 1\)"),
    (np.zeros((4, 1, 6, 6)), np.array([0, 1, np.nan, 1]), r"labels must be finite numbers"),
    (np.where(np.arange(4 * 36).reshape(4, 1, 6, 6) == 40, np.nan, 0.0), np.zeros(4),
     r"1 NaN or infinite values \(the first in image 1\)"),
])
def test_bad_data_is_refused_before_any_step(X, y, message):
    model = square_detector15(0)
    before = params(model)
    with pytest.raises(ValueError, match=message):
        train.fit(model, Adam(model.parameters(), lr=0.1), X, y, 1)
    assert same(before, params(model))


def test_labels_outside_the_ten_digits_and_a_model_without_input_shape():
    with pytest.raises(ValueError, match=r"classes 0..9 of the model; label 10"):
        train.check_data(mnist_cnn(0), np.zeros((2, 1, 28, 28)), np.array([3, 10]))
    model = digits_cnn(0)
    del model.input_shape  # then the model itself says what does not fit
    with pytest.raises(ValueError, match=r"training images of shape \(1, 3, 3\) do not fit the model: .*"):
        train.check_data(model, np.zeros((2, 1, 3, 3)), np.array([1, 2]))


def test_models_for_digits_and_mnist_have_pytorch_keys_and_shapes():
    for make, size, flat in ((digits_cnn, 8, 64), (mnist_cnn, 28, 400)):
        model = make(1)
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        assert shapes == {"0.weight": (8, 1, 3, 3), "0.bias": (8,), "3.weight": (16, 8, 3, 3), "3.bias": (16,),
                          "7.weight": (10, flat), "7.bias": (10,)}
        assert model(Tensor(np.zeros((2, 1, size, size)))).shape == (2, 10)
        assert model.input_shape == (1, size, size)
        assert same(params(make(1)), params(model)) and not same(params(make(2)), params(model))


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_detector_init_starts_w4_and_b1_at_the_absolute_values_of_the_pytorch_draws(engine):
    flipped = 0
    for seed in range(8):
        torch_like, detector = params(square_detector15(seed)), square_detector15(seed, engine, detector_init=True)
        state = params(detector)
        assert np.array_equal(state["4.weight"], np.abs(torch_like["4.weight"]))
        assert np.array_equal(state["0.bias"], np.abs(torch_like["0.bias"]))
        assert all(np.array_equal(state[k], torch_like[k]) for k in ("0.weight", "4.bias"))
        assert detector.input_shape == (1, 6, 6)
        flipped += np.sum(torch_like["4.weight"] < 0) + np.sum(torch_like["0.bias"] < 0)
    assert flipped > 0
    if engine == "value":
        assert [p.flat[0].name for p in detector.parameters()] == ["F[0,0]", "b1", "w4[0]", "b4"]


# --- progress without a terminal, timing a step (issue 15) --------------------------------------------
def test_without_a_terminal_fit_prints_progress_lines_on_stderr(capsys, monkeypatch):
    monkeypatch.setattr(train, "PROGRESS_EVERY", 0.0)  # after every step (but an epoch's last: its line follows)
    model = square_detector15(0)
    train.fit(model, Adam(model.parameters(), lr=0.05), X_SQ[:100], Y_SQ[:100], 2, batch_size=32, progress=True)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("  ")[0] for line in lines if line.startswith("epoch 2/2")] == [
        "epoch 2/2: step 1/4", "epoch 2/2: step 2/4", "epoch 2/2: step 3/4"]
    train.fit(model, Adam(model.parameters(), lr=0.05), X_SQ[:100], Y_SQ[:100], 1, batch_size=32)
    assert capsys.readouterr().err == ""  # progress=False: silent


def test_a_step_longer_than_the_interval_still_shows_progress(capsys, monkeypatch):
    monkeypatch.setattr(train, "PROGRESS_EVERY", 0.1)
    model = square_detector15(0)
    optimizer = Adam(model.parameters(), lr=0.05)
    real_step = optimizer.step
    monkeypatch.setattr(optimizer, "step", lambda: (time.sleep(0.6), real_step()))
    train.fit(model, optimizer, X_SQ[:10], Y_SQ[:10], 1, batch_size=10, progress=True)  # one slow step
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2 and all(re.fullmatch(r"epoch 1/1: step 0/1  \(the first step is running\)  \d+ s", line)
                                   for line in lines), lines
    time.sleep(0.3)
    assert capsys.readouterr().err == ""  # the thread stopped with the epoch


def test_step_seconds_times_a_sample_and_scales_it_to_a_batch(monkeypatch):
    clock = iter(range(1000))
    monkeypatch.setattr(train.time, "perf_counter", lambda: float(next(clock)))  # every step takes 1 s
    model = square_detector15(0)
    assert train.step_seconds(model, Adam(model.parameters()), X_SQ, Y_SQ, 32, sample=2) == 16.0
    assert train.step_seconds(model, Adam(model.parameters()), X_SQ, Y_SQ, 8) == 1.0  # a whole batch: the faster of two
