"""Every script in examples/ runs, and prints the numbers it promises (checked here independently)."""
import ast
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_cnn import worked as W

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name):
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def assignments(out):
    """The lines ``name = <python literal>`` of a script's output, as a dict."""
    found = {}
    for line in out.splitlines():
        name, sep, value = line.partition(" = ")
        if sep:
            try:
                found[name] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                found[name] = value
    return found


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


CHECKS = {}


def checks(name):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


@checks("value_basics.py")
def check_value_basics(out):
    a, b = 2.0, -3.0
    c = a * b + a ** 2
    slope = (1 - math.tanh(c) ** 2) + sigmoid(c) * (1 - sigmoid(c))
    assert f"c = {c:.6f}   d = {math.tanh(c) + sigmoid(c):.6f}" in out
    assert f"dd/da = {slope * (b + 2 * a):.6f}   dd/db = {slope * a:.6f}" in out
    assert f"dd/da = {2 * slope * (b + 2 * a):.6f} (twice the first)" in out
    assert "after zero_grad: dd/da = 0.000000" in out


@checks("worked_cnn10.py")
def check_worked_cnn10(out):
    got = assignments(out)
    assert got["a2"] == [[3.0, 4.0], [5.0, 3.0]] and got["z4"] == -1.0
    assert (got["a4"], got["loss"], got["dL/dz4"], got["dL/db4"]) == (0.268941, 1.313262, -0.731059, -0.731059)
    assert got["dL/dw4"] == [-2.193176, -2.924234, -3.655293, -2.193176]
    assert got["dL/da3"] == [0.731059, -0.731059, 0.731059, -0.731059]
    assert got["dL/dF"] == [[0.731059, 0.0], [0.0, 0.0]] and got["dL/db1"] == 0.0
    r = W.work()
    for key in ("z1", "a1"):
        assert got[key] == r.values[key].tolist()
    assert got["dL/da1"] == np.round(r.grads["a1"], 6).tolist()


@checks("worked_square15.py")
def check_worked_square15(out):
    got = assignments(out)
    assert len(got["labels"]) == len(got["p"]) == 8 and sorted(set(got["labels"])) == [0.0, 1.0]
    assert all(0 < p < 1 for p in got["p"])
    loss = -np.mean([math.log(p) if y else math.log(1 - p) for p, y in zip(got["p"], got["labels"])])
    assert abs(got["loss"] - loss) < 1e-5
    assert "parameters: 15" in out
    assert np.shape(got["dL/dF"]) == (3, 3) and np.shape(got["dL/dw4"]) == (4,)
    assert "gradcheck: the 15 gradients match central finite differences" in out


@checks("textbook_conv1d.py")
def check_conv1d(out):
    got = assignments(out)
    assert got["y"] == got["y (Value engine)"] == [7, -2, 18, 17, -2, 11]
    assert got["length"] == "6 = 8 - 3 + 1"
    assert "y_1 = 2 * 3 + 1 * 2 + 1 * -1 = 7" in out and "y_2 = 1 * 3 + 1 * 2 + 7 * -1 = -2" in out
    assert "matches 2 x_(t-1) - x_(t+1): True" in out


@checks("textbook_conv2d.py")
def check_conv2d(out):
    got = assignments(out)
    assert got["Y"] == [[4, 3, 4], [2, 4, 3], [2, 3, 4]]
    assert "(12.5): True" in out and "(12.6): True" in out
    X = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]], float)
    G = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0], [2.0, 1.0, -0.5]])
    dW = [[float(np.sum(X[i:i + 3, j:j + 3] * G)) for j in range(3)] for i in range(3)]
    assert got["dL/dW"] == dW


@checks("textbook_output_sizes.py")
def check_output_sizes(out):
    assert "(Example 12.2.5): 3 / 3" in out and "(Problem 12.2.4): 6 / 6" in out
    assert "(Example 12.2.7): 3 / 3" in out and "whose table says 3): 2 / 2" in out
    counts = re.search(r"checked (\d+) conv cases .* and (\d+) pooling cases: (\d+) disagree", out)
    assert counts and int(counts[1]) > 100 and int(counts[2]) > 50 and counts[3] == "0"


@checks("textbook_padding.py")
def check_padding(out):
    rows = {line.split(":")[0].strip(): ast.literal_eval(line.split(":", 1)[1].strip())
            for line in out.splitlines() if line.strip().endswith("]]")}
    X = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
    for mode, key in (("constant", "zero padding"), ("edge", "textbook 'same' padding")):
        padded = np.pad(X, 1, mode=mode)
        assert rows[key] == [[int(padded[i:i + 3, j:j + 3].sum()) for j in range(5)] for i in range(5)]
    assert rows["padding='same' (PyTorch)"] == rows["zero padding"]
    assert "padding='same' equals zero padding: True" in out and "all on the border: True" in out


@checks("textbook_detectors.py")
def check_detectors(out):
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    expected = {"255-pixel detector, no 255 pixel": -5, "255-pixel detector, one 255 pixel": 5,
                "plus detector, no plus": -5, "plus detector, a plus of 255s": 5,
                "plus detector, the plus with a 250 centre": -5}
    assert set(lines) == set(expected)
    for name, o in expected.items():
        assert f"o = {o}, sigmoid(o) = {sigmoid(o):.4f}" in lines[name]
    assert f"{sigmoid(5):.4f}" == "0.9933" and f"{sigmoid(-5):.4f}" == "0.0067"
    assert "largest first-layer value -4," in lines["plus detector, the plus with a 250 centre"]


@checks("square15_material_training.py")
def check_material_training(out):
    last = out.split("after 200 images")[-1]
    found = re.findall(r"(descent|material)\s*: mean output on noise ([\d.]+), on squares ([\d.]+); "
                       r"test loss ([\d.]+); accuracy ([\d.]+)", last)
    rows = {name: [float(v) for v in values] for name, *values in found}
    noise, squares_, loss, accuracy = rows["material"]
    assert noise > 0.99 and squares_ > 0.99 and accuracy == 0.5 and loss > 5   # the same output for both classes
    noise, squares_, loss, accuracy = rows["descent"]
    assert loss < math.log(2) and squares_ > noise                              # descent learns
    assert out.count("after ") == 4


def test_every_example_script_has_a_check():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_and_prints_its_numbers(name):
    CHECKS[name](run(name))
