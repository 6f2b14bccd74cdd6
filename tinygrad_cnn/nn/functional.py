"""Layers as functions, written once for both engines.

Every function takes Tensors, or numpy object arrays of ``Value`` (from ``values``), and
returns the same kind. conv is pad + a sliding-window view + one tensordot; pooling is the
window view + max or mean: their gradients come from those primitives' rules. On Value
arrays each scalar multiply, add and max becomes one graph node.

Arguments are checked before anything is computed: bad input raises ValueError or
TypeError naming the argument and the shapes, and makes no graph node.
"""
import functools

import numpy as np

from ..autograd import _layer, layer
from ..engine import Value
from ..tensor import Tensor, sliding_windows


# --- the few places where the two kinds of array differ ------------------------------------
def _kind(x, fn, arg):
    if isinstance(x, Tensor):
        return Tensor
    if isinstance(x, Value) or isinstance(x, np.ndarray) and x.dtype == object and all(
            isinstance(v, Value) for v in x.flat):
        return Value
    raise TypeError(f"{fn}: {arg} must be a Tensor or a numpy object array of Value, got {_describe(x)}")


def _describe(x):
    if isinstance(x, np.ndarray):
        return f"a numpy array of {'objects that are not all Values' if x.dtype == object else x.dtype}"
    return type(x).__name__


def _same_kind(fn, **arrays):
    """Tensor or Value, the one kind of all the given arrays (None entries skipped)."""
    if all(type(a) is Tensor or a is None for a in arrays.values()):
        return Tensor
    kinds = {name: _kind(a, fn, name) for name, a in arrays.items() if a is not None}
    if len(set(kinds.values())) > 1:
        listed = ", ".join(f"{n} is {'a Tensor' if k is Tensor else 'Values'}" for n, k in kinds.items())
        raise TypeError(f"{fn}: cannot mix Tensors and Value arrays ({listed})")
    return next(iter(kinds.values()))


def _labelled(label):
    """Run the decorated function inside ``layer(label)``, so that graph pictures group its nodes."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            if _layer[0] is not None:  # an outer label wins anyway: skip the context manager
                return fn(*args, **kwargs)
            with layer(label):
                return fn(*args, **kwargs)
        return run
    return wrap


def _map(x, method, *args):
    """Apply a Value/Tensor method elementwise."""
    if isinstance(x, np.ndarray):
        return np.frompyfunc(lambda v: getattr(v, method)(*args), 1, 1)(x)
    return getattr(x, method)(*args)


def _pad(x, pads, mode):
    if not any(a or b for a, b in pads):
        return x
    if isinstance(x, Tensor):
        return x.pad(pads, "edge" if mode == "replicate" else "constant")
    if mode == "replicate":
        return np.pad(x, pads, mode="edge")
    return np.pad(x, pads, mode="constant", constant_values=0.0)


def _windows(x, kernel, stride):
    return x.windows(kernel, stride) if isinstance(x, Tensor) else sliding_windows(x, kernel, stride)


def _tensordot(x, y, axes):
    return x.tensordot(y, axes) if isinstance(x, Tensor) else np.tensordot(x, y, axes)


def _max(x, axes):
    """Max over ``axes`` (the trailing ones); on a tie the first in row-major order wins."""
    if isinstance(x, Tensor):
        return x.max(axis=axes)
    flat = x.reshape(x.shape[:x.ndim - len(axes)] + (-1,))
    return np.frompyfunc(Value.max, 2, 1).reduce(flat, axis=-1)


def _maximum(x, other):
    """Elementwise max (other broadcast); on a tie the gradient goes to x."""
    return x.maximum(other) if isinstance(x, Tensor) else np.frompyfunc(Value.max, 2, 1)(x, other)


def _mean(x, sign=1):
    """The mean of all elements (times sign, +1 or -1), as a sum of x / (sign n): no overflow
    when every |x| is below the float max, and a negated mean in the same two ops."""
    terms = x / (sign * np.size(x))
    return terms if isinstance(terms, Value) else terms.sum()  # a lone Value is its own sum


def _data(x):
    """The numbers of a Tensor or Value array (for checks; no graph)."""
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, np.ndarray) and x.dtype == object:
        return np.frompyfunc(lambda v: v.data if isinstance(v, Value) else float(v), 1, 1)(x).astype(np.float64)
    return np.asarray(x.data if isinstance(x, Value) else x, dtype=np.float64)


# --- argument checks -------------------------------------------------------------------------
def _ints(value, n, fn, arg, minimum):
    """``value`` (an int, or n ints) as a tuple of n ints >= minimum."""
    if type(value) is int and value >= minimum:
        return (value,) * n
    items = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else (value,) * n
    if len(items) != n:
        raise ValueError(f"{fn}: {arg} must be an int or a tuple of {n} ints, got {value!r}")
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{fn}: {arg} must be an int or a tuple of {n} ints, got {value!r}")
        if v < minimum:
            raise ValueError(f"{fn}: {arg} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def _spatial_input(x, nd, fn, channels="C"):
    """Check the rank of a (N, C, *spatial) or (C, *spatial) input; True when it is unbatched."""
    if x.ndim not in (nd + 1, nd + 2):
        dims = "L" if nd == 1 else "H, W"
        raise ValueError(f"{fn}: input must have shape (N, {channels}, {dims}) or ({channels}, {dims}), "
                         f"got shape {tuple(x.shape)}")
    return x.ndim == nd + 1


def _conv_pads(fn, padding, kernel, stride):
    """(before, after) per spatial dim for an int, a tuple, 'valid' or 'same' (as PyTorch pads)."""
    nd = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding == "same":
            if stride != (1,) * nd:
                raise ValueError(f"{fn}: padding='same' needs stride 1, got stride {stride}")
            return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
        raise ValueError(f"{fn}: padding must be an int, a tuple of ints, 'valid' or 'same', got {padding!r}")
    return tuple((p, p) for p in _ints(padding, nd, fn, "padding", 0))


# --- convolution and pooling ---------------------------------------------------------------------
def _conv(fn, nd, x, weight, bias, stride, padding, padding_mode):
    _same_kind(fn, input=x, weight=weight, bias=bias)
    unbatched = _spatial_input(x, nd, fn, "C_in")
    if weight.ndim != nd + 2:
        raise ValueError(f"{fn}: weight must have shape (C_out, C_in{', K' if nd == 1 else ', kH, kW'}), "
                         f"got shape {tuple(weight.shape)}")
    c_out, c_in = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    channels = x.shape[0 if unbatched else 1]
    if channels != c_in:
        raise ValueError(f"{fn}: input has {channels} channels but weight expects {c_in} "
                         f"(input shape {tuple(x.shape)}, weight shape {tuple(weight.shape)})")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"{fn}: bias must have shape ({c_out},) for {c_out} output channels, "
                         f"got shape {tuple(bias.shape)}")
    if padding_mode not in ("zeros", "replicate"):
        raise ValueError(f"{fn}: padding_mode must be 'zeros' or 'replicate', got {padding_mode!r}")
    stride = _ints(stride, nd, fn, "stride", 1)
    pads = _conv_pads(fn, padding, kernel, stride)
    padded = tuple(n + a + b for n, (a, b) in zip(x.shape[-nd:], pads))
    if any(k > n for k, n in zip(kernel, padded)):
        raise ValueError(f"{fn}: kernel {kernel} is larger than the padded input {padded} "
                         f"(input shape {tuple(x.shape)}, padding {pads})")
    c = x.ndim - nd - 1                                            # the channel dim: 1, or 0 unbatched
    windows = _windows(_pad(x, ((0, 0),) * (c + 1) + pads, padding_mode), kernel, stride)
    # windows (N, C_in, *out, *kernel); sum C_in and the kernel dims against the weight's
    out = _tensordot(windows, weight, ([c] + list(range(c + 1 + nd, c + 1 + 2 * nd)), list(range(1, nd + 2))))
    if bias is not None:                                           # out (N, *out, C_out)
        out = out + bias
    return out.transpose(tuple(range(c)) + (out.ndim - 1,) + tuple(range(c, out.ndim - 1)))


@_labelled("conv1d")
def conv1d(x, weight, bias=None, stride=1, padding=0, padding_mode="zeros"):
    """1-D cross-correlation. x (N, C_in, L) or (C_in, L); weight (C_out, C_in, K); bias (C_out,).

    Output (N, C_out, L_out), L_out = (L + pad_left + pad_right - K) // stride + 1.
    """
    return _conv("conv1d", 1, x, weight, bias, stride, padding, padding_mode)


@_labelled("conv2d")
def conv2d(x, weight, bias=None, stride=1, padding=0, padding_mode="zeros"):
    """2-D cross-correlation. x (N, C_in, H, W) or (C_in, H, W); weight (C_out, C_in, kH, kW); bias (C_out,).

    stride and padding: int or (h, w); padding may be "valid" or "same" (stride 1).
    padding_mode: "zeros" or "replicate". Output (N, C_out, H_out, W_out) with
    H_out = (H + 2 * padding - kH) // stride + 1.
    """
    return _conv("conv2d", 2, x, weight, bias, stride, padding, padding_mode)


def _pool(fn, x, kernel_size, stride):
    """The (..., H_out, W_out, kH, kW) window view of a checked pooling input."""
    _same_kind(fn, input=x)
    _spatial_input(x, 2, fn)
    kernel = _ints(kernel_size, 2, fn, "kernel_size", 1)
    stride = kernel if stride is None else _ints(stride, 2, fn, "stride", 1)
    if any(k > n for k, n in zip(kernel, x.shape[-2:])):
        raise ValueError(f"{fn}: kernel_size {kernel} is larger than the input {tuple(x.shape[-2:])} "
                         f"(input shape {tuple(x.shape)})")
    return _windows(x, kernel, stride)


@_labelled("max_pool2d")
def max_pool2d(x, kernel_size, stride=None):
    """Max over each window. x (N, C, H, W) or (C, H, W); stride defaults to kernel_size; sizes floor.

    The gradient goes to the largest entry of each window, the first in row-major order on a tie.
    """
    return _max(_pool("max_pool2d", x, kernel_size, stride), (-2, -1))


@_labelled("avg_pool2d")
def avg_pool2d(x, kernel_size, stride=None):
    """Mean over each window. x (N, C, H, W) or (C, H, W); stride defaults to kernel_size; sizes floor."""
    windows = _pool("avg_pool2d", x, kernel_size, stride)
    return windows.sum(axis=(-2, -1)) / (windows.shape[-2] * windows.shape[-1])


# --- dense layers and activations -----------------------------------------------------------------
@_labelled("linear")
def linear(x, weight, bias=None):
    """x (..., in_features) -> x @ weight.T + bias (..., out_features); weight (out_features, in_features)."""
    _same_kind("linear", input=x, weight=weight, bias=bias)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must have shape (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1] if x.ndim else 0} features (shape {tuple(x.shape)}) "
                         f"but weight expects {weight.shape[1]} (weight shape {tuple(weight.shape)})")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got shape {tuple(bias.shape)}")
    out = _tensordot(x, weight, ([x.ndim - 1], [1]))
    return out if bias is None else out + bias


@_labelled("flatten")
def flatten(x, start_dim=1):
    """Merge the dims from start_dim on into one: (N, C, H, W) -> (N, C*H*W)."""
    _same_kind("flatten", input=x)
    if isinstance(start_dim, (bool, np.bool_)) or not isinstance(start_dim, (int, np.integer)):
        raise TypeError(f"flatten: start_dim must be an int, got {start_dim!r}")
    if not -x.ndim <= start_dim < x.ndim:
        raise ValueError(f"flatten: start_dim {start_dim} is out of range for shape {tuple(x.shape)}")
    start = start_dim % x.ndim
    return x.reshape(tuple(x.shape[:start]) + (int(np.prod(x.shape[start:])),))


def _activation(name, doc, *defaults):
    @_labelled(name)
    def fn(x, *args):
        _same_kind(name, input=x)
        return _map(x, name, *(args or defaults))
    fn.__name__, fn.__qualname__, fn.__doc__ = name, name, doc
    return fn


relu = _activation("relu", "max(x, 0) elementwise.")
sigmoid = _activation("sigmoid", "1 / (1 + exp(-x)) elementwise; never overflows.")
tanh = _activation("tanh", "tanh(x) elementwise.")
_leaky_relu = _activation("leaky_relu", "x for x > 0, negative_slope * x otherwise.", 0.01)


def leaky_relu(x, negative_slope=0.01):
    """x for x > 0, negative_slope * x otherwise."""
    return _leaky_relu(x, negative_slope)


def _dim(fn, x, dim):
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{fn}: dim must be an int, got {dim!r}")
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"{fn}: dim {dim} is out of range for shape {tuple(x.shape)}")


def _shifted(x, dim):
    """x minus its max along dim, the max held constant (softmax does not change under the shift)."""
    return x - _data(x).max(axis=dim, keepdims=True)


@_labelled("softmax")
def softmax(x, dim):
    """exp(x) / sum(exp(x)) along dim (same shape as x)."""
    _same_kind("softmax", input=x)
    _dim("softmax", x, dim)
    e = _map(_shifted(x, dim), "exp")
    return e / e.sum(axis=dim, keepdims=True)


@_labelled("log_softmax")
def log_softmax(x, dim):
    """x - log(sum(exp(x))) along dim, computed stably (same shape as x)."""
    _same_kind("log_softmax", input=x)
    _dim("log_softmax", x, dim)
    z = _shifted(x, dim)
    return z - _map(_map(z, "exp").sum(axis=dim, keepdims=True), "log")


# --- losses (each the mean over all elements) ---------------------------------------------------------
def _target_like(fn, x, target):
    """The target: a graph array of the input's kind, or numbers as a constant (checked shape)."""
    if isinstance(target, (Tensor, Value)) or isinstance(target, np.ndarray) and target.dtype == object:
        _same_kind(fn, input=x, target=target)
        t = target
    else:
        try:
            numbers = np.asarray(target, dtype=_data(x).dtype)
        except (TypeError, ValueError):
            raise TypeError(f"{fn}: target must be numbers, a Tensor or Values, got {type(target).__name__}") from None
        t = numbers if numbers.ndim else numbers[()]  # a constant array (or a number for 0-d)
    if tuple(np.shape(t)) != tuple(np.shape(x)):
        raise ValueError(f"{fn}: target shape {tuple(np.shape(t))} does not match input shape {tuple(np.shape(x))}")
    return t


_TINY = 1e-44  # log(_TINY) < -100 in float32 and float64, and 1 / _TINY is finite in float64


def _clamped_log(u):
    """max(log(u), -100), as PyTorch's BCE clamps its logs. u is first raised to _TINY, so that
    u = 0 gives a zero gradient (the outer clamp's), not 0 * (1 / 0) = nan."""
    return _maximum(_map(_maximum(u, _TINY), "log"), -100.0)


@_labelled("loss")
def binary_cross_entropy(p, target):
    """mean(-(t log p + (1 - t) log(1 - p))), natural log, each log clamped at -100 (as PyTorch).

    p: probabilities in [0, 1], any shape; target: same shape.
    """
    _same_kind("binary_cross_entropy", input=p)
    data = _data(p)
    if data.size and not ((data >= 0) & (data <= 1)).all():
        raise ValueError(f"binary_cross_entropy: every input must lie in [0, 1], "
                         f"got values from {np.nanmin(data)} to {np.nanmax(data)}"
                         f"{' and nan' if np.isnan(data).any() else ''} (shape {data.shape})")
    t = _target_like("binary_cross_entropy", p, target)
    return _mean(t * _clamped_log(p) + (1.0 - t) * _clamped_log(1.0 - p), sign=-1)


@_labelled("loss")
def binary_cross_entropy_with_logits(z, target):
    """binary_cross_entropy(sigmoid(z), target) computed stably for any finite z (mean).

    Per element (1 - t) z + softplus(-z), softplus(-z) = relu(-z) + log(1 + exp(-|z|)).
    """
    _same_kind("binary_cross_entropy_with_logits", input=z)
    t = _target_like("binary_cross_entropy_with_logits", z, target)
    minus = -z
    # |z| = max(z, -z): on the tie at z = 0 the gradient goes to z, which makes the
    # derivative there sigmoid(0) - t = 1/2 - t, as on either side
    softplus = _map(minus, "relu") + _map(1.0 + _map(-_maximum(z, minus), "exp"), "log")
    return _mean((1.0 - t) * z + softplus)


@_labelled("loss")
def cross_entropy(logits, target):
    """Mean over the batch of -log_softmax(logits)[i, target[i]]; logits (N, classes), target (N,) int classes."""
    _same_kind("cross_entropy", input=logits)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, classes), got shape {tuple(logits.shape)}")
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if t.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: target must have shape ({logits.shape[0]},) for logits of shape "
                         f"{tuple(logits.shape)}, got shape {t.shape}")
    if t.dtype.kind not in "iuf" or t.size and (np.any(t != np.round(t)) or t.min() < 0 or t.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy: target must hold class indices in 0..{logits.shape[1] - 1}, "
                         f"got {t.tolist() if t.size <= 10 else t.dtype}")
    picked = log_softmax(logits, 1)[np.arange(t.shape[0]), t.astype(np.int64)]
    return _mean(picked, sign=-1)


@_labelled("loss")
def mse_loss(x, target):
    """mean((x - target) ** 2); target the same shape as x."""
    _same_kind("mse_loss", input=x)
    t = _target_like("mse_loss", x, target)
    return _mean((x - t) ** 2)
