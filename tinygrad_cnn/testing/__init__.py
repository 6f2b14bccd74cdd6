"""Check analytic gradients against central finite differences, for your ops and ours.

    from tinygrad_cnn.testing import gradcheck
    gradcheck(lambda x, w: (x * w).sigmoid().sum(), [x, w])   # True, or GradcheckError

Inputs are float64 Tensors, Values, or numpy object arrays of Value. As in
``torch.autograd.gradcheck``, a Tensor with ``requires_grad=False`` is held constant and
not checked. The inputs' data and ``.grad`` are left as they were, even when ``fn`` raises.
"""
import numpy as np

from ..engine import Value
from ..autograd import no_grad
from ..tensor import Tensor

__all__ = ["gradcheck", "numerical_grad", "analytic_grad", "GradcheckError"]


class GradcheckError(AssertionError):
    """An analytic gradient differs from the numeric one; the message says where and by how much.

    Attributes: ``input`` (position in ``inputs``), ``index`` (element index, a tuple),
    ``analytic`` and ``numeric`` (the two derivatives at that element).
    """

    def __init__(self, message, input=None, index=None, analytic=None, numeric=None):
        super().__init__(message)
        self.input, self.index, self.analytic, self.numeric = input, index, analytic, numeric


# --- the three kinds of input: a Tensor, a Value, an object array of Values ---------------------
def _is_value_array(x):
    return isinstance(x, np.ndarray) and x.dtype == object


def _as_list(inputs):
    if isinstance(inputs, (Tensor, Value)) or _is_value_array(inputs):
        return [inputs]
    return list(inputs)


def _checked(x):
    """Whether gradcheck differentiates with respect to ``x`` (Values always; Tensors if requires_grad)."""
    return x.requires_grad if isinstance(x, Tensor) else True


def _shape(x):
    return () if isinstance(x, Value) else tuple(x.shape)


def _value_at(x, idx):
    return x if isinstance(x, Value) else x[idx]


def _read(x, idx):
    return x.data[idx] if isinstance(x, Tensor) else _value_at(x, idx).data


def _write(x, idx, number):
    if isinstance(x, Tensor):
        x.data[idx] = number
    else:
        _value_at(x, idx).data = number


def _describe(i, x):
    name = f"{x.name}, " if isinstance(x, (Tensor, Value)) and x.name else ""
    if isinstance(x, Tensor):
        return f"input {i} ({name}Tensor of shape {x.shape})"
    if isinstance(x, Value):
        return f"input {i} ({name}Value)"
    return f"input {i} (Value array of shape {x.shape})"


def _element(x, idx):
    """``(0, 2)``, followed by the Value's name when it has one: ``(0, 2) [X[0,2]]``."""
    if isinstance(x, Tensor):
        return str(idx)
    name = _value_at(x, idx).name
    return f"{idx} [{name}]" if name else str(idx)


def _validate(inputs, eps=None, atol=0.0, rtol=0.0):
    """Refuse bad arguments before any work, naming the input and what is wrong with it."""
    if not inputs:
        raise ValueError("gradcheck: inputs is empty; pass the Tensors or Values fn takes")
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor):
            if x.dtype != np.float64:
                raise TypeError(f"gradcheck: {_describe(i, x)} is {x.dtype}; central differences need float64 "
                                f"(make it with Tensor(data, dtype=np.float64, requires_grad=True))")
            if x.parents:
                raise ValueError(f"gradcheck: {_describe(i, x)} is the result of {x.op!r}, not a leaf; "
                                 f"pass the tensors fn starts from")
            if x.requires_grad and not x.data.flags.writeable:
                raise ValueError(f"gradcheck: {_describe(i, x)} has read-only data, which central differences "
                                 f"must change; pass Tensor(data.copy(), requires_grad=True)")
        elif _is_value_array(x):
            wrong = next((type(v).__name__ for v in x.flat if not isinstance(v, Value)), None)
            if wrong is not None:
                raise TypeError(f"gradcheck: {_describe(i, x)} holds a {wrong}, not only Values")
        elif not isinstance(x, Value):
            kind = f"numpy array of {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
            raise TypeError(f"gradcheck: input {i} must be a Tensor, a Value or an object array of Values, "
                            f"got a {kind}")
    if not any(_checked(x) for x in inputs):
        raise ValueError("gradcheck: no input requires a gradient (make the Tensors with requires_grad=True)")
    if eps is not None and not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"gradcheck: eps must be a positive finite number, got {eps!r}")
    if not (atol >= 0 and rtol >= 0):
        raise ValueError(f"gradcheck: atol and rtol must be >= 0, got atol={atol!r}, rtol={rtol!r}")


def _scalar(out):
    """The output of fn as one Value or one-element Tensor."""
    if _is_value_array(out) and out.size == 1:
        out = out.flat[0]
    if isinstance(out, Value) or isinstance(out, Tensor) and out.size == 1:
        return out
    shape = f" of shape {out.shape}" if hasattr(out, "shape") else ""
    raise ValueError(f"gradcheck: fn must return a scalar (a Value or a one-element Tensor), "
                     f"got {type(out).__name__}{shape}")


def _evaluate(fn, inputs):
    with no_grad():
        return float(_scalar(fn(*inputs)).data)


# --- the two gradients ------------------------------------------------------------------------
def numerical_grad(fn, inputs, eps=1e-6):
    """Central differences (f(x + eps) - f(x - eps)) / (2 eps) for every element of every input.

    ``fn(*inputs)`` must return a scalar. Returns one entry per input: a float64 array of
    the input's shape (a float for a Value; None for a Tensor that does not require grad).
    """
    inputs = _as_list(inputs)
    _validate(inputs, eps)
    grads = []
    for x in inputs:
        if not _checked(x):
            grads.append(None)
            continue
        g = np.zeros(_shape(x))
        for idx in np.ndindex(g.shape):
            original = _read(x, idx)
            try:
                _write(x, idx, original + eps)
                up = _evaluate(fn, inputs)
                _write(x, idx, original - eps)
                down = _evaluate(fn, inputs)
            finally:
                _write(x, idx, original)
            g[idx] = (up - down) / (2 * eps)
        grads.append(float(g) if isinstance(x, Value) else g)
    return grads


def _grads(x):
    """The current .grad of an input (a copy), to read or to put back."""
    if isinstance(x, Tensor):
        return None if x.grad is None else np.array(x.grad)
    if isinstance(x, Value):
        return x.grad
    return np.array([v.grad for v in x.flat], dtype=np.float64).reshape(x.shape)


def _set_grads(x, grads):
    if isinstance(x, (Tensor, Value)):
        x.grad = grads
    else:
        for v, g in zip(x.flat, np.broadcast_to(grads, x.shape).flat):
            v.grad = float(g)


def analytic_grad(fn, inputs):
    """The gradients one ``fn(*inputs).backward()`` gives, in numerical_grad's format.

    The inputs' ``.grad`` are put back afterwards; other leaves that fn reaches (parameters
    not passed in ``inputs``) accumulate as in any backward pass.
    """
    inputs = _as_list(inputs)
    _validate(inputs)
    saved = [_grads(x) for x in inputs]
    try:
        for x in inputs:
            _set_grads(x, None if isinstance(x, Tensor) else 0.0)
        out = _scalar(fn(*inputs))
        if isinstance(out, Value) or out.requires_grad:  # else no input reaches out: every gradient is 0
            out.backward()
        grads = []
        for x in inputs:
            if not _checked(x):
                grads.append(None)
            elif isinstance(x, Tensor):
                grads.append(np.zeros(x.shape) if x.grad is None else np.array(x.grad, dtype=np.float64))
            else:
                grads.append(_grads(x))
        return grads
    finally:
        for x, g in zip(inputs, saved):
            _set_grads(x, g)


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, *, raise_exception=True):
    """True when backward's gradient of the scalar ``fn(*inputs)`` matches central differences.

    Every element of every checked input is compared:
    ``|analytic - numeric| <= atol + rtol * |numeric|``. Otherwise raises GradcheckError
    naming the input, the element, both values and the error (or returns False when
    ``raise_exception=False``).
    """
    inputs = _as_list(inputs)
    _validate(inputs, eps, atol, rtol)
    analytic = analytic_grad(fn, inputs)
    numeric = numerical_grad(fn, inputs, eps)
    for i, (x, a, n) in enumerate(zip(inputs, analytic, numeric)):
        if n is None:
            continue
        a, n = np.asarray(a, dtype=np.float64), np.asarray(n, dtype=np.float64)
        if a.shape != n.shape:
            error = GradcheckError(f"gradcheck: the analytic gradient of {_describe(i, x)} has shape {a.shape}, "
                                   f"expected {n.shape}", i)
        else:
            error = _compare(i, x, a, n, eps, atol, rtol)
        if error is not None:
            if raise_exception:
                raise error
            return False
    return True


def _compare(i, x, a, n, eps, atol, rtol):
    """A GradcheckError for the first element (row-major) out of tolerance, or None."""
    diff = np.abs(a - n)
    bad = ~(diff <= atol + rtol * np.abs(n))  # a NaN on either side counts as a mismatch
    if not np.any(bad):
        return None
    first = tuple(int(k) for k in np.argwhere(bad)[0])
    where = "" if isinstance(x, Value) else f" at element {_element(x, first)}"
    message = (f"gradcheck: wrong gradient for {_describe(i, x)}{where}:\n"
               f"  analytic {float(a[first])!r}\n"
               f"  numeric  {float(n[first])!r}\n"
               f"  |analytic - numeric| = {diff[first]:.6g} > atol + rtol * |numeric| = "
               f"{atol + rtol * abs(n[first]):.6g}  (eps={eps:g}, atol={atol:g}, rtol={rtol:g})")
    if a.size > 1:
        score = np.where(bad, np.nan_to_num(diff, nan=np.inf), -1.0)
        worst = tuple(int(k) for k in np.unravel_index(np.argmax(score), a.shape))
        message += (f"\n  {int(bad.sum())} of {a.size} elements of this input differ; the largest difference, "
                    f"{diff[worst]:.6g}, is at element {_element(x, worst)}")
    return GradcheckError(message, i, first, float(a[first]), float(n[first]))
