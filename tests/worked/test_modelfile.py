"""Model files (tinygrad_cnn.worked.modelfile) and `tinygrad-cnn worked --model FILE.json`: the contract's
example on both engines, decimal strings, "bias": false, weights drawn from the seed, bad files named
where they are bad, and the command line (text, --json, --dump-model, exit status 2). No torch needed."""
import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_cnn.cli import main
from tinygrad_cnn.worked import modelfile
from tinygrad_cnn.worked.modelfile import ModelFileError
from tinygrad_cnn.worked.network import NetworkError

ENGINES = ("value", "tensor")
TEXTBOOK = Path(__file__).resolve().parents[2] / "examples" / "models" / "textbook_12_4.json"

# the contract's example model file (docs: API.md, "Worked solutions for any small network"), as written there
EXAMPLE = """{"title": "my exercise",
 "input": [[[2, 1, 0], [1, 0.5, 2], [0, 1, 1]]],
 "target": 1,
 "layers": [
   {"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 2,
    "stride": 1, "padding": 0, "weight": [[[[1, -1], [-1, 1]]]], "bias": [1]},
   {"type": "ReLU"},
   {"type": "MaxPool2d", "kernel_size": 2, "stride": 1},
   {"type": "Flatten"},
   {"type": "Linear", "in_features": 1, "out_features": 1, "weight": [[-1]], "bias": [0]},
   {"type": "Sigmoid"}],
 "loss": "BCELoss",
 "lr": 0.01}
"""
JSON_KEYS = {"input", "target", "layers", "loss", "grad_input", "params"}

# 0.1 + 0.2 - 0.3: exactly 0 at the ReLU (float64 would say 5.55e-17); a tie in the max-pool window of zeros
KINK = {"title": "a kink", "input": [[[1, 1, 1], [1, 1, 1], [1, 1, 1]]], "target": [0.5],
        "layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 2,
                    "weight": [[[[0.1, 0.2], [-0.3, 0]]]], "bias": [0]},
                   {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2}, {"type": "Flatten", "start_dim": 0},
                   {"type": "Linear", "in_features": 1, "out_features": 1, "weight": [[2]], "bias": [0.25]}],
        "loss": "MSELoss", "lr": 0.1}


def example():
    return json.loads(EXAMPLE)


def numbers(obj):
    """Every number of a to_json() object, flattened in order, with the path to each."""
    if isinstance(obj, dict):
        return [(f"{k}.{p}" if p else str(k), v) for k, value in obj.items() for p, v in numbers(value)]
    if isinstance(obj, list):
        return [(f"{i}.{p}" if p else str(i), v) for i, value in enumerate(obj) for p, v in numbers(value)]
    return [("", obj)] if isinstance(obj, (int, float)) and not isinstance(obj, bool) else []


def assert_close(a, b, tol=1e-12):
    """Two to_json() objects with the same keys and shapes, every number within tol."""
    left, right = numbers(a), numbers(b)
    assert [p for p, _ in left] == [p for p, _ in right]
    bad = [(p, x, y) for (p, x), (_, y) in zip(left, right) if not math.isclose(x, y, rel_tol=tol, abs_tol=tol)]
    assert not bad, bad[:5]


def write(tmp_path, obj, name="net.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(path)


def run(capsys, *argv):
    status = main(["worked", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def stringified(obj, keys=("input", "target")):
    """The same model file with the numbers of its arrays written as decimal strings."""
    def strings(v):
        return [strings(x) for x in v] if isinstance(v, list) else (str(v) if isinstance(v, (int, float)) else v)
    out = copy.deepcopy(obj)
    for key in keys:
        out[key] = strings(out[key])
    for spec in out["layers"]:
        for name in ("weight", "bias"):
            if isinstance(spec.get(name), list):
                spec[name] = strings(spec[name])
    return out


# --- the contract's example ----------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_the_contract_example_is_worked_by_hand(engine):
    solution = modelfile.loads(EXAMPLE).work(engine)
    out = solution.to_json()
    assert set(out) == JSON_KEYS and solution.engine == engine and solution.title == "my exercise"
    assert [layer["type"] for layer in out["layers"]] == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear",
                                                          "Sigmoid"]
    assert [layer["index"] for layer in out["layers"]] == list(range(6))
    # by hand: conv = [[1.5, 3.5], [2.5, -0.5]], ReLU, max 3.5 at [0,0,1], linear -3.5, sigmoid, BCE against 1
    assert out["layers"][0]["output"] == [[[1.5, 3.5], [2.5, -0.5]]]
    assert out["layers"][1]["output"] == [[[1.5, 3.5], [2.5, 0.0]]]
    assert out["layers"][2]["output"] == [[[3.5]]] and out["layers"][4]["output"] == [[-3.5]]
    p = 1 / (1 + math.exp(3.5))
    assert out["loss"] == pytest.approx(-math.log(p), rel=1e-14)
    dz = p - 1                                                     # dL/d(linear output)
    assert out["layers"][4]["grad_output"][0][0] == pytest.approx(dz, rel=1e-14)
    assert out["layers"][1]["grad_output"] == [[[0.0, pytest.approx(-dz, rel=1e-14)], [0.0, 0.0]]]
    assert out["params"]["4.weight"]["grad"][0][0] == pytest.approx(3.5 * dz, rel=1e-14)
    assert np.allclose(out["params"]["0.weight"]["grad"], np.array([[1, 0], [0.5, 2]]) * -dz, rtol=1e-14, atol=0)
    assert out["params"]["0.bias"]["after_step"][0] == pytest.approx(1 - 0.01 * -dz, rel=1e-14)
    assert list(out["params"]) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert solution.loss_after_step < solution.loss


def test_the_engines_agree_on_the_contract_example():
    value, tensor = (modelfile.loads(EXAMPLE).work(e).to_json() for e in ENGINES)
    assert_close(value, tensor)


def test_decimal_strings_and_json_numbers_give_the_same_solution():
    for obj in (example(), KINK):
        as_numbers = modelfile.loads(json.dumps(obj))
        as_strings = modelfile.loads(json.dumps(stringified(obj)))
        for engine in ENGINES:
            a, b = as_numbers.work(engine), as_strings.work(engine)
            assert a.to_json() == b.to_json()
            assert [layer.kinks for layer in a.layers] == [layer.kinks for layer in b.layers]
    # 0.1 is the decimal written, not the float nearest it: the ReLU input is exactly 0 either way
    solution = modelfile.loads(json.dumps(stringified(KINK))).work("value")
    assert solution.layers[1].input.ravel()[0] == 0 and any("kink" in k for k in solution.layers[1].kinks)


def test_a_decimal_string_learning_rate_is_read_as_a_number():
    """The contract: "numbers may be JSON numbers or decimal strings" (lr is a number of the file)."""
    obj = example()
    obj["lr"] = "0.01"
    assert modelfile.loads(json.dumps(obj)).work("tensor").to_json() == modelfile.loads(EXAMPLE).work(
        "tensor").to_json()


def test_a_file_without_lr_takes_lr_0_01():
    """lr may be left out (a model file has title, input, target, layers, loss, lr, seed; lr 0.01 unless given)."""
    obj = example()
    del obj["lr"]
    solution = modelfile.loads(json.dumps(obj)).work("tensor")
    assert solution.lr == 0.01 and solution.to_json() == modelfile.loads(EXAMPLE).work("tensor").to_json()


def test_parse_takes_the_object_of_plain_json_load_too():
    """parse() of json.loads's object (floats for numbers, as json.load gives) is the file's solution."""
    assert modelfile.parse(json.loads(EXAMPLE)).work("tensor").to_json() == modelfile.loads(EXAMPLE).work(
        "tensor").to_json()


def test_bias_false_gives_no_bias_param():
    obj = example()
    obj["layers"][0]["bias"] = False
    obj["layers"][4]["bias"] = False
    mf = modelfile.loads(json.dumps(obj))
    assert mf.model[0].bias is None and mf.model[4].bias is None
    for engine in ENGINES:
        out = mf.work(engine).to_json()
        assert list(out["params"]) == ["0.weight", "4.weight"]
        assert out["layers"][0]["output"] == [[[0.5, 2.5], [1.5, -1.5]]]   # the conv without its bias of 1
    assert modelfile.to_json("t", mf.model, [[[0]]], 1, "BCELoss", 0.01)["layers"][0]["bias"] is False


# --- weights from the seed ------------------------------------------------------------------------------
def seeded(seed=None, **changes):
    obj = {"input": np.round(np.linspace(-1, 1, 2 * 4 * 4), 2).reshape(2, 4, 4).tolist(), "target": [1, 0],
           "layers": [{"type": "Conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3},
                      {"type": "ReLU"}, {"type": "Flatten", "start_dim": 0},
                      {"type": "Linear", "in_features": 12, "out_features": 2}], "loss": "MSELoss", "lr": 0.1}
    if seed is not None:
        obj["seed"] = seed
    obj.update(changes)
    return obj


def params(obj, engine="tensor"):
    return {k: p["value"] for k, p in modelfile.loads(json.dumps(obj)).work(engine).to_json()["params"].items()}


def test_weights_left_out_are_drawn_from_the_seed():
    a, b, c = params(seeded(3)), params(seeded(3)), params(seeded(4))
    assert list(a) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert a == b                                                         # same seed, same numbers
    assert all(not np.allclose(a[k], c[k]) for k in a)                    # another seed, other numbers
    assert params(seeded()) == params(seeded(0))                          # no seed: seed 0
    assert params(seeded(3), "value") == a                                # the same on both engines
    for key, fan_in in (("0.weight", 2 * 3 * 3), ("0.bias", 2 * 3 * 3), ("3.weight", 12), ("3.bias", 12)):
        bound = 1 / math.sqrt(fan_in)                                     # PyTorch's U(-1/sqrt(fan_in), ...)
        assert np.all(np.abs(a[key]) <= bound) and np.ptp(a[key]) > 0
    # a weight given in the file is taken as written; the others are still drawn
    partly = seeded(3)
    partly["layers"][3]["weight"] = [[0.5] * 12, [-0.25] * 12]
    mixed = params(partly)
    assert mixed["3.weight"] == [[0.5] * 12, [-0.25] * 12] and mixed["0.weight"] == a["0.weight"]


# --- bad files ------------------------------------------------------------------------------------------
def bad(change):
    obj = example()
    change(obj)
    return json.dumps(obj)


def set_layer(i, **kv):
    return lambda obj: obj["layers"][i].update(kv)


BAD_FILES = {
    "unknown layer type": (bad(set_layer(1, type="Swish")), ["layers[1]", "'Swish'", "ReLU"]),
    "wrong weight shape": (bad(set_layer(0, weight=[[[1, -1], [-1, 1]]])),
                           ["layers[0].weight", "expected shape (1, 1, 2, 2)", "got shape (1, 2, 2)"]),
    "ragged weight": (bad(set_layer(0, weight=[[[[1, -1], [-1]]]])), ["layers[0].weight", "rectangular"]),
    "ragged input": (bad(lambda o: o.update(input=[[[2, 1, 0], [1, 0.5], [0, 1, 1]]])), ["input", "rectangular"]),
    "words for numbers": (bad(set_layer(4, bias=["zero"])), ["layers[4].bias", "numbers"]),
    "missing input": (bad(lambda o: o.pop("input")), ['missing "input"']),
    "missing layers": (bad(lambda o: o.pop("layers")), ['missing "layers"']),
    "unknown top-level key": (bad(lambda o: o.update(epochs=3)), ["unknown key epochs", "title", "seed"]),
    "bad loss": (bad(lambda o: o.update(loss="L1Loss")), ["loss", "L1Loss", "BCELoss"]),
    "bad loss object": (bad(lambda o: o.update(loss={"reduction": "sum"})), ["loss", "MSELoss"]),
    "weight on a ReLU": (bad(set_layer(1, weight=[1])), ["layers[1]", "no weight or bias"]),
    "bad layer argument": (bad(set_layer(2, kernel_size=0)), ["layers[2]", "MaxPool2d", "kernel_size"]),
    "unknown layer argument": (bad(set_layer(0, kernel=2)), ["layers[0]", "Conv2d", "kernel"]),
    "a layer without a type": (bad(lambda o: o["layers"].insert(1, {"kernel_size": 2})), ["layers[1]", '"type"']),
    "bad seed": (bad(lambda o: o.update(seed=-1)), ["seed", "non-negative integer"]),
    "bad lr": (bad(lambda o: o.update(lr=[0.1])), ["lr", "a finite number"]),
    "huge lr": (bad(lambda o: o.update(lr=1e308)), ["lr", "below 1e301", "1E+308"]),
    "ragged target": (bad(lambda o: o.update(target=[[1], [1, 2]])), ["target", "rectangular array of class indices"]),
    "not an object": ("[1, 2]", ["expected a JSON object"]),
    "not JSON": (EXAMPLE[:-3], ["not valid JSON"]),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_give_a_model_file_error_naming_the_place(name, tmp_path, capsys):
    text, words = BAD_FILES[name]
    with pytest.raises(ModelFileError) as e:
        modelfile.loads(text, "net.json")
    message = str(e.value)
    assert message.startswith("net.json") and all(w in message for w in words), message
    path = write(tmp_path, text)
    with pytest.raises(ModelFileError, match=re.escape(path)):
        modelfile.load(path)
    status, out, err = run(capsys, "--model", path)                      # the CLI: one line, exit status 2
    assert (status, out) == (2, "") and err.count("\n") == 1
    assert err.startswith(f"tinygrad-cnn worked: --model: {path}") and all(w in err for w in words)


def test_a_target_of_the_wrong_shape_is_a_network_error(tmp_path, capsys):
    text = bad(lambda o: o.update(target=[1, 0]))
    mf = modelfile.loads(text)                                            # the file reads; working it refuses
    for engine in ENGINES:
        with pytest.raises(NetworkError) as e:
            mf.work(engine)
        assert e.value.arg == "target" and "(1, 1)" in str(e.value) and "(2,)" in str(e.value)
    ce = bad(lambda o: o.update(loss="CrossEntropyLoss", target=[3]))    # a class that is not there
    with pytest.raises(NetworkError, match="target: CrossEntropyLoss takes class indices"):
        modelfile.loads(ce).work("tensor")
    status, out, err = run(capsys, "--model", write(tmp_path, text))
    assert (status, out) == (2, "") and "--model: target:" in err and err.count("\n") == 1


def test_an_input_the_layers_refuse_is_a_network_error():
    text = bad(lambda o: o.update(input=[[[1, 2], [3, 4]], [[1, 2], [3, 4]]]))   # 2 channels for in_channels 1
    with pytest.raises(NetworkError, match="input: layer 0 \\(Conv2d\\)"):
        modelfile.loads(text).work("tensor")


def test_a_file_that_cannot_be_read_is_named(tmp_path, capsys):
    missing = str(tmp_path / "none.json")
    with pytest.raises(ModelFileError, match=f"{re.escape(missing)}: cannot read it"):
        modelfile.load(missing)
    status, out, err = run(capsys, "--model", missing)
    assert status == 2 and out == "" and missing in err
    status, _, err = run(capsys, "--model", "cnn11")                      # neither a built-in nor a .json file
    assert status == 2 and "expected cnn10, square15 or a model file" in err


# --- the command line -----------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_worked_model_file_prints_every_layer(capsys, tmp_path, engine):
    status, out, err = run(capsys, "--model", write(tmp_path, EXAMPLE), "--engine", engine)
    assert (status, err) == (0, "")
    heads = ["Worked solution: my exercise", f"Engine: {engine}", "FORWARD PASS", "Conv2d #0: Conv2d", "ReLU #1: ReLU",
             "MaxPool2d #2: MaxPool2d", "Flatten #3: Flatten", "Linear #4: Linear", "Sigmoid #5: Sigmoid",
             "Loss: BCELoss", "BACKWARD PASS", "ONE STEP OF GRADIENT DESCENT"]
    positions = [out.index(h) for h in heads]
    assert positions == sorted(positions)
    assert "L = 3.52975" in out and "out[0,0,0] = x[0,0,1]" in out and "0.weight (1, 1, 2, 2):" in out
    assert "kink" not in out                                              # none here: -0.5 at the ReLU, no tie


def test_layer_names_from_the_file_are_printed(capsys, tmp_path):
    obj = example()
    obj["layers"][0]["name"] = "my conv"
    status, out, _ = run(capsys, "--model", write(tmp_path, obj))
    assert status == 0 and "my conv: Conv2d" in out and "ReLU #1: ReLU" in out


def test_worked_json_has_the_contract_keys_and_the_engines_agree(capsys, tmp_path):
    path = write(tmp_path, EXAMPLE)
    outs = []
    for engine in ENGINES:
        status, out, err = run(capsys, "--model", path, "--json", "--engine", engine)
        assert (status, err) == (0, "") and out.count("\n") == 1
        outs.append(json.loads(out))
    value, tensor = outs
    assert set(value) == JSON_KEYS
    assert all({"index", "type", "output", "grad_output"} <= set(layer) for layer in value["layers"])
    assert list(value["params"]) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    assert all(set(p) == {"value", "grad", "after_step"} for p in value["params"].values())
    assert isinstance(value["loss"], float) and np.shape(value["grad_input"]) == (1, 3, 3)
    assert value == modelfile.loads(EXAMPLE).work("value").to_json()
    assert_close(value, tensor)


def test_lr_overrides_the_files_own(capsys, tmp_path):
    path = write(tmp_path, EXAMPLE)
    _, out, _ = run(capsys, "--model", path, "--json", "--lr", "0.5")
    p = json.loads(out)["params"]["0.bias"]
    assert p["after_step"][0] == pytest.approx(1 - 0.5 * p["grad"][0], rel=1e-14)
    _, text, _ = run(capsys, "--model", path, "--lr", "0.5")
    assert "lr = 0.5:" in text


@pytest.mark.parametrize("builtin", ["cnn10", "square15"])
def test_dump_model_then_model_reproduces_the_builtin(capsys, tmp_path, builtin):
    path = str(tmp_path / f"{builtin}.json")
    status, out, _ = run(capsys, "--model", builtin, "--dump-model", path)
    assert status == 0 and path in out
    assert set(json.loads(Path(path).read_text())) <= set(modelfile.TOP_KEYS)
    for engine in ENGINES:
        _, out, _ = run(capsys, "--model", builtin, "--json", "--engine", engine)
        reference = json.loads(out)
        status, out, _ = run(capsys, "--model", path, "--json", "--engine", engine)
        assert status == 0
        got = json.loads(out)
        assert got["loss"] == pytest.approx(reference["loss"], rel=1e-12, abs=1e-12)
        assert list(got["params"]) == list(reference["params"])
        for key in got["params"]:
            assert_close(got["params"][key], reference["params"][key])
        assert_close({k: got[k] for k in JSON_KEYS}, {k: reference[k] for k in JSON_KEYS})
    if builtin == "cnn10":   # and the built-in's own keys: dL/dF and dL/db1 are the conv's weight and bias grads
        assert_close(np.ravel(got["params"]["0.weight"]["grad"]).tolist(), np.ravel(reference["grad"]["F"]).tolist())
        assert got["params"]["0.bias"]["grad"] == [reference["grad"]["b1"]] == [0.0]


@pytest.mark.parametrize("argv, option", [
    (["--x", "[[1,2],[3,4]]"], "--x"), (["--kernel", "[[1]]"], "--kernel"), (["--b1", "1"], "--b1"),
    (["--w4", "[1,2,3,4]"], "--w4"), (["--b4", "0"], "--b4"), (["--label", "0"], "--label"),
    (["--seed", "1"], "--seed"), (["--plots", "."], "--plots"),
])
def test_builtin_only_options_with_a_model_file_exit_2(capsys, tmp_path, argv, option):
    status, out, err = run(capsys, "--model", write(tmp_path, EXAMPLE), *argv)
    assert status == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"tinygrad-cnn worked: {option}") and "only for the built-ins" in err


def test_dump_model_of_a_model_file_exits_2(capsys, tmp_path):
    status, out, err = run(capsys, "--model", write(tmp_path, EXAMPLE), "--dump-model", str(tmp_path / "o.json"))
    assert status == 2 and out == "" and "--dump-model" in err and not (tmp_path / "o.json").exists()


def test_a_network_too_large_to_print_exits_2_naming_json(capsys, tmp_path):
    big = {"input": [0.5] * 30, "target": [0] * 30,
           "layers": [{"type": "Linear", "in_features": 30, "out_features": 30}, {"type": "ReLU"}], "lr": 0.01}
    path = write(tmp_path, big)
    status, out, err = run(capsys, "--model", path, "--engine", "tensor")
    assert status == 2 and out == "" and err.count("\n") == 1 and "--json" in err and "too many" in err
    status, out, _ = run(capsys, "--model", path, "--json", "--engine", "tensor")
    assert status == 0 and np.shape(json.loads(out)["params"]["0.weight"]["grad"]) == (30, 30)


def test_the_textbook_network_is_refused_as_text_and_given_as_json(capsys):
    """examples/models/textbook_12_4.json (177550 numbers): --json only."""
    status, out, err = run(capsys, "--model", str(TEXTBOOK), "--engine", "tensor")
    assert status == 2 and out == "" and "--json" in err
    status, out, _ = run(capsys, "--model", str(TEXTBOOK), "--json", "--engine", "tensor")
    got = json.loads(out)
    assert status == 0 and np.shape(got["input"]) == (1, 3, 32, 32)
    assert [np.shape(layer["output"]) for layer in got["layers"]] == [
        (1, 3, 28, 28), (1, 3, 28, 28), (1, 3, 14, 14), (1, 16, 10, 10), (1, 16, 10, 10), (1, 16, 5, 5), (1, 400),
        (1, 120), (1, 120), (1, 10)]
    assert got["loss"] == pytest.approx(float(np.sum((np.array(got["layers"][-1]["output"]) - 1) ** 2)), rel=1e-12)
    x = np.array(got["input"])
    assert np.all(np.abs(x) <= 1) and np.array_equal(np.round(x, 2), x)   # two decimals, in [-1, 1]


def test_text_output_never_shows_minus_zero_nor_a_dangling_point(capsys, tmp_path):
    """Tiny negatives (-4e-7 in the input, gradients of a saturated sigmoid) and numbers within 5e-7 of
    an integer: written as 0 / -0.000001 / 1, never -0.000000, -0 or a bare "0." / "1."."""
    obj = {"title": "tiny numbers", "input": [[["-0.0000004", "0.0000003", "-0.0000006"], [20, "1.0000002", 0]]],
           "target": [[1]],
           "layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": [2, 3],
                       "weight": [[[[1, 0.5, "-0.0000002"], [1, 0, 0]]]], "bias": ["-0.0000001"]},
                      {"type": "Flatten"}, {"type": "Sigmoid"}],
           "loss": "BCELoss", "lr": 0.01}
    status, out, _ = run(capsys, "--model", write(tmp_path, obj))
    assert status == 0
    assert "-0.000000" not in out
    rows = [line.split() for line in out.splitlines() if re.fullmatch(r"[\s\d.-]+", line) and line.strip()]
    cells = [c for row in rows for c in row] + list(re.findall(r"L = (\S+) -> (\S+) on", out)[0])
    assert len(cells) > 20
    wrong = [c for c in cells if not re.fullmatch(r"-?(0|[1-9]\d*)(\.\d*[1-9])?", c) or c == "-0"]
    assert not wrong, f"numbers written wrong: {sorted(set(wrong))}"


def test_a_relu_input_of_exactly_0_is_flagged_as_a_kink(capsys, tmp_path):
    path = write(tmp_path, KINK)
    for engine in ENGINES:
        status, out, _ = run(capsys, "--model", path, "--engine", engine)
        assert status == 0
        kinks = [line for line in out.splitlines() if "kink" in line]
        assert any("exactly 0 at [0,0,0]" in line for line in kinks), kinks   # 0.1 + 0.2 - 0.3 at the ReLU
        assert any("tie for the max" in line for line in kinks), kinks         # a window of zeros after it
    solution = modelfile.load(path).work("tensor")
    assert solution.params["0.weight"]["grad"] == pytest.approx(np.zeros((1, 1, 2, 2)))   # ReLU'(0) = 0


# --- any small network: strings or numbers, either engine ----------------------------------------------
@st.composite
def small_files(draw):
    def arr(shape):
        n = int(np.prod(shape))
        flat = draw(st.lists(st.integers(-20, 20), min_size=n, max_size=n))
        return (np.array(flat, dtype=np.float64).reshape(shape) / 10).round(1).tolist()
    cin, cout, k, size = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(
        st.integers(2, 4))
    side = size - k + 1
    act = draw(st.sampled_from(["ReLU", "LeakyReLU", "Tanh"]))
    pool = draw(st.sampled_from([None, "MaxPool2d", "AvgPool2d"])) if side >= 2 else None
    layers = [{"type": "Conv2d", "in_channels": cin, "out_channels": cout, "kernel_size": k,
               "weight": arr((cout, cin, k, k)), "bias": arr((cout,))}, {"type": act}]
    if pool:
        layers.append({"type": pool, "kernel_size": 2, "stride": 1})
        side -= 1
    layers += [{"type": "Flatten", "start_dim": 0},
               {"type": "Linear", "in_features": cout * side * side, "out_features": 2,
                "weight": arr((2, cout * side * side)), "bias": arr((2,))}]
    loss = draw(st.sampled_from(["MSELoss", "CrossEntropyLoss", "BCEWithLogitsLoss"]))
    target = draw(st.integers(0, 1)) if loss == "CrossEntropyLoss" else [0.5, 1]
    return {"input": arr((cin, size, size)), "target": target, "layers": layers, "loss": loss,
            "lr": draw(st.sampled_from([0.01, 0.1, 1]))}


@given(small_files())
def test_any_small_file_is_the_same_from_strings_and_on_either_engine(obj):
    strings = stringified(obj, ("input",))
    value = modelfile.loads(json.dumps(obj)).work("value")
    assert modelfile.loads(json.dumps(strings)).work("value").to_json() == value.to_json()
    tensor = modelfile.loads(json.dumps(obj)).work("tensor")
    assert_close(value.to_json(), tensor.to_json())
    assert [layer.kinks for layer in value.layers] == [layer.kinks for layer in tensor.layers]
    assert [layer.winners for layer in value.layers] == [layer.winners for layer in tensor.layers]


def test_an_lr_whose_step_overflows_is_refused_naming_the_parameter(capsys, tmp_path):
    net = {"layers": [{"type": "Linear", "in_features": 2, "out_features": 1, "weight": [[-1, -1]], "bias": [0]},
                      {"type": "Sigmoid"}], "input": [10, 10], "target": [1], "loss": "BCELoss"}
    status, out, err = run(capsys, "--model", write(tmp_path, net), "--lr", "1e308")
    assert status == 2 and out == ""
    assert "the step with lr 1e+308 makes 0.weight infinite (lr x its gradient overflows float64)" in err
    status, out, err = run(capsys, "--lr", "1e308")  # the built-in cnn10
    assert status == 2 and out == "" and "makes w4 infinite" in err and "Warning" not in err
    status, _, _ = run(capsys, "--model", write(tmp_path, net), "--lr", "1e300")  # large, but the step is finite
    assert status == 0
