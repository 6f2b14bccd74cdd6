"""Every number of a small CNN's forward and backward pass, read from the engine's graph.

``work()`` runs the 10-parameter CNN of the course material's worked example (``cnn10``) or
its 15-parameter square detector (``square15``) on either engine, calls ``loss.backward()``
once, and collects each intermediate value (``.data``) and each gradient (``.grad`` of the
graph node: every node keeps its gradient). The result is a plain dataclass of numpy arrays
and floats, for a printer, a plotting module or a JSON dump.

The course material gets some numbers wrong. Each ``Erratum`` holds the material's number
beside the right one. The material's number is made by repeating its mistake on the engine's
numbers (its log10 of our a4; our backward pass restarted from the gradient it used), not typed.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from .. import data as datasets
from .. import nn
from ..autograd import layer
from ..exact import EXACT
from ..models import square_detector15, tiny_cnn10
from ..nn import ENGINES, make_parameter
from ..nn import functional as F
from . import mistakes  # noqa: F401 (the catalogue: worked.mistakes.CATALOGUE)
from .network import LAYERS, LOSSES, NetworkError, Solution, _plain, check_step, work_network  # noqa: F401 (re-exported)

# The input image of the worked example (course material 000); its label is 1.
WORKED_X = [[2, 1, 0, 2, 1], [2, 1, 1, 0, 2], [1, 2, 0, 1, 0], [1, 0, 2, 1, 2], [2, 1, 1, 0, 0]]

# The model's layers in order: the name of each output and the label that clusters its nodes in pictures.
STEPS = (("z1", "conv"), ("a1", "ReLU"), ("a2", "max-pool"), ("a3", "flatten"), ("z4", "linear"), ("a4", "sigmoid"))
FORWARD = ("z1", "a1", "a2", "a3", "z4", "a4", "loss")
GRADS = ("a4", "z4", "w4", "b4", "a3", "a2", "a1", "z1", "F", "b1")   # the order backpropagation reaches them
JSON_GRADS = ("z4", "w4", "b4", "a3", "a2", "a1", "z1", "F", "b1")
PARAMS = {"F": "0.weight", "b1": "0.bias", "w4": "4.weight", "b4": "4.bias"}  # short name -> state_dict key
LEARNING_RATE = 0.01  # the step of the square detector material's worked update


@dataclass(frozen=True)
class Spec:
    """One network of the course material: input side, kernel side, and its model constructor."""

    name: str
    title: str
    size: int
    kernel: int

    def model(self, engine, seed=0):
        return tiny_cnn10(engine=engine) if self.name == "cnn10" else square_detector15(seed, engine=engine)


MODELS = {
    "cnn10": Spec("cnn10", "the 10-parameter CNN of the worked example (course material 000)", 5, 2),
    "square15": Spec("square15", "the 15-parameter square detector (course material 004)", 6, 3),
}


InputError = NetworkError  # a bad argument to ``work``; ``.arg`` names it (x, kernel, b1, ..., model, engine)


@dataclass
class Erratum:
    """A place where the course material's number is wrong.

    ``step``: where it belongs: a key of ``values`` ("a2"), a gradient ("dL/dz4"), or "update";
    ``material``: the material's number, reproduced; ``right``: the engine's; ``lines``: why.
    """

    step: str
    title: str
    material: object
    right: object
    lines: tuple


@dataclass
class Worked:
    """Every number of one forward and backward pass, squeezed to the shapes a person writes.

    X (n, n); params: F (k, k), b1, w4 (4,), b4
    values: z1, a1 (m, m), a2 (2, 2), a3 (4,), z4, a4, loss (floats)
    grads: dL/d a4, z4, w4, b4, a3, a2, a1, z1, F, b1 (each read from its node's .grad)
    winners: for each max-pool window (row-major over a2) the (row, col) in a1 of its max
    update: one SGD step on this image: lr, loss, loss after descent and after ascent
    root: the loss node (for graph pictures)
    """

    model: str
    engine: str
    label: float
    X: np.ndarray
    params: dict
    values: dict
    grads: dict
    winners: list
    update: dict
    errata: list
    seed: int = None
    root: object = field(default=None, repr=False)
    solution: Solution = field(default=None, repr=False)

    def to_json(self):
        """The contract's object: the forward values, the loss and ``grad``, as nested lists and numbers,
        and the keys of any network's solution (input, target, layers, grad_input, params)."""
        out = self.solution.to_json()
        out.update({key: _plain(self.values[key]) for key in FORWARD})
        out["grad"] = {key: _plain(self.grads[key]) for key in JSON_GRADS}
        return out

    def _repr_html_(self):
        """The worked example as one page, shown inline in a notebook."""
        from .page import page
        return page(self.solution, errata=self.errata, fragment=True)

    def errata_at(self, step):
        return [e for e in self.errata if e.step == step]


def _squeeze(a):
    a = np.asarray(a, dtype=np.float64).squeeze() + 0.0  # + 0.0 turns -0.0 into 0.0
    return float(a) if a.ndim == 0 else a


# --- reading and driving a graph -------------------------------------------------------------------
def _numbers(node, attr="data"):
    """``.data`` or ``.grad`` of a Tensor, a Value or a Value array, squeezed."""
    return _squeeze(node.numbers() if attr == "data" else node.grads())


def _name(node, name):
    """Name a node for pictures: ``z1``, or ``z1[0,1]``... for Values that have no name yet."""
    if not isinstance(node, np.ndarray):
        node.name = name
        return
    flat = node.squeeze() if node.size > 1 else node.reshape(())
    for index in np.ndindex(flat.shape):
        if flat[index].name is None:
            flat[index].name = f"{name}[{','.join(map(str, index))}]" if index else name


def _backprop(node, upstream):
    """Backpropagate from ``node`` with ``upstream`` as d L / d node."""
    node.backward(np.reshape(np.asarray(upstream, dtype=np.float64), node.shape))


def _forward(spec, engine, params, X, label, seed):
    """One forward pass on a fresh graph: its nodes by name (X, F, b1, w4, b4, z1 ... a4, loss) and
    the max-pool module (``pool``)."""
    model = spec.model(engine, seed)
    state = model.state_dict()
    model.load_state_dict({key: np.reshape(params[k], state[key].shape) for k, key in PARAMS.items()})
    model.to_engine(engine, EXACT)  # the decimals given, exactly: kinks are decided as by hand
    shape = (1, 1) + np.shape(X)
    if engine == "tensor":  # a Tensor that requires grad, so that X is part of the graph and its picture
        x = make_parameter(np.reshape(X, shape), engine, "X", EXACT)
    else:                   # leaves named X[i,j]
        x = make_parameter(X, engine, "X", EXACT).reshape(shape)
    named = dict(model.named_parameters())
    nodes = {"X": x, "pool": model[2], **{k: named[key] for k, key in PARAMS.items()}}
    out = x
    for (key, label_), module in zip(STEPS, model):
        with layer(label_):
            out = nodes[key] = module(out)
        _name(out, key)
    with layer("loss"):
        nodes["loss"] = F.binary_cross_entropy(out, [[float(label)]])
    _name(nodes["loss"], "L")
    return nodes


def _grads(nodes, keys=GRADS):
    return {k: _numbers(nodes[k], "grad") for k in keys}


class _Run:
    """One image through one network: fresh graphs on demand, for the material's replays."""

    def __init__(self, spec, engine, params, X, label, seed):
        self.spec, self.engine, self.params, self.X, self.label, self.seed = spec, engine, params, X, label, seed

    def forward(self, params=None):
        return _forward(self.spec, self.engine, self.params if params is None else params, self.X, self.label, self.seed)

    def loss(self, params=None):
        return _numbers(self.forward(params)["loss"])

    def replay(self, start, upstream):
        """The gradients backpropagation gives when it starts at node ``start`` with ``upstream`` as
        its gradient: how the chain rule carries on from the gradient the material used there."""
        nodes = self.forward()
        _backprop(nodes[start], upstream)
        return _grads(nodes, GRADS[GRADS.index(start):])


# --- inputs -----------------------------------------------------------------------------------------
def _shape_words(a):
    if a.ndim == 2:
        return f"a {'non-square ' if a.shape[0] != a.shape[1] else ''}{a.shape[0]}x{a.shape[1]} matrix"
    return f"an array of shape {a.shape}"


def _array(value, arg, shape, what):
    if value is None:
        return None
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(arg, f"expected {what}, got {value!r}") from None
    if len(shape) == 1 and a.shape == (1,) + shape:
        a = a[0]
    if a.shape != shape:
        raise InputError(arg, f"expected {what}, got {_shape_words(a)}")
    if not np.all(np.isfinite(a)):
        raise InputError(arg, f"expected finite numbers, got {a.tolist()}")
    return a


def _number(value, arg):
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(arg, f"expected a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(arg, f"expected a finite number, got {value!r}")
    return v


def class1_image(seed=0, size=6):
    """A class-1 image of the square detector, (size, size): Uniform(0, 1) noise with a 3x3 square of 0s
    (the first class-1 image of ``data.squares(2, size, seed=seed)``)."""
    X, y = datasets.squares(2, size=size, square=3, seed=seed)
    return X[np.flatnonzero(y == 1.0)[0], 0]


# --- the main entry ---------------------------------------------------------------------------------
def builtin_json(solution):
    """A built-in's ``worked --json`` object (z1 ... loss, grad) from the Solution of its network, with
    the keys of any network's solution."""
    layers, params = solution.layers, solution.params
    out = solution.to_json()
    out.update({key: _plain(_squeeze(layers[i].output)) for i, key in enumerate(FORWARD[:-1])})
    out["loss"] = solution.loss
    grads = {key: layers[i].grad_output for i, key in ((4, "z4"), (3, "a3"), (2, "a2"), (1, "a1"), (0, "z1"))}
    grads.update({k: params[key]["grad"] for k, key in PARAMS.items()})
    out["grad"] = {key: _plain(_squeeze(grads[key])) for key in JSON_GRADS}
    return out


def spec_model(model, seed=None):
    """A built-in as a network: (nn.Sequential of float64 Tensors, x (C, H, W), target) for
    ``work_network``, the model file of ``worked --dump-model``."""
    spec = MODELS[model]
    net = spec.model("tensor", seed or 0)
    x = np.array(WORKED_X, dtype=np.float64) if model == "cnn10" else class1_image(seed or 0)
    return net, x[None], 1


def work(model="cnn10", *args, **kwargs):
    """A worked solution.

    ``work(model, x, target, loss, lr=0.01, engine="value", ...)`` with an ``nn.Sequential`` as
    ``model``: any network of the layers in ``LAYERS`` (see ``network.work_network``), a ``Solution``.
    ``work("cnn10" | "square15", engine="value", x=, kernel=, b1=, w4=, b4=, label=, seed=, lr=0.01)``:
    a built-in of the course material, a ``Worked`` (see ``work_builtin``).
    """
    if isinstance(model, nn.Module):
        return work_network(model, *args, **kwargs)
    return work_builtin(model, *args, **kwargs)


def work_builtin(model="cnn10", engine="value", x=None, kernel=None, b1=None, w4=None, b4=None, label=None, seed=None,
                 lr=LEARNING_RATE):
    """Run ``model`` ("cnn10" or "square15") on one image with ``engine`` ("value" or "tensor").

    cnn10 defaults to the worked example's X (5x5), F, b1, w4, b4; square15 to the parameters of
    ``square_detector15(seed)`` and a class-1 6x6 image of ``data.squares`` (seed 0 unless given).
    ``x`` (n x n), ``kernel`` (k x k), ``b1``, ``w4`` (4 numbers), ``b4`` and ``label`` (0 or 1,
    default 1) override them. Bad input raises ``InputError`` naming the argument, before any work.
    """
    if model not in MODELS:
        raise InputError("model", f"expected one of {', '.join(MODELS)}, got {model!r}")
    if engine not in ENGINES:
        raise InputError("engine", f"expected one of {', '.join(ENGINES)}, got {engine!r}")
    spec = MODELS[model]
    n, k = spec.size, spec.kernel
    x = _array(x, "x", (n, n), f"a square {n}x{n} matrix (the input image of {model})")
    kernel = _array(kernel, "kernel", (k, k), f"a {k}x{k} matrix (the conv kernel of {model})")
    w4 = _array(w4, "w4", (4,), "4 numbers (the weights of the linear layer)")
    b1, b4, y = _number(b1, "b1"), _number(b4, "b4"), _number(label, "label")
    if y not in (None, 0.0, 1.0):
        raise InputError("label", f"expected 0 or 1, got {label!r}")
    if seed is not None and model != "square15":
        raise InputError("seed", "is only used with the model square15 (it draws its parameters and image)")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise InputError("seed", f"expected a non-negative integer, got {seed!r}")

    seed = (0 if seed is None else int(seed)) if model == "square15" else None
    defaults = spec.model("tensor", seed or 0).state_dict()
    given = {"F": kernel, "b1": b1, "w4": w4, "b4": b4}
    params = {k: _squeeze(defaults[key]) if given[k] is None else given[k] for k, key in PARAMS.items()}
    if x is None:
        x = np.array(WORKED_X, dtype=np.float64) if model == "cnn10" else class1_image(seed)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr):
        raise InputError("lr", f"expected a finite number, got {lr!r}")
    run = _Run(spec, engine, params, x, 1.0 if y is None else y, seed)

    nodes = run.forward()
    nodes["loss"].backward()
    values = {k: _numbers(nodes[k]) for k in FORWARD}
    grads = _grads(nodes)
    loss = values["loss"]
    descent, ascent = _stepped(params, grads, -lr), _stepped(params, grads, +lr)
    check_step(descent, lr)
    check_step(ascent, lr)
    update = {"lr": lr, "loss": loss, "descent": run.loss(descent), "ascent": run.loss(ascent)}
    net = spec.model("tensor", seed or 0)
    net.load_state_dict({key: np.reshape(params[k], np.shape(net.state_dict()[key])) for k, key in PARAMS.items()})
    solution = work_network(net, x[None], [run.label], "BCELoss", lr, engine, spec.title, FORWARD[:-1])
    winners = [w[-2:] for w in solution.layers[2].winners]
    result = Worked(model, engine, run.label, x, params, values, grads, winners, update, [], seed, nodes["loss"],
                    solution)
    result.errata = (_errata_cnn10 if model == "cnn10" else _errata_square15)(result, run)
    return result


def _stepped(params, grads, step):
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by check_step
        return {k: params[k] + step * grads[k] for k in params}


# --- the course material's mistakes, each repeated on the engine's numbers ------------------------------
def _log10_loss(a4, y):
    with np.errstate(divide="ignore"):
        return float(-np.log10(a4 if y == 1 else 1 - a4))


def _material_gradients(run):
    """The gradients of the square detector's material (004), every mistake included, on the engine:
    delta = L * sigmoid'(z4) (the loss value, not dL/da4); dL/dw4 = delta * a3 sent into the
    max-pool; times ReLU(z1) (not ReLU'(z1)); dL/db1 = sum(X). Returns {F, b1, w4, b4}."""
    from_loss = run.replay("a4", run.loss())
    routed = run.replay("a3", from_loss["w4"])["a1"]
    relu_times = _numbers(run.forward()["a1"]) * routed
    return {"F": run.replay("z1", relu_times)["F"], "b1": float(np.sum(run.X)),
            "w4": from_loss["w4"], "b4": from_loss["b4"]}


def material_gradients(model, X, label, engine="tensor"):
    """What the square detector's material computes as the gradient of ``model`` (a
    ``square_detector15``) on image X (6, 6) with ``label``: a dict keyed and shaped as
    ``model.state_dict()``. The material then ADDS lr times it to the parameters."""
    state = model.state_dict()
    params = {k: _squeeze(state[key]) for k, key in PARAMS.items()}
    grads = _material_gradients(_Run(MODELS["square15"], engine, params, np.asarray(X, dtype=np.float64), label, 0))
    return {key: np.reshape(grads[k], state[key].shape) for k, key in PARAMS.items()}


def _errata_cnn10(result, run):
    v, g = result.values, result.grads
    log10 = _log10_loss(v["a4"], result.label)
    p, p_name = (v["a4"], "a4") if result.label == 1 else (1 - v["a4"], "1 - a4")
    routed = run.replay("a3", g["w4"])
    return [
        Erratum("loss", f"its loss is {log10:.2f}: it takes log10", log10, v["loss"], (
            f"-log10({p_name}) = -log10({p:.6f}) = {log10:.6f}, {log10:.2f} to two decimals. The material's own gradient,",
            "-y/a4 + (1-y)/(1-a4), is the derivative of the natural-log loss (with log10 every gradient",
            f"would carry a factor 1/ln 10 = {1 / math.log(10):.6f}): its loss and its gradient belong to",
            f"two different functions. The loss is {v['loss']:.6f}, as PyTorch's binary_cross_entropy says.")),
        Erratum("dL/db1", f"its dL/db1 is {routed['b1']:.2f}: it sends dL/dw4 into the max-pool where dL/da3 belongs",
                routed["b1"], g["b1"], (
                    "At the flatten it sends dL/dw4 = dL/dz4 * a3 back into the max-pool, where",
                    "dL/da3 = dL/dz4 * w4 belongs: dL/dw4 is the gradient of the weights, not of the layer's",
                    "input, which gets dL/dz4 times the weights it met (w4), not the values it carried (a3).",
                    f"Routed to the window maxima, the wrong vector sums to {routed['b1']:.6f}; the right sum is {g['b1']:.6f}.")),
    ]


def _errata_square15(result, run):
    v, g, u = result.values, result.grads, result.update
    side, pooled = np.shape(v["a1"])[0], np.shape(v["a2"])
    from_loss = run.replay("a4", v["loss"])
    routed = run.replay("a3", g["w4"])
    relu_times = v["a1"] * g["a1"] + 0.0
    material = _material_gradients(run)
    material_loss = run.loss(_stepped(result.params, material, +u["lr"]))
    all_up = all(np.all(np.asarray(material[k]) >= 0) for k in material)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = float(np.float64(g["z4"]) / g["a4"])  # sigmoid'(z4), read off the chain rule
    return [
        Erratum("a2", "its architecture table gives the max-pool's output as 3x3", (3, 3), pooled, (
            f"{side}x{side} pooled by 2x2 windows at stride 2 gives ({side} - 2) // 2 + 1 = {pooled[0]} per side,",
            "as the table's own next row (flatten 2x2 -> 4) and the material's printed a2 agree.")),
        Erratum("dL/dz4", "its backward pass multiplies by the loss value where dL/da4 belongs", from_loss["z4"], g["z4"], (
            f"Its delta is L * sigmoid'(z4) = {v['loss']:.6f} * {slope:.6f} = {from_loss['z4']:.6f}; the chain rule",
            f"gives dL/da4 * sigmoid'(z4) = {g['a4']:.6f} * {slope:.6f} = {g['z4']:.6f}. L and sigmoid' are",
            "both positive, so its delta is positive for either label: it points the same way for a",
            "square and for noise, and cannot teach the network which is which.")),
        Erratum("dL/da1", "it sends dL/dw4 into the max-pool where dL/da3 belongs", routed["a1"], g["a1"], (
            "dL/dw4 = dL/dz4 * a3 is the gradient of the weights; the input of the linear layer gets",
            "dL/da3 = dL/dz4 * w4. From the right dL/dz4, its dL/da1 is on the left, the engine's on the right.")),
        Erratum("dL/dz1", "it multiplies by ReLU(z1) where the 0/1 mask ReLU'(z1) belongs", relu_times, g["z1"], (
            "ReLU's derivative is 1 where z1 > 0 and 0 elsewhere; multiplying by ReLU(z1) itself scales each",
            "routed gradient by the size of the activation. From the right dL/da1, its dL/dz1 is on the left,",
            "the engine's on the right.")),
        Erratum("dL/db1", "it takes dL/db1 as the sum of X", float(np.sum(result.X)), g["b1"], (
            "b1 is added to every entry of z1, so dL/db1 is the sum of dL/dz1. The sum of X",
            f"({np.sum(result.X):.6f}) does not depend on the loss at all; the sum of dL/dz1 is {g['b1']:.6f}.")),
        Erratum("update", "it adds the gradient to the parameters (gradient ascent)", u["ascent"], u["descent"], (
            f"With lr = {u['lr']}, p - lr * dL/dp lowers this image's loss from {u['loss']:.6f} to {u['descent']:.6f};",
            f"the material's p + lr * dL/dp raises it to {u['ascent']:.6f}. With all its mistakes together its step",
            f"takes the loss to {material_loss:.6f}.",
            *((
                "Every number its step adds is >= 0 here, for either label (its delta > 0, a3 >= 0,",
                "ReLU(z1) >= 0, X >= 0), so every parameter only grows and the output climbs toward 1 for",
                "every image: that is why its training ends at 0.92 / 0.08 for noise and for squares alike",
                "(examples/square15_material_training.py trains it both ways).") if all_up else ()))),
    ]
