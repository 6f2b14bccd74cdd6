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
