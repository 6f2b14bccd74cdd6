"""Every script in examples/ runs, and prints the numbers it promises (checked here independently)."""
import ast
import json
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



def model_file(name):
    """A model file's JSON as plain numpy arrays (read here, not by the library's parser)."""
    spec = json.loads((EXAMPLES / "models" / name).read_text())
    layers = [{k: np.array(v, dtype=np.float64) if k in ("weight", "bias") else v for k, v in layer.items()}
              for layer in spec["layers"]]
    return spec, np.array(spec["input"], dtype=np.float64), layers


def close(printed, want):
    """A number or array printed at 6 decimals agrees with ``want``."""
    printed, want = np.asarray(printed, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return printed.shape == want.shape and np.allclose(printed, want, rtol=0, atol=1.5e-6)


def softmax_rows(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@checks("notes_001_bias_gradient.py")
def check_notes_001(out):
    got = assignments(out)
    spec, x, (l0, _, l2) = model_file("notes_001_dense.json")
    label, lr = spec["target"][0], spec["lr"]

    def forward(W1, b1, W2, b2):
        a1 = 1 / (1 + np.exp(-(x @ W1.T + b1)))
        z2 = a1 @ W2.T + b2
        return a1, z2, -np.log(softmax_rows(z2)[0, label])

    params = [l0["weight"], l0["bias"], l2["weight"], l2["bias"]]
    a1, z2, loss = forward(*params)
    dz2 = softmax_rows(z2) - np.eye(3)[[label]]           # one input: the mean is over one
    dz1 = (dz2 @ l2["weight"]) * a1 * (1 - a1)
    grads = [dz1.T @ x, dz1.sum(axis=0), dz2.T @ a1, dz2.sum(axis=0)]
    # the note: dL/db^l = dL/dz^l times the activations into the layer, each bias entry its row of dL/dW summed
    notes = [grads[0], (dz1.T * x.sum(axis=1)).sum(axis=1), grads[2], (dz2.T * a1.sum(axis=1)).sum(axis=1)]
    assert close(got["x"], x) and close(got["Sigmoid #1 output"], a1) and close(got["loss"], loss)
    assert close(got["Linear #2 output"], z2) and close(got["softmax(logits)"], softmax_rows(z2))
    for name, a, dz, right, note, dW in (("Linear #0", x, dz1, grads[1], notes[1], grads[0]),
                                         ("Linear #2", a1, dz2, grads[3], notes[3], grads[2])):
        assert close(got[f"{name} input"], a) and close(got[f"{name} sum of its input"], a.sum())
        assert close(got[f"{name} dL/dz"], dz) and close(got[f"{name} dL/dW"], dW)
        assert close(got[f"{name} right dL/db"], right) and close(got[f"{name} note's dL/db"], note)
        assert close(got[f"{name} note's / right"], np.full(right.shape, a.sum()))
        assert f"{name} the note's dL/dW is the same: True" in out
    assert got["Linear #0 sum of its input"] < 0 and np.all(np.sign(notes[1]) == -np.sign(grads[1]))
    for key, i in (("0.bias", 1), ("2.bias", 3)):
        assert close(got[f"right b after the step ({key})"], params[i] - lr * grads[i])
        assert close(got[f"note's b after the step ({key})"], params[i] - lr * notes[i])
    stepped = [p - lr * g for p, g in zip(params, grads)]
    note_stepped = [p - lr * g for p, g in zip(params, notes)]
    assert close(got["loss after one step, right"], forward(*stepped)[2])
    assert close(got["loss after one step, note's"], forward(*note_stepped)[2])
    assert forward(*stepped)[2] < forward(*note_stepped)[2] < loss


def conv_net(x, layers, target, pool_to_all_ties=False, mean=True):
    """Conv2d (one input channel, stride 1), ReLU, 2x2 max-pool, Flatten, Linear and cross-entropy, forward
    and backward with loops. The pool's gradient goes to the first largest of each window, or with
    ``pool_to_all_ties`` to every entry np.isclose to the max (note 002's mask)."""
    conv, _, _, _, fc = layers
    w, b = conv["weight"], conv["bias"]
    N, _, H, W_ = x.shape
    K, k = w.shape[0], w.shape[-1]
    h, w_ = H - k + 1, W_ - k + 1
    z = np.zeros((N, K, h, w_))
    for n, c, i, j in np.ndindex(z.shape):
        z[n, c, i, j] = np.sum(x[n, 0, i:i + k, j:j + k] * w[c, 0]) + b[c]
    a = np.maximum(z, 0)
    pooled, routes = np.zeros((N, K, h // 2, w_ // 2)), {}
    for n, c, I, J in np.ndindex(pooled.shape):
        cells = [(2 * I + r, 2 * J + s) for r in range(2) for s in range(2)]   # row-major
        top = max(a[n, c][cell] for cell in cells)
        pooled[n, c, I, J] = top
        tied = [cell for cell in cells if np.isclose(a[n, c][cell], top)]
        routes[n, c, I, J] = tied if pool_to_all_ties else [next(cell for cell in cells if a[n, c][cell] == top)]
    flat = pooled.reshape(N, -1)
    logits = flat @ fc["weight"].T + fc["bias"]
    p = softmax_rows(logits)
    scale = 1 / N if mean else 1
    loss = -np.mean(np.log(p[np.arange(N), target]))
    dlogits = (p - np.eye(p.shape[1])[target]) * scale
    dflat = dlogits @ fc["weight"]
    dpooled = dflat.reshape(pooled.shape)
    da = np.zeros(a.shape)
    for (n, c, I, J), cells in routes.items():
        for cell in cells:
            da[(n, c) + cell] += dpooled[n, c, I, J]
    dz = da * (z > 0)
    dw, dx = np.zeros(w.shape), np.zeros(x.shape)
    for n, c, i, j in np.ndindex(z.shape):
        dw[c, 0] += dz[n, c, i, j] * x[n, 0, i:i + k, j:j + k]
        dx[n, 0, i:i + k, j:j + k] += dz[n, c, i, j] * w[c, 0]
    grads = {"0.weight": dw, "0.bias": dz.sum(axis=(0, 2, 3)), "4.weight": dlogits.T @ flat,
             "4.bias": dlogits.sum(axis=0)}
    return {"a": a, "pooled": pooled, "logits": logits, "p": p, "loss": loss, "grads": grads,
            "outs": [dz, da, dpooled, dflat, dlogits], "dx": dx}


def images(got, name):
    return np.array([got[f"{name}, image {n}"] for n in range(2)])


@checks("notes_002_pooling.py")
def check_notes_002(out):
    head, part_a, part_b, part_c = re.split(r"^\((?:a|b|c)\) ", out, flags=re.MULTILINE)
    got = assignments(head + part_a)
    spec, x, layers = model_file("notes_002_pooling.json")
    target = np.array(spec["target"])
    right = conv_net(x, layers, target)
    ties = conv_net(x, layers, target, pool_to_all_ties=True)
    summed = conv_net(x, layers, target, mean=False)
    assert close(got["loss"], right["loss"])
    # (a) the windows do tie, and the note's mask gives every tied entry the window's gradient
    assert close(images(got, "pool input (the ReLU's output)"), right["a"])
    assert close(images(got, "dL/d(pool output)"), right["outs"][2])
    assert close(images(got, "right dL/d(pool input)"), right["outs"][1])
    assert close(images(got, "note's dL/d(pool input)"), ties["outs"][1])
    assert part_a.count("a tie for the max of the window") == 5 and not close(ties["outs"][1], right["outs"][1])
    assert "the note's own mask and backward on the NHWC layout give the same: True" in part_a
    for key in ("0.weight", "0.bias"):
        assert close(got[f"right dL/d({key})"], right["grads"][key])
        assert close(got[f"note's dL/d({key})"], ties["grads"][key])
    assert "[[1, 1.000001], [0.5, 0]] = [[1, 1], [0, 0]]" in part_a
    # (b) average pooling over the (N, H/2, 2, W/2, 2, C) view, with loops over the NHWC array
    got = assignments(part_b)
    nhwc = np.array(got["x (NHWC), as x.transpose(0, 3, 1, 2), channel by channel"]).transpose(0, 2, 3, 1)
    N, H, W_, C = nhwc.shape
    window, notes = np.zeros((N, H // 2, W_ // 2, C)), np.zeros((N, H // 2, 2, 2))
    for n, i, j, c in np.ndindex(window.shape):
        window[n, i, j, c] = np.mean([nhwc[n, 2 * i + r, 2 * j + s, c] for r in range(2) for s in range(2)])
    for n, i, r, s in np.ndindex(notes.shape):
        notes[n, i, r, s] = np.mean([nhwc[n, 2 * i + r, 2 * j + s, c] for j in range(W_ // 2) for c in range(C)])
    assert close(got["right"], window) and close(got["avg_pool2d"], window) and close(got["note's"], notes)
    assert f"shape {notes.shape}" in part_b and f"shape {window.shape}" in part_b and notes.shape != window.shape
    for claim in ("right equals avg_pool2d", "note's equals the mean over the W/2 axis and the channels",
                  "equals max_pool2d"):
        assert re.search(re.escape(claim) + r".*: True$", part_b, re.MULTILINE)
    # (c) the batch mean: the note's activation gradients are those of the sum, its parameter gradients the mean's
    got = assignments(part_c)
    assert close(got["softmax(logits)"], right["p"])
    assert close(got["right dL/d(logits), (y_pred - y) / m"], right["outs"][4])
    assert close(got["note's dZ, y_pred - y"], right["p"] - np.eye(2)[target])
    for name, want, note in zip(("Conv2d #0", "ReLU #1", "MaxPool2d #2", "Flatten #3", "Linear #4"), right["outs"],
                                summed["outs"]):
        nonzero = want != 0
        assert np.allclose(note[nonzero] / want[nonzero], 2)
        assert f"{name}: note's / right = [2.0] (at its {nonzero.sum()} nonzero entries)" in part_c
    assert close(images(got, "right dL/dx"), right["dx"]) and close(images(got, "note's dL/dx"), summed["dx"])
    assert np.allclose(summed["dx"], 2 * right["dx"])
    for key, want in right["grads"].items():
        assert close(got[f"right dL/d({key})"], want) and close(got[f"note's dL/d({key})"], want)
    assert close(got["missing-batch-mean alone, dL/d(0.bias) (no 1/m anywhere)"], summed["grads"]["0.bias"])


@checks("replay_batch.py")
def check_replay_batch(text):
    """Each image's numbers from the replay are those of its own Value graph."""
    from tinygrad_cnn import values
    from tinygrad_cnn.models import tiny_cnn10
    from tinygrad_cnn.nn import functional as F
    out = assignments(text)
    images = np.array(out["images"])
    assert out["nodes"] == 220 and out["levels"] < out["nodes"] / 5
    model = tiny_cnn10(engine="value")
    total = np.zeros(4)
    for b, image in enumerate(images):
        for p in model.parameters():
            p.zero_grad()
        x = values(image.reshape(1, 1, 5, 5))
        loss = F.binary_cross_entropy(model(x), [[float(b % 2)]])
        loss.backward(1 / 32)
        total += model[0].weight.grads().ravel()
        if b == 3:
            assert out["loss_3"] == pytest.approx(loss.data, abs=1e-12) and out["loaded_loss_3"] == out["loss_3"]
            np.testing.assert_allclose(out["grad_x_3"], x.grads().reshape(5, 5), rtol=0, atol=1e-14)
            assert out["loaded_grad_x_3"] == out["grad_x_3"]
    np.testing.assert_allclose(out["mean_grad_F"], total, rtol=0, atol=1e-14)


def test_every_example_script_has_a_check():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_and_prints_its_numbers(name):
    CHECKS[name](run(name))
