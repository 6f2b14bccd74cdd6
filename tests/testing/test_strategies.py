"""The hypothesis strategies and profiles of tinygrad_cnn.testing.strategies."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_cnn import Tensor, nn, values
import tinygrad_cnn.nn.functional as F
from tinygrad_cnn.testing import strategies


@given(strategies.finite_floats(-2.0, 3.0, away_from=(0.0, 1.0), margin=0.1))
def test_finite_floats_stay_in_range_and_away_from_kinks(x):
    assert -2.0 <= x <= 3.0 and abs(x) >= 0.1 and abs(x - 1.0) >= 0.1


@given(strategies.arrays(shape=(2, 3)), strategies.arrays(min_dims=2, max_dims=2, max_side=3))
def test_arrays_of_a_given_or_a_generated_shape(a, b):
    assert a.shape == (2, 3) and a.dtype == np.float64 and np.all(np.isfinite(a)) and np.all(np.abs(a) <= 5)
    assert b.ndim == 2 and max(b.shape) <= 3


@given(strategies.arrays(shape=(4, 4), separation=0.01))
def test_separated_arrays_have_no_two_entries_closer_than_the_gap(a):
    diffs = [abs(x - y) for x, y in itertools.combinations(a.ravel(), 2)]
    assert min(diffs) >= 0.01 - 1e-12 and strategies.well_separated(a, gap=0.009)


def test_separation_and_elements_exclude_each_other():
    with pytest.raises(ValueError, match="give elements or separation, not both"):
        strategies.arrays(shape=(2,), elements=st.just(1.0), separation=0.1)


def output_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


@given(strategies.conv2d_configs(string_padding=True), st.integers(0, 2 ** 32 - 1))
def test_conv2d_configs_always_give_a_valid_output_of_the_expected_size(cfg, seed):
    x, weight, bias = strategies.conv2d_inputs(cfg, np.random.default_rng(seed))
    assert (bias is not None) == cfg["bias"]
    assert weight.shape == (cfg["out_channels"], cfg["in_channels"], *cfg["kernel"])
    out = F.conv2d(Tensor(x), Tensor(weight), None if bias is None else Tensor(bias), cfg["stride"], cfg["padding"],
                   cfg["padding_mode"])
    if cfg["padding"] == "same":
        size = (cfg["height"], cfg["width"])
    else:
        pads = (0, 0) if cfg["padding"] == "valid" else cfg["padding"]
        size = tuple(output_size(n, k, s, p) for n, k, s, p in
                     zip((cfg["height"], cfg["width"]), cfg["kernel"], cfg["stride"], pads))
    batch = () if cfg["batch"] == 0 else (cfg["batch"],)
    assert min(size) >= 1 and out.shape == batch + (cfg["out_channels"],) + size


@given(strategies.pool2d_configs(), st.integers(0, 2 ** 32 - 1))
def test_pool2d_configs_give_a_valid_output_and_inputs_without_ties(cfg, seed):
    x = strategies.pool2d_input(cfg, np.random.default_rng(seed))
    assert strategies.well_separated(x, gap=0.0099)
    pool = F.max_pool2d if cfg["mode"] == "max" else F.avg_pool2d
    out = pool(Tensor(x), cfg["kernel"], cfg["stride"])
    stride = cfg["kernel"] if cfg["stride"] is None else cfg["stride"]
    size = tuple(output_size(n, k, s, 0) for n, k, s in zip((cfg["height"], cfg["width"]), cfg["kernel"], stride))
    assert min(size) >= 1 and out.shape == x.shape[:-2] + size


@given(strategies.cnn_architectures())
def test_cnn_architectures_build_the_same_network_on_both_engines(arch):
    tensor_model, value_model = arch.build("tensor"), arch.build("value")
    for (k, a), (k2, b) in zip(tensor_model.state_dict().items(), value_model.state_dict().items()):
        assert k == k2 and np.array_equal(a, b)
    x, X = arch.input("tensor"), arch.input("value")
    assert x.requires_grad and x.shape == (arch.batch, arch.in_channels, arch.size, arch.size)
    assert np.array_equal(x.data, np.array([v.data for v in X.flat]).reshape(X.shape))
    assert X.flat[0].name == "x[0,0,0,0]"
    c, h, w = arch.features()
    assert h >= 1 and tensor_model[-1].in_features == c * h * w
    assert tensor_model(x).shape == (arch.batch, arch.classes)
    assert len(tensor_model) == 2 + sum(3 if b.pool else 2 for b in arch.blocks)


@strategies.fewer_examples(3)
@given(strategies.small_cnns(engine="value", min_blocks=2, max_blocks=2, max_size=4))
def test_small_cnns_are_built_models_with_inputs_away_from_kinks(cnn):
    model, x = cnn
    assert isinstance(model, nn.Sequential) and isinstance(x, np.ndarray) and x.dtype == object
    assert sum(isinstance(m, nn.Conv2d) for m in model) == 2
    assert strategies.kink_margin(model, x) > 1e-3
    assert model(x).shape == (x.shape[0], model[-1].out_features)


def kink_margin_by_loops(z, pool):
    """min |z| over a relu input z (C, H, W), and the top-two gap in each pool x pool window of relu(z)."""
    a = np.maximum(z, 0)
    gaps = [np.diff(np.sort(a[c, i:i + pool, j:j + pool].ravel())[-2:])[0]
            for c in range(z.shape[0]) for i in range(0, z.shape[1] - pool + 1, pool)
            for j in range(0, z.shape[2] - pool + 1, pool)]
    return min(np.min(np.abs(z)), min(gaps))


@given(st.integers(0, 2 ** 32 - 1))
def test_kink_margin_matches_a_loop_over_relu_inputs_and_pool_windows(seed):
    rng = np.random.default_rng(seed)
    conv = nn.Conv2d(1, 2, 2, rng=rng)
    model = nn.Sequential(nn.Sequential(conv, nn.ReLU()), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 1, rng=rng))
    x = rng.normal(size=(1, 1, 5, 5))
    z = F.conv2d(Tensor(x), conv.weight, conv.bias).data[0]
    assert strategies.kink_margin(model, values(x)) == pytest.approx(kink_margin_by_loops(z, 2), rel=1e-12)


def test_kink_margin_is_infinite_without_kinks_and_needs_a_sequential():
    smooth = nn.Sequential(nn.Tanh(), nn.AvgPool2d(2), nn.MaxPool2d(1))
    assert strategies.kink_margin(smooth, Tensor(np.ones((1, 2, 2)))) == np.inf
    with pytest.raises(TypeError, match="kink_margin: model must be an nn.Sequential, got ReLU"):
        strategies.kink_margin(nn.ReLU(), Tensor([1.0]))


def test_profiles_are_selected_by_the_environment_variable(monkeypatch):
    assert settings.get_profile("ci").derandomize and settings.get_profile("ci").database is None
    try:
        for name, examples in (("ci", 15), ("dev", 50), ("thorough", 500)):
            monkeypatch.setenv("TINYGRAD_CNN_PROFILE", name)
            assert strategies.load_profile() == name and settings().max_examples == examples
            assert strategies.fewer_examples(4).max_examples == max(1, examples // 4)
        monkeypatch.setenv("TINYGRAD_CNN_PROFILE", "nightly")
        with pytest.raises(ValueError, match="TINYGRAD_CNN_PROFILE='nightly' is not a hypothesis profile; "
                                             "this package registers ci, dev, thorough"):
            strategies.load_profile()
        monkeypatch.delenv("TINYGRAD_CNN_PROFILE")
        assert strategies.load_profile(default="ci") == "ci"
    finally:
        monkeypatch.undo()
        strategies.load_profile()


def test_kink_margin_sees_the_windows_of_a_padded_dilated_ceil_mode_pool():
    x = Tensor(np.array([[[[0.0, 1.0, 0.5], [2.0, 0.2, 2.05], [0.3, 0.4, 0.9]]]]))
    pool = nn.MaxPool2d(2, 2, padding=1, ceil_mode=True)  # windows {0}, {1, .5}, {2, .3}, {.2, 2.05, .4, .9}
    assert strategies.kink_margin(nn.Sequential(pool), x) == pytest.approx(0.5)
    assert strategies.kink_margin(nn.Sequential(nn.MaxPool2d(3)), x) == pytest.approx(0.05)
