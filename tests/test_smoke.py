import subprocess
import sys

import numpy as np

from tinygrad_cnn import Tensor, values
from tinygrad_cnn.models import tiny_cnn10
import tinygrad_cnn.nn.functional as F

X = np.array([[2, 1, 0, 2, 1], [2, 1, 1, 0, 2], [1, 2, 0, 1, 0], [1, 0, 2, 1, 2], [2, 1, 1, 0, 0]], float)


def test_worked_example_reference_numbers_on_both_engines():
    for engine, x in (("tensor", Tensor(X.reshape(1, 1, 5, 5))), ("value", values(X.reshape(1, 1, 5, 5), "X"))):
        model = tiny_cnn10(engine=engine)
        loss = F.binary_cross_entropy(model(x), [[1.0]])
        loss.backward()
        grads = {k: (p.grad if engine == "tensor" else np.frompyfunc(lambda v: v.grad, 1, 1)(p).astype(float))
                 for k, p in model.named_parameters()}
        assert abs(float(loss.data) - 1.313262) < 1e-6
        np.testing.assert_allclose(grads["4.weight"].ravel(), [-2.193176, -2.924234, -3.655293, -2.193176], atol=1e-6)
        np.testing.assert_allclose(grads["0.weight"].ravel(), [0.731059, 0, 0, 0], atol=1e-6)
        assert grads["0.bias"][0] == 0.0


def test_module_entry_point_version_and_help():
    out = subprocess.run([sys.executable, "-m", "tinygrad_cnn", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("tinygrad-cnn ")
    out = subprocess.run([sys.executable, "-m", "tinygrad_cnn", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "usage: tinygrad-cnn" in out.stdout
