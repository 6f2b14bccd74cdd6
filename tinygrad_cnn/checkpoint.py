"""Checkpoints: a model's state_dict, its optimiser's state and the epoch in one ``.npz`` file.

Files are written atomically (a temporary file in the same folder, then ``os.replace``), so
an interrupted save leaves the old checkpoint intact. They are read with
``allow_pickle=False``: a checkpoint holds numbers and strings only, and loading one from a
stranger cannot run code.

Layout of the archive (every entry a plain numpy array)::

    __format__                       "tinygrad_cnn.checkpoint/1"
    model/<key>                      state_dict entries ("model/0.weight", ...)
    epoch                            int (absent when None)
    optimizer/type                   "Adam", "SGD" (absent when no optimiser was saved)
    optimizer/hyperparameters/<name> lr, betas, eps, momentum, weight_decay, ...
    optimizer/state/<i.name>         optimizer.state_dict() entries ("3.exp_avg", "3.step")
"""
import inspect
import os

import numpy as np

from .files import atomic_write

FORMAT = "tinygrad_cnn.checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, foreign, or does not fit the model."""


def _hyperparameters(optimizer):
    """The optimiser's constructor arguments other than ``params`` (lr, betas, ...), as set on it."""
    names = [p for p in inspect.signature(type(optimizer).__init__).parameters if p not in ("self", "params")]
    return {name: getattr(optimizer, name) for name in names}


def _check_finite(path, key, array):
    if not np.all(np.isfinite(array)):
        raise CheckpointError(f"{path}: {key} holds non-finite values (NaN or inf)")


def save(path, model, optimizer=None, epoch=None):
    """Write ``model.state_dict()``, the optimiser's state and hyper-parameters, and ``epoch`` to ``path``.

    Atomic: ``path`` either keeps its old content or holds the complete new checkpoint.
    A model with NaN or inf parameters is refused before anything is written.
    """
    path = os.fspath(path)
    arrays = {"__format__": np.array(FORMAT)}
    for key, value in model.state_dict().items():
        _check_finite(path, f"model parameter {key}", value)
        arrays[f"model/{key}"] = np.asarray(value, dtype=np.float64)
    if epoch is not None:
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise CheckpointError(f"{path}: epoch must be an int >= 0 or None, got {epoch!r}")
        arrays["epoch"] = np.array(int(epoch))
    if optimizer is not None:
        arrays["optimizer/type"] = np.array(type(optimizer).__name__)
        for name, value in _hyperparameters(optimizer).items():
            arrays[f"optimizer/hyperparameters/{name}"] = np.asarray(value)
        for key, value in optimizer.state_dict().items():
            arrays[f"optimizer/state/{key}"] = np.asarray(value)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{path}: cannot save a checkpoint there, the folder {folder} does not exist")
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def _read(path):
    """Every array of the npz at ``path``, read eagerly so a damaged member fails here."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint file")
    archive = None
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            problem = "a .npy array, not an .npz archive"
        else:
            with archive:
                return {key: archive[key] for key in archive.files}
    except Exception as e:  # zipfile and numpy raise many kinds on damaged bytes: all mean "corrupt"
        if "pickle" not in str(e):
            problem = f"truncated or corrupt, not a readable .npz ({type(e).__name__}: {e})"
        elif archive is None:  # neither zip nor .npy: numpy would try to unpickle it
            problem = "not an .npz archive (and never unpickled: allow_pickle=False)"
        else:
            problem = "an entry holds pickled objects, which are never loaded (allow_pickle=False)"
    raise CheckpointError(f"{path}: not a tinygrad_cnn checkpoint: {problem}")


def _scalar_or_tuple(array):
    return array.item() if array.ndim == 0 else tuple(array.tolist())


def load(path):
    """Read a checkpoint: ``{"model": state_dict, "optimizer": dict or None, "epoch": int or None}``.

    ``"optimizer"`` is ``{"type": "Adam", "hyperparameters": {"lr": ..., ...}, "state":
    optimizer.state_dict()}``. Never unpickles. Raises CheckpointError for a missing,
    truncated, corrupt or foreign file, or one with non-finite parameters.
    """
    path = os.fspath(path)
    arrays = _read(path)
    marker = arrays.pop("__format__", None)
    if marker is None or marker.dtype.kind != "U" or marker.ndim != 0:
        raise CheckpointError(f"{path}: not a tinygrad_cnn checkpoint (no {FORMAT!r} format marker)")
    if str(marker) != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {str(marker)!r}, this version reads {FORMAT!r}")
    model, hyper, state, optimizer, epoch = {}, {}, {}, None, None
    for key, value in arrays.items():
        group, _, name = key.partition("/")
        if group == "model" and name:
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
    return {"model": model, "optimizer": optimizer, "epoch": epoch}


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


def restore(path, model, optimizer=None):
    """Load the checkpoint at ``path`` into ``model`` (and ``optimizer``); returns its epoch.

    Everything is checked first (keys, shapes, optimiser type and state): on any error
    neither the model nor the optimiser is changed. As in PyTorch, the optimiser takes the
    saved hyper-parameters (lr, betas, ...) along with its buffers, so a resumed run
    continues exactly where the saved one stopped.
    """
    path = os.fspath(path)
    checkpoint = load(path)
    if optimizer is not None:
        _check_optimizer(path, checkpoint["optimizer"], optimizer)
    try:
        model.load_state_dict(checkpoint["model"])  # validates everything before copying
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: does not fit the model: {e.args[0] if e.args else e}") from None
    if optimizer is not None:
        for name, value in checkpoint["optimizer"]["hyperparameters"].items():
            setattr(optimizer, name, value)
        optimizer.load_state_dict(checkpoint["optimizer"]["state"])
    return checkpoint["epoch"]
