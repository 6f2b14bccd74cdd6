"""tinygrad_cnn: a small, exact reverse-mode autograd engine for learning how CNNs learn.

``Value`` is a scalar engine, ``Tensor`` a numpy-backed one; both share one graph core.
"""
from .autograd import no_grad
from .engine import Value
from .function import Function
from .tape import Tape
from .tensor import Tensor
from .value_array import ValueArray, values

__version__ = "0.1.0"
__all__ = ["Value", "ValueArray", "values", "Tape", "Tensor", "Function", "no_grad", "__version__"]
