"""Optimisers with PyTorch's update rules: SGD (momentum, weight decay) and Adam.

Parameters are Tensors or numpy object arrays of Value; both are updated in place.
"""
import numpy as np

from .tensor import Tensor


def _get(p):
    if isinstance(p, Tensor):
        return p.data, (np.zeros_like(p.data) if p.grad is None else p.grad)
    data = np.array([v.data for v in p.flat]).reshape(p.shape)
    return data, np.array([v.grad for v in p.flat]).reshape(p.shape)


def _set(p, data):
    if isinstance(p, Tensor):
        p.data[...] = data
    else:
        for v, x in zip(p.flat, data.flat):
            v.data = float(x)


class Optimizer:
    def __init__(self, params, defaults):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for p in self.params:
            if not (isinstance(p, Tensor) or isinstance(p, np.ndarray) and p.dtype == object):
                raise TypeError(f"{type(self).__name__}: parameters must be Tensors or Value arrays, "
                                f"got {type(p).__name__}")
        for key, value in defaults.items():
            setattr(self, key, value)
        self.state = [dict() for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            if isinstance(p, Tensor):
                p.grad = None
            else:
                for v in p.flat:
                    v.grad = 0.0

    def step(self):
        for p, state in zip(self.params, self.state):
            data, grad = _get(p)
            _set(p, data - self._update(grad, data, state))

    def state_dict(self):
        """The optimiser's buffers as arrays (``"3.exp_avg"``: buffer of parameter 3) and its step."""
        out = {}
        for i, state in enumerate(self.state):
            for key, value in state.items():
                out[f"{i}.{key}"] = np.asarray(value)
        return out

    def load_state_dict(self, state_dict):
        states = [dict() for _ in self.params]
        for key, value in state_dict.items():
            index, _, name = key.partition(".")
            if not index.isdigit() or int(index) >= len(self.params):
                raise KeyError(f"{type(self).__name__}.load_state_dict: unexpected key {key!r}")
            states[int(index)][name] = np.array(value) if np.ndim(value) else np.asarray(value).item()
        self.state = states


class SGD(Optimizer):
    """p -= lr * v, v = momentum * v + (grad + weight_decay * p)  (PyTorch's SGD)."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def _update(self, grad, data, state):
        grad = grad + self.weight_decay * data if self.weight_decay else grad
        if self.momentum:
            grad = state["momentum_buffer"] = (self.momentum * state["momentum_buffer"] + grad
                                               if "momentum_buffer" in state else grad.copy())
        return self.lr * grad


class Adam(Optimizer):
    """Adam (Kingma and Ba) with PyTorch's defaults and bias correction."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        if lr < 0 or eps < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Adam: need lr >= 0, eps >= 0 and betas in [0, 1), got {lr}, {eps}, {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    def _update(self, grad, data, state):
        b1, b2 = self.betas
        step = state["step"] = state.get("step", 0) + 1
        m = state["exp_avg"] = b1 * state.get("exp_avg", 0.0) + (1 - b1) * grad
        v = state["exp_avg_sq"] = b2 * state.get("exp_avg_sq", 0.0) + (1 - b2) * grad * grad
        m_hat = m / (1 - b1 ** step)
        return self.lr * m_hat / (np.sqrt(v / (1 - b2 ** step)) + self.eps)
