"""Arrays of scalar ``Value`` nodes with the Tensor's primitive methods.

A ``ValueArray`` is a numpy object array of Values (indexing, shapes, broadcasting and
arithmetic are numpy's, each scalar op one graph node) that also has the methods the layers
call on a Tensor: pad, windows, tensordot, sum, max, maximum, reshape, permute, the unary ops,
``numbers()``, ``grads()``, ``zero_grad()``. So ``nn.functional`` writes each layer once.
"""
from itertools import product, repeat
from operator import methodcaller
from numbers import Real

import numpy as np

from . import backend as B
from .composed import Composed
from .engine import Held, Value
from .exact import EXACT, rational, rationals

_max = np.frompyfunc(lambda a, b: a.max(b), 2, 1)  # elementwise Value.max: a tie goes to the left operand
_UNARY = {name: np.frompyfunc(methodcaller(name), 1, 1) for name in ("exp", "log", "relu", "sigmoid", "tanh")}


class ValueArray(Composed, np.ndarray):
    """A numpy object array of ``Value``; made by ``values()``. Reductions over every dim give a Value."""

    def is_exact(self):
        """Whether the Values hold exact numbers (Fractions: ``values(..., dtype="exact")``)."""
        return self.size > 0 and type(self.flat[0].data) is not float

    def numbers(self):
        """The Values' ``.data`` as a new float64 array of the same shape."""
        return np.array([v.data for v in self.flat], dtype=np.float64).reshape(self.shape)

    def grads(self):
        """The Values' ``.grad`` as a new float64 array of the same shape."""
        return np.array([v.grad for v in self.flat], dtype=np.float64).reshape(self.shape)

    def zero_grad(self):
        """Set every element's ``.grad`` to 0.0 (the elements only, not the graph behind them)."""
        for v in self.flat:
            v.grad = 0.0

    def copy_(self, array):
        """Overwrite the Values' ``.data`` in place with the numbers of ``array`` (same shape)."""
        numbers = np.broadcast_to(np.asarray(array, dtype=np.float64), self.shape)
        exact = self.is_exact()
        for v, x in zip(self.flat, (rationals(numbers) if exact else numbers).flat):
            v.data = x if exact else float(x)
        return self

    def backward(self, grad=None):
        """Backpropagate from the one Value of a size-1 array or, given ``grad`` (d loss / d self, of
        self's shape), from sum(self * grad), as Tensor.backward(grad)."""
        if grad is None:
            if self.size != 1:
                raise ValueError(f"backward: a gradient is needed for an array of shape {self.shape}")
            return self.flat[0].backward()
        grad = np.asarray(grad, dtype=np.float64)
        if grad.shape != self.shape:
            raise ValueError(f"backward: gradient shape {grad.shape} does not match the array's shape {self.shape}")
        (self * grad).sum().backward()

    # --- the primitives of the Tensor engine, on Values ----------------------------------------
    def pad(self, pads, value=0.0):
        """Pad with a constant leaf Value of ``value`` (one node, shared); pads as np.pad's."""
        pads = tuple((int(a), int(b)) for a, b in pads)
        if len(pads) != self.ndim or any(a < 0 or b < 0 for a, b in pads):
            raise ValueError(f"pad: need a (before, after) pair >= 0 for each of the {self.ndim} dims, got {pads}")
        if not any(a or b for a, b in pads):
            return self
        out = np.empty(tuple(n + a + b for n, (a, b) in zip(self.shape, pads)), dtype=object)
        out[...] = Value(rational(value) if self.is_exact() else float(value))
        out[tuple(slice(a, a + n) for n, (a, _) in zip(self.shape, pads))] = self
        return out.view(ValueArray)

    def windows(self, kernel, stride=None, dilation=None):
        """Sliding windows over the last len(kernel) dims: (..., *spatial) -> (..., *out, *kernel), a view."""
        kernel = tuple(kernel)
        return B.sliding_windows(self, kernel, kernel if stride is None else tuple(stride), dilation)

    def tensordot(self, other, axes=2):
        """np.tensordot: sums of products, one node per multiply and add."""
        ax = B.contraction_axes(axes, self.shape, np.shape(other))
        return _wrap(np.tensordot(self.view(np.ndarray), np.asarray(other), ax))

    def sum(self, axis=None, keepdims=False, out=None):  # out: numpy's np.sum(array) passes None
        """Sum along ``axis`` (left to right: one node per add); over every dim a Value."""
        axes = B.dims(axis, self.ndim, "sum")
        out = np.add.reduce(self.view(np.ndarray), axis=axes, keepdims=keepdims)
        return _wrap(out, keepdims or self.ndim > len(axes))

    def max(self, axis=None, keepdims=False, out=None):  # out: numpy's np.max(array) passes None
        """Largest along ``axis``: a chain of Value.max in row-major order, so the first largest wins a tie."""
        axes = B.dims(axis, self.ndim, "max")
        rest = tuple(a for a in range(self.ndim) if a not in axes)
        moved = self.view(np.ndarray).transpose(rest + axes)
        flat = moved.reshape(moved.shape[:len(rest)] + (-1,))
        out = _max.reduce(flat, axis=-1) if flat.shape[-1] > 1 else flat[..., 0]
        if keepdims:
            out = np.reshape(out, [1 if a in axes else n for a, n in enumerate(self.shape)])
        return _wrap(out, keepdims or bool(rest))

    def maximum(self, other):
        """Elementwise larger of self and other; on a tie the gradient goes to self."""
        return _wrap(_max(self.view(np.ndarray), other))

    def held_max(self, axes):
        """The max along ``axes`` as constant leaves, one per element (self's shape), as numbers
        subtracted from self would make: softmax's shift. Each is a ``Held`` naming the Values it is
        the max of (a NaN among them wins, as np.maximum's)."""
        top = np.broadcast_to(B.reduce(np.maximum, self.numbers(), axes, keepdims=True), self.shape)
        exact, rows, out = self.is_exact(), {}, np.empty(self.shape, dtype=object)
        for index in np.ndindex(self.shape):
            row = tuple(-1 if a in axes else i for a, i in enumerate(index))
            if row not in rows:
                rows[row] = tuple(np.asarray(self[tuple(slice(None) if i < 0 else i for i in row)]).flat)
            out[index] = Held(rational(top[index]) if exact else float(top[index]), rows[row])
        return out.view(ValueArray)

    def permute(self, *dims):
        """Reorder the dims: out.shape[i] = self.shape[dims[i]] (reverse them when none are given)."""
        order = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        order = B.permutation(order, self.ndim) if order else tuple(reversed(range(self.ndim)))
        return np.ndarray.transpose(self, order)

    def view(self, *args, **kwargs):
        """numpy's view for a dtype or class; given a shape, torch's view (a reshape)."""
        if args and (isinstance(args[0], (int, np.integer)) or isinstance(args[0], (tuple, list))):
            return self.reshape(*args)
        return np.ndarray.view(self, *args, **kwargs)

    def expand(self, *sizes):
        """Broadcast to ``sizes`` (-1 keeps a dim): a read-only view; each Value fans out."""
        sizes = sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        lead = len(sizes) - self.ndim
        shape = tuple(n if s == -1 else s for s, n in zip(sizes, (None,) * lead + self.shape))
        try:
            return np.broadcast_to(self, shape, subok=True)
        except (ValueError, TypeError):
            raise ValueError(f"expand: cannot expand shape {self.shape} to {tuple(sizes)}") from None

    def _each(self, ufunc):
        """An elementwise Value method over the array (one node per element)."""
        return _wrap(ufunc(self.view(np.ndarray)))

    exp = lambda self: self._each(_UNARY["exp"])
    log = lambda self: self._each(_UNARY["log"])
    relu = lambda self: self._each(_UNARY["relu"])
    sigmoid = lambda self: self._each(_UNARY["sigmoid"])
    tanh = lambda self: self._each(_UNARY["tanh"])

    def leaky_relu(self, negative_slope=0.01):
        return self._each(np.frompyfunc(methodcaller("leaky_relu", negative_slope), 1, 1))


def _wrap(out, array=True):
    """numpy's result as a ValueArray; a result with no dims (a reduction over all) as its Value."""
    if not array:
        return out[()] if isinstance(out, np.ndarray) else out
    return np.asarray(out, dtype=object).view(ValueArray)


def values(array_like, name=None, dtype=None):
    """A ``ValueArray`` of leaf Values with the shape of ``array_like``.

    With ``name="X"`` the leaves are named ``X[0,0]``, ``X[0,1]``, ... (``X`` for a 0-d input).
    ``dtype="exact"``: the data are Fractions, the decimals written (see ``exact``); else floats.
    """
    if dtype is not None and not (isinstance(dtype, str) and dtype == EXACT) and np.dtype(dtype) != np.float64:
        raise ValueError(f"values: dtype must be float64 or 'exact', got {dtype!r}")
    try:
        data = np.asarray(array_like)
    except ValueError as e:  # a ragged nesting of lists
        raise ValueError(f"values: array_like must be a rectangular array of numbers ({e})") from None
    if data.dtype.kind not in "biuf":  # bool, int, unsigned, float: numbers already
        for x in data.flat:
            if not isinstance(x, (Real, np.bool_)):
                raise TypeError(f"values: array_like must hold real numbers, got {type(x).__name__}")
    exact = isinstance(dtype, str) and dtype == EXACT
    numbers = (rationals(data) if exact else data.astype(np.float64)).ravel().tolist()  # row-major
    indices = product(*map(range, data.shape))  # row-major, as numbers; one () for a 0-d input
    labels = repeat(None) if name is None else (f"{name}[{','.join(map(str, i))}]" if i else name for i in indices)
    leaves = [Value(x, name=label) for x, label in zip(numbers, labels)]
    out = np.empty(len(leaves), dtype=object)
    out[:] = leaves
    return out.reshape(data.shape).view(ValueArray)


def as_value_array(x):
    """``x`` as a ValueArray when it is one, a Value, or an object array of Values only; else None."""
    if isinstance(x, ValueArray):
        return x
    if isinstance(x, Value):
        out = np.empty((), dtype=object)
        out[()] = x
        return out.view(ValueArray)
    if isinstance(x, np.ndarray) and x.dtype == object and all(isinstance(v, Value) for v in x.flat):
        return x.view(ValueArray)
    return None
