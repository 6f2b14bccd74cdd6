"""The tape: a scalar graph recorded once and replayed over a batch gives every node's number and
gradient for every example as the Value graph of that example does, kinks included."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinygrad_cnn import Value, nn, values
from tinygrad_cnn import train
from tinygrad_cnn.nn import functional as F
from tinygrad_cnn.models import digits_cnn, square_detector15
from tinygrad_cnn.tape import Tape
from tinygrad_cnn.testing import strategies

TOL = 1e-12


def close(got, want):
    """Equal to 1e-12 (relative, and absolute against the scale of ``want``), NaN where NaN."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    scale = max(1.0, float(np.nanmax(np.abs(np.where(np.isfinite(want), want, 0.0)), initial=0.0)))
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore"):  # inf - inf where both are inf: equal already
        return bool(np.all(same | (np.abs(got - want) <= TOL * scale)))


def every_node_agrees(tape, replay, build, examples):
    """For each example b, a fresh Value graph ``build(*example b)`` has, node for node in topological
    order, the replay's number and gradient for b (the recorded graph and the fresh one have the same
    shape, made by the same code)."""
    recorded = tape.root.topo_order()
    for b, example in enumerate(examples):
        root = build(*example)
        fresh = root.topo_order()
        assert len(fresh) == len(recorded)
        before = {id(n): n.grad for n in fresh}
        root.backward()
        data = np.array([n.data for n in fresh])
        grad = np.array([n.grad - before[id(n)] for n in fresh])
        got_data = np.array([replay.D[tape.row[n], b] for n in recorded])
        got_grad = np.array([replay.G[tape.row[n], b] for n in recorded])
        assert [n.op for n in fresh] == [n.op for n in recorded]
        assert close(got_data, data), np.max(np.abs(got_data - data))
        assert close(got_grad, grad), np.max(np.abs(got_grad - grad))


# --- small CNNs, with inputs and weights drawn to sit on kinks ------------------------------------------
def on_kinks(rng, shape):
    """Small whole numbers and halves: many exact zeros before a ReLU and ties in a pool window."""
    return rng.choice([-1.0, -0.5, 0.0, 0.0, 0.5, 1.0, 2.0], size=shape)


@strategies.fewer_examples(3)
@given(strategies.cnn_architectures(max_batch=1, max_channels=2, max_size=5, max_classes=3), st.booleans(),
       st.integers(1, 4))
def test_replay_gives_every_node_of_every_example_as_its_own_value_graph(architecture, kinks, batch):
    model = architecture.build("value")
    rng = np.random.default_rng(architecture.seed % 1000)
    shape = (1, architecture.in_channels, architecture.size, architecture.size)
    if kinks:  # weights and inputs whose products and sums are exact: zeros and ties decided exactly
        model.load_state_dict({k: on_kinks(rng, np.shape(v)) for k, v in model.state_dict().items()})
    xs = [on_kinks(rng, shape) if kinks else rng.normal(size=shape) for _ in range(batch)]
    classes = architecture.classes
    labels = rng.integers(0, max(classes, 2), size=batch)
    ts = [np.eye(classes)[[y]] if classes > 1 else np.array([[float(y)]]) for y in labels]

    def build(x, t):
        if classes == 1:
            out = F.sigmoid(model(values(x)))
            return F.binary_cross_entropy(out, values(t))
        return train.example_loss(model, values(x), values(t))[0]

    x0, t0 = values(xs[0], "x"), values(ts[0], "t")
    root = F.binary_cross_entropy(F.sigmoid(model(x0)), t0) if classes == 1 else train.example_loss(model, x0, t0)[0]
    tape = Tape(root, (x0, t0))
    replay = tape(np.stack(xs), np.stack(ts))
    replay.backward()
    for p in model.parameters():
        for v in p.flat:
            v.grad = 0.0
    every_node_agrees(tape, replay, build, list(zip(xs, ts)))


# --- each rule, on numbers that reach its edges --------------------------------------------------------
EDGES = [0.0, -0.0, 1.0, -1.0, 2.0, -2.5, 0.5, 3.0, 1e-300, -1e-300, 700.0, -750.0, 1e308, math.inf, -math.inf]
numbers = st.one_of(st.sampled_from(EDGES), st.floats(allow_nan=False, allow_infinity=False, width=64,
                                                      min_value=-1e6, max_value=1e6))
UNARY = {
    "neg": lambda a: -a, "exp": Value.exp, "log": Value.log, "relu": Value.relu, "sigmoid": Value.sigmoid,
    "tanh": Value.tanh, "leaky_relu": Value.leaky_relu, "leaky_relu(0.2)": lambda a: a.leaky_relu(0.2),
    "**2": lambda a: a ** 2, "**-1": lambda a: a ** -1, "**0.5": lambda a: a ** 0.5, "**0": lambda a: a ** 0,
    "**3": lambda a: a ** 3, "**0.1": lambda a: a ** 0.1,
}
BINARY = {"+": Value.__add__, "-": Value.__sub__, "*": Value.__mul__, "/": Value.__truediv__, "max": Value.max,
          "**": Value.__pow__}


@given(st.sampled_from(sorted(UNARY)), st.lists(numbers, min_size=1, max_size=6))
def test_each_unary_rule_replays_as_the_value_op(name, xs):
    fn = UNARY[name]
    a = Value(xs[0])
    out = fn(a)
    assert out.op == name
    tape = Tape(out, (a,))
    replay = tape(np.array(xs))
    replay.backward()
    for i, x in enumerate(xs):
        v = Value(x)
        r = fn(v)
        r.backward()
        assert close(replay.data(out)[i], r.data) and close(replay.grad(a)[i], v.grad), (x, r.data, v.grad)


@given(st.sampled_from(sorted(BINARY)), st.lists(st.tuples(numbers, numbers), min_size=1, max_size=6), st.booleans())
def test_each_binary_rule_replays_as_the_value_op(name, pairs, tie):
    fn = BINARY[name]
    if tie:  # equal operands: max's tie goes to the left one
        pairs = [(a, a) for a, _ in pairs]
    a, b = Value(pairs[0][0]), Value(pairs[0][1])
    out = fn(a, b)
    tape = Tape(out, (a, b))
    replay = tape(*np.array(pairs).T)
    replay.backward()
    for i, (x, y) in enumerate(pairs):
        u, v = Value(x), Value(y)
        r = fn(u, v)
        r.backward()
        assert close(replay.data(out)[i], r.data), (x, y)
        assert close(replay.grad(a)[i], u.grad) and close(replay.grad(b)[i], v.grad), (x, y, u.grad, v.grad)


def test_a_parameter_shared_by_many_nodes_of_a_level_gets_all_their_gradients():
    w = Value(3.0)
    xs = values(np.zeros(5), "x")
    out = sum((w * x for x in xs), Value(0.0))
    tape = Tape(out, (xs,))
    batch = np.arange(10.0).reshape(2, 5)
    replay = tape(batch)
    assert replay.data(out).tolist() == [30.0, 105.0]
    replay.backward(np.array([1.0, 2.0]))
    assert w.grad == 10.0 + 2 * 35.0
    assert replay.grad(xs).tolist() == [[3.0] * 5, [6.0] * 5]


def test_parameters_are_read_at_each_replay_and_gradients_accumulate_as_value_backward_does():
    w = Value(2.0)
    x = Value(0.0)
    tape = Tape(w * x, (x,))
    tape(np.array([1.0, 2.0])).backward()
    assert w.grad == 3.0
    w.data = 5.0
    replay = tape(np.array([1.0]))
    assert replay.data(tape.root).tolist() == [5.0]
    replay.backward()
    assert w.grad == 4.0  # added, as two Value backward passes add


def test_load_puts_one_examples_numbers_into_the_recorded_graph():
    x = values(np.zeros(3), "x")
    out = (x * 2.0).relu().sum()
    tape = Tape(out, (x,))
    replay = tape(np.array([[1.0, -1.0, 2.0], [-3.0, 4.0, 0.0]]))
    replay.backward()
    root = replay.load(1)
    assert root.data == 8.0
    assert [v.data for v in x] == [-3.0, 4.0, 0.0] and [v.grad for v in x] == [0.0, 2.0, 0.0]  # ReLU'(0) = 0
    with pytest.raises(IndexError, match="example 2 is out of range for a batch of 2"):
        replay.load(2)


# --- training: the replayed step is the value engine's batch graph ------------------------------------------
def replayed_step(model, X, y):
    """(loss, predicted classes, each parameter's gradient) of a replayed step; the grads zeroed after."""
    loss, predicted = train.replayed_loss_and_predictions(model, X, y)
    loss.backward()
    grads = [p.grads() for p in model.parameters()]
    for p in model.parameters():
        p.zero_grad()
    return loss, predicted, grads


@pytest.mark.parametrize("make, shape, classes", [(digits_cnn, (1, 8, 8), 10), (square_detector15, (1, 6, 6), 1)])
def test_a_replayed_training_step_equals_the_batch_graph(make, shape, classes):
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(5,) + shape), rng.integers(0, max(classes, 2), size=5)
    model = make(0, "value")
    replayed, predicted, grads = replayed_step(model, X, y)
    loss, want_predicted = train.loss_and_predictions(model, X, y)
    loss.backward()
    assert close(replayed.numbers(), loss.numbers())
    assert predicted.tolist() == want_predicted.tolist()
    for got, p in zip(grads, model.parameters()):
        assert close(got, p.grads())


def test_the_tape_is_recorded_again_when_the_model_gets_new_parameters():
    model = square_detector15(0, "value")
    tape, _ = train.tape_of(model, (1, 6, 6))
    assert train.tape_of(model, (1, 6, 6))[0] is tape
    model.load_state_dict({k: np.asarray(v) * 2 for k, v in model.state_dict().items()})
    fresh, _ = train.tape_of(model, (1, 6, 6))
    X = np.random.default_rng(0).normal(size=(3, 1, 6, 6))
    loss, _ = train.replayed_loss_and_predictions(model, X, np.array([0, 1, 1]))
    want, _ = train.loss_and_predictions(model, X, np.array([0, 1, 1]))
    assert close(loss.numbers(), want.numbers())
    assert fresh is train.tape_of(model, (1, 6, 6))[0]


# --- what cannot be replayed, and bad batches: clear errors ---------------------------------------------------
def test_a_custom_op_is_refused_naming_it():
    x = Value(1.0)
    with pytest.raises(ValueError, match="cannot replay op 'cube' with 1 parent"):
        Tape(Value(x.data ** 3, (x,), "cube", (3 * x.data ** 2,)), (x,))


def test_a_custom_op_that_borrows_a_built_in_name_is_caught_by_the_check_on_the_recorded_example():
    x = Value(2.0)
    with pytest.raises(ValueError, match="local derivative 1.0 for parent 0, but the recorded Value holds 5.0"):
        Tape(Value(3.0, (x, Value(1.0)), "+", (5.0, 1.0)) * 3.0, (x,))


def test_exact_data_and_non_leaf_inputs_are_refused():
    x = values([1, 2], dtype="exact")
    with pytest.raises(ValueError, match="exact"):
        Tape((x * 2).sum(), (x,))
    y = values([1.0, 2.0])
    with pytest.raises(ValueError, match="an input must be leaf Values"):
        Tape((y * 2).sum(), (y * 2,))
    with pytest.raises(ValueError, match="appears twice"):
        Tape(y.sum(), (y, y))
    with pytest.raises(TypeError, match="root must be a Value"):
        Tape(y, (y,))


def test_a_batch_of_the_wrong_shape_is_refused_naming_both_shapes():
    x = values(np.zeros((2, 3)))
    tape = Tape(x.sum(), (x,))
    with pytest.raises(ValueError, match=r"batch 0 must have shape \(B, 2, 3\) for an input of shape \(2, 3\), "
                                         r"got \(4, 3, 2\)"):
        tape(np.zeros((4, 3, 2)))
    with pytest.raises(TypeError, match="takes 1 batch"):
        tape(np.zeros((1, 2, 3)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match=r"grad must have shape \(1,\)"):
        tape(np.zeros((1, 2, 3))).backward(np.ones(2))


def test_the_levels_group_the_nodes_of_a_cnn_into_few_numpy_ops():
    model = digits_cnn(0, "value")
    tape, _ = train.tape_of(model, (1, 8, 8))
    assert len(tape) > 50_000
    assert len(tape.levels) < 2 * tape.depth  # about one op kind per level
    assert nn.engine_of(model.parameters()[0]) == "value"


def test_a_batch_too_large_for_one_replay_is_replayed_in_parts_to_the_same_numbers(monkeypatch):
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(7, 1, 6, 6)), rng.integers(0, 2, size=7)
    model = square_detector15(0, "value")
    whole, predicted, grads = replayed_step(model, X, y)
    tape, _ = train.tape_of(model, (1, 6, 6))
    monkeypatch.setattr(train, "REPLAY_NUMBERS", 3 * len(tape))  # parts of 3, 3 and 1 images
    parts, predicted_parts, grads_parts = replayed_step(model, X, y)
    assert [r.batch_size for r in parts.replays] == [3, 3, 1]
    assert close(parts.numbers(), whole.numbers()) and predicted_parts.tolist() == predicted.tolist()
    for got, want in zip(grads_parts, grads):
        assert close(got, want)
