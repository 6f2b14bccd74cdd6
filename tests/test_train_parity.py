"""PyTorch parity of training (run by `make parity`): the digits CNN trained by both, float64,
from the same initial weights over the same batches."""
import numpy as np
import pytest

from tinygrad_cnn import data, train
from tinygrad_cnn.cli.train import TASKS
from tinygrad_cnn.models import digits_cnn
from tinygrad_cnn.optim import Adam

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.parity


def torch_digits_cnn(state_dict):
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64, 10)).double()
    net.load_state_dict({k: torch.tensor(v) for k, v in state_dict.items()})
    return net


@pytest.fixture
def one_thread():
    """Thousands of small steps: PyTorch's thread pool only adds waiting on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_digits_training_matches_pytorch_step_by_step_and_in_accuracy(one_thread):
    pytest.importorskip("sklearn")
    (X, y), (X_test, y_test) = data.digits()
    task = TASKS["digits"]
    model = digits_cnn(0)
    net = torch_digits_cnn(model.state_dict())

    history = train.fit(model, Adam(model.parameters(), lr=task.lr), X, y, task.epochs, task.batch_size, seed=0)
    ours = [loss for epoch in history for loss, _ in epoch["steps"]]

    optimizer = torch.optim.Adam(net.parameters(), lr=task.lr)
    loader = data.DataLoader(X, y, task.batch_size, seed=0)
    theirs = []
    for _ in range(task.epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(torch.tensor(xb)), torch.tensor(yb))
            loss.backward()
            optimizer.step()
            theirs.append(loss.item())

    assert len(ours) == len(theirs)
    np.testing.assert_allclose(ours[:20], theirs[:20], rtol=0, atol=1e-6)
    with torch.no_grad():
        torch_accuracy = (net(torch.tensor(X_test)).argmax(dim=1).numpy() == y_test).mean()
    _, accuracy = train.evaluate(model, X_test, y_test)
    assert accuracy >= 0.97 and abs(accuracy - torch_accuracy) <= 0.01
