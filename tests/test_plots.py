"""Pictures: heatmaps carry the right number in each cell; the training and worked-example figures are written."""
import importlib
import sys

import numpy as np
import pytest

from tinygrad_cnn import data, nn, train, worked
from tinygrad_cnn.models import square_detector15
from tinygrad_cnn.optim import Adam

PNG = b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_import_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    monkeypatch.delitem(sys.modules, "tinygrad_cnn.plots", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'tinygrad-cnn\[plots\]'"):
        importlib.import_module("tinygrad_cnn.plots")


plots = pytest.importorskip("tinygrad_cnn.plots", exc_type=ImportError)
from matplotlib.figure import Figure  # noqa: E402  (after the skip: matplotlib is an optional extra)


def axes():
    return Figure().subplots()


def cells(ax):
    """{(row, col): text} of the numbers drawn on ``ax``."""
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}


def test_heatmap_prints_each_cell_number_in_its_cell():
    a = np.array([[0.5, -1.25, 3.0], [12.5, 0.0, -0.004]])
    ax = axes()
    image = plots.heatmap(ax, a, "a")
    assert cells(ax) == {(0, 0): "0.5", (0, 1): "-1.2", (0, 2): "3.0", (1, 0): "12.5", (1, 1): "0.0",
                         (1, 2): "-0.0"}
    assert image.get_cmap().name == "RdBu_r" and image.get_clim() == (-12.5, 12.5) and ax.get_title() == "a"


def test_heatmap_formats_small_and_non_negative_maps():
    ax = axes()
    image = plots.heatmap(ax, [[0.0123, 0.5], [0.25, 0.75]])
    assert cells(ax) == {(0, 0): "0.01", (0, 1): "0.50", (1, 0): "0.25", (1, 1): "0.75"}
    assert image.get_cmap().name == "Blues" and image.get_clim() == (0.0, 0.75)
    ax = axes()
    plots.heatmap(ax, [1e-4, -3e-4])  # a vector is one row; tiny gradients keep two significant digits
    assert cells(ax) == {(0, 0): "0.0001", (0, 1): "-0.0003"}


def test_large_maps_are_colour_only_unless_asked():
    big = np.arange(400.0).reshape(20, 20)
    ax = axes()
    plots.heatmap(ax, big)
    assert len(ax.texts) == 0
    ax = axes()
    plots.heatmap(ax, big, numbers=True)
    assert len(ax.texts) == 400 and cells(ax)[(19, 3)] == "383.0"


def test_draw_maps_writes_a_png_atomically(tmp_path):
    path = plots.draw_maps(tmp_path / "m.png", [[("x", np.eye(3))], [("y", np.ones((2, 2)))]], "title")
    assert path.read_bytes()[:8] == PNG if hasattr(path, "read_bytes") else open(path, "rb").read(8) == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]


def conv_numpy(x, F, b):
    k = F.shape[0]
    n = x.shape[0] - k + 1
    return np.array([[np.sum(x[i:i + k, j:j + k] * F) + b for j in range(n)] for i in range(n)])


def test_feature_maps_are_each_layers_output():
    model = square_detector15(4)
    X, _ = data.squares(3, seed=1)
    maps, output = plots.feature_maps(model, X[2])
    state = model.state_dict()
    z1 = conv_numpy(X[2, 0], state["0.weight"][0, 0], state["0.bias"][0])
    a2 = np.maximum(z1, 0).reshape(2, 2, 2, 2).max(axis=(1, 3))
    assert [label for label, _ in maps] == ["input", "0: Conv2d", "1: ReLU", "2: MaxPool2d"]
    for (_, got), want in zip(maps, (X[2], [z1], [np.maximum(z1, 0)], [a2])):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert np.isclose(output[0], 1 / (1 + np.exp(-(a2.ravel() @ state["4.weight"][0] + state["4.bias"][0]))))


def test_training_figures_for_a_net_of_several_channels_and_classes(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.uniform(size=(40, 1, 8, 8)), rng.integers(0, 3, 40)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(32, 3, rng=rng))
    history = train.fit(model, Adam(model.parameters(), lr=0.01), X, y, 2, batch_size=16)
    written = plots.training_figures(tmp_path / "pictures", model, history, X[0], test_accuracy=0.5)
    assert [p.rsplit("/", 1)[1] for p in written] == ["curves.png", "kernels.png", "feature_maps.png"]
    for p in written:
        assert open(p, "rb").read(8) == PNG


def test_worked_example_figures(tmp_path):
    written = plots.worked_figures(tmp_path, worked.work("square15", "tensor"))
    assert [p.rsplit("/", 1)[1] for p in written] == ["forward.png", "gradients.png"]
    for p in written:
        assert open(p, "rb").read(8) == PNG


def test_worked_command_draws_its_maps(tmp_path, capsys):
    from tinygrad_cnn.cli import main
    assert main(["worked", "--model", "square15", "--plots", str(tmp_path / "w")]) == 0
    assert f"pictures: {tmp_path / 'w' / 'forward.png'}, {tmp_path / 'w' / 'gradients.png'}" in capsys.readouterr().out
    (tmp_path / "file").write_text("")
    assert main(["worked", "--plots", str(tmp_path / "file")]) == 2
    assert "--plots: expected a folder" in capsys.readouterr().err
