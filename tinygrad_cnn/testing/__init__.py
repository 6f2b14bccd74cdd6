"""Check analytic gradients against central finite differences, for your ops and ours.

    from tinygrad_cnn.testing import gradcheck
    gradcheck(lambda x, w: (x * w).sigmoid().sum(), [x, w])   # True, or GradcheckError

Inputs are Tensors (float64, requires_grad), Values, or numpy object arrays of Value.
"""
import numpy as np

from ..engine import Value
from ..tensor import Tensor, no_grad

__all__ = ["gradcheck", "numerical_grad", "GradcheckError"]


class GradcheckError(AssertionError):
    """An analytic gradient differs from the numeric one; the message says where and by how much."""


def _inputs(inputs):
    if isinstance(inputs, (Tensor, Value)) or isinstance(inputs, np.ndarray) and inputs.dtype == object:
        return [inputs]
    return list(inputs)


def _describe(i, x):
    if isinstance(x, Tensor):
        return f"input {i} ({x.name + ', ' if x.name else ''}Tensor of shape {x.shape})"
    if isinstance(x, Value):
        return f"input {i} ({x.name + ', ' if x.name else ''}Value)"
    return f"input {i} (Value array of shape {x.shape})"


def _elements(x):
    """(index, get, set) for every element of an input that takes a gradient."""
    if isinstance(x, Value):
        return [((), x)]
    if isinstance(x, np.ndarray):
        return [(idx, x[idx]) for idx in np.ndindex(x.shape)]
    return [(idx, None) for idx in np.ndindex(x.shape)]


def _check(inputs):
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor):
            if x.dtype != np.float64:
                raise TypeError(f"gradcheck: {_describe(i, x)} is {x.dtype}; central differences need float64 "
                                f"(make it with Tensor(data, dtype=np.float64, requires_grad=True))")
            if x.parents:
                raise ValueError(f"gradcheck: {_describe(i, x)} is not a leaf; pass the tensors fn starts from")
        elif isinstance(x, np.ndarray) and x.dtype == object:
            if not all(isinstance(v, Value) for v in x.flat):
                raise TypeError(f"gradcheck: {_describe(i, x)} holds something other than Values")
        elif not isinstance(x, Value):
            raise TypeError(f"gradcheck: input {i} must be a Tensor, a Value or a Value array, got {type(x).__name__}")


def _scalar(out):
    if isinstance(out, Value):
        return out
    if isinstance(out, Tensor) and out.size == 1:
        return out
    shape = getattr(out, "shape", None)
    raise ValueError(f"gradcheck: fn must return a scalar (a Value or a one-element Tensor), "
                     f"got {type(out).__name__}{f' of shape {shape}' if shape is not None else ''}")


def _evaluate(fn, inputs):
    with no_grad():
        out = _scalar(fn(*inputs))
    return float(out.data) if isinstance(out, Value) else float(out.item())


def numerical_grad(fn, inputs, eps=1e-6):
    """Central differences (f(x + eps) - f(x - eps)) / (2 eps) for every element of every input.

    Returns a list with one float64 array per input (a float for a Value input).
    """
    inputs = _inputs(inputs)
    _check(inputs)
    grads = []
    for x in inputs:
        g = np.zeros(np.shape(x.data) if isinstance(x, (Tensor, Value)) else x.shape)
        for idx, v in _elements(x):
            original = x.data[idx] if isinstance(x, Tensor) else v.data
            _set(x, idx, v, original + eps)
            up = _evaluate(fn, inputs)
            _set(x, idx, v, original - eps)
            down = _evaluate(fn, inputs)
            _set(x, idx, v, original)
            g[idx] = (up - down) / (2 * eps)
        grads.append(float(g) if isinstance(x, Value) else g)
    return grads


def _set(x, idx, v, value):
    if isinstance(x, Tensor):
        x.data[idx] = value
    else:
        v.data = value


def analytic_grad(fn, inputs):
    """The gradients backward() gives, one array per input (a float for a Value input)."""
    inputs = _inputs(inputs)
    _check(inputs)
    for x in inputs:
        if isinstance(x, Tensor):
            x.requires_grad, x.grad = True, None
        else:
            for _, v in _elements(x):
                v.grad = 0.0
    _scalar(fn(*inputs)).backward()
    grads = []
    for x in inputs:
        if isinstance(x, Tensor):
            grads.append(np.zeros(x.shape) if x.grad is None else np.array(x.grad, dtype=np.float64))
        elif isinstance(x, Value):
            grads.append(x.grad)
        else:
            grads.append(np.frompyfunc(lambda v: v.grad, 1, 1)(x).astype(np.float64))
    return grads


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3):
    """True when backward's gradient of ``fn(*inputs)`` matches central differences everywhere.

    Every element of every input is compared: |analytic - numeric| <= atol + rtol * |numeric|.
    Otherwise raises GradcheckError naming the input, the element, both values and the error.
    """
    inputs = _inputs(inputs)
    analytic = analytic_grad(fn, inputs)
    numeric = numerical_grad(fn, inputs, eps)
    for i, (x, a, n) in enumerate(zip(inputs, analytic, numeric)):
        a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
        bad = ~(np.abs(a - n) <= atol + rtol * np.abs(n))
        if np.any(bad):
            idx = tuple(int(k) for k in np.argwhere(bad)[0])
            raise GradcheckError(
                f"gradcheck: gradient mismatch for {_describe(i, x)} at element {idx}:\n"
                f"  analytic {float(a[idx])!r}\n  numeric  {float(n[idx])!r}\n"
                f"  |analytic - numeric| = {abs(a[idx] - n[idx]):.6g} > atol + rtol * |numeric| = "
                f"{atol + rtol * abs(n[idx]):.6g}  ({int(bad.sum())} of {bad.size} elements differ)")
    return True
