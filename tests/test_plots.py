"""Pictures: heatmaps carry the right number in each cell; the training and worked-example figures are
written; the worked example's follow the page's colours (one diverging scale per figure, white at 0,
the same colour for a number in every panel) and the text's numbers, in labels that fit their cells."""
import importlib
import sys

import numpy as np
import pytest

from tinygrad_cnn import data, nn, train, worked
from tinygrad_cnn.models import square_detector15
from tinygrad_cnn.optim import Adam
from tinygrad_cnn.worked import page
from tinygrad_cnn.worked.text import number

PNG = b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_the_import_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    monkeypatch.delitem(sys.modules, "tinygrad_cnn.plots", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'tinygrad-cnn\[plots\]'"):
        importlib.import_module("tinygrad_cnn.plots")


plots = pytest.importorskip("tinygrad_cnn.plots", exc_type=ImportError)
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402  (after the skip: an optional extra)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.image import imread  # noqa: E402


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


# --- the worked example's pictures: the page's colour convention, the text's numbers ----------------
FORWARD_TITLES = ["X, the input", "F, the kernel", "b1", "w4", "b4", "z1 = conv(X, F) + b1", "a1 = ReLU(z1)",
                  "a2 = maxpool(a1)", "a3 = flatten(a2)", "z4 = w4 . a3 + b4", "a4 = sigmoid(z4)", "L, the loss"]
BACKWARD_TITLES = ["dL/dz4", "dL/dw4", "dL/db4", "dL/da3", "dL/da2", "dL/da1", "dL/dz1", "dL/dF", "dL/db1"]


@pytest.fixture(scope="module", params=["cnn10", "square15"])
def result(request):
    return worked.work(request.param, "tensor")


def panels(fig):
    """{title: axes} of a worked figure's heatmaps (the colour bar's axes has no image)."""
    return {ax.get_title(): ax for ax in fig.axes if ax.images}


def colour_bar(fig):
    return next(ax for ax in fig.axes if not ax.images)


def test_worked_panels_are_in_working_order(result):
    (_, forward), (_, backward) = plots.worked_pictures(result)
    assert list(panels(forward)) == FORWARD_TITLES
    assert list(panels(backward)) == BACKWARD_TITLES  # the order backpropagation reaches them
    assert f"dL/da4 = {number(result.grads['a4'])}" in backward._suptitle.get_text()


def test_every_cell_holds_its_number_as_the_text_prints_it(result):
    figures = dict(plots.worked_pictures(result))
    for fig, rows in zip(figures.values(), plots.worked_panels(result)):
        for title, a in (panel for row in rows for panel in row):
            a = np.atleast_2d(np.asarray(a, dtype=np.float64))
            want = {(i, j): number(v) for (i, j), v in np.ndenumerate(a)}
            assert cells(panels(fig)[title]) == want, title
    if result.model == "cnn10":  # the reference numbers, to the text's six decimals
        forward, backward = (panels(f) for f in figures.values())
        assert cells(forward["a4 = sigmoid(z4)"]) == {(0, 0): "0.268941"}
        assert cells(forward["L, the loss"]) == {(0, 0): "1.313262"}
        assert cells(backward["dL/dw4"]) == {(0, 0): "-2.193176", (0, 1): "-2.924234", (0, 2): "-3.655293",
                                            (0, 3): "-2.193176"}
        assert cells(backward["dL/dF"]) == {(0, 0): "0.731059", (0, 1): "0", (1, 0): "0", (1, 1): "0"}
        assert cells(backward["dL/db1"]) == {(0, 0): "0"}  # never -0


@pytest.mark.parametrize("which, colours", [(0, page.VALUE_COLOURS), (1, page.GRAD_COLOURS)])
def test_one_diverging_scale_per_figure_white_at_0_symmetric_and_shared(result, which, colours):
    _, fig = plots.worked_pictures(result)[which]
    rows = plots.worked_panels(result)[which]
    top = max(float(np.max(np.abs(a))) for row in rows for _, a in row)
    images = [ax.images[0] for ax in panels(fig).values()]
    norms, cmaps = {id(im.norm) for im in images}, {id(im.get_cmap()) for im in images}
    assert len(norms) == 1 and len(cmaps) == 1  # one scale shared by every panel
    assert all(im.get_clim() == (-top, top) for im in images)  # symmetric: +-max|number|
    cmap = images[0].get_cmap()
    low, high = (np.array(c) / 255 for c in colours)
    np.testing.assert_allclose(cmap(0.5)[:3], (1, 1, 1), atol=1e-3)  # white at 0
    np.testing.assert_allclose(cmap(0.0)[:3], low, atol=1e-9)        # the page's colour below 0
    np.testing.assert_allclose(cmap(1.0)[:3], high, atol=1e-9)       # and above
    # the same number has the same colour in every panel: +-0.73 (cnn10) or +-top/2
    v = 0.731059 if top > 0.731059 else top / 2
    for sign in (1, -1):
        rgba = {tuple(np.round(im.cmap(im.norm(sign * v)), 9)) for im in images}
        assert len(rgba) == 1
    # the colour bar gives the range
    bar = colour_bar(fig)
    assert [t.get_text() for t in bar.get_xticklabels()] == [number(-top), "0", number(top)]
    assert f"{number(-top)} to {number(top)}" in bar.get_title()


def test_labels_fit_their_cells_in_one_font_per_figure(result):
    for _, fig in plots.worked_pictures(result):
        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        sizes = set()
        titles = []
        for title, ax in panels(fig).items():
            for t in ax.texts:
                j, i = t.get_position()
                (x0, y0), (x1, y1) = ax.transData.transform([(j - 0.5, i + 0.5), (j + 0.5, i - 0.5)])
                box = t.get_window_extent(renderer)
                assert x0 < box.x0 and box.x1 < x1 and y0 < box.y0 and box.y1 < y1, (title, t.get_text())
                sizes.add(t.get_fontsize())
            titles.append(ax.title.get_window_extent(renderer))
        assert len(sizes) == 1
        for k, a in enumerate(titles):  # no panel title runs into another
            assert not any(a.overlaps(b) for b in titles[k + 1:])


def test_a_colour_means_the_same_in_every_panel_of_the_saved_pictures(tmp_path):
    result = worked.work("cnn10", "tensor")
    written = plots.worked_figures(tmp_path, result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forward.png", "gradients.png"]  # no temp files left
    for path, (_, fig), rows, colours in zip(written, plots.worked_pictures(result), plots.worked_panels(result),
                                             (page.VALUE_COLOURS, page.GRAD_COLOURS)):
        png = imread(path)
        width, height = fig.get_size_inches() * plots.WORKED_DPI
        assert png.shape[:2] == (round(height), round(width))
        top = max(float(np.max(np.abs(a))) for row in rows for _, a in row)
        seen = {}  # number -> {RGB in each cell that holds it}
        for title, a in (panel for row in rows for panel in row):
            ax = panels(fig)[title]
            for (i, j), v in np.ndenumerate(np.atleast_2d(a)):
                x, y = ax.transData.transform((j, i + 0.35))  # below the label, inside the cell
                rgb = tuple(np.round(png[int(round(height - y)), int(x), :3] * 255).astype(int))
                seen.setdefault(number(v), {})[title] = rgb
        for v, where in seen.items():
            want = page._colour(float(v), top, colours)  # the page's colour for this number
            want = tuple(int(want[k:k + 2], 16) for k in (1, 3, 5))
            for title, rgb in where.items():
                assert np.max(np.abs(np.subtract(rgb, want))) <= 1, (v, title, rgb, want)
        if colours is page.GRAD_COLOURS:  # +0.73 in dL/dF and in dL/da2 is one colour, green; -0.73 purple
            plus, minus = seen["0.731059"], seen["-0.731059"]
            assert {"dL/dF", "dL/da2", "dL/da3"} <= set(plus) and len(set(plus.values())) == 1
            assert {"dL/da2", "dL/dz1"} <= set(minus) and len(set(minus.values())) == 1
            (r, g, b), = set(plus.values())
            assert g > r and g > b
            (r, g, b), = set(minus.values())
            assert r > g and b > g
        else:  # 1 in X, F, b1 and w4, 5 in z1, a1, a2 and a3
            assert {"X, the input", "F, the kernel", "b1", "w4"} <= set(seen["1"])
            assert len(set(seen["1"].values())) == 1 and len(set(seen["5"].values())) == 1


def test_a_failed_write_reports_the_real_error_naming_the_picture(tmp_path):
    """Not a FileNotFoundError for a temporary file that was never made: the error of the write itself,
    naming the picture; no temporary file left, an old picture kept."""
    fig = Figure()
    fig.subplots().plot([0, 1])
    with pytest.raises(FileNotFoundError) as info:
        plots._save(fig, tmp_path / "missing" / "m.png")
    assert info.value.filename == str(tmp_path / "missing" / "m.png")
    (tmp_path / "m.png").write_bytes(b"old")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        plots._save(fig, tmp_path / "folder.png")

    class Broken(Figure):
        def savefig(self, f, **kwargs):
            f.write(b"half a pic")
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device") as info:
        plots._save(Broken(), tmp_path / "m.png")
    assert info.value.filename == str(tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "folder.png", "m.png"]
