"""Every number of any small network's forward and backward pass, exact at every kink.

``work_network(model, x, target, loss)`` runs an ``nn.Sequential`` on one input (or a batch) on
a copy of the model whose numbers are exact (``dtype="exact"``: the decimals given, as
Fractions), so ReLU masks and max-pool winners are those of a hand computation on either
engine. It calls ``loss.backward()`` once and reads each layer's output and gradient from the
graph, each parameter's value and gradient, and takes one step of gradient descent.
"""
import copy
import math
from dataclasses import dataclass, field

import numpy as np

from .. import nn
from ..autograd import layer, no_grad
from ..exact import EXACT, rationals
from ..nn import functional as F
from .text import number

LAYERS = ("Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "Linear", "Flatten", "ReLU", "LeakyReLU",
          "Sigmoid", "Tanh", "Softmax", "LogSoftmax")
LOSSES = ("BCELoss", "BCEWithLogitsLoss", "MSELoss", "CrossEntropyLoss", "NLLLoss")
KINKS = {  # the convention at each kind of kink, and what PyTorch does there
    "ReLU": "ReLU'(0) = 0 is taken, so no gradient passes (PyTorch's relu backward gives 0 there too)",
    "LeakyReLU": "LeakyReLU'(0) = negative_slope is taken (as PyTorch's leaky_relu backward)",
    "MaxPool2d": "the first largest in row-major order gets the whole gradient (as PyTorch's max_pool2d on the CPU)",
}


class NetworkError(ValueError):
    """A network, input, target or loss that cannot be worked; ``arg`` names the argument."""

    def __init__(self, arg, message):
        super().__init__(f"{arg}: {message}")
        self.arg, self.detail = arg, message


@dataclass
class Layer:
    """One layer of a worked solution: its output and d loss / d output, as float64 arrays.

    ``kinks``: lines naming each value exactly at a kink (a ReLU input of 0, a tie in a max-pool
    window); ``winners``: for a max-pool, the input position of each output's maximum.
    """

    index: int
    name: str
    type: str
    module: object = field(repr=False)
    input: np.ndarray
    output: np.ndarray
    grad_output: np.ndarray
    kinks: list
    winners: list = None
    node: object = field(default=None, repr=False)  # the output's graph node (a Tensor or a Value array)


@dataclass
class Solution:
    """A worked solution: the input, every layer, the loss, every parameter, one step."""

    title: str
    engine: str
    input: np.ndarray
    target: object
    loss_type: str
    loss_options: dict
    layers: list
    loss: float
    grad_input: np.ndarray
    params: dict                  # state_dict key -> {"value", "grad", "after_step"} (float64 arrays)
    lr: float
    loss_after_step: float
    mistake: str = None
    root: object = field(default=None, repr=False)       # the loss node, for pictures
    network: object = field(default=None, repr=False)    # the exact copy of the model that was worked
    marks: dict = field(default_factory=dict)  # with a mistake made: where it acts ("loss", a layer index, "step")
    input_node: object = field(default=None, repr=False)

    def _repr_html_(self):
        """The solution as one page, shown inline in a notebook."""
        from .page import page
        return page(self, fragment=True)

    def to_json(self):
        """The contract's object: input, target, layers (index, type, output, grad_output), loss,
        grad_input, params (value, grad, after_step), as nested lists and numbers."""
        return {
            "input": _plain(self.input), "target": _plain(self.target),
            "layers": [{"index": s.index, "type": s.type, "name": s.name, "output": _plain(s.output),
                        "grad_output": _plain(s.grad_output)} for s in self.layers],
            "loss": _plain(self.loss), "grad_input": _plain(self.grad_input),
            "params": {k: {key: _plain(v) for key, v in p.items()} for k, p in self.params.items()},
        }


_UNBATCHED_NDIM = {"Conv1d": 2, "Conv2d": 3, "ConvTranspose2d": 3, "MaxPool2d": 3, "AvgPool2d": 3}


def batch_size(model, shape):
    """N for an input of ``shape`` that is a batch (N, C, ...) for the model's first layer, else 1."""
    return shape[0] if len(shape) > _UNBATCHED_NDIM.get(_layer_type(model[0]), 1) else 1


def is_batched(model, shape):
    """Whether an input of ``shape`` is a batch for the model's first layer (one more dim than (C, ...))."""
    return len(shape) > _UNBATCHED_NDIM.get(_layer_type(model[0]), 1)


def check_step(stepped, lr):
    """Raise NetworkError naming --lr and the parameter unless every parameter after the step
    (``stepped``: name -> numbers) is finite: lr x grad overflows for a huge lr."""
    for name, value in stepped.items():
        if not np.all(np.isfinite(value)):
            raise NetworkError("lr", f"the step with lr {lr:g} makes {name} {'NaN' if np.isnan(value).any() else 'infinite'} "
                                     f"(lr x its gradient overflows float64); give a smaller lr")


def _plain(a):
    a = np.asarray(a)
    if a.dtype.kind in "iub":
        return a.tolist()
    a = a.astype(np.float64) + 0.0  # + 0.0: no -0.0
    return float(a) if a.ndim == 0 else a.tolist()


def _data(node):
    """A node's numbers as they are: an object array of Fractions while exact, else float64."""
    if isinstance(node, nn.Tensor):
        return node.data
    out = np.empty(node.shape, dtype=object)
    for index in np.ndindex(node.shape):
        out[index] = node[index].data
    return out


def _floats(a):
    return np.asarray(a, dtype=np.float64) + 0.0


# --- checks ---------------------------------------------------------------------------------------
def _layer_type(module):
    return type(module).__name__


def layer_names(model):
    """``Conv2d #0``, ``ReLU #1``, ...: each layer's type and index."""
    return [f"{_layer_type(m)} #{i}" for i, m in enumerate(model)]


def _check_model(model):
    if not isinstance(model, nn.Sequential):
        raise NetworkError("model", f"expected an nn.Sequential of layers, got {type(model).__name__}")
    if len(model) == 0:
        raise NetworkError("model", "the Sequential has no layers")
    for i, m in enumerate(model):
        if _layer_type(m) not in LAYERS:
            raise NetworkError("model", f"layer {i} is a {_layer_type(m)}, which a worked solution does not take "
                                        f"(it takes {', '.join(LAYERS)})")
        if getattr(m, "return_indices", False):
            raise NetworkError("model", f"layer {i}: MaxPool2d with return_indices gives two outputs; leave it out")
    engines = {nn.engine_of(p) for p in model.parameters()}
    if len(engines) > 1:
        raise NetworkError("model", "its parameters are of both engines; convert it with model.to_engine(...)")


def _loss_module(loss):
    """``loss``: a name of LOSSES, a {"type": name, **options} dict, or a loss module."""
    if isinstance(loss, str):
        loss = {"type": loss}
    if isinstance(loss, dict):
        options = {k: v for k, v in loss.items() if k != "type"}
        name = loss.get("type")
        if name not in LOSSES:
            raise NetworkError("loss", f"expected one of {', '.join(LOSSES)}, got {name!r}")
        try:
            return getattr(nn, name)(**options), name, options
        except (TypeError, ValueError) as e:
            raise NetworkError("loss", str(e)) from None
    name = type(loss).__name__
    if name not in LOSSES:
        raise NetworkError("loss", f"expected one of {', '.join(LOSSES)}, got {name!r}")
    return loss, name, {a: getattr(loss, a) for a in loss.args}


def _numbers(value, arg):
    """An array of real numbers (Fractions kept), or a NetworkError naming ``arg``."""
    try:
        a = np.asarray(value)
        if a.dtype == object:
            rationals(a)
        elif a.dtype.kind not in "biuf":
            raise TypeError
    except (TypeError, ValueError):
        raise NetworkError(arg, f"expected an array of numbers, got {value!r:.80}") from None
    if a.dtype != object and not np.all(np.isfinite(a)):
        raise NetworkError(arg, "expected finite numbers")
    return a


def _target(loss_type, target, out_shape):
    """The target as the loss takes it, checked against the network's output shape."""
    t = _numbers(target, "target")
    if loss_type in ("CrossEntropyLoss", "NLLLoss"):
        want = out_shape[:1] if len(out_shape) > 1 else ()
        t = np.asarray(t.astype(np.float64) if t.dtype == object else t)
        if t.shape == tuple(out_shape):  # class probabilities
            return t.astype(np.float64)
        if t.shape != want or np.any(t != np.round(t)) or t.size and (t.min() < 0 or t.max() >= out_shape[-1 if len(
                out_shape) == 1 else 1]):
            raise NetworkError("target", f"{loss_type} takes class indices of shape {want} (0 to "
                                         f"{out_shape[1 if len(out_shape) > 1 else 0] - 1}) for an output of shape "
                                         f"{tuple(out_shape)}, got {t.tolist()}")
        return t.astype(np.int64)
    if t.size == math.prod(out_shape) and t.shape != tuple(out_shape):
        t = t.reshape(out_shape)  # a number for a one-output network, a flat list for a batch
    if t.shape != tuple(out_shape):
        raise NetworkError("target", f"{loss_type} takes a target of the output's shape {tuple(out_shape)}, "
                                     f"got shape {t.shape}")
    if loss_type == "BCELoss" and np.any((_floats(t) < 0) | (_floats(t) > 1)):
        raise NetworkError("target", f"BCELoss takes targets in [0, 1], got {_floats(t).tolist()}")
    return t


def shapes_through(model, shape):
    """The output shape of each layer of ``model`` for an input of ``shape`` (a float pass on zeros, no
    graph), or a NetworkError naming the layer that refuses it."""
    return [tuple(x.shape) for x in _outputs(model, shape)]


def _shape_through(model, shape):
    return shapes_through(model, shape)[-1]


def _outputs(model, shape):
    x = np.zeros(shape)
    for i, m in enumerate(model):
        try:
            with no_grad():
                x = m(nn.Tensor(x) if not isinstance(x, nn.Tensor) else x)
        except (ValueError, TypeError, IndexError) as e:
            raise NetworkError("input", f"layer {i} ({_layer_type(m)}) refuses the input of shape {tuple(shape)}: "
                                        f"{e}") from None
        yield x


# --- the pass -------------------------------------------------------------------------------------
def exact_copy(model, engine, state=None):
    """A copy of ``model`` on ``engine`` whose parameters are exact (fresh leaves); ``state`` (state_dict
    keys to arrays, Fractions kept) overrides its numbers."""
    net = copy.deepcopy(model).to_engine(engine, EXACT)
    for key, p in list(net.named_parameters()):
        if state is not None and key in state:
            owner, _, name = key.rpartition(".")
            module = dict(net.named_modules())[owner]
            setattr(module, name, nn.make_parameter(rationals(state[key]), engine, name, EXACT))
    return net


def _tensor_model(model):
    """A float64 Tensor copy of the model (for shape checks and the loss after the step)."""
    return copy.deepcopy(model).to_engine("tensor", np.float64)


def forward(net, engine, x, names, loss_module, target):
    """One exact forward pass: the input leaf, each layer's (input, output) nodes, the loss node."""
    leaf = nn.make_parameter(rationals(x), engine, "x", EXACT)
    h, nodes = leaf, []
    for module, name in zip(net, names):
        with layer(name):
            out = module(h)
        _name(out, name)
        nodes.append((h, out))
        h = out
    with layer("loss"):
        loss = loss_module(h, target)
    loss.name = "L"
    return leaf, nodes, loss


def _name(node, name):
    """Name a layer's output for pictures and the step-through: the Tensor ``name``, or each Value
    ``name[n,c,i,j]`` (a Value a later layer only passes on keeps its first name)."""
    if isinstance(node, nn.Tensor):
        node.name = node.name or name
        return
    for index in np.ndindex(node.shape):
        if node[index].name is None:
            node[index].name = f"{name}[{','.join(map(str, index))}]"


def _relu_kinks(kind, x):
    where = [_where(i) for i in np.ndindex(x.shape) if x[i] == 0]
    return [f"kink: the input is exactly 0 at {', '.join(where)}: {KINKS[kind]}"] if where else []


def _where(index):
    return f"[{','.join(map(str, index))}]"


def pool_ties(module, x):
    """For each output of a max-pool on the exact input ``x`` (row-major): (output index, the input
    indices of its window's largest entries, the first in row-major order first, the largest)."""
    windows, geometry = F._pool("max_pool2d", nn.Tensor(np.zeros(x.shape)), module.kernel_size, module.stride,
                                module.padding, module.dilation, module.ceil_mode, -np.inf)
    pads, kernel, stride, dilation = geometry
    lead = x.ndim - 2
    h, w = x.shape[-2:]
    plane = np.pad(np.arange(h * w).reshape(h, w), pads, constant_values=-1)
    where = np.lib.stride_tricks.sliding_window_view(plane, tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation)))
    where = where[::stride[0], ::stride[1], ::dilation[0], ::dilation[1]][:windows.shape[-4], :windows.shape[-3]]
    out = []
    for index in np.ndindex(windows.shape[:-2]):
        cells = [int(c) for c in where[index[lead:]].ravel() if c >= 0]
        entries = [x[index[:lead] + divmod(c, w)] for c in cells]
        top = max(entries)
        out.append((index, [index[:lead] + divmod(c, w) for c, e in zip(cells, entries) if e == top], top))
    return out


def _pool_winners(module, x):
    """The input index of each max-pool output's maximum, and kink lines for the tied windows."""
    ties = pool_ties(module, x)
    kinks = [f"kink: a tie for the max of the window of output {_where(index)}: {number(top)} at "
             f"{', '.join(map(_where, tied))}" for index, tied, top in ties if len(tied) > 1]
    return [tied[0] for _, tied, _ in ties], kinks + [f"  at each tie {KINKS['MaxPool2d']}"] * bool(kinks)


def work_network(model, x, target, loss="MSELoss", lr=0.01, engine="value", title=None, names=None, state=None,
                 mistakes=()):
    """Work ``model`` (an nn.Sequential of LAYERS) on ``x`` ((C, H, W), or a batch (N, C, H, W); (C, L)
    for Conv1d nets) with ``loss`` (a name of LOSSES, or {"type": name, **options}) against
    ``target``: every layer's output and gradient, the parameters' gradients and one SGD step of
    ``lr``, on ``engine``, exact at every kink. ``names``: a label per layer (default ``Conv2d #0``,
    ...); ``state``: exact numbers (Fractions) for state_dict keys; ``mistakes``: names of the
    catalogue (``mistakes.CATALOGUE``) to make on purpose. Returns a ``Solution``."""
    if engine not in nn.ENGINES:
        raise NetworkError("engine", f"expected one of {', '.join(nn.ENGINES)}, got {engine!r}")
    _check_model(model)
    x = _numbers(x, "x")
    loss_module, loss_type, loss_options = _loss_module(loss)
    names = list(names) if names is not None else layer_names(model)
    if len(names) != len(model):
        raise NetworkError("names", f"expected one name per layer ({len(model)}), got {len(names)}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not math.isfinite(lr):
        raise NetworkError("lr", f"expected a finite number, got {lr!r}")
    out_shape = _shape_through(_tensor_model(model), np.shape(x))
    target = _target(loss_type, target, out_shape)

    net = exact_copy(model, engine, state)
    if mistakes:
        from . import mistakes as M
        M.check_names(mistakes)
        M.prepare(net, mistakes)
    leaf, nodes, loss_node = forward(net, engine, x, names, loss_module, target)
    if mistakes:
        loss_value, grad_outputs, grad_input, param_grads, marks = M.backward(
            net, engine, leaf, nodes, loss_node, loss_module, target, loss_options, mistakes)
    else:
        loss_node.backward()
        loss_value, grad_outputs, grad_input = float(loss_node.numbers()), [o.grads() for _, o in nodes], leaf.grads()
        param_grads, marks = {k: p.grads() for k, p in net.named_parameters()}, {}
    layers = []
    for i, ((h, out), module, name) in enumerate(zip(nodes, net, names)):
        kind = _layer_type(module)
        exact_in = _data(h)
        kinks, winners = [], None
        if kind in ("ReLU", "LeakyReLU"):
            kinks = _relu_kinks(kind, exact_in)
        elif kind == "MaxPool2d":
            winners, kinks = _pool_winners(module, exact_in)
        layers.append(Layer(i, name, kind, module, _floats(h.numbers()), _floats(out.numbers()),
                            _floats(grad_outputs[i]), kinks, winners, out))
    params = {}
    step = lr if "gradient-ascent" in mistakes else -lr
    for key, p in net.named_parameters():
        value, grad = _floats(p.numbers()), _floats(param_grads[key])
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by check_step
            params[key] = {"value": value, "grad": grad, "after_step": value + step * grad + 0.0}
    check_step({k: p["after_step"] for k, p in params.items()}, lr)
    after = _loss_after(model, {k: p["after_step"] for k, p in params.items()}, x, loss_module, target)
    return Solution(title or "a network", engine, _floats(x), target, loss_type, loss_options, layers,
                    float(loss_value) + 0.0, _floats(grad_input), params, float(lr), after,
                    " + ".join(mistakes) or None, loss_node, net, marks, leaf)


def _loss_after(model, state, x, loss_module, target):
    """The loss once the step is taken (float64, no graph)."""
    net = _tensor_model(model)
    net.load_state_dict(state)
    with no_grad():
        return float(loss_module(net(nn.Tensor(_floats(x))), target).numbers()) + 0.0
