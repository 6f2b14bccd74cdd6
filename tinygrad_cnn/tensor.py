"""The Tensor engine: numpy arrays in a computation graph.

A few primitives carry a backward rule, each written beside its forward computation
(``_PRIMITIVES`` below is the whole list); every other operation, conv and pooling
included, is composed from them, so its gradient comes from the chain rule.
"""
import itertools
from contextlib import contextmanager

import numpy as np

from .autograd import Node, _layer

_grad_enabled = [True]


@contextmanager
def no_grad():
    """Inside this block operations record no graph (as ``torch.no_grad``)."""
    before = _grad_enabled[0]
    _grad_enabled[0] = False
    try:
        yield
    finally:
        _grad_enabled[0] = before


def _as_array(data, dtype):
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, np.ndarray) and data.dtype == object:
        raise TypeError("Tensor: got a numpy object array (Values?); use the Value engine or pass numbers")
    if dtype is None:
        arr = np.asarray(data)
        dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    try:
        return np.array(data, dtype=dtype)
    except (TypeError, ValueError) as e:
        raise TypeError(f"Tensor: data must be numbers, got {type(data).__name__} ({e})") from None


def sliding_windows(array, kernel, stride):
    """View of ``array`` (..., *spatial) as (..., *out, *kernel): each window of the last dims."""
    k = len(kernel)
    axes = tuple(range(array.ndim - k, array.ndim))
    view = np.lib.stride_tricks.sliding_window_view(array, kernel, axis=axes)
    return view[(Ellipsis,) + tuple(slice(None, None, s) for s in stride) + (slice(None),) * k]


class Tensor(Node):
    """An n-dimensional array in a computation graph (float64 unless given float32)."""

    __slots__ = ("requires_grad", "_local")

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        self.data = _as_array(data, dtype)
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self.parents = ()
        self.op = ""
        self._local = None
        self.name = name
        self.layer = _layer[0]
        self._pending = None

    @classmethod
    def _result(cls, data, parents, op, rule):
        """The output of an op: recorded in the graph when a parent needs a gradient."""
        out = cls.__new__(cls)
        out.data, out.grad, out.name, out.layer, out._pending = data, None, None, _layer[0], None
        if _grad_enabled[0] and any(p.requires_grad for p in parents):
            out.requires_grad, out.parents, out.op, out._local = True, parents, op, rule
        else:
            out.requires_grad, out.parents, out.op, out._local = False, (), "", None
        return out

    # --- plain attributes -----------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    T = property(lambda self: self.transpose())

    def __len__(self):
        return len(self.data)

    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data, dtype=self.dtype)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=6, separator=', ')}{grad})"

    def _other(self, x):
        return x if isinstance(x, Tensor) else Tensor(np.asarray(x, dtype=self.dtype) if _is_number(x) else x)

    # --- primitives: forward, and backward rule g -> grads of the parents -------------------
    def _binary(self, other, op):
        a, b = self, self._other(other)
        forward, rule = _BINARY[op]
        x, y = a.data, b.data
        out = forward(x, y)
        return Tensor._result(out, (a, b), op, lambda g: rule(g, x, y, out))

    def _unary(self, op, *args):
        forward, rule = _UNARY[op]
        x = self.data
        out = forward(x, *args)
        return Tensor._result(out, (self,), op, lambda g: (rule(g, x, out, *args),))

    def sum(self, axis=None, keepdims=False):
        out = np.sum(self.data, axis=axis, keepdims=keepdims)
        shape = self.shape
        return Tensor._result(np.asarray(out), (self,), "sum",
                              lambda g: (np.broadcast_to(_keep(g, shape, axis, keepdims), shape),))

    def max(self, axis=None, keepdims=False):
        """Largest entries along ``axis``; the gradient goes to the first largest (row-major)."""
        x = self.data
        out = np.max(x, axis=axis, keepdims=keepdims)
        return Tensor._result(np.asarray(out), (self,), "max",
                              lambda g: (_first_argmax_mask(x, axis) * _keep(g, x.shape, axis, keepdims),))

    def __matmul__(self, other):
        a, b = self, self._other(other)
        x, y = a.data, b.data
        if x.ndim < 2 or y.ndim < 2:
            raise ValueError(f"matmul: both operands need at least 2 dims, got shapes {x.shape} and {y.shape}")
        if x.shape[-1] != y.shape[-2]:
            raise ValueError(f"matmul: shapes {x.shape} and {y.shape} do not align ({x.shape[-1]} != {y.shape[-2]})")
        return Tensor._result(x @ y, (a, b), "matmul",
                              lambda g: (g @ np.swapaxes(y, -1, -2), np.swapaxes(x, -1, -2) @ g))

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        before = self.shape
        return Tensor._result(self.data.reshape(shape), (self,), "reshape", lambda g: (g.reshape(before),))

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        axes = tuple(axes) or tuple(reversed(range(self.ndim)))
        inverse = tuple(np.argsort(axes))
        return Tensor._result(self.data.transpose(axes), (self,), "transpose", lambda g: (g.transpose(inverse),))

    def pad(self, pads, mode="constant"):
        """Pad with zeros (``mode="constant"``) or edge copies (``"edge"``); pads as np.pad's."""
        pads = tuple(tuple(p) for p in pads)
        return Tensor._result(np.pad(self.data, pads, mode=mode), (self,), f"pad({mode})",
                              lambda g: (_unpad(g, pads, mode),))

    def __getitem__(self, index):
        index = index.data if isinstance(index, Tensor) else index
        shape, dtype = self.shape, self.dtype

        def rule(g):
            out = np.zeros(shape, dtype=dtype)
            np.add.at(out, index, g)
            return (out,)
        return Tensor._result(self.data[index], (self,), "index", rule)

    def windows(self, kernel, stride):
        """Sliding windows over the last len(kernel) dims: (..., *out, *kernel), a view."""
        shape = self.shape
        out = sliding_windows(self.data, kernel, stride)
        return Tensor._result(out, (self,), "windows", lambda g: (_scatter_windows(g, shape, kernel, stride),))

    # --- composed ------------------------------------------------------------------------------
    __add__ = lambda self, o: self._binary(o, "+")
    __sub__ = lambda self, o: self._binary(o, "-")
    __mul__ = lambda self, o: self._binary(o, "*")
    __truediv__ = lambda self, o: self._binary(o, "/")
    __radd__ = lambda self, o: self._other(o)._binary(self, "+")
    __rsub__ = lambda self, o: self._other(o)._binary(self, "-")
    __rmul__ = lambda self, o: self._other(o)._binary(self, "*")
    __rtruediv__ = lambda self, o: self._other(o)._binary(self, "/")
    __rmatmul__ = lambda self, o: self._other(o) @ self
    __neg__ = lambda self: self._unary("neg")
    exp = lambda self: self._unary("exp")
    log = lambda self: self._unary("log")
    relu = lambda self: self._unary("relu")
    sigmoid = lambda self: self._unary("sigmoid")
    tanh = lambda self: self._unary("tanh")

    def __pow__(self, k):
        if isinstance(k, Tensor) or not _is_number(k):
            raise TypeError(f"Tensor ** {type(k).__name__}: the exponent must be a number")
        return self._unary("pow", float(k))

    def leaky_relu(self, negative_slope=0.01):
        return self._unary("leaky_relu", float(negative_slope))

    def maximum(self, other):
        """Elementwise larger of self and other; on a tie the gradient goes to self."""
        return self._binary(other, "maximum")

    def mean(self, axis=None, keepdims=False):
        count = self.data.size // max(np.asarray(self.data.sum(axis=axis)).size, 1) if self.size else 0
        return self.sum(axis=axis, keepdims=keepdims) / count

    def flatten(self, start_dim=0):
        return self.reshape(self.shape[:start_dim] + (-1,))

    # --- backward ------------------------------------------------------------------------------
    def backward(self, grad=None):
        """Add d self / d t to ``t.grad`` for every tensor t in the graph that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if grad is None:
            if self.size != 1:
                raise ValueError(f"backward: a gradient is needed for a non-scalar output of shape {self.shape}")
            grad = np.ones(self.shape, dtype=self.dtype)
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"backward: gradient shape {grad.shape} does not match output shape {self.shape}")
        self._backward(grad)

    def _push(self):
        for parent, g in zip(self.parents, self._local(self._pending)):
            if parent.requires_grad:
                g = _unbroadcast(g, parent.shape)
                parent._pending = g if parent._pending is None else parent._pending + g

    def _accumulate(self):
        g = np.asarray(self._pending, dtype=self.dtype)
        self.grad = g.copy() if self.grad is None else self.grad + g

    def _reset_grad(self):
        self.grad = None


def _is_number(x):
    return isinstance(x, (int, float, np.number, np.bool_)) and not isinstance(x, np.ndarray)


# --- the rules: forward f(x, y) and backward rule(g, x, y, out) -> (dx, dy) ----------------
def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


_BINARY = {
    "+": (np.add, lambda g, x, y, out: (g, g)),
    "-": (np.subtract, lambda g, x, y, out: (g, -g)),
    "*": (np.multiply, lambda g, x, y, out: (g * y, g * x)),
    "/": (np.divide, lambda g, x, y, out: (g / y, -g * out / y)),
    "maximum": (np.maximum, lambda g, x, y, out: (g * (x >= y), g * (x < y))),
}
_UNARY = {
    "neg": (np.negative, lambda g, x, out: -g),
    "exp": (np.exp, lambda g, x, out: g * out),
    "log": (np.log, lambda g, x, out: g / x),
    "relu": (lambda x: np.maximum(x, 0), lambda g, x, out: g * (x > 0)),
    "leaky_relu": (lambda x, s: np.where(x > 0, x, x * s), lambda g, x, out, s: g * np.where(x > 0, 1, s)),
    "sigmoid": (_sigmoid, lambda g, x, out: g * out * (1 - out)),
    "tanh": (np.tanh, lambda g, x, out: g * (1 - out * out)),
    "pow": (lambda x, k: x ** k, lambda g, x, out, k: g * k * x ** (k - 1)),
}
_PRIMITIVES = (*_BINARY, *_UNARY, "sum", "max", "matmul", "reshape", "transpose", "pad", "index", "windows")


def _unbroadcast(g, shape):
    """Sum a gradient of a broadcast result back to the input's shape."""
    if g.shape == shape:
        return g
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, (n, m) in enumerate(zip(shape, g.shape)) if n == 1 and m != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(a % ndim for a in ((axis,) if np.ndim(axis) == 0 else axis)))


def _keep(g, shape, axis, keepdims):
    """A reduction's output gradient reshaped so that it broadcasts against the input."""
    if keepdims:
        return g
    return np.expand_dims(g, _axes(axis, len(shape))) if len(shape) else g


def _first_argmax_mask(x, axis):
    """1 at the first (row-major) largest entry of each reduced group, 0 elsewhere."""
    axes = _axes(axis, x.ndim)
    kept = tuple(a for a in range(x.ndim) if a not in axes)
    moved = x.transpose(kept + axes)
    flat = moved.reshape(moved.shape[:len(kept)] + (-1,))
    mask = np.zeros_like(flat)
    np.put_along_axis(mask, np.argmax(flat, axis=-1)[..., None], 1, axis=-1)
    return mask.reshape(moved.shape).transpose(np.argsort(kept + axes))


def _unpad(g, pads, mode):
    """The adjoint of np.pad: slice out the centre and, for edge padding, add the copies back."""
    for axis, (before, after) in enumerate(pads):
        if before == after == 0:
            continue
        n = g.shape[axis]
        centre = np.take(g, range(before, n - after), axis=axis)
        if mode == "edge":
            centre = centre.copy()
            first = [slice(None)] * g.ndim
            first[axis] = slice(0, 1)
            last = list(first)
            last[axis] = slice(-1, None)
            centre[tuple(first)] += np.take(g, range(0, before), axis=axis).sum(axis=axis, keepdims=True)
            centre[tuple(last)] += np.take(g, range(n - after, n), axis=axis).sum(axis=axis, keepdims=True)
        g = centre
    return g


def _scatter_windows(g, shape, kernel, stride):
    """The adjoint of sliding_windows: add each window's gradient back where it was read from.

    One strided add per kernel offset (as many adds as kernel entries, each a whole array).
    """
    k = len(kernel)
    out = np.zeros(shape, dtype=g.dtype)
    counts = g.shape[-2 * k:-k]
    for offset in itertools.product(*(range(n) for n in kernel)):
        target = tuple(slice(o, o + s * (c - 1) + 1, s) for o, s, c in zip(offset, stride, counts))
        out[(Ellipsis,) + target] += g[(Ellipsis,) + offset]
    return out
