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

__all__ = ["gradcheck", "gradcheck_numpy", "numerical_grad", "central_differences", "analytic_grad",
           "GradcheckError", "NumericallyUnreliable"]


class GradcheckError(AssertionError):
    """An analytic gradient differs from the numeric one; the message says where and by how much.

    Attributes: ``input`` (position in ``inputs``), ``index`` (element index, a tuple),
    ``analytic`` and ``numeric`` (the two derivatives at that element).
    """

    def __init__(self, message, input=None, index=None, analytic=None, numeric=None):
        super().__init__(message)
        self.input, self.index, self.analytic, self.numeric = input, index, analytic, numeric


class NumericallyUnreliable(Exception):
    """The central differences are less accurate than the tolerance at this point, so they can
    neither confirm nor refute the analytic gradient (fn rounds too much, or a kink lies within
    2 eps): not a GradcheckError. Attributes as GradcheckError's, and ``error``, the numeric
    side's estimated error."""

    def __init__(self, message, input=None, index=None, analytic=None, numeric=None, error=None):
        super().__init__(message)
        self.input, self.index, self.analytic, self.numeric, self.error = input, index, analytic, numeric, error


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
    raise ValueError(f"gradcheck: fn must return a Tensor, a Value or a Value array, got {type(out).__name__}{shape}")


def _evaluate(fn, inputs):
    with no_grad():
        return float(np.asarray(_scalar(fn(*inputs)).data).item())


# --- the two gradients ------------------------------------------------------------------------
_ROUNDING = np.finfo(np.float64).eps  # a unit in the last place of each evaluation, relative


def _difference(evaluate, eps, with_error):
    """(f(+eps) - f(-eps)) / (2 eps) of evaluate(step), and an estimate of its error: how far the
    same difference at eps / 2 and at 2 eps lie from it (rounding in f grows as the step shrinks,
    truncation and kinks as it grows, so they disagree by about the larger of the two) plus the
    rounding of f itself."""
    up, down = evaluate(eps), evaluate(-eps)
    d = (up - down) / (2 * eps)
    if not with_error:
        return d, 0.0
    others = [(evaluate(h) - evaluate(-h)) / (2 * h) for h in (eps / 2, 2 * eps)]
    return d, max(abs(d - o) for o in others) + _ROUNDING * max(abs(up), abs(down)) / eps


def central_differences(f, array, eps=1e-6):
    """d f / d array[i] for every element by central differences, and an error estimate of each.

    ``f`` takes a float64 array of ``array``'s shape and returns a number: a function of your own,
    outside any graph. Returns two float64 arrays of ``array``'s shape.
    """
    x = np.array(array, dtype=np.float64)
    grad, error = np.zeros(x.shape), np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        def evaluate(step):
            nudged = x.copy()
            nudged[idx] += step
            return float(f(nudged))
        grad[idx], error[idx] = _difference(evaluate, eps, True)
    return grad, error


def numerical_grad(fn, inputs, eps=1e-6, *, with_error=False):
    """Central differences (f(x + eps) - f(x - eps)) / (2 eps) for every element of every input.

    ``fn(*inputs)`` must return a scalar. Returns one entry per input: a float64 array of
    the input's shape (a float for a Value; None for a Tensor that does not require grad).
    With ``with_error=True``, pairs (gradient, error estimate) (see ``central_differences``).
    """
    inputs = _as_list(inputs)
    _validate(inputs, eps)
    out = []
    for x in inputs:
        if not _checked(x):
            out.append((None, None) if with_error else None)
            continue
        g, err = np.zeros(_shape(x)), np.zeros(_shape(x))
        for idx in np.ndindex(g.shape):
            original = _read(x, idx)

            def evaluate(step):
                _write(x, idx, original + step)
                return _evaluate(fn, inputs)
            try:
                g[idx], err[idx] = _difference(evaluate, eps, with_error)
            finally:
                _write(x, idx, original)
        g, err = (float(g), float(err)) if isinstance(x, Value) else (g, err)
        out.append((g, err) if with_error else g)
    return out


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


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, *, raise_exception=True, full_jacobian=False, seed=0):
    """True when backward's gradients of ``fn(*inputs)`` match central differences.

    A scalar output is checked as it is. A non-scalar one (a Tensor or a Value array) is checked
    through sum(output * u) for a random cotangent u (seeded by ``seed``): a vector-Jacobian
    product, so a backward that mixes up elements is caught (``.sum()`` alone would not catch
    it); ``full_jacobian=True`` checks every output element on its own (the whole Jacobian).
    Every element of every checked input is compared: ``|analytic - numeric| <= atol + rtol *
    |numeric|``. Otherwise raises GradcheckError naming the input, the element, both values and
    the error (or returns False when ``raise_exception=False``). Where the numeric derivative
    itself is less accurate than that tolerance (rounding in fn, or a kink within 2 eps), it can
    neither confirm nor refute: NumericallyUnreliable is raised instead.
    """
    inputs = _as_list(inputs)
    _validate(inputs, eps, atol, rtol)
    for scalar_fn, what in _scalar_checks(fn, inputs, full_jacobian, seed):
        error = _check(scalar_fn, inputs, eps, atol, rtol, what)
        if error is not None:
            if raise_exception or isinstance(error, NumericallyUnreliable):
                raise error
            return False
    return True


def _scalar_checks(fn, inputs, full_jacobian, seed):
    """(scalar function, how the report names it) pairs that together check fn."""
    with no_grad():
        out = fn(*inputs)
    if not isinstance(out, (Tensor, np.ndarray)) or out.size == 1:
        return [(fn, "")]  # a scalar (or something _scalar refuses)
    if full_jacobian:
        return [(lambda *xs, e=e: fn(*xs)[e], f" of output element {e}") for e in np.ndindex(out.shape)]
    u = np.random.default_rng(seed).standard_normal(out.shape)
    return [(lambda *xs: (fn(*xs) * u).sum(), f" of sum(output * u), u a random cotangent of shape {out.shape} "
                                               f"(seed={seed})")]


def _check(fn, inputs, eps, atol, rtol, what):
    """A GradcheckError or NumericallyUnreliable for the first input that fails, or None."""
    analytic = analytic_grad(fn, inputs)
    numeric = numerical_grad(fn, inputs, eps, with_error=True)
    unreliable = None
    for i, (x, a, (n, err)) in enumerate(zip(inputs, analytic, numeric)):
        if n is None:
            continue
        a, n, err = (np.asarray(v, dtype=np.float64) for v in (a, n, err))
        if a.shape != n.shape:
            return GradcheckError(f"gradcheck: the analytic gradient of {_describe(i, x)} has shape {a.shape}, "
                                  f"expected {n.shape}", i)
        tolerance = atol + rtol * np.abs(n)
        doubtful = ~(err <= tolerance)
        error = _compare(i, x, np.where(doubtful, n, a), n, eps, atol, rtol, what)  # judged where reliable
        if error is not None:
            return error
        if unreliable is None and doubtful.any():
            unreliable = _unreliable(i, x, a, n, err, tolerance, doubtful, eps, what)
    return unreliable


def _unreliable(i, x, a, n, err, tolerance, doubtful, eps, what):
    first = tuple(int(k) for k in np.argwhere(doubtful)[0])
    where = "" if isinstance(x, Value) else f" at element {_element(x, first)}"
    return NumericallyUnreliable(
        f"gradcheck: the numeric derivative is numerically unreliable here, for {_describe(i, x)}{where}{what}:\n"
        f"  numeric  {float(n[first])!r}, estimated error {float(err[first]):.3g} > the tolerance "
        f"{float(tolerance[first]):.3g}\n  analytic {float(a[first])!r}\n"
        f"  (central differences at eps={eps:g}, {eps / 2:g} and {2 * eps:g} disagree: rounding in fn, or a "
        f"kink within {2 * eps:g}); {int(doubtful.sum())} of {n.size} elements of this input are so",
        i, first, float(a[first]), float(n[first]), float(err[first]))


def _compare(i, x, a, n, eps, atol, rtol, what=""):
    """A GradcheckError for the first element (row-major) out of tolerance, or None."""
    diff = np.abs(a - n)
    bad = ~(diff <= atol + rtol * np.abs(n))  # a NaN on either side counts as a mismatch
    if not np.any(bad):
        return None
    first = tuple(int(k) for k in np.argwhere(bad)[0])
    where = "" if isinstance(x, Value) else f" at element {_element(x, first)}"
    message = (f"gradcheck: wrong gradient for {_describe(i, x)}{where}{what}:\n"
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


def gradcheck_numpy(f, vjp, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, *, full_jacobian=False, seed=0):
    """gradcheck for code outside this package: ``f(*arrays) -> array`` and its hand-written
    ``vjp(cotangent, *arrays) -> one array per input`` (a tuple, or the array for one input).

    The pair is wrapped as a Function (forward f, backward vjp) over float64 Tensors of
    ``inputs``, and checked as gradcheck checks (random cotangents, or the whole Jacobian).
    """
    from ..function import Function

    def forward(ctx, *arrays):
        ctx.save_for_backward(*arrays)
        return f(*arrays)

    def backward(ctx, grad):
        return vjp(grad, *ctx.saved_tensors)
    name = getattr(f, "__name__", "f")
    op = type(name if name.isidentifier() else "f", (Function,),
              {"forward": staticmethod(forward), "backward": staticmethod(backward)})
    tensors = [Tensor(np.array(a, dtype=np.float64), requires_grad=True, name=f"input {i}")
               for i, a in enumerate(inputs)]
    return gradcheck(op.apply, tensors, eps, atol, rtol, full_jacobian=full_jacobian, seed=seed)
