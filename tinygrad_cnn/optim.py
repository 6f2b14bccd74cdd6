"""Optimisers with PyTorch's update rules: SGD (momentum, weight decay) and Adam.

Parameters are Tensors or Value arrays; both are updated in place. As in PyTorch, an optimiser's
buffers (Adam's moments, SGD's momentum) are in the dtype of their parameter: a float32 parameter
is updated in float32, and ``load_state_dict`` casts saved buffers to it.
"""
import numpy as np

from .nn import is_parameter


class Optimizer:
    """Holds the parameters (in order) and a state dict per parameter; ``step`` applies ``_update``."""

    def __init__(self, params, defaults):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not is_parameter(p):
                raise TypeError(f"{type(self).__name__}: parameter {i} must be a Tensor that requires grad or "
                                f"a Value array, got {type(p).__name__}")
        for key, value in defaults.items():
            setattr(self, key, value)
        self.state = [dict() for _ in self.params]

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()

    def step(self):
        """Update every parameter once from its gradient (a missing gradient counts as zeros)."""
        for p, state in zip(self.params, self.state):
            data = p.numbers()
            p.copy_(data - self._update(p.grads(), data, state))

    def state_dict(self):
        """The optimiser's buffers as arrays (``"3.exp_avg"``: buffer of parameter 3) and steps."""
        return {f"{i}.{key}": np.asarray(value) for i, state in enumerate(self.state) for key, value in state.items()}

    def load_state_dict(self, state_dict):
        """Take the buffers and steps of ``state_dict`` (as ``state_dict()`` returns them), each buffer
        cast to its parameter's dtype (as PyTorch's ``load_state_dict``): float64 buffers resume a
        float32 parameter in float32."""
        states = [dict() for _ in self.params]
        for key, value in state_dict.items():
            index, _, name = key.partition(".")
            if not index.isdigit() or int(index) >= len(self.params) or not name:
                raise KeyError(f"{type(self).__name__}.load_state_dict: unexpected key {key!r} "
                               f"(keys are '<parameter index>.<buffer>' for {len(self.params)} parameters)")
            dtype = self.params[int(index)].numbers().dtype
            states[int(index)][name] = np.array(value, dtype=dtype) if np.ndim(value) else np.asarray(value).item()
        self.state = states


def _check(name, **numbers_at_least_0):
    bad = {k: v for k, v in numbers_at_least_0.items() if not v >= 0}
    if bad:
        raise ValueError(f"{name}: " + ", ".join(f"{k} must be >= 0, got {v}" for k, v in bad.items()))


class SGD(Optimizer):
    """Stochastic gradient descent as PyTorch's: g = grad + weight_decay * p;
    with momentum, v = momentum * v + g (v = g on the first step) and g = v; then p -= lr * g."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        _check("SGD", lr=lr, momentum=momentum, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def _update(self, grad, data, state):
        if self.weight_decay:
            grad = grad + self.weight_decay * data
        if self.momentum:
            buffer = state.get("momentum_buffer")
            grad = state["momentum_buffer"] = grad.copy() if buffer is None else self.momentum * buffer + grad
        return self.lr * grad


class Adam(Optimizer):
    """Adam (Kingma and Ba) as PyTorch's: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
    p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        _check("Adam", lr=lr, eps=eps)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps))

    def _update(self, grad, data, state):
        b1, b2 = self.betas
        step = state["step"] = state.get("step", 0) + 1
        m = state["exp_avg"] = b1 * state.get("exp_avg", 0.0) + (1 - b1) * grad
        v = state["exp_avg_sq"] = b2 * state.get("exp_avg_sq", 0.0) + (1 - b2) * grad * grad
        return self.lr * (m / (1 - b1 ** step)) / (np.sqrt(v / (1 - b2 ** step)) + self.eps)
