"""SGD and Adam against their reference update formulas, written out here step by step, on
Tensor and Value parameters; zero_grad, state_dict and bad arguments."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.nn as nn
from tinygrad_cnn import Tensor, values
from tinygrad_cnn.optim import SGD, Adam

SEEDS = st.integers(0, 2 ** 32 - 1)


def sgd_reference(p, grads, lr, momentum, weight_decay):
    """PyTorch's SGD, element by element, over a sequence of gradients."""
    p, buf = [float(v) for v in p], None
    for g in grads:
        d = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        if momentum:
            buf = list(d) if buf is None else [momentum * b + di for b, di in zip(buf, d)]
            d = buf
        p = [pi - lr * di for pi, di in zip(p, d)]
    return p


def adam_reference(p, grads, lr, betas, eps):
    """Adam with bias correction (Kingma and Ba, as PyTorch), element by element."""
    p = [float(v) for v in p]
    m, v = [0.0] * len(p), [0.0] * len(p)
    for t, g in enumerate(grads, start=1):
        m = [betas[0] * mi + (1 - betas[0]) * gi for mi, gi in zip(m, g)]
        v = [betas[1] * vi + (1 - betas[1]) * gi * gi for vi, gi in zip(v, g)]
        p = [pi - lr * (mi / (1 - betas[0] ** t)) / (math.sqrt(vi / (1 - betas[1] ** t)) + eps)
             for pi, mi, vi in zip(p, m, v)]
    return p


def run(make, engine, start, grads):
    """Give a parameter the gradients one step at a time (through a loss sum(g * p)) and step."""
    param = Tensor(start, requires_grad=True) if engine == "tensor" else values(start)
    opt = make([param])
    for g in grads:
        opt.zero_grad()
        loss = (param * g).sum()
        loss.backward()
        opt.step()
    return param.numbers()


OPTIMISERS = st.one_of(
    st.builds(lambda lr, m, wd: ("sgd", dict(lr=lr, momentum=m, weight_decay=wd)),
              st.floats(0.001, 1), st.sampled_from([0.0, 0.5, 0.9]), st.sampled_from([0.0, 0.01, 0.3])),
    st.builds(lambda lr, b1, b2, eps: ("adam", dict(lr=lr, betas=(b1, b2), eps=eps)),
              st.floats(0.001, 0.5), st.sampled_from([0.0, 0.9]), st.sampled_from([0.5, 0.999]),
              st.sampled_from([1e-8, 1e-3])))


@pytest.mark.parametrize("engine", ["tensor", "value"])
@given(OPTIMISERS, st.integers(1, 4), st.integers(1, 5), SEEDS)
def test_steps_follow_the_reference_formulas(engine, optimiser, size, steps, seed):
    kind, options = optimiser
    rng = np.random.default_rng(seed)
    start, grads = rng.normal(size=size), rng.normal(size=(steps, size))
    make = (lambda ps: SGD(ps, **options)) if kind == "sgd" else (lambda ps: Adam(ps, **options))
    reference = (sgd_reference(start, grads, **options) if kind == "sgd" else adam_reference(start, grads, **options))
    np.testing.assert_allclose(run(make, engine, start, grads), reference, rtol=1e-12, atol=1e-14)


def test_sgd_by_hand():
    p = Tensor([1.0, -2.0], requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    for _ in range(2):
        opt.zero_grad()
        (p * Tensor([1.0, 1.0])).sum().backward()
        opt.step()
    # step 1: d = 1 + 0.5 p = (1.5, 0); p = (0.85, -2)
    # step 2: d = (1.425, 0), v = 0.9 (1.5, 0) + d = (2.775, 0); p = (0.5725, -2)
    np.testing.assert_allclose(p.data, [0.5725, -2.0], rtol=1e-15)


def test_adam_first_step_moves_each_parameter_by_lr_against_the_gradient_sign():
    p = Tensor([1.0, 1.0, 1.0], requires_grad=True)
    opt = Adam([p], lr=0.01)
    (p * Tensor([3.0, -0.001, 0.0])).sum().backward()
    opt.step()
    np.testing.assert_allclose(p.data, [0.99, 1.01, 1.0], rtol=1e-6)


def test_float32_parameters_stay_float32_and_are_updated_in_place():
    layer = nn.Linear(3, 2, dtype=np.float32)
    weight = layer.weight.data
    opt = Adam(layer.parameters())
    layer(Tensor(np.ones((1, 3), np.float32))).sum().backward()
    opt.step()
    assert layer.weight.data is weight and weight.dtype == np.float32


FLOAT32_OPTIMISERS = {"sgd": lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
                      "adam": lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6)}


def float32_steps(make, steps=6):
    """A float32 parameter given float32 gradients (through a loss sum(g * p)) for ``steps`` steps:
    (the parameter, the optimiser, start, gradients)."""
    rng = np.random.default_rng(1)
    start, grads = rng.normal(size=5).astype(np.float32), rng.normal(size=(steps, 5)).astype(np.float32)
    param = Tensor(start, requires_grad=True)
    opt = make([param])
    for g in grads:
        opt.zero_grad()
        (param * g).sum().backward()
        opt.step()
    return param, opt, start, grads


@pytest.mark.parametrize("kind", FLOAT32_OPTIMISERS)
def test_float32_parameters_are_updated_in_float32_buffers(kind):
    param, opt, start, grads = float32_steps(FLOAT32_OPTIMISERS[kind])
    assert param.dtype == np.float32
    buffers = {key: value.dtype for key, value in opt.state_dict().items() if value.ndim}
    assert buffers and set(buffers.values()) == {np.dtype(np.float32)}, buffers
    options = {k: getattr(opt, k) for k in ("lr", "momentum", "weight_decay", "betas", "eps") if hasattr(opt, k)}
    reference = (sgd_reference if kind == "sgd" else adam_reference)(start, grads, **options)  # in float64
    np.testing.assert_allclose(param.data, reference, rtol=1e-6, atol=1e-6)  # float32 rounding of 6 steps


def test_load_state_dict_casts_the_buffers_to_their_parameters_dtype():
    single, double = Tensor(np.ones(2, np.float32), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    opt = Adam([single, double])
    opt.load_state_dict({"0.step": np.int64(2), "0.exp_avg": np.array([0.1, 0.2]), "0.exp_avg_sq": np.ones(2),
                         "1.step": 2, "1.exp_avg": np.ones(3, np.float32), "1.exp_avg_sq": np.ones(3, np.float32)})
    dtypes = {key: value.dtype for key, value in opt.state_dict().items()}
    assert dtypes == {"0.step": np.int64, "0.exp_avg": np.float32, "0.exp_avg_sq": np.float32,
                      "1.step": np.int64, "1.exp_avg": np.float64, "1.exp_avg_sq": np.float64}
    assert opt.state[0]["step"] == 2 and type(opt.state[0]["step"]) is int


@pytest.mark.parity
@pytest.mark.parametrize("kind", FLOAT32_OPTIMISERS)
def test_float32_steps_match_torch_optim_in_float32(kind):
    torch = pytest.importorskip("torch")
    param, _, start, grads = float32_steps(FLOAT32_OPTIMISERS[kind])
    theirs = torch.tensor(start, requires_grad=True)
    opt = (torch.optim.SGD([theirs], lr=0.1, momentum=0.9, weight_decay=0.01) if kind == "sgd" else
           torch.optim.Adam([theirs], lr=0.01, betas=(0.8, 0.99), eps=1e-6))
    for g in grads:
        theirs.grad = torch.tensor(g)
        opt.step()
    assert theirs.dtype == torch.float32
    np.testing.assert_allclose(param.data, theirs.detach().numpy(), rtol=2e-7, atol=1e-7)  # a few float32 roundings


def test_a_parameter_without_gradient_only_decays():
    p = Tensor([2.0], requires_grad=True)
    SGD([p], lr=0.5, weight_decay=0.1).step()
    np.testing.assert_allclose(p.data, [2.0 - 0.5 * 0.2])


def test_zero_grad_clears_tensor_and_value_parameters():
    p, v = Tensor([1.0], requires_grad=True), values([1.0, 2.0])
    (p * 3).sum().backward()
    (v * 3).sum().backward()
    SGD([p, v], lr=0.1).zero_grad()
    assert p.grad is None and [x.grad for x in v] == [0.0, 0.0]


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(4, 3))

    def steps(opt, p, gs):
        for g in gs:
            opt.zero_grad()
            (p * g).sum().backward()
            opt.step()
    for make in (lambda ps: Adam(ps, lr=0.1), lambda ps: SGD(ps, lr=0.1, momentum=0.9)):
        a = Tensor(np.ones(3), requires_grad=True)
        opt_a = make([a])
        steps(opt_a, a, grads)
        b = Tensor(np.ones(3), requires_grad=True)
        opt_b = make([b])
        steps(opt_b, b, grads[:2])
        saved = {k: np.array(v) for k, v in opt_b.state_dict().items()}
        resumed = make([b])
        resumed.load_state_dict(saved)
        steps(resumed, b, grads[2:])
        np.testing.assert_array_equal(b.data, a.data)


@pytest.mark.parametrize("make, error, words", [
    (lambda: SGD([], lr=0.1), ValueError, "SGD: got an empty parameter list"),
    (lambda: SGD([Tensor([1.0])], lr=0.1), TypeError, "SGD: parameter 0 must be a Tensor that requires grad"),
    (lambda: SGD([np.ones(2)], lr=0.1), TypeError, "got ndarray"),
    (lambda: SGD([Tensor([1.0], requires_grad=True)], lr=-1), ValueError, "SGD: lr must be >= 0, got -1"),
    (lambda: SGD([Tensor([1.0], requires_grad=True)], lr=0.1, momentum=-0.5), ValueError, "momentum must be >= 0"),
    (lambda: Adam([Tensor([1.0], requires_grad=True)], betas=(0.9, 1.0)), ValueError,
     "betas must be two numbers in [0, 1)"),
    (lambda: Adam([Tensor([1.0], requires_grad=True)], eps=float("nan")), ValueError, "eps must be >= 0, got nan"),
    (lambda: SGD([Tensor([1.0], requires_grad=True)], lr=0.1).load_state_dict({"3.momentum_buffer": 1.0}), KeyError,
     "unexpected key '3.momentum_buffer'"),
])
def test_bad_arguments_are_refused_with_the_reason(make, error, words):
    with pytest.raises(error) as info:
        make()
    assert words in str(info.value)
