"""tinygrad-cnn check: every mistake of the catalogue, replayed and fed back as a student's answers,
is diagnosed by its own name; right answers are right; the exit statuses."""
import json
from decimal import Decimal

import numpy as np
import pytest

from tinygrad_cnn import cli, nn
from tinygrad_cnn.worked import check as C
from tinygrad_cnn.worked import mistakes as M
from tinygrad_cnn.worked.network import work_network

# a batch of two images, two channels, both pools, a linear head: every catalogue entry acts here
IMAGES = [[[[1, 0.5, 0, 2], [0, 1, 1, 0], [2, 1, 0, 1], [1, 1.5, 0, 0]]],
          [[[0, 1, 2, 1], [1, 0, 0, 1], [0.5, 0, 1, 2], [2, 1, 0, 0.5]]]]


def network():
    net = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.MaxPool2d(2, 1), nn.Flatten(), nn.Linear(8, 1), nn.Sigmoid())
    rng = np.random.default_rng(3)
    net.load_state_dict({k: np.round(rng.uniform(-1, 1, v.shape), 1) for k, v in net.state_dict().items()})
    return net


def answers_from(solution, keys):
    """The solution's numbers at 6 decimals, as a student writes them (Decimals), nested as worked --json."""
    out = C.flatten(solution.to_json())
    return _nest_lists({key: json.loads(json.dumps(np.round(np.asarray(out[key], dtype=float), 6).tolist()),
                                        parse_float=Decimal) for key in keys})


@pytest.mark.parametrize("name", list(M.CATALOGUE))
def test_each_mistake_replayed_is_diagnosed_by_its_name(name):
    net, target = network(), [[1], [0]]
    wrong = work_network(net, IMAGES, target, "BCELoss", 0.1, "tensor", mistakes=(name,))
    right = C.flatten(work_network(net, IMAGES, target, "BCELoss", 0.1, "tensor").to_json())
    keys = [k for k, v in C.flatten(wrong.to_json()).items()
            if not np.allclose(np.asarray(v, float), np.asarray(right[k], float), atol=1e-6)]
    assert keys, f"{name} changes nothing here"
    report = C.check(answers_from(wrong, keys), net, IMAGES, target, "BCELoss", 0.1, "tensor")
    assert not report.all_right and report.first_wrong in keys
    assert report.diagnoses and report.diagnoses[0]["mistake"] == name, report.diagnoses
    assert set(report.diagnoses[0]["explains"]) == set(keys)


def _nest_lists(flat):
    """Dotted keys back into worked --json's nesting, layers as a list."""
    out = {}
    for key, value in flat.items():
        node, parts = out, key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    if "layers" in out:
        layers = out["layers"]
        out["layers"] = [layers.get(str(i), {}) for i in range(max(map(int, layers)) + 1)]
    return out


def test_right_answers_at_the_decimals_written_are_right():
    net, target = network(), [[1], [0]]
    s = work_network(net, IMAGES, target, "BCELoss", 0.1)
    loss2 = Decimal(str(round(s.loss, 2)))
    report = C.check({"loss": loss2}, net, IMAGES, target, "BCELoss", 0.1)
    assert report.all_right and report.quantities["loss"]["right"]
    off = loss2 + Decimal("0.01")
    assert not C.check({"loss": off}, net, IMAGES, target, "BCELoss", 0.1).all_right


def test_the_material_s_mistakes_are_named_on_the_worked_example(tmp_path, capsys):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"loss": 0.57, "grad": {"b1": 0}}))
    assert cli.main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert "first wrong quantity, in working order: loss" in out and "Diagnosis: log10-loss" in out
    path.write_text(json.dumps({"loss": 1.313262, "grad": {"b1": 0}}))
    assert cli.main(["check", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["all_right"] is True


@pytest.mark.parametrize("content, words", [("not json", "not valid JSON"), ('{"nope": 1}', "unknown quantity nope"),
                                            ('{"z1": [1, 2]}', "z1: expected shape (4, 4)")])
def test_bad_answers_exit_2_with_one_line(tmp_path, capsys, content, words):
    path = tmp_path / "a.json"
    path.write_text(content)
    assert cli.main(["check", str(path)]) == 2
    assert words in capsys.readouterr().err


def test_worked_mistake_marks_where_it_acts(capsys):
    assert cli.main(["worked", "--mistake", "relu-for-relu-derivative"]) == 0
    out = capsys.readouterr().out
    assert "made on purpose" in out and "!!! the mistake made here: dL/dx = dL/dout * ReLU(x)" in out


@pytest.mark.parametrize("name", list(M.CATALOGUE))
def test_worked_mistake_runs_for_every_entry_on_the_built_ins(capsys, name):
    assert cli.main(["worked", "--mistake", name]) == 0
    assert "made on purpose" in capsys.readouterr().out


def test_an_empty_array_file_is_one_line(capsys, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert cli.main(["graph", "--x", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--x: expected a square 5x5 matrix" in err


def test_a_key_with_a_line_break_is_named_on_one_line():
    net, target = network(), [[1], [0]]
    with pytest.raises(C.AnswersError, match=r'^"a\\nb": expected finite numbers') as info:
        C.check({"a\nb": Decimal("Infinity")}, net, IMAGES, target, "BCELoss", 0.1)
    assert "\n" not in str(info.value)
    with pytest.raises(C.AnswersError, match=r'^unknown quantity ""') as info:
        C.check({"": 1}, net, IMAGES, target, "BCELoss", 0.1)
    assert "\n" not in str(info.value)
