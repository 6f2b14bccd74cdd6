"""Layers as functions, written once for both engines.

Every function takes Tensors, or Value arrays (``values(...)``, a ``ValueArray``; a bare Value
or object array of Values is taken as one), and returns the same kind: both have the same
primitive methods (pad, windows, tensordot, sum, max, maximum, reshape, permute, the unary
ops), and the layers below call only those. conv is pad + a sliding-window view + one
tensordot (a multiply and a sum per group when groups > 1); pooling is the window view + max
or mean: their gradients come from those primitives' rules. On Value arrays each scalar
multiply, add and max becomes one graph node.

Arguments are checked before anything is computed: bad input raises ValueError, TypeError or
IndexError naming the argument and the shapes, and makes no graph node.
"""
import functools
import math

import numpy as np

from .. import backend as B
from ..autograd import _layer, layer
from ..tensor import Tensor
from ..value_array import as_value_array


# --- argument checks -------------------------------------------------------------------------
def _describe(x):
    if isinstance(x, np.ndarray):
        return f"a numpy array of {'objects that are not all Values' if x.dtype == object else x.dtype}"
    return type(x).__name__


def _inputs(fn, **arrays):
    """The graph arrays, all Tensors or all ValueArrays (a Value or an object array of Values is
    taken as a ValueArray; None passes); else a TypeError naming the arguments."""
    if all(type(a) is Tensor or a is None for a in arrays.values()):  # the common case, first
        return list(arrays.values())
    out, kinds = [], {}
    for name, a in arrays.items():
        if a is not None and not isinstance(a, Tensor):
            va = as_value_array(a)
            if va is None:
                raise TypeError(f"{fn}: {name} must be a Tensor or a numpy object array of Value, got {_describe(a)}")
            a = va
        if a is not None:
            kinds[name] = "a Tensor" if isinstance(a, Tensor) else "Values"
        out.append(a)
    if len(set(kinds.values())) > 1:
        listed = ", ".join(f"{n} is {k}" for n, k in kinds.items())
        raise TypeError(f"{fn}: cannot mix Tensors and Value arrays ({listed})")
    return out


def _float_dtype(x):
    """The dtype for constants that meet x: a float32 Tensor's float32, else float64."""
    return x.dtype if x.dtype == np.float32 else np.dtype(np.float64)


def _labelled(label):
    """Run the decorated function inside ``layer(label)``, so that graph pictures group its nodes."""
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            if _layer[0] is not None:  # an outer label wins anyway: no need to enter the block
                return fn(*args, **kwargs)
            with layer(label):
                return fn(*args, **kwargs)
        return run
    return wrap


def _ints(value, n, fn, arg, minimum=None):
    """``value`` (an int, or n ints) as a tuple of n ints, each >= minimum unless that is None."""
    low = -math.inf if minimum is None else minimum
    if type(value) is int and value >= low:
        return (value,) * n
    if type(value) is tuple and len(value) == n and all(type(v) is int and v >= low for v in value):
        return value
    items = tuple(value) if isinstance(value, (tuple, list, np.ndarray)) else (value,) * n
    if len(items) != n:
        raise ValueError(f"{fn}: {arg} must be an int or a tuple of {n} ints, got {value!r}")
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{fn}: {arg} must be an int or a tuple of {n} ints, got {value!r}")
        if v < low:
            raise ValueError(f"{fn}: {arg} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in items)


def _choice(fn, arg, value, allowed):
    if value not in allowed:
        raise ValueError(f"{fn}: {arg} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _spatial_input(x, nd, fn, channels="C"):
    """Check the rank of a (N, C, *spatial) or (C, *spatial) input; True when it is unbatched."""
    if x.ndim not in (nd + 1, nd + 2):
        dims = "L" if nd == 1 else "H, W"
        raise ValueError(f"{fn}: input must have shape (N, {channels}, {dims}) or ({channels}, {dims}), "
                         f"got shape {tuple(x.shape)}")
    return x.ndim == nd + 1


def _conv_pads(fn, padding, kernel, stride, dilation):
    """(before, after) per spatial dim for an int, a tuple, 'valid' or 'same' (as PyTorch pads)."""
    nd = len(kernel)
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"{fn}: padding must be an int, a tuple of ints, 'valid' or 'same', got {padding!r}")
        if padding == "valid":
            return ((0, 0),) * nd
        if stride != (1,) * nd:
            raise ValueError(f"{fn}: padding='same' needs stride 1, got stride {stride}")
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    return tuple((p, p) for p in _ints(padding, nd, fn, "padding", 0))


# --- padding ---------------------------------------------------------------------------------------
PAD_MODES = ("constant", "reflect", "replicate", "circular")
_SOURCE = {  # for the padded positions i = -before .. n + after - 1, the input position each copies
    "replicate": lambda i, n: np.clip(i, 0, n - 1),
    "reflect": lambda i, n: (n - 1) - np.abs((n - 1) - np.abs(i)),  # mirrored at the edges, edge not repeated
    "circular": lambda i, n: i % n,
}


def _pad(x, pads, mode, value=0.0):
    """x padded by (before, after) per dim, negative ones cropping, as PyTorch pads: 'constant' and
    'circular' crop first, then fill with value or wrap the cropped input around; 'reflect' and
    'replicate' take each position from the uncropped input. The copying modes are one gather per
    padded dim, whose rule adds the copies back."""
    if not any(a or b for a, b in pads):
        return x
    if mode in ("constant", "circular") and any(a < 0 or b < 0 for a, b in pads):
        x = x[tuple(slice(max(-a, 0), n - max(-b, 0)) for n, (a, b) in zip(x.shape, pads))]
        pads = tuple((max(a, 0), max(b, 0)) for a, b in pads)
    if mode == "constant":
        return x.pad(pads, value)
    for axis, (before, after) in enumerate(pads):
        if before or after:
            n, most = x.shape[axis], max(before, after, 0)
            if n == 0 or mode == "reflect" and most >= n or mode == "circular" and most > n:
                raise ValueError(f"pad: {mode} padding of ({before}, {after}) is too large for dim {axis} of "
                                 f"size {n} (shape {tuple(x.shape)})")
            x = x[(slice(None),) * axis + (_SOURCE[mode](np.arange(-before, n + after), n),)]
    return x


@_labelled("pad")
def pad(input, pad, mode="constant", value=0.0):
    """Pad the last len(pad) // 2 dims, as torch.nn.functional.pad: pad = (left, right) for the last
    dim, then (top, bottom) for the one before, ...; negative pads crop. mode: 'constant' (with
    ``value``), 'reflect', 'replicate' or 'circular'."""
    (x,) = _inputs("pad", input=input)
    _choice("pad", "mode", mode, PAD_MODES)
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) > 2 * x.ndim:
        raise ValueError(f"pad: pad must hold an even number of ints, at most 2 per dim ({2 * x.ndim} for "
                         f"shape {tuple(x.shape)}), got {pad}")
    _ints(pad, len(pad), "pad", "pad")
    pads = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        pads[x.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    if any(n + min(a, 0) + min(b, 0) < 0 for n, (a, b) in zip(x.shape, pads)):
        raise ValueError(f"pad: pads {pad} crop more than shape {tuple(x.shape)} holds")
    return _pad(x, tuple(pads), mode, float(value))


# --- convolution --------------------------------------------------------------------------------------
_PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _conv(fn, nd, x, weight, bias, stride, padding, padding_mode, dilation, groups):
    x, weight, bias = _inputs(fn, input=x, weight=weight, bias=bias)
    unbatched = _spatial_input(x, nd, fn, "C_in")
    (groups,) = _ints(groups, 1, fn, "groups", 1)
    if weight.ndim != nd + 2:
        raise ValueError(f"{fn}: weight must have shape (C_out, C_in{' / groups' if groups > 1 else ''}"
                         f"{', K' if nd == 1 else ', kH, kW'}), got shape {tuple(weight.shape)}")
    c_out, c_group = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    channels = x.shape[0 if unbatched else 1]
    if channels != c_group * groups:
        per = f" ({c_group} per group, {groups} groups)" if groups > 1 else ""
        raise ValueError(f"{fn}: input has {channels} channels but weight expects {c_group * groups}{per} "
                         f"(input shape {tuple(x.shape)}, weight shape {tuple(weight.shape)})")
    if c_out % groups:
        raise ValueError(f"{fn}: {c_out} output channels do not split into {groups} groups")
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"{fn}: bias must have shape ({c_out},) for {c_out} output channels, "
                         f"got shape {tuple(bias.shape)}")
    _choice(fn, "padding_mode", padding_mode, tuple(_PADDING_MODES))
    stride = _ints(stride, nd, fn, "stride", 1)
    dilation = _ints(dilation, nd, fn, "dilation", 1)
    pads = _conv_pads(fn, padding, kernel, stride, dilation)
    padded = tuple(n + a + b for n, (a, b) in zip(x.shape[-nd:], pads))
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    if any(e > n for e, n in zip(extent, padded)):
        dilated = f" (dilated to {extent})" if extent != kernel else ""
        raise ValueError(f"{fn}: kernel {kernel}{dilated} is larger than the padded input {padded} "
                         f"(input shape {tuple(x.shape)}, padding {pads})")
    c = x.ndim - nd - 1                                            # the channel dim: 1, or 0 unbatched
    windows = _pad(x, ((0, 0),) * (c + 1) + pads, _PADDING_MODES[padding_mode]).windows(kernel, stride, dilation)
    lead, out_size = windows.shape[:c], windows.shape[c + 1:c + 1 + nd]   # windows (N, C_in, *out, *kernel)
    if groups == 1:  # sum C_in and the kernel dims against the weight's: out (N, *out, C_out)
        out = windows.tensordot(weight, ([c] + list(range(c + 1 + nd, c + 1 + 2 * nd)), list(range(1, nd + 2))))
        out = out if bias is None else out + bias
        return out.permute(tuple(range(c)) + (out.ndim - 1,) + tuple(range(c, out.ndim - 1)))
    # per group: (N, G, 1, C_in/G, *out, *kernel) * (G, C_out/G, C_in/G, 1.., *kernel), summed over C_in/G and kernel
    grouped = windows.reshape(lead + (groups, 1, c_group) + out_size + kernel)
    w = weight.reshape((groups, c_out // groups, c_group) + (1,) * nd + kernel)
    out = (grouped * w).sum(axis=(c + 2,) + tuple(range(-nd, 0))).reshape(lead + (c_out,) + out_size)
    return out if bias is None else out + bias.reshape((c_out,) + (1,) * nd)


@_labelled("conv1d")
def conv1d(input, weight, bias=None, stride=1, padding=0, padding_mode="zeros", *, dilation=1, groups=1):
    """1-D cross-correlation. input (N, C_in, L) or (C_in, L); weight (C_out, C_in / groups, K); bias (C_out,).

    Output (N, C_out, L_out), L_out = (L + pad_left + pad_right - dilation (K - 1) - 1) // stride + 1.
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, padding_mode, dilation, groups)


@_labelled("conv2d")
def conv2d(input, weight, bias=None, stride=1, padding=0, padding_mode="zeros", *, dilation=1, groups=1):
    """2-D cross-correlation. input (N, C_in, H, W) or (C_in, H, W); weight (C_out, C_in / groups, kH, kW);
    bias (C_out,).

    stride, padding, dilation: int or (h, w); padding may be "valid" or "same" (stride 1).
    padding_mode: "zeros", "reflect", "replicate" or "circular". groups splits the channels
    (groups = C_in: depthwise). dilation and groups are keyword-only: the sixth positional
    argument is padding_mode (this package's contract), where PyTorch's F.conv2d has dilation. Output (N, C_out, H_out, W_out) with
    H_out = (H + 2 padding - dilation (kH - 1) - 1) // stride + 1.
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, padding_mode, dilation, groups)


def _spread(x, stride, first):
    """x with stride - 1 zeros between neighbours along the dims from ``first`` on: a reshape that adds
    a dim of 1 after each, a pad of that dim to ``stride``, a reshape back and a crop of the tail."""
    for axis, s in enumerate(stride, start=first):
        if s > 1:
            n = x.shape[axis]
            x = x.reshape(x.shape[:axis + 1] + (1,) + x.shape[axis + 1:])
            x = x.pad(((0, 0),) * (axis + 1) + ((0, s - 1),) + ((0, 0),) * (x.ndim - axis - 2))
            x = x.reshape(x.shape[:axis] + (n * s,) + x.shape[axis + 2:])
            x = x[(slice(None),) * axis + (slice(0, (n - 1) * s + 1),)]
    return x


def _conv_transpose(fn, nd, x, weight, bias, stride, padding, output_padding, groups, dilation):
    x, weight, bias = _inputs(fn, input=x, weight=weight, bias=bias)
    unbatched = _spatial_input(x, nd, fn, "C_in")
    if weight.ndim != nd + 2:
        raise ValueError(f"{fn}: weight must have shape (C_in, C_out / groups{', K' if nd == 1 else ', kH, kW'}), "
                         f"got shape {tuple(weight.shape)}")
    (groups,) = _ints(groups, 1, fn, "groups", 1)
    c_in, c_group = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    channels = x.shape[0 if unbatched else 1]
    if channels != c_in or c_in % groups:
        raise ValueError(f"{fn}: input has {channels} channels but weight expects {c_in}"
                         f"{f' in {groups} groups' if groups > 1 else ''} "
                         f"(input shape {tuple(x.shape)}, weight shape {tuple(weight.shape)})")
    if bias is not None and tuple(bias.shape) != (c_group * groups,):
        raise ValueError(f"{fn}: bias must have shape ({c_group * groups},), got shape {tuple(bias.shape)}")
    stride, dilation = _ints(stride, nd, fn, "stride", 1), _ints(dilation, nd, fn, "dilation", 1)
    padding, output_padding = _ints(padding, nd, fn, "padding", 0), _ints(output_padding, nd, fn, "output_padding", 0)
    if any(o >= max(s, d) for o, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"{fn}: output_padding {output_padding} must be smaller than stride {stride} "
                         f"or dilation {dilation}")
    size = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1 for n, s, p, d, k, o in
                 zip(x.shape[-nd:], stride, padding, dilation, kernel, output_padding))
    if any(n < 1 for n in size):
        raise ValueError(f"{fn}: the output would have size {size} (input shape {tuple(x.shape)}, padding {padding})")
    c = x.ndim - nd - 1
    # the gradient of a strided conv: spread the input by the stride, pad it by dilation (k - 1) - padding
    # (output_padding more at the end) and cross-correlate with the flipped kernel, its channel dims swapped
    spread = _spread(x, stride, c + 1)
    pads = ((0, 0),) * (c + 1) + tuple((d * (k - 1) - p, d * (k - 1) - p + o)
                                       for k, d, p, o in zip(kernel, dilation, padding, output_padding))
    flipped = weight[(Ellipsis,) + (slice(None, None, -1),) * nd]
    swapped = flipped.reshape((groups, c_in // groups, c_group) + kernel).permute(
        (0, 2, 1) + tuple(range(3, 3 + nd))).reshape((groups * c_group, c_in // groups) + kernel)
    return _conv(fn, nd, _pad(spread, pads, "constant"), swapped, bias, 1, 0, "zeros", dilation, groups)


@_labelled("conv_transpose1d")
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transpose (gradient) of conv1d. input (N, C_in, L); weight (C_in, C_out / groups, K).

    L_out = (L - 1) stride - 2 padding + dilation (K - 1) + output_padding + 1.
    """
    return _conv_transpose("conv_transpose1d", 1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


@_labelled("conv_transpose2d")
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The transpose (gradient) of conv2d, as PyTorch's. input (N, C_in, H, W) or (C_in, H, W);
    weight (C_in, C_out / groups, kH, kW); bias (C_out,).

    H_out = (H - 1) stride - 2 padding + dilation (kH - 1) + output_padding + 1. Composed: the input
    spread by the stride, padded, and cross-correlated with the flipped kernel.
    """
    return _conv_transpose("conv_transpose2d", 2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation)


# --- pooling -----------------------------------------------------------------------------------------------
def _pool(fn, x, kernel_size, stride, padding, dilation, ceil_mode, fill):
    """The (..., H_out, W_out, kH, kW) window view of a checked pooling input padded with ``fill``,
    and how to take the same windows of an (H, W) array: pads (padding, padding + what ceil_mode's
    last window needs) per spatial dim, kernel, stride, dilation."""
    (x,) = _inputs(fn, input=x)
    _spatial_input(x, 2, fn)
    kernel = _ints(kernel_size, 2, fn, "kernel_size", 1)
    stride = kernel if stride is None else _ints(stride, 2, fn, "stride", 1)
    padding, dilation = _ints(padding, 2, fn, "padding", 0), _ints(dilation, 2, fn, "dilation", 1)
    pads = []
    for n, k, s, p, d in zip(x.shape[-2:], kernel, stride, padding, dilation):
        extent = d * (k - 1) + 1
        if 2 * p > k:  # as PyTorch: at most half the kernel size (undilated)
            raise ValueError(f"{fn}: padding {padding} must be at most half of kernel_size {kernel}")
        if extent > n + 2 * p:
            padded = f" padded by {padding}" if any(padding) else ""
            raise ValueError(f"{fn}: kernel_size {kernel}{f' dilated by {dilation}' if d > 1 else ''} is larger than "
                             f"the input {tuple(x.shape[-2:])}{padded} (input shape {tuple(x.shape)})")
        span = n + 2 * p - extent
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= n + p:  # the last window must start inside the input or its left pad
            out -= 1
        pads.append((p, p + max(0, (out - 1) * s + extent - n - 2 * p)))
    windows = _pad(x, ((0, 0),) * (x.ndim - 2) + tuple(pads), "constant", fill).windows(kernel, stride, dilation)
    return windows, (tuple(pads), kernel, stride, dilation)


@_labelled("max_pool2d")
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over each window. input (N, C, H, W) or (C, H, W); stride defaults to kernel_size; sizes
    floor (ceil with ceil_mode); padding counts as -inf. The gradient goes to the largest entry of
    each window, the first in row-major order on a tie. With return_indices, also the position of
    each maximum in its flattened H x W input plane (an int64 numpy array)."""
    windows, (pads, *geometry) = _pool("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode,
                                       -np.inf)
    out = windows.max(axis=(-2, -1))
    if not return_indices:
        return out
    h, w = np.shape(input)[-2:]
    plane = np.pad(np.arange(h * w, dtype=np.int64).reshape(h, w), pads, constant_values=-1)
    where = B.sliding_windows(plane, *geometry).reshape(windows.shape[-4:-2] + (-1,))  # (H_out, W_out, kH kW)
    numbers = windows.numbers()
    first = numbers.reshape(numbers.shape[:-2] + (-1,)).argmax(-1)  # the first largest, row-major
    return out, np.take_along_axis(np.broadcast_to(where, first.shape + where.shape[-1:]), first[..., None], -1)[..., 0]


@_labelled("avg_pool2d")
def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over each window. input (N, C, H, W) or (C, H, W); stride defaults to kernel_size; sizes
    floor (ceil with ceil_mode). Zero padding counts in the divisor when count_include_pad (the
    part of a ceil_mode window past the padding never does); divisor_override replaces it."""
    windows, (((top, bottom), (left, right)), *geometry) = _pool("avg_pool2d", input, kernel_size, stride, padding,
                                                                 1, ceil_mode, 0.0)
    total = windows.sum(axis=(-2, -1))
    if divisor_override is not None:
        return total / _ints(divisor_override, 1, "avg_pool2d", "divisor_override", 1)[0]
    counted = np.pad(np.ones(np.shape(input)[-2:]), ((top, top), (left, left)), constant_values=float(count_include_pad))
    counted = np.pad(counted, ((0, bottom - top), (0, right - left)))  # the ceil_mode overhang never counts
    divisor = B.sliding_windows(counted, *geometry).sum(axis=(-2, -1))
    if (divisor == divisor.flat[0]).all():  # one divisor for all (no padding counted apart): divide by a number
        return total / int(divisor.flat[0])
    return total / divisor.astype(_float_dtype(total))


# --- dense layers and activations -----------------------------------------------------------------
@_labelled("linear")
def linear(input, weight, bias=None):
    """x (..., in_features) -> x @ weight.T + bias (..., out_features); weight (out_features, in_features)."""
    x, weight, bias = _inputs("linear", input=input, weight=weight, bias=bias)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must have shape (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input has {x.shape[-1] if x.ndim else 0} features (shape {tuple(x.shape)}) "
                         f"but weight expects {weight.shape[1]} (weight shape {tuple(weight.shape)})")
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got shape {tuple(bias.shape)}")
    out = x.tensordot(weight, ([x.ndim - 1], [1]))
    return out if bias is None else out + bias


@_labelled("flatten")
def flatten(input, start_dim=1, end_dim=-1):
    """Merge the dims start_dim..end_dim into one: (N, C, H, W) -> (N, C*H*W)."""
    (x,) = _inputs("flatten", input=input)
    return x.flatten(start_dim, end_dim)


def _activation(name, doc, *defaults):
    @_labelled(name)
    def fn(input, *args):
        (x,) = _inputs(name, input=input)
        return getattr(x, name)(*(args or defaults))
    fn.__name__, fn.__qualname__, fn.__doc__ = name, name, doc
    return fn


relu = _activation("relu", "max(x, 0) elementwise.")
sigmoid = _activation("sigmoid", "1 / (1 + exp(-x)) elementwise; never overflows.")
tanh = _activation("tanh", "tanh(x) elementwise.")
_leaky_relu = _activation("leaky_relu", "x for x > 0, negative_slope * x otherwise.", 0.01)


def leaky_relu(input, negative_slope=0.01):
    """x for x > 0, negative_slope * x otherwise."""
    return _leaky_relu(input, negative_slope)


def _shifted(fn, x, dim):
    """x minus its max along dim, the max held constant (softmax does not change under the shift);
    on Values each shift is a ``Held`` leaf that names the Values it is the max of."""
    axes = (B.dim(dim, x.ndim, fn),)[:x.ndim]  # a 0-d x takes dim 0 or -1 and reduces nothing
    if isinstance(x, Tensor):
        return x - B.reduce(np.maximum, x.numbers(), axes, keepdims=True), axes
    return x - x.held_max(axes), axes


@_labelled("softmax")
def softmax(input, dim):
    """exp(x) / sum(exp(x)) along dim (same shape as x)."""
    (x,) = _inputs("softmax", input=input)
    z, axes = _shifted("softmax", x, dim)
    e = z.exp()
    return e / e.sum(axis=axes, keepdims=True)


@_labelled("log_softmax")
def log_softmax(input, dim):
    """x - log(sum(exp(x))) along dim, computed stably (same shape as x)."""
    (x,) = _inputs("log_softmax", input=input)
    z, axes = _shifted("log_softmax", x, dim)
    return z - z.exp().sum(axis=axes, keepdims=True).log()


def _probability(fn, p):
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.floating)) or not 0 <= p <= 1:
        raise ValueError(f"{fn}: p must be a probability in [0, 1], got {p!r}")
    return p


@_labelled("dropout")
def dropout(input, p=0.5, training=True, rng=None):
    """Zero each entry with probability p and scale the rest by 1 / (1 - p) (training only, as
    PyTorch's); ``rng`` a numpy Generator (seeded) or None."""
    (x,) = _inputs("dropout", input=input)
    _probability("dropout", p)
    if not training or p == 0:
        return x
    keep = (np.random.default_rng() if rng is None else rng).random(x.shape) >= p
    scale = keep / (1 - p) if p < 1 else np.zeros(x.shape)
    return x * scale.astype(_float_dtype(x))


# --- losses ---------------------------------------------------------------------------------------------
REDUCTIONS = ("mean", "sum", "none")


def _reduced(terms, reduction, sign=1):
    """The loss terms (times sign, +1 or -1) as ``reduction`` says: their mean, as a sum of
    terms / (sign n) (no overflow when every |term| is below the float max, and a negated mean in
    the same two ops), their sum, or themselves."""
    if reduction == "mean":
        return (terms / (sign * terms.size)).sum()
    terms = terms if sign == 1 else -terms
    return terms.sum() if reduction == "sum" else terms


def _target_like(fn, x, target):
    """The target: a graph array of the input's kind, or numbers as a constant (checked shape)."""
    if isinstance(target, Tensor) or as_value_array(target) is not None:
        _, t = _inputs(fn, input=x, target=target)
    else:
        try:
            numbers = np.asarray(target, dtype=_float_dtype(x))
        except (TypeError, ValueError):
            raise TypeError(f"{fn}: target must be numbers, a Tensor or Values, got {type(target).__name__}") from None
        t = numbers if numbers.ndim else numbers[()]  # a constant array (or a number for 0-d)
    if tuple(np.shape(t)) != tuple(x.shape):
        raise ValueError(f"{fn}: target shape {tuple(np.shape(t))} does not match input shape {tuple(x.shape)}")
    return t


def _weights(fn, arg, weight, x):
    """Per-element loss weights: numbers that broadcast against the input, or None."""
    if weight is None:
        return None
    w = np.asarray(weight.numbers() if hasattr(weight, "numbers") else weight, dtype=_float_dtype(x))
    try:
        np.broadcast_shapes(w.shape, tuple(x.shape))
    except ValueError:
        raise ValueError(f"{fn}: {arg} of shape {w.shape} does not broadcast to the input's shape "
                         f"{tuple(x.shape)}") from None
    return w


_TINY = 1e-44  # log(_TINY) < -100 in float32 and float64, and 1 / _TINY is finite in float64


def _clamped_log(u):
    """max(log(u), -100), as PyTorch's BCE clamps its logs. u is first raised to _TINY, so that
    u = 0 gives a zero gradient (the outer clamp's), not 0 * (1 / 0) = nan."""
    return u.maximum(_TINY).log().maximum(-100.0)


@_labelled("loss")
def binary_cross_entropy(input, target, weight=None, *, reduction="mean"):
    """-(t log p + (1 - t) log(1 - p)) per element, natural log, each log clamped at -100 (as PyTorch),
    times ``weight``, reduced by ``reduction`` ('mean', 'sum' or 'none').

    input: probabilities in [0, 1], any shape; target: same shape.
    """
    (p,) = _inputs("binary_cross_entropy", input=input)
    _choice("binary_cross_entropy", "reduction", reduction, REDUCTIONS)
    data = p.numbers()
    if data.size and not ((data >= 0) & (data <= 1)).all():
        raise ValueError(f"binary_cross_entropy: every input must lie in [0, 1], "
                         f"got values from {np.nanmin(data)} to {np.nanmax(data)}"
                         f"{' and nan' if np.isnan(data).any() else ''} (shape {data.shape})")
    t = _target_like("binary_cross_entropy", p, target)
    w = _weights("binary_cross_entropy", "weight", weight, p)
    terms = t * _clamped_log(p) + (1.0 - t) * _clamped_log(1.0 - p)
    return _reduced(terms if w is None else terms * w, reduction, sign=-1)


@_labelled("loss")
def binary_cross_entropy_with_logits(input, target, weight=None, *, reduction="mean", pos_weight=None):
    """binary_cross_entropy(sigmoid(z), target) computed stably for any finite z, the positive
    term times ``pos_weight`` (per class, broadcast over the last dim) and each term times ``weight``.

    Per element (1 - t) z + (1 + (pos_weight - 1) t) softplus(-z), softplus(-z) = relu(-z) + log(1 + exp(-|z|)).
    """
    (z,) = _inputs("binary_cross_entropy_with_logits", input=input)
    _choice("binary_cross_entropy_with_logits", "reduction", reduction, REDUCTIONS)
    t = _target_like("binary_cross_entropy_with_logits", z, target)
    w = _weights("binary_cross_entropy_with_logits", "weight", weight, z)
    pw = _weights("binary_cross_entropy_with_logits", "pos_weight", pos_weight, z)
    minus = -z
    # |z| = max(z, -z): on the tie at z = 0 the gradient goes to z, which makes the
    # derivative there sigmoid(0) - t = 1/2 - t, as on either side
    softplus = minus.relu() + (1.0 + (-z.maximum(minus)).exp()).log()
    terms = (1.0 - t) * z + (softplus if pw is None else (1.0 + (pw - 1.0) * t) * softplus)
    return _reduced(terms if w is None else terms * w, reduction)


def _class_targets(fn, x, target, probabilities):
    """Class indices as an index into x (classes on dim 1, or dim 0 unbatched, which gets a batch dim
    of 1), or class probabilities (x's shape) as numbers; checked before anything is computed."""
    t = np.asarray(target.numbers() if hasattr(target, "numbers") else target)
    c = 1 if x.ndim > 1 else 0
    classes = x.shape[c]
    if probabilities and t.shape == tuple(x.shape) and t.dtype.kind == "f":
        return None, t.astype(_float_dtype(x))
    want = tuple(x.shape[:c]) + tuple(x.shape[c + 1:])
    if t.shape != want:
        also = f" or class probabilities of shape {tuple(x.shape)}" if probabilities else ""
        raise ValueError(f"{fn}: target must have shape {want} (class indices){also} for input of shape "
                         f"{tuple(x.shape)}, got shape {t.shape}")
    if t.dtype.kind not in "iuf" or t.size and (np.any(t != np.round(t)) or t.min() < 0 or t.max() >= classes):
        raise ValueError(f"{fn}: target must hold class indices in 0..{classes - 1}, "
                         f"got {t.tolist() if t.size <= 10 else t.dtype}")
    t = t.astype(np.int64).reshape(t.shape if c else (1,))
    grid = np.indices(t.shape)
    return (grid[0], t) + tuple(grid[1:]) if c else (np.zeros(1, np.int64), t), None


def _nll(logp, targets, reduction, smoothing):
    """-log p of the targets (see _class_targets), with label smoothing, reduced. An unbatched (C,)
    input is worked as a batch of one, its 'none' result given back 0-d."""
    index, probs = targets
    unbatched = logp.ndim == 1
    if unbatched:
        logp, probs = logp.reshape(1, -1), None if probs is None else probs.reshape(1, -1)
    classes = logp.shape[1]
    if probs is not None:  # -sum over classes of the (smoothed) probabilities times log p
        if smoothing:
            probs = (1 - smoothing) * probs + smoothing / classes
        terms = (logp * probs).sum(axis=1)
    else:
        terms = logp[index]
        if smoothing:  # (1 - e) log p[target] + e mean over classes of log p
            terms = (1 - smoothing) * terms + logp.sum(axis=1) * (smoothing / classes)
    out = _reduced(terms, reduction, sign=-1)
    return out.reshape(()) if reduction == "none" and unbatched else out


def _class_input(fn, input, reduction):
    (x,) = _inputs(fn, input=input)
    _choice(fn, "reduction", reduction, REDUCTIONS)
    if x.ndim < 1:
        raise ValueError(f"{fn}: input must have a class dim, got shape {tuple(x.shape)}")
    return x


@_labelled("loss")
def nll_loss(input, target, *, reduction="mean"):
    """-input[i, target[i]] reduced: input log-probabilities (N, classes[, d...]) or (classes,), target
    class indices (N[, d...]) or a 0-d index."""
    logp = _class_input("nll_loss", input, reduction)
    return _nll(logp, _class_targets("nll_loss", logp, target, probabilities=False), reduction, 0.0)


@_labelled("loss")
def cross_entropy(input, target, *, reduction="mean", label_smoothing=0.0):
    """nll_loss(log_softmax(input, class dim), target): input logits (N, classes[, d...]) or (classes,);
    target class indices (N[, d...]) or class probabilities (input's shape). label_smoothing e
    mixes the target with the uniform distribution: (1 - e) target + e / classes."""
    x = _class_input("cross_entropy", input, reduction)
    if not isinstance(label_smoothing, (int, float, np.floating)) or not 0 <= label_smoothing <= 1:
        raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got {label_smoothing!r}")
    targets = _class_targets("cross_entropy", x, target, probabilities=True)
    return _nll(log_softmax(x, 1 if x.ndim > 1 else 0), targets, reduction, float(label_smoothing))


@_labelled("loss")
def mse_loss(input, target, *, reduction="mean"):
    """(x - target) ** 2 reduced by ``reduction``; target the same shape as x."""
    (x,) = _inputs("mse_loss", input=input)
    _choice("mse_loss", "reduction", reduction, REDUCTIONS)
    return _reduced((x - _target_like("mse_loss", x, target)) ** 2, reduction)
