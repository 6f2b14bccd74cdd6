"""Layers as functions, written once for both engines.

Every function takes Tensors, or numpy object arrays of ``Value`` (from ``values``), and
returns the same kind. conv and pooling are composed from pad, a sliding-window view,
multiply, sum and max: their gradients come from those primitives' rules. On Value arrays
each scalar multiply, add and max becomes one graph node.
"""
import numpy as np

from ..autograd import layer
from ..engine import Value
from ..tensor import Tensor, sliding_windows


# --- the few places where the two kinds of array differ ------------------------------------
def _kind(x, fn, arg):
    if isinstance(x, Tensor):
        return Tensor
    if isinstance(x, np.ndarray) and x.dtype == object and (x.size == 0 or isinstance(x.flat[0], Value)):
        return Value
    if isinstance(x, Value):
        return Value
    raise TypeError(f"{fn}: {arg} must be a Tensor or a numpy object array of Value, got {_describe(x)}")


def _describe(x):
    if isinstance(x, np.ndarray):
        return f"a numpy array of {x.dtype}"
    return type(x).__name__


def _same_kind(fn, **arrays):
    kinds = {name: _kind(a, fn, name) for name, a in arrays.items() if a is not None}
    if len(set(kinds.values())) > 1:
        listed = ", ".join(f"{n} is {'a Tensor' if k is Tensor else 'Values'}" for n, k in kinds.items())
        raise TypeError(f"{fn}: cannot mix Tensors and Value arrays ({listed})")
    return next(iter(kinds.values()))


def _map(x, method, *args):
    """Apply a Value/Tensor method elementwise."""
    if isinstance(x, np.ndarray):
        return np.frompyfunc(lambda v: getattr(v, method)(*args), 1, 1)(x)
    return getattr(x, method)(*args)


def _pad(x, pads, mode):
    if not any(any(p) for p in pads):
        return x
    if isinstance(x, Tensor):
        return x.pad(pads, "edge" if mode == "replicate" else "constant")
    if mode == "replicate":
        return np.pad(x, pads, mode="edge")
    return np.pad(x, pads, mode="constant", constant_values=0.0)


def _windows(x, kernel, stride):
    return x.windows(kernel, stride) if isinstance(x, Tensor) else sliding_windows(x, kernel, stride)


def _max(x, axes):
    """Max over ``axes`` (trailing); on a tie the first in row-major order wins."""
    if isinstance(x, Tensor):
        return x.max(axis=axes)
    flat = x.reshape(x.shape[:x.ndim - len(axes)] + (-1,))
    return np.frompyfunc(Value.max, 2, 1).reduce(flat, axis=-1)


def _maximum(x, bound):
    return x.maximum(bound) if isinstance(x, Tensor) else _map(x, "max", bound)


def _mean(x):
    return x.mean() if isinstance(x, Tensor) else x.sum() / x.size


def _constant(x, like):
    """Target values as a constant of the kind of ``like`` (a Tensor, or floats for Values)."""
    data = x.data if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)
    if isinstance(data, np.ndarray) and data.dtype == object:
        return data
    return Tensor(data, dtype=like.dtype) if isinstance(like, Tensor) else data


def _data(x):
    """The numbers of a Tensor or Value array (for checks; no graph)."""
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, np.ndarray) and x.dtype == object:
        return np.frompyfunc(lambda v: v.data if isinstance(v, Value) else float(v), 1, 1)(x).astype(np.float64)
    return np.asarray(x.data if isinstance(x, Value) else x, dtype=np.float64)


# --- argument checks -------------------------------------------------------------------------
def _ints(value, n, fn, arg, minimum):
    items = (value,) * n if np.ndim(value) == 0 else tuple(value)
    if len(items) != n:
        raise ValueError(f"{fn}: {arg} must be an int or a tuple of {n} ints, got {value!r}")
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{fn}: {arg} must be an int or a tuple of {n} ints, got {value!r}")
        if v < minimum:
            raise ValueError(f"{fn}: {arg} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def _spatial_input(x, nd, fn, channels_hint="C"):
    if x.ndim not in (nd + 1, nd + 2):
        dims = "L" if nd == 1 else "H, W"
        raise ValueError(f"{fn}: input must have shape (N, {channels_hint}, {dims}) or ({channels_hint}, {dims}), "
                         f"got shape {tuple(x.shape)}")
    return x.ndim == nd + 1


# --- convolution and pooling ---------------------------------------------------------------------
def _conv(fn, nd, x, weight, bias, stride, padding, padding_mode):
    kind = _same_kind(fn, input=x, weight=weight, bias=bias)
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
        raise ValueError(f"{fn}: bias must have shape ({c_out},) for {c_out} output channels, got {tuple(bias.shape)}")
    if padding_mode not in ("zeros", "replicate"):
        raise ValueError(f"{fn}: padding_mode must be 'zeros' or 'replicate', got {padding_mode!r}")
    stride = _ints(stride, nd, fn, "stride", 1)
    if padding == "valid":
        pads = ((0, 0),) * nd
    elif padding == "same":
        if stride != (1,) * nd:
            raise ValueError(f"{fn}: padding='same' needs stride 1, got stride {stride}")
        pads = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
    elif isinstance(padding, str):
        raise ValueError(f"{fn}: padding must be an int, a tuple of ints, 'valid' or 'same', got {padding!r}")
    else:
        pads = tuple((p, p) for p in _ints(padding, nd, fn, "padding", 0))
    spatial = tuple(x.shape[-nd:])
    padded = tuple(n + a + b for n, (a, b) in zip(spatial, pads))
    if any(k > n for k, n in zip(kernel, padded)):
        raise ValueError(f"{fn}: kernel {kernel} is larger than the padded input {padded} "
                         f"(input shape {tuple(x.shape)}, padding {pads})")
    with layer(fn):
        if unbatched:
            x = x.reshape((1,) + tuple(x.shape))
        n = x.shape[0]
        xp = _pad(x, ((0, 0), (0, 0)) + pads, padding_mode)
        windows = _windows(xp, kernel, stride)                    # (N, C_in, *out, *kernel)
        out_size = tuple(windows.shape[2:2 + nd])
        order = (0,) + tuple(range(2, 2 + nd)) + (1,) + tuple(range(2 + nd, 2 + 2 * nd))
        columns = windows.transpose(order).reshape(n, int(np.prod(out_size)), -1)  # (N, positions, C_in*k)
        out = columns @ weight.reshape(c_out, -1).T                # (N, positions, C_out)
        out = out.transpose(0, 2, 1).reshape((n, c_out) + out_size)
        if bias is not None:
            out = out + bias.reshape((1, c_out) + (1,) * nd)
        return out.reshape(out.shape[1:]) if unbatched else out


def conv1d(x, weight, bias=None, stride=1, padding=0, padding_mode="zeros"):
    """1-D cross-correlation. x (N, C_in, L) or (C_in, L); weight (C_out, C_in, K); bias (C_out,)."""
    return _conv("conv1d", 1, x, weight, bias, stride, padding, padding_mode)


def conv2d(x, weight, bias=None, stride=1, padding=0, padding_mode="zeros"):
    """2-D cross-correlation. x (N, C_in, H, W) or (C_in, H, W); weight (C_out, C_in, kH, kW).

    stride and padding: int or (h, w); padding may be "valid" or "same" (stride 1).
    padding_mode: "zeros" or "replicate". Output (N, C_out, H_out, W_out) with
    H_out = (H + 2 * padding - kH) // stride + 1.
    """
    return _conv("conv2d", 2, x, weight, bias, stride, padding, padding_mode)


def _pool(fn, x, kernel_size, stride, reduce):
    _same_kind(fn, input=x)
    _spatial_input(x, 2, fn)
    kernel = _ints(kernel_size, 2, fn, "kernel_size", 1)
    stride = kernel if stride is None else _ints(stride, 2, fn, "stride", 1)
    if any(k > n for k, n in zip(kernel, x.shape[-2:])):
        raise ValueError(f"{fn}: kernel_size {kernel} is larger than the input {tuple(x.shape[-2:])}")
    with layer(fn):
        return reduce(_windows(x, kernel, stride), kernel)        # windows: (..., H_out, W_out, kH, kW)


def max_pool2d(x, kernel_size, stride=None):
    """Max over each kernel_size window, x (N, C, H, W) or (C, H, W); stride defaults to kernel_size.

    The gradient goes to the largest entry of each window, the first in row-major order on a tie.
    """
    return _pool("max_pool2d", x, kernel_size, stride, lambda w, k: _max(w, (-2, -1)))


def avg_pool2d(x, kernel_size, stride=None):
    """Mean over each kernel_size window, x (N, C, H, W) or (C, H, W); stride defaults to kernel_size."""
    return _pool("avg_pool2d", x, kernel_size, stride, lambda w, k: w.sum(axis=(-2, -1)) / (k[0] * k[1]))


# --- dense layers and activations -----------------------------------------------------------------
def linear(x, weight, bias=None):
    """x (..., in_features) @ weight.T + bias; weight (out_features, in_features), bias (out_features,)."""
    _same_kind("linear", input=x, weight=weight, bias=bias)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must have shape (out_features, in_features), got {tuple(weight.shape)}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1] if x.ndim else 0} features (shape {tuple(x.shape)}) "
                         f"but weight expects {weight.shape[1]} (weight shape {tuple(weight.shape)})")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    with layer("linear"):
        if x.ndim == 1:
            out = (x.reshape(1, -1) @ weight.T).reshape(-1)
        else:
            out = x @ weight.T
        return out if bias is None else out + bias


def flatten(x, start_dim=1):
    """Merge the dims from start_dim on into one: (N, C, H, W) -> (N, C*H*W)."""
    _same_kind("flatten", input=x)
    if not -x.ndim <= start_dim < max(x.ndim, 1):
        raise ValueError(f"flatten: start_dim {start_dim} is out of range for shape {tuple(x.shape)}")
    with layer("flatten"):
        return x.reshape(tuple(x.shape[:start_dim % x.ndim]) + (-1,))


def _activation(name, method):
    def fn(x, *args):
        _same_kind(name, input=x)
        with layer(name):
            return _map(x, method, *args)
    fn.__name__ = name
    return fn


relu = _activation("relu", "relu")
relu.__doc__ = "max(x, 0) elementwise."
sigmoid = _activation("sigmoid", "sigmoid")
sigmoid.__doc__ = "1 / (1 + exp(-x)) elementwise; never overflows."
tanh = _activation("tanh", "tanh")
tanh.__doc__ = "tanh(x) elementwise."
_leaky_relu = _activation("leaky_relu", "leaky_relu")


def leaky_relu(x, negative_slope=0.01):
    """x for x > 0, negative_slope * x otherwise."""
    return _leaky_relu(x, negative_slope)


def _shifted(x, dim):
    """x minus its max along dim, the max held constant (softmax is unchanged by the shift)."""
    data = _data(x)
    if not -x.ndim <= dim < x.ndim:
        raise ValueError(f"dim {dim} is out of range for shape {tuple(x.shape)}")
    shift = np.max(data, axis=dim, keepdims=True)
    return x - (Tensor(shift, dtype=x.dtype) if isinstance(x, Tensor) else shift)


def softmax(x, dim):
    """exp(x) / sum(exp(x)) along dim."""
    _same_kind("softmax", input=x)
    with layer("softmax"):
        e = _map(_shifted(x, dim), "exp")
        return e / e.sum(axis=dim, keepdims=True)


def log_softmax(x, dim):
    """x - log(sum(exp(x))) along dim, computed stably."""
    _same_kind("log_softmax", input=x)
    with layer("log_softmax"):
        z = _shifted(x, dim)
        return z - _map(_map(z, "exp").sum(axis=dim, keepdims=True), "log")


# --- losses (each the mean over all elements) ---------------------------------------------------------
def _target_like(fn, x, target):
    t = _data(target) if isinstance(target, (Tensor, np.ndarray, Value)) else np.asarray(target, dtype=np.float64)
    if tuple(t.shape) != tuple(x.shape):
        raise ValueError(f"{fn}: target shape {tuple(t.shape)} does not match input shape {tuple(x.shape)}")
    if isinstance(target, np.ndarray) and target.dtype == object:
        return target
    if isinstance(target, Tensor) and isinstance(x, Tensor):
        return target
    return _constant(t, x)


def binary_cross_entropy(p, target):
    """mean(-(t log p + (1 - t) log(1 - p))), natural log, each log clamped at -100 (as PyTorch)."""
    _same_kind("binary_cross_entropy", input=p)
    data = _data(p)
    if np.any((data < 0) | (data > 1)) or np.any(np.isnan(data)):
        raise ValueError(f"binary_cross_entropy: every input must lie in [0, 1], got {data.min()} .. {data.max()}")
    t = _target_like("binary_cross_entropy", p, target)
    with layer("loss"):
        log_p = _maximum(_map(p, "log"), -100.0)
        log_q = _maximum(_map(1.0 - p, "log"), -100.0)
        return _mean(-(t * log_p + (1.0 - t) * log_q))


def binary_cross_entropy_with_logits(z, target):
    """binary_cross_entropy(sigmoid(z), target) computed stably for any finite z (mean)."""
    _same_kind("binary_cross_entropy_with_logits", input=z)
    t = _target_like("binary_cross_entropy_with_logits", z, target)
    with layer("loss"):
        # softplus(-z) = relu(-z) + log(1 + exp(-|z|)); |z| is max(-z, z), whose tie at 0
        # sends the gradient to -z, which makes the derivative there exactly sigmoid(0) - t.
        minus = -z
        abs_z = _maximum(minus, z) if isinstance(z, Tensor) else np.frompyfunc(Value.max, 2, 1)(minus, z)
        softplus_minus = _map(minus, "relu") + _map(1.0 + _map(-abs_z, "exp"), "log")
        return _mean((1.0 - t) * z + softplus_minus)


def cross_entropy(logits, target):
    """Mean of -log_softmax(logits)[i, target[i]]; logits (N, classes), target int class indices (N,)."""
    _same_kind("cross_entropy", input=logits)
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: logits must have shape (N, classes), got {tuple(logits.shape)}")
    if t.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: target must have shape ({logits.shape[0]},), got {t.shape}")
    if t.size and (not np.all(np.equal(np.mod(t, 1), 0)) or t.min() < 0 or t.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy: target must hold class indices in 0..{logits.shape[1] - 1}, "
                         f"got values {t.min()} .. {t.max()}")
    with layer("loss"):
        picked = log_softmax(logits, 1)[np.arange(t.shape[0]), t.astype(np.int64)]
        return -_mean(picked)


def mse_loss(x, target):
    """mean((x - target) ** 2)."""
    _same_kind("mse_loss", input=x)
    t = _target_like("mse_loss", x, target)
    with layer("loss"):
        return _mean((x - t) ** 2)
