"""tinygrad_cnn.checkpoint: round trips, exact resume, atomic writes, and refusing bad files."""
import os
import pickle

import numpy as np
import pytest

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, checkpoint, data
from tinygrad_cnn.train import dtype_of
from tinygrad_cnn.checkpoint import CheckpointError
from tinygrad_cnn.models import square_detector15, tiny_cnn10
from tinygrad_cnn.optim import SGD, Adam

X, Y = data.squares(64, seed=0)


def train(model, optimizer, steps, first_step=0):
    """``steps`` mini-batch steps of binary cross-entropy on the squares; batch order from the step number."""
    for step in range(first_step, first_step + steps):
        xb, yb = next(data.batches(X, Y, 16, seed=step))
        optimizer.zero_grad()
        loss = F.binary_cross_entropy(model(Tensor(xb, dtype=dtype_of(model))).reshape(len(yb)), yb)
        loss.backward()
        optimizer.step()


def params(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make_optimizer", [lambda p: Adam(p, lr=0.05, betas=(0.8, 0.99), eps=1e-7),
                                            lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3)])
def test_resume_continues_to_the_same_numbers(tmp_path, make_optimizer, dtype):
    model = square_detector15(seed=1, dtype=dtype)
    optimizer = make_optimizer(model.parameters())
    train(model, optimizer, 3)
    checkpoint.save(tmp_path / "ck.npz", model, optimizer, epoch=3)
    train(model, optimizer, 4, first_step=3)

    resumed = square_detector15(seed=2, dtype=dtype)
    fresh_optimizer = type(optimizer)(resumed.parameters(), lr=1.0)  # hyper-parameters come from the file
    assert checkpoint.restore(tmp_path / "ck.npz", resumed, fresh_optimizer) == 3
    assert fresh_optimizer.lr == optimizer.lr
    train(resumed, fresh_optimizer, 4, first_step=3)
    assert_same(params(resumed), params(model))  # bit for bit
    assert {p.dtype for p in resumed.parameters()} == {np.dtype(dtype)}


def test_parameters_and_optimiser_buffers_are_saved_in_their_dtype(tmp_path):
    for dtype in (np.float32, np.float64):
        model = square_detector15(seed=3, dtype=dtype)
        optimizer = Adam(model.parameters(), lr=0.01)
        train(model, optimizer, 2)
        checkpoint.save(tmp_path / "ck.npz", model, optimizer, epoch=2)
        loaded = checkpoint.load(tmp_path / "ck.npz")
        assert {a.dtype for a in loaded["model"].values()} == {np.dtype(dtype)}
        assert {k: a.dtype for k, a in loaded["optimizer"]["state"].items()} == {
            f"{i}.{name}": np.dtype(np.int64 if name == "step" else dtype)
            for i in range(4) for name in ("step", "exp_avg", "exp_avg_sq")}
        assert checkpoint.saved_dtype(loaded) == dtype
        assert_same(loaded["model"], model.state_dict())
        assert_same(loaded["optimizer"]["state"], optimizer.state_dict())


def test_restore_casts_to_the_models_dtype_as_pytorch_does(tmp_path):
    double = square_detector15(seed=3)
    optimizer = Adam(double.parameters(), lr=0.01)
    train(double, optimizer, 2)
    checkpoint.save(tmp_path / "ck.npz", double, optimizer, epoch=2)
    assert checkpoint.saved_dtype(checkpoint.load(tmp_path / "ck.npz")) == np.float64
    single = square_detector15(seed=4, dtype=np.float32)
    single_optimizer = Adam(single.parameters())
    assert checkpoint.restore(tmp_path / "ck.npz", single, single_optimizer) == 2
    assert_same(params(single), {k: v.astype(np.float32) for k, v in params(double).items()})
    assert_same(single_optimizer.state_dict(), {k: v.astype(np.float32) if v.ndim else v
                                                for k, v in optimizer.state_dict().items()})
    for _ in range(2):  # restored, and after a step: it goes on in float32
        assert {v.dtype for v in single_optimizer.state_dict().values() if v.ndim} == {np.dtype(np.float32)}
        train(single, single_optimizer, 1, first_step=2)
    assert {p.dtype for p in single.parameters()} == {np.dtype(np.float32)}


def test_round_trip_of_model_optimizer_and_epoch(tmp_path):
    model = square_detector15(seed=3)
    optimizer = Adam(model.parameters(), lr=0.01)
    train(model, optimizer, 2)
    checkpoint.save(tmp_path / "ck.npz", model, optimizer, epoch=np.int64(7))
    loaded = checkpoint.load(tmp_path / "ck.npz")
    assert_same(loaded["model"], model.state_dict())
    assert loaded["epoch"] == 7 and isinstance(loaded["epoch"], int)
    assert loaded["optimizer"]["type"] == "Adam"
    assert loaded["optimizer"]["hyperparameters"] == {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8}
    assert_same(loaded["optimizer"]["state"], optimizer.state_dict())
    # the checkpoint classifies as the model did
    other = square_detector15(seed=4)
    other.load_state_dict(loaded["model"])
    np.testing.assert_array_equal(other(Tensor(X)).data, model(Tensor(X)).data)


def test_model_only_checkpoint_and_the_value_engine(tmp_path):
    model = tiny_cnn10(engine="value")
    checkpoint.save(tmp_path / "plain", model)  # any name: the path is used as given
    loaded = checkpoint.load(tmp_path / "plain")
    assert loaded["optimizer"] is None and loaded["epoch"] is None
    assert_same(loaded["model"], model.state_dict())
    target = tiny_cnn10(engine="value", kernel=np.zeros((2, 2)), b1=0.0, w4=np.zeros(4))
    assert checkpoint.restore(tmp_path / "plain", target) is None
    assert_same(target.state_dict(), model.state_dict())
    with pytest.raises(CheckpointError, match="holds no optimiser state to resume SGD"):
        checkpoint.restore(tmp_path / "plain", target, SGD(target.parameters(), lr=0.1))


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    model = square_detector15(seed=5)
    checkpoint.save(path, model, epoch=1)
    before = path.read_bytes()

    def fail_halfway(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save(path, square_detector15(seed=6), epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ck.npz"]
    assert checkpoint.load(path)["epoch"] == 1
    mode = os.stat(path).st_mode & 0o777
    assert mode == 0o666 & ~_umask()  # a normal file, not mkstemp's private 0o600


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_save_refuses_non_finite_parameters_and_bad_epochs(tmp_path):
    model = square_detector15()
    model[0].weight.data[0, 0, 1, 1] = np.nan
    with pytest.raises(CheckpointError, match="model parameter 0.weight holds non-finite values"):
        checkpoint.save(tmp_path / "ck.npz", model)
    with pytest.raises(CheckpointError, match="epoch must be an int >= 0"):
        checkpoint.save(tmp_path / "ck.npz", square_detector15(), epoch=1.5)
    with pytest.raises(FileNotFoundError, match="the folder .*nowhere does not exist"):
        checkpoint.save(tmp_path / "nowhere" / "ck.npz", square_detector15())
    assert not os.listdir(tmp_path)


class _Evil:
    def __reduce__(self):
        return (os.mkdir, ("/tmp/tinygrad_cnn_pwned",))


def _foreign_files(tmp_path):
    good = tmp_path / "good.npz"
    model = square_detector15()
    checkpoint.save(good, model, Adam(model.parameters()), epoch=1)
    raw = good.read_bytes()
    central = raw.index(b"PK\x01\x02")  # the first central-directory entry; its compression method is at +10
    marker = {"__format__": np.array(checkpoint.FORMAT)}
    weights = {f"model/{k}": v for k, v in model.state_dict().items()}
    cases = {
        "empty": (b"", "truncated or corrupt"),
        "truncated": (raw[: len(raw) // 2], "truncated or corrupt"),
        "flipped data byte": (raw.replace(checkpoint.FORMAT.encode("utf-32-le"),
                                          checkpoint.FORMAT[:-1].encode("utf-32-le") + "2".encode("utf-32-le")),
                              "Bad CRC-32"),
        "unknown compression": (raw[:central + 10] + bytes([99, 0]) + raw[central + 12:],
                                "compression method is not supported"),
        "text": (b"hello, I am not a checkpoint\n", "not an .npz archive \\(and never unpickled"),
        "pickle": (pickle.dumps(_Evil()), "not an .npz archive \\(and never unpickled"),
        "npy": (np.array([1.0, 2.0]), "a .npy array, not an .npz archive"),
        "npz of pickled objects": (dict(marker, **weights, evil=np.array([_Evil()], dtype=object)),
                                   "an entry holds pickled objects, which are never loaded"),
        "foreign npz": (dict(weights), "no 'tinygrad_cnn.checkpoint/1' format marker"),
        "newer format": (dict(weights, __format__=np.array("tinygrad_cnn.checkpoint/9")),
                         "format 'tinygrad_cnn.checkpoint/9', this version reads"),
        "unexpected entry": (dict(marker, **weights, notes=np.array([1.0])), "unexpected entry 'notes'"),
        "no parameters": (dict(marker), "holds no model parameters"),
        "text parameter": (dict(marker, **{"model/0.weight": np.array(["a"])}), "model parameter 0.weight holds <U1"),
        "nan parameter": (dict(marker, **{"model/0.bias": np.array([np.nan])}), "0.bias holds non-finite"),
        "stray optimiser state": (dict(marker, **weights, **{"optimizer/state/0.step": np.array(1)}),
                                  "optimiser entries without optimizer/type"),
        "text hyper-parameter": (dict(marker, **weights, **{"optimizer/type": np.array("SGD"),
                                                            "optimizer/hyperparameters/lr": np.array("0.1")}),
                                 "optimizer/hyperparameters/lr holds <U3, not numbers"),
    }
    for name, (content, words) in cases.items():
        path = tmp_path / name.replace(" ", "_")
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, dict):
            with open(path, "wb") as f:
                np.savez(f, **content)
        else:
            with open(path, "wb") as f:
                np.save(f, content)
        yield name, path, words


def test_load_refuses_missing_truncated_foreign_and_pickled_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        checkpoint.load(tmp_path / "absent.npz")
    for name, path, words in _foreign_files(tmp_path):
        with pytest.raises(CheckpointError, match=words) as info:
            checkpoint.load(path)
            pytest.fail(f"{name}: loaded")
        assert str(path) in str(info.value), name
    assert not os.path.exists("/tmp/tinygrad_cnn_pwned")  # nothing was unpickled


def _adam_after_training(seed):
    model = square_detector15(seed=seed)
    optimizer = Adam(model.parameters(), lr=0.02)
    train(model, optimizer, 1)
    return model, optimizer


@pytest.mark.parametrize("case", ["other model", "other optimiser", "forged state shape", "forged state index"])
def test_restore_that_does_not_fit_changes_nothing(tmp_path, case):
    path = tmp_path / "ck.npz"
    source, source_optimizer = _adam_after_training(seed=7)
    if case == "other model":
        source, source_optimizer = tiny_cnn10(), Adam(tiny_cnn10().parameters())
    checkpoint.save(path, source, source_optimizer, epoch=1)
    if case.startswith("forged"):
        arrays = dict(np.load(path))
        if case == "forged state shape":
            arrays["optimizer/state/0.exp_avg"] = np.zeros((2, 2))
        else:
            arrays["optimizer/state/9.exp_avg"] = np.zeros(1)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    model, optimizer = _adam_after_training(seed=8)
    if case == "other optimiser":
        optimizer = SGD(model.parameters(), lr=0.1)
    before, state_before, lr_before = params(model), dict(optimizer.state_dict()), optimizer.lr
    words = {"other model": "does not fit the model: .*0.weight has shape \\(1, 1, 2, 2\\)",
             "other optimiser": "holds Adam state, the optimiser is SGD",
             "forged state shape": "0.exp_avg has shape \\(2, 2\\), parameter 0 has shape \\(1, 1, 3, 3\\)",
             "forged state index": "'9.exp_avg' names no parameter"}[case]
    with pytest.raises(CheckpointError, match=words):
        checkpoint.restore(path, model, optimizer)
    assert_same(params(model), before)
    assert_same(optimizer.state_dict(), state_before)
    assert optimizer.lr == lr_before


def test_restore_reports_missing_keys(tmp_path):
    path = tmp_path / "ck.npz"
    source = square_detector15()
    checkpoint.save(path, source)
    arrays = dict(np.load(path))
    del arrays["model/4.bias"]
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    model = square_detector15(seed=9)
    before = params(model)
    with pytest.raises(CheckpointError, match=r"missing keys \['4.bias'\]"):
        checkpoint.restore(path, model)
    assert_same(params(model), before)


# --- the run's record and history (issue 15) ---------------------------------------------------------
def _history(epochs=(1, 2), steps=3):
    return [{"epoch": e, "loss": 1.0 / e, "accuracy": 0.5 + e / 10, "seconds": 0.25 * e,
             "steps": [(1.0 / e + s / 100, s / steps) for s in range(steps)]} for e in epochs]


def test_the_run_and_its_history_round_trip(tmp_path):
    model = square_detector15(seed=1)
    optimizer = Adam(model.parameters(), lr=0.05)
    run = {"task": "squares", "model": "square_detector15", "lr": 0.05, "batch_size": 32, "seed": 0,
           "restarts": 10, "init": "detector", "n": 5000, "split": None, "json": True}
    checkpoint.save(tmp_path / "ck.npz", model, optimizer, 2, run=run, history=_history())
    loaded = checkpoint.load(tmp_path / "ck.npz")
    assert loaded["run"] == {k: v for k, v in run.items() if v is not None}  # None: absent
    assert all(type(loaded["run"][k]) is type(v) for k, v in loaded["run"].items())  # int stays int, bool bool
    assert loaded["history"] == _history() and loaded["epoch"] == 2
    assert sum(len(h["steps"]) for h in loaded["history"]) == 6
    checkpoint.save(tmp_path / "empty.npz", model, optimizer, 0, run={"task": "squares"}, history=[])
    assert checkpoint.load(tmp_path / "empty.npz")["history"] == []


def test_a_checkpoint_without_a_record_loads_with_run_and_history_none(tmp_path):
    model = square_detector15(seed=1)
    checkpoint.save(tmp_path / "ck.npz", model, Adam(model.parameters()), 1)
    loaded = checkpoint.load(tmp_path / "ck.npz")
    assert loaded["run"] is None and loaded["history"] is None and loaded["epoch"] == 1
    assert set(loaded) == {"model", "optimizer", "epoch", "run", "history"}


@pytest.mark.parametrize("run, history, words", [
    ({"lr": [0.1, 0.2]}, None, r"run=\{'lr': \.\.\.\} must be a string, number, bool or None, got list"),
    ({"a/b": 1}, None, "run= keys must be names without '/'"),
    (None, [{"epoch": 1}], "history= must be a list of train.fit's epoch stats"),
    (None, _history((2, 1)), r"history= epochs must be increasing from 1 or more, got \[2, 1\]"),
])
def test_save_refuses_a_bad_run_or_history_and_writes_nothing(tmp_path, run, history, words):
    with pytest.raises(CheckpointError, match=words):
        checkpoint.save(tmp_path / "ck.npz", square_detector15(), run=run, history=history)
    assert not os.listdir(tmp_path)


def _with(tmp_path, **changes):
    """A checkpoint with a run and a history, its arrays changed (None: removed)."""
    path = tmp_path / "ck.npz"
    model = square_detector15()
    checkpoint.save(path, model, Adam(model.parameters()), 2, run={"task": "squares"}, history=_history())
    arrays = dict(np.load(path))
    for key, value in changes.items():
        key = key.replace("__", "/")
        arrays.pop(key) if value is None else arrays.__setitem__(key, value)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


@pytest.mark.parametrize("changes, words", [
    ({"run__task": np.array(["a", "b"])}, r"run/task holds <U1 of shape \(2,\), not one string"),
    ({"history__loss": None}, "history entries without history/loss"),
    ({"history__loss": np.array([1.0])}, "history/loss has 1 entries, history/epoch 2"),
    ({"history__steps": np.zeros((6, 3))}, r"history/steps holds float64 of shape \(6, 3\)"),
    ({"history__steps_per_epoch": np.array([3, 4])}, "history/steps_per_epoch adds up to 7, history/steps holds 6"),
    ({"history__epoch": np.array([1, 3])}, r"history/epoch must increase from 1 or more up to the epoch \(2\)"),
    ({"history__epoch": np.array([1.0, 2.0])}, "history/epoch holds float64"),
    ({"history__notes": np.array([1.0])}, "unexpected entry 'history/notes'"),
])
def test_load_refuses_a_damaged_record(tmp_path, changes, words):
    path = _with(tmp_path, **changes)
    with pytest.raises(CheckpointError, match=words) as info:
        checkpoint.load(path)
    assert str(path) in str(info.value)


def test_a_folder_is_not_a_checkpoint_and_save_never_replaces_a_folder_or_a_device(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        checkpoint.load(tmp_path)
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        checkpoint.save(tmp_path, square_detector15())
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError, match="not a regular file"):
        checkpoint.save(tmp_path / "fifo", square_detector15())
    with pytest.raises(CheckpointError, match="not a regular file, not a checkpoint"):
        checkpoint.load(tmp_path / "fifo")
    assert os.listdir(tmp_path) == ["fifo"]


def test_a_failed_write_names_the_checkpoint_not_its_temporary_file(tmp_path, monkeypatch):
    import tinygrad_cnn.files as files
    real_open = open

    def refuse(path, *args, **kwargs):  # the temporary file cannot be made (as in a read-only folder)
        if os.path.basename(str(path)).startswith(".ck.npz."):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(files, "open", refuse, raising=False)
    with pytest.raises(PermissionError) as info:
        checkpoint.save(tmp_path / "ck.npz", square_detector15())
    assert info.value.filename == str(tmp_path / "ck.npz") and "Permission denied" in str(info.value)
    assert not os.listdir(tmp_path)


def test_restore_checks_the_model_before_the_optimiser(tmp_path):
    """A checkpoint of another net with Adam buffers: "does not fit the model", not the buffers' shapes."""
    source = tiny_cnn10()
    source_optimizer = Adam(source.parameters())
    train(source, source_optimizer, 1)  # Adam now has buffers of tiny_cnn10's shapes
    checkpoint.save(tmp_path / "ck.npz", source, source_optimizer, 1)
    model, optimizer = _adam_after_training(seed=8)
    before, state_before = params(model), dict(optimizer.state_dict())
    with pytest.raises(CheckpointError, match="does not fit the model: .*0.weight has shape"):
        checkpoint.restore(tmp_path / "ck.npz", model, optimizer)
    # the weights fit but the optimiser's state does not: both are left as they were
    fitting = square_detector15(seed=3)
    checkpoint.save(tmp_path / "sgd.npz", fitting, SGD(fitting.parameters(), lr=0.1), 1)
    with pytest.raises(CheckpointError, match="holds SGD state, the optimiser is Adam"):
        checkpoint.restore(tmp_path / "sgd.npz", model, optimizer)
    assert_same(params(model), before)
    assert_same(optimizer.state_dict(), state_before)


def test_restore_takes_what_load_returned(tmp_path):
    model, optimizer = _adam_after_training(seed=1)
    checkpoint.save(tmp_path / "ck.npz", model, optimizer, 4)
    loaded = checkpoint.load(tmp_path / "ck.npz")
    os.remove(tmp_path / "ck.npz")  # not read again
    target = square_detector15(seed=2)
    assert checkpoint.restore(tmp_path / "ck.npz", target, Adam(target.parameters()), loaded=loaded) == 4
    assert_same(params(target), params(model))
