"""Custom operations with their own backward, as ``torch.autograd.Function``.

    class Softplus(Function):
        @staticmethod
        def forward(ctx, x):                 # numpy arrays in, a numpy array out
            ctx.save_for_backward(x)
            return np.logaddexp(0.0, x)
        @staticmethod
        def backward(ctx, grad):             # d loss / d output in; one gradient per input
            (x,) = ctx.saved_tensors
            return grad / (1.0 + np.exp(-x))

    y = Softplus.apply(t)                    # a Tensor node drawn as "Softplus"

On Tensors the output is one node whose rule calls ``backward``. On Value arrays (or Values)
the same numpy code makes one Value per output element, its local derivatives the rows of
the Jacobian that ``backward`` gives for one-hot cotangents.
"""
import numpy as np

from .autograd import _grad_enabled
from .engine import Value
from .tensor import Tensor, _node
from .value_array import ValueArray, as_value_array


class Context:
    """What ``forward`` leaves for ``backward``: ``save_for_backward(*arrays)`` / ``saved_tensors``,
    ``needs_input_grad`` (a bool per input), and any attribute you set."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.saved_tensors = ()

    def save_for_backward(self, *arrays):
        self.saved_tensors = arrays


class Function:
    """Subclass with static ``forward(ctx, *inputs)`` and ``backward(ctx, grad)``; call ``apply``.

    forward gets numpy arrays for the Tensor (or Value array) inputs and every other argument as
    it is, and returns one array. backward gets d loss / d output (an array of the output's shape)
    and returns one gradient per input of forward (a tuple, or the array itself for one input):
    an array of that input's shape, or None (no gradient, e.g. for a non-array argument).
    """

    @staticmethod
    def forward(ctx, *inputs):
        raise NotImplementedError("a Function subclass must define forward(ctx, *inputs)")

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("a Function subclass must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *inputs):
        """Run forward on the inputs' numbers and record one node (Tensors) or a node per output element
        (Value arrays) whose gradients come from backward."""
        values_at = [i for i, x in enumerate(inputs) if as_value_array(x) is not None]
        tensors_at = [i for i, x in enumerate(inputs) if isinstance(x, Tensor)]
        if values_at and tensors_at:
            raise TypeError(f"{cls.__name__}.apply: cannot mix Tensors (inputs {tensors_at}) and Values "
                            f"(inputs {values_at})")
        if values_at:
            return _apply_to_values(cls, inputs, values_at)
        needs = tuple(isinstance(x, Tensor) and x.requires_grad and _grad_enabled[0] for x in inputs)
        ctx = Context(needs)
        out = _output(cls, cls.forward(ctx, *[x.data if isinstance(x, Tensor) else x for x in inputs]))
        parents = tuple(inputs[i] for i in tensors_at)
        rules = tuple(_rule(cls, ctx, inputs, i) for i in tensors_at)
        return _node(out, parents, cls.__name__, (cls.forward, *rules), ())


def _output(cls, out):
    """forward's result as a float array, or a TypeError naming the Function."""
    if isinstance(out, (Tensor, ValueArray)) or not isinstance(out, (np.ndarray, int, float, np.number)):
        raise TypeError(f"{cls.__name__}.forward must return a numpy array, got {type(out).__name__}")
    out = np.asarray(out)
    if out.dtype.kind not in "biuf":
        raise TypeError(f"{cls.__name__}.forward must return numbers, got an array of {out.dtype}")
    return out if out.dtype.kind == "f" else out.astype(np.float64)


def _gradients(cls, ctx, grad, inputs):
    """backward's result as one entry per input (a tuple even for one input), checked in count and kind."""
    grads = cls.backward(ctx, grad)
    grads = grads if isinstance(grads, (tuple, list)) else (grads,)
    if len(grads) != len(inputs):
        raise ValueError(f"{cls.__name__}.backward returned {len(grads)} gradient{'s' * (len(grads) != 1)} "
                         f"but forward takes {len(inputs)} input{'s' * (len(inputs) != 1)}")
    for i, g in enumerate(grads):
        if g is not None and not isinstance(g, (np.ndarray, int, float, np.number)):
            raise TypeError(f"{cls.__name__}.backward: the gradient for input {i} must be a numpy array or None, "
                            f"got {type(g).__name__}")
    return grads


def _gradient(cls, grads, i, shape, dtype):
    """Input i's gradient as an array of ``shape`` (zeros for None), or an error naming both shapes."""
    d = np.zeros(shape, dtype=dtype) if grads[i] is None else np.asarray(grads[i], dtype=dtype)
    if d.shape != tuple(shape):
        raise RuntimeError(f"backward of {cls.__name__}: the gradient for input {i} has shape {d.shape} "
                           f"but the input has shape {tuple(shape)}")
    return d


def _rule(cls, ctx, inputs, i):
    """The backward rule of input i: one call of backward per pass serves every input (cached on ctx)."""
    def rule(g):
        if getattr(ctx, "_grad_of", None) is not g:
            ctx._grads, ctx._grad_of = _gradients(cls, ctx, g, inputs), g
        return _gradient(cls, ctx._grads, i, inputs[i].shape, g.dtype)
    return rule


def _apply_to_values(cls, inputs, values_at):
    """One Value per output element; its local derivatives from backward with a one-hot cotangent."""
    arrays = [as_value_array(x) if i in values_at else x for i, x in enumerate(inputs)]
    ctx = Context(tuple(i in values_at for i in range(len(inputs))))
    out = _output(cls, cls.forward(ctx, *[a.numbers() if i in values_at else a for i, a in enumerate(arrays)]))
    parents = [v for i in values_at for v in arrays[i].flat]
    nodes = np.empty(out.shape, dtype=object)
    for e in np.ndindex(out.shape):
        onehot = np.zeros(out.shape)
        onehot[e] = 1.0
        grads = _gradients(cls, ctx, onehot, inputs)
        local = [d for i in values_at for d in _gradient(cls, grads, i, arrays[i].shape, np.float64).ravel().tolist()]
        kept = [(p, d) for p, d in zip(parents, local) if d != 0.0]  # an edge only where the output depends
        nodes[e] = Value(float(out[e]), tuple(p for p, _ in kept), cls.__name__, tuple(d for _, d in kept))
    return nodes.view(ValueArray) if nodes.ndim else nodes[()]
