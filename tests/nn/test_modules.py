"""tinygrad_cnn.nn modules: PyTorch's initialisation bounds, state_dict keys and load_state_dict
checks, parameters on either engine, and a module of one engine run on the other's input."""
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_cnn.nn as nn
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import no_grad, Tensor, Value, values
from tinygrad_cnn.testing import strategies

SEEDS = st.integers(0, 2 ** 32 - 1)


def numbers(x):
    return x.numbers() if not isinstance(x, Value) else np.float64(x.data)


# --- initialisation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make, fan_in", [
    (lambda rng: nn.Conv2d(3, 8, 5, rng=rng), 3 * 25),
    (lambda rng: nn.Conv2d(2, 4, (3, 2), rng=rng), 2 * 6),
    (lambda rng: nn.Linear(50, 40, rng=rng), 50),
])
def test_weights_and_biases_are_uniform_in_plus_minus_one_over_sqrt_fan_in(make, fan_in):
    layer = make(np.random.default_rng(0))
    bound = 1 / np.sqrt(fan_in)
    for p in (layer.weight, layer.bias):
        assert p.dtype == np.float64 and np.all(np.abs(p.data) <= bound)
    # drawn over the whole interval: the extremes come close to the bound, the mean close to 0
    assert np.abs(layer.weight.data).max() > 0.9 * bound and abs(layer.weight.data.mean()) < 0.2 * bound


def test_a_seeded_rng_gives_the_same_weights_on_both_engines_and_none_gives_fresh_ones():
    a = nn.Conv2d(1, 2, 3, rng=np.random.default_rng(7))
    b = nn.Conv2d(1, 2, 3, engine="value", rng=np.random.default_rng(7))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb
        np.testing.assert_array_equal(va, vb)
    assert not np.array_equal(nn.Linear(4, 4).weight.data, nn.Linear(4, 4).weight.data)


def test_defaults_and_attributes_follow_pytorch():
    conv = nn.Conv2d(1, 2, 3)
    assert (conv.stride, conv.padding, conv.padding_mode, conv.kernel_size) == ((1, 1), (0, 0), "zeros", (3, 3))
    assert conv.weight.shape == (2, 1, 3, 3) and conv.bias.shape == (2,) and conv.weight.requires_grad
    assert nn.Conv2d(1, 2, 3, bias=False).bias is None and nn.Linear(3, 2, bias=False).bias is None
    assert nn.MaxPool2d(2).stride is None and nn.LeakyReLU().negative_slope == 0.01 and nn.Flatten().start_dim == 1
    assert nn.Linear(3, 2, dtype=np.float32).weight.dtype == np.float32
    assert repr(nn.Sequential(nn.Linear(3, 2), nn.ReLU())) == (
        "Sequential(\n  (0): Linear(in_features=3, out_features=2)\n  (1): ReLU()\n)")


# --- state_dict -------------------------------------------------------------------------------------------
class Net(nn.Module):
    def __init__(self, engine="tensor"):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 2, engine=engine, rng=np.random.default_rng(1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8, 3, engine=engine, rng=np.random.default_rng(2)))

    def forward(self, x):
        return self.head(F.relu(self.conv1(x)))


def test_state_dict_keys_are_pytorchs_for_sequential_nested_and_attribute_names():
    seq = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Sequential(nn.Flatten(), nn.Linear(2, 1, bias=False)))
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.1.weight"]
    assert list(Net().state_dict()) == ["conv1.weight", "conv1.bias", "head.1.weight", "head.1.bias"]
    assert [name for name, _ in Net().named_parameters()] == list(Net().state_dict())
    assert len(Net().parameters()) == 4


def test_state_dict_is_a_copy_and_loads_into_a_module_of_either_engine():
    source, state = Net(), Net().state_dict()
    state["conv1.bias"][0] = 123.0
    assert source.conv1.bias.data[0] != 123.0
    for engine in ("tensor", "value"):
        target = Net(engine)
        target.load_state_dict(state)
        for key, array in target.state_dict().items():
            np.testing.assert_array_equal(array, state[key])


def test_load_state_dict_accepts_lists_and_ints_and_keeps_float32():
    layer = nn.Linear(2, 1, dtype=np.float32)
    layer.load_state_dict({"weight": [[1, 2]], "bias": [3]})
    assert layer.weight.dtype == np.float32 and layer.weight.data.tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize("change, error, words", [
    (lambda s: s.pop("head.1.bias"), KeyError, ["missing keys ['head.1.bias']"]),
    (lambda s: s.update({"head.2.weight": np.zeros(3)}), KeyError, ["unexpected keys ['head.2.weight']"]),
    (lambda s: s.update({"conv1.weight": np.zeros((2, 1, 3, 3))}), ValueError,
     ["conv1.weight has shape (2, 1, 3, 3), the module expects (2, 1, 2, 2)"]),
    (lambda s: s.update({"head.1.bias": np.array(["a", "b", "c"])}), TypeError, ["head.1.bias holds"]),
])
@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_load_state_dict_rejects_a_bad_dict_and_leaves_the_module_untouched(change, error, words, engine):
    model = Net(engine)
    before = model.state_dict()
    bad = OrderedDict((k, v + 1.0) for k, v in before.items())
    change(bad)
    with pytest.raises(error) as info:
        model.load_state_dict(bad)
    assert all(w in str(info.value) for w in words), str(info.value)
    for key, array in model.state_dict().items():
        np.testing.assert_array_equal(array, before[key])


def test_setting_a_parameter_to_none_or_a_new_array_updates_the_parameter_list():
    layer = nn.Linear(2, 1)
    layer.bias = None
    assert list(layer.state_dict()) == ["weight"]
    layer.bias = Tensor([0.5], requires_grad=True)
    assert list(layer.state_dict()) == ["weight", "bias"]


# --- engines ---------------------------------------------------------------------------------------------
@given(strategies.cnn_architectures(max_size=5))
def test_a_value_engine_model_computes_what_the_tensor_model_does(arch):
    tensor_model, value_model = arch.build("tensor"), arch.build("value")
    x, X = arch.input("tensor"), arch.input("value")
    out, OUT = tensor_model(x), value_model(X)
    np.testing.assert_allclose(numbers(OUT), out.data, rtol=1e-12, atol=1e-12)
    out.sum().backward()
    OUT.sum().backward()
    for (name, p), (_, P) in zip(tensor_model.named_parameters(), value_model.named_parameters()):
        np.testing.assert_allclose(P.grads(), p.grad, rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(X.grads(), x.grad, rtol=1e-12, atol=1e-12)


def _two_layer_net(engine):
    return nn.Sequential(nn.Conv2d(1, 1, 2, engine=engine, rng=np.random.default_rng(0)), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4, 1, engine=engine, rng=np.random.default_rng(1)))


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_a_module_refuses_the_other_engines_input_unless_no_gradient_is_wanted(engine):
    model = _two_layer_net(engine)
    data = np.random.default_rng(2).normal(size=(1, 1, 3, 3))
    other = "value" if engine == "tensor" else "tensor"
    with pytest.raises(TypeError, match=f"Conv2d: the input is .* Convert the model once with "
                                        f"model.to_engine\\('{other}'\\), or run it under no_grad"):
        model(values(data) if engine == "tensor" else Tensor(data))
    same = model(Tensor(data) if engine == "tensor" else values(data))
    with no_grad():  # allowed: no gradient is asked for
        out = model(values(data) if engine == "tensor" else Tensor(data))
    assert isinstance(out, Tensor) == (other == "tensor")
    np.testing.assert_allclose(numbers(out), numbers(same), rtol=1e-12)


@pytest.mark.parametrize("engine", ["tensor", "value"])
def test_to_engine_moves_the_parameters_and_the_gradient_reaches_them(engine):
    model = _two_layer_net(engine)
    before = model.state_dict()
    other = "value" if engine == "tensor" else "tensor"
    assert model.to_engine(other) is model
    assert all(nn.engine_of(p) == other for p in model.parameters())
    for key, array in model.state_dict().items():
        np.testing.assert_array_equal(array, before[key])
    data = np.random.default_rng(2).normal(size=(1, 1, 3, 3))
    out = model(values(data) if other == "value" else Tensor(data))
    out.sum().backward()
    assert all(np.any(p.grads()) for p in model.parameters())
    assert {n.name.partition("[")[0] for n in model.parameters()[0].flat} == {"weight"} if other == "value" else (
        model.parameters()[0].name == "weight")


def test_zero_grad_clears_both_kinds_of_parameter():
    for engine in ("tensor", "value"):
        model = Net(engine)
        x = Tensor(np.ones((1, 1, 3, 3))) if engine == "tensor" else values(np.ones((1, 1, 3, 3)))
        model(x).sum().backward()
        assert any(np.any(p.grads()) for p in model.parameters())
        model.zero_grad()
        assert not any(np.any(p.grads()) for p in model.parameters())


def test_module_nodes_are_labelled_by_their_place_in_the_sequential():
    model = nn.Sequential(nn.Conv2d(1, 1, 2), nn.ReLU(), nn.Flatten(), nn.Linear(4, 1))
    out = model(Tensor(np.ones((1, 1, 3, 3))))
    labels = {n.layer for n in out.topo_order() if n.parents}
    assert labels == {"0: Conv2d", "1: ReLU", "2: Flatten", "3: Linear"}
    assert {n.layer for n in nn.Linear(4, 1)(Tensor(np.ones(4))).topo_order() if n.parents} == {"Linear"}


def test_a_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="Module must define forward"):
        nn.Module()(Tensor([1.0]))
