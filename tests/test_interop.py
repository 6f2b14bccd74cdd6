"""tinygrad_cnn.interop: to_torch / from_torch give the same outputs and gradients (parity tests need torch)."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import assume, given

from tinygrad_cnn import Tensor, interop, values
from tinygrad_cnn import nn as tnn
from tinygrad_cnn.models import square_detector15
from tinygrad_cnn.testing import strategies as st_cnn

parity = pytest.mark.parity


def test_package_imports_without_torch():
    """Every module of the package imports with torch unavailable; interop says how to get it."""
    code = textwrap.dedent("""
        import importlib, pkgutil, sys
        sys.modules["torch"] = None  # "import torch" now raises ImportError
        import tinygrad_cnn
        failed = []
        for info in pkgutil.walk_packages(tinygrad_cnn.__path__, "tinygrad_cnn."):
            if info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except ImportError as e:
                if "torch" in str(e):
                    failed.append(info.name)
        print("failed", failed)
        from tinygrad_cnn import interop, models
        try:
            interop.to_torch(models.square_detector15())
        except ImportError as e:
            print(e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "failed []" in out
    assert "tinygrad_cnn.interop needs PyTorch: pip install torch" in out


# ----------------------------------------------------------------------------- parity with PyTorch

def torch_net(torch, arch):
    """``arch`` (a CNNArchitecture) built from torch.nn layers, float64, seeded by arch.seed."""
    t = torch.nn
    torch.manual_seed(arch.seed)
    layers, c = [], arch.in_channels
    for b in arch.blocks:
        layers += [t.Conv2d(c, b.out_channels, b.kernel, b.stride, b.padding, padding_mode=b.padding_mode),
                   {"relu": t.ReLU, "leaky_relu": t.LeakyReLU, "tanh": t.Tanh, "sigmoid": t.Sigmoid}[b.activation]()]
        layers += [{"max": t.MaxPool2d, "avg": t.AvgPool2d}[b.pool](b.pool_kernel)] if b.pool else []
        c = b.out_channels
    head = t.Linear(int(np.prod(arch.features())), arch.classes)
    return t.Sequential(t.Sequential(*layers), t.Flatten(), head).double()


def run_ours(model, x, weights):
    """Output, input gradient and parameter gradients of sum(model(x) * weights)."""
    model.zero_grad()
    xt = Tensor(x, requires_grad=True)
    out = model(xt)
    (out * Tensor(weights)).sum().backward()
    grads = {k: np.asarray(p.grad) for k, p in model.named_parameters()}
    return out.data, xt.grad, grads


def run_torch(torch, net, x, weights):
    xt = torch.tensor(x, requires_grad=True)
    out = net(xt)
    (out * torch.tensor(weights)).sum().backward()
    return out.detach().numpy(), xt.grad.numpy(), {k: p.grad.numpy() for k, p in net.named_parameters()}


def assert_same_run(a, b):
    out_a, dx_a, grads_a = a
    out_b, dx_b, grads_b = b
    np.testing.assert_allclose(out_a, out_b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx_a, dx_b, rtol=1e-10, atol=1e-12)
    assert grads_a.keys() == grads_b.keys()
    for k in grads_a:
        np.testing.assert_allclose(grads_a[k], grads_b[k], rtol=1e-10, atol=1e-12, err_msg=k)


def weights_for(out):
    return np.random.default_rng(0).normal(size=out.shape)


@parity
@given(st_cnn.small_cnns())
def test_to_torch_gives_the_same_outputs_and_gradients(cnn):
    torch = pytest.importorskip("torch")
    model, x = cnn
    net = interop.to_torch(model)
    assert all(p.dtype == torch.float64 for p in net.parameters())
    assert list(net.state_dict()) == list(model.state_dict())
    w = weights_for(model(x))
    assert_same_run(run_ours(model, x.data, w), run_torch(torch, net, x.data, w))


@parity
@given(st_cnn.cnn_architectures())
def test_from_torch_gives_the_same_outputs_and_gradients(arch):
    torch = pytest.importorskip("torch")
    net = torch_net(torch, arch)
    model = interop.from_torch(net)
    assert [type(m).__name__ for _, m in model.named_modules()] == [type(m).__name__ for m in net.modules()]
    x = arch.input()
    assume(st_cnn.kink_margin(model, x) > 1e-3)  # max-pool ties could pick different arg-maxes
    x = x.data
    w = weights_for(model(Tensor(x)))
    assert_same_run(run_ours(model, x, w), run_torch(torch, net, x, w))
    back = interop.to_torch(model)  # and the round trip keeps every weight bit for bit
    for k, v in net.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)


@parity
def test_every_layer_setting_survives_both_ways():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    model = tnn.Sequential(
        tnn.Conv2d(1, 2, (3, 2), stride=(2, 1), padding=(1, 0), padding_mode="replicate", bias=False, rng=rng),
        tnn.LeakyReLU(0.2), tnn.MaxPool2d(2, stride=1), tnn.AvgPool2d((1, 2), (1, 2)), tnn.Flatten(2),
        tnn.Linear(6, 3, rng=rng), tnn.Tanh())
    net = interop.to_torch(model)
    x = rng.normal(size=(2, 1, 7, 6))
    w = rng.normal(size=(2, 2, 3))
    assert_same_run(run_ours(model, x, w), run_torch(torch, net, x, w))
    back = interop.from_torch(net)
    assert repr(back) == repr(model)
    assert_same_run(run_ours(back, x, w), run_ours(model, x, w))


@parity
def test_value_engine_models_convert_both_ways():
    torch = pytest.importorskip("torch")
    model = square_detector15(seed=3, engine="value")
    net = interop.to_torch(model)
    x = np.random.default_rng(0).uniform(size=(2, 1, 6, 6))
    ours = np.array([[v.data for v in row] for row in model(values(x))])
    np.testing.assert_allclose(ours, net(torch.tensor(x)).detach().numpy(), rtol=1e-12)
    back = interop.from_torch(net, engine="value")
    assert tnn.engine_of(back[0].weight) == "value"
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k], v)


@parity
def test_float32_torch_weights_and_padding_strings():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding="same"), torch.nn.Conv2d(3, 1, 2, padding="valid"))
    model = interop.from_torch(net)  # float32 weights are copied exactly into float64
    assert model[0].padding == "same" and model[1].padding == "valid"
    x = np.random.default_rng(1).normal(size=(1, 2, 5, 5))
    expected = net.double()(torch.tensor(x)).detach().numpy()
    np.testing.assert_allclose(model(Tensor(x)).data, expected, rtol=1e-12, atol=1e-14)


@parity
def test_to_torch_leaves_torch_random_state_alone():
    torch = pytest.importorskip("torch")
    state = torch.get_rng_state()
    interop.to_torch(square_detector15())
    assert torch.equal(state, torch.get_rng_state())


class Custom(tnn.Module):
    def forward(self, x):
        return x


def _torch_unsupported(torch):
    t = torch.nn
    return [
        (t.Sequential(t.Conv2d(1, 2, 3), t.BatchNorm2d(2)), "BatchNorm2d is not supported; supported layers: Seq"),
        (t.ModuleList([t.ReLU()]), "ModuleList is not supported"),
        (t.Sequential(t.Conv2d(1, 1, 3), t.Upsample(scale_factor=2)), "Upsample is not supported"),
    ]


@parity
def test_every_setting_of_the_supported_layers_converts_both_ways():
    torch = pytest.importorskip("torch")
    t = torch.nn
    torch.manual_seed(0)
    net = t.Sequential(t.Conv2d(2, 4, 3, dilation=2, padding=2, padding_mode="circular", groups=2),
                       t.MaxPool2d(3, 2, padding=1, ceil_mode=True), t.Conv2d(4, 4, 2, padding="same", groups=4,
                                                                             padding_mode="reflect"),
                       t.AvgPool2d(2, 1, padding=1, count_include_pad=False), t.Flatten(1, 2), t.Softmax(1),
                       t.LogSoftmax(2), t.Flatten(1), t.Dropout(0.3)).double().eval()
    model = interop.from_torch(net).eval()
    x = np.random.default_rng(1).normal(size=(2, 2, 7, 6))
    xt = torch.tensor(x, requires_grad=True)
    expected = net(xt)
    ours = model(Tensor(x))
    np.testing.assert_allclose(ours.data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    back = interop.to_torch(model).eval()
    np.testing.assert_allclose(back(torch.tensor(x)).detach().numpy(), expected.detach().numpy(), rtol=1e-12)


@parity
def test_unsupported_layers_are_named():
    torch = pytest.importorskip("torch")
    for net, words in _torch_unsupported(torch):
        with pytest.raises(TypeError, match=words):
            interop.from_torch(net)
    with pytest.raises(TypeError, match="to_torch: Custom is not supported; supported layers: Sequential"):
        interop.to_torch(tnn.Sequential(tnn.ReLU(), Custom()))
    with pytest.raises(ValueError, match="engine must be one of"):
        interop.from_torch(torch.nn.ReLU(), engine="numpy")
