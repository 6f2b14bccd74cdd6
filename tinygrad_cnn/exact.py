"""Exact numbers for the piecewise-linear part of a pass, so that kinks are decided as by hand.

A hand computation of 0.4 + 0.2 - 0.2 - 0.4 gives 0, and ReLU blocks it; float64, summing in
another order, may give 5.55e-17 and let it pass. With ``dtype="exact"`` (``Tensor(data,
dtype="exact")``, ``values(data, dtype="exact")``, ``model.to_engine(engine, "exact")``) the numbers
are ``fractions.Fraction``: the decimals a person wrote (a float is read as the shortest decimal
that gives it back: 0.1 is 1/10). Sums, products, ReLU, max and the pools stay exact; the first
transcendental op (exp, log, sigmoid, tanh) and anything that meets a float give float64 from there
on. Gradients are float64 throughout. Infinities (a max-pool's padding) stay floats.
"""
import math
from decimal import Decimal
from fractions import Fraction

import numpy as np

EXACT = "exact"


def rational(x):
    """``x`` as a Fraction: ints, Decimals and decimal strings exactly, a float as its shortest decimal
    (``repr``); infinities and NaN stay floats (no Fraction holds them)."""
    if type(x) is Fraction:
        return x
    if isinstance(x, (int, np.integer, np.bool_, Decimal)):
        return Fraction(x) if not isinstance(x, Decimal) or x.is_finite() else float(x)
    if isinstance(x, str):
        return rational(Decimal(x))
    if not math.isfinite(x):
        return float(x)
    return Fraction(str(x) if isinstance(x, np.floating) else repr(float(x)))  # numpy's str: its own shortest


_rationals = np.frompyfunc(rational, 1, 1)


def rationals(array_like):
    """An object array of ``rational`` numbers with the shape of ``array_like`` (a fresh array)."""
    a = np.asarray(array_like)
    if a.dtype == object or a.dtype.kind in "biuf":
        out = _rationals(a)
        return np.asarray(out, dtype=object) if isinstance(out, np.ndarray) else np.array(out, dtype=object)
    raise TypeError(f"exact: expected real numbers, got an array of {a.dtype}")


def _inexact(v):
    return type(v) is not Fraction and type(v) is not int and not (isinstance(v, float) and math.isinf(v))


_is_inexact = np.frompyfunc(_inexact, 1, 1)


def settle(a):
    """An object array that holds a finite float (or anything not rational) as float64; else as it is."""
    return a.astype(np.float64) if a.size and np.any(_is_inexact(a)) else a


def real(a):
    """A numpy array as float64 when it is exact (for the transcendental ops); others as they are."""
    return a.astype(np.float64) if a.dtype == object else a


def is_exact(a):
    """Whether a numpy array (or Tensor data) holds exact numbers."""
    return getattr(a, "dtype", None) == object
