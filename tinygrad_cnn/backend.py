"""The numpy kernels under both engines: sliding windows and their adjoint, fast reductions, the
matrix layout of tensordot, and the axis rules. Plain numpy arrays in and out; no graph here.
"""
import itertools
import math
import numpy as np


# --- axes ---------------------------------------------------------------------------------------
def dims(axis, ndim, fn="dim"):
    """``axis`` (None: all; an int or several, negative ones from the end) as a sorted tuple of dims.

    Out of range raises IndexError, as in PyTorch; a 0-d array takes dim 0 or -1 (and reduces nothing).
    """
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = [dim(a, ndim, fn) for a in axes]
    if not ndim:  # the 0-d array's one dim is no dim of its data
        return ()
    if len(set(out)) != len(out):
        raise ValueError(f"{fn}: dim {axis!r} names a dim twice")
    return tuple(sorted(out))


def dim(a, ndim, fn="dim", arg="dim"):
    """One dim ``a`` (negative from the end) as an int in range(ndim); a 0-d array takes 0 or -1."""
    if type(a) is int and -ndim <= a < ndim:  # the common case, first
        return a % ndim
    if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
        raise TypeError(f"{fn}: {arg} must be an int, got {a!r}")
    size = max(ndim, 1)
    if not -size <= a < size:
        raise IndexError(f"{fn}: {arg} {a} is out of range for {ndim} dims (expected {-size} to {size - 1})")
    return int(a) % size


def permutation(order, ndim, fn="permute"):
    """``order`` (negative dims allowed) as a permutation of range(ndim), or an error naming it."""
    order = tuple(order)
    if len(order) != ndim:
        raise ValueError(f"{fn}: {order} must list each of the {ndim} dims once")
    normal = tuple(dim(d, ndim, fn) for d in order)
    if sorted(normal) != list(range(ndim)):
        raise ValueError(f"{fn}: {order} is not a permutation of the {ndim} dims")
    return normal


def inverse(perm):
    """The permutation that undoes ``perm``."""
    return tuple(sorted(range(len(perm)), key=perm.__getitem__))


def keep(g, shape, axes, keepdims):
    """A reduction's output gradient reshaped so that it broadcasts against the input of ``shape``."""
    return g if keepdims else g.reshape([1 if i in axes else n for i, n in enumerate(shape)])


def expand(g, shape):
    """``g`` broadcast to ``shape`` as a new array (faster than np.broadcast_to for small arrays)."""
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g
    return out


def unbroadcast(g, shape):
    """Sum a gradient of a broadcast result back to the input's ``shape`` (numpy's broadcasting rule)."""
    lead = g.ndim - len(shape)
    if lead < 0:
        return g
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes).reshape(shape) if axes else g


# --- reductions -----------------------------------------------------------------------------------
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


def reduce(ufunc, x, axes, keepdims):
    """``ufunc.reduce`` of x over the dims ``axes`` (np.add: sum, np.maximum: max)."""
    if not _by_slices(x, axes):
        return ufunc.reduce(x, axis=axes, keepdims=keepdims)
    first, second, *rest = _cells(x.shape, axes)
    out = ufunc(x[first], x[second])
    for index in rest:
        ufunc(out, x[index], out=out)
    return out if keepdims else out.reshape([n for a, n in enumerate(x.shape) if a not in axes])


def first_argmax_mask(x, axes):
    """True at the first (row-major) largest entry of each group reduced over ``axes``, False elsewhere."""
    if not axes:
        return np.ones(x.shape, dtype=bool)
    if _by_slices(x, axes):  # walk each group in row-major order: its first entry equal to the max
        top = reduce(np.maximum, x, axes, keepdims=True)
        mask, taken = np.zeros(x.shape, dtype=bool), np.zeros(top.shape, dtype=bool)
        for index in _cells(x.shape, axes):
            # equal to the max (a NaN, when the max is NaN, as argmax picks), and none before
            equal = x[index] == top
            hit = np.greater(equal | np.isnan(x[index]) if x.dtype != object else equal, taken, out=mask[index])
            taken |= hit
        return mask
    order = tuple(a for a in range(x.ndim) if a not in axes) + axes  # the reduced dims last
    moved = x.transpose(order)
    flat = moved.reshape(moved.shape[:x.ndim - len(axes)] + (-1,))
    mask = (np.arange(flat.shape[-1]) == flat.argmax(-1)[..., None]).reshape(moved.shape)
    return mask if order == tuple(range(x.ndim)) else mask.transpose(inverse(order))


# --- sliding windows ----------------------------------------------------------------------------------
def sliding_windows(array, kernel, stride, dilation=None):
    """Read-only view of ``array`` (..., *spatial) as (..., *out, *kernel): every window of the last dims.

    A window reads ``kernel`` entries ``dilation`` apart; out = (size - dilation (kernel - 1) - 1) // stride + 1.
    Works on any numpy array (object arrays of Values too); the view keeps ``array``'s class.
    """
    dilation = (1,) * len(kernel) if dilation is None else tuple(dilation)
    lead = array.ndim - len(kernel)
    counts, steps = [], []
    if lead >= 0 and len(stride) == len(kernel) == len(dilation):
        for n, w, s, d, t in zip(array.shape[lead:], kernel, stride, dilation, array.strides[lead:]):
            if not 1 <= d * (w - 1) + 1 <= n or s < 1 or w < 1:
                break
            counts.append((n - d * (w - 1) - 1) // s + 1)
            steps.append(t * s)
    if len(counts) != len(kernel) or not kernel:
        dilated = f" and dilation {dilation}" if max(dilation, default=1) > 1 else ""
        raise ValueError(f"windows: kernel {tuple(kernel)} with stride {tuple(stride)}{dilated} "
                         f"does not fit the last dims of shape {array.shape}")
    inner = array.strides[lead:]
    if max(dilation) > 1:
        inner = tuple(t * d for t, d in zip(inner, dilation))
    shape = (*array.shape[:lead], *counts, *kernel)
    strides = (*array.strides[:lead], *steps, *inner)
    if type(array) is np.ndarray and array.flags.c_contiguous and array.dtype != object:  # the fast way
        view = np.ndarray(shape, array.dtype, array, 0, strides)
        view.flags.writeable = False
        return view
    return np.lib.stride_tricks.as_strided(array, shape, strides, subok=True, writeable=False)


def scatter_windows(g, shape, kernel, stride, dilation):
    """The adjoint of sliding_windows: add each window's gradient back where it was read from.

    One strided write per kernel offset (as many as kernel entries, each a whole array): an add
    where windows overlap, else a plain copy, since no entry is written twice.
    """
    k = len(kernel)
    out = np.zeros(shape, dtype=g.dtype)
    counts = g.shape[g.ndim - 2 * k:g.ndim - k]
    overlap = any(s < d * (w - 1) + 1 for s, w, d in zip(stride, kernel, dilation))
    for offset in itertools.product(*map(range, kernel)):
        target = (Ellipsis,) + tuple(slice(o * d, o * d + s * (c - 1) + 1, s)
                                     for o, s, c, d in zip(offset, stride, counts, dilation))
        if overlap:
            out[target] += g[(Ellipsis,) + offset]
        else:
            out[target] = g[(Ellipsis,) + offset]
    return out


def unpad(g, pads):
    """The adjoint of constant padding: the centre of ``g`` (pads as np.pad's (before, after) per dim)."""
    return g[tuple(slice(a, g.shape[i] - b) for i, (a, b) in enumerate(pads))]


def index_adjoint(g, shape, index):
    """The adjoint of ``x[index]`` for x of ``shape``: g added back where it was read (twice where read twice)."""
    out = np.zeros(shape, dtype=g.dtype)
    np.add.at(out, index, g)
    return out


# --- tensordot as one matrix product, in the layout that copies least ----------------------------------
def contraction_axes(axes, shape_x, shape_y):
    """tensordot's ``axes`` as two lists of dims, checked against the shapes."""
    if isinstance(axes, (int, np.integer)):
        if not 0 <= axes <= min(len(shape_x), len(shape_y)):
            raise ValueError(f"tensordot: cannot contract {axes} dims of shapes {shape_x} and {shape_y}")
        ax_x, ax_y = list(range(len(shape_x) - axes, len(shape_x))), list(range(axes))
    else:
        ax_x, ax_y = [[a] if isinstance(a, (int, np.integer)) else list(a) for a in axes]
        if len(ax_x) != len(ax_y):
            raise ValueError(f"tensordot: axes {axes} pair {len(ax_x)} dims with {len(ax_y)}")
        ax_x = [dim(a, len(shape_x), "tensordot") for a in ax_x]
        ax_y = [dim(a, len(shape_y), "tensordot") for a in ax_y]
    if [shape_x[i] for i in ax_x] != [shape_y[j] for j in ax_y]:
        raise ValueError(f"tensordot: dims {ax_x} of shape {shape_x} do not match dims {ax_y} of shape {shape_y}")
    return ax_x, ax_y


def _run(x, dims_):
    """How many adjacent numbers in memory the last of ``dims_`` spans (0 unless its stride is one number)."""
    return x.shape[dims_[-1]] if dims_ and x.strides[dims_[-1]] == x.itemsize else 0


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
    return d.reshape([shape[i] for i in order]).transpose(inverse(order))


def _product(p, q, by_columns):
    """p @ q, laid out column by column or row by row, so that _unmatrix needs no copy."""
    return (q.T @ p.T).T if by_columns else p @ q


def tensordot(x, y, ax_x, ax_y):
    """np.tensordot(x, y, (ax_x, ax_y)) as one matrix product, and what its adjoints need."""
    free_x = [i for i in range(x.ndim) if i not in ax_x]
    free_y = [i for i in range(y.ndim) if i not in ax_y]
    a, b = _matrix(x, free_x, ax_x), _matrix(y, ax_y, free_y)
    by_cols_a, by_cols_b = _by_columns(a), _by_columns(b)
    out = _product(a, b, by_cols_a).reshape([x.shape[i] for i in free_x] + [y.shape[i] for i in free_y])
    return out, (a, b, x.shape, y.shape, free_x, free_y, ax_x, ax_y, by_cols_a, by_cols_b)


def _output_matrix(g, free_x):
    return _matrix(g, list(range(len(free_x))), list(range(len(free_x), g.ndim)))


def tensordot_adjoint_x(g, a, b, shape_x, shape_y, free_x, free_y, ax_x, ax_y, by_cols_a, by_cols_b):
    return _unmatrix(_product(_output_matrix(g, free_x), b.T, by_cols_a), shape_x, free_x, ax_x, by_cols_a)


def tensordot_adjoint_y(g, a, b, shape_x, shape_y, free_x, free_y, ax_x, ax_y, by_cols_a, by_cols_b):
    return _unmatrix(_product(a.T, _output_matrix(g, free_x), by_cols_b), shape_y, ax_y, free_y, by_cols_b)


# --- elementwise ------------------------------------------------------------------------------------
def sigmoid(x):
    """1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)
