"""The scalar engine: ``Value`` holds one float, records the op that made it, and backpropagates.

Each op computes its result and, beside it, the local derivative d out / d parent for each
parent; backward multiplies those by the incoming gradient (the chain rule) and adds.
"""
import math
from numbers import Real

import numpy as np

from .autograd import Node, _layer


def _number(x, what):
    if isinstance(x, (Real, np.bool_)):
        return float(x)
    raise TypeError(f"Value: {what} must be a real number or a Value, got {type(x).__name__}")


class Value(Node):
    """A scalar in a computation graph: ``.data`` (float) and ``.grad`` (float, 0.0 at creation)."""

    __slots__ = ("_local",)

    def __init__(self, data, parents=(), op="", local=(), name=None):
        self.data = data if type(data) is float else _number(data, "data")
        self.grad = 0.0
        self.parents = parents
        self.op = op
        self._local = local  # d self / d parents[i], computed in the forward pass
        self.name = name
        self.layer = _layer[0]
        self._pending = None

    def __repr__(self):
        name = f", name={self.name!r}" if self.name else ""
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g}{name})"

    # --- the ops: forward value and local derivatives side by side -----------------------
    def __add__(self, other):
        other = other if type(other) is Value else Value(_number(other, "operand"))
        return Value(self.data + other.data, (self, other), "+", (1.0, 1.0))

    def __sub__(self, other):
        other = other if type(other) is Value else Value(_number(other, "operand"))
        return Value(self.data - other.data, (self, other), "-", (1.0, -1.0))

    def __mul__(self, other):
        other = other if type(other) is Value else Value(_number(other, "operand"))
        return Value(self.data * other.data, (self, other), "*", (other.data, self.data))

    def __truediv__(self, other):
        other = other if type(other) is Value else Value(_number(other, "operand"))
        q = _div(self.data, other.data)
        return Value(q, (self, other), "/", (_div(1.0, other.data), _div(-q, other.data)))

    def __pow__(self, k):
        if isinstance(k, Value):
            raise TypeError("Value ** Value is not supported: the exponent must be a number")
        k = _number(k, "exponent")
        return Value(_pow(self.data, k), (self,), f"**{k:g}", (k * _pow(self.data, k - 1),))

    def __neg__(self):
        return Value(-self.data, (self,), "neg", (-1.0,))

    def exp(self):
        e = _exp(self.data)
        return Value(e, (self,), "exp", (e,))

    def log(self):
        return Value(_log(self.data), (self,), "log", (_div(1.0, self.data),))

    def relu(self):
        return Value(self.data if self.data > 0 else 0.0, (self,), "relu", (1.0 if self.data > 0 else 0.0,))

    def leaky_relu(self, negative_slope=0.01):
        slope = 1.0 if self.data > 0 else _number(negative_slope, "negative_slope")
        return Value(self.data * slope, (self,), "leaky_relu", (slope,))

    def sigmoid(self):
        s = sigmoid(self.data)
        return Value(s, (self,), "sigmoid", (s * (1.0 - s),))

    def tanh(self):
        t = math.tanh(self.data)
        return Value(t, (self,), "tanh", (1.0 - t * t,))

    def max(self, other):
        """The larger of self and other; the gradient goes to the larger, to self on a tie."""
        other = other if type(other) is Value else Value(_number(other, "operand"))
        first = self.data >= other.data or other.data != other.data
        return Value(self.data if first else other.data, (self, other), "max", (1.0, 0.0) if first else (0.0, 1.0))

    # --- reflected forms --------------------------------------------------------------------
    __radd__ = __add__

    def __rsub__(self, other):
        return Value(_number(other, "operand")) - self

    __rmul__ = __mul__

    def __rtruediv__(self, other):
        return Value(_number(other, "operand")) / self

    # --- backward -----------------------------------------------------------------------------
    def backward(self):
        """Add d self / d node to ``.grad`` of every node reachable from self (iterative)."""
        self._backward(1.0)

    def _push(self):
        g = self._pending
        for parent, local in zip(self.parents, self._local):
            parent._pending = local * g if parent._pending is None else parent._pending + local * g

    def _accumulate(self):
        self.grad += self._pending

    def _reset_grad(self):
        self.grad = 0.0


def values(array_like, name=None):
    """A numpy object array of leaf Values with the shape of ``array_like``.

    With ``name="X"`` the leaves are named ``X[0,0]``, ``X[0,1]``, ... (``X`` for a 0-d input).
    """
    data = np.asarray(array_like, dtype=np.float64)
    out = np.empty(data.shape, dtype=object)
    for index in np.ndindex(data.shape):
        label = None if name is None else (f"{name}[{','.join(map(str, index))}]" if index else name)
        out[index] = Value(float(data[index]), name=label)
    return out


# IEEE arithmetic on Python floats, as numpy does: inf and nan instead of exceptions.
def _div(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        return math.nan if a == 0 or a != a else math.copysign(math.inf, a) * math.copysign(1.0, b)


def _exp(x):
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _log(x):
    if x > 0:
        return math.log(x)
    return -math.inf if x == 0 else math.nan


def _pow(x, k):
    try:
        r = x ** k
    except ZeroDivisionError:  # 0.0 ** negative
        return math.inf if k != int(k) or int(k) % 2 == 0 else math.copysign(math.inf, x)
    except OverflowError:
        return float(np.power(x, k))
    return r if type(r) is float else math.nan  # a negative base to a fractional power


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: the two-branch form."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
