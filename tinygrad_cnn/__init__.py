"""tinygrad_cnn: a small, exact reverse-mode autograd engine for learning how CNNs learn.

``Value`` is a scalar engine, ``Tensor`` a numpy-backed one; both share one graph core.
"""
from .engine import Value, values
from .tensor import Tensor, no_grad

__version__ = "0.1.0"
__all__ = ["Value", "values", "Tensor", "no_grad", "__version__"]
