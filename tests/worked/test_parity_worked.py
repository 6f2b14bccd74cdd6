"""Worked solutions of any small network against PyTorch in float64 (run by `make parity`; skipped
without torch), on BOTH engines: every number of ``Solution.to_json()`` (each layer's output and
grad_output, the loss, grad_input, each parameter's value, grad and after_step) must be PyTorch's
to 1e-10.

The networks are model-file objects (PyTorch module names and keyword arguments, so the PyTorch
model is built from the same object, independently of ``tinygrad_cnn.interop``) and a few
``nn.Sequential`` (PyTorch's through ``interop.to_torch``). Their numbers have one or two decimals
and include exact zeros at ReLU inputs and ties in max-pool windows, chosen so that float64 decides
each of those kinks as the exact arithmetic does (checked in every test: ``kink_disagreements``).
Where float64 decides a kink differently (0.1 + 0.2 - 0.3 = 5.55e-17 at a ReLU), the worked
solution takes the exact decision: ``test_a_kink_that_float64_decides_otherwise_is_decided_exactly``
checks it against PyTorch with that decision (``decided=True``), as does the property test.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_cnn import interop, nn
from tinygrad_cnn.worked import modelfile
from tinygrad_cnn.worked.network import work_network

torch = pytest.importorskip("torch")
TF = torch.nn.functional
pytestmark = pytest.mark.parity

ENGINES = ("value", "tensor")
TOL = {"rtol": 1e-10, "atol": 1e-10}
EPS = 1e-9  # a value this close to a kink is exactly at it (decimal inputs: exact nonzero values are >= 1e-6)
WEIGHTED = ("Conv1d", "Conv2d", "ConvTranspose2d", "Linear")
TEXTBOOK = Path(__file__).resolve().parents[2] / "examples" / "models" / "textbook_12_4.json"


# --- numbers ----------------------------------------------------------------------------------------------
def dec(shape, seed, places=1, low=-1.0, high=1.0):
    """Nested lists of numbers with ``places`` decimals in [low, high] (some exact zeros among them)."""
    scale = 10 ** places
    ints = np.random.default_rng(seed).integers(round(low * scale), round(high * scale) + 1, size=shape)
    return (np.round(ints / scale, places) + 0.0).tolist()


def conv(kind, cin, cout, k, seed, places=1, **options):
    """A conv layer of a model file with decimal weight and bias (``bias=False``: none)."""
    ks = (k,) * (1 if kind == "Conv1d" else 2) if isinstance(k, int) else tuple(k)
    groups = options.get("groups", 1)
    shape = (cin, cout // groups, *ks) if kind == "ConvTranspose2d" else (cout, cin // groups, *ks)
    spec = {"type": kind, "in_channels": cin, "out_channels": cout, "kernel_size": k, **options,
            "weight": dec(shape, seed, places)}
    spec["bias"] = False if options.get("bias") is False else dec((cout,), seed + 1, places)
    return spec


def linear(cin, cout, seed, places=1):
    return {"type": "Linear", "in_features": cin, "out_features": cout, "weight": dec((cout, cin), seed, places),
            "bias": dec((cout,), seed + 1, places)}


def case(layers, x, target, loss="MSELoss", lr=0.1, **extra):
    return {"title": "parity", "input": x, "target": target, "layers": layers, "loss": loss, "lr": lr, **extra}


# a 6x6 image of dyadic numbers (exact in float64 too) with a flat zero corner and repeated patches: the conv
# below gives ReLU inputs of exactly 0 and ties in the max-pool windows, decided alike by exact and float
TIES_X = [[[0, 0, 0, 0.5, 0.5, 1],
           [0, 0, 0, 0.5, 0.5, 1],
           [0, 0, 1.5, 0.25, 0.25, -0.5],
           [1, 1, 1.5, 0.25, 0.25, -0.5],
           [1, 1, 0.75, 0.75, 2, 2],
           [-1, -1, 0.75, 0.75, 2, 2]]]

CASES = {
    # the contract's example: ReLU, an overlapping max-pool (stride 1), Sigmoid and BCELoss
    "contract-example": case(
        [{"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 2, "stride": 1, "padding": 0,
          "weight": [[[[1, -1], [-1, 1]]]], "bias": [1]},
         {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2, "stride": 1}, {"type": "Flatten"},
         {"type": "Linear", "in_features": 1, "out_features": 1, "weight": [[-1]], "bias": [0]}, {"type": "Sigmoid"}],
        [[[2, 1, 0], [1, 0.5, 2], [0, 1, 1]]], 1, "BCELoss", 0.01),
    # three channels, stride 2, padding 1, BCELoss after a Sigmoid
    "rgb-stride2-padding1-bce": case(
        [conv("Conv2d", 3, 2, 3, 10, 2, stride=2, padding=1), {"type": "ReLU"}, {"type": "Flatten", "start_dim": 0},
         linear(18, 1, 12, 2), {"type": "Sigmoid"}],
        dec((3, 5, 5), 11, 2), [0.3], "BCELoss"),
    # dilation 2, LeakyReLU, AvgPool2d, MSELoss with reduction sum
    "dilation2-leaky-avgpool-mse-sum": case(
        [conv("Conv2d", 1, 2, 2, 20, dilation=2), {"type": "LeakyReLU", "negative_slope": 0.1},
         {"type": "AvgPool2d", "kernel_size": 2}, {"type": "Flatten", "start_dim": 0}, linear(8, 2, 22)],
        dec((1, 6, 6), 21, 2), [0.5, -1], {"type": "MSELoss", "reduction": "sum"}),
    # overlapping max-pool and avg-pool (stride 1), BCEWithLogitsLoss
    "overlapping-pools-bce-logits": case(
        [conv("Conv2d", 2, 2, 2, 30), {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2, "stride": 1},
         {"type": "AvgPool2d", "kernel_size": 2, "stride": 1}, {"type": "Flatten", "start_dim": 0}, linear(8, 1, 32)],
        dec((2, 5, 5), 31, 2), [1], "BCEWithLogitsLoss"),
    # two conv layers (padding 1, then stride 2), Tanh, BCELoss against 0
    "two-convs-tanh-bce": case(
        [conv("Conv2d", 1, 2, 3, 40, padding=1), {"type": "ReLU"}, conv("Conv2d", 2, 3, 2, 42, stride=2),
         {"type": "Tanh"}, {"type": "Flatten", "start_dim": 0}, linear(12, 1, 44), {"type": "Sigmoid"}],
        dec((1, 5, 5), 41), [0], "BCELoss"),
    # Conv1d on (C, L): padding 1, then dilation 2
    "conv1d-two-layers-mse": case(
        [conv("Conv1d", 2, 3, 3, 50, 2, padding=1), {"type": "ReLU"}, conv("Conv1d", 3, 1, 2, 52, 2, dilation=2),
         {"type": "Flatten", "start_dim": 0}, linear(5, 2, 54, 2)],
        dec((2, 7), 51, 2), [0.1, -0.2]),
    # a batch of three Conv1d inputs (N, C, L), stride 2, LeakyReLU, CrossEntropyLoss with class indices
    "conv1d-batch3-cross-entropy": case(
        [conv("Conv1d", 1, 2, 3, 60, stride=2), {"type": "LeakyReLU", "negative_slope": 0.2}, {"type": "Flatten"},
         linear(8, 3, 62)],
        dec((3, 1, 9), 61), [0, 2, 1], "CrossEntropyLoss"),
    # a batch of two images (N, C, H, W), grouped reflect-padded conv, max-pool, Softmax(dim=1) and MSELoss
    "batch2-softmax-mse": case(
        [conv("Conv2d", 2, 2, 3, 70, padding=1, groups=2, padding_mode="reflect"), {"type": "ReLU"},
         {"type": "MaxPool2d", "kernel_size": 2}, {"type": "Flatten"}, linear(8, 3, 72), {"type": "Softmax", "dim": 1}],
        dec((2, 2, 4, 4), 71, 2), [[1, 0, 0], [0, 0.5, 0.5]]),
    # a batch of three, a padded avg-pool that leaves the padding out of its count, CrossEntropyLoss
    "batch3-padded-avgpool-cross-entropy": case(
        [conv("Conv2d", 1, 2, 2, 80, stride=2, padding=1), {"type": "ReLU"},
         {"type": "AvgPool2d", "kernel_size": 2, "stride": 1, "padding": 1, "count_include_pad": False},
         {"type": "Flatten"}, linear(32, 4, 82)],
        dec((3, 1, 5, 5), 81), [3, 0, 1], "CrossEntropyLoss"),
    # kinks on purpose: ReLU inputs exactly 0 and tied max-pool windows (a padded, overlapping 3x3 max-pool)
    "relu-zeros-and-pool-ties": case(
        [{"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 2,
          "weight": [[[[0.5, -0.5], [0.25, 0.25]]]], "bias": [0]},
         {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 3, "stride": 2, "padding": 1},
         {"type": "Flatten", "start_dim": 0},
         {"type": "Linear", "in_features": 9, "out_features": 2, "weight": dec((2, 9), 90), "bias": [0.5, -0.25]}],
        TIES_X, [1, -1]),
    # the same kinks on a batch of two, LeakyReLU at 0 (negative_slope passes), max-pool with dilation 2
    "leaky-zeros-dilated-pool-batch2": case(
        [{"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 2,
          "weight": [[[[0.5, -0.5], [0.25, 0.25]]], [[[1, 0], [0, -1]]]], "bias": [0, 0.25]},
         {"type": "LeakyReLU", "negative_slope": 0.25},
         {"type": "MaxPool2d", "kernel_size": 2, "stride": 1, "dilation": 2}, {"type": "Flatten"},
         linear(18, 2, 100, 2)],
        [TIES_X, (np.array(TIES_X)[:, ::-1] * 0.5).tolist()], [[0.5, 0], [0, 0.5]], "BCEWithLogitsLoss"),
    # no bias, an unbatched output of 3 classes, CrossEntropyLoss with one class index
    "bias-false-unbatched-cross-entropy": case(
        [conv("Conv2d", 2, 3, 2, 110, stride=2, bias=False), {"type": "ReLU"}, {"type": "AvgPool2d", "kernel_size": 2},
         {"type": "Flatten", "start_dim": 0}],
        dec((2, 4, 4), 111, 2), 1, "CrossEntropyLoss"),
    # an MLP on a vector: Linear, Tanh, Linear, MSELoss with reduction sum
    "mlp-tanh-mse-sum": case(
        [linear(4, 3, 120, 2), {"type": "Tanh"}, linear(3, 2, 122, 2)],
        [0.5, -0.25, 0, 1.2], [0.1, 0.9], {"type": "MSELoss", "reduction": "sum"}, 0.5),
    # LogSoftmax and NLLLoss on a batch of two
    "batch2-logsoftmax-nll": case(
        [conv("Conv2d", 1, 2, 2, 130), {"type": "Flatten"}, linear(8, 3, 132), {"type": "LogSoftmax", "dim": 1}],
        dec((2, 1, 3, 3), 131), [2, 0], "NLLLoss"),
    # Sigmoid inside the net and BCELoss against soft targets, a batch of two
    "batch2-sigmoid-bce-soft-targets": case(
        [conv("Conv2d", 1, 1, 3, 140), {"type": "Sigmoid"}, {"type": "Flatten"}, linear(4, 2, 142),
         {"type": "Sigmoid"}],
        dec((2, 1, 4, 4), 141), [[1, 0], [0.25, 0.75]], "BCELoss"),
    # a transposed conv (stride 2) into ReLU and MSELoss
    "conv-transpose-stride2": case(
        [conv("ConvTranspose2d", 1, 2, 2, 150, stride=2), {"type": "ReLU"}, {"type": "Flatten", "start_dim": 0},
         linear(32, 1, 152)],
        dec((1, 2, 2), 151), [0.7]),
    # weights left out of the file: drawn from the seed (PyTorch's initialisation), three channels
    "seeded-weights": case(
        [{"type": "Conv2d", "in_channels": 3, "out_channels": 2, "kernel_size": 3, "padding": 1},
         {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2},
         {"type": "Flatten", "start_dim": 0}, {"type": "Linear", "in_features": 8, "out_features": 2}],
        dec((3, 4, 4), 161, 2), [1, 0], "MSELoss", seed=7),
}


# --- PyTorch's side ---------------------------------------------------------------------------------------
def _argument(v):
    return tuple(v) if isinstance(v, list) else v


def torch_model(mf, obj):
    """The PyTorch network of a model-file object (its module names and keyword arguments), with the
    numbers the worked solution takes: the file's weights, else the ones drawn from the seed."""
    layers = []
    for spec in obj["layers"]:
        kind = spec["type"]
        kwargs = {k: _argument(v) for k, v in spec.items() if k not in ("type", "name", "weight", "bias")}
        if kind in WEIGHTED:
            kwargs.update(bias=spec.get("bias") is not False, dtype=torch.float64)
        layers.append(getattr(torch.nn, kind)(**kwargs))
    net = torch.nn.Sequential(*layers)
    state = {k: np.asarray(v, dtype=np.float64) for k, v in mf.model.state_dict().items()}
    state.update({k: np.asarray(v, dtype=np.float64) for k, v in mf.state.items()})
    assert set(state) == set(net.state_dict())
    net.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    return net


def _window_cells(m, shape):
    """For each output of the max-pool ``m`` on an input of ``shape`` (..., H, W): the flat H*W indices of its
    window inside the input, row-major."""
    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    (kh, kw), (sh, sw) = pair(m.kernel_size), pair(m.stride)
    (ph, pw), (dh, dw) = pair(m.padding), pair(m.dilation)
    h, w = shape[-2:]
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return [[[(i * sh - ph + u * dh) * w + j * sw - pw + v * dw for u in range(kh) for v in range(kw)
              if 0 <= i * sh - ph + u * dh < h and 0 <= j * sw - pw + v * dw < w] for j in range(ow)]
            for i in range(oh)]


def decided_max_pool(m, h):
    """Max-pool whose winner is the first entry (row-major) within EPS of its window's largest."""
    a = h.detach().numpy()
    cells = _window_cells(m, a.shape)
    flat = a.reshape(a.shape[:-2] + (-1,))
    index = np.zeros(flat.shape[:-1] + (len(cells), len(cells[0])), dtype=np.int64)
    for lead in np.ndindex(flat.shape[:-1]):
        for i, row in enumerate(cells):
            for j, window in enumerate(row):
                entries = flat[lead][window]
                index[lead + (i, j)] = window[int(np.argmax(entries >= entries.max() - EPS))]
    idx = torch.tensor(index)
    return h.flatten(-2).gather(-1, idx.flatten(-2)).reshape(idx.shape)


def decided(m, h):
    """``m(h)`` with each kink decided as exact arithmetic does (a value within EPS of 0 or of a window's
    largest is at the kink), PyTorch's conventions there: ReLU'(0) = 0, LeakyReLU'(0) = negative_slope,
    the first of tied maxima."""
    kind = type(m).__name__
    if kind == "ReLU":
        return torch.where(h > EPS, h, h * 0)
    if kind == "LeakyReLU":
        return torch.where(h > EPS, h, h * m.negative_slope)
    if kind == "MaxPool2d":
        return decided_max_pool(m, h)
    return m(h)


def torch_solution(net, x, target, loss, lr, decide=False):
    """PyTorch's numbers for ``to_json()``'s keys (and each layer's input): forward, loss, backward,
    gradients of every intermediate output (retain_grad) and of every parameter, one SGD step."""
    loss = {"type": loss} if isinstance(loss, str) else dict(loss)
    net.zero_grad(set_to_none=True)
    xt = torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)
    h, inputs, outputs = xt, [], []
    for m in net:
        inputs.append(h)
        h = decided(m, h) if decide else m(h)
        h.retain_grad()
        outputs.append(h)
    kind = loss.pop("type")
    t = np.asarray(target)
    if kind in ("CrossEntropyLoss", "NLLLoss") and t.shape != tuple(h.shape):
        t = torch.tensor(t, dtype=torch.int64)
    else:
        t = torch.tensor(t.astype(np.float64)).reshape(h.shape)
    value = getattr(torch.nn, kind)(**loss)(h, t)
    value.backward()
    return {
        "input": xt.detach().numpy(), "inputs": [i.detach().numpy() for i in inputs],
        "layers": [{"output": o.detach().numpy(), "grad_output": o.grad.numpy()} for o in outputs],
        "loss": value.item(), "grad_input": xt.grad.numpy(),
        "params": {k: {"value": p.detach().numpy(), "grad": p.grad.numpy(),
                       "after_step": (p.detach() - lr * p.grad).numpy()} for k, p in net.named_parameters()},
    }


def kink_disagreements(solution, net, expected):
    """Where PyTorch's float64 decides a kink otherwise than the solution's exact arithmetic: a ReLU or
    LeakyReLU input exactly 0 that float64 computed as above 0 (so its gradient passes); a max-pool winner
    of another entry."""
    found = []
    for layer, m, floats in zip(solution.layers, net, expected["inputs"]):
        if layer.type in ("ReLU", "LeakyReLU"):
            off = (layer.input == 0) & (floats > 0)  # below 0 is decided as at 0 (the same derivative)
            found += [f"layer {layer.index} ({layer.type}) input [{','.join(map(str, i))}]: exactly 0, float64 "
                      f"{floats[i]!r}" for i in zip(*np.nonzero(off))]
        elif layer.type == "MaxPool2d":
            _, index = TF.max_pool2d(torch.tensor(floats), m.kernel_size, m.stride, m.padding, m.dilation,
                                     m.ceil_mode, return_indices=True)
            width = floats.shape[-1]
            exact = np.array([w[-2] * width + w[-1] for w in layer.winners]).reshape(index.shape)
            found += [f"layer {layer.index} (MaxPool2d) output [{','.join(map(str, i))}]: the exact winner is "
                      f"cell {exact[i]}, float64's {int(index[i])}" for i in zip(*np.nonzero(exact != index.numpy()))]
    return found


def assert_same(got, want, where):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{where}: shape {got.shape}, PyTorch's {want.shape}"
    np.testing.assert_allclose(got, want, err_msg=where, **TOL)


def assert_matches(solution, expected, types):
    """Every number of ``solution.to_json()`` is PyTorch's (``expected``) to 1e-10."""
    out = solution.to_json()
    assert [layer["type"] for layer in out["layers"]] == types
    assert [layer["index"] for layer in out["layers"]] == list(range(len(types)))
    assert_same(out["input"], expected["input"], "input")
    for i, (layer, want) in enumerate(zip(out["layers"], expected["layers"])):
        assert_same(layer["output"], want["output"], f"layers[{i}] ({layer['type']}).output")
        assert_same(layer["grad_output"], want["grad_output"], f"layers[{i}] ({layer['type']}).grad_output")
    assert isinstance(out["loss"], float)
    assert_same(out["loss"], expected["loss"], "loss")
    assert_same(out["grad_input"], expected["grad_input"], "grad_input")
    assert list(out["params"]) == list(expected["params"])
    for key, want in expected["params"].items():
        assert set(out["params"][key]) == {"value", "grad", "after_step"}
        for part in ("value", "grad", "after_step"):
            assert_same(out["params"][key][part], want[part], f"params[{key}].{part}")


def read(obj):
    """A model-file object read as the CLI reads a file: through its JSON text."""
    return modelfile.loads(json.dumps(obj))


def check_file_object(obj, engine):
    mf = read(obj)
    solution = mf.work(engine)
    net = torch_model(mf, obj)
    expected = torch_solution(net, obj["input"], obj["target"], obj["loss"], mf.lr)
    return solution, net, expected


# --- the tests --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", list(CASES))
def test_model_file_networks_match_pytorch(name, engine):
    obj = CASES[name]
    solution, net, expected = check_file_object(obj, engine)
    assert solution.engine == engine
    disagreements = kink_disagreements(solution, net, expected)
    assert not disagreements, f"float64 decides a kink otherwise (pick other numbers): {disagreements}"
    assert_matches(solution, expected, [spec["type"] for spec in obj["layers"]])


def test_the_cases_have_kinks_on_purpose():
    """The kink cases do hit kinks: ReLU inputs exactly 0, tied max-pool windows (flagged as such)."""
    for name in ("relu-zeros-and-pool-ties", "leaky-zeros-dilated-pool-batch2", "contract-example"):
        solution = read(CASES[name]).work("tensor")
        kinds = {layer.type for layer in solution.layers if layer.kinks}
        expected = {"ReLU", "MaxPool2d"} if name == "relu-zeros-and-pool-ties" else (
            {"LeakyReLU", "MaxPool2d"} if name.startswith("leaky") else set())
        assert kinds == expected, (name, kinds)
    ties = read(CASES["relu-zeros-and-pool-ties"]).work("value")
    relu = ties.layers[1]
    assert np.count_nonzero(relu.input == 0) >= 3 and any("tie" in k for k in ties.layers[2].kinks)


def _sequential(seed):
    """A few nn.Sequential networks with decimal weights (PyTorch's model through interop.to_torch)."""
    rng = np.random.default_rng(seed)
    nets = {
        "conv2d-maxpool-linear": (nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2),
                                                nn.Flatten(), nn.Linear(12, 2, rng=rng)),
                                  dec((1, 2, 4, 4), seed, 2), [[0.5, -0.5]], "MSELoss"),
        "conv1d-tanh-bce-logits": (nn.Sequential(nn.Conv1d(1, 2, 2, stride=2, rng=rng), nn.Tanh(), nn.Flatten(0),
                                                 nn.Linear(6, 1, rng=rng)),
                                   dec((1, 6), seed + 1, 2), [1], "BCEWithLogitsLoss"),
        "avgpool-leaky-cross-entropy": (nn.Sequential(nn.Conv2d(1, 2, 2, dilation=2, rng=rng), nn.LeakyReLU(0.3),
                                                      nn.AvgPool2d(2, 1), nn.Flatten(), nn.Linear(8, 3, rng=rng)),
                                        dec((3, 1, 5, 5), seed + 2, 2), [2, 1, 0], "CrossEntropyLoss"),
    }
    for model, *_ in nets.values():  # decimal numbers, so exact and float64 start from the same ones
        model.load_state_dict({k: np.round(v, 1) + 0.0 for k, v in model.state_dict().items()})
    return nets


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", list(_sequential(0)))
def test_sequential_networks_match_pytorch(name, engine):
    model, x, target, loss = _sequential(0)[name]
    solution = work_network(model, x, target, loss, 0.05, engine)
    net = interop.to_torch(model)
    expected = torch_solution(net, x, target, loss, 0.05)
    assert not kink_disagreements(solution, net, expected)
    assert_matches(solution, expected, [type(m).__name__ for m in model])


@pytest.mark.parametrize("engine", ENGINES)
def test_the_textbook_network_matches_pytorch(engine):
    """examples/models/textbook_12_4.json: the ConvNet of the textbook's section 12.4 on one 3x32x32 image,
    loss ||output - 1||^2, one SGD step of lr 0.01, every number PyTorch's."""
    obj = json.loads(TEXTBOOK.read_text())
    mf = modelfile.load(TEXTBOOK)
    solution = mf.work(engine)
    net = torch_model(mf, obj)
    expected = torch_solution(net, obj["input"], obj["target"], obj["loss"], mf.lr)
    assert not kink_disagreements(solution, net, expected)
    assert_matches(solution, expected, [spec["type"] for spec in obj["layers"]])
    assert np.shape(solution.to_json()["layers"][-1]["output"]) == (1, 10) and len(solution.params) == 8
    # the book's own loss: torch.norm(output - torch.ones(10)) ** 2
    out = net(torch.tensor(np.asarray(obj["input"], dtype=np.float64)))
    assert solution.loss == pytest.approx((torch.norm(out - torch.ones(10, dtype=torch.float64)) ** 2).item(),
                                          rel=1e-12)


# 0.1 + 0.2 - 0.3 is exactly 0 but float64's 5.55e-17: PyTorch's ReLU passes a gradient there; the worked
# solution (exact) blocks it, as a hand computation does
FLOAT_KINK = case([{"type": "Linear", "in_features": 3, "out_features": 2,
                    "weight": [[0.1, 0.2, -0.3], [0.5, 0.25, 0]], "bias": [0, 0]}, {"type": "ReLU"},
                   {"type": "Linear", "in_features": 2, "out_features": 1, "weight": [[2, 1]], "bias": [0.5]}],
                  [1, 1, 1], [1])


@pytest.mark.parametrize("engine", ENGINES)
def test_a_kink_that_float64_decides_otherwise_is_decided_exactly(engine):
    mf = read(FLOAT_KINK)
    solution = mf.work(engine)
    net = torch_model(mf, FLOAT_KINK)
    plain = torch_solution(net, FLOAT_KINK["input"], FLOAT_KINK["target"], "MSELoss", mf.lr)
    assert plain["inputs"][1][0] != 0 and plain["params"]["0.weight"]["grad"][0].any()  # float64 passes it
    tiny = plain["inputs"][1][0]
    assert kink_disagreements(solution, net, plain) == [f"layer 1 (ReLU) input [0]: exactly 0, float64 {tiny!r}"]
    assert solution.layers[1].input[0] == 0 and any("kink" in k for k in solution.layers[1].kinks)
    assert not solution.params["0.weight"]["grad"][0].any()                            # exact blocks it
    exact = torch_solution(net, FLOAT_KINK["input"], FLOAT_KINK["target"], "MSELoss", mf.lr, decide=True)
    assert_matches(solution, exact, ["Linear", "ReLU", "Linear"])


# --- any small network (hypothesis) -----------------------------------------------------------------------
def decimals(shape, places):
    scale = 10 ** places
    return st.lists(st.integers(-scale, scale), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))).map(
        lambda v: (np.round(np.array(v, dtype=np.float64).reshape(shape) / scale, places) + 0.0).tolist())


@st.composite
def networks(draw):
    """A small model-file object: a conv (1-d or 2-d, stride, padding, dilation, groups of 1), an activation,
    maybe a pool (after a piecewise-linear activation only, so its winners are exact), Flatten, Linear and a
    loss, on one input or a batch; numbers of one or two decimals."""
    places = draw(st.sampled_from([1, 2]))
    nd = draw(st.sampled_from([1, 2]))
    batch = draw(st.sampled_from([None, 1, 2, 3]))
    cin, cout = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k, stride, padding, dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(0, 1)),
                                    draw(st.integers(1, 2)))
    size = draw(st.integers(dilation * (k - 1) + 1, 6))
    side = (size + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    kind = "Conv1d" if nd == 1 else "Conv2d"
    layers = [{"type": kind, "in_channels": cin, "out_channels": cout, "kernel_size": k, "stride": stride,
               "padding": padding, "dilation": dilation,
               "weight": draw(decimals((cout, cin) + (k,) * nd, places)),
               "bias": draw(st.one_of(st.just(False), decimals((cout,), places)))}]
    act = draw(st.sampled_from(["ReLU", "LeakyReLU", "Tanh", "Sigmoid"]))
    layers.append({"type": act, "negative_slope": 0.1} if act == "LeakyReLU" else {"type": act})
    if nd == 2 and act in ("ReLU", "LeakyReLU") and side >= 2 and draw(st.booleans()):
        pool = draw(st.sampled_from(["MaxPool2d", "AvgPool2d"]))
        pk, ps = 2, draw(st.integers(1, 2))
        layers.append({"type": pool, "kernel_size": pk, "stride": ps})
        side = (side - pk) // ps + 1
    layers.append({"type": "Flatten"} if batch else {"type": "Flatten", "start_dim": 0})
    features = cout * side ** nd
    outs = draw(st.integers(1, 3))
    layers.append({"type": "Linear", "in_features": features, "out_features": outs,
                   "weight": draw(decimals((outs, features), places)), "bias": draw(decimals((outs,), places))})
    out_shape = (batch, outs) if batch else (outs,)
    loss = draw(st.sampled_from(["MSELoss", "MSELoss-sum", "BCEWithLogitsLoss", "BCELoss", "CrossEntropyLoss"]))
    if loss == "CrossEntropyLoss":
        target = draw(st.lists(st.integers(0, outs - 1), min_size=batch, max_size=batch)) if batch else draw(
            st.integers(0, outs - 1))
    elif loss.startswith("BCE"):
        target = draw(decimals(out_shape, 1).map(lambda t: np.abs(t).tolist()))
    else:
        target = draw(decimals(out_shape, places))
    if loss == "BCELoss":
        layers.append({"type": "Sigmoid"})
    spec = {"type": "MSELoss", "reduction": "sum"} if loss == "MSELoss-sum" else loss
    x = draw(decimals(((batch,) if batch else ()) + (cin,) + (size,) * nd, places))
    return case(layers, x, target, spec, draw(st.sampled_from([0.01, 0.1, 0.5])))


@given(networks(), st.sampled_from(ENGINES))
def test_any_small_network_matches_pytorch_with_the_kinks_decided_exactly(obj, engine):
    mf = read(obj)
    solution = mf.work(engine)
    net = torch_model(mf, obj)
    expected = torch_solution(net, obj["input"], obj["target"], obj["loss"], mf.lr, decide=True)
    assert_matches(solution, expected, [spec["type"] for spec in obj["layers"]])
