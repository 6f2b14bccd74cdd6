"""Why the square detector's course material (004) ends at 0.92 / 0.08 for both classes.

Two copies of the same square_detector15 see the same stream of images, one at a time:
  descent:  p <- p - lr * dL/dp, with the engine's gradient (what SGD does);
  material: p <- p + lr * g, with g what the material computes (worked.material_gradients:
            the loss value where dL/da4 belongs, dL/dw4 sent into the max-pool, ReLU(z1) where
            ReLU'(z1) belongs, sum(X) as dL/db1) - added, not subtracted.
Everything the material adds is >= 0 whatever the label, so its parameters only grow and its
output goes to the same value for noise and for squares; descent's loss goes down.
Run: python examples/square15_material_training.py
"""
import numpy as np

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn.data import squares
from tinygrad_cnn.models import square_detector15
from tinygrad_cnn.optim import SGD
from tinygrad_cnn.worked import material_gradients

LR, STEPS = 0.01, 200
X, y = squares(STEPS, seed=1)
X_test, y_test = squares(200, seed=2)



def report(name, model):
    p = model(Tensor(X_test))
    loss = F.binary_cross_entropy(p, y_test.reshape(-1, 1)).item()
    p = p.data.ravel()
    print(f"  {name:8}: mean output on noise {p[y_test == 0].mean():.4f}, on squares {p[y_test == 1].mean():.4f}; "
          f"test loss {loss:.4f}; accuracy {np.mean((p > 0.5) == y_test):.3f}")


descent, material = square_detector15(seed=0), square_detector15(seed=0)
optimizer = SGD(descent.parameters(), lr=LR)
for step, (image, label) in enumerate(zip(X, y), 1):
    optimizer.zero_grad()
    F.binary_cross_entropy(descent(Tensor(image[None])), [[label]]).backward()
    optimizer.step()
    g = material_gradients(material, image[0], label)
    material.load_state_dict({k: v + LR * g[k] for k, v in material.state_dict().items()})
    if step in (STEPS // 8, STEPS // 4, STEPS // 2, STEPS):
        print(f"after {step} images (lr = {LR}), on {len(y_test)} new images:")
        report("descent", descent)
        report("material", material)
