"""The suite catches wrong gradients: deliberately wrong backward rules that gradcheck must reject.

Each wrong rule is injected without editing the engines: a Tensor rule by replacing its entry
in the rule table (``tensor.PRIMITIVES``) or a backward kernel of ``tinygrad_cnn.backend``,
a Value rule by replacing the Value method; monkeypatch restores the right one afterwards.
Every case first passes with the right rule, so each rejection is the wrong rule's doing.
"""
import math

import numpy as np
import pytest
from hypothesis import given

import tinygrad_cnn.nn.functional as F
import tinygrad_cnn.backend as backend
import tinygrad_cnn.tensor as tensor
from tinygrad_cnn import Tensor, Value, values
from tinygrad_cnn.engine import sigmoid
from tinygrad_cnn.testing import GradcheckError, gradcheck, strategies


def leaves(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.normal(size=s), requires_grad=True, name=f"t{i}") for i, s in enumerate(shapes)]


def value_leaves(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [values(rng.normal(size=s), f"v{i}") for i, s in enumerate(shapes)]


def rule(op, wrong, parent=0):
    """A patch replacing the backward rule of ``op`` for one parent in tensor.PRIMITIVES (forward, rule, ...)."""
    entry = list(tensor.PRIMITIVES[op])
    entry[1 + parent] = wrong
    return lambda mp: mp.setitem(tensor.PRIMITIVES, op, tuple(entry))


def helper(name, wrong):
    """A patch replacing the backward kernel ``tinygrad_cnn.backend.<name>`` by ``wrong(original)``."""
    return lambda mp: mp.setattr(backend, name, wrong(getattr(backend, name)))


def method(name, wrong):
    return lambda mp: mp.setattr(Value, name, wrong)


def first_slice(original):
    """Takes one copy of a broadcast gradient instead of summing the copies."""
    def unbroadcast(g, shape):
        g = g[(0,) * (g.ndim - len(shape))]
        return g[tuple(slice(0, 1) if n == 1 else slice(None) for n in shape)]
    return unbroadcast


def assigned(g, shape, index):
    """x[index]'s adjoint written by assignment: an entry read twice gets one copy, not the sum."""
    out = np.zeros(shape, dtype=g.dtype)
    out[index] = g
    return out


def push_overwriting(self):
    """Value fan-out not summed: a parent reached twice keeps only the last path."""
    g = self._pending
    self._pending = None
    self.grad += g
    for parent, local in zip(self.parents, self._local):
        parent._pending = local * g


def elementwise(fn, shape=(3, 4)):
    return lambda: gradcheck(lambda x: fn(x).sum(), leaves(shape))


def two_inputs(fn):
    return lambda: gradcheck(lambda a, b: fn(a, b).sum(), leaves((3, 4), (3, 4)))


def positive_pair(fn):
    return lambda: gradcheck(lambda a, b: fn(a, b).sum(), [Tensor(np.abs(t.data) + 0.5, requires_grad=True)
                                                           for t in leaves((2, 3), (2, 3))])


def max_pool():
    x = Tensor(strategies.distinct_values(np.random.default_rng(1), (1, 2, 4, 4)), requires_grad=True)
    return gradcheck(lambda x: (F.max_pool2d(x, 2) * np.arange(1.0, 9.0).reshape(1, 2, 2, 2)).sum(), [x])


def conv(stride=1, padding=0, padding_mode="zeros"):
    return lambda: gradcheck(lambda x, w: (F.conv2d(x, w, None, stride, padding, padding_mode) ** 2).sum(),
                             leaves((1, 2, 5, 5), (2, 2, 3, 3)))


def linear_bias():
    return gradcheck(lambda x, w, b: F.linear(x, w, b).tanh().sum(), leaves((3, 4), (2, 4), (2,)))


def row_sums():
    x, w = leaves((3, 3), (3,))
    return gradcheck(lambda x: (x.sum(axis=1) * w.data).sum(), [x])


def value_fn(fn, *shapes):
    return lambda: gradcheck(lambda *xs: fn(*xs).sum(), value_leaves(*shapes))


def value_max_pool():
    X = values(strategies.distinct_values(np.random.default_rng(1), (1, 1, 4, 4)), "X")
    return gradcheck(lambda X: (F.max_pool2d(X, 2) * np.arange(1.0, 5.0).reshape(1, 1, 2, 2)).sum(), [X])


CASES = {
    "sub: sign of d/db flipped": (rule("-", lambda g: g, parent=1),
                                  two_inputs(lambda a, b: (a - b).tanh())),
    "mul: factor y dropped from d/da": (rule("*", lambda g, x, y: g),
                                        two_inputs(lambda a, b: a * b)),
    "div: quotient-rule sign flipped": (rule("/", lambda g, y, q: g * q / y, parent=1),
                                        positive_pair(lambda a, b: a / b)),
    "maximum: routed to the smaller": (rule("maximum", lambda g, x, y: g * (x < y)),
                                       two_inputs(lambda a, b: a.maximum(b) * a)),
    "sigmoid: factor (1 - s) dropped": (rule("sigmoid", lambda g, s: g * s),
                                        elementwise(Tensor.sigmoid)),
    "tanh: square dropped": (rule("tanh", lambda g, t: g * (1 - t)), elementwise(Tensor.tanh)),
    "pow: factor k dropped": (rule("**", lambda g, x, y, out: g * x ** (y - 1)),
                              elementwise(lambda x: x ** 3)),
    "exp: factor exp(x) dropped": (rule("exp", lambda g, e: g), elementwise(Tensor.exp)),
    "log: x instead of 1 / x": (rule("log", lambda g, x: g * x),
                                elementwise(lambda x: (x * x + 0.5).log())),
    "neg: sign kept": (rule("neg", lambda g: g), elementwise(lambda x: (-x).exp())),
    "relu: mask inverted": (rule("relu", lambda g, x: g * (x <= 0)), elementwise(Tensor.relu)),
    "leaky_relu: slope on the wrong side": (rule("leaky_relu",
                                                 lambda g, x, s: g * np.where(x > 0, s, 1)),
                                            elementwise(lambda x: x.leaky_relu(0.1))),
    "max: routed to the smallest entry": (helper("first_argmax_mask", lambda mask: lambda x, axes: mask(-x, axes)),
                                          max_pool),
    "max: gradient to every entry": (helper("first_argmax_mask", lambda mask: lambda x, axes: np.ones_like(x)),
                                     elementwise(lambda x: x.max(axis=1))),
    "broadcast: one copy taken instead of the sum": (helper("unbroadcast", first_slice), linear_bias),
    "sum: gradient spread along the wrong axis": (helper("keep", lambda keep: lambda g, shape, axes, keepdims: g),
                                                  row_sums),
    "windows: scattered with stride 1": (rule("windows", lambda g, shape, kernel, stride, dilation:
                                              backend.scatter_windows(g, shape, kernel, (1,) * len(stride), dilation)), conv(stride=2)),
    "windows: kernel flipped (convolution for cross-correlation)": (
        rule("windows", lambda g, shape, kernel, stride, dilation:
             backend.scatter_windows(g[..., ::-1, ::-1], shape, kernel, stride, dilation)), conv()),
    "pad: replicated edges not added back": (
        rule("index", assigned),
        conv(padding=1, padding_mode="replicate")),
    "Value *: each factor gets its own value": (
        method("__mul__", lambda self, o: Value(self.data * o.data, (self, o), "*", (self.data, o.data))),
        value_fn(lambda a, b: a * b, (2, 3), (2, 3))),
    "Value -: sign of d/d subtrahend kept": (
        method("__sub__", lambda self, o: Value(self.data - o.data, (self, o), "-", (1.0, 1.0))),
        lambda: gradcheck(lambda a, b: (a - b) * a, [Value(0.8), Value(1.7)])),
    "Value neg: sign kept": (method("__neg__", lambda self: Value(-self.data, (self,), "neg", (1.0,))),
                             lambda: gradcheck(lambda a: -a, [Value(0.4)])),
    "Value exp: x instead of exp(x)": (method("exp", lambda self: Value(math.exp(self.data), (self,), "exp",
                                                                        (self.data,))),
                                       lambda: gradcheck(lambda a: a.exp(), [Value(0.4)])),
    "Value log: x instead of 1 / x": (method("log", lambda self: Value(math.log(self.data), (self,), "log",
                                                                       (self.data,))),
                                      lambda: gradcheck(lambda a: a.log(), [Value(0.4)])),
    "Value relu: mask inverted": (method("relu", lambda self: Value(max(self.data, 0.0), (self,), "relu",
                                                                    (float(self.data <= 0),))),
                                  value_fn(lambda a: np.frompyfunc(Value.relu, 1, 1)(a), (4,))),
    "Value /: sign of d/d divisor flipped": (
        method("__truediv__", lambda self, o: Value(self.data / o.data, (self, o), "/",
                                                    (1 / o.data, self.data / o.data ** 2))),
        lambda: gradcheck(lambda a, b: a / b, [Value(0.8), Value(1.7)])),
    "Value tanh: square dropped": (method("tanh", lambda self: Value(math.tanh(self.data), (self,), "tanh",
                                                                     (1 - math.tanh(self.data),))),
                                   value_fn(lambda a: np.frompyfunc(Value.tanh, 1, 1)(a), (3,))),
    "Value sigmoid: factor (1 - s) dropped": (
        method("sigmoid", lambda self: Value(sigmoid(self.data), (self,), "sigmoid", (sigmoid(self.data),))),
        lambda: gradcheck(lambda a: a.sigmoid(), [Value(0.3)])),
    "Value max: routed to the smaller": (
        method("max", lambda self, o: Value(max(self.data, o.data), (self, o), "max",
                                            (0.0, 1.0) if self.data >= o.data else (1.0, 0.0))),
        value_max_pool),
    "Value **: factor k dropped": (method("__pow__", lambda self, k: Value(self.data ** k, (self,), "**",
                                                                           (self.data ** (k - 1),))),
                                   lambda: gradcheck(lambda a: a ** 3, [Value(1.3)])),
    "Value fan-out not summed": (method("_push", push_overwriting),
                                 lambda: gradcheck(lambda a: a * a + a, [Value(0.9)])),
    "Value fan-out in a conv not summed": (method("_push", push_overwriting),
                                           value_fn(lambda x, w: F.conv2d(x, w), (1, 1, 3, 3), (1, 1, 2, 2))),
}


@pytest.mark.parametrize("patch, check", CASES.values(), ids=CASES.keys())
def test_the_right_rule_passes_and_the_wrong_one_is_rejected(monkeypatch, patch, check):
    assert check()
    patch(monkeypatch)
    with pytest.raises(GradcheckError) as info:
        check()
    e = info.value
    assert isinstance(e.input, int) and str(e).startswith("gradcheck: ")
    assert f"input {e.input} (" in str(e)
    if e.index is not None:  # a wrong value (the other kind of report is a wrong shape)
        assert f"\n  analytic {e.analytic!r}\n  numeric  {e.numeric!r}\n" in str(e) + "\n"
        assert not abs(e.analytic - e.numeric) <= 1e-5 + 1e-3 * abs(e.numeric)


def test_a_property_based_test_finds_a_wrong_rule(monkeypatch):
    @given(strategies.arrays(shape=strategies.shapes(max_dims=2)))
    def test_sigmoid_gradient(a):
        assert gradcheck(lambda x: x.sigmoid().sum(), [Tensor(a, requires_grad=True)])

    test_sigmoid_gradient()
    rule("sigmoid", lambda g, s: g * s * s)(monkeypatch)
    with pytest.raises(GradcheckError, match="wrong gradient for input 0"):
        test_sigmoid_gradient()


GUARDED = {  # wrong rules whose gradient has another shape than its input: the core refuses them
    "broadcast: not summed back at all": (helper("unbroadcast", lambda unbroadcast: lambda g, shape: g),
                                          linear_bias, "backward of +"),
    "permute: not undone": (rule("permute", lambda g, undo: g),
                            lambda: gradcheck(lambda x: x.permute(2, 0, 1).sum(), leaves((2, 3, 4))), "backward of permute"),
}


@pytest.mark.parametrize("patch, check, op", GUARDED.values(), ids=GUARDED.keys())
def test_a_gradient_of_the_wrong_shape_is_refused(monkeypatch, patch, check, op):
    assert check()
    patch(monkeypatch)
    with pytest.raises(RuntimeError, match=op + ".* has shape"):
        check()
