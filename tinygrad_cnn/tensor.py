"""The Tensor engine: numpy arrays in a computation graph.

A few primitives carry a backward rule, each written beside its forward computation
(``_PRIMITIVES`` below is the whole list); every other operation, conv and pooling
included, is composed from them, so its gradient comes from the chain rule.

A node made by a primitive keeps one rule per parent, ``rule(g, *saved) -> d loss / d parent``,
and the backward pass calls only the rules of parents that require a gradient.
"""
import itertools
import math
from contextlib import contextmanager

import numpy as np

from .autograd import Node, _layer
from .engine import Value

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


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _as_array(data, dtype):
    """A fresh float32 or float64 array of ``data`` (float64 unless data or dtype say float32)."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None:
        dtype = data.dtype if isinstance(data, np.ndarray) and data.dtype in _FLOATS else np.float64
    elif np.dtype(dtype) not in _FLOATS:
        raise ValueError(f"Tensor: dtype must be float32 or float64, got {np.dtype(dtype)}")
    try:
        return np.array(data, dtype=dtype)
    except (TypeError, ValueError) as e:  # a Value has no float(): Values fail here
        if _holds_values(data):
            raise TypeError("Tensor: cannot make a Tensor from Values (cannot mix Tensors and Values); "
                            "use the Value engine for them, or pass numbers") from None
        raise TypeError(f"Tensor: data must be numbers, got {type(data).__name__} ({e})") from None


def _holds_values(data):
    if isinstance(data, (list, tuple, np.ndarray)):
        return any(map(_holds_values, data))
    return isinstance(data, Value)


def sliding_windows(array, kernel, stride):
    """Read-only view of ``array`` (..., *spatial) as (..., *out, *kernel): every window of the last dims.

    out = (size - kernel) // stride + 1 along each of the len(kernel) last dims.
    """
    lead = array.ndim - len(kernel)
    counts, steps = [], []
    if lead >= 0 and len(stride) == len(kernel):
        for n, w, s, t in zip(array.shape[lead:], kernel, stride, array.strides[lead:]):
            if not 1 <= w <= n or s < 1:
                break
            counts.append((n - w) // s + 1)
            steps.append(t * s)
    if len(counts) != len(kernel) or not kernel:
        raise ValueError(f"windows: kernel {tuple(kernel)} with stride {tuple(stride)} does not fit "
                         f"the last dims of shape {array.shape}")
    shape = (*array.shape[:lead], *counts, *kernel)
    strides = (*array.strides[:lead], *steps, *array.strides[lead:])
    if array.flags.c_contiguous and array.dtype != object:  # the fast way to make a strided view
        view = np.ndarray(shape, array.dtype, array, 0, strides)
        view.flags.writeable = False
        return view
    return np.lib.stride_tricks.as_strided(array, shape, strides, writeable=False)


def _make(data, parents, op, rules, saved=()):
    """The output of a primitive: recorded in the graph when a parent requires grad.

    ``rules[i](g, *saved)`` is d loss / d parents[i] given g = d loss / d output.
    """
    out = Tensor.__new__(Tensor)
    out.data = data if type(data) is np.ndarray else np.asarray(data)  # numpy gives scalars for 0-d
    out.grad = out.name = out._pending = None
    out.layer = _layer[0]
    if _grad_enabled[0]:
        for p in parents:
            if p.requires_grad:
                out.requires_grad, out.parents, out.op, out._local = True, parents, op, (rules, saved)
                return out
    out.requires_grad, out.parents, out.op, out._local = False, (), "", None
    return out


class Tensor(Node):
    """An n-dimensional array in a computation graph (float64 unless given float32)."""

    __slots__ = ("requires_grad", "_local")
    __array_ufunc__ = None  # numpy defers to Tensor: ndarray + Tensor is Tensor.__radd__

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

    # --- plain attributes -----------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    T = property(lambda self: self.transpose())

    def __len__(self):
        return len(self.data)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def numpy(self):
        """The data array (shared, as torch's ``numpy()``)."""
        return self.data

    def item(self):
        return self.data.item()

    def detach(self):
        """The same data (shared, as in torch), cut from the graph."""
        with no_grad():
            return _make(self.data, (), "", ())

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=6, separator=', ')}{grad})"

    def _other(self, x):
        """The other operand as a Tensor: a number takes self's dtype (as in torch), arrays their own."""
        if isinstance(x, Tensor):
            return x
        if _is_number(x):
            return _make(np.array(x, dtype=self.data.dtype), (), "", ())
        if isinstance(x, np.ndarray) and x.dtype in _FLOATS:
            return _make(x.copy(), (), "", ())
        return Tensor(x)

    # --- primitives: forward, and the backward rule of each parent -------------------------
    def _binary(self, other, op):
        other = other if type(other) is Tensor else self._other(other)
        forward, dx, dy = _BINARY[op]
        x, y = self.data, other.data
        out = forward(x, y)
        return _make(out, (self, other), op, (dx, dy), (x, y, out))

    def _unary(self, op, *args):
        forward, dx = _UNARY[op]
        x = self.data
        out = forward(x, *args)
        return _make(out, (self,), op, (dx,), (x, out, *args))

    def sum(self, axis=None, keepdims=False):
        shape = self.data.shape
        return _make(_reduce(np.add, self.data, axis, keepdims), (self,), "sum",
                     (lambda g: _expand(_keep(g, shape, axis, keepdims), shape),))

    def max(self, axis=None, keepdims=False):
        """Largest entries along ``axis``; the gradient goes to the first largest (row-major)."""
        x = self.data
        return _make(_reduce(np.maximum, x, axis, keepdims), (self,), "max",
                     (lambda g: _first_argmax_mask(x, axis) * _keep(g, x.shape, axis, keepdims),))

    def __matmul__(self, other):
        other = self._other(other)
        x, y = self.data, other.data
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"matmul: operands must have at least 1 dim, got shapes {x.shape} and {y.shape}")
        if x.shape[-1] != y.shape[-2 if y.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {x.shape} and {y.shape} do not align "
                             f"({x.shape[-1]} != {y.shape[-2 if y.ndim > 1 else 0]})")
        if x.ndim == 1 or y.ndim == 1:  # a vector is a one-row (left) or one-column (right) matrix
            out = (self.reshape(1, -1) if x.ndim == 1 else self) @ (other.reshape(-1, 1) if y.ndim == 1 else other)
            return out.reshape(out.shape[:-2] + out.shape[-2:-1] * (x.ndim > 1) + out.shape[-1:] * (y.ndim > 1))
        return _make(x @ y, (self, other), "matmul",
                     (lambda g: g @ y.swapaxes(-1, -2), lambda g: x.swapaxes(-1, -2) @ g))

    def tensordot(self, other, axes=2):
        """Sum of products over self's ``axes[0]`` and other's ``axes[1]`` (np.tensordot); an int n
        pairs self's last n dims with other's first n. Output: self's free dims, then other's.

        One matrix product a @ b of the inputs as 2-D matrices (free dims x summed dims and
        summed dims x free dims); the rules are matmul's on those matrices."""
        other = self._other(other)
        x, y = self.data, other.data
        ax_x, ax_y = _contraction_axes(axes, x.shape, y.shape)
        free_x = [i for i in range(x.ndim) if i not in ax_x]
        free_y = [i for i in range(y.ndim) if i not in ax_y]
        a, b = _matrix(x, free_x, ax_x), _matrix(y, ax_y, free_y)
        by_cols_a, by_cols_b = _by_columns(a), _by_columns(b)
        out = _product(a, b, by_cols_a).reshape([x.shape[i] for i in free_x] + [y.shape[i] for i in free_y])
        rows, cols = list(range(len(free_x))), list(range(len(free_x), out.ndim))  # of the output's gradient
        return _make(out, (self, other), "tensordot", (
            lambda g: _unmatrix(_product(_matrix(g, rows, cols), b.T, by_cols_a), x.shape, free_x, ax_x, by_cols_a),
            lambda g: _unmatrix(_product(a.T, _matrix(g, rows, cols), by_cols_b), y.shape, ax_y, free_y, by_cols_b)))

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        before = self.data.shape
        return _make(self.data.reshape(shape), (self,), "reshape", (lambda g: g.reshape(before),))

    def transpose(self, *dims):
        """Swap two dims, as ``torch.transpose(dim0, dim1)``; given one tuple of all the dims (or
        nothing: reverse them) it permutes them, as numpy's ``transpose`` and ``permute`` do."""
        if len(dims) == 2 and all(isinstance(d, (int, np.integer)) for d in dims):
            order = list(range(self.ndim))
            order[dims[0]], order[dims[1]] = order[dims[1]], order[dims[0]]
            dims = (order,)
        return self.permute(*dims)

    def permute(self, *dims):
        """Reorder the dims: out.shape[i] = self.shape[dims[i]] (reverse them when none are given)."""
        axes = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        axes = tuple(axes) or tuple(reversed(range(self.ndim)))
        out = self.data.transpose(axes)
        inverse = _inverse(axes)
        return _make(out, (self,), "transpose", (lambda g: g.transpose(inverse),))

    def pad(self, pads, mode="constant"):
        """Pad with zeros (``mode="constant"``) or edge copies (``"edge"``); pads as np.pad's
        ((before, after) for each dim)."""
        if mode not in ("constant", "edge"):
            raise ValueError(f"pad: mode must be 'constant' or 'edge', got {mode!r}")
        pads = tuple((int(a), int(b)) for a, b in pads)
        if len(pads) != self.ndim or any(a < 0 or b < 0 for a, b in pads):
            raise ValueError(f"pad: need a (before, after) pair >= 0 for each of the {self.ndim} dims, got {pads}")
        return _make(np.pad(self.data, pads, mode=mode), (self,), f"pad({mode})",
                     (lambda g: _unpad(g, pads, mode),))

    def __getitem__(self, index):
        index = index.data if isinstance(index, Tensor) else index
        shape = self.data.shape

        def rule(g):
            out = np.zeros(shape, dtype=g.dtype)
            np.add.at(out, index, g)  # an index array may pick one entry twice: add, not assign
            return out
        return _make(self.data[index], (self,), "index", (rule,))

    def windows(self, kernel, stride=None):
        """Sliding windows over the last len(kernel) dims: (..., *spatial) -> (..., *out, *kernel),
        a view; stride defaults to kernel. The backward adds each window's gradient back."""
        kernel = tuple(kernel)
        stride = kernel if stride is None else tuple(stride)
        shape = self.data.shape
        return _make(sliding_windows(self.data, kernel, stride), (self,), "windows",
                     (lambda g: _scatter_windows(g, shape, kernel, stride),))

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
        count = math.prod(self.data.shape[a] for a in _axes(axis, self.ndim))
        return self.sum(axis=axis, keepdims=keepdims) / count

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge dims start_dim..end_dim into one (as torch.flatten)."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        return self.reshape(self.shape[:start] + (math.prod(self.shape[start:end + 1]),) + self.shape[end + 1:])

    # --- backward ------------------------------------------------------------------------------
    def backward(self, grad=None):
        """Add d self / d t to ``t.grad`` for every tensor t in the graph that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if grad is None:
            if self.size != 1:
                raise ValueError(f"backward: a gradient is needed for a non-scalar output of shape {self.shape}")
            grad = np.ones(self.shape, dtype=self.dtype)
        grad = np.array(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"backward: gradient shape {grad.shape} does not match output shape {self.shape}")
        self._backward(grad)

    def _push(self):
        g = self._pending
        rules, saved = self._local
        for parent, rule in zip(self.parents, rules):
            if parent.requires_grad:
                d = rule(g, *saved)
                if d.shape != parent.data.shape:  # the parent was broadcast in the forward pass
                    d = _unbroadcast(d, parent.data.shape)
                parent._pending = d if parent._pending is None else parent._pending + d

    def _accumulate(self):
        g, dtype = self._pending, self.data.dtype
        if type(g) is not np.ndarray or g.dtype is not dtype and g.dtype != dtype:
            g = np.asarray(g, dtype=dtype)
        if self.grad is not None:
            self.grad = self.grad + g
        else:  # a leaf gets its own array; an inner node's may share memory with its neighbours'
            self.grad = g if self.parents else g.copy()

    def _reset_grad(self):
        self.grad = None


def _is_number(x):
    return isinstance(x, (int, float, np.number, np.bool_))


# --- the elementwise rules: forward f(x[, y]) and, per input, rule(g, x, [y,] out) -> gradient ---
def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows: 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below
    return np.where(x >= 0, 1, e) / (1 + e)


_BINARY = {
    "+": (np.add, lambda g, x, y, out: g, lambda g, x, y, out: g),
    "-": (np.subtract, lambda g, x, y, out: g, lambda g, x, y, out: -g),
    "*": (np.multiply, lambda g, x, y, out: g * y, lambda g, x, y, out: g * x),
    "/": (np.divide, lambda g, x, y, out: g / y, lambda g, x, y, out: -g * out / y),
    "maximum": (np.maximum, lambda g, x, y, out: g * (x >= y), lambda g, x, y, out: g * (x < y)),
}
_UNARY = {
    "neg": (np.negative, lambda g, x, out: -g),
    "exp": (np.exp, lambda g, x, out: g * out),
    "log": (np.log, lambda g, x, out: g / x),
    "relu": (lambda x: np.maximum(x, 0), lambda g, x, out: g * (x > 0)),
    "leaky_relu": (lambda x, s: np.where(x > 0, x, x * s), lambda g, x, out, s: g * np.where(x > 0, 1, s)),
    "sigmoid": (_sigmoid, lambda g, x, out: g * out * (1 - out)),
    "tanh": (np.tanh, lambda g, x, out: g * (1 - out * out)),
    "pow": (lambda x, k: x ** k, lambda g, x, out, k: g * k * x ** (k - 1) if k else g * 0),
}
_PRIMITIVES = (*_BINARY, *_UNARY, "sum", "max", "matmul", "tensordot", "reshape", "transpose", "pad", "index",
               "windows")


# --- helpers of the rules ------------------------------------------------------------------------
def _unbroadcast(g, shape):
    """Sum a gradient of a broadcast result back to the input's shape."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes).reshape(shape) if axes else g


def _axes(axis, ndim):
    """``axis`` (None, an int or several) as a sorted tuple of non-negative dims."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        return tuple(sorted([a % ndim for a in axis]))
    return (axis % ndim,)


def _keep(g, shape, axis, keepdims):
    """A reduction's output gradient reshaped so that it broadcasts against the input."""
    if keepdims:
        return g
    if axis is None:
        return g.reshape((1,) * len(shape))
    reduced = _axes(axis, len(shape))
    return g.reshape([1 if i in reduced else n for i, n in enumerate(shape)])


def _expand(g, shape):
    """``g`` broadcast to ``shape`` as a new array (faster than np.broadcast_to for small arrays)."""
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g
    return out


# numpy reduces over short axes slowly (one inner loop per output): over pooling windows of a
# large array a few elementwise ufunc calls on whole slices run ~30x faster. That way go groups
# of at most _FEW entries in arrays of at least _MANY numbers (small arrays: numpy's call is cheaper).
_FEW, _MANY = 16, 1024


def _by_slices(x, axes):
    return x.size >= _MANY and 1 < math.prod([x.shape[a] for a in axes]) <= _FEW


def _cells(shape, axes):
    """Index tuples that pick, in row-major order, each combination of indices along ``axes``
    (kept as dims of length 1) with all of every other dim."""
    for combo in itertools.product(*(range(shape[a]) for a in axes)):
        index = [slice(None)] * len(shape)
        for a, i in zip(axes, combo):
            index[a] = slice(i, i + 1)
        yield tuple(index)


def _reduce(ufunc, x, axis, keepdims):
    """``ufunc.reduce`` of x over ``axis`` (np.add: sum, np.maximum: max) with numpy's axis/keepdims."""
    axes = _axes(axis, x.ndim)
    if not _by_slices(x, axes):
        return ufunc.reduce(x, axis=axes, keepdims=keepdims)
    first, second, *rest = _cells(x.shape, axes)
    out = ufunc(x[first], x[second])
    for index in rest:
        ufunc(out, x[index], out=out)
    return out if keepdims else out.reshape([n for a, n in enumerate(x.shape) if a not in axes])


def _first_argmax_mask(x, axis):
    """True at the first (row-major) largest entry of each reduced group, False elsewhere."""
    axes = _axes(axis, x.ndim)
    if _by_slices(x, axes):  # walk each group in row-major order: its first entry equal to the max
        top = _reduce(np.maximum, x, axes, keepdims=True)
        mask, taken = np.zeros(x.shape, dtype=bool), np.zeros(top.shape, dtype=bool)
        for index in _cells(x.shape, axes):
            # equal to the max (a NaN, when the max is NaN, as argmax picks), and none before
            hit = np.greater((x[index] == top) | np.isnan(x[index]), taken, out=mask[index])
            taken |= hit
        return mask
    order = tuple(a for a in range(x.ndim) if a not in axes) + axes  # the reduced dims last
    moved = x.transpose(order)
    flat = moved.reshape(moved.shape[:x.ndim - len(axes)] + (-1,))
    mask = (np.arange(flat.shape[-1]) == flat.argmax(-1)[..., None]).reshape(moved.shape)
    return mask if order == tuple(range(x.ndim)) else mask.transpose(_inverse(order))


def _contraction_axes(axes, shape_x, shape_y):
    """tensordot's ``axes`` as two lists of dims, checked against the shapes."""
    if isinstance(axes, (int, np.integer)):
        if not 0 <= axes <= min(len(shape_x), len(shape_y)):
            raise ValueError(f"tensordot: cannot contract {axes} dims of shapes {shape_x} and {shape_y}")
        ax_x, ax_y = list(range(len(shape_x) - axes, len(shape_x))), list(range(axes))
    else:
        ax_x, ax_y = [[a] if isinstance(a, (int, np.integer)) else list(a) for a in axes]
        if len(ax_x) != len(ax_y):
            raise ValueError(f"tensordot: axes {axes} pair {len(ax_x)} dims with {len(ax_y)}")
        ax_x, ax_y = [a % len(shape_x) for a in ax_x], [a % len(shape_y) for a in ax_y]
    if [shape_x[i] for i in ax_x] != [shape_y[j] for j in ax_y]:
        raise ValueError(f"tensordot: dims {ax_x} of shape {shape_x} do not match dims {ax_y} of shape {shape_y}")
    return ax_x, ax_y


def _run(x, dims):
    """How many adjacent numbers in memory the last of ``dims`` spans (0 unless its stride is one number)."""
    return x.shape[dims[-1]] if dims and x.strides[dims[-1]] == x.itemsize else 0


def _matrix(x, rows, cols):
    """x as a 2-D matrix: the dims ``rows`` (flattened) by the dims ``cols``; a view when x's layout
    allows, else a copy. numpy copies fastest along long runs of adjacent numbers, so when the rows'
    last dim runs longer than the columns' (conv windows: the output width against the kernel
    width) the copy is made column by column and the matrix is its transpose (8x faster there)."""
    k = math.prod([x.shape[i] for i in cols])
    m = x.size // k if k else math.prod([x.shape[i] for i in rows])
    if _run(x, rows) > _run(x, cols):
        return x.transpose(cols + rows).reshape(k, m).T
    return x.transpose(rows + cols).reshape(m, k)


def _by_columns(matrix):
    """Whether a 2-D array is laid out column by column (the transpose of a row-by-row one)."""
    return matrix.flags.f_contiguous and not matrix.flags.c_contiguous


def _unmatrix(d, shape, rows, cols, by_columns):
    """The inverse of _matrix: a (rows x cols) matrix laid out as said back to an array of ``shape``."""
    d, order = (d.T, cols + rows) if by_columns else (d, rows + cols)
    return d.reshape([shape[i] for i in order]).transpose(_inverse(order))


def _product(p, q, by_columns):
    """p @ q, laid out column by column or row by row, so that _unmatrix needs no copy."""
    return (q.T @ p.T).T if by_columns else p @ q


def _inverse(perm):
    """The permutation that undoes ``perm``."""
    return sorted(range(len(perm)), key=perm.__getitem__)


def _unpad(g, pads, mode):
    """The adjoint of np.pad: slice out the centre and, for edge padding, add the copies back."""
    for axis, (before, after) in enumerate(pads):
        if before == after == 0:
            continue
        n = g.shape[axis]
        centre = np.take(g, range(before, n - after), axis=axis)
        if mode == "edge":
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

    One strided write per kernel offset (as many as kernel entries, each a whole array): an add
    where windows overlap (stride < kernel), else a plain copy, since no entry is written twice.
    """
    k = len(kernel)
    out = np.zeros(shape, dtype=g.dtype)
    counts = g.shape[g.ndim - 2 * k:g.ndim - k]
    overlap = any(s < w for s, w in zip(stride, kernel))
    for offset in itertools.product(*map(range, kernel)):
        target = (Ellipsis,) + tuple(slice(o, o + s * (c - 1) + 1, s) for o, s, c in zip(offset, stride, counts))
        if overlap:
            out[target] += g[(Ellipsis,) + offset]
        else:
            out[target] = g[(Ellipsis,) + offset]
    return out
