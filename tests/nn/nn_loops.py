"""Independent references for the tests of nn.functional: plain Python loops over numpy arrays.

Each ``*_ref`` returns the output and, given the gradient ``G`` of a loss with respect to that
output, the gradients with respect to the inputs, written out index by index from the
definitions (no sliding windows, no matmul, nothing shared with the library).
"""
import itertools
import math

import numpy as np


def _source(i, size, before, mode):
    """The input index read at padded position i (None for a zero), as zero or replicate padding."""
    j = i - before
    if 0 <= j < size:
        return j
    return None if mode == "zeros" else min(max(j, 0), size - 1)


def conv2d_ref(x, w, b, stride, pads, mode, G):
    """x (N, C, H, W), w (O, C, kH, kW), b (O,) or None, stride (sH, sW), pads ((top, bottom), (left, right)).

    Returns out, and dx, dw, db for d loss / d out = G (G may be None: out only)."""
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    (top, bottom), (left, right) = pads
    HO = (H + top + bottom - KH) // stride[0] + 1
    WO = (W + left + right - KW) // stride[1] + 1
    out = np.zeros((N, O, HO, WO))
    dx, dw, db = np.zeros_like(x), np.zeros_like(w), np.zeros(O)
    for n, o, i, j in itertools.product(range(N), range(O), range(HO), range(WO)):
        total = 0.0 if b is None else b[o]
        for c, p, q in itertools.product(range(C), range(KH), range(KW)):
            r, s = _source(i * stride[0] + p, H, top, mode), _source(j * stride[1] + q, W, left, mode)
            if r is None or s is None:
                continue
            total += x[n, c, r, s] * w[o, c, p, q]
            if G is not None:
                dx[n, c, r, s] += G[n, o, i, j] * w[o, c, p, q]
                dw[o, c, p, q] += G[n, o, i, j] * x[n, c, r, s]
        out[n, o, i, j] = total
        if G is not None:
            db[o] += G[n, o, i, j]
    return out, dx, dw, db


def conv1d_ref(x, w, b, stride, pads, mode, G):
    """x (N, C, L), w (O, C, K), pads (left, right): conv2d_ref on a height-1 image."""
    G4 = None if G is None else G[:, :, None, :]
    out, dx, dw, db = conv2d_ref(x[:, :, None, :], w[:, :, None, :], b, (1, stride), ((0, 0), pads), mode, G4)
    return out[:, :, 0, :], dx[:, :, 0, :], dw[:, :, 0, :], db


def pool2d_ref(x, kernel, stride, mode, G):
    """Max (first largest in row-major order on a tie) or average pooling of x (N, C, H, W); out and dx."""
    N, C, H, W = x.shape
    HO, WO = (H - kernel[0]) // stride[0] + 1, (W - kernel[1]) // stride[1] + 1
    out, dx = np.zeros((N, C, HO, WO)), np.zeros_like(x)
    for n, c, i, j in itertools.product(range(N), range(C), range(HO), range(WO)):
        cells = [(i * stride[0] + p, j * stride[1] + q) for p in range(kernel[0]) for q in range(kernel[1])]
        if mode == "max":
            best = cells[0]
            for cell in cells[1:]:
                if x[n, c][cell] > x[n, c][best]:
                    best = cell
            out[n, c, i, j] = x[n, c][best]
            dx[n, c][best] += G[n, c, i, j]
        else:
            out[n, c, i, j] = sum(x[n, c][cell] for cell in cells) / len(cells)
            for cell in cells:
                dx[n, c][cell] += G[n, c, i, j] / len(cells)
    return out, dx


def linear_ref(x, w, b, G):
    """x (N, in), w (out, in), b (out,) or None: out = x w^T + b; dx, dw, db."""
    N, I = x.shape
    O = w.shape[0]
    out, dx, dw, db = np.zeros((N, O)), np.zeros_like(x), np.zeros_like(w), np.zeros(O)
    for n, o in itertools.product(range(N), range(O)):
        out[n, o] = sum(x[n, i] * w[o, i] for i in range(I)) + (0.0 if b is None else b[o])
        db[o] += G[n, o]
        for i in range(I):
            dx[n, i] += G[n, o] * w[o, i]
            dw[o, i] += G[n, o] * x[n, i]
    return out, dx, dw, db


def _rows(x, dim):
    """Index tuples of every 1-D slice of x along dim."""
    shape = list(x.shape)
    shape[dim] = 1
    for index in np.ndindex(*shape):
        yield tuple(slice(None) if d == dim % x.ndim else k for d, k in enumerate(index))


def softmax_ref(x, dim, G, log=False):
    """softmax (or log_softmax) along dim, and dx from the Jacobian written out entry by entry."""
    out, dx = np.zeros_like(x), np.zeros_like(x)
    for row in _rows(x, dim):
        v = list(x[row])
        m = max(v)
        total = sum(math.exp(a - m) for a in v)
        s = [math.exp(a - m) / total for a in v]
        out[row] = [a - m - math.log(total) for a in v] if log else s
        g = G[row]
        for j in range(len(v)):  # d out_i / d x_j: softmax s_i (delta_ij - s_j); log_softmax delta_ij - s_j
            dx[row][j] = sum(g[i] * ((i == j) - s[j]) * (1.0 if log else s[i]) for i in range(len(v)))
    return out, dx


def _clamped_log(u):
    return max(math.log(u), -100.0) if u > 0 else -100.0


def bce_ref(p, t):
    """mean of -(t log p + (1 - t) log(1 - p)), logs clamped at -100; and d loss / d p
    (a clamped log contributes nothing where it is clamped)."""
    n = p.size
    loss, dp = 0.0, np.zeros_like(p)
    for k in np.ndindex(p.shape):
        loss -= t[k] * _clamped_log(p[k]) + (1 - t[k]) * _clamped_log(1 - p[k])
        dp[k] = ((-t[k] / p[k] if _clamped_log(p[k]) > -100 else 0.0)
                 + ((1 - t[k]) / (1 - p[k]) if _clamped_log(1 - p[k]) > -100 else 0.0)) / n
    return loss / n, dp


def bce_logits_ref(z, t):
    """mean of max(z, 0) - z t + log(1 + exp(-|z|)); d loss / d z = (sigmoid(z) - t) / n."""
    n = z.size
    loss, dz = 0.0, np.zeros_like(z)
    for k in np.ndindex(z.shape):
        loss += max(z[k], 0.0) - z[k] * t[k] + math.log1p(math.exp(-abs(z[k])))
        s = 1 / (1 + math.exp(-z[k])) if z[k] >= 0 else math.exp(z[k]) / (1 + math.exp(z[k]))
        dz[k] = (s - t[k]) / n
    return loss / n, dz


def cross_entropy_ref(logits, target):
    """mean over rows of log(sum exp(row)) - row[target]; d loss / d logits = (softmax - one-hot) / N."""
    N, K = logits.shape
    loss, d = 0.0, np.zeros_like(logits)
    for n in range(N):
        m = max(logits[n])
        total = sum(math.exp(a - m) for a in logits[n])
        loss += m + math.log(total) - logits[n, target[n]]
        for k in range(K):
            d[n, k] = (math.exp(logits[n, k] - m) / total - (k == target[n])) / N
    return loss / N, d


def mse_ref(x, t):
    """mean of (x - t)^2 and its gradient 2 (x - t) / n."""
    n = x.size
    loss, d = 0.0, np.zeros_like(x)
    for k in np.ndindex(x.shape):
        loss += (x[k] - t[k]) ** 2
        d[k] = 2 * (x[k] - t[k]) / n
    return loss / n, d


# --- the PyTorch surface: dilation, groups, padding modes, transposed convs, pad, pooling options, losses ----
# Written from PyTorch's documented definitions (and, for negative pads, its kernels' index rules),
# one output entry at a time; none of them calls the library or another reference above.
def padded_source(j, n, mode):
    """The input index that position j of a dim of size n (j may lie outside 0..n-1) reads when that
    dim is padded in ``mode``; None for a constant (zero) entry. Valid for overhangs PyTorch accepts:
    reflect (mirror, the edge not repeated) below n, circular (wrap around once) up to n."""
    if 0 <= j < n:
        return j
    if mode in ("zeros", "constant"):
        return None
    if mode == "replicate":
        return 0 if j < 0 else n - 1
    if mode == "reflect":
        return -j if j < 0 else 2 * (n - 1) - j
    if mode == "circular":
        return j + n if j < 0 else j - n
    raise ValueError(mode)


def conv2d_full_ref(x, w, b, stride, pads, mode, dilation, groups, G=None):
    """PyTorch's conv2d: x (N, C, H, W), w (O, C / groups, kH, kW), b (O,) or None, stride and dilation
    (h, w), pads ((top, bottom), (left, right)), padding_mode ``mode``. Output channel o belongs to group
    g = o // (O / groups) and reads input channels g * C/groups ... (g + 1) * C/groups - 1:

        out[n, o, i, j] = b[o] + sum_{c, p, q} xpad[n, g Cg + c, i sH + p dH, j sW + q dW] w[o, c, p, q]

    Returns out and, for d loss / d out = G, dx, dw, db (None for G None)."""
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    Og = O // groups
    (top, bottom), (left, right) = pads
    HO = (H + top + bottom - dilation[0] * (KH - 1) - 1) // stride[0] + 1
    WO = (W + left + right - dilation[1] * (KW - 1) - 1) // stride[1] + 1
    out = np.zeros((N, O, HO, WO))
    dx, dw, db = np.zeros(x.shape), np.zeros(w.shape), np.zeros(O)
    for n in range(N):
        for o in range(O):
            g = o // Og
            for i in range(HO):
                for j in range(WO):
                    total = 0.0 if b is None else b[o]
                    for c in range(Cg):
                        for p in range(KH):
                            for q in range(KW):
                                r = padded_source(i * stride[0] + p * dilation[0] - top, H, mode)
                                s = padded_source(j * stride[1] + q * dilation[1] - left, W, mode)
                                if r is None or s is None:
                                    continue
                                total += x[n, g * Cg + c, r, s] * w[o, c, p, q]
                                if G is not None:
                                    dx[n, g * Cg + c, r, s] += G[n, o, i, j] * w[o, c, p, q]
                                    dw[o, c, p, q] += G[n, o, i, j] * x[n, g * Cg + c, r, s]
                    out[n, o, i, j] = total
                    if G is not None:
                        db[o] += G[n, o, i, j]
    return out, dx, dw, db


def conv1d_full_ref(x, w, b, stride, pads, mode, dilation, groups, G=None):
    """conv1d: x (N, C, L), w (O, C / groups, K), pads (left, right): conv2d_full_ref on a height-1 image."""
    G4 = None if G is None else G[:, :, None, :]
    out, dx, dw, db = conv2d_full_ref(x[:, :, None, :], w[:, :, None, :], b, (1, stride), ((0, 0), pads), mode,
                                      (1, dilation), groups, G4)
    return out[:, :, 0, :], dx[:, :, 0, :], dw[:, :, 0, :], db


def conv_transpose2d_ref(x, w, b, stride, padding, output_padding, groups, dilation, G=None):
    """PyTorch's conv_transpose2d as the scatter it is: x (N, C, H, W), w (C, O / groups, kH, kW), b (O,).
    Every input entry adds its product with every kernel entry at its place in the output:

        out[n, g Og + o, i sH + k dH - pH, j sW + l dW - pW] += x[n, g Cg + c, i, j] w[g Cg + c, o, k, l]

    (entries that land outside the output are dropped), H_out = (H - 1) sH - 2 pH + dH (kH - 1) + opH + 1.
    Returns out and, for d loss / d out = G, dx, dw, db."""
    N, C, H, W = x.shape
    _, Og, KH, KW = w.shape
    Cg = C // groups
    HO = (H - 1) * stride[0] - 2 * padding[0] + dilation[0] * (KH - 1) + output_padding[0] + 1
    WO = (W - 1) * stride[1] - 2 * padding[1] + dilation[1] * (KW - 1) + output_padding[1] + 1
    out = np.zeros((N, groups * Og, HO, WO))
    dx, dw, db = np.zeros(x.shape), np.zeros(w.shape), np.zeros(groups * Og)
    for n, g, c, o in itertools.product(range(N), range(groups), range(Cg), range(Og)):
        for i, j, k, l in itertools.product(range(H), range(W), range(KH), range(KW)):
            r = i * stride[0] + k * dilation[0] - padding[0]
            s = j * stride[1] + l * dilation[1] - padding[1]
            if 0 <= r < HO and 0 <= s < WO:
                out[n, g * Og + o, r, s] += x[n, g * Cg + c, i, j] * w[g * Cg + c, o, k, l]
                if G is not None:
                    dx[n, g * Cg + c, i, j] += G[n, g * Og + o, r, s] * w[g * Cg + c, o, k, l]
                    dw[g * Cg + c, o, k, l] += G[n, g * Og + o, r, s] * x[n, g * Cg + c, i, j]
    if b is not None:
        for n, o, r, s in itertools.product(range(N), range(groups * Og), range(HO), range(WO)):
            out[n, o, r, s] += b[o]
    if G is not None:
        for n, o, r, s in itertools.product(range(N), range(groups * Og), range(HO), range(WO)):
            db[o] += G[n, o, r, s]
    return out, dx, dw, db


def conv_transpose1d_ref(x, w, b, stride, padding, output_padding, groups, dilation, G=None):
    """conv_transpose1d: x (N, C, L), w (C, O / groups, K): conv_transpose2d_ref on a height-1 image."""
    G4 = None if G is None else G[:, :, None, :]
    out, dx, dw, db = conv_transpose2d_ref(x[:, :, None, :], w[:, :, None, :], b, (1, stride), (0, padding),
                                           (0, output_padding), groups, (1, dilation), G4)
    return out[:, :, 0, :], dx[:, :, 0, :], dw[:, :, 0, :], db


def pad_ref(x, pad, mode="constant", value=0.0, G=None):
    """torch.nn.functional.pad: ``pad`` = (left, right) of the last dim, then (top, bottom) of the one
    before, ...; a negative pad crops. Position i of a padded dim of size n with pads (before, after)
    reads input index i - before; outside 0..n-1 it is ``value`` (constant), the mirror image about the
    edge (reflect), the edge (replicate), as PyTorch's kernels index the input. Circular wraps around
    the part that is left after the crops (PyTorch copies the cropped centre, then wraps it).
    Returns out and, for d loss / d out = G, dx."""
    pads = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        pads[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    shape = tuple(n + a + b for n, (a, b) in zip(x.shape, pads))

    def source(i, n, before, after):
        if mode != "circular":
            return padded_source(i - before, n, mode)
        start = max(-before, 0)
        kept = n - start - max(-after, 0)
        u = i - max(before, 0)         # position in the cropped centre
        if u < 0:
            u += kept
        elif u >= kept:
            u -= kept
        return start + u

    out, dx = np.zeros(shape), np.zeros(x.shape)
    for index in np.ndindex(*shape):
        src = [source(i, n, a, b) for i, n, (a, b) in zip(index, x.shape, pads)]
        if any(s is None for s in src):
            out[index] = value
            continue
        out[index] = x[tuple(src)]
        if G is not None:
            dx[tuple(src)] += G[index]
    return out, dx


def pool_output_size(n, kernel, stride, padding, dilation, ceil_mode):
    """PyTorch's pooling output size: floor (or ceil) of (n + 2 padding - dilation (kernel - 1) - 1) / stride,
    plus 1; with ceil_mode the last window must start inside the input or its left padding."""
    span = (n + 2 * padding - dilation * (kernel - 1) - 1) / stride
    out = (math.ceil(span) if ceil_mode else math.floor(span)) + 1
    if ceil_mode and (out - 1) * stride >= n + padding:
        out -= 1
    return out


def max_pool2d_full_ref(x, kernel, stride, padding, dilation, ceil_mode, G=None):
    """PyTorch's max_pool2d of x (N, C, H, W): each window reads rows i sH - pH + a dH (a < kH) and columns
    likewise; only those inside the input count (padding is -inf). The maximum is the first largest
    in row-major order; its index is r * W + c in the flattened H x W plane (-inf and -1 for a window
    with no entry inside the input, which PyTorch allows but leaves undefined).
    Returns out, indices and, for d loss / d out = G, dx."""
    N, C, H, W = x.shape
    HO = pool_output_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    WO = pool_output_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    out, indices, dx = np.zeros((N, C, HO, WO)), np.zeros((N, C, HO, WO), dtype=np.int64), np.zeros(x.shape)
    for n, c, i, j in itertools.product(range(N), range(C), range(HO), range(WO)):
        best = None
        for a in range(kernel[0]):
            for b in range(kernel[1]):
                r = i * stride[0] - padding[0] + a * dilation[0]
                s = j * stride[1] - padding[1] + b * dilation[1]
                if 0 <= r < H and 0 <= s < W and (best is None or x[n, c, r, s] > x[n, c][best]):
                    best = (r, s)
        if best is None:  # a dilated window whose every tap falls in the padding: PyTorch's -inf
            out[n, c, i, j], indices[n, c, i, j] = -math.inf, -1
            continue
        out[n, c, i, j] = x[n, c][best]
        indices[n, c, i, j] = best[0] * W + best[1]
        if G is not None:
            dx[n, c][best] += G[n, c, i, j]
    return out, indices, dx


def avg_pool2d_full_ref(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, G=None):
    """PyTorch's avg_pool2d of x (N, C, H, W), as its kernel computes each window: rows hstart = i sH - pH
    to hend = min(hstart + kH, H + pH), so the window is clipped to the padded input (the ceil_mode
    overhang never counts); pool_size = its area with the padding. The sum runs over the input entries
    inside; the divisor is divisor_override, else pool_size with count_include_pad, else the number of
    input entries inside. Returns out and, for d loss / d out = G, dx."""
    N, C, H, W = x.shape
    HO = pool_output_size(H, kernel[0], stride[0], padding[0], 1, ceil_mode)
    WO = pool_output_size(W, kernel[1], stride[1], padding[1], 1, ceil_mode)
    out, dx = np.zeros((N, C, HO, WO)), np.zeros(x.shape)
    for n, c, i, j in itertools.product(range(N), range(C), range(HO), range(WO)):
        hstart, wstart = i * stride[0] - padding[0], j * stride[1] - padding[1]
        hend, wend = min(hstart + kernel[0], H + padding[0]), min(wstart + kernel[1], W + padding[1])
        pool_size = (hend - hstart) * (wend - wstart)
        hstart, wstart, hend, wend = max(hstart, 0), max(wstart, 0), min(hend, H), min(wend, W)
        if divisor_override is not None:
            divisor = divisor_override
        elif count_include_pad:
            divisor = pool_size
        else:
            divisor = (hend - hstart) * (wend - wstart)
        total = 0.0
        for r in range(hstart, hend):
            for s in range(wstart, wend):
                total += x[n, c, r, s]
                if G is not None:
                    dx[n, c, r, s] += G[n, c, i, j] / divisor
        out[n, c, i, j] = total / divisor
    return out, dx


def _reduce_terms(terms, reduction):
    """Loss terms (an array) reduced: their mean, their sum, or themselves."""
    if reduction == "none":
        return terms
    total = 0.0
    for k in np.ndindex(terms.shape):
        total += terms[k]
    return total / terms.size if reduction == "mean" else total


def _class_rows(x):
    """(row index, index of class c of that row) pairs of an input with classes on dim 1 (dim 0 when 1-d):
    for each position ``row`` of the target, a function c -> the index of x holding class c."""
    if x.ndim == 1:
        yield (), lambda c: (c,)
        return
    rest = x.shape[2:]
    for row in itertools.product(range(x.shape[0]), *map(range, rest)):
        yield row, lambda c, row=row: (row[0], c) + row[1:]


def nll_loss_ref(logp, target, reduction="mean"):
    """-logp[n, target[n, d...], d...] per target entry, reduced (the mean over the target entries)."""
    target = np.asarray(target)
    terms = np.zeros(target.shape)
    for row, at in _class_rows(logp):
        terms[row] = -logp[at(int(target[row]))]
    return _reduce_terms(terms, reduction)


def cross_entropy_full_ref(logits, target, reduction="mean", label_smoothing=0.0):
    """PyTorch's cross_entropy: per row, log p = the row's log-softmax over the classes; with class
    indices -((1 - e) log p[target] + e / C sum_c log p[c]); with class probabilities t (the input's
    shape) -sum_c ((1 - e) t[c] + e / C) log p[c]. Reduced over the rows (mean: divided by their number)."""
    target = np.asarray(target)
    C = logits.shape[1 if logits.ndim > 1 else 0]
    probabilities = target.shape == logits.shape and target.dtype.kind == "f"
    rows = list(_class_rows(logits))
    terms = np.zeros(logits.shape[:1] + logits.shape[2:] if logits.ndim > 1 else ())
    for row, at in rows:
        v = [logits[at(c)] for c in range(C)]
        m = max(v)
        lse = m + math.log(sum(math.exp(a - m) for a in v))
        logp = [a - lse for a in v]
        if probabilities:
            q = [(1 - label_smoothing) * target[at(c)] + label_smoothing / C for c in range(C)]
            terms[row] = -sum(q[c] * logp[c] for c in range(C))
        else:
            terms[row] = -((1 - label_smoothing) * logp[int(target[row])] + label_smoothing / C * sum(logp))
    return _reduce_terms(terms, reduction)


def _clamped(u):
    return max(math.log(u), -100.0) if u > 0 else -100.0


def bce_full_ref(p, t, weight=None, reduction="mean"):
    """-w (t max(log p, -100) + (1 - t) max(log(1 - p), -100)) per element, w broadcast to p's shape; reduced."""
    w = np.ones(p.shape) if weight is None else np.broadcast_to(weight, p.shape)
    terms = np.zeros(p.shape)
    for k in np.ndindex(p.shape):
        terms[k] = -w[k] * (t[k] * _clamped(p[k]) + (1 - t[k]) * _clamped(1 - p[k]))
    return _reduce_terms(terms, reduction)


def _softplus(u):
    """log(1 + e^u) = max(u, 0) + log(1 + e^-|u|), exact for any finite u."""
    return max(u, 0.0) + math.log1p(math.exp(-abs(u)))


def bce_logits_full_ref(z, t, weight=None, pos_weight=None, reduction="mean"):
    """-w (pw t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))) = w (pw t softplus(-z) + (1 - t) softplus(z))
    per element; pos_weight pw broadcast along the last (class) dim, w over the whole shape; reduced."""
    w = np.ones(z.shape) if weight is None else np.broadcast_to(weight, z.shape)
    pw = np.ones(z.shape) if pos_weight is None else np.broadcast_to(pos_weight, z.shape)
    terms = np.zeros(z.shape)
    for k in np.ndindex(z.shape):
        terms[k] = w[k] * (pw[k] * t[k] * _softplus(-z[k]) + (1 - t[k]) * _softplus(z[k]))
    return _reduce_terms(terms, reduction)


def mse_full_ref(x, t, reduction="mean"):
    """(x - t)^2 per element, reduced."""
    terms = np.zeros(x.shape)
    for k in np.ndindex(x.shape):
        terms[k] = (x[k] - t[k]) ** 2
    return _reduce_terms(terms, reduction)
