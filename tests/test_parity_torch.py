"""PyTorch parity in float64 (run by `make parity`; skipped without torch): every functional op's
value and gradients, small CNNs end to end, and optimiser steps against torch.optim."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.nn as nn
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.models import tiny_cnn10
from tinygrad_cnn.optim import SGD, Adam
from tinygrad_cnn.testing import strategies

torch = pytest.importorskip("torch")
TF = torch.nn.functional
pytestmark = pytest.mark.parity

X = np.array([[2, 1, 0, 2, 1], [2, 1, 1, 0, 2], [1, 2, 0, 1, 0], [1, 0, 2, 1, 2], [2, 1, 1, 0, 0]], float)
SEEDS = st.integers(0, 2 ** 32 - 1)
TIGHT = dict(rtol=1e-12, atol=1e-12)


def both(ours, theirs, arrays, G=None):
    """Run ``ours`` on Tensors and ``theirs`` on torch tensors (float64, None passed through); backward
    of sum(out * G) (of out for a scalar); assert equal outputs and input gradients."""
    mine = [None if a is None else Tensor(a, requires_grad=True) for a in arrays]
    ref = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = ours(*mine), theirs(*ref)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), **TIGHT)
    if G is None:
        out.backward()
        expected.backward()
    else:
        out.backward(G)
        expected.backward(torch.tensor(G))
    for m, r in zip(mine, ref):
        if m is not None:
            np.testing.assert_allclose(m.grad, r.grad.numpy(), **TIGHT)


def gradient_for(fn, *arrays):
    shape = fn(*(None if a is None else Tensor(a) for a in arrays)).shape
    return np.random.default_rng(len(shape)).normal(size=shape)


def torch_pads(padding, kernel):
    """F.pad's (left, right, top, bottom) for our padding (int, pair, 'valid' or 'same')."""
    if padding == "valid":
        pads = [(0, 0)] * len(kernel)
    elif padding == "same":
        pads = [((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel]
    else:
        pads = [(p, p) for p in ((padding,) * len(kernel) if isinstance(padding, int) else padding)]
    return [side for before_after in reversed(pads) for side in before_after]


def torch_conv(conv, padding, padding_mode, stride, kernel):
    """PyTorch's conv with our padding: zeros through ``padding`` itself, replicate through F.pad."""
    def run(x, w, b):
        if padding_mode == "zeros":
            return conv(x, w, b, stride=stride, padding=padding)
        return conv(TF.pad(x, torch_pads(padding, kernel), mode="replicate"), w, b, stride=stride)
    return run


# --- functional ops ---------------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@given(strategies.conv2d_configs(string_padding=True), SEEDS)
def test_conv2d_matches_torch(cfg, seed):
    x, w, b = strategies.conv2d_inputs(cfg, np.random.default_rng(seed))
    ours = lambda x, w, b: F.conv2d(x, w, b, cfg["stride"], cfg["padding"], cfg["padding_mode"])  # noqa: E731
    both(ours, torch_conv(TF.conv2d, cfg["padding"], cfg["padding_mode"], cfg["stride"], cfg["kernel"]), [x, w, b],
         gradient_for(ours, x, w, b))


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@given(st.integers(0, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 2),
       st.integers(0, 2) | st.sampled_from(["valid", "same"]), st.sampled_from(["zeros", "replicate"]), SEEDS)
def test_conv1d_matches_torch(batch, c, o, k, stride, padding, mode, seed):
    stride = 1 if padding == "same" else stride
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(c, 6) if batch == 0 else (batch, c, 6))
    w, b = rng.normal(size=(o, c, k)), rng.normal(size=o)
    ours = lambda x, w, b: F.conv1d(x, w, b, stride, padding, mode)  # noqa: E731
    both(ours, torch_conv(TF.conv1d, padding, mode, stride, (k,)), [x, w, b], gradient_for(ours, x, w, b))


@given(strategies.pool2d_configs(), st.booleans(), SEEDS)
def test_pools_match_torch_ties_included(cfg, ties, seed):
    rng = np.random.default_rng(seed)
    x = strategies.pool2d_input(cfg, rng)
    if ties:  # few distinct values: many windows with several largest entries
        x = np.round(x)
    ours = (lambda x: F.max_pool2d(x, cfg["kernel"], cfg["stride"])) if cfg["mode"] == "max" else (
        lambda x: F.avg_pool2d(x, cfg["kernel"], cfg["stride"]))
    theirs = (lambda x: TF.max_pool2d(x, cfg["kernel"], cfg["stride"])) if cfg["mode"] == "max" else (
        lambda x: TF.avg_pool2d(x, cfg["kernel"], cfg["stride"]))
    both(ours, theirs, [x], gradient_for(ours, x))


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.booleans(), SEEDS)
def test_linear_matches_torch(n, i, o, bias, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.normal(size=(n, i)), rng.normal(size=(o, i)), rng.normal(size=o) if bias else None
    both(F.linear, TF.linear, [x, w, b], rng.normal(size=(n, o)))


ELEMENTWISE = {
    "relu": (F.relu, TF.relu), "sigmoid": (F.sigmoid, torch.sigmoid), "tanh": (F.tanh, torch.tanh),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    "softmax": (lambda x: F.softmax(x, -1), lambda x: TF.softmax(x, -1)),
    "log_softmax": (lambda x: F.log_softmax(x, 0), lambda x: TF.log_softmax(x, 0)),
    "flatten": (lambda x: F.flatten(x, 1), lambda x: torch.flatten(x, 1)),
}


@pytest.mark.parametrize("name", ELEMENTWISE)
@given(x=strategies.arrays(shape=strategies.shapes(min_dims=2, max_dims=3), elements=strategies.finite_floats(-30, 30)))
def test_activations_softmax_and_flatten_match_torch(name, x):
    ours, theirs = ELEMENTWISE[name]
    both(ours, theirs, [x], gradient_for(ours, x))


@given(strategies.shapes(max_dims=3), SEEDS)
def test_losses_match_torch(shape, seed):
    rng = np.random.default_rng(seed)
    p, z, t = rng.uniform(1e-6, 1 - 1e-6, size=shape), rng.normal(scale=5, size=shape), rng.uniform(size=shape)
    tt = torch.tensor(t)
    both(lambda p: F.binary_cross_entropy(p, t), lambda p: TF.binary_cross_entropy(p, tt), [p])
    both(lambda z: F.binary_cross_entropy_with_logits(z, t), lambda z: TF.binary_cross_entropy_with_logits(z, tt), [z])
    both(lambda z: F.mse_loss(z, t), lambda z: TF.mse_loss(z, tt), [z])
    logits, target = rng.normal(size=(shape[0], 4)), rng.integers(0, 4, size=shape[0])
    both(lambda x: F.cross_entropy(x, target), lambda x: TF.cross_entropy(x, torch.tensor(target)), [logits])


def test_binary_cross_entropy_clamps_like_torch():
    p, t = np.array([0.0, 1.0, 1.0, 0.0, 0.3]), np.array([1.0, 0.0, 1.0, 0.0, 0.4])
    ours = F.binary_cross_entropy(Tensor(p), t).item()
    assert abs(ours - TF.binary_cross_entropy(torch.tensor(p), torch.tensor(t)).item()) < 1e-13


# --- whole networks ---------------------------------------------------------------------------------------
def torch_net(arch, model):
    """The architecture in torch.nn with the same weights."""
    tnn, layers, c = torch.nn, [], arch.in_channels
    activations = {"relu": tnn.ReLU, "tanh": tnn.Tanh, "sigmoid": tnn.Sigmoid, "leaky_relu": tnn.LeakyReLU}
    for block in arch.blocks:
        layers += [tnn.Conv2d(c, block.out_channels, block.kernel, block.stride, block.padding,
                              padding_mode=block.padding_mode), activations[block.activation]()]
        if block.pool:
            layers.append((tnn.MaxPool2d if block.pool == "max" else tnn.AvgPool2d)(block.pool_kernel))
        c = block.out_channels
    net = tnn.Sequential(*layers, tnn.Flatten(), tnn.Linear(int(np.prod(arch.features())), arch.classes)).double()
    net.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    return net


@given(strategies.cnn_architectures(min_classes=2))
def test_small_cnns_match_torch_loss_and_every_gradient(arch):
    model, x = arch.build(), arch.input()
    net, tx = torch_net(arch, model), torch.tensor(x.data, requires_grad=True)
    target = np.arange(arch.batch) % arch.classes
    loss = F.cross_entropy(model(x), target)
    expected = TF.cross_entropy(net(tx), torch.tensor(target))
    loss.backward()
    expected.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), **TIGHT)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TIGHT)
    for (name, p), (tname, tp) in zip(model.named_parameters(), net.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TIGHT, err_msg=name)


def test_tiny_cnn10_matches_torch_in_float64():
    model = tiny_cnn10()
    loss = F.binary_cross_entropy(model(Tensor(X.reshape(1, 1, 5, 5))), [[1.0]])
    loss.backward()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 2), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(4, 1), torch.nn.Sigmoid()).double()
    net.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    ref = TF.binary_cross_entropy(net(torch.tensor(X).reshape(1, 1, 5, 5)), torch.ones(1, 1, dtype=torch.float64))
    ref.backward()
    assert abs(loss.item() - ref.item()) < 1e-12
    for (name, p), (tname, tp) in zip(model.named_parameters(), net.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=0, atol=1e-12)


# --- optimisers ------------------------------------------------------------------------------------------------
OPTIMISERS = {
    "SGD": (lambda ps: SGD(ps, lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "SGD momentum decay": (lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
                           lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01)),
    "Adam": (lambda ps: Adam(ps), lambda ps: torch.optim.Adam(ps)),
    "Adam options": (lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
                     lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
}


@pytest.mark.parametrize("name", OPTIMISERS)
def test_optimiser_steps_on_a_small_cnn_match_torch_optim(name):
    arch = strategies.CNNArchitecture(batch=3, in_channels=1, size=6, classes=3, seed=5, blocks=(
        strategies.ConvBlock(2, 3, 1, 1, "zeros", "tanh", "max", 2),))
    model = arch.build()
    net = torch_net(arch, model)
    ours, theirs = OPTIMISERS[name][0](model.parameters()), OPTIMISERS[name][1](net.parameters())
    x = np.random.default_rng(0).normal(size=(3, 1, 6, 6))
    target = np.array([0, 1, 2])
    for _ in range(5):
        ours.zero_grad()
        F.cross_entropy(model(Tensor(x)), target).backward()
        ours.step()
        theirs.zero_grad()
        TF.cross_entropy(net(torch.tensor(x)), torch.tensor(target)).backward()
        theirs.step()
    for (key, value), (tkey, tvalue) in zip(model.state_dict().items(), net.state_dict().items()):
        assert key == tkey
        np.testing.assert_allclose(value, tvalue.numpy(), rtol=1e-10, atol=1e-12)


def test_modules_initialise_like_torch_uniform_within_one_over_sqrt_fan_in():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for ours, theirs, fan_in in [(nn.Conv2d(3, 16, 5, rng=rng), torch.nn.Conv2d(3, 16, 5), 75),
                                 (nn.Linear(60, 40, rng=rng), torch.nn.Linear(60, 40), 60)]:
        for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert name == tname and p.shape == tuple(tp.shape)
            for draws in (p.data, tp.detach().numpy()):  # both within the bound; the many weights fill it
                assert np.abs(draws).max() <= 1 / np.sqrt(fan_in), name
                assert name == "bias" or np.abs(draws).max() > 0.95 / np.sqrt(fan_in)
