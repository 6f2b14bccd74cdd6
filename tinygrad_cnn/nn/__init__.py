"""Modules with PyTorch's names, arguments, defaults, initialisation and state_dict keys.

A module's parameters are Tensors (``engine="tensor"``, the default) or numpy object
arrays of Value (``engine="value"``). A module of either engine also accepts the other
kind of input: it then copies its parameters into that kind for the call, as fresh leaves
of the new graph (named as the parameters), which receive that graph's gradients.
"""
from collections import OrderedDict

import numpy as np

from ..autograd import _layer, layer
from ..engine import Value, values
from ..tensor import Tensor
from . import functional

ENGINES = ("tensor", "value")


# --- parameters of either engine ------------------------------------------------------------
def make_parameter(data, engine, name, dtype=None):
    """A parameter holding ``data``: a Tensor that requires grad (float64 unless ``dtype`` says
    float32), or an object array of leaf Values named ``name[i,j]``."""
    if engine == "tensor":
        return Tensor(data, requires_grad=True, dtype=dtype, name=name)
    if engine == "value":
        return values(data, name=name)
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def is_parameter(x):
    """A Tensor that requires grad, or a non-empty object array of Values."""
    if isinstance(x, Tensor):
        return x.requires_grad
    return isinstance(x, np.ndarray) and x.dtype == object and x.size > 0 and isinstance(x.flat[0], Value)


def numbers(param):
    """The numbers of a Tensor (its data array itself), a Value array (a new float64 array) or a Value."""
    if isinstance(param, Tensor):
        return param.data
    if isinstance(param, Value):
        return np.float64(param.data)
    return np.array([v.data for v in param.flat], dtype=np.float64).reshape(param.shape)


def gradient(param):
    """The gradient of a parameter as an array (zeros before any backward)."""
    if isinstance(param, Tensor):
        return np.zeros_like(param.data) if param.grad is None else param.grad
    return np.array([v.grad for v in param.flat], dtype=np.float64).reshape(param.shape)


def assign(param, array):
    """Overwrite a parameter's numbers in place (keeping its dtype and its graph identity)."""
    if isinstance(param, Tensor):
        param.data[...] = array
    else:
        for v, x in zip(param.flat, np.asarray(array, dtype=np.float64).flat):
            v.data = float(x)


def clear_grad(param):
    """Forget a parameter's gradient (None for a Tensor, 0.0 for each Value)."""
    if isinstance(param, Tensor):
        param.grad = None
    else:
        for v in param.flat:
            v.grad = 0.0


def _base_name(param, default):
    if isinstance(param, Tensor):
        return param.name or default
    first = param.flat[0].name
    return first.partition("[")[0] if first else default


def _matching(param, x, default_name):
    """``param`` in the kind of ``x``: a module made for one engine runs inputs of the other."""
    if param is None or isinstance(x, Tensor) == isinstance(param, Tensor):
        return param
    if isinstance(x, Tensor):
        return make_parameter(numbers(param), "tensor", _base_name(param, default_name), x.dtype)
    return make_parameter(numbers(param), "value", _base_name(param, default_name))


def _size(value, fn, arg):
    """A positive int size, or a TypeError/ValueError naming the argument."""
    return functional._ints(value, 1, fn, arg, 1)[0]


# --- modules ------------------------------------------------------------------------------------------
class Module:
    """Base class: parameters and sub-modules are found by attribute, as in PyTorch."""

    engine = "tensor"  # the engine of the module's own parameters (Conv2d, Linear set theirs)

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())

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
            clear_grad(p)

    def state_dict(self):
        """Parameter values as new numpy arrays, keyed as PyTorch keys them (``0.weight``, ``conv1.bias``)."""
        return OrderedDict((name, np.array(numbers(p))) for name, p in self.named_parameters())

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
            assign(p, arrays[key])

    def __repr__(self):
        inner = "".join(f"\n  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items())
        return f"{type(self).__name__}({self.extra_repr()}{inner}{chr(10) if inner else ''})"

    def extra_repr(self):
        return ""


def _uniform(shape, fan_in, rng):
    """PyTorch's default init of Conv2d and Linear weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)


class _Weighted(Module):
    """A layer with ``weight`` and optional ``bias``, initialised as PyTorch's, on either engine."""

    def _init_parameters(self, weight_shape, fan_in, bias, engine, rng, dtype):
        if engine not in ENGINES:
            raise ValueError(f"{type(self).__name__}: engine must be one of {ENGINES}, got {engine!r}")
        self.engine = engine
        rng = np.random.default_rng() if rng is None else rng
        self.weight = make_parameter(_uniform(weight_shape, fan_in, rng), engine, "weight", dtype)
        self.bias = make_parameter(_uniform(weight_shape[:1], fan_in, rng), engine, "bias", dtype) if bias else None


class Conv2d(_Weighted):
    """2-D convolution layer: (N, in_channels, H, W) -> (N, out_channels, H_out, W_out).

    weight (out, in, kH, kW) and bias (out,) ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in * kH * kW.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 padding_mode="zeros", bias=True, engine="tensor", rng=None, dtype=None):
        super().__init__()
        self.in_channels = _size(in_channels, "Conv2d", "in_channels")
        self.out_channels = _size(out_channels, "Conv2d", "out_channels")
        self.kernel_size = functional._ints(kernel_size, 2, "Conv2d", "kernel_size", 1)
        functional._conv_pads("Conv2d", padding, self.kernel_size, functional._ints(stride, 2, "Conv2d", "stride", 1))
        if padding_mode not in ("zeros", "replicate"):
            raise ValueError(f"Conv2d: padding_mode must be 'zeros' or 'replicate', got {padding_mode!r}")
        self.stride, self.padding, self.padding_mode = stride, padding, padding_mode
        fan_in = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        shape = (self.out_channels, self.in_channels) + self.kernel_size
        self._init_parameters(shape, fan_in, bias, engine, rng, dtype)

    def forward(self, x):
        return functional.conv2d(x, _matching(self.weight, x, "weight"), _matching(self.bias, x, "bias"),
                                 self.stride, self.padding, self.padding_mode)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, padding_mode={self.padding_mode!r}")


class Linear(_Weighted):
    """y = x @ weight.T + bias: (..., in_features) -> (..., out_features).

    weight (out, in) and bias (out,) ~ U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(self, in_features, out_features, bias=True, engine="tensor", rng=None, dtype=None):
        super().__init__()
        self.in_features = _size(in_features, "Linear", "in_features")
        self.out_features = _size(out_features, "Linear", "out_features")
        self._init_parameters((self.out_features, self.in_features), self.in_features, bias, engine, rng, dtype)

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
    """Max over kernel_size windows (stride defaults to kernel_size); see functional.max_pool2d."""

    fn, args = functional.max_pool2d, ("kernel_size", "stride")

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        functional._ints(kernel_size, 2, type(self).__name__, "kernel_size", 1)
        if stride is not None:
            functional._ints(stride, 2, type(self).__name__, "stride", 1)
        self.kernel_size, self.stride = kernel_size, stride


class AvgPool2d(MaxPool2d):
    """Mean over kernel_size windows (stride defaults to kernel_size); see functional.avg_pool2d."""

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
            return self._run(x)
        try:  # label each layer's nodes "0: Conv2d", ...: autograd.layer's rule, without a context per layer
            return self._run(x, labelled=True)
        finally:
            _layer[0] = None

    def _run(self, x, labelled=False):
        for name, m in self._modules.items():
            if labelled:
                _layer[0] = f"{name}: {m.label()}"
            x = m(x)
        return x
