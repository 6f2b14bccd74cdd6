"""The numpy kernels under both engines: sliding windows and their adjoint, fast reductions, the
matrix layout of tensordot, and the axis rules. Plain numpy arrays in and out; no graph here.
Importing it tells glibc's malloc to keep freed memory for reuse (``keep_freed_memory``).
"""
import ctypes
import itertools
import math
import platform

import numpy as np


def keep_freed_memory(largest=32 << 20, kept=64 << 20):
    """Have glibc's malloc reuse freed memory instead of handing it back to the kernel: arrays up
    to ``largest`` bytes come from the heap, and up to ``kept`` bytes of free heap stay mapped.

    A training step frees its graph's arrays (about 20 MB for the LeNet benchmark's step); by
    default glibc returns them, and the next step's first write to each page faults: some 4,000
    faults a step, more than half of its time on a 2-CPU VM. Process-wide; a no-op off glibc.
    Returns whether malloc took the settings."""
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return bool(mallopt(-3, largest)) and bool(mallopt(-1, kept))  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD


keep_freed_memory()


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
        order = axes + tuple(a for a in range(x.ndim) if a not in axes)
        moved = x.transpose(order)
        cells = np.empty(moved.shape, dtype=x.dtype)  # one copy, each cell a block: whole-array ufuncs after it
        np.copyto(cells, moved)
        cells = cells.reshape((-1,) + moved.shape[len(axes):])
        top = np.maximum(cells[0, ...], cells[1, ...], out=np.empty(cells.shape[1:], dtype=x.dtype))
        for i in range(2, len(cells)):
            np.maximum(top, cells[i, ...], out=top)
        nan = x.dtype != object and np.isnan(top).any()  # a NaN max: the first NaN takes it, as argmax
        mask, taken = np.empty(cells.shape, dtype=bool), np.zeros(top.shape, dtype=bool)
        for i in range(len(cells)):  # equal to the max, and none before
            cell, hit = cells[i, ...], mask[i, ...]  # arrays, 0-d ones too ([i] gives numbers)
            np.equal(cell, top, out=hit)
            if nan:
                hit |= np.isnan(cell)
            np.greater(hit, taken, out=hit)
            taken |= hit
        return mask.reshape(moved.shape).transpose(inverse(order))
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
    where windows overlap, else a plain copy, since no entry is written twice; overlapping 2-D
    windows at stride 1 (a conv's) add along whole planes (``_scatter_runs``).
    """
    k = len(kernel)
    counts = g.shape[g.ndim - 2 * k:g.ndim - k]
    overlap = any(s < d * (w - 1) + 1 for s, w, d in zip(stride, kernel, dilation))
    if overlap and k == 2 and stride == (1, 1):
        return _scatter_runs(g, shape, kernel, counts, dilation)
    out = np.zeros(shape, dtype=g.dtype)
    for offset in itertools.product(*map(range, kernel)):
        target = (Ellipsis,) + tuple(slice(o * d, o * d + s * (c - 1) + 1, s)
                                     for o, s, c, d in zip(offset, stride, counts, dilation))
        if overlap:
            out[target] += g[(Ellipsis,) + offset]
        else:
            out[target] = g[(Ellipsis,) + offset]
    return out


def _scatter_runs(g, shape, kernel, counts, dilation):
    """scatter_windows for 2-D windows at stride 1, one add per kernel offset along whole planes:
    with its rows padded by zeros to the plane's width, an offset's windows cover one run of the
    flattened plane (the zeros fall between its rows). The same sums, in the same order."""
    (kh, kw), (ch, cw), (h, w), (dh, dw) = kernel, counts, shape[-2:], dilation
    nl = g.ndim - 4
    rows = np.zeros(g.shape[:nl] + (kh, kw, ch, w), dtype=g.dtype)
    rows[..., :cw] = g.transpose(tuple(range(nl)) + (nl + 2, nl + 3, nl, nl + 1))
    rows = rows.reshape(g.shape[:nl] + (kh, kw, ch * w))
    out = np.zeros(g.shape[:nl] + (h * w,), dtype=g.dtype)
    run = (ch - 1) * w + cw
    for i, j in itertools.product(range(kh), range(kw)):
        start = i * dh * w + j * dw
        out[..., start:start + run] += rows[..., i, j, :run]
    return out.reshape(shape)


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


def _batch_dims(ax_x, free_x, free_y):
    """How many of x's free dims come before its first contracted one, when free dims follow it
    too and y has some: they index a batch of products (conv windows: the images); else 0."""
    lead = sum(i < min(ax_x, default=0) for i in free_x)
    return lead if lead < len(free_x) and free_y else 0


def tensordot(x, y, ax_x, ax_y):
    """np.tensordot(x, y, (ax_x, ax_y)) as matrix products, and what its adjoints need.

    One product, unless x has batch dims (``_batch_dims``): then one per batch entry, y's matrix
    times x's, so that the output is laid out as x with its contracted dims replaced by y's free
    dims (a conv's (N, H, W, C_out) output is (N, C_out, H, W) in memory, as the next layer reads it)."""
    free_x = [i for i in range(x.ndim) if i not in ax_x]
    free_y = [i for i in range(y.ndim) if i not in ax_y]
    nl = _batch_dims(ax_x, free_x, free_y)
    b = _matrix(y, ax_y, free_y)
    if nl:
        order = free_x[:nl] + ax_x + free_x[nl:]
        sizes = [x.shape[i] for i in order]
        lead, rest = sizes[:nl], sizes[nl + len(ax_x):]
        a = x.transpose(order).reshape(math.prod(lead), b.shape[0], math.prod(rest))  # (batch, k, rest): copied
        out = np.matmul(b.T, a).reshape(lead + [y.shape[i] for i in free_y] + rest)
        ny = len(free_y)
        out = out.transpose(list(range(nl)) + list(range(nl + ny, out.ndim)) + list(range(nl, nl + ny)))
        return out, (a, b, x.shape, y.shape, free_x, free_y, ax_x, ax_y, nl, None, None)
    a = _matrix(x, free_x, ax_x)
    by_cols_a, by_cols_b = _by_columns(a), _by_columns(b)
    out = _product(a, b, by_cols_a).reshape([x.shape[i] for i in free_x] + [y.shape[i] for i in free_y])
    return out, (a, b, x.shape, y.shape, free_x, free_y, ax_x, ax_y, 0, by_cols_a, by_cols_b)


def _output_matrix(g, free_x):
    return _matrix(g, list(range(len(free_x))), list(range(len(free_x), g.ndim)))


def _output_batches(g, free_x, nl):
    """The output gradient as the batched products made it: (batch, y's free dims, x's other free dims)."""
    nx = len(free_x)
    g = g.transpose(list(range(nl)) + list(range(nx, g.ndim)) + list(range(nl, nx)))
    ny = g.ndim - nx
    return g.reshape(math.prod(g.shape[:nl]), math.prod(g.shape[nl:nl + ny]), math.prod(g.shape[nl + ny:]))


def tensordot_adjoint_x(g, a, b, shape_x, shape_y, free_x, free_y, ax_x, ax_y, nl, by_cols_a, by_cols_b):
    if nl:
        order = free_x[:nl] + ax_x + free_x[nl:]
        d = np.matmul(b, _output_batches(g, free_x, nl))  # (batch, k, rest)
        return d.reshape([shape_x[i] for i in order]).transpose(inverse(order))
    return _unmatrix(_product(_output_matrix(g, free_x), b.T, by_cols_a), shape_x, free_x, ax_x, by_cols_a)


def tensordot_adjoint_y(g, a, b, shape_x, shape_y, free_x, free_y, ax_x, ax_y, nl, by_cols_a, by_cols_b):
    if nl:  # the sum over the batch of each entry's (y's free dims x k) product, laid out by columns
        d = np.matmul(_output_batches(g, free_x, nl), a.transpose(0, 2, 1)).sum(axis=0)
        return _unmatrix(d.T, shape_y, ax_y, free_y, True)
    return _unmatrix(_product(a.T, _output_matrix(g, free_x), by_cols_b), shape_y, ax_y, free_y, by_cols_b)


# --- elementwise ------------------------------------------------------------------------------------
def sigmoid(x):
    """1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)
