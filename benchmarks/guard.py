"""What the core's shape guard costs: the LeNet-style float32 training step of benchmarks/tensor.py with
Tensor._push as it is (every gradient's shape checked against its input's before it is accumulated)
and with the check taken out, alternating round by round in this one process.

    .venv/bin/python benchmarks/guard.py [--repeat 21] [--threads 1]

Prints each side's median and best step time and the median (and quartiles) of the per-round ratios.
"""
import argparse
import os
import statistics
import time

if __name__ == "__main__":
    PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    PARSER.add_argument("--repeat", type=int, default=21, help="rounds (default 21)")
    PARSER.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    ARGS = PARSER.parse_args()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(ARGS.threads)

import numpy as np  # noqa: E402  (after the thread count is set)

import tinygrad_cnn.backend as B  # noqa: E402
import tinygrad_cnn.nn as nn  # noqa: E402
import tinygrad_cnn.nn.functional as F  # noqa: E402
from tinygrad_cnn import Tensor  # noqa: E402
from tinygrad_cnn.optim import SGD  # noqa: E402
from tinygrad_cnn.tensor import _BROADCASTING  # noqa: E402
from machine import describe  # noqa: E402  (benchmarks/machine.py)

GUARDED = Tensor._push


def unguarded_push(self):
    """Tensor._push without the shape check (``_fit``): broadcast gradients summed back, nothing else
    compared; the rest as Tensor._push does it."""
    g = self._pending
    self._pending = None
    if type(g) is float:
        return
    parents = self._b
    if parents:
        entry, saved = self._local
        for parent, rule in zip(parents, entry[1:]):
            if parent.requires_grad:
                d = rule(g, *saved)
                if self.op in _BROADCASTING and d.shape != parent.data.shape:
                    d = B.unbroadcast(d, parent.data.shape)
                p = parent._pending
                parent._pending = d if type(p) is float else p + d
    dtype = self._grad_dtype()
    if type(g) is not np.ndarray or g.dtype is not dtype and g.dtype != dtype:
        g = np.asarray(g, dtype=dtype)
    self.grad = (g if parents else g.copy()) if self.grad is None else self.grad + g


def lenet_step():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, rng=rng, dtype=np.float32), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, rng=rng, dtype=np.float32), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(400, 10, rng=rng, dtype=np.float32))
    x, y = Tensor(rng.normal(size=(64, 1, 28, 28)).astype(np.float32)), rng.integers(0, 10, 64)
    opt = SGD(model.parameters(), lr=0.01)

    def gradients():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        return [p.grad for p in model.parameters()]

    def step():
        gradients()
        opt.step()
    return step, gradients


def timed(step, n):
    start = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - start) / n


def main():
    step, gradients = lenet_step()
    for _ in range(5):
        step()
    sides = {"guarded": GUARDED, "unguarded": unguarded_push}
    found = {}
    for name, push in sides.items():
        Tensor._push = push
        found[name] = gradients()
    if not all(np.array_equal(a, b) for a, b in zip(*found.values())):
        raise SystemExit("guard.py: the unguarded _push gives other gradients than Tensor._push")
    times = {name: [] for name in sides}
    for _ in range(ARGS.repeat):
        for name, push in sides.items():
            Tensor._push = push
            times[name].append(timed(step, 10))
    Tensor._push = GUARDED
    print("\n".join(describe()))
    print(f"LeNet-style float32 step, batch 64, {ARGS.threads} BLAS thread(s), {ARGS.repeat} rounds of 10 steps")
    for name, t in times.items():
        print(f"  {name:<10} median {statistics.median(t) * 1e3:6.2f} ms  best {min(t) * 1e3:6.2f} ms")
    ratios = sorted(a / b for a, b in zip(times["guarded"], times["unguarded"]))
    q = statistics.quantiles(ratios, n=4)
    print(f"  guarded / unguarded: median {statistics.median(ratios):.3f} (quartiles {q[0]:.3f} to {q[2]:.3f})")


if __name__ == "__main__":
    main()
