"""Whole models on both engines: every parameter and the input pass gradcheck, and the Value
path gives the Tensor path's loss and gradients. The ops and layers are checked one by one
elsewhere (tests/test_engine.py, tests/nn/...); here they are checked composed."""
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor, no_grad, values
from tinygrad_cnn.models import square_detector15, tiny_cnn10
from tinygrad_cnn.testing import analytic_grad, gradcheck, strategies

ENGINES = ("tensor", "value")
BATCH = 2


@dataclass(frozen=True)
class Network:
    """A model from a seed: the 10- or 15-parameter network, or a 2-conv-layer CNN, with input and loss."""
    name: str
    seed: int
    labels: tuple
    architecture: strategies.CNNArchitecture = None  # for "cnn2"

    def build(self, engine):
        """(model, x) on ``engine``; the same numbers on both engines."""
        if self.architecture is not None:
            return self.architecture.build(engine), self.architecture.input(engine)
        rng = np.random.default_rng([self.seed, 0])
        if self.name == "tiny_cnn10":
            model, size = tiny_cnn10(engine, kernel=rng.normal(size=(2, 2)), b1=rng.normal(), w4=rng.normal(size=4),
                                     b4=rng.normal()), 5
        else:
            model, size = square_detector15(seed=self.seed, engine=engine), 6
        data = np.random.default_rng([self.seed, 1]).normal(size=(BATCH, 1, size, size))
        return model, Tensor(data, requires_grad=True, name="x") if engine == "tensor" else values(data, "x")

    def loss(self, out):
        if self.architecture is not None:
            return F.cross_entropy(out, np.array(self.labels))
        return F.binary_cross_entropy(out, np.reshape(self.labels, (BATCH, 1)).astype(float))

    def saturated(self, model, x):
        """Whether a sigmoid output is within 1e-4 of 0 or 1, where binary cross-entropy's log(1 - p)
        loses digits: rounding errors of ~1e-16 / (1 - p), divided by eps, would swamp central differences."""
        if self.architecture is not None:  # cross_entropy works on logits, stably
            return False
        numbers = x.data if isinstance(x, Tensor) else np.array([v.data for v in x.flat]).reshape(x.shape)
        with no_grad():
            p = model(Tensor(numbers)).data
        return bool(np.any((p < 1e-4) | (p > 1 - 1e-4)))

    def fn(self, model):
        """The loss as gradcheck's fn of (x, *parameters): the parameters are used in place."""
        return lambda x, *parameters: self.loss(model(x))


@st.composite
def networks(draw, name):
    if name == "cnn2":
        arch = draw(strategies.cnn_architectures(min_blocks=2, max_blocks=2, min_classes=2))
        labels = draw(st.lists(st.integers(0, arch.classes - 1), min_size=arch.batch, max_size=arch.batch))
        return Network(name, arch.seed, tuple(labels), arch)
    return Network(name, draw(st.integers(0, 2 ** 32 - 1)), tuple(draw(st.lists(st.integers(0, 1), min_size=BATCH,
                                                                                  max_size=BATCH))))


NAMES = ("tiny_cnn10", "square_detector15", "cnn2")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_every_parameter_and_the_input_of_a_whole_model_pass_gradcheck(name, engine, data):
    network = data.draw(networks(name))
    model, x = network.build(engine)
    assume(strategies.kink_margin(model, x) > 1e-3)  # finite differences need the kinks a nudge away
    assume(not network.saturated(model, x))
    assert gradcheck(network.fn(model), [x, *model.parameters()])


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_the_value_path_gives_the_tensor_paths_loss_and_gradients(name, data):
    network = data.draw(networks(name))
    results = {}
    for engine in ENGINES:
        model, x = network.build(engine)
        inputs = [x, *model.parameters()]
        loss = network.loss(model(x))
        results[engine] = float(np.asarray(loss.data)), analytic_grad(network.fn(model), inputs)
    (tensor_loss, tensor_grads), (value_loss, value_grads) = results["tensor"], results["value"]
    assert value_loss == pytest.approx(tensor_loss, rel=1e-12, abs=1e-15)
    assert len(value_grads) == len(tensor_grads) == 1 + len(list(model.parameters()))
    for t, v in zip(tensor_grads, value_grads):
        np.testing.assert_allclose(v, t, rtol=1e-10, atol=1e-14)
