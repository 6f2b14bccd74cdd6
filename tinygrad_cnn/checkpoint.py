"""Checkpoints: a model's state_dict, its optimiser's state, the epoch and (optionally) the run that
made it, its options and history, in one ``.npz`` file.

Files are written atomically (a temporary file in the same folder, then ``os.replace``), so
an interrupted save leaves the old checkpoint intact. They are read with
``allow_pickle=False``: a checkpoint holds numbers and strings only, and loading one from a
stranger cannot run code.

Layout of the archive (every entry a plain numpy array)::

    __format__                       "tinygrad_cnn.checkpoint/1"
    model/<key>                      state_dict entries ("model/0.weight", ...), in the parameters'
                                     dtype (float32 or float64; other numbers as float64)
    epoch                            int (absent when None)
    optimizer/type                   "Adam", "SGD" (absent when no optimiser was saved)
    optimizer/hyperparameters/<name> lr, betas, eps, momentum, weight_decay, ...
    optimizer/state/<i.name>         optimizer.state_dict() entries ("3.exp_avg", "3.step"), buffers
                                     in their parameter's dtype
    run/<name>                       the run's record (``run=``): its task, model and options, each a
                                     string, int, float or bool (absent when None)
    history/epoch, loss, accuracy,   the run's epochs (``history=``): one entry per epoch
            seconds, steps_per_epoch
    history/steps                    (total steps, 2): each step's (batch loss, batch accuracy)

The run and history entries are optional: a checkpoint without them (as written before they
existed) loads with ``"run"`` and ``"history"`` None. Checkpoints written before float32 training
hold float64 parameters whatever the model's dtype was.
"""
import inspect
import math
import numbers
import os
import zipfile

import numpy as np

from .files import atomic_write

FORMAT = "tinygrad_cnn.checkpoint/1"
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
HISTORY = ("epoch", "loss", "accuracy", "seconds", "steps_per_epoch", "steps")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, foreign, or does not fit the model."""


def _hyperparameters(optimizer):
    """The optimiser's constructor arguments other than ``params`` (lr, betas, ...), as set on it."""
    names = [p for p in inspect.signature(type(optimizer).__init__).parameters if p not in ("self", "params")]
    return {name: getattr(optimizer, name) for name in names}


def _stored(array):
    """``array`` as saved: float32 and float64 as they are, any other numbers as float64."""
    array = np.asarray(array)
    return array if array.dtype in _FLOATS else array.astype(np.float64)


def _check_finite(path, key, array):
    if not np.all(np.isfinite(array)):
        raise CheckpointError(f"{path}: {key} holds non-finite values (NaN or inf)")


def _run_entries(path, run):
    arrays = {}
    for name, value in run.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise CheckpointError(f"{path}: run= keys must be names without '/', got {name!r}")
        if value is None:
            continue
        if not isinstance(value, (str, numbers.Real)):
            raise CheckpointError(f"{path}: run={{{name!r}: ...}} must be a string, number, bool or None, "
                                  f"got {type(value).__name__}")
        arrays[f"run/{name}"] = np.array(value)
    return arrays


def _history_entries(path, history):
    try:
        epochs = [int(h["epoch"]) for h in history]
        steps = [[(float(loss), float(accuracy)) for loss, accuracy in h["steps"]] for h in history]
        arrays = {"history/epoch": np.array(epochs, dtype=np.int64),
                  "history/loss": np.array([float(h["loss"]) for h in history]),
                  "history/accuracy": np.array([float(h["accuracy"]) for h in history]),
                  "history/seconds": np.array([float(h.get("seconds", 0.0)) for h in history]),
                  "history/steps_per_epoch": np.array([len(s) for s in steps], dtype=np.int64),
                  "history/steps": np.array([step for s in steps for step in s], dtype=np.float64).reshape(-1, 2)}
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: history= must be a list of train.fit's epoch stats ({{'epoch', 'loss', "
                              f"'accuracy', 'seconds', 'steps'}}): {type(e).__name__}: {e}") from None
    if any(b <= a for a, b in zip(epochs, epochs[1:])) or any(e < 1 for e in epochs):
        raise CheckpointError(f"{path}: history= epochs must be increasing from 1 or more, got {epochs}")
    return arrays


def save(path, model, optimizer=None, epoch=None, run=None, history=None):
    """Write ``model.state_dict()``, the optimiser's state and hyper-parameters (parameters and buffers in
    their own dtype), and ``epoch`` to ``path``;
    with ``run`` (a dict of names to strings, numbers, bools or None: the run's task, model and
    options) and ``history`` (``train.fit``'s list of epoch stats), the record of the run too.

    Atomic: ``path`` either keeps its old content or holds the complete new checkpoint.
    A model with NaN or inf parameters is refused before anything is written; so is a
    ``path`` that is a folder or another non-regular file (such as /dev/null).
    """
    path = os.fspath(path)
    arrays = {"__format__": np.array(FORMAT)}
    for key, value in model.state_dict().items():
        _check_finite(path, f"model parameter {key}", value)
        arrays[f"model/{key}"] = _stored(value)
    if epoch is not None:
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise CheckpointError(f"{path}: epoch must be an int >= 0 or None, got {epoch!r}")
        arrays["epoch"] = np.array(int(epoch))
    if optimizer is not None:
        arrays["optimizer/type"] = np.array(type(optimizer).__name__)
        for name, value in _hyperparameters(optimizer).items():
            arrays[f"optimizer/hyperparameters/{name}"] = np.asarray(value)
        for key, value in optimizer.state_dict().items():
            arrays[f"optimizer/state/{key}"] = _stored(value) if np.ndim(value) else np.asarray(value)
    if run is not None:
        arrays.update(_run_entries(path, dict(run)))
    if history is not None:
        arrays.update(_history_entries(path, list(history)))
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: cannot save a checkpoint there, the folder {folder} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: cannot save a checkpoint there, it is a folder")
    if os.path.exists(path) and not os.path.isfile(path):
        raise OSError(f"{path}: cannot save a checkpoint there, it is not a regular file")
    try:
        with atomic_write(path) as f:
            np.savez(f, **arrays)
    except OSError as e:
        if e.errno is None or e.filename == path:
            raise
        # the error names the temporary file beside path (or nothing): name the checkpoint instead
        raise type(e)(e.errno, f"cannot save a checkpoint: {e.strerror}", path) from None


_MAX_RATIO = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: 1032}  # deflate expands a byte to at most 1032


class _Damaged(Exception):
    """A member of the archive that cannot be a checkpoint's (the message says why)."""


def _member(archive, info):
    """The array of one member, read only after its .npy header's declared size has been checked
    against the bytes the member can hold (numpy allocates the declared size before reading)."""
    if info.compress_type not in _MAX_RATIO:
        raise _Damaged(f"member {info.filename}: that compression method is not supported (method "
                       f"{info.compress_type}; a checkpoint is stored or deflated)")
    with archive.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):  # what np.savez writes for a checkpoint's arrays
            raise _Damaged(f"member {info.filename}: .npy format version {version[0]}.{version[1]}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if dtype.hasobject:
            raise _Damaged("pickle")
        declared = math.prod(shape) * dtype.itemsize
        room = min(info.file_size, _MAX_RATIO[info.compress_type] * info.compress_size)
        if declared > room:
            raise _Damaged(f"member {info.filename} declares shape {shape} of {dtype} ({declared:,} bytes) but "
                           f"holds at most {room:,}")
        count = math.prod(shape)
        data = f.read(declared)
        if len(data) != declared:
            raise _Damaged(f"member {info.filename} holds {len(data):,} of its {declared:,} bytes")
        if f.read(1):
            raise _Damaged(f"member {info.filename} holds bytes after its array")
        array = np.frombuffer(data, dtype=dtype, count=count) if dtype.itemsize else np.zeros(count, dtype)
        array = array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)
        return array.copy()  # writeable, and apart from ``data``


def _read(path):
    """Every array of the npz at ``path``, read eagerly so a damaged member fails here, and never more
    memory than the file's bytes can hold (a member declaring a huge shape is refused from its header)."""
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file" if not os.path.exists(path)
                              else f"{path}: not a regular file, not a checkpoint")
    try:
        with open(path, "rb") as f:
            start = f.read(6)
        if start == b"\x93NUMPY":
            problem = "a .npy array, not an .npz archive"
        elif not start.startswith(b"PK"):
            problem = ("truncated or corrupt, not a readable .npz (an empty file)" if not start else
                       "not an .npz archive (and never unpickled: allow_pickle=False)")
        else:
            with zipfile.ZipFile(path) as archive:
                arrays = {}
                for info in archive.infolist():
                    if not info.filename.endswith(".npy") or info.is_dir():
                        raise _Damaged(f"member {info.filename!r} is not a .npy array")
                    arrays[info.filename[:-len(".npy")]] = _member(archive, info)
                return arrays
    except _Damaged as e:
        problem = ("an entry holds pickled objects, which are never loaded (allow_pickle=False)" if str(e) == "pickle"
                   else f"truncated or corrupt, not a readable .npz ({e})")
    except Exception as e:  # zipfile and numpy raise many kinds on damaged bytes: all mean "corrupt"
        problem = f"truncated or corrupt, not a readable .npz ({type(e).__name__}: {e})"
    raise CheckpointError(f"{path}: not a tinygrad_cnn checkpoint: {problem}")


def _scalar_or_tuple(array):
    return array.item() if array.ndim == 0 else tuple(array.tolist())


def _history(path, found, epoch):
    """The list of epoch stats of the ``history/...`` arrays ``found``, checked; None when there are none."""
    if not found:
        return None
    missing = [name for name in HISTORY if name not in found]
    if missing:
        raise CheckpointError(f"{path}: history entries without history/{missing[0]}")
    epochs, per_epoch, steps = found["epoch"], found["steps_per_epoch"], found["steps"]
    for name in HISTORY:
        kind = "iu" if name in ("epoch", "steps_per_epoch") else "fiu"
        shape_ok = found[name].ndim == 2 and found[name].shape[1] == 2 if name == "steps" else found[name].ndim == 1
        if found[name].dtype.kind not in kind or not shape_ok:
            raise CheckpointError(f"{path}: history/{name} holds {found[name].dtype} of shape {found[name].shape}, "
                                  f"not {'(steps, 2) numbers' if name == 'steps' else 'one number per epoch'}")
        if name != "steps" and len(found[name]) != len(epochs):
            raise CheckpointError(f"{path}: history/{name} has {len(found[name])} entries, history/epoch "
                                  f"{len(epochs)}")
    if np.any(epochs < 1) or np.any(np.diff(epochs) <= 0) or (epoch is not None and len(epochs) and
                                                              epochs[-1] > epoch):
        raise CheckpointError(f"{path}: history/epoch must increase from 1 or more up to the epoch "
                              f"({epoch}), got {epochs.tolist()}")
    if np.any(per_epoch < 0) or int(per_epoch.sum()) != len(steps):
        raise CheckpointError(f"{path}: history/steps_per_epoch adds up to {int(per_epoch.sum())}, "
                              f"history/steps holds {len(steps)}")
    ends = np.cumsum(per_epoch)
    return [{"epoch": int(e), "loss": float(loss), "accuracy": float(accuracy), "seconds": float(seconds),
             "steps": [(float(a), float(b)) for a, b in steps[end - n:end]]}
            for e, loss, accuracy, seconds, n, end in zip(epochs, found["loss"], found["accuracy"],
                                                          found["seconds"], per_epoch, ends)]


def load(path):
    """Read a checkpoint: ``{"model": state_dict, "optimizer": dict or None, "epoch": int or None,
    "run": dict or None, "history": list or None}``.

    ``"optimizer"`` is ``{"type": "Adam", "hyperparameters": {"lr": ..., ...}, "state":
    optimizer.state_dict()}``. ``"run"`` is the ``run=`` dict given to ``save`` (without its
    None values) and ``"history"`` the ``history=`` list of epoch stats (``{"epoch", "loss",
    "accuracy", "seconds", "steps"}``, "steps" a list of (loss, accuracy)); both are None in a
    checkpoint saved without them. Never unpickles. Raises CheckpointError for a missing,
    truncated, corrupt or foreign file, or one with non-finite parameters.
    """
    path = os.fspath(path)
    arrays = _read(path)
    marker = arrays.pop("__format__", None)
    if marker is None or marker.dtype.kind != "U" or marker.ndim != 0:
        raise CheckpointError(f"{path}: not a tinygrad_cnn checkpoint (no {FORMAT!r} format marker)")
    if str(marker) != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {str(marker)!r}, this version reads {FORMAT!r}")
    model, hyper, state, optimizer, epoch, run, history = {}, {}, {}, None, None, None, {}
    for key, value in arrays.items():
        group, _, name = key.partition("/")
        if group == "run" and name:
            if value.ndim != 0 or value.dtype.kind not in "Uiufb":
                raise CheckpointError(f"{path}: {key} holds {value.dtype} of shape {value.shape}, not one string, "
                                      f"number or bool")
            run = run or {}
            run[name] = value.item()
        elif group == "history" and name in HISTORY:
            history[name] = value
        elif group == "model" and name:
            if value.dtype.kind not in "fiu":
                raise CheckpointError(f"{path}: model parameter {name} holds {value.dtype}, not numbers")
            _check_finite(path, f"model parameter {name}", value)
            model[name] = value
        elif key == "epoch" and value.ndim == 0 and value.dtype.kind in "iu":
            epoch = int(value)
        elif key == "optimizer/type" and value.dtype.kind == "U":
            optimizer = str(value)
        elif group == "optimizer" and value.dtype.kind not in "fiub":
            raise CheckpointError(f"{path}: {key} holds {value.dtype}, not numbers")
        elif group == "optimizer" and name.startswith("hyperparameters/"):
            hyper[name.partition("/")[2]] = _scalar_or_tuple(value)
        elif group == "optimizer" and name.startswith("state/"):
            state[name.partition("/")[2]] = value
        else:
            raise CheckpointError(f"{path}: unexpected entry {key!r} ({value.dtype}, shape {value.shape})")
    if not model:
        raise CheckpointError(f"{path}: holds no model parameters")
    if optimizer is None and (hyper or state):
        raise CheckpointError(f"{path}: optimiser entries without optimizer/type")
    if optimizer is not None:
        optimizer = {"type": optimizer, "hyperparameters": hyper, "state": state}
    return {"model": model, "optimizer": optimizer, "epoch": epoch, "run": run,
            "history": _history(path, history, epoch)}


def saved_dtype(loaded):
    """The dtype of the model in the checkpoint ``loaded`` (what ``load`` returns): float32 when every
    parameter was saved in float32, else float64 (as all were before float32 training)."""
    floats32 = all(value.dtype == np.float32 for value in loaded["model"].values())
    return np.dtype(np.float32 if floats32 else np.float64)


def _check_optimizer(path, saved, optimizer):
    if saved is None:
        raise CheckpointError(f"{path}: holds no optimiser state to resume {type(optimizer).__name__} from")
    if saved["type"] != type(optimizer).__name__:
        raise CheckpointError(f"{path}: holds {saved['type']} state, the optimiser is {type(optimizer).__name__}")
    expected = set(_hyperparameters(optimizer))
    if set(saved["hyperparameters"]) != expected:
        raise CheckpointError(f"{path}: {saved['type']} hyper-parameters {sorted(saved['hyperparameters'])}, "
                              f"expected {sorted(expected)}")
    for key, value in saved["state"].items():
        index, _, name = key.partition(".")
        if not index.isdigit() or int(index) >= len(optimizer.params):
            raise CheckpointError(f"{path}: optimiser state {key!r} names no parameter "
                                  f"(the optimiser has {len(optimizer.params)})")
        shape = tuple(optimizer.params[int(index)].shape)
        if value.ndim and value.shape != shape:
            raise CheckpointError(f"{path}: optimiser state {key} has shape {value.shape}, "
                                  f"parameter {index} has shape {shape}")


def restore(path, model, optimizer=None, loaded=None):
    """Load the checkpoint at ``path`` into ``model`` (and ``optimizer``); returns its epoch.

    ``loaded``: what ``load(path)`` returned, to restore without reading the file again.
    Everything is checked first (keys, shapes, then the optimiser's type and state): on any
    error neither the model nor the optimiser is changed. As in PyTorch, the optimiser takes the
    saved hyper-parameters (lr, betas, ...) along with its buffers, so a resumed run
    continues exactly where the saved one stopped; and the numbers are cast to the model's
    dtype (a float64 checkpoint restored into a float32 model continues in float32: pick the
    model's dtype from ``saved_dtype(load(path))`` to resume in the saved one).
    """
    path = os.fspath(path)
    checkpoint = load(path) if loaded is None else loaded
    before = {key: np.array(value, copy=True) for key, value in model.state_dict().items()}
    try:
        model.load_state_dict(checkpoint["model"])  # validates everything before copying
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: does not fit the model: {e.args[0] if e.args else e}") from None
    if optimizer is not None:
        try:
            _check_optimizer(path, checkpoint["optimizer"], optimizer)
        except CheckpointError:
            model.load_state_dict(before)  # the weights fitted, the optimiser's state does not: undo
            raise
    if optimizer is not None:
        for name, value in checkpoint["optimizer"]["hyperparameters"].items():
            setattr(optimizer, name, value)
        optimizer.load_state_dict(checkpoint["optimizer"]["state"])
    return checkpoint["epoch"]
