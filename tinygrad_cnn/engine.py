"""The scalar engine: ``Value`` holds one float, records the op that made it, and backpropagates.

Each op computes its result and, beside it, the local derivative d out / d parent for each
parent; backward multiplies those by the incoming gradient (the chain rule) and adds. A node
stores its parents and those numbers in its own slots, not in a closure or a tuple, so a
built-in op's node is one object for the garbage collector to track, with no reference cycles.
"""
import math
from fractions import Fraction
from numbers import Real

import numpy as np

from .autograd import Node, _layer
from .exact import rational


def _number(x, what):
    """``x`` as a float, or a TypeError naming its type."""
    if type(x) is float or type(x) is int or isinstance(x, (Real, np.bool_)):
        return float(x)
    raise TypeError(f"Value: {what} must be a real number, got {type(x).__name__}")


def _shown(k):
    """A number for an op's name (``**2``, ``leaky_relu(0.2)``): short, and exactly k when read back."""
    short = f"{k:g}"
    return short if float(short) == k else repr(k)


def _constant(x, like=0.0):
    """A plain number operand as a leaf Value: exact when it meets the exact number ``like``."""
    if type(like) is Fraction:
        _number(x, "an operand that is not a Value")
        return Value(rational(x))
    return Value(_number(x, "an operand that is not a Value"))


def _checked_custom_op(parents, op, local):
    """The parents and local derivatives of a hand-made node, checked: Values, one number each."""
    parents, local = tuple(parents), tuple(local)
    what = f"Value(..., op={op!r})"
    for i, p in enumerate(parents):
        if not isinstance(p, Value):
            raise TypeError(f"{what}: parent {i} must be a Value, got {type(p).__name__}")
    if len(local) != len(parents):
        raise ValueError(f"{what} has {len(parents)} parent{'s' * (len(parents) != 1)} but {len(local)} local "
                         f"derivative{'s' * (len(local) != 1)}: give one d result / d parent for each parent")
    return parents, tuple(_number(d, f"local derivative {i}") for i, d in enumerate(local))


class Value(Node):
    """A scalar in a computation graph: ``.data`` (float) and ``.grad`` (float, 0.0 at creation).

    ``.data`` may also be a ``Fraction`` (``values(..., dtype="exact")``): exact arithmetic, and
    exact decisions at ReLU and max, until the first transcendental op or float (see ``exact``).

    ``Value(2.0, name="a")`` is a leaf. A custom op is ``Value(result, parents, op, local)``, where
    ``local[i]`` is d result / d parents[i], worked out now, in the forward pass (checked: one
    number per parent). The built-in ops below make their nodes the same way, unchecked (``_op``).

    The local derivatives sit beside the parents (``Node``): ``_da`` for ``_a``, ``_db`` for ``_b``,
    and a tuple in ``_db`` when ``_b`` holds the tuple of three or more parents.
    """

    __slots__ = ("_da", "_db")

    def __init__(self, data, parents=(), op="", local=(), name=None):
        self.data = data if type(data) is float or type(data) is Fraction else _number(data, "data")
        self.grad = 0.0
        self._a = self._b = self._da = self._db = None
        if parents or local:
            parents, local = _checked_custom_op(parents, op, local)
            if len(parents) > 2:
                self._b, self._db = parents, local
            elif parents:
                self._a, self._da = parents[0], local[0]
                if len(parents) == 2:
                    self._b, self._db = parents[1], local[1]
        self.op = op
        self.name = name
        self.layer = _layer[0]
        self._pending = None

    @property
    def _local(self):
        """The local derivatives d self / d parent, aligned with ``parents``."""
        if self._a is None:
            return () if self._b is None else self._db
        return (self._da,) if self._b is None else (self._da, self._db)

    def numbers(self):
        """``.data`` as a 0-d float64 array, as ``ValueArray.numbers()`` and ``Tensor.numbers()`` give theirs."""
        return np.array(float(self.data))

    def grads(self):
        """``.grad`` as a 0-d float64 array."""
        return np.array(self.grad)

    def __repr__(self):
        name = f", name={self.name!r}" if self.name else ""
        return f"Value(data={float(self.data):.6g}, grad={self.grad:.6g}{name})"

    # --- the ops: forward value and local derivatives side by side ----------------------------
    def __add__(self, other):
        other = other if isinstance(other, Value) else _constant(other, self.data)
        return _op(self.data + other.data, "+", self, 1.0, other, 1.0)

    def __sub__(self, other):
        other = other if isinstance(other, Value) else _constant(other, self.data)
        return _op(self.data - other.data, "-", self, 1.0, other, -1.0)

    def __mul__(self, other):
        other = other if isinstance(other, Value) else _constant(other, self.data)
        return _op(self.data * other.data, "*", self, other.data, other, self.data)

    def __truediv__(self, other):
        other = other if isinstance(other, Value) else _constant(other, self.data)
        q = _div(self.data, other.data)
        return _op(q, "/", self, _div(1.0, other.data), other, _div(-q, other.data))

    def __pow__(self, k):
        x = self.data
        if isinstance(k, Value):  # d/dk x**k = x**k ln x, taken as 0 at x = 0 for k >= 0 (as PyTorch)
            p, e = _pow(x, k.data), k.data
            return _op(p, "**", self, e * _pow(x, e - 1) if e else 0.0, k, 0.0 if x == 0 and e >= 0 else p * _log(x))
        k = _number(k, "the exponent")
        return _op(_pow(x, k), f"**{_shown(k)}", self, k * _pow(x, k - 1) if k else 0.0)

    def __neg__(self):
        return _op(-self.data, "neg", self, -1.0)

    def exp(self):
        e = _exp(self.data)
        return _op(e, "exp", self, e)

    def log(self):
        return _op(_log(self.data), "log", self, _div(1.0, self.data))

    def relu(self):
        x = self.data
        if x <= 0:  # an exact zero for exact data
            return _op(0.0 if type(x) is float else _ZERO, "relu", self, 0.0)
        return _op(x, "relu", self, 1.0)

    def leaky_relu(self, negative_slope=0.01):
        slope = _number(negative_slope, "negative_slope")
        op = "leaky_relu" if slope == 0.01 else f"leaky_relu({_shown(slope)})"
        if type(self.data) is Fraction:
            slope = rational(negative_slope)
        if self.data <= 0:
            return _op(self.data * slope, op, self, slope)
        return _op(self.data, op, self, 1.0)

    def sigmoid(self):
        s = sigmoid(self.data)
        return _op(s, "sigmoid", self, s * (1.0 - s))

    def tanh(self):
        t = math.tanh(self.data)
        return _op(t, "tanh", self, 1.0 - t * t)

    def max(self, other):
        """The larger of self and other; the gradient goes to the larger, to self on a tie. NaN wins."""
        other = other if isinstance(other, Value) else _constant(other, self.data)
        if self.data >= other.data or self.data != self.data:
            return _op(self.data, "max", self, 1.0, other, 0.0)
        return _op(other.data, "max", self, 0.0, other, 1.0)

    # --- reflected forms: number op Value ---------------------------------------------------------
    __radd__ = __add__
    __rmul__ = __mul__

    def __rsub__(self, other):
        return _constant(other, self.data) - self

    def __rtruediv__(self, other):
        return _constant(other, self.data) / self

    def __rpow__(self, other):
        return _constant(other, self.data) ** self

    # --- backward ----------------------------------------------------------------------------------
    def backward(self, grad=None):
        """Add d self / d node to ``.grad`` of every node reachable from self (iterative: any depth);
        ``grad`` (a number, 1.0 by default) is d loss / d self, as Tensor.backward(grad) takes it."""
        self._backward(1.0 if grad is None else _number(grad, "grad"))

    def _terms(self, g):
        """The chain rule at this node: (parent, local derivative * g) for each parent, given g = d loss / d self."""
        return [(parent, local * g) for parent, local in zip(self.parents, self._local)]

    def _push(self):
        """The chain rule: this node's gradient g is complete; add it to .grad and local derivative * g
        to each parent's sum (as _terms, on the slots: the hot loop of backward)."""
        g = self._pending
        self._pending = None
        self.grad += g
        a, b = self._a, self._b
        if a is not None:
            a._pending += self._da * g
            if b is not None:
                b._pending += self._db * g
        elif b is not None:  # three or more parents
            for parent, local in zip(b, self._db):
                parent._pending += local * g

    def _reset_grad(self):
        self.grad = 0.0


class Held(Value):
    """A constant computed from other Values and held out of the gradient (softmax's shift by the
    max): a leaf of the graph, as a number would be. ``sources`` are the Values it was computed from,
    so that a ``Tape`` works it out again for each example."""

    __slots__ = ("sources",)

    def __init__(self, data, sources):
        super().__init__(data)
        self.sources = tuple(sources)


# --- IEEE arithmetic on Python floats, as numpy does: inf and nan instead of exceptions -------------
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
    """x ** k as C99 pow: a negative base to a fractional power is nan, overflow and 0 ** negative are inf."""
    if type(x) is Fraction and math.isfinite(k) and k == int(k):  # an exact base to a whole power stays exact
        k = int(k)
    try:
        r = x ** k
    except (ZeroDivisionError, OverflowError):  # 0 ** negative, or a result beyond the float range
        if x < 0 and k != math.floor(k):
            return math.nan
        odd = k == math.floor(k) and k % 2 == 1  # (k % 2 alone rounds to 1 for k just above -1)
        return math.copysign(math.inf, x) if odd else math.inf  # odd integer powers keep the sign
    return r if type(r) is float or type(r) is Fraction else math.nan  # Python gives a complex for a negative base to a fraction


_new = object.__new__
_ZERO = Fraction(0)


def _op(data, op, a, da, b=None, db=None):
    """The result ``data`` of the built-in op ``op`` on the Value a (d data / d a = da) and, for a
    binary op, on b (db). Right by construction: no checks."""
    v = _new(Value)
    v.data = data
    v.grad = 0.0
    v.op = op
    v._a = a
    v._da = da
    v._b = b
    v._db = db
    v.name = None
    v.layer = _layer[0]
    v._pending = None
    return v


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow: the two-branch form."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)
