"""tinygrad_cnn.viz: the pictures of the 10-parameter network's graph (drawn by Graphviz and read
back as XML), the DOT text (deterministic, snapshot), the options, the guard, and a missing ``dot``.

Counting: a graph of N nodes, K of them made by an operation, is drawn with ``expand=True`` as
N - C value boxes (C: the constants folded into their operation's oval) plus K operation ovals;
the boxes have ids v<i> and the ovals o<i>, i the node's place in ``root.topo_order()``. By
default a loss layer is one oval ("BCE") from its inputs to the loss: its other L - 1 computed
nodes are not drawn, and its L ovals are one.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, Value, values, viz
from tinygrad_cnn import worked as W
from tinygrad_cnn.autograd import layer
from tinygrad_cnn.models import tiny_cnn10
from tinygrad_cnn.testing import strategies as tst
from tinygrad_cnn.worked import modelfile

SNAPSHOTS = Path(__file__).parent / "snapshots"
SVG = "{http://www.w3.org/2000/svg}"
PARAM_NAMES = ["F[0,0]", "F[0,1]", "F[1,0]", "F[1,1]", "b1", "w4[0]", "w4[1]", "w4[2]", "w4[3]", "b4"]
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")


def fmt(x):
    return f"{float(x) + 0.0:.4g}"


@pytest.fixture(scope="module")
def scalar():
    return W.work("cnn10", "value").root


@pytest.fixture(scope="module")
def tensor():
    return W.work("cnn10", "tensor").root


def reference_parameters():
    """{name: (data, grad)} of the 10 parameters, from the Tensor engine (an engine independent of the
    Value graph drawn), after backward on the worked example."""
    model = tiny_cnn10(engine="tensor")
    loss = F.binary_cross_entropy(model(Tensor(np.reshape(W.WORKED_X, (1, 1, 5, 5)))), [[1.0]])
    loss.backward()
    out = {}
    for short, key in W.PARAMS.items():
        p = dict(model.named_parameters())[key]
        data, grad = p.data.squeeze(), p.grad.squeeze()
        for index in np.ndindex(data.shape):
            name = f"{short}[{','.join(map(str, index))}]" if index else short
            out[name] = (data[index], grad[index])
    return out


def expected_counts(root, expand=False):
    """(value boxes, operation ovals) for the default options: unnamed leaves of a layer are folded;
    unless expand, the loss layer (whose one result is the root, its constants numbers) is one oval."""
    order = root.topo_order()
    folded = [n for n in order if not n.parents and n.name is None and n.layer is not None
              and np.size(n.data) == 1 and not getattr(n, "requires_grad", False)]
    boxes, ovals = len(order) - len(folded), sum(1 for n in order if n.parents)
    if not expand:
        loss = [n for n in order if n.parents and n.layer == "loss"]
        boxes, ovals = boxes - (len(loss) - 1), ovals - (len(loss) - 1)
    return boxes, ovals


# --- reading the SVG that dot drew ----------------------------------------------------------------------------
def box(g):
    """(x0, y0, x1, y1) of the outline of a drawn node or cluster (its first shape)."""
    shape = next(e for e in g if e.tag in (f"{SVG}path", f"{SVG}polygon", f"{SVG}ellipse"))
    if shape.tag == f"{SVG}ellipse":
        x, y, rx, ry = (float(shape.get(k)) for k in ("cx", "cy", "rx", "ry"))
        return x - rx, y - ry, x + rx, y + ry
    xy = np.array([float(v) for v in re.findall(r"-?\d+\.?\d*", shape.get("d") or shape.get("points"))])
    xy = xy.reshape(-1, 2)
    return (*xy.min(axis=0), *xy.max(axis=0))


def parse_svg(data):
    """{title: [texts]} of the drawn nodes, {title: (label texts, box)} of the clusters, {title: box} of the nodes."""
    tree = ET.fromstring(data)
    nodes, clusters, boxes = {}, {}, {}
    for g in tree.iter(f"{SVG}g"):
        title = g.findtext(f"{SVG}title")
        texts = [t.text.replace("\xa0", " ").strip() for t in g.iter(f"{SVG}text") if t.text and t.text.strip()]
        if g.get("class") == "node":
            nodes[title], boxes[title] = texts, box(g)
        elif g.get("class") == "cluster":
            clusters[title] = (texts, box(g))
    return nodes, clusters, boxes


def drawn(nodes):
    boxes = [t for t in nodes if re.fullmatch(r"v\d+", t)]
    ovals = [t for t in nodes if re.fullmatch(r"o\d+", t)]
    return boxes, ovals


def overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def render_and_read(root, path, **options):
    """Draw ``root`` with dot, check one drawn node per graph node (as counted above); return
    ({name: texts of its box}, clusters, number of drawn nodes, {name: where its box is})."""
    nodes, clusters, where = parse_svg(Path(viz.render(root, str(path), params=tuple(W.PARAMS), **options)).read_bytes())
    boxes, ovals = drawn(nodes)
    assert (len(boxes), len(ovals)) == expected_counts(root, options.get("expand", False))
    named = {nodes[title][0]: title for title in boxes}
    return ({name: nodes[title] for name, title in named.items()}, clusters, len(boxes) + len(ovals),
            {name: where[title] for name, title in named.items()})


@needs_dot
def test_scalar_picture_has_every_node_every_parameter_and_the_layers_left_to_right(scalar, tmp_path):
    by_name, clusters, count, where = render_and_read(scalar, tmp_path / "g.svg")
    assert 300 < count < 500                                     # "a few hundred nodes"
    for names in (PARAM_NAMES[:4], PARAM_NAMES[5:9]):
        tops = [where[n][1] for n in names]                       # an array's leaves in index order, top down
        assert len(names) == 4 and tops == sorted(tops), names
    assert_image_grid(where, "X", 5, 5)
    for name, (data, grad) in reference_parameters().items():
        assert by_name[name][1:] == [f"data {fmt(data)}", f"grad {fmt(grad)}"], name
    assert set(PARAM_NAMES) <= set(by_name) and "X[4,4]" in by_name and "z1[3,3]" in by_name

    layers = {}
    for title, (texts, box) in clusters.items():
        if re.fullmatch(r"cluster_\d+", title):
            layers[texts[0]] = box
    order = [label for _, label in W.STEPS if label in layers] + ["loss"]
    assert set(order) == set(layers) == {n.layer for n in scalar.topo_order()} - {None}
    for a, b in zip(order, order[1:]):                          # flow left to right, clusters apart
        assert layers[a][2] < layers[b][0], (a, b)
    assert not any(overlap(layers[a], layers[b]) for a in layers for b in layers if a < b)
    units = [texts[0] for title, (texts, _) in clusters.items() if re.fullmatch(r"cluster_\d+_\d+", title)]
    assert sorted(units) == sorted([f"z1[{i},{j}]" for i in range(4) for j in range(4)]
                                   + [f"a2[{i},{j}]" for i in range(2) for j in range(2)])


def assert_image_grid(where, name, rows, cols):
    """The leaves name[i,j] drawn as the image: each row level, rows top down, each row left to right."""
    grid = [[where[f"{name}[{i},{j}]"] for j in range(cols)] for i in range(rows)]
    for row in grid:
        tops, lefts = [b[1] for b in row], [b[0] for b in row]
        assert max(tops) - min(tops) < 1 and lefts == sorted(lefts) and len(set(lefts)) == cols
    assert all(a[0][3] < b[0][1] for a, b in zip(grid, grid[1:]))           # row i above row i + 1
    for j in range(cols):                                                    # columns line up (centred)
        centres = [(r[j][0] + r[j][2]) / 2 for r in grid]
        assert max(centres) - min(centres) < 1


@needs_dot
def test_tensor_picture_shows_shapes_and_small_arrays(tensor, tmp_path):
    by_name, clusters, _, _ = render_and_read(tensor, tmp_path / "t.svg")
    ref = reference_parameters()
    for short in ("F", "w4"):
        texts = by_name[short]
        names = [n for n in PARAM_NAMES if n.startswith(short)]
        i = texts.index("data")
        assert texts[i + 1:i + 1 + len(names)] == [fmt(ref[n][0]) for n in names]
        j = texts.index("grad")
        assert texts[j + 1:j + 1 + len(names)] == [fmt(ref[n][1]) for n in names]
    for short in ("b1", "b4"):
        assert by_name[short][-4:] == ["data", fmt(ref[short][0]), "grad", fmt(ref[short][1])]
    assert by_name["F"][1] == "(1, 1, 2, 2)"
    labels = {texts[0] for title, (texts, _) in clusters.items()}
    assert {label for _, label in W.STEPS} | {"loss"} <= labels   # flatten is a reshape node here


# --- the DOT text ---------------------------------------------------------------------------------------------
def small_graph():
    """A hand-built graph with two layers, a named parameter array, an input, a constant (the 1)."""
    x, w, b = values([1.0, -2.0], name="x"), values([0.5, -1.5], name="w"), Value(0.25, name="b")
    with layer("0: Linear"):
        z = x[0] * w[0] + x[1] * w[1] + b
    with layer("1: ReLU"):
        a = z.relu()
    with layer("loss"):
        loss = (1 - a) ** 2
    loss.backward()
    return loss, [w, b]


def small_tensor_graph():
    x = Tensor([[1.0, 2.0]], name="x")
    w = Tensor([[0.5], [0.25]], requires_grad=True, name="w")
    with layer("linear"):
        y = (x @ w).relu()
    with layer("loss"):
        loss = ((y - 1.0) ** 2).sum()
    loss.backward()
    return loss


def small_scalar_dot():
    loss, params = small_graph()
    return viz.to_dot(loss, params=params)


def small_scalar_expanded_dot():
    loss, params = small_graph()
    return viz.to_dot(loss, params=params, expand=True, rankdir="LR")


@pytest.mark.parametrize("name, build", [("small_scalar", small_scalar_dot),
                                         ("small_scalar_expanded", small_scalar_expanded_dot),
                                         ("small_tensor", lambda: viz.to_dot(small_tensor_graph()))])
def test_dot_text_matches_its_snapshot(name, build):
    """Regenerate after an intended change: TINYGRAD_CNN_UPDATE_SNAPSHOTS=1 pytest tests/test_viz.py"""
    source = build().source
    path = SNAPSHOTS / f"{name}.dot"
    if os.environ.get("TINYGRAD_CNN_UPDATE_SNAPSHOTS"):
        path.write_text(source, encoding="utf-8")
    assert source == path.read_text(encoding="utf-8")
    assert build().source == source


def test_snapshot_reads_as_intended():
    expanded = (SNAPSHOTS / "small_scalar_expanded.dot").read_text(encoding="utf-8")
    assert 'label="1 − ·"' in expanded                            # the constant 1 folded into its op
    assert expanded.count("cluster_") == 3 and "label=\"0: Linear\"" in expanded and "label=loss" in expanded
    assert "peripheries=2" in expanded and "rankdir=LR" in expanded
    assert re.search(r"<B>w\[0\]</B>.*data 0\.5.*grad 5\.5.*penwidth=2\.5", expanded)   # (1 - 3.75)**2: 2 * 2.75 * 1
    source = (SNAPSHOTS / "small_scalar.dot").read_text(encoding="utf-8")
    assert "1 − ·" not in source and source.count("label=MSE") == 1    # (1 - a)**2: one squared-error oval
    assert "rankdir=TB" in source                                  # a small graph: LR would be a 5:1 strip
    assert 'fontname="DejaVu Sans,Verdana,Arial,sans-serif"' in source and "Helvetica" not in source


def test_dot_is_the_same_in_a_fresh_process_whatever_the_hash_seed(scalar):
    code = ("import sys; from tinygrad_cnn import viz, worked as W; "
            "sys.stdout.write(viz.to_dot(W.work('cnn10', 'value').root, params=tuple(W.PARAMS)).source)")
    here = viz.to_dot(scalar, params=tuple(W.PARAMS)).source
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert out == here


def edges(source):
    return re.findall(r"^\t(\w+) -> (\w+)(?: \[(.*)\])?$", source, flags=re.M)


def test_each_kernel_weight_fans_out_to_16_multiplications_in_its_own_colour(scalar):
    source = viz.to_dot(scalar, params=tuple(W.PARAMS)).source
    ids = dict(re.findall(r"^\t+(v\d+) \[label=<.*?<B>([^<]*)</B>", source, flags=re.M))
    ops = dict(re.findall(r'^\t+(o\d+) \[label="([^"]*)"', source, flags=re.M))
    colours = set()
    for name in ("F[0,0]", "F[0,1]", "F[1,0]", "F[1,1]", "b1"):
        node = next(i for i, n in ids.items() if n == name)
        out = [(b, attrs) for a, b, attrs in edges(source) if a == node]
        assert len(out) == 16
        assert {ops[b] for b, _ in out} == ({"×"} if name != "b1" else {"+"})
        colour = {re.search(r"color=\"(#\w+)\"", attrs).group(1) for _, attrs in out}
        assert len(colour) == 1
        colours |= colour
    assert len(colours) == 5
    assert re.search(r"<B>L</B>.*peripheries=2", source)             # the loss, where backward starts


def test_collapsed_conv_draws_each_output_from_its_window_the_kernel_and_the_bias(scalar):
    source = viz.to_dot(scalar, params=tuple(W.PARAMS), collapse=True).source
    ids = dict(re.findall(r"^\t+(v\d+) \[label=<.*?<B>([^<]*)</B>", source, flags=re.M))
    ops = dict(re.findall(r'^\t+(o\d+) \[label="?([^" ]*)"?', source, flags=re.M))
    inputs = {}
    for a, b, _ in edges(source):
        inputs.setdefault(b, set()).add(ids.get(a))
    for i in range(4):
        for j in range(4):
            z = next(k for k, n in ids.items() if n == f"z1[{i},{j}]")
            op = f"o{z[1:]}"
            assert ops[op] == "conv"
            window = {f"X[{i + di},{j + dj}]" for di in (0, 1) for dj in (0, 1)}
            assert inputs[op] == window | {"F[0,0]", "F[0,1]", "F[1,0]", "F[1,1]", "b1"}
    assert len(re.findall(r"^\t+o\d+ \[", source, flags=re.M)) == 16 + 16 + 4 + 3  # conv, ReLU, pool, linear, sigmoid, loss


def test_options_hide_data_and_gradients_and_the_legend(scalar):
    plain = viz.to_dot(scalar, show_data=False, show_grad=False, legend=False).source
    assert "data " not in plain and "grad " not in plain and "legend" not in plain
    only_grad = viz.to_dot(scalar, show_data=False).source
    assert "grad 0.7311" in only_grad and "data 2" not in only_grad
    unfolded = viz.to_dot(scalar, fold_constants=False, expand=True).source
    order = scalar.topo_order()
    assert len(re.findall(r"^\t+v\d+ \[", unfolded, flags=re.M)) == len(order)
    boxes, _ = expected_counts(scalar)                            # the loss's own constants are not drawn
    assert len(re.findall(r"^\t+v\d+ \[", viz.to_dot(scalar, fold_constants=False).source, flags=re.M)) == boxes


def test_params_can_be_a_module_names_arrays_or_a_mapping():
    model = tiny_cnn10(engine="value")
    loss = F.binary_cross_entropy(model(values(W.WORKED_X, name="X").reshape(1, 1, 5, 5)), [[1.0]])
    loss.backward()
    expect = viz.to_dot(loss, params=["F", "b1", "w4", "b4"]).source
    assert viz.to_dot(loss, params=model).source == expect
    assert viz.to_dot(loss, params=model.parameters()).source == expect
    assert viz.to_dot(loss, params=dict(model.named_parameters())).source == expect
    assert expect.count("penwidth=2.5") == 10
    assert viz.to_dot(loss).source.count("penwidth=2.5") == 0       # Values: no parameters unless told
    assert viz.to_dot(loss, params="F").source.count("penwidth=2.5") == 4
    assert viz.to_dot(loss, params=["F[0,1]", "b4"]).source.count("penwidth=2.5") == 2
    with pytest.raises(TypeError, match="params must be Tensors, Values or names, got int"):
        viz.to_dot(loss, params=[3])
    with pytest.raises(TypeError, match="params must be a Module, a dict or a list, got int"):
        viz.to_dot(loss, params=3)


def test_tensor_leaves_that_require_grad_are_parameters_by_default():
    source = viz.to_dot(small_tensor_graph()).source
    assert source.count("penwidth=2.5") == 1 and "<B>w</B>" in source and "<B>x</B>" in source


def test_huge_graph_is_collapsed_or_cut_with_a_warning():
    x = Value(0.5, name="x")
    y = x
    for _ in range(3000):
        y = y * 1.0001 + x
    with pytest.warns(viz.GraphTooLargeWarning, match=r"more than max_nodes=500 to draw: every layer is collapsed and only the \d+ values nearest"):
        dot = viz.to_dot(y, max_nodes=500)
    boxes = re.findall(r"^\t+[vo]\d+ \[", dot.source, flags=re.M)
    assert len(boxes) <= 500 and "more values not drawn" in dot.source and "max_nodes=500" in dot.source

    a = values(np.arange(36.0).reshape(1, 1, 6, 6), name="a")
    with layer("conv"):
        out = F.conv2d(a, values(np.ones((1, 1, 3, 3)), name="k")).sum()
    with pytest.warns(viz.GraphTooLargeWarning, match="every layer is collapsed"):
        dot = viz.to_dot(out, max_nodes=200)
    assert "more values not drawn" not in dot.source and 'label=conv' in dot.source
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        viz.to_dot(out, max_nodes=None)


def test_bad_roots_and_layer_names_are_named_in_the_error(scalar):
    with pytest.raises(TypeError, match=r"root must be a Value or a Tensor, got a numpy array of object with shape \(2,\)"):
        viz.to_dot(values([1.0, 2.0]))
    assert viz.to_dot(np.array([[scalar]], dtype=object)).source == viz.to_dot(scalar).source
    with pytest.raises(ValueError, match=r"collapse names no layer of this graph: cnv \(its layers: ReLU, conv, "):
        viz.to_dot(scalar, collapse=["cnv"])
    only_conv = viz.to_dot(scalar, collapse="conv").source
    assert only_conv.count("[label=conv ") == 16 and only_conv.count("[label=relu ") == 16
    assert only_conv.count('[label="×" ') == 4                       # the linear layer's, not the conv's 64


@given(tst.small_cnns(engine="value", max_batch=1, max_channels=1, max_size=4, max_blocks=1, max_classes=2))
def test_any_small_cnn_gives_a_consistent_dot_text(cnn):
    model, x = cnn
    loss = F.mse_loss(model(x), np.zeros((1, model[-1].out_features)))
    loss.backward()
    for expand in (False, True):
        source = viz.to_dot(loss, params=model, max_nodes=None, expand=expand).source
        declared = set(re.findall(r"^\t+(\w+) \[", source, flags=re.M))
        boxes, ovals = expected_counts(loss, expand)
        assert len([d for d in declared if d.startswith("v")]) == boxes
        assert len([d for d in declared if d.startswith("o")]) == ovals
        assert all(a in declared and b in declared for a, b, _ in edges(source))
        params = sum(p.size for p in model.parameters())
        assert source.count("penwidth=2.5") == params
        assert ("label=MSE" in source) is not expand
        assert viz.to_dot(loss, params=model, max_nodes=None, expand=expand).source == source


def test_draw_method_returns_the_picture_for_jupyter_and_values_stay_plain():
    loss, params = small_graph()
    dot = loss.draw(params=params)
    assert dot.source == viz.to_dot(loss, params=params).source and hasattr(dot, "_repr_mimebundle_")
    assert not hasattr(loss, "_repr_svg_") and not hasattr(loss, "_repr_mimebundle_")


# --- composite operations, direction, layout of the image, font -----------------------------------------------
def ovals(source):
    """{oval id: its label}."""
    return {i: label.strip('"') for i, label in re.findall(r'^\t+(o\d+) \[label=("[^"]*"|\S+) ', source, flags=re.M)}


def arrows(source):
    """[(tail, head)] of the drawn (visible) arrows."""
    return [(a, b) for a, b, attrs in edges(source) if "invis" not in (attrs or "")]


@pytest.mark.parametrize("engine", ["value", "tensor"])
def test_the_loss_is_one_bce_oval_from_the_networks_output_to_the_loss_unless_expanded(engine):
    root = W.work("cnn10", engine).root
    source = viz.to_dot(root, params=tuple(W.PARAMS)).source
    ids = dict(re.findall(r"^\t+(v\d+) \[label=<.*?<B>([^<]*)</B>", source, flags=re.M))
    bce = [i for i, label in ovals(source).items() if label == "BCE"]
    assert len(bce) == 1 and "1e-44" not in source and "-100" not in source and "max(" not in source
    assert sorted(ids.get(a, a) for a, b in arrows(source) if b == bce[0]) == ["a4"]   # the sigmoid's output
    assert [ids.get(b) for a, b in arrows(source) if a == bce[0]] == ["L"]
    expanded = viz.to_dot(root, params=tuple(W.PARAMS), expand=True).source
    labels = set(ovals(expanded).values())
    assert "BCE" not in labels and {"maximum(·, 1e-44)" if engine == "tensor" else "max(·, 1e-44)"} <= labels
    assert len(ovals(expanded)) - len(ovals(source)) == sum(1 for n in root.topo_order() if n.layer == "loss" and n.parents) - 1


def loss_graphs(engine):
    make = (lambda a, name: Tensor(np.array(a), requires_grad=True, name=name)) if engine == "tensor" else \
        (lambda a, name: values(np.array(a), name=name))
    p, z = make([[0.25, 0.75]], "p"), make([[0.5, -1.5]], "z")
    return {"BCE": F.binary_cross_entropy(p, [[1.0, 0.0]]),
            "BCE with logits": F.binary_cross_entropy_with_logits(z, [[1.0, 0.0]], reduction="sum"),
            "cross-entropy": F.cross_entropy(z, [1], label_smoothing=0.1),
            "NLL": F.nll_loss(F.log_softmax(z, 1), [1]),
            "MSE": F.mse_loss(z, [[1.0, 0.0]]),
            "softmax": (F.softmax(z, 1) * np.array([[1.0, 2.0]])).sum()}


@pytest.mark.parametrize("engine", ["value", "tensor"])
def test_each_loss_and_softmax_is_named_after_the_operations_inside_it(engine):
    for name, root in loss_graphs(engine).items():
        source = viz.to_dot(root).source
        labels = sorted(ovals(source).values())
        composite = {"NLL": ["NLL", "log_softmax"], "softmax": ["softmax"]}.get(name, [name])
        assert [label for label in labels if label in ("BCE", "BCE with logits", "cross-entropy", "NLL", "MSE",
                                                       "softmax", "log_softmax", "loss")] == sorted(composite), name
        oval = next(i for i, label in ovals(source).items() if label == composite[-1])
        outputs = [b for a, b in arrows(source) if a == oval]
        assert len(outputs) == (2 if engine == "value" and name == "softmax" else 1), name   # p[0], p[1] of one oval
        assert "exp" not in labels and "log" not in labels, name
        assert len(set(ovals(viz.to_dot(root, expand=True).source).values()) & {"exp", "log", "relu"}) >= 1 or \
            name in ("MSE", "NLL"), name


def test_a_target_array_is_drawn_into_the_loss_and_the_softmax_shift_is_not():
    mse = viz.to_dot(modelfile.load("examples/models/textbook_12_4.json").work("tensor").root).source
    mse_oval = next(i for i, label in ovals(mse).items() if label == "MSE")
    constants = re.findall(r"^\t+(v\d+) \[.*style=\"filled,dashed\"", mse, flags=re.M)
    assert [b for a, b in arrows(mse) if a in constants] == [mse_oval]             # the (1, 10) target
    root = modelfile.load("examples/models/batch_softmax.json").work("tensor").root
    ce, expanded = viz.to_dot(root).source, viz.to_dot(root, expand=True).source
    assert "cross-entropy" in ovals(ce).values() and "filled,dashed" not in ce      # no (2, 1) shift constant
    assert "filled,dashed" in expanded


def test_rankdir_is_chosen_by_the_graphs_shape_or_as_told(scalar, tensor):
    def direction(root, **options):
        return re.search(r"rankdir=(\w+)", viz.to_dot(root, params=tuple(W.PARAMS), **options).source).group(1)
    assert direction(scalar) == direction(scalar, collapse=True) == "LR"         # wide: a column per step
    assert direction(tensor) == "TB"                                              # deep: a chain of arrays
    assert direction(tensor, rankdir="LR") == "LR" and direction(scalar, rankdir="TB") == "TB"
    with pytest.raises(ValueError, match="rankdir must be 'LR', 'TB' or None, got 'BT'"):
        viz.to_dot(tensor, rankdir="BT")


def png_size(path):
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@needs_dot
@pytest.mark.parametrize("model", ["cnn10", "batch_softmax", "textbook_12_4"])
def test_tensor_level_pictures_are_no_strips(model, tmp_path):
    if model == "cnn10":
        root, title = W.work("cnn10", "tensor").root, "cnn10: the 10-parameter CNN, tensor graph after loss.backward()"
    else:
        root, title = modelfile.load(f"examples/models/{model}.json").work("tensor").root, None
    for options in ({}, {"title": title}, {"legend": False}):
        width, height = png_size(viz.render(root, str(tmp_path / "t.png"), **options))
        assert max(width / height, height / width) <= 4, (model, options, width, height)
    width, height = png_size(viz.render(root, str(tmp_path / "t.png"), rankdir="LR"))
    assert width / height > 8                                                     # as it was: a strip


@needs_dot
def test_the_collapsed_conv_draws_the_image_as_its_grid(scalar, tmp_path):
    nodes, _, where = parse_svg(Path(viz.render(scalar, str(tmp_path / "c.svg"), params=tuple(W.PARAMS),
                                                collapse=True)).read_bytes())
    boxes = {texts[0]: where[title] for title, texts in nodes.items() if re.fullmatch(r"v\d+", title)}
    assert_image_grid(boxes, "X", 5, 5)


@needs_dot
def test_the_svg_names_dejavu_sans_with_fallbacks_and_no_helvetica(tmp_path):
    loss, params = small_graph()
    for svg in (Path(viz.render(loss, str(tmp_path / "g.svg"), params=params)).read_text(encoding="utf-8"),
                viz.to_dot(loss, params=params, title="a title").pipe(format="svg").decode("utf-8")):
        families = set(re.findall(r'font-family="([^"]*)"', svg))
        assert families == {"DejaVu Sans,Verdana,Arial,sans-serif"} and "Helvetica" not in svg and "Times" not in svg


def test_expand_and_rankdir_keep_the_dot_text_deterministic(scalar):
    for options in ({"expand": True}, {"rankdir": "TB"}, {"collapse": True}):
        assert viz.to_dot(scalar, **options).source == viz.to_dot(scalar, **options).source


# --- files and the dot program --------------------------------------------------------------------------------
@needs_dot
@pytest.mark.parametrize("format, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF"), ("svg", b"<?xml")])
def test_render_writes_each_format_atomically(tmp_path, format, magic):
    loss, params = small_graph()
    path = tmp_path / f"g.{format}"
    assert viz.render(loss, str(path), format, params=params) == str(path)
    assert path.read_bytes().startswith(magic) and os.listdir(tmp_path) == [path.name]


def test_without_dot_render_names_the_program_and_how_to_install_it(tmp_path, monkeypatch):
    loss, params = small_graph()
    monkeypatch.setenv("PATH", "")
    with pytest.raises(viz.DotNotFoundError) as e:
        viz.render(loss, str(tmp_path / "g.svg"))
    assert "'dot'" in str(e.value) and "apt-get install graphviz" in str(e.value)
    assert "brew install graphviz" in str(e.value)
    assert not (tmp_path / "g.svg").exists()
    path = viz.render(loss, str(tmp_path / "g.dot"), format="dot", params=params)
    assert Path(path).read_text(encoding="utf-8") == viz.to_dot(loss, params=params).source
    with pytest.raises(ValueError, match="format must be one of svg, png, pdf, jpg, dot, got 'gif'"):
        viz.render(loss, str(tmp_path / "g.gif"), format="gif")
    with pytest.raises(FileNotFoundError, match="cannot write .*nowhere/g.dot: the folder .*nowhere does not exist"):
        viz.render(loss, str(tmp_path / "nowhere" / "g.dot"))


@needs_dot
def test_render_takes_the_format_from_the_suffix(tmp_path):
    loss, _ = small_graph()
    assert Path(viz.render(loss, str(tmp_path / "g.png"))).read_bytes().startswith(b"\x89PNG")
    assert Path(viz.render(loss, tmp_path / "g.dot")).read_text(encoding="utf-8").startswith("digraph")
    assert Path(viz.render(loss, str(tmp_path / "g.picture"))).read_bytes().startswith(b"<?xml")
