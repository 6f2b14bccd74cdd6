"""Model files: a small network, its input, target, loss and learning rate as one JSON object.

Numbers may be JSON numbers or decimal strings; both are read as the decimals written (exact
Fractions), so a worked solution decides its kinks on them. Layers are PyTorch module names with
their keyword arguments; ``weight`` and ``bias`` arrays in PyTorch's shapes, ``"bias": false`` for
none, and arrays left out drawn from ``"seed"`` (PyTorch's initialisation).
"""
import json
import math
import os
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import numpy as np

from .. import nn
from ..exact import rationals
from ..files import atomic_write
from .network import LAYERS, LOSSES

TOP_KEYS = ("title", "input", "target", "layers", "loss", "lr", "seed")
MAX_BYTES = 4 << 20     # a model file larger than this is no exercise (the textbook's, 3,072 inputs: 15 kB)
MAX_PARAMETERS = 10 ** 7  # nor a network with more parameters (the textbook's 12.4 network has 62,006)
_BIG = 1e300            # numbers beyond this (or not finite) are refused: float64 must hold them and their products


class ModelFileError(ValueError):
    """A model file that cannot be read; the message names the file and the place in it."""


@dataclass
class ModelFile:
    """A model file read: ``model`` (an nn.Sequential, float64 Tensors holding the file's numbers),
    ``state`` (the exact numbers given, by state_dict key), ``names`` (one per layer), ``x`` (exact),
    target, loss, lr."""

    title: str
    model: object
    names: list
    state: dict
    x: np.ndarray
    target: object
    loss: dict
    lr: float

    def work(self, engine="value", mistakes=()):
        """The worked solution of this file (see ``network.work_network``), with ``mistakes`` made."""
        from .network import work_network
        return work_network(self.model, self.x, self.target, self.loss, self.lr, engine, self.title, self.names,
                            self.state, mistakes)

    def check(self, answers, engine="value"):
        """Check a student's ``answers`` (a dict as ``worked --json``; see ``check.check``)."""
        from .check import check
        return check(answers, self.model, self.x, self.target, self.loss, self.lr, engine, self.names, self.state)


def _exact_array(value, where):
    """Nested lists of finite numbers or decimal strings as an object array of Fractions."""
    try:
        a = np.array(value, dtype=object)
        if a.dtype != object or any(isinstance(v, (list, dict, bool)) or v is None for v in a.flat):
            raise ValueError
        out = rationals(a)
    except (ValueError, TypeError, InvalidOperation, ArithmeticError, RuntimeError, RecursionError):
        text = json.dumps(value, default=str)[:80] if not isinstance(value, list) else "a nesting of lists"
        raise ModelFileError(f"{where}: expected a rectangular array of numbers, got {text}") from None
    if not all(type(v) is not float and abs(v.numerator) <= 10 ** 300 * v.denominator for v in out.flat):
        raise ModelFileError(f"{where}: expected finite numbers of at most {_BIG:g} in size")
    return out


def _setting(value):
    """A layer argument from JSON: Decimals as floats, lists as tuples."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return tuple(_setting(v) for v in value)
    return value


def _check_size(kind, options, where):
    """Refuse, before making it, a layer with more than MAX_PARAMETERS weights."""
    def number(key):
        v = options.get(key, 1)
        return math.prod(v) if isinstance(v, tuple) and all(isinstance(n, int) for n in v) else v
    sizes = {"Linear": ("in_features", "out_features"),
             "Conv1d": ("in_channels", "out_channels", "kernel_size"),
             "Conv2d": ("in_channels", "out_channels", "kernel_size", "kernel_size"),
             "ConvTranspose2d": ("in_channels", "out_channels", "kernel_size", "kernel_size")}.get(kind, ())
    values = [number(k) for k in sizes]
    if values and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        if isinstance(options.get("kernel_size"), tuple):
            values = values[:3]  # a (kH, kW) tuple already multiplied out
        if math.prod(values) > MAX_PARAMETERS:
            raise ModelFileError(f"{where} ({kind}): {math.prod(values)} weights are more than a worked solution "
                                 f"takes (at most {MAX_PARAMETERS})")


def _layer(spec, i, rng, where):
    if not isinstance(spec, dict) or "type" not in spec:
        raise ModelFileError(f"{where}: expected an object with a \"type\" (one of {', '.join(LAYERS)})")
    kind = spec["type"]
    if kind not in LAYERS:
        raise ModelFileError(f"{where}: type {kind!r} is not a layer a worked solution takes ({', '.join(LAYERS)})")
    options = {k: _setting(v) for k, v in spec.items() if k not in ("type", "name", "weight", "bias")}
    weighted = kind in ("Conv1d", "Conv2d", "ConvTranspose2d", "Linear")
    _check_size(kind, options, where)
    if weighted:
        options["rng"] = rng
        if spec.get("bias") is False:
            options["bias"] = False
    elif "weight" in spec or "bias" in spec:
        raise ModelFileError(f"{where}: a {kind} has no weight or bias")
    try:
        module = getattr(nn, kind)(**options)
    except (TypeError, ValueError, IndexError) as e:
        raise ModelFileError(f"{where} ({kind}): {e}") from None
    except MemoryError:
        raise ModelFileError(f"{where} ({kind}): too large to make") from None
    state = {}
    for name in ("weight", "bias"):
        value = spec.get(name)
        if weighted and value is not None and value is not False:
            a = _exact_array(value, f"{where}.{name}")
            want = tuple(getattr(module, name).shape) if getattr(module, name) is not None else None
            if a.shape != want:
                raise ModelFileError(f"{where}.{name}: expected shape {want} for this {kind}, got shape {a.shape}")
            state[f"{i}.{name}"] = a
            getattr(module, name).copy_(a.astype(np.float64))  # the model holds them too (as floats)
    name = spec.get("name", f"{kind} #{i}")
    if not isinstance(name, str):
        raise ModelFileError(f"{where}.name: expected a string, got {name!r}")
    return module, name, state


def parse(obj, source="model file"):
    """A model file's JSON object (numbers as Decimals or strings) as a ``ModelFile``."""
    if not isinstance(obj, dict):
        raise ModelFileError(f"{source}: expected a JSON object with {', '.join(TOP_KEYS)}")
    unknown = sorted(set(obj) - set(TOP_KEYS))
    if unknown:
        raise ModelFileError(f"{source}: unknown key{'s' * (len(unknown) > 1)} {', '.join(unknown)} "
                             f"(a model file has {', '.join(TOP_KEYS)})")
    for key in ("input", "target", "layers"):
        if key not in obj:
            raise ModelFileError(f"{source}: missing \"{key}\"")
    seed = obj.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ModelFileError(f"{source}: seed: expected a non-negative integer, got {seed!r}")
    layers = obj["layers"]
    if not isinstance(layers, list) or not layers:
        raise ModelFileError(f"{source}: layers: expected a non-empty list of layers")
    rng = np.random.default_rng(seed)
    modules, names, state = [], [], {}
    for i, spec in enumerate(layers):
        module, name, exact = _layer(spec, i, rng, f"{source}: layers[{i}]")
        modules.append(module)
        names.append(name)
        state.update(exact)
    loss = obj.get("loss", "MSELoss")
    if isinstance(loss, dict):
        loss = {k: _setting(v) for k, v in loss.items()}
    if not (isinstance(loss, str) or isinstance(loss, dict)) or (loss if isinstance(loss, str) else loss.get(
            "type")) not in LOSSES:
        raise ModelFileError(f"{source}: loss: expected one of {', '.join(LOSSES)} or an object with one as "
                             f"\"type\", got {json.dumps(loss, default=str)}")
    lr = obj.get("lr", 0.01)
    try:
        if isinstance(lr, bool) or not isinstance(lr, (int, float, Decimal, str)) or not Decimal(lr).is_finite() \
                or lr and Decimal(lr).adjusted() > 300:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        shown = lr if isinstance(lr, (bool, str)) or not isinstance(lr, (int, float, Decimal)) else str(lr)
        raise ModelFileError(f"{source}: lr: expected a finite number below 1e301, got {shown!r}") from None
    title = obj.get("title", "a network from a model file")
    if not isinstance(title, str):
        raise ModelFileError(f"{source}: title: expected a string, got {title!r}")
    x = _exact_array(obj["input"], f"{source}: input")
    target = obj["target"]
    target = _exact_array(target, f"{source}: target") if not isinstance(target, (list, int)) or isinstance(
        target, list) and not _all_ints(target) else _class_indices(target, f"{source}: target")
    return ModelFile(title, nn.Sequential(*modules), names, state, x, target, loss if isinstance(loss, dict) else
                     {"type": loss}, float(lr))


def _class_indices(value, where):
    """Whole numbers (class indices) as an int array, or a ModelFileError for a ragged nesting."""
    try:
        return np.array(value, dtype=np.int64)
    except (ValueError, OverflowError):
        raise ModelFileError(f"{where}: expected a rectangular array of class indices, got a ragged nesting "
                             f"of lists or numbers too large") from None


def _all_ints(value):
    return all(_all_ints(v) for v in value) if isinstance(value, list) else isinstance(value, int) and not isinstance(
        value, bool)


def _no_constant(name):
    raise ValueError(f"{name} is not a number a person writes")


def decimal_json(text, source, error):
    """JSON text with its numbers as written (Decimals; NaN and Infinity refused), or ``error`` naming ``source``."""
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except ValueError as e:
        raise error(f"{source}: not valid JSON ({e})") from None
    except RecursionError:
        raise error(f"{source}: nested too deep") from None


def loads(text, source="model file"):
    return parse(decimal_json(text, source, ModelFileError), source)


def load(path):
    """Read the model file at ``path``; a ModelFileError names the problem."""
    if not os.path.isfile(path):
        what = "no such file" if not os.path.lexists(path) else "a folder" if os.path.isdir(path) else \
            "not a regular file"
        raise ModelFileError(f"{path}: cannot read it ({what})")
    if os.path.getsize(path) > MAX_BYTES:
        raise ModelFileError(f"{path}: {os.path.getsize(path)} bytes is more than a model file holds (at most "
                             f"{MAX_BYTES})")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ModelFileError(f"{path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise ModelFileError(f"{path}: not a text file") from None
    return loads(text, str(path))


def to_json(title, model, x, target, loss, lr, names=None):
    """A model file's object for ``model`` (an nn.Sequential) with its current numbers."""
    layers = []
    state = model.state_dict()
    for i, m in enumerate(model):
        spec = {"type": type(m).__name__}
        if names is not None:
            spec["name"] = names[i]
        spec.update(_arguments(m))
        for name in ("weight", "bias"):
            if hasattr(m, name) and type(m).__name__ in ("Conv1d", "Conv2d", "ConvTranspose2d", "Linear"):
                p = getattr(m, name)
                spec[name] = False if p is None else state[f"{i}.{name}"].tolist()
        layers.append(spec)
    return {"title": title, "input": np.asarray(x, dtype=np.float64).tolist(), "target": _json_target(target),
            "layers": layers, "loss": loss, "lr": lr}


def _json_target(t):
    a = np.asarray(t)
    return a.tolist() if a.dtype.kind in "iu" else np.asarray(a, dtype=np.float64).tolist()


def _arguments(m):
    kind = type(m).__name__
    if kind == "Linear":
        return {"in_features": m.in_features, "out_features": m.out_features}
    if kind in ("Conv1d", "Conv2d"):
        out = {"in_channels": m.in_channels, "out_channels": m.out_channels, "kernel_size": list(m.kernel_size),
               "stride": list(m.stride), "padding": m.padding if isinstance(m.padding, str) else list(m.padding)}
        if m.padding_mode != "zeros":
            out["padding_mode"] = m.padding_mode
        if max(m.dilation) > 1:
            out["dilation"] = list(m.dilation)
        if m.groups > 1:
            out["groups"] = m.groups
        return out
    return {a: list(v) if isinstance(v, tuple) else v for a, v in ((a, getattr(m, a)) for a in getattr(m, "args", ()))}


def dump(path, obj):
    """Write a model file's object to ``path`` (atomically), numbers as JSON numbers."""
    with atomic_write(path, "w") as f:
        f.write(json.dumps(obj, indent=1) + "\n")
