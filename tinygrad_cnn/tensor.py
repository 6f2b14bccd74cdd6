"""The Tensor engine: numpy arrays in a computation graph.

A few primitives carry a backward rule; ``PRIMITIVES`` below is the whole list, each entry its
forward computation beside one backward rule per input. Every other operation, conv and
pooling included, is composed from them, so its gradient comes from the chain rule. The numpy
kernels they call live in ``backend``.
"""

import numpy as np

from . import backend as B
from .exact import EXACT, rational, rationals, real, settle
from .autograd import Node, _grad_enabled, _layer, no_grad
from .composed import Composed

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_EXACT = np.dtype(object)  # the dtype of exact data (Fractions); dtypes are singletons, so ``is`` tells


def _pow_base(g, x, y, out):
    """d x**y / dx = y x**(y-1), 0 where y = 0 (also at x = 0, where 0 * 0**-1 would be nan)."""
    return g * np.where(y == 0, 0, y * x ** np.where(y == 0, 1, y - 1))


def _pow_exponent(g, x, y, out):
    """d x**y / dy = x**y ln x, 0 where x = 0 and y >= 0 (as PyTorch)."""
    zero = (x == 0) & (y >= 0)
    return g * np.where(zero, 0, out * np.log(np.where(zero, 1, x)))


# name: (forward(*input arrays, *args) -> (output, saved), then per input: rule(g, *saved) -> gradient)
# g is d loss / d output; a rule returns d loss / d that input (summed back over broadcast dims).
PRIMITIVES = {
    "+": (lambda x, y: (x + y, ()), lambda g: g, lambda g: g),
    "-": (lambda x, y: (x - y, ()), lambda g: g, lambda g: -g),
    "*": (lambda x, y: (x * y, (x, y)), lambda g, x, y: g * y, lambda g, x, y: g * x),
    "/": (lambda x, y: ((q := x / y), (y, q)), lambda g, y, q: g / y, lambda g, y, q: -g * q / y),
    "**": (lambda x, y: ((p := x ** y), (x, y, p)), _pow_base, _pow_exponent),
    "maximum": (lambda x, y: (np.maximum(x, y), (x, y)),  # a tie goes to x
                lambda g, x, y: g * (x >= y), lambda g, x, y: g * (x < y)),
    "matmul": (lambda x, y: (x @ y, (x, y)),
               lambda g, x, y: g @ y.swapaxes(-1, -2), lambda g, x, y: x.swapaxes(-1, -2) @ g),
    "neg": (lambda x: (-x, ()), lambda g: -g),
    "exp": (lambda x: ((e := np.exp(real(x))), (e,)), lambda g, e: g * e),  # real(): an exact array as float64
    "log": (lambda x: (np.log(real(x)), (real(x),)), lambda g, x: g / x),
    "relu": (lambda x: (np.maximum(x, np.zeros_like(x)), (x,)),  # numpy's max with an array of zeros runs
             lambda g, x: g * (x > 0)),                            # ~3x faster than with the number 0
    "leaky_relu": (lambda x, s: (np.where(x > 0, x, x * s), (x, s)), lambda g, x, s: g * np.where(x > 0, 1, s)),
    "sigmoid": (lambda x: ((s := B.sigmoid(real(x))), (s,)), lambda g, s: g * s * (1 - s)),
    "tanh": (lambda x: ((t := np.tanh(real(x))), (t,)), lambda g, t: g * (1 - t * t)),
    "sum": (lambda x, axes, keepdims: (B.reduce(np.add, x, axes, keepdims), (x.shape, axes, keepdims)),
            lambda g, shape, axes, keepdims: B.expand(B.keep(g, shape, axes, keepdims), shape)),
    "max": (lambda x, axes, keepdims: (B.reduce(np.maximum, x, axes, keepdims), (x, axes, keepdims)),  # to the
            lambda g, x, axes, keepdims: B.first_argmax_mask(x, axes) * B.keep(g, x.shape, axes, keepdims)),  # first
    "tensordot": (B.tensordot, B.tensordot_adjoint_x, B.tensordot_adjoint_y),
    "reshape": (lambda x, shape: (x.reshape(shape), (x.shape,)), lambda g, shape: g.reshape(shape)),
    "permute": (lambda x, order: (x.transpose(order), (B.inverse(order),)), lambda g, undo: g.transpose(undo)),
    "pad": (lambda x, pads, value: (np.pad(x, pads, constant_values=value), (pads,)), B.unpad),
    "index": (lambda x, index: (x[index], (x.shape, index)), B.index_adjoint),
    "windows": (lambda x, kernel, stride, dilation: (B.sliding_windows(x, kernel, stride, dilation),
                                                     (x.shape, kernel, stride, dilation)), B.scatter_windows),
}
_BROADCASTING = {"+", "-", "*", "/", "**", "maximum", "matmul"}  # their rules' gradients are summed back


def _as_array(data, dtype):
    """A fresh float32 or float64 array of ``data`` (float64 unless data or dtype say float32), or
    with dtype "exact" an object array of Fractions (see ``exact``)."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(dtype, str) and dtype == EXACT:
        return rationals(data)
    if dtype is None:
        dtype = data.dtype if isinstance(data, np.ndarray) and data.dtype in _FLOATS else np.float64
    elif np.dtype(dtype) not in _FLOATS:
        raise ValueError(f"Tensor: dtype must be float32, float64 or 'exact', got {np.dtype(dtype)}")
    try:
        return np.array(data, dtype=dtype)
    except (TypeError, ValueError) as e:  # a Value has no float(): Values fail here
        kinds = {type(v).__name__ for v in np.asarray(data, dtype=object).flat} if isinstance(
            data, (list, tuple, np.ndarray)) else {type(data).__name__}
        if "Value" in kinds:
            raise TypeError("Tensor: cannot make a Tensor from Values (cannot mix Tensors and Values); "
                            "use the Value engine for them, or pass numbers") from None
        raise TypeError(f"Tensor: data must be numbers, got {type(data).__name__} ({e})") from None


def _node(data, parents, op, entry, saved):
    """The output of an op: recorded in the graph when a parent requires grad.

    ``entry`` is the op's (forward, rule for parent 0, rule for parent 1, ...): ``entry[i + 1](g,
    *saved)`` is d loss / d parents[i] given g = d loss / d output.
    """
    out = Tensor.__new__(Tensor)
    out.data = data if type(data) is np.ndarray else np.asarray(data)  # numpy gives scalars for 0-d
    if out.data.dtype is _EXACT:  # exact numbers stay exact until they meet a float
        out.data = settle(out.data)
    out.grad = out.name = out._pending = out._a = None
    out.layer = _layer[0]
    if _grad_enabled[0]:
        for p in parents:
            if p.requires_grad:
                out.requires_grad, out._b, out.op, out._local = True, parents, op, (entry, saved)
                return out
    out.requires_grad, out._b, out.op, out._local = False, None, "", None
    return out


def _apply(op, inputs, *args):
    """Run the primitive ``op`` on the Tensors ``inputs`` (its non-array arguments ``args``)."""
    entry = PRIMITIVES[op]
    out, saved = entry[0](*[t.data for t in inputs], *args)
    return _node(out, inputs, op, entry, saved)


def _constant(data):
    return _node(data, (), "", (), ())


def _is_number(x):
    return isinstance(x, (int, float, np.number, np.bool_))


class Tensor(Composed, Node):
    """An n-dimensional array in a computation graph (float64 unless given float32 or "exact")."""

    __slots__ = ("requires_grad", "_local")
    __array_ufunc__ = None  # numpy defers to Tensor: ndarray + Tensor is Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        self.data = _as_array(data, dtype)
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._a = self._b = None  # a Tensor's parents, when it has any, are the tuple _b (Node)
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
    T = property(lambda self: self.permute())

    def __len__(self):
        return len(self.data)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def numpy(self):
        """The data array (shared, as torch's ``numpy()``)."""
        return self.data

    def numbers(self):
        """The numbers (the data array itself; exact data as float64), as ``ValueArray.numbers()``."""
        return self.data if self.data.dtype is not _EXACT else self.data.astype(np.float64)

    def grads(self):
        """The gradient as an array (zeros before any backward reaches this tensor)."""
        return np.zeros(self.shape, self._grad_dtype()) if self.grad is None else self.grad

    def item(self):
        return self.data.item()

    def copy_(self, array):
        """Overwrite the numbers in place (dtype and graph identity kept), as torch's ``copy_``."""
        self.data[...] = rationals(array) if self.data.dtype is _EXACT else array
        return self

    def detach(self):
        """The same data (shared, as in torch), cut from the graph."""
        return _constant(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=6, separator=', ')}{grad})"

    def _grad_dtype(self):
        """The dtype of this tensor's gradients: its own, float64 for exact data."""
        return np.dtype(np.float64) if self.data.dtype is _EXACT else self.data.dtype

    def _other(self, x):
        """The other operand as a Tensor: a number takes self's dtype (as in torch), arrays their own;
        numbers that meet exact data are read as exact decimals."""
        if isinstance(x, Tensor):
            return x
        if self.data.dtype is _EXACT and not isinstance(x, Tensor):
            return _constant(rationals(x))
        if _is_number(x):
            return _constant(np.array(x, dtype=self.data.dtype))
        if isinstance(x, np.ndarray) and x.dtype in _FLOATS:
            return _constant(x.copy())
        return Tensor(x)

    # --- the primitives ------------------------------------------------------------------------
    def _binary(self, other, op):
        return _apply(op, (self, other if type(other) is Tensor else self._other(other)))

    __add__ = lambda self, o: self._binary(o, "+")
    __sub__ = lambda self, o: self._binary(o, "-")
    __mul__ = lambda self, o: self._binary(o, "*")
    __truediv__ = lambda self, o: self._binary(o, "/")
    __pow__ = lambda self, o: self._binary(o, "**")
    __radd__ = lambda self, o: self._other(o)._binary(self, "+")
    __rsub__ = lambda self, o: self._other(o)._binary(self, "-")
    __rmul__ = lambda self, o: self._other(o)._binary(self, "*")
    __rtruediv__ = lambda self, o: self._other(o)._binary(self, "/")
    __rpow__ = lambda self, o: self._other(o)._binary(self, "**")
    __rmatmul__ = lambda self, o: self._other(o) @ self
    __neg__ = lambda self: _apply("neg", (self,))
    exp = lambda self: _apply("exp", (self,))
    log = lambda self: _apply("log", (self,))
    relu = lambda self: _apply("relu", (self,))
    sigmoid = lambda self: _apply("sigmoid", (self,))
    tanh = lambda self: _apply("tanh", (self,))

    def leaky_relu(self, negative_slope=0.01):
        return _apply("leaky_relu", (self,), self._scalar(negative_slope))

    def _scalar(self, x):
        """A number argument: exact when self is, else a float."""
        return rational(x) if self.data.dtype is _EXACT else float(x)

    def maximum(self, other):
        """Elementwise larger of self and other; on a tie the gradient goes to self."""
        return self._binary(other, "maximum")

    def sum(self, axis=None, keepdims=False):
        return _apply("sum", (self,), B.dims(axis, self.ndim, "sum"), bool(keepdims))

    def max(self, axis=None, keepdims=False):
        """Largest entries along ``axis``; the gradient goes to the first largest (row-major)."""
        return _apply("max", (self,), B.dims(axis, self.ndim, "max"), bool(keepdims))

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
        return _apply("matmul", (self, other))

    def tensordot(self, other, axes=2):
        """Sum of products over self's ``axes[0]`` and other's ``axes[1]`` (np.tensordot); an int n
        pairs self's last n dims with other's first n. Output: self's free dims, then other's."""
        other = self._other(other)
        return _apply("tensordot", (self, other), *B.contraction_axes(axes, self.shape, other.shape))

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        try:
            return _apply("reshape", (self,), shape)
        except (ValueError, TypeError) as e:
            raise ValueError(f"reshape: cannot reshape shape {self.shape} to {tuple(shape)} ({e})") from None

    def permute(self, *dims):
        """Reorder the dims: out.shape[i] = self.shape[dims[i]] (reverse them when none are given)."""
        order = dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        order = B.permutation(order, self.ndim) if order else tuple(reversed(range(self.ndim)))
        return _apply("permute", (self,), order)

    def pad(self, pads, value=0.0):
        """Pad with the constant ``value``; pads as np.pad's: a (before, after) pair >= 0 for each dim."""
        pads = tuple((int(a), int(b)) for a, b in pads)
        if len(pads) != self.ndim or any(a < 0 or b < 0 for a, b in pads):
            raise ValueError(f"pad: need a (before, after) pair >= 0 for each of the {self.ndim} dims, got {pads}")
        return _apply("pad", (self,), pads, self._scalar(value)) if any(a or b for a, b in pads) else self

    def __getitem__(self, index):
        return _apply("index", (self,), index.data.astype(np.int64) if isinstance(index, Tensor) else index)

    def windows(self, kernel, stride=None, dilation=None):
        """Sliding windows over the last len(kernel) dims: (..., *spatial) -> (..., *out, *kernel),
        a view; stride defaults to kernel, dilation to 1. The backward adds each window's gradient back."""
        kernel = tuple(kernel)
        stride = kernel if stride is None else tuple(stride)
        return _apply("windows", (self,), kernel, stride, (1,) * len(kernel) if dilation is None else tuple(dilation))

    # --- composed (transpose, flatten, mean, min, minimum come from Composed) ---------------------
    view = reshape

    def expand(self, *sizes):
        """Broadcast to ``sizes`` (-1 keeps a dim), as torch's expand: one add to zeros, whose rule
        sums the gradient back."""
        sizes = sizes[0] if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: {tuple(sizes)} has fewer dims than shape {self.shape}")
        shape = tuple(n if s == -1 else s for s, n in zip(sizes, (None,) * lead + self.shape))
        try:
            np.broadcast_shapes(self.shape, shape)
        except ValueError:
            raise ValueError(f"expand: cannot expand shape {self.shape} to {tuple(sizes)}") from None
        return self + np.zeros(shape, dtype=self.dtype)

    # --- backward ------------------------------------------------------------------------------
    def backward(self, grad=None):
        """Add d self / d t to ``t.grad`` for every tensor t in the graph that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if grad is None:
            if self.size != 1:
                raise ValueError(f"backward: a gradient is needed for a non-scalar output of shape {self.shape}")
            grad = np.ones(self.shape, dtype=self._grad_dtype())
        grad = np.array(grad.data if isinstance(grad, Tensor) else grad, dtype=self._grad_dtype())
        if grad.shape != self.shape:
            raise ValueError(f"backward: gradient shape {grad.shape} does not match output shape {self.shape}")
        self._backward(grad)

    def _terms(self, g):
        """The chain rule at this node: (parent, d loss / d parent through this node) for each parent
        that requires grad, given g = d loss / d self."""
        entry, saved = self._local
        return [(parent, self._fit(rule(g, *saved), parent)) for parent, rule in zip(self.parents, entry[1:])
                if parent.requires_grad]

    def _fit(self, d, parent):
        """A rule's gradient for ``parent``: float64 (not exact), summed back over broadcast dims, of
        the parent's shape (else a RuntimeError naming the op, the input and both shapes)."""
        if d.dtype is _EXACT:  # a float gradient times exact numbers
            d = d.astype(np.float64)
        if d.shape != parent.data.shape:
            if self.op in _BROADCASTING:  # the parent was broadcast in the forward pass
                d = B.unbroadcast(d, parent.data.shape)
            if d.shape != parent.data.shape:
                raise RuntimeError(f"backward of {self.op}: the gradient for input {self.parents.index(parent)} "
                                   f"has shape {d.shape} but the input has shape {parent.data.shape}")
        return d

    def _push(self):
        """This node's gradient is complete: add it to .grad and send each input that requires grad
        its share (a node no gradient reached still has the 0.0 mark of the backward driver)."""
        g = self._pending
        self._pending = None
        if type(g) is float:
            return
        parents = self._b  # a Tensor's parents: the tuple _b, or None for a leaf (Node)
        if parents:
            entry, saved = self._local
            for parent, rule in zip(parents, entry[1:]):  # as _terms, inline: the hot loop of backward
                if parent.requires_grad:
                    d = rule(g, *saved)
                    if d.shape != parent.data.shape or d.dtype is _EXACT:
                        d = self._fit(d, parent)
                    p = parent._pending
                    parent._pending = d if type(p) is float else p + d
        dtype = self._grad_dtype()
        if type(g) is not np.ndarray or g.dtype is not dtype and g.dtype != dtype:
            g = np.asarray(g, dtype=dtype)
        if self.grad is not None:
            self.grad = self.grad + g
        else:  # a leaf gets its own array; an inner node's may share memory with its neighbours'
            self.grad = g if parents else g.copy()

    def zero_grad(self):
        """Forget the gradients of the graph that ends here (of a leaf: its own)."""
        if self.parents:
            super().zero_grad()
        else:
            self.grad = None

    def _reset_grad(self):
        self.grad = None


__all__ = ["Tensor", "no_grad", "PRIMITIVES"]
