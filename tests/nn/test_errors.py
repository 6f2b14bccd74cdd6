"""Bad input to nn.functional, the modules and the Tensor primitives: a ValueError or TypeError
that names the argument and the shapes, raised before any work, with no graph node made
(the inputs of a case are leaves; no op node may appear)."""
import numpy as np
import pytest

import tinygrad_cnn.nn as nn
import tinygrad_cnn.nn.functional as F
import tinygrad_cnn.engine as engine
import tinygrad_cnn.tensor as tensor
from tinygrad_cnn import Tensor, Value, values


def T(*shape, fill=1.0):
    return Tensor(np.full(shape, fill), requires_grad=True)


def V(*shape):
    return values(np.ones(shape))


CASES = {  # name: (call, error type, words the message must contain)
    # conv2d
    "conv2d channels": (lambda: F.conv2d(T(1, 3, 5, 5), T(2, 1, 3, 3)), ValueError,
                        ["conv2d: input has 3 channels but weight expects 1", "(1, 3, 5, 5)", "(2, 1, 3, 3)"]),
    "conv2d channels unbatched": (lambda: F.conv2d(T(2, 5, 5), T(2, 1, 3, 3)), ValueError,
                                  ["conv2d: input has 2 channels but weight expects 1"]),
    "conv2d kernel too large": (lambda: F.conv2d(T(1, 1, 2, 4), T(1, 1, 3, 3)), ValueError,
                                ["conv2d: kernel (3, 3) is larger than the padded input (2, 4)"]),
    "conv2d kernel too large after padding": (lambda: F.conv2d(T(1, 1, 1, 1), T(1, 1, 4, 4), padding=1), ValueError,
                                              ["kernel (4, 4) is larger than the padded input (3, 3)", "padding"]),
    "conv2d stride 0": (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), stride=0), ValueError,
                        ["conv2d: stride must be >= 1, got 0"]),
    "conv2d stride pair with 0": (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), stride=(1, 0)), ValueError,
                                  ["conv2d: stride must be >= 1, got (1, 0)"]),
    "conv2d stride of 3": (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), stride=(1, 1, 1)), ValueError,
                           ["conv2d: stride must be an int or a tuple of 2 ints"]),
    "conv2d negative padding": (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), padding=-1), ValueError,
                                ["conv2d: padding must be >= 0, got -1"]),
    "conv2d unknown padding": (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), padding="full"), ValueError,
                               ["conv2d: padding must be", "'valid' or 'same'", "'full'"]),
    "conv2d same with stride": (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), stride=2, padding="same"), ValueError,
                                ["conv2d: padding='same' needs stride 1"]),
    "conv2d padding_mode": (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), padding_mode="mirror"), ValueError,
                            ["conv2d: padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', got 'mirror'"]),
    "conv2d input rank": (lambda: F.conv2d(T(5, 5), T(1, 1, 3, 3)), ValueError,
                          ["conv2d: input must have shape (N, C_in, H, W) or (C_in, H, W), got shape (5, 5)"]),
    "conv2d weight rank": (lambda: F.conv2d(T(1, 1, 5, 5), T(3, 3)), ValueError,
                           ["conv2d: weight must have shape (C_out, C_in, kH, kW), got shape (3, 3)"]),
    "conv2d bias shape": (lambda: F.conv2d(T(1, 1, 5, 5), T(2, 1, 3, 3), T(3)), ValueError,
                          ["conv2d: bias must have shape (2,)", "got shape (3,)"]),
    "conv2d float stride": (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), stride=1.0), TypeError,
                            ["conv2d: stride must be an int or a tuple of 2 ints, got 1.0"]),
    "conv2d float padding": (lambda: F.conv2d(T(1, 1, 5, 5), T(1, 1, 3, 3), padding=(1, 0.5)), TypeError,
                             ["conv2d: padding must be an int or a tuple of 2 ints, got (1, 0.5)"]),
    "conv2d Tensor with Values": (lambda: F.conv2d(T(1, 1, 5, 5), V(1, 1, 3, 3)), TypeError,
                                  ["conv2d: cannot mix Tensors and Value arrays", "input is a Tensor",
                                   "weight is Values"]),
    "conv2d Values with Tensor bias": (lambda: F.conv2d(V(1, 1, 3, 3), V(1, 1, 2, 2), T(1)), TypeError,
                                       ["conv2d: cannot mix", "bias is a Tensor"]),
    "conv2d numpy input": (lambda: F.conv2d(np.ones((1, 1, 5, 5)), T(1, 1, 3, 3)), TypeError,
                           ["conv2d: input must be a Tensor or a numpy object array of Value",
                            "a numpy array of float64"]),
    # conv1d
    "conv1d channels": (lambda: F.conv1d(T(2, 3, 8), T(4, 2, 3)), ValueError,
                        ["conv1d: input has 3 channels but weight expects 2"]),
    "conv1d input rank": (lambda: F.conv1d(T(1, 1, 3, 8), T(1, 1, 3)), ValueError,
                          ["conv1d: input must have shape (N, C_in, L) or (C_in, L), got shape (1, 1, 3, 8)"]),
    "conv1d weight rank": (lambda: F.conv1d(T(1, 1, 8), T(1, 1, 3, 3)), ValueError,
                           ["conv1d: weight must have shape (C_out, C_in, K), got shape (1, 1, 3, 3)"]),
    "conv1d kernel too large": (lambda: F.conv1d(T(1, 1, 2), T(1, 1, 3)), ValueError,
                                ["conv1d: kernel (3,) is larger than the padded input (2,)"]),
    "conv1d pair stride": (lambda: F.conv1d(T(1, 1, 8), T(1, 1, 3), stride=(1, 1)), ValueError,
                           ["conv1d: stride must be an int or a tuple of 1 ints"]),
    # pooling
    "max_pool2d kernel too large": (lambda: F.max_pool2d(T(1, 1, 3, 3), 4), ValueError,
                                    ["max_pool2d: kernel_size (4, 4) is larger than the input (3, 3)"]),
    "max_pool2d kernel 0": (lambda: F.max_pool2d(T(1, 1, 3, 3), 0), ValueError,
                            ["max_pool2d: kernel_size must be >= 1, got 0"]),
    "max_pool2d float kernel": (lambda: F.max_pool2d(T(1, 1, 4, 4), 2.0), TypeError,
                                ["max_pool2d: kernel_size must be an int or a tuple of 2 ints, got 2.0"]),
    "max_pool2d stride 0": (lambda: F.max_pool2d(T(1, 1, 4, 4), 2, 0), ValueError,
                            ["max_pool2d: stride must be >= 1, got 0"]),
    "max_pool2d rank": (lambda: F.max_pool2d(T(4, 4), 2), ValueError,
                        ["max_pool2d: input must have shape (N, C, H, W) or (C, H, W), got shape (4, 4)"]),
    "avg_pool2d kernel too large": (lambda: F.avg_pool2d(V(1, 2, 3), (1, 4)), ValueError,
                                    ["avg_pool2d: kernel_size (1, 4) is larger than the input (2, 3)"]),
    "avg_pool2d bool kernel": (lambda: F.avg_pool2d(T(1, 1, 4, 4), True), TypeError,
                               ["avg_pool2d: kernel_size must be an int"]),
    # linear and flatten
    "linear features": (lambda: F.linear(T(2, 3), T(4, 5)), ValueError,
                        ["linear: input has 3 features (shape (2, 3)) but weight expects 5 (weight shape (4, 5))"]),
    "linear weight rank": (lambda: F.linear(T(2, 3), T(3)), ValueError,
                           ["linear: weight must have shape (out_features, in_features), got shape (3,)"]),
    "linear bias": (lambda: F.linear(T(2, 3), T(4, 3), T(3)), ValueError,
                    ["linear: bias must have shape (4,), got shape (3,)"]),
    "linear Values with Tensor": (lambda: F.linear(V(2, 3), T(4, 3)), TypeError,
                                  ["linear: cannot mix Tensors and Value arrays"]),
    "linear list input": (lambda: F.linear([[1.0, 2.0]], T(1, 2)), TypeError,
                          ["linear: input must be a Tensor or a numpy object array of Value, got list"]),
    "flatten start_dim": (lambda: F.flatten(T(2, 3), 2), IndexError,
                          ["flatten: start_dim 2 is out of range for 2 dims (expected -2 to 1)"]),
    "flatten float start_dim": (lambda: F.flatten(T(2, 3), 1.0), TypeError, ["flatten: start_dim must be an int"]),
    # activations, softmax
    "relu numbers": (lambda: F.relu(np.ones(3)), TypeError, ["relu: input must be a Tensor"]),
    "softmax dim": (lambda: F.softmax(T(2, 3), 2), IndexError, ["softmax: dim 2 is out of range for 2 dims"]),
    "log_softmax float dim": (lambda: F.log_softmax(T(2, 3), 1.0), TypeError, ["log_softmax: dim must be an int"]),
    # losses
    "bce range": (lambda: F.binary_cross_entropy(T(2, fill=2.0), [1.0, 0.0]), ValueError,
                  ["binary_cross_entropy: every input must lie in [0, 1]", "from 2.0 to 2.0"]),
    "bce nan": (lambda: F.binary_cross_entropy(Tensor([np.nan, 0.5]), [1.0, 0.0]), ValueError,
                ["binary_cross_entropy: every input must lie in [0, 1]", "nan"]),
    "bce target shape": (lambda: F.binary_cross_entropy(T(2, 1, fill=0.5), [1.0, 0.0]), ValueError,
                         ["binary_cross_entropy: target shape (2,) does not match input shape (2, 1)"]),
    "bce target text": (lambda: F.binary_cross_entropy(T(2, fill=0.5), ["a", "b"]), TypeError,
                        ["binary_cross_entropy: target must be numbers"]),
    "bce target Values for Tensor": (lambda: F.binary_cross_entropy(T(2, fill=0.5), V(2)), TypeError,
                                     ["binary_cross_entropy: cannot mix", "target is Values"]),
    "bce logits target shape": (
        lambda: F.binary_cross_entropy_with_logits(V(3), [1.0]), ValueError,
        ["binary_cross_entropy_with_logits: target shape (1,) does not match input shape (3,)"]),
    "cross_entropy rank": (lambda: F.cross_entropy(T(3), [0]), ValueError,
                           ["cross_entropy: target must have shape () (class indices) or class probabilities of shape (3,)"]),
    "cross_entropy target shape": (lambda: F.cross_entropy(T(2, 3), [0, 1, 2]), ValueError,
                                   ["cross_entropy: target must have shape (2,)", "got shape (3,)"]),
    "cross_entropy class": (lambda: F.cross_entropy(T(2, 3), [0, 3]), ValueError,
                            ["cross_entropy: target must hold class indices in 0..2, got [0, 3]"]),
    "cross_entropy fraction": (lambda: F.cross_entropy(T(2, 3), [0.5, 1]), ValueError,
                               ["cross_entropy: target must hold class indices"]),
    "mse shape": (lambda: F.mse_loss(T(2, 3), np.ones((3, 2))), ValueError,
                  ["mse_loss: target shape (3, 2) does not match input shape (2, 3)"]),
    # modules
    "Conv2d float channels": (lambda: nn.Conv2d(1.0, 2, 3), TypeError, ["Conv2d: in_channels must be an int"]),
    "Conv2d zero channels": (lambda: nn.Conv2d(1, 0, 3), ValueError, ["Conv2d: out_channels must be >= 1, got 0"]),
    "Conv2d kernel": (lambda: nn.Conv2d(1, 2, (3, 0)), ValueError, ["Conv2d: kernel_size must be >= 1"]),
    "Conv2d padding_mode": (lambda: nn.Conv2d(1, 2, 3, padding_mode="mirror"), ValueError,
                            ["Conv2d: padding_mode must be one of"]),
    "Conv2d same stride": (lambda: nn.Conv2d(1, 2, 3, stride=2, padding="same"), ValueError,
                           ["Conv2d: padding='same' needs stride 1"]),
    "Conv2d engine": (lambda: nn.Conv2d(1, 2, 3, engine="numpy"), ValueError,
                      ["Conv2d: engine must be one of ('tensor', 'value'), got 'numpy'"]),
    "Linear float features": (lambda: nn.Linear(4.0, 2), TypeError, ["Linear: in_features must be an int"]),
    "MaxPool2d float kernel": (lambda: nn.MaxPool2d(1.5), TypeError, ["MaxPool2d: kernel_size must be an int"]),
    "Sequential non-module": (lambda: nn.Sequential(nn.ReLU(), F.relu), TypeError,
                              ["Sequential: argument 1 must be a Module, got function"]),
    "module forward mismatch": (lambda: nn.Conv2d(3, 2, 3)(T(1, 1, 5, 5)), ValueError,
                                ["conv2d: input has 1 channels but weight expects 3"]),
    # Tensor primitives
    "matmul shapes": (lambda: T(2, 3) @ T(2, 3), ValueError, ["matmul: shapes (2, 3) and (2, 3) do not align"]),
    "matmul scalar": (lambda: T() @ T(3), ValueError, ["matmul: operands must have at least 1 dim"]),
    "tensordot dims": (lambda: T(2, 3).tensordot(T(2, 3), ([1], [0])), ValueError,
                       ["tensordot: dims [1] of shape (2, 3) do not match dims [0] of shape (2, 3)"]),
    "tensordot count": (lambda: T(2, 3).tensordot(T(3), 2), ValueError,
                        ["tensordot: cannot contract 2 dims of shapes (2, 3) and (3,)"]),
    "windows too large": (lambda: T(1, 3, 3).windows((4, 4), (1, 1)), ValueError,
                          ["windows: kernel (4, 4) with stride (1, 1) does not fit the last dims of shape (1, 3, 3)"]),
    "pad negative": (lambda: T(2, 2).pad(((0, -1), (0, 0))), ValueError, ["pad: need a (before, after) pair >= 0"]),
    "pad mode": (lambda: F.pad(T(2, 2), (1, 1), "mirror"), ValueError,
                 ["pad: mode must be one of 'constant', 'reflect', 'replicate', 'circular', got 'mirror'"]),
    "Tensor plus Values": (lambda: T(2) + V(2), TypeError, ["cannot mix Tensors and Values"]),
    "Values plus Tensor": (lambda: V(2) + T(2), TypeError, ["cannot mix Tensors and Values"]),
    "Tensor of Values": (lambda: Tensor(V(2, 2)), TypeError, ["Tensor: cannot make a Tensor from Values"]),
    "Tensor of text": (lambda: Tensor(["a"]), TypeError, ["Tensor: data must be numbers, got list"]),
    "Tensor int dtype": (lambda: Tensor([1], dtype=np.int64), ValueError, ["Tensor: dtype must be float32, float64 or 'exact'"]),
    "Tensor ** Values": (lambda: T(2) ** V(2), TypeError, ["cannot make a Tensor from Values"]),
}


@pytest.fixture
def op_nodes(monkeypatch):
    """A list that gets an entry for each op node made (a Tensor op, or a Value with parents)."""
    made = []
    make, value_op, value_init = tensor._node, engine._op, Value.__init__

    def counting_make(data, parents, op, *args):
        made.append(f"Tensor {op}")
        return make(data, parents, op, *args)

    def counting_op(data, op, *parents_and_derivatives):
        made.append(f"Value {op}")
        return value_op(data, op, *parents_and_derivatives)

    def counting_init(self, data, parents=(), op="", *args, **kwargs):  # a custom op
        if parents:
            made.append(f"Value {op}")
        value_init(self, data, parents, op, *args, **kwargs)
    monkeypatch.setattr(tensor, "_node", counting_make)
    monkeypatch.setattr(engine, "_op", counting_op)
    monkeypatch.setattr(Value, "__init__", counting_init)
    return made


@pytest.mark.parametrize("name", CASES)
def test_bad_input_raises_a_clear_error_before_any_node_is_made(name, op_nodes):
    call, error, words = CASES[name]
    with pytest.raises(error) as info:
        call()
    for w in words:
        assert w in str(info.value), f"{w!r} not in {str(info.value)!r}"
    assert op_nodes == []


def test_the_node_counter_sees_the_ops_of_both_engines(op_nodes):
    x, v = Tensor([1.0], requires_grad=True), values([1.0])[0]
    assert op_nodes == []
    x.exp(), v.exp(), x + 1.0
    assert op_nodes == ["Tensor exp", "Value exp", "Tensor ", "Tensor +"]  # the constant 1.0, then the sum
