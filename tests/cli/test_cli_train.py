"""``tinygrad-cnn train``: short runs through the command line, checkpoints, resume, bad input."""
import errno
import gzip
import json
import os
import queue
import re
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tinygrad_cnn import Tensor, checkpoint, data
from tinygrad_cnn import train as train_lib
from tinygrad_cnn.cli import main
from tinygrad_cnn.cli import train as cli_train
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


@pytest.mark.parametrize("dtype, given", [("float32", []), ("float64", ["--dtype", "float64"])])
def test_resume_continues_to_the_numbers_of_an_uninterrupted_run(capsys, tmp_path, dtype, given):
    whole, part, resumed = (tmp_path / f"{name}.npz" for name in ("whole", "part", "resumed"))
    _, expected, _ = train(capsys, *SHORT[:4], "4", *SHORT[5:], *given, "--save", whole)
    _, _, _ = train(capsys, *SHORT, *given, "--save", part)
    assert checkpoint.load(part)["epoch"] == 2
    status, result, _ = train(capsys, *SHORT[:4], "4", *SHORT[5:], "--resume", part, "--save", resumed)  # no --dtype
    assert status == 0 and result["dtype"] == expected["dtype"] == dtype
    assert result["test_accuracy"] == expected["test_accuracy"]
    assert result["test_loss"] == expected["test_loss"] and result["history"] == expected["history"]  # all 4 epochs
    a, b = checkpoint.load(whole), checkpoint.load(resumed)
    assert a["epoch"] == b["epoch"] == 4
    for key in a["model"]:
        assert a["model"][key].dtype == b["model"][key].dtype == dtype
        assert np.array_equal(a["model"][key], b["model"][key])
    for key in a["optimizer"]["state"]:
        assert b["optimizer"]["state"][key].dtype == (np.int64 if key.endswith(".step") else dtype)
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
    _, tensor, _ = train(capsys, *argv, "--dtype", "float64")  # the value engine's dtype (tensor's default: float32)
    status, value, _ = train(capsys, *argv, "--engine", "value")
    assert status == 0 and value["engine"] == "value" and value["dtype"] == "float64"
    assert value["test_accuracy"] == tensor["test_accuracy"]
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
    for option in ("--engine", "--dtype", "--epochs", "--batch-size", "--lr", "--optimizer", "--seed", "--restarts",
                   "--init", "--n", "--data", "--split", "--save", "--resume", "--plots", "--json"):
        assert option in out


def test_console_script_exit_status_and_json_last_line():
    cmd = [sys.executable, "-m", "tinygrad_cnn", "train", "squares", "--n", "100", "--epochs", "1", "--restarts", "1",
           "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0 and 0 <= json.loads(done.stdout.splitlines()[-1])["test_accuracy"] <= 1
    done = subprocess.run(cmd[:5] + ["--epochs", "-1"], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr


# --- outputs checked before any work (issue 15) ------------------------------------------------------
def run_cli(capsys, *argv):
    """(exit status, stdout, stderr) of ``tinygrad-cnn train ...`` run in this process."""
    status = main(["train", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


QUICK = ["squares", "--n", "100", "--epochs", "1", "--restarts", "1"]


def refused_before_any_work(status, out, err, *words):
    # nothing was trained: no header on stdout, and (with --json, where it goes to stderr) no line but this
    assert status == 2 and out == "" and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for w in words:
        assert str(w) in err, (w, err)


def test_save_to_a_folder_a_file_as_folder_or_a_fifo_is_refused_before_any_work(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    os.mkfifo(tmp_path / "fifo")
    for path, reason in ((tmp_path, "is a folder"),
                         (tmp_path / "file" / "sub" / "c.npz", f"{tmp_path / 'file'} is a file, not a folder"),
                         (tmp_path / "fifo", "is not a regular file"),
                         ("", "got an empty one")):
        refused_before_any_work(*run_cli(capsys, *QUICK, "--json", "--save", path), "--save: ", path, reason)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "file"]
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)


def test_a_missing_folder_of_save_is_named_with_the_reason(capsys, tmp_path):
    refused_before_any_work(*run_cli(capsys, *QUICK, "--save", tmp_path / "no" / "c.npz"),
                            "--save: expected a file path in an existing folder", f"the folder {tmp_path / 'no'} "
                            f"does not exist")


def _deny(monkeypatch, folder):
    """os.access says no for ``folder`` (the tests run as root, who may write anywhere)."""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) == str(folder)
                        else real(p, mode, **kw))


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_unwritable_save_and_plots_exit_2_before_any_work(capsys, tmp_path, monkeypatch, json_flag):
    locked = tmp_path / "locked"
    locked.mkdir()
    _deny(monkeypatch, locked)
    refused_before_any_work(*run_cli(capsys, *QUICK, *json_flag, "--save", locked / "c.npz"),
                            f"--save: cannot write {locked / 'c.npz'}: permission denied")
    pytest.importorskip("matplotlib")
    refused_before_any_work(*run_cli(capsys, *QUICK, *json_flag, "--plots", locked),
                            f"--plots: cannot write to the folder {locked}: permission denied")
    refused_before_any_work(*run_cli(capsys, *QUICK, *json_flag, "--plots", locked / "pictures"),
                            f"--plots: cannot make the folder {locked / 'pictures'}: permission denied")
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write to a read-only folder")
def test_a_read_only_folder_is_refused(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    refused_before_any_work(*run_cli(capsys, *QUICK, "--save", locked / "c.npz"), "--save: ", "permission denied")


def _root_cannot_write_in_sys():
    try:
        os.close(os.open("/sys/.tinygrad-cnn-test", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    except OSError:
        return True
    os.unlink("/sys/.tinygrad-cnn-test")
    return False


@pytest.mark.skipif(not os.path.isdir("/sys") or not _root_cannot_write_in_sys(), reason="needs Linux's /sys")
def test_where_even_root_cannot_write_the_real_reason_is_given(capsys):
    refused_before_any_work(*run_cli(capsys, *QUICK, "--save", "/sys/c.npz"), "--save: cannot write /sys/c.npz: ")
    pytest.importorskip("matplotlib")
    refused_before_any_work(*run_cli(capsys, *QUICK, "--plots", "/sys/pictures"),
                            "--plots: cannot make the folder /sys/pictures: ")


def test_plots_under_a_file_or_over_a_folder_is_refused_before_any_work(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "file").write_text("")
    refused_before_any_work(*run_cli(capsys, *QUICK, "--plots", tmp_path / "file" / "pictures"),
                            f"--plots: cannot make the folder {tmp_path / 'file' / 'pictures'}: "
                            f"{tmp_path / 'file'} is a file")
    (tmp_path / "pictures" / "curves.png").mkdir(parents=True)
    refused_before_any_work(*run_cli(capsys, *QUICK, "--plots", tmp_path / "pictures"),
                            f"--plots: cannot write {tmp_path / 'pictures' / 'curves.png'}: it is a folder")


def test_a_write_that_fails_during_the_run_is_one_line_with_the_real_error(capsys, tmp_path, monkeypatch):
    def disk_full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "save", disk_full)
    status, out, err = run_cli(capsys, *QUICK, "--json", "--save", tmp_path / "c.npz")
    assert status == 2 and out == "" and "Traceback" not in err
    assert err.splitlines()[-1] == (f"tinygrad-cnn train: --save: cannot write {tmp_path / 'c.npz'}: "
                                    f"no space left on device")
    plots = pytest.importorskip("tinygrad_cnn.plots", exc_type=ImportError)
    monkeypatch.undo()

    def denied(folder, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", os.path.join(folder, "curves.png"))

    monkeypatch.setattr(plots, "training_figures", denied)
    status, out, err = run_cli(capsys, *QUICK, "--json", "--plots", tmp_path / "pictures")
    assert status == 2 and out == "" and "Traceback" not in err
    pictures = tmp_path / "pictures"
    assert err.splitlines()[-1] == (f"tinygrad-cnn train: --plots: cannot write {pictures / 'curves.png'}: "
                                    f"permission denied")


# --- Ctrl-C and SIGTERM ----------------------------------------------------------------------------------
def _start(argv, cwd):
    """A ``tinygrad-cnn train`` process (SIGINT as in a terminal: not ignored, as it is for a background job)."""
    return subprocess.Popen([sys.executable, "-m", "tinygrad_cnn", "train", *argv], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_line(process, prefix, timeout=60):
    """Read the process's stdout until a line starts with ``prefix`` (or fail after ``timeout`` seconds)."""
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if lines.get(timeout=max(0.01, deadline - time.monotonic())).startswith(prefix):
                return
        except queue.Empty:
            break
    process.kill()
    pytest.fail(f"no line starting {prefix!r} within {timeout} s")


@pytest.mark.parametrize("signum, by", [(signal.SIGINT, ""), (signal.SIGTERM, " by SIGTERM")])
def test_interrupted_training_says_how_to_resume_exits_130_and_keeps_the_checkpoint(capsys, tmp_path, monkeypatch,
                                                                                     signum, by):
    argv = ["squares", "--n", "2000", "--epochs", "100000", "--restarts", "1", "--save", "c.npz"]
    process = _start(argv, tmp_path)
    _wait_for_line(process, "epoch")  # a checkpoint has been written
    process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the run did not stop within 60 s of the signal")
    assert process.returncode == 130 and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    found = re.fullmatch(rf"tinygrad-cnn train: interrupted{by} at epoch (\d+) of 100000; c.npz holds epoch (\d+); "
                         r"resume with: (tinygrad-cnn train squares --save c.npz --resume c.npz)\n", err)
    assert found, err
    at, saved = int(found[1]), int(found[2])
    assert saved == at - 1 >= 1
    assert os.listdir(tmp_path) == ["c.npz"]  # nothing half-written beside it
    loaded = checkpoint.load(tmp_path / "c.npz")
    assert loaded["epoch"] == saved and [h["epoch"] for h in loaded["history"]] == list(range(1, saved + 1))
    assert loaded["run"]["epochs"] == 100000 and loaded["run"]["n"] == 2000
    # the command it gives resumes (here for one more epoch: --epochs may change)
    monkeypatch.chdir(tmp_path)
    status, result, _ = train(capsys, *shlex.split(found[3])[2:], "--epochs", saved + 1, "--json")
    assert status == 0 and [h["epoch"] for h in result["history"]] == list(range(1, saved + 2))


def _interrupt_at_epoch(monkeypatch, n):
    real, calls = train_lib.train_epoch, []

    def epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_lib, "train_epoch", epoch)


def test_an_interrupt_without_save_says_nothing_was_saved(capsys, monkeypatch):
    _interrupt_at_epoch(monkeypatch, 2)
    status, out, err = run_cli(capsys, "squares", "--n", "100", "--epochs", "5", "--restarts", "1", "--json")
    assert status == 130 and out == "" and "Traceback" not in err
    assert err.splitlines()[-1] == "tinygrad-cnn train: interrupted at epoch 2 of 5; nothing was saved (no --save)"


def test_an_interrupt_during_the_starts_and_before_the_first_checkpoint(capsys, monkeypatch, tmp_path):
    _interrupt_at_epoch(monkeypatch, 3)
    status, out, err = run_cli(capsys, "squares", "--n", "100", "--epochs", "5", "--restarts", "4",
                               "--save", tmp_path / "c.npz")
    assert status == 130 and "Traceback" not in err and not (tmp_path / "c.npz").exists()
    assert err.splitlines() == [f"tinygrad-cnn train: interrupted at epoch 1 of 5 (start 3 of 4); nothing was saved: "
                                f"{tmp_path / 'c.npz'} is written after each epoch"]


def test_an_interrupt_while_saving_waits_for_the_checkpoint_to_be_whole(capsys, monkeypatch, tmp_path):
    real = checkpoint.save

    def save_then_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # arrives during the save: held until it is written
        real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save", save_then_signal)
    status, _, err = run_cli(capsys, *QUICK[:4], "3", "--restarts", "1", "--save", tmp_path / "c.npz")
    assert status == 130 and err.splitlines()[-1].startswith(
        f"tinygrad-cnn train: interrupted at epoch 2 of 3; {tmp_path / 'c.npz'} holds epoch 1; resume with: ")
    assert checkpoint.load(tmp_path / "c.npz")["epoch"] == 1 and os.listdir(tmp_path) == ["c.npz"]


# --- checkpoints record the run; --resume continues it ------------------------------------------------
def test_the_checkpoint_records_task_model_options_and_history(capsys, tmp_path):
    status, result, _ = train(capsys, *SHORT, "--save", tmp_path / "c.npz")
    loaded = checkpoint.load(tmp_path / "c.npz")
    assert status == 0 and loaded["run"] == {
        "task": "squares", "model": "square_detector15", "engine": "tensor", "dtype": "float32", "optimizer": "adam",
        "lr": 0.05,
        "batch_size": 32, "seed": 0, "restarts": 3, "init": "detector", "n": 600, "epochs": 2}
    assert [{k: h[k] for k in ("epoch", "loss", "accuracy")} for h in loaded["history"]] == result["history"]
    assert [len(h["steps"]) for h in loaded["history"]] == [15, 15] and result["steps"] == 30  # 480 images / 32


@pytest.mark.parametrize("option, value, recorded", [
    ("--lr", "0.1", "--lr 0.05"), ("--seed", "1", "--seed 0"), ("--batch-size", "16", "--batch-size 32"),
    ("--optimizer", "sgd", "Adam state"), ("--engine", "value", "--engine tensor"), ("--restarts", "1", "--restarts 3"),
    ("--n", "700", "--n 600"), ("--init", "pytorch", "--init detector"), ("--dtype", "float64", "--dtype float32"),
])
def test_resume_refuses_an_option_that_differs_from_the_recorded_one(capsys, tmp_path, option, value, recorded):
    part = tmp_path / "part.npz"
    train(capsys, *SHORT, "--save", part)
    before = part.read_bytes()
    status, out, err = run_cli(capsys, "squares", "--epochs", "3", "--resume", part, "--save", part, option, value)
    assert status == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"tinygrad-cnn train: {option}: {part} ") and recorded in err
    assert part.read_bytes() == before


def test_resume_continues_with_the_recorded_options_and_history(capsys, tmp_path, monkeypatch):
    options = ["squares", "--n", "300", "--restarts", "3", "--lr", "0.02", "--batch-size", "16", "--seed", "4",
               "--optimizer", "sgd", "--json"]
    _, whole, _ = train(capsys, *options, "--epochs", "4")
    train(capsys, *options, "--epochs", "2", "--save", tmp_path / "part.npz")
    seen = {}
    plots = pytest.importorskip("tinygrad_cnn.plots", exc_type=ImportError)
    monkeypatch.setattr(plots, "training_figures",
                        lambda folder, model, history, *a: seen.update(history=history) or [])
    status, result, err = train(capsys, "squares", "--resume", tmp_path / "part.npz", "--epochs", "4", "--json",
                                "--plots", tmp_path / "pictures")
    assert status == 0 and without_time(result) == dict(without_time(whole), kept_start=None, start_accuracies=[])
    assert "SGD lr 0.02, batch 16, seed 4" in err and "resuming" in err
    # the curves get every epoch, and each step: the step axis goes on from the checkpoint's
    assert [h["epoch"] for h in seen["history"]] == [1, 2, 3, 4] and sum(len(h["steps"]) for h in seen["history"]) \
        == 4 * 15 == result["steps"]


def test_a_checkpoint_of_another_task_or_model_is_refused_as_such(capsys, tmp_path):
    from tinygrad_cnn.models import digits_cnn, tiny_cnn10
    from tinygrad_cnn.optim import Adam
    digits = digits_cnn()
    checkpoint.save(tmp_path / "digits.npz", digits, Adam(digits.parameters()), 1,
                    run={"task": "digits", "model": "digits_cnn", "lr": 0.003})
    status, _, err = run_cli(capsys, "squares", "--resume", tmp_path / "digits.npz")
    assert status == 2 and err == f"tinygrad-cnn train: --resume: {tmp_path / 'digits.npz'} is a checkpoint of task " \
                                  f"digits, not squares\n"
    tiny = tiny_cnn10()
    checkpoint.save(tmp_path / "tiny.npz", tiny, Adam(tiny.parameters()), 1,
                    run={"task": "squares", "model": "tiny_cnn10"})
    status, _, err = run_cli(capsys, "squares", "--resume", tmp_path / "tiny.npz")
    assert status == 2 and "is a checkpoint of model tiny_cnn10, not square_detector15" in err


def test_an_old_checkpoint_of_digits_resumed_as_squares_is_named_not_its_adam_buffers(capsys, tmp_path):
    from tinygrad_cnn.models import digits_cnn
    from tinygrad_cnn.optim import Adam
    model = digits_cnn()
    optimizer = Adam(model.parameters())
    X, y = data.digits()[0]
    train_lib.fit(model, optimizer, X[:32], y[:32], 1, batch_size=16)  # Adam has buffers of digits' shapes
    checkpoint.save(tmp_path / "old.npz", model, optimizer, 1)  # as before checkpoints recorded the run
    status, _, err = run_cli(capsys, *SHORT, "--resume", tmp_path / "old.npz")
    assert status == 2 and len(err.splitlines()) == 1 and "exp_avg" not in err
    assert "does not fit the model" in err and "a checkpoint of task digits, not squares" in err


def test_an_old_checkpoint_without_a_record_still_resumes(capsys, tmp_path):
    whole, part = tmp_path / "whole.npz", tmp_path / "part.npz"
    _, expected, _ = train(capsys, *SHORT[:4], "4", *SHORT[5:], "--save", whole)
    train(capsys, *SHORT, "--save", part)
    arrays = {k: v for k, v in np.load(part).items() if not k.startswith(("run/", "history/"))}
    with open(part, "wb") as f:
        np.savez(f, **arrays)
    assert checkpoint.load(part)["run"] is None
    status, out, err = run_cli(capsys, *SHORT[:4], "4", *SHORT[5:], "--resume", part, "--lr", "0.1")
    assert status == 2 and err.startswith(f"tinygrad-cnn train: --lr: {part} was trained with --lr 0.05")
    status, result, _ = train(capsys, *SHORT[:4], "4", *SHORT[5:], "--resume", part)
    assert status == 0 and result["history"] == expected["history"][2:] and result["test_loss"] == expected["test_loss"]


def test_a_folder_given_to_resume_is_called_a_folder(capsys, tmp_path):
    status, _, err = run_cli(capsys, "squares", "--resume", tmp_path)
    assert status == 2 and err == f"tinygrad-cnn train: --resume: {tmp_path}: is a folder, not a checkpoint file\n"


def test_split_is_blamed_on_split_in_the_words_of_the_command_line(capsys, tmp_path):
    rng = np.random.default_rng(0)
    folder = mnist_folder(tmp_path / "mnist", rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30))
    status, _, err = run_cli(capsys, "mnist", "--data", folder, "--split", "0")
    assert status == 2 and err == "tinygrad-cnn train: --split: expected an integer >= 1, got 0\n"
    status, _, err = run_cli(capsys, "mnist", "--data", folder, "--split", "30")
    assert status == 2 and err.startswith("tinygrad-cnn train: --split: ") and "--split 30 leaves no test images" in err
    status, _, err = run_cli(capsys, "mnist", "--data", folder)
    assert status == 2 and "pass --split N" in err and "split=" not in err


# --- long runs: progress without a terminal, an estimate up front -------------------------------------
def test_without_a_terminal_progress_lines_come_at_least_every_interval(capsys, monkeypatch):
    monkeypatch.setattr(train_lib, "PROGRESS_EVERY", 0.0)  # a line after every step but an epoch's last
    status, _, err = run_cli(capsys, "squares", "--n", "100", "--epochs", "2", "--restarts", "1")
    assert status == 0
    lines = [line for line in err.splitlines() if line.startswith("epoch 2/2: step ")]
    assert len(lines) == 3 and re.fullmatch(r"epoch 2/2: step 1/4  loss \d\.\d{4}  accuracy \d\.\d{4}  \d+ s",
                                            lines[0])


def test_a_long_value_engine_run_is_announced_with_the_tensor_engines_time(capsys, monkeypatch):
    def step_seconds(model, optimizer, X, y, batch_size, sample=None):
        return 2.0 if train_lib.engine_of(model) == "value" else 0.004

    monkeypatch.setattr(train_lib, "step_seconds", step_seconds)
    argv = ["squares", "--n", "60", "--epochs", "2", "--restarts", "1", "--batch-size", "1"]
    status, out, _ = run_cli(capsys, *argv, "--engine", "value")
    assert status == 0
    assert "this will take about 4 min (120 steps of about 2 s on the value engine); --engine tensor does it in " \
           "about 1 s" in out
    assert out.index("this will take") < out.index("epoch 1/2")
    status, out, _ = run_cli(capsys, *argv[:-2], "--batch-size", "30", "--engine", "value")  # 4 steps: 8 s
    assert status == 0 and "this will take" not in out
    monkeypatch.setattr(train_lib, "step_seconds", lambda *a, **k: pytest.fail("the tensor engine was timed"))
    status, out, _ = run_cli(capsys, *argv)
    assert status == 0 and "this will take" not in out


def test_the_estimate_times_real_steps(capsys, monkeypatch):
    monkeypatch.setattr(cli_train, "LONG_RUN", 0.0)  # announce any run
    status, out, _ = run_cli(capsys, "squares", "--n", "40", "--epochs", "1", "--restarts", "1", "--engine", "value")
    assert status == 0
    assert re.search(r"^this will take about \d+ s \(2 steps of about \S+ s on the value engine\); --engine tensor "
                     r"does it in about \d+ s$", out, re.M), out


def test_a_name_too_long_for_the_file_system_is_refused_before_any_work(capsys, tmp_path):
    long = "a" * 300
    refused_before_any_work(*run_cli(capsys, *QUICK, "--save", tmp_path / f"{long}.npz"),
                            "--save: cannot write", "file name too long")
    pytest.importorskip("matplotlib")
    refused_before_any_work(*run_cli(capsys, *QUICK, "--plots", tmp_path / long),
                            "--plots: cannot make the folder", "file name too long (300 bytes; the file system takes")
    assert list(tmp_path.iterdir()) == []


# --- --dtype: float32 on the tensor engine unless given; the value engine is float64 ------------------
def test_dtype_float32_trains_a_float32_model_and_optimizer(capsys, monkeypatch):
    trained = []
    real = train_lib.fit

    def fit(model, optimizer, *args, **kwargs):
        trained.append((model, optimizer))
        return real(model, optimizer, *args, **kwargs)

    monkeypatch.setattr(train_lib, "fit", fit)
    status, result, err = train(capsys, *QUICK, "--optimizer", "sgd", "--dtype", "float32", "--json")
    assert status == 0 and result["dtype"] == "float32" and err.splitlines()[0].endswith(
        "15 parameters, tensor engine in float32, SGD lr 0.05, batch 32, seed 0")
    status, _, err = train(capsys, *QUICK, "--json")  # Adam, no --dtype
    assert status == 0 and "15 parameters, tensor engine in float32, Adam lr 0.05" in err.splitlines()[0]
    float32 = {np.dtype(np.float32)}
    for model, _ in trained:
        assert {p.dtype for p in model.parameters()} == {p.grad.dtype for p in model.parameters()} == float32
    adam = trained[-1][1]  # SGD without momentum has no buffers
    assert {value.dtype for state in adam.state for key, value in state.items() if key != "step"} == float32


def test_without_dtype_the_tensor_engine_trains_in_float32_and_the_value_engine_in_float64(capsys, tmp_path):
    status, tensor, err = train(capsys, *QUICK, "--save", tmp_path / "t.npz", "--json")
    assert status == 0 and tensor["dtype"] == "float32" and "tensor engine in float32" in err
    status, value, err = train(capsys, *QUICK[:2], "40", *QUICK[3:], "--engine", "value", "--save", tmp_path / "v.npz",
                               "--json")
    assert status == 0 and value["dtype"] == "float64" and "value engine in float64" in err
    for name, dtype in (("t.npz", np.float32), ("v.npz", np.float64)):
        loaded = checkpoint.load(tmp_path / name)
        assert {a.dtype for a in loaded["model"].values()} == {np.dtype(dtype)}
        assert loaded["run"]["dtype"] == np.dtype(dtype).name


def test_float32_and_float64_runs_differ_only_by_float32_rounding(capsys):
    _, single, _ = train(capsys, *QUICK, "--json")
    _, double, _ = train(capsys, *QUICK, "--dtype", "float64", "--json")
    assert single["test_loss"] != double["test_loss"]  # float32 does compute in float32
    assert single["test_loss"] == pytest.approx(double["test_loss"], rel=1e-5)


def test_value_engine_with_float32_is_refused_naming_both_options_before_any_work(capsys, tmp_path):
    status, out, err = run_cli(capsys, *QUICK, "--engine", "value", "--dtype", "float32", "--save", tmp_path / "c.npz")
    refused_before_any_work(status, out, err, "tinygrad-cnn train: --dtype: float32 is not for --engine value (the "
                                              "value engine computes in float64 only)")
    assert not (tmp_path / "c.npz").exists()
    status, value, _ = train(capsys, *QUICK[:2], "40", *QUICK[3:], "--engine", "value", "--dtype", "float64", "--json")
    assert status == 0 and value["dtype"] == "float64"


def test_a_recorded_value_engine_in_float32_is_refused(capsys, tmp_path):
    from tinygrad_cnn.optim import Adam
    model, path = square_detector15(dtype=np.float32), tmp_path / "forged.npz"
    run = {"task": "squares", "model": "square_detector15"}
    checkpoint.save(path, model, Adam(model.parameters()), 1, run=dict(run, engine="value", dtype="float32"))
    refused_before_any_work(*run_cli(capsys, "squares", "--resume", path),
                            f"--resume: {path} records --engine value with --dtype float32, which is not valid")
    checkpoint.save(path, model, Adam(model.parameters()), 1, run=dict(run, dtype="float16"))
    refused_before_any_work(*run_cli(capsys, "squares", "--resume", path),
                            f"--resume: {path} records --dtype float16, which is not valid: expected one of "
                            f"float32, float64, got 'float16'")


def test_a_checkpoint_from_before_dtypes_were_recorded_resumes_in_its_parameters_dtype(capsys, tmp_path):
    float64 = ["--dtype", "float64"]
    _, expected, _ = train(capsys, *SHORT[:4], "4", *SHORT[5:], *float64)
    for kept in (lambda key: key != "run/dtype", lambda key: not key.startswith("run/")):  # older, oldest
        part = tmp_path / "part.npz"
        train(capsys, *SHORT, *float64, "--save", part)
        arrays = {key: value for key, value in np.load(part).items() if kept(key)}
        with open(part, "wb") as f:
            np.savez(f, **arrays)
        assert (checkpoint.load(part)["run"] or {}).get("dtype") is None
        status, out, err = run_cli(capsys, *SHORT[:4], "4", *SHORT[5:], "--resume", part, "--dtype", "float32")
        assert status == 2 and err.startswith(f"tinygrad-cnn train: --dtype: {part} ")
        assert "float64" in err and "float32" in err and len(err.splitlines()) == 1
        status, result, _ = train(capsys, *SHORT[:4], "4", *SHORT[5:], "--resume", part)
        assert status == 0 and result["dtype"] == "float64"
        assert result["history"] == expected["history"][-len(result["history"]):]
        assert result["test_loss"] == expected["test_loss"]
