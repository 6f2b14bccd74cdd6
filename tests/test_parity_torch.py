"""PyTorch parity of the worked 10-parameter network (run by `make parity`)."""
import numpy as np
import pytest

from tinygrad_cnn import Tensor
from tinygrad_cnn.models import tiny_cnn10
import tinygrad_cnn.nn.functional as F

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.parity

X = np.array([[2, 1, 0, 2, 1], [2, 1, 1, 0, 2], [1, 2, 0, 1, 0], [1, 0, 2, 1, 2], [2, 1, 1, 0, 0]], float)


def test_tiny_cnn10_matches_torch_in_float64():
    model = tiny_cnn10()
    loss = F.binary_cross_entropy(model(Tensor(X.reshape(1, 1, 5, 5))), [[1.0]])
    loss.backward()
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 2), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(4, 1), torch.nn.Sigmoid()).double()
    net.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    ref = torch.nn.functional.binary_cross_entropy(net(torch.tensor(X).reshape(1, 1, 5, 5)),
                                                   torch.ones(1, 1, dtype=torch.float64))
    ref.backward()
    assert abs(loss.item() - ref.item()) < 1e-12
    for (name, p), (tname, tp) in zip(model.named_parameters(), net.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=0, atol=1e-12)
