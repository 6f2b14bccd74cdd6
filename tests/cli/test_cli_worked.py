"""`tinygrad-cnn worked`: the printout, --json, the options that take arrays, and exit status 2 on bad input."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn import worked as W
from tinygrad_cnn.cli import main

REFERENCE_LINES = ["a3 = flatten(a2)", "= [3  4  5  3]", "= -1", "= 0.268941", "= 1.313262",
                   "= -3.718282", "= -0.731059", "= [-2.193176  -2.924234  -3.655293  -2.193176]",
                   "= [0.731059  -0.731059  0.731059  -0.731059]", "= 0 (exactly)"]


def run(capsys, *argv):
    status = main(["worked", *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("engine", ["value", "tensor"])
def test_prints_every_step_with_the_reference_numbers_and_the_errata(capsys, engine):
    status, out, err = run(capsys, "--engine", engine)
    assert status == 0 and err == ""
    for text in REFERENCE_LINES:
        assert text in out
    steps = ["X, the input", "F, the conv kernel", "z1 = conv(X, F) + b1", "a1 = ReLU(z1)", "a2 = maxpool(a1)",
             "a3 = flatten", "z4 = w4 . a3 + b4", "a4 = sigmoid(z4)", "L = -(y ln a4", "dL/da4 =", "dL/dz4 =",
             "dL/dw4 =", "dL/db4 =", "dL/da3 =", "dL/da2 =", "dL/da1 =", "dL/dz1 =", "dL/dF =", "dL/db1 ="]
    positions = [out.index(s) for s in steps]
    assert positions == sorted(positions)                     # in the order a person works it
    assert "a2[0,0] = a1[1,0] = 3    a2[0,1] = a1[0,3] = 4" in out
    assert "    3  4\n    5  3\n" in out                      # a2 as an aligned grid
    # each erratum right after its number, the material's value beside the right one
    loss_at, b1_at = out.index("= 1.313262\n"), out.index("= 0 (exactly)")
    assert out.index("its loss is 0.57: it takes log10", loss_at) < out.index("BACKWARD")
    assert "the material's: 0.570342    the right one: 1.313262" in out
    assert out.index("its dL/db1 is -10.97", b1_at) > b1_at
    assert "the material's: -10.965879    the right one: 0" in out
    assert "dL/da3 = dL/dz4 * w4 belongs" in out


def test_square15_is_worked_the_same_way_with_its_six_errata(capsys):
    status, out, _ = run(capsys, "--model", "square15", "--seed", "0")
    assert status == 0 and "square detector" in out and "seed 0" in out
    r = W.work("square15", seed=0)
    assert f"= {r.values['loss']:.6f}" in out and f"= {r.grads['b1']:.6f}" in out
    for title in ("max-pool's output as 3x3", "multiplies by the loss value", "sends dL/dw4 into the max-pool",
                  "ReLU(z1) where the 0/1 mask ReLU'(z1) belongs", "dL/db1 as the sum of X", "gradient ascent",
                  "0.92 / 0.08"):
        assert out.count(title) == 1, title
    assert "the material's: 3x3    the right one: 2x2" in out


def test_json_matches_the_contract_and_the_engines_agree(capsys):
    outs = []
    for engine in ("value", "tensor"):
        status, out, _ = run(capsys, "--json", "--engine", engine)
        assert status == 0 and out.count("\n") == 1
        outs.append(json.loads(out))
    assert outs[0] == W.work().to_json()
    assert {"z1", "a1", "a2", "a3", "z4", "a4", "loss", "grad"} <= set(outs[0])
    assert set(outs[0]["grad"]) == {"z4", "w4", "b4", "a3", "a2", "a1", "z1", "F", "b1"}
    a, b = (np.array(o["grad"]["a1"]) for o in outs)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert outs[1]["a2"] == [[3.0, 4.0], [5.0, 3.0]] and outs[1]["grad"]["b1"] == 0.0


def test_array_options_read_json_npy_and_text_files(capsys, tmp_path):
    x = np.arange(25.0).reshape(5, 5) % 7 - 3
    np.save(tmp_path / "x.npy", x)
    np.savetxt(tmp_path / "x.txt", x)
    (tmp_path / "k.csv").write_text("0.5, -1\n2, 0.25\n")
    (tmp_path / "w.json").write_text("[1, -2, 0.5, 3]")
    expected = W.work(x=x, kernel=[[0.5, -1], [2, 0.25]], b1=-0.5, w4=[1, -2, 0.5, 3], b4=0.1, label=0).to_json()
    for xs in (str(tmp_path / "x.npy"), str(tmp_path / "x.txt"), json.dumps(x.tolist())):
        status, out, err = run(capsys, "--json", "--x", xs, "--kernel", str(tmp_path / "k.csv"), "--b1", "-0.5",
                               "--w4", str(tmp_path / "w.json"), "--b4", "0.1", "--label", "0")
        assert (status, err) == (0, "")
        assert json.loads(out) == expected


@pytest.mark.parametrize("argv, words", [
    (["--x", "[[1,2,3,4,5],[1,2,3,4,5]]"], "--x: expected a square 5x5 matrix (the input image of cnn10), got a non-square 2x5"),
    (["--x", "[[1,2],[3,4]]"], "--x: expected a square 5x5 matrix"),
    (["--model", "square15", "--x", json.dumps(np.ones((5, 5)).tolist())], "--x: expected a square 6x6 matrix"),
    (["--kernel", "[[1,2,3],[4,5,6],[7,8,9]]"], "--kernel: expected a 2x2 matrix"),
    (["--w4", "[1,2]"], "--w4: expected 4 numbers"),
    (["--label", "2"], "--label: expected 0 or 1"),
    (["--label", "yes"], "--label: expected a number"),
    (["--b1", "one"], "--b1: expected a number"),
    (["--x", "[[1,2"], "--x: expected a JSON list, got invalid JSON"),
    (["--x", "no/such/file.npy"], "--x: expected a JSON list, or the path of a .npy or text file"),
    (["--seed", "1"], "--seed: is only used with the model square15"),
    (["--model", "square15", "--seed", "x"], "--seed: expected a non-negative integer"),
    (["--svg", "/no/such/folder/g.svg"], "--svg: expected a file path in an existing folder"),
])
def test_bad_input_is_one_line_and_exit_status_2(capsys, argv, words):
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tinygrad-cnn worked: ") and words in err


def test_unreadable_files_are_named(capsys, tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not numpy")
    text = tmp_path / "words.txt"
    text.write_text("a b c\n")
    for path, words in ((bad, "is not a .npy file or a text file of numbers"),
                        (text, "is not a .npy file or a text file of numbers"),
                        (tmp_path, "is a folder, not a file")):
        status, out, err = run(capsys, "--kernel", str(path))
        assert status == 2 and out == "" and err.count("\n") == 1
        assert err.startswith("tinygrad-cnn worked: --kernel: ") and words in err and str(path) in err


def test_console_script_has_no_traceback_on_bad_input():
    exe = shutil.which("tinygrad-cnn", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "tinygrad_cnn"]
    ok = subprocess.run(cmd + ["worked"], capture_output=True, text=True)
    assert ok.returncode == 0 and "= 1.313262" in ok.stdout
    bad = subprocess.run(cmd + ["worked", "--x", "[[1,2],[3,4]]"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
@pytest.mark.parametrize("engine", ["value", "tensor"])
def test_svg_draws_the_graph(capsys, tmp_path, engine):
    path = tmp_path / "graph.svg"
    status, out, _ = run(capsys, "--engine", engine, "--svg", str(path))
    assert status == 0 and f"graph picture written to {path}" in out
    svg = path.read_text()
    assert "<svg" in svg
    for label in (">conv<", ">ReLU<", ">max&#45;pool<", ">linear<", ">sigmoid<", ">loss<"):  # the layer clusters
        assert label in svg
    status, out, err = run(capsys, "--json", "--svg", str(path))
    assert status == 0 and json.loads(out) and "graph picture written" in err


def test_svg_without_graphviz_says_how_to_install_it_before_any_work(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))              # no `dot` on PATH
    status, out, err = run(capsys, "--svg", str(tmp_path / "g.svg"))
    assert status == 2 and out == "" and err.count("\n") == 1
    assert "--svg: Graphviz's 'dot' program is not on PATH" in err and "apt-get install graphviz" in err


def test_svg_takes_a_path_ending_in_svg_only(capsys, tmp_path):
    assert main(["worked", "--svg", str(tmp_path / "w.png")]) == 2
    assert "--svg: expected a path ending in .svg" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("engine", ["value", "tensor"])
def test_a_hand_computed_zero_blocks_relu_on_both_engines_and_is_flagged(capsys, engine):
    """The decimals written are exact: z1[0,3] = 0.4 + 0.2 - 0.2 - 0.4 = 0 by hand (float64 summed in
    another order gives 5.55e-17, which ReLU would pass and the pool would pick: dL/db1 1.099668)."""
    argv = ["worked", "--engine", engine, "--x", "[[1,2,0,2,1],[2,0,1,1,1],[0,0,0,0,1],[1,1,2,1,1],[0,0,2,0,0]]",
            "--kernel", "[[0.2,0.2],[-0.2,0]]", "--b1", "-0.4", "--w4", "[0,-1,-1,1]", "--b4", "0", "--label", "1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert re.search(r"dL/db1 = sum over i,j of dL/dz1\[i,j\] +=  ?0\.549834", out), out
    assert "kink: z1[0,1], z1[0,3]," in out and "-0.000000" not in out
    assert "kink: a tie for the max of the window of a2[0,0]" in out
