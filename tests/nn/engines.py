"""Running a function of nn.functional on each engine, for tests/nn: leaves made from numbers, a
backward pass, and the numbers and gradients read back (Tensor, ValueArray and Value alike)."""
import numpy as np

from tinygrad_cnn import Tensor, values
from tinygrad_cnn.testing import gradcheck

SAME = dict(rtol=1e-12, atol=1e-12)    # the Value path against the Tensor path


def on_tensors(fn, arrays, G=None, dtype=np.float64):
    """fn on leaf Tensors (None stays None); backward of sum(out * G), or of out when G is None
    (a scalar). Returns (out numbers, [input gradients])."""
    leaves = [None if a is None else Tensor(a, requires_grad=True, dtype=dtype) for a in arrays]
    out = fn(*leaves)
    out.backward(None if G is None else G)
    return out.data, [None if t is None else t.grads() for t in leaves]


def on_values(fn, arrays, G=None):
    """The same on Value arrays made by ``values``."""
    leaves = [None if a is None else values(a, f"x{i}") for i, a in enumerate(arrays)]
    out = fn(*leaves)
    out.backward(G)
    return out.numbers(), [None if v is None else v.grads() for v in leaves]


def assert_engines_agree(fn, arrays, G=None):
    """The Value path gives the Tensor path's output and gradients (float64, to 1e-12)."""
    out_t, grads_t = on_tensors(fn, arrays, G)
    out_v, grads_v = on_values(fn, arrays, G)
    assert np.shape(out_v) == np.shape(out_t)
    np.testing.assert_allclose(out_v, out_t, **SAME)
    for gv, gt in zip(grads_v, grads_t):
        if gt is not None:
            np.testing.assert_allclose(gv, gt, **SAME)


def assert_gradcheck(fn, arrays, G=None):
    """Central differences (float64) agree with backward for sum(fn(...) * G) (fn(...) when G is None)."""
    leaves = [None if a is None else Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    used = [t for t in leaves if t is not None]

    def loss(*ts):
        it = iter(ts)
        out = fn(*(None if t is None else next(it) for t in leaves))
        return out if G is None else (out * G).sum()
    assert gradcheck(loss, used, atol=1e-6, rtol=1e-5)


def output_shape(fn, *arrays):
    return fn(*(None if a is None else Tensor(a) for a in arrays)).shape


def cotangent(rng, fn, *arrays):
    """A random d loss / d out for fn's output (None for a scalar output)."""
    shape = output_shape(fn, *arrays)
    return None if shape == () else rng.normal(size=shape)


def batched(a, batch):
    """An unbatched array (batch == 0) with a batch dim of 1 added, for the loop references."""
    return a[None] if batch == 0 else a


def unbatched(a, batch):
    return a[0] if batch == 0 else a
