"""`tinygrad-cnn graph`: the default picture, the formats and levels, bad options (exit 2), and
what happens without Graphviz's dot (exit 1 for pictures; --format dot still works)."""
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tinygrad_cnn import worked as W
from tinygrad_cnn.cli import graph, main

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
SVG = "{http://www.w3.org/2000/svg}"


def run(capsys, *argv):
    status = main(["graph", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def node_texts(path):
    tree = ET.parse(path)
    return {g.findtext(f"{SVG}title"): [t.text.strip() for t in g.iter(f"{SVG}text") if t.text and t.text.strip()]
            for g in tree.iter(f"{SVG}g") if g.get("class") == "node"}


@needs_dot
def test_default_writes_the_scalar_graph_of_the_10_parameter_network_to_graph_svg(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys)
    assert (status, out, err) == (0, "graph.svg\n", "")
    nodes = node_texts(tmp_path / "graph.svg")
    names = {texts[0] for title, texts in nodes.items() if re.fullmatch(r"v\d+", title)}
    assert {"F[0,0]", "F[0,1]", "F[1,0]", "F[1,1]", "b1", "w4[0]", "w4[1]", "w4[2]", "w4[3]", "b4"} <= names
    loss = W.work("cnn10", "value").root
    order = loss.topo_order()
    drawn = [t for t in nodes if re.fullmatch(r"[vo]\d+", t)]
    unnamed_leaves = [n for n in order if not n.parents and n.name is None]   # folded into their ops
    loss_ops = [n for n in order if n.parents and n.layer == "loss"]           # drawn as one "BCE" oval
    assert len(drawn) == (len(order) - len(unnamed_leaves) + sum(1 for n in order if n.parents)
                          - 2 * (len(loss_ops) - 1))
    title = ET.parse(tmp_path / "graph.svg").getroot().find(f"{SVG}g").findtext(f"{SVG}text")
    assert title.startswith("cnn10: the 10-parameter CNN") and "scalar graph after loss.backward()" in title


@needs_dot
@pytest.mark.parametrize("argv, suffix, magic", [
    (["--level", "tensor"], "svg", b"<?xml"), (["--format", "png"], "png", b"\x89PNG"),
    (["--model", "square15", "--collapse", "--hide", "grad"], "svg", b"<?xml")])
def test_levels_models_and_formats(capsys, tmp_path, argv, suffix, magic):
    path = tmp_path / f"out.{suffix}"
    status, out, err = run(capsys, "-o", str(path), *argv)
    assert (status, out.strip(), err) == (0, str(path), "")
    assert path.read_bytes().startswith(magic)
    if "--hide" in argv:
        text = path.read_text(encoding="utf-8")
        assert ">grad " not in text and ">data " in text and ">conv<" in text


def test_dot_format_needs_no_graphviz_program(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    path = tmp_path / "g.dot"
    status, out, err = run(capsys, "-o", str(path))
    assert status == 0 and out.strip() == str(path)
    again = graph.draw(W.work("cnn10", "value"), str(tmp_path / "again.dot"), "dot")
    assert path.read_text(encoding="utf-8") == Path(again).read_text(encoding="utf-8")
    assert path.read_text(encoding="utf-8").startswith("digraph computation_graph {")


def test_without_dot_a_picture_fails_with_one_line_naming_the_install_command(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    status, out, err = run(capsys, "-o", str(tmp_path / "g.svg"))
    assert status == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "'dot'" in err and "apt-get install graphviz" in err and "brew install graphviz" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["-o", "nowhere/g.svg"], "-o: expected a file path in an existing folder"),
    (["-o", "g.png", "--format", "svg"], "--format svg does not match the suffix of -o g.png"),
    (["--max-nodes", "-3"], "--max-nodes: expected a number >= 0, got -3")])
def test_bad_options_print_one_line_and_exit_2(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == "" and err.startswith(f"tinygrad-cnn graph: {message}")
    assert len(err.strip().splitlines()) == 1 and list(tmp_path.iterdir()) == []


def test_too_many_nodes_warns_on_stderr_and_still_writes(capsys, tmp_path):
    path = tmp_path / "g.dot"
    status, out, err = run(capsys, "-o", str(path), "--max-nodes", "100")
    assert status == 0 and "more than --max-nodes 100 to draw: every layer is collapsed" in err
    assert "--max-nodes 0 draws them all" in err and "max_nodes" not in err  # the option's name, not the argument's
    assert "label=conv" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("suffix, magic", [(".jpg", b"\xff\xd8"), (".jpeg", b"\xff\xd8"), (".png", b"\x89PNG"),
                                           (".pdf", b"%PDF"), (".svg", b"<?xml"), (".dot", b"digraph")])
def test_the_suffix_decides_the_format(capsys, tmp_path, suffix, magic):
    path = tmp_path / f"g{suffix}"
    status, out, err = run(capsys, "-o", str(path), "--collapse")
    assert status == 0 and path.read_bytes().startswith(magic)


@pytest.mark.parametrize("name", ["g.txt", "g", "g.svgz"])
def test_a_suffix_that_names_no_format_is_refused_before_any_work(capsys, tmp_path, name):
    status, out, err = run(capsys, "-o", str(tmp_path / name))
    assert status == 2 and "names no format" in err and list(tmp_path.iterdir()) == []


def test_dash_writes_the_picture_to_standard_output(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = main(["graph", "-o", "-", "--format", "dot", "--collapse"])
    out = capsys.readouterr().out
    assert status == 0 and out.startswith("digraph") and list(tmp_path.iterdir()) == []  # no file named "-"


def test_graph_takes_model_files_and_the_input_options(capsys, tmp_path):
    model = Path(__file__).parents[2] / "examples" / "models" / "batch_softmax.json"
    path = tmp_path / "m.dot"
    assert run(capsys, "--model", str(model), "-o", str(path), "--level", "tensor")[0] == 0
    assert "Conv2d #0" in path.read_text()
    status, out, err = run(capsys, "--b1", "0.5", "-o", str(path))
    assert status == 0 and "data 0.5" in path.read_text()
    status, out, err = run(capsys, "--model", str(model), "--b1", "0.5", "-o", str(path))
    assert status == 2 and "--b1: only for the built-ins" in err


def test_console_script_runs_the_command(tmp_path):
    exe = shutil.which("tinygrad-cnn", path=str(Path(sys.executable).parent))
    out = subprocess.run([exe or sys.executable, *([] if exe else ["-m", "tinygrad_cnn"]), "graph", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "--level {scalar,tensor}" in out.stdout and "--format" in out.stdout


def test_expand_draws_the_loss_internals_and_rankdir_is_taken(capsys, tmp_path):
    path = tmp_path / "g.dot"
    assert run(capsys, "-o", str(path))[0] == 0
    composite = path.read_text(encoding="utf-8")
    assert run(capsys, "-o", str(path), "--expand", "--rankdir", "TB")[0] == 0
    expanded = path.read_text(encoding="utf-8")
    assert "BCE" in composite and "1e-44" not in composite and "1e-44" in expanded and "rankdir=TB" in expanded


def test_hide_drops_the_numbers_and_their_legend_line(capsys, tmp_path):
    path = tmp_path / "g.dot"
    assert run(capsys, "-o", str(path), "--hide", "data", "--hide", "grad")[0] == 0
    dot = path.read_text(encoding="utf-8")
    red = 'COLOR="#b03a2e"'  # the gradients' colour
    assert red not in dot and ">data " not in dot and "d loss / d value" not in dot and "significant" not in dot
    assert run(capsys, "-o", str(path), "--hide", "grad")[0] == 0
    dot = path.read_text(encoding="utf-8")
    assert "the forward value" in dot and "d loss / d value" not in dot and red not in dot and ">data " in dot
