"""Modules with PyTorch's names, arguments, defaults, initialisation and state_dict keys.

A module's parameters are Tensors (``engine="tensor"``, the default) or numpy object
arrays of Value (``engine="value"``); a module of either engine also accepts the other
kind of input, converting its parameters for that call (as constants of a fresh graph).
"""
from collections import OrderedDict

import numpy as np

from ..autograd import layer
from ..engine import Value, values
from ..tensor import Tensor
from . import functional

ENGINES = ("tensor", "value")


def _as_numbers(param):
    return param.data if isinstance(param, Tensor) else np.frompyfunc(lambda v: v.data, 1, 1)(param).astype(np.float64)


def make_parameter(data, engine, name):
    """A parameter holding ``data``: a Tensor that requires grad, or named leaf Values."""
    if engine == "tensor":
        return Tensor(data, requires_grad=True, name=name)
    if engine == "value":
        return values(data, name=name)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def _matching(param, x, name):
    """``param`` in the kind of ``x``: a module made for one engine runs inputs of the other."""
    if param is None or isinstance(x, Tensor) == isinstance(param, Tensor):
        return param
    return make_parameter(_as_numbers(param), "tensor" if isinstance(x, Tensor) else "value", name)


class Module:
    """Base class: parameters and sub-modules are found by attribute, as in PyTorch."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "engine", "tensor")

    def __setattr__(self, key, value):
        if isinstance(value, Module):
            self._modules[key] = value
        elif isinstance(value, Tensor) and value.requires_grad or _is_value_array(value):
            self._parameters[key] = value
        object.__setattr__(self, key, value)

    def __call__(self, *args, **kwargs):
        if self._modules:  # a container: its layers label their own nodes
            return self.forward(*args, **kwargs)
        with layer(self.label()):
            return self.forward(*args, **kwargs)

    def label(self):
        """The layer name shown in graph pictures."""
        return type(self).__name__

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def named_parameters(self, prefix=""):
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
            if isinstance(p, Tensor):
                p.grad = None
            else:
                for v in p.flat:
                    v.grad = 0.0

    def state_dict(self):
        """Parameter values as numpy arrays, keyed as PyTorch keys them (``0.weight``, ``conv1.bias``)."""
        return OrderedDict((name, np.array(_as_numbers(p))) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict):
        """Copy arrays into the parameters; every key must be present with the right shape.

        Checks everything before changing anything: on an error the module is untouched.
        """
        own = OrderedDict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        arrays = {}
        for key, p in own.items():
            a = np.asarray(state_dict[key])
            if a.shape != tuple(p.shape):
                raise ValueError(f"load_state_dict: {key} has shape {a.shape}, the module expects {tuple(p.shape)}")
            if not np.issubdtype(a.dtype, np.number):
                raise TypeError(f"load_state_dict: {key} holds {a.dtype}, not numbers")
            arrays[key] = a
        for key, p in own.items():
            if isinstance(p, Tensor):
                p.data[...] = arrays[key]
            else:
                for v, x in zip(p.flat, arrays[key].flat):
                    v.data = float(x)

    def __repr__(self):
        inner = "".join(f"\n  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items())
        return f"{type(self).__name__}({self.extra_repr()}{inner}{chr(10) if inner else ''})"

    def extra_repr(self):
        return ""


def _is_value_array(x):
    return isinstance(x, np.ndarray) and x.dtype == object and x.size > 0 and isinstance(x.flat[0], Value)


def _uniform_init(shape, fan_in, rng):
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


class Conv2d(Module):
    """2-D convolution layer; weight (out, in, kH, kW) and bias (out,) ~ U(-1/sqrt(fan_in), +)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 padding_mode="zeros", bias=True, engine="tensor", rng=None):
        super().__init__()
        kernel = functional._ints(kernel_size, 2, "Conv2d", "kernel_size", 1)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        self.stride, self.padding, self.padding_mode = stride, padding, padding_mode
        self.engine = engine
        rng = np.random.default_rng() if rng is None else rng
        fan_in = in_channels * kernel[0] * kernel[1]
        self.weight = make_parameter(_uniform_init((out_channels, in_channels) + kernel, fan_in, rng), engine, "weight")
        self.bias = make_parameter(_uniform_init((out_channels,), fan_in, rng), engine, "bias") if bias else None

    def forward(self, x):
        return functional.conv2d(x, _matching(self.weight, x, "weight"), _matching(self.bias, x, "bias"),
                                 self.stride, self.padding, self.padding_mode)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, padding_mode={self.padding_mode!r}")


class Linear(Module):
    """y = x @ weight.T + bias; weight (out, in) and bias (out,) ~ U(-1/sqrt(in), +)."""

    def __init__(self, in_features, out_features, bias=True, engine="tensor", rng=None):
        super().__init__()
        self.in_features, self.out_features, self.engine = in_features, out_features, engine
        rng = np.random.default_rng() if rng is None else rng
        self.weight = make_parameter(_uniform_init((out_features, in_features), in_features, rng), engine, "weight")
        self.bias = make_parameter(_uniform_init((out_features,), in_features, rng), engine, "bias") if bias else None

    def forward(self, x):
        return functional.linear(x, _matching(self.weight, x, "weight"), _matching(self.bias, x, "bias"))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}"


class _Function(Module):
    """A module without parameters that applies one functional op."""

    fn = None
    args = ()

    def forward(self, x):
        return type(self).fn(x, *(getattr(self, a) for a in self.args))

    def extra_repr(self):
        return ", ".join(f"{a}={getattr(self, a)!r}" for a in self.args)


class MaxPool2d(_Function):
    fn, args = functional.max_pool2d, ("kernel_size", "stride")

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride


class AvgPool2d(MaxPool2d):
    fn = functional.avg_pool2d


class Flatten(_Function):
    fn, args = functional.flatten, ("start_dim",)

    def __init__(self, start_dim=1):
        super().__init__()
        self.start_dim = start_dim


class ReLU(_Function):
    fn = functional.relu


class Sigmoid(_Function):
    fn = functional.sigmoid


class Tanh(_Function):
    fn = functional.tanh


class LeakyReLU(_Function):
    fn, args = functional.leaky_relu, ("negative_slope",)

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = negative_slope


class Sequential(Module):
    """Modules applied in order; their parameters are keyed ``0.weight``, ``1.bias``, ..."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def forward(self, x):
        for name, m in self._modules.items():
            with layer(f"{name}: {m.label()}"):
                x = m(x)
        return x
