"""``tinygrad-cnn train``: short runs through the command line, checkpoints, resume, bad input."""
import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_cnn import Tensor, checkpoint, data
from tinygrad_cnn.cli import main
from tinygrad_cnn.models import square_detector15

SHORT = ["squares", "--n", "600", "--epochs", "2", "--restarts", "3", "--json"]


def train(capsys, *argv):
    """Run ``tinygrad-cnn train ...`` in this process: (exit status, JSON of the last line or None, stderr)."""
    status = main(["train", *map(str, argv)])
    out, err = capsys.readouterr()
    last = out.strip().splitlines()[-1] if out.strip() else ""
    return status, json.loads(last) if last.startswith("{") else None, err


def without_time(result):
    return {k: v for k, v in result.items() if k != "train_seconds"}


def write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.asarray(array, dtype=np.uint8).tobytes())


def mnist_folder(folder, images, labels):
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images, 2051)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels, 2049)
    return folder


def test_short_run_prints_json_and_the_same_seed_gives_the_same_numbers(capsys):
    status, first, err = train(capsys, *SHORT)
    assert status == 0
    assert 0 <= first["test_accuracy"] <= 1 and first["epochs"] == 2 and first["train_seconds"] > 0
    assert [h["epoch"] for h in first["history"]] == [1, 2] and first["kept_start"] in (0, 1, 2)
    assert "start 3/3: validation accuracy" in err and "test accuracy" in err  # the human lines go to stderr
    _, again, _ = train(capsys, *SHORT)
    _, other, _ = train(capsys, *SHORT, "--seed", "1")
    assert without_time(again) == without_time(first) and without_time(other) != without_time(first)


def test_resume_continues_to_the_numbers_of_an_uninterrupted_run(capsys, tmp_path):
    whole, part, resumed = (tmp_path / f"{name}.npz" for name in ("whole", "part", "resumed"))
    _, expected, _ = train(capsys, *SHORT[:4], "4", *SHORT[5:], "--save", whole)
    _, _, _ = train(capsys, *SHORT, "--save", part)
    assert checkpoint.load(part)["epoch"] == 2
    status, result, _ = train(capsys, *SHORT[:4], "4", *SHORT[5:], "--resume", part, "--save", resumed)
    assert status == 0 and result["test_accuracy"] == expected["test_accuracy"]
    assert result["test_loss"] == expected["test_loss"] and result["history"] == expected["history"][2:]
    a, b = checkpoint.load(whole), checkpoint.load(resumed)
    assert a["epoch"] == b["epoch"] == 4
    for key in a["model"]:
        assert np.array_equal(a["model"][key], b["model"][key])
    for key in a["optimizer"]["state"]:
        assert np.array_equal(a["optimizer"]["state"][key], b["optimizer"]["state"][key])


def test_the_squares_checkpoint_classifies_raw_images(capsys, tmp_path):
    path = tmp_path / "squares.npz"
    status, result, _ = train(capsys, "squares", "--n", "2000", "--epochs", "3", "--restarts", "6", "--seed", "2",
                              "--save", path, "--json")
    assert status == 0
    model = square_detector15()
    model.load_state_dict(checkpoint.load(path)["model"])
    X, y = data.squares(2000 + 2000, seed=2)  # the run's test set: the 2,000 images after its --n
    predicted = model(Tensor(X[2000:])).data[:, 0] > 0.5
    assert np.mean(predicted == y[2000:]) == result["test_accuracy"] >= 0.99
    X, y = data.squares(1000, seed=123)  # fresh raw images, never seen
    assert np.mean((model(Tensor(X)).data[:, 0] > 0.5) == y) >= 0.99


def test_value_engine_run_gives_the_tensor_engine_numbers(capsys):
    argv = ["squares", "--n", "60", "--epochs", "2", "--restarts", "2", "--batch-size", "10", "--json"]
    _, tensor, _ = train(capsys, *argv)
    status, value, _ = train(capsys, *argv, "--engine", "value")
    assert status == 0 and value["engine"] == "value" and value["test_accuracy"] == tensor["test_accuracy"]
    assert [h["loss"] for h in value["history"]] == pytest.approx([h["loss"] for h in tensor["history"]], abs=1e-10)
    assert value["test_loss"] == pytest.approx(tensor["test_loss"], abs=1e-10)
    assert value["kept_start"] == tensor["kept_start"]


def test_mnist_from_idx_files_with_split(capsys, tmp_path):
    rng = np.random.default_rng(0)
    folder = mnist_folder(tmp_path / "mnist", rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30))
    status, result, err = train(capsys, "mnist", "--data", folder, "--split", "20", "--epochs", "1", "--json")
    assert status == 0 and result["epochs"] == 1 and "20 training, 10 test images" in err


def corrupt(path):
    path.write_bytes(b"PK\x03\x04 not really a zip")


def foreign(path):
    np.savez(path, weights=np.zeros(3))


def digits_checkpoint(path):
    from tinygrad_cnn.models import digits_cnn
    from tinygrad_cnn.optim import Adam
    model = digits_cnn()
    checkpoint.save(path, model, Adam(model.parameters()), 1)


@pytest.mark.parametrize("make, message", [
    (corrupt, "truncated or corrupt"),
    (foreign, "not a tinygrad_cnn checkpoint"),
    (digits_checkpoint, "does not fit the model"),
])
def test_bad_checkpoint_exits_2_before_training_and_overwrites_nothing(capsys, tmp_path, make, message):
    bad, save = tmp_path / "bad.npz", tmp_path / "save.npz"
    make(bad)
    save.write_bytes(b"an older checkpoint")
    before = bad.read_bytes()
    status, result, err = train(capsys, *SHORT, "--resume", bad, "--save", save)
    assert status == 2 and result is None
    assert err.startswith("tinygrad-cnn train: --resume: ") and message in err and len(err.splitlines()) == 1
    assert save.read_bytes() == b"an older checkpoint" and bad.read_bytes() == before


@pytest.mark.parametrize("images, labels, message", [
    (np.zeros((12, 20, 20)), np.zeros(12), "images are 20x20, MNIST's are 28x28"),
    (np.zeros((12, 28, 28)), np.array([1] * 11 + [12]), "label 12 is not a digit 0..9"),
    (np.zeros((12, 28, 28)), np.zeros(11), "holds 12 images but"),
])
def test_bad_mnist_files_exit_2_naming_the_problem(capsys, tmp_path, images, labels, message):
    folder = mnist_folder(tmp_path / "mnist", images, labels)
    status, _, err = train(capsys, "mnist", "--data", folder, "--split", "6", "--save", tmp_path / "m.npz")
    assert status == 2 and message in err and err.startswith("tinygrad-cnn train: --data: ")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("argv, message", [
    (["squares", "--epochs", "0"], "--epochs: expected an integer >= 1, got 0"),
    (["squares", "--lr", "-0.1"], "--lr: expected a positive number, got -0.1"),
    (["squares", "--lr", "nan"], "--lr: expected a positive number, got nan"),
    (["squares", "--batch-size", "0"], "--batch-size: expected an integer >= 1"),
    (["squares", "--restarts", "0"], "--restarts: expected an integer >= 1"),
    (["squares", "--data", "x"], "--data: only for mnist"),
    (["digits", "--n", "10"], "--n: only for squares"),
    (["mnist", "--init", "pytorch"], "--init: only for squares"),
    (["squares", "--save", "/no/such/folder/c.npz"], "--save: expected a file path in an existing folder"),
    (["squares", "--resume", "/no/such/file.npz"], "--resume: /no/such/file.npz: no such checkpoint file"),
    (["mnist", "--data", "/no/such/folder", "--split", "5"], "--data: mnist: /no/such/folder is not a folder"),
])
def test_bad_options_exit_2_with_one_line(capsys, argv, message):
    status, _, err = train(capsys, *argv)
    assert status == 2 and message in err and len(err.splitlines()) == 1


def test_plots_folder_that_is_a_file(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "f").write_text("")
    status, _, err = train(capsys, *SHORT, "--plots", tmp_path / "f")
    assert status == 2 and "--plots: expected a folder" in err


def test_plots_are_written(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    status, _, err = train(capsys, *SHORT, "--plots", tmp_path / "pictures")
    assert status == 0
    for name in ("curves.png", "kernels.png", "feature_maps.png"):
        assert (tmp_path / "pictures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and "the last 20% of the training images" in out
    for option in ("--engine", "--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--restarts", "--init",
                   "--n", "--data", "--split", "--save", "--resume", "--plots", "--json"):
        assert option in out


def test_console_script_exit_status_and_json_last_line():
    cmd = [sys.executable, "-m", "tinygrad_cnn", "train", "squares", "--n", "100", "--epochs", "1", "--restarts", "1",
           "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0 and 0 <= json.loads(done.stdout.splitlines()[-1])["test_accuracy"] <= 1
    done = subprocess.run(cmd[:5] + ["--epochs", "-1"], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
