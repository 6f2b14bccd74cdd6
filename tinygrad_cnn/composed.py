"""The array operations composed from the primitives, written once for both engines: ``Tensor`` and
``ValueArray`` inherit them, so each is a line or two over ``permute``, ``reshape``, ``sum``,
``max``, ``maximum`` and negation, and its gradient comes from theirs.
"""
import math

import numpy as np

from . import backend as B


class Composed:
    """Mixin of Tensor and ValueArray: transpose, flatten, mean, min, minimum."""

    __slots__ = ()

    def transpose(self, *dims):
        """Swap two dims, as ``torch.transpose(dim0, dim1)``; given one tuple of all the dims (or
        nothing: reverse them) it permutes them, as numpy's ``transpose`` and ``permute`` do."""
        if len(dims) == 2 and all(isinstance(d, (int, np.integer)) for d in dims):
            order = list(range(self.ndim))
            a, b = (B.dim(d, self.ndim, "transpose") for d in dims)
            order[a], order[b] = order[b], order[a]
            dims = (order,)
        return self.permute(*dims)

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge dims start_dim..end_dim into one (as torch.flatten; a 0-d array becomes 1-d)."""
        start, end = B.dim(start_dim, self.ndim, "flatten", "start_dim"), B.dim(end_dim, self.ndim, "flatten", "end_dim")
        if self.ndim == 0:
            return self.reshape(1)
        return self.reshape(self.shape[:start] + (math.prod(self.shape[start:end + 1]),) + self.shape[end + 1:])

    def mean(self, axis=None, keepdims=False, out=None):  # out: numpy's np.mean(array) passes None
        """sum / count along ``axis``."""
        count = math.prod(self.shape[a] for a in B.dims(axis, self.ndim, "mean"))
        return self.sum(axis=axis, keepdims=keepdims) / count

    def min(self, axis=None, keepdims=False, out=None):
        """Smallest entries along ``axis``, as -max(-self): the gradient goes to the first smallest."""
        return -(-self).max(axis, keepdims)

    def minimum(self, other):
        """Elementwise smaller of self and other, as -maximum(-self, -other): a tie goes to self."""
        return -(-self).maximum(-other if isinstance(other, (Composed, int, float, np.number)) else -np.asarray(other))
