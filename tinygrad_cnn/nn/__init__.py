"""Modules with PyTorch's names, arguments, defaults, initialisation and state_dict keys.

A module's parameters are Tensors (``engine="tensor"``, the default) or Value arrays
(``engine="value"``); ``model.to_engine(...)`` converts them in place. A module fed the other
engine's input runs it only under ``no_grad()`` (no gradient could reach its parameters);
otherwise it raises a TypeError saying how to convert.
"""
from collections import OrderedDict

import numpy as np

from ..autograd import _layer, grad_enabled, layer
from ..tensor import Tensor
from ..value_array import ValueArray, values
from . import functional

ENGINES = ("tensor", "value")


# --- parameters of either engine ------------------------------------------------------------
def make_parameter(data, engine, name, dtype=None):
    """A parameter holding ``data``: a Tensor that requires grad (float64 unless ``dtype`` says
    float32 or "exact"), or a ValueArray of leaf Values named ``name[i,j]`` (float64 or "exact")."""
    if engine == "tensor":
        return Tensor(data, requires_grad=True, dtype=dtype, name=name)
    if engine == "value":
        return values(data, name=name, dtype=dtype)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def is_parameter(x):
    """A Tensor that requires grad, or a non-empty ValueArray."""
    return x.requires_grad if isinstance(x, Tensor) else isinstance(x, ValueArray) and x.size > 0


def engine_of(x):
    """'tensor' or 'value': the engine of a parameter or an input."""
    return "tensor" if isinstance(x, Tensor) else "value"


def _base_name(param, default):
    if isinstance(param, Tensor):
        return param.name or default
    first = param.flat[0].name
    return first.partition("[")[0] if first else default


def _converted(param, engine, default_name, dtype=None):
    """A copy of ``param`` (same numbers and name, a Value array's names kept element by element) on
    ``engine``: a fresh leaf of a new graph."""
    out = make_parameter(param.numbers(), engine, _base_name(param, default_name), dtype)
    if isinstance(param, ValueArray) and isinstance(out, ValueArray):
        for old, new in zip(param.flat, out.flat):
            new.name = old.name
    return out


def _size(value, fn, arg):
    """A positive int size, or a TypeError/ValueError naming the argument."""
    return functional._ints(value, 1, fn, arg, 1)[0]


# --- modules ------------------------------------------------------------------------------------------
class Module:
    """Base class: parameters and sub-modules are found by attribute, as in PyTorch."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, key, value):
        self._parameters.pop(key, None)
        self._modules.pop(key, None)
        if isinstance(value, Module):
            self._modules[key] = value
        elif is_parameter(value):
            self._parameters[key] = value
        object.__setattr__(self, key, value)

    def __call__(self, *args, **kwargs):
        if self._modules or _layer[0] is not None:  # a container's layers label their own nodes
            return self.forward(*args, **kwargs)
        with layer(self.label()):
            return self.forward(*args, **kwargs)

    def label(self):
        """The layer name shown in graph pictures."""
        return type(self).__name__

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def named_parameters(self, prefix=""):
        """(name, parameter) pairs, named as PyTorch names them: ``weight``, ``0.bias``, ``conv1.weight``."""
        for name, p in self._parameters.items():
            yield prefix + name, p
        for mname, module in self._modules.items():
            yield from module.named_parameters(prefix + mname + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(prefix + ("." if prefix else "") + name)

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode=True):
        """Training mode (Dropout drops) for this module and all inside it; returns self."""
        for _, m in self.named_modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode (Dropout passes everything), as ``train(False)``; returns self."""
        return self.train(False)

    def to_engine(self, engine, dtype=None):
        """Move every parameter to ``engine`` ('tensor' or 'value') in place, same numbers and names
        (fresh leaves: gradients start at zero), as ``dtype`` when given (float32, float64 or
        "exact": see ``tinygrad_cnn.exact``); returns self."""
        if engine not in ENGINES:
            raise ValueError(f"to_engine: engine must be one of {ENGINES}, got {engine!r}")
        for _, m in self.named_modules():
            for name, p in list(m._parameters.items()):
                if engine_of(p) != engine or dtype is not None:
                    setattr(m, name, _converted(p, engine, name, dtype))
        return self

    def state_dict(self):
        """Parameter values as new numpy arrays, keyed as PyTorch keys them (``0.weight``, ``conv1.bias``)."""
        return OrderedDict((name, np.array(p.numbers())) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict):
        """Copy arrays into the parameters; every key must be present, with the right shape.

        Checks everything before changing anything: on an error the module is untouched.
        """
        own = OrderedDict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected} "
                           f"(the module has {list(own)})")
        arrays = {}
        for key, p in own.items():
            a = np.asarray(state_dict[key])
            if a.shape != tuple(p.shape):
                raise ValueError(f"load_state_dict: {key} has shape {a.shape}, the module expects {tuple(p.shape)}")
            if a.dtype.kind not in "iuf":
                raise TypeError(f"load_state_dict: {key} holds {a.dtype}, not numbers")
            arrays[key] = a
        for key, p in own.items():
            p.copy_(arrays[key])

    def _own(self, param, x, default_name):
        """``param`` for input ``x``: itself when both are of one engine; a copy of the other engine's
        only under no_grad() (a gradient could not reach ``param``); else a TypeError that says how."""
        if param is None or isinstance(param, Tensor) == isinstance(x, Tensor):
            return param
        if not grad_enabled():
            return _converted(param, engine_of(x), default_name, x.dtype if isinstance(x, Tensor) else None)
        raise TypeError(f"{type(self).__name__}: the input is {'a Tensor' if isinstance(x, Tensor) else 'Values'} "
                        f"but the parameters are {'Tensors' if isinstance(param, Tensor) else 'Values'}: their "
                        f"gradients could not reach the module. Convert the model once with "
                        f"model.to_engine({engine_of(x)!r}), or run it under no_grad()")

    def __repr__(self):
        inner = "".join(f"\n  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items())
        return f"{type(self).__name__}({self.extra_repr()}{inner}{chr(10) if inner else ''})"

    def extra_repr(self):
        return ""


def _uniform(shape, fan_in, rng):
    """PyTorch's default init of conv and Linear weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


class _Weighted(Module):
    """A layer with ``weight`` and optional ``bias``, initialised as PyTorch's, on either engine."""

    def _init_parameters(self, weight_shape, fan_in, bias_size, engine, rng, dtype):
        if engine not in ENGINES:
            raise ValueError(f"{type(self).__name__}: engine must be one of {ENGINES}, got {engine!r}")
        rng = np.random.default_rng() if rng is None else rng
        self.weight = make_parameter(_uniform(weight_shape, fan_in, rng), engine, "weight", dtype)
        self.bias = make_parameter(_uniform((bias_size,), fan_in, rng), engine, "bias", dtype) if bias_size else None

    def _weights(self, x):
        return self._own(self.weight, x, "weight"), self._own(self.bias, x, "bias")


class _ConvNd(_Weighted):
    """Conv1d, Conv2d (``transposed``: ConvTranspose2d): checks its arguments, makes the parameters."""

    nd, transposed = 2, False

    def _setup(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, engine, rng,
               dtype, **extra):
        name, nd = type(self).__name__, self.nd
        self.in_channels = _size(in_channels, name, "in_channels")
        self.out_channels = _size(out_channels, name, "out_channels")
        self.kernel_size = functional._ints(kernel_size, nd, name, "kernel_size", 1)
        self.stride = functional._ints(stride, nd, name, "stride", 1)
        self.dilation = functional._ints(dilation, nd, name, "dilation", 1)
        self.groups = _size(groups, name, "groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"{name}: in_channels {self.in_channels} and out_channels {self.out_channels} must "
                             f"both divide into groups={self.groups}")
        functional._conv_pads(name, padding, self.kernel_size, self.stride, self.dilation)
        self.padding = padding if isinstance(padding, str) else functional._ints(padding, nd, name, "padding", 0)
        for key, value in extra.items():
            setattr(self, key, value)
        channels = (self.in_channels, self.out_channels // self.groups) if self.transposed else (
            self.out_channels, self.in_channels // self.groups)
        fan_in = channels[1] * int(np.prod(self.kernel_size))  # as PyTorch: weight.shape[1] * kernel size
        self._init_parameters(channels + self.kernel_size, fan_in, bias and self.out_channels, engine, rng, dtype)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}" + (f", dilation={self.dilation}" if max(self.dilation) > 1 else "")
                + (f", groups={self.groups}" if self.groups > 1 else "")
                + ("" if self.transposed else f", padding_mode={self.padding_mode!r}"))


class Conv2d(_ConvNd):
    """2-D convolution layer: (N, in_channels, H, W) -> (N, out_channels, H_out, W_out); see functional.conv2d.

    weight (out, in / groups, kH, kW) and bias (out,) ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    fan_in = in / groups * kH * kW.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, padding_mode="zeros", bias=True,
                 engine="tensor", rng=None, dtype=None, *, dilation=1, groups=1):
        super().__init__()
        functional._choice(type(self).__name__, "padding_mode", padding_mode, tuple(functional._PADDING_MODES))
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, engine, rng,
                    dtype, padding_mode=padding_mode)

    def forward(self, x):
        return functional.conv2d(x, *self._weights(x), self.stride, self.padding, self.padding_mode,
                                 dilation=self.dilation, groups=self.groups)


class Conv1d(Conv2d):
    """1-D convolution layer: (N, in_channels, L) -> (N, out_channels, L_out); see functional.conv1d."""

    nd = 1

    def forward(self, x):
        return functional.conv1d(x, *self._weights(x), self.stride, self.padding, self.padding_mode,
                                 dilation=self.dilation, groups=self.groups)


class ConvTranspose2d(_ConvNd):
    """The transpose of Conv2d (PyTorch's arguments and order): (N, in, H, W) -> (N, out, H_out, W_out);
    weight (in, out / groups, kH, kW); see functional.conv_transpose2d."""

    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, engine="tensor", rng=None, dtype=None):
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, functional._ints(
            padding, 2, "ConvTranspose2d", "padding", 0), dilation, groups, bias, engine, rng, dtype,
            output_padding=functional._ints(output_padding, 2, "ConvTranspose2d", "output_padding", 0))

    def forward(self, x):
        return functional.conv_transpose2d(x, *self._weights(x), self.stride, self.padding, self.output_padding,
                                           self.groups, self.dilation)


class Linear(_Weighted):
    """y = x @ weight.T + bias: (..., in_features) -> (..., out_features).

    weight (out, in) and bias (out,) ~ U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(self, in_features, out_features, bias=True, engine="tensor", rng=None, dtype=None):
        super().__init__()
        self.in_features = _size(in_features, "Linear", "in_features")
        self.out_features = _size(out_features, "Linear", "out_features")
        self._init_parameters((self.out_features, self.in_features), self.in_features, bias and self.out_features,
                              engine, rng, dtype)

    def forward(self, x):
        return functional.linear(x, *self._weights(x))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class _Function(Module):
    """A module without parameters that applies one functional op with its settings ``args``."""

    fn = None
    args = ()

    def __init__(self, *values, **settings):
        super().__init__()
        for name, value in zip(self.args, values):
            setattr(self, name, value)
        for name, value in settings.items():
            setattr(self, name, value)

    def forward(self, *inputs):
        return type(self).fn(*inputs, **{a: getattr(self, a) for a in self.args})

    def extra_repr(self):
        return ", ".join(f"{a}={getattr(self, a)!r}" for a in self.args)


def _function_module(name, fn, signature, doc, check=None):
    """A _Function subclass ``name`` applying ``fn``; ``signature`` its (argument, default) pairs, as PyTorch's."""
    def __init__(self, *values, **settings):
        names = [a for a, _ in signature]
        if len(values) > len(names) or set(settings) - set(names):
            raise TypeError(f"{name}: takes the arguments {', '.join(names) or 'none'}")
        given = dict(signature, **dict(zip(names, values)), **settings)
        if check:
            check(name, **given)
        _Function.__init__(self, **given)
    return type(name, (_Function,), {"fn": staticmethod(fn), "args": tuple(a for a, _ in signature),
                                     "__init__": __init__, "__doc__": doc})


_REQUIRED = object()


def _required(name, arg, value):
    if value is _REQUIRED:
        raise TypeError(f"{name}: missing the argument {arg}")


def _check_pool(name, kernel_size, stride, padding, dilation=1, **_):
    _required(name, "kernel_size", kernel_size)
    functional._ints(kernel_size, 2, name, "kernel_size", 1)
    if stride is not None:
        functional._ints(stride, 2, name, "stride", 1)
    functional._ints(padding, 2, name, "padding", 0)
    functional._ints(dilation, 2, name, "dilation", 1)


def _check_reduction(name, reduction, **_):
    functional._choice(name, "reduction", reduction, functional.REDUCTIONS)


MaxPool2d = _function_module("MaxPool2d", functional.max_pool2d, (
    ("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("dilation", 1), ("return_indices", False),
    ("ceil_mode", False)), "Max over kernel_size windows (stride defaults to kernel_size); see functional.max_pool2d.",
    _check_pool)
AvgPool2d = _function_module("AvgPool2d", functional.avg_pool2d, (
    ("kernel_size", _REQUIRED), ("stride", None), ("padding", 0), ("ceil_mode", False), ("count_include_pad", True),
    ("divisor_override", None)), "Mean over kernel_size windows (stride defaults to kernel_size); see "
    "functional.avg_pool2d.", _check_pool)
Flatten = _function_module("Flatten", functional.flatten, (("start_dim", 1), ("end_dim", -1)),
                           "Merge dims start_dim..end_dim into one; see functional.flatten.")
ReLU = _function_module("ReLU", functional.relu, (), "max(x, 0) elementwise.")
Sigmoid = _function_module("Sigmoid", functional.sigmoid, (), "1 / (1 + exp(-x)) elementwise.")
Tanh = _function_module("Tanh", functional.tanh, (), "tanh(x) elementwise.")
LeakyReLU = _function_module("LeakyReLU", functional.leaky_relu, (("negative_slope", 0.01),),
                             "x for x > 0, negative_slope * x otherwise.")
Softmax = _function_module("Softmax", functional.softmax, (("dim", _REQUIRED),), "softmax along dim.",
                           lambda name, dim: _required(name, "dim", dim))
LogSoftmax = _function_module("LogSoftmax", functional.log_softmax, (("dim", _REQUIRED),), "log_softmax along dim.",
                              lambda name, dim: _required(name, "dim", dim))
BCELoss = _function_module("BCELoss", functional.binary_cross_entropy, (("weight", None), ("reduction", "mean")),
                           "loss(input, target): functional.binary_cross_entropy.", _check_reduction)
BCEWithLogitsLoss = _function_module("BCEWithLogitsLoss", functional.binary_cross_entropy_with_logits, (
    ("weight", None), ("reduction", "mean"), ("pos_weight", None)),
    "loss(input, target): functional.binary_cross_entropy_with_logits.", _check_reduction)
CrossEntropyLoss = _function_module("CrossEntropyLoss", functional.cross_entropy, (
    ("reduction", "mean"), ("label_smoothing", 0.0)), "loss(input, target): functional.cross_entropy.",
    _check_reduction)
NLLLoss = _function_module("NLLLoss", functional.nll_loss, (("reduction", "mean"),),
                           "loss(input, target): functional.nll_loss.", _check_reduction)
MSELoss = _function_module("MSELoss", functional.mse_loss, (("reduction", "mean"),),
                           "loss(input, target): functional.mse_loss.", _check_reduction)


class Dropout(Module):
    """Zero each entry with probability p in training mode, scaling the rest by 1 / (1 - p); pass
    everything in eval mode. ``seed`` (an int or a numpy Generator) makes the masks repeatable."""

    def __init__(self, p=0.5, seed=None):
        super().__init__()
        self.p, self.rng = functional._probability("Dropout", p), np.random.default_rng(seed)

    def forward(self, x):
        return functional.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self):
        return f"p={self.p}"


class Sequential(Module):
    """Modules applied in order; their parameters are keyed ``0.weight``, ``1.bias``, ..."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} must be a Module, got {type(m).__name__}")
            setattr(self, str(i), m)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        if _layer[0] is not None:  # inside an outer label, which wins
            for m in self._modules.values():
                x = m(x)
            return x
        for name, m in self._modules.items():
            with layer(f"{name}: {m.label()}"):  # the nodes of each layer are "0: Conv2d", ...
                x = m(x)
        return x
