"""The scalar engine against micrograd 0.1.0, both run in this one process on the same graphs.

    .venv/bin/python -m pip install -e '.[bench]'      # micrograd==0.1.0
    .venv/bin/python benchmarks/scalar.py [--repeat 7] [--cnn-steps 500] [--chain 1000000]

(a) micrograd's demo step: MLP 2-16-16-1 over 100 make_moons points, hinge loss + L2, forward
    and backward; (b) the 10-parameter CNN of the worked example from scalar ops, hinge loss,
    and the same net through our nn.functional on Value arrays (what a learner runs);
    (c) bytes per graph node (tracemalloc); (d) the deepest chain that backpropagates;
(e) replayed steps (tinygrad_cnn.tape: one example's graph recorded once, replayed over the
    batch) beside micrograd's recorded ones: (a)'s step, and a step of the worked CNN on a batch
    of 32 images of 5x5 (micrograd: the mean of 32 image graphs' hinge losses).
The graphs are built by the same code with each engine's Value class. A step's time is the
median of --repeat runs (best in brackets); the engines run alternately, and the garbage
collector is emptied before each run (outside the timing), so both meet the same machine.
Exits 1 when a target (recording: >= 5x micrograd's speed on (a), >= 4x on (b); replaying:
>= 20x on both steps of (e); <= 0.3x its bytes per node; a --chain-link chain) is missed.
"""
import argparse
import gc
import random
import statistics
import sys
import time
import tracemalloc

import numpy as np
from micrograd.engine import Value as MicroValue

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Value, values
from tinygrad_cnn.tape import Tape
from machine import describe  # benchmarks/machine.py

OURS, THEIRS = "tinygrad_cnn", "micrograd"
ENGINES = {THEIRS: MicroValue, OURS: Value}


def count_nodes(root):
    """Distinct nodes reachable from root (micrograd keeps parents in ``_prev``, we in ``parents``)."""
    seen, stack = {id(root)}, [root]
    while stack:
        node = stack.pop()
        for p in getattr(node, "parents", None) or getattr(node, "_prev", ()):
            if id(p) not in seen:
                seen.add(id(p))
                stack.append(p)
    return len(seen)


# --- (a) micrograd's demo: MLP 2-16-16-1, hinge loss, L2 ---------------------------------------------
def mlp_parameters(V, sizes=(2, 16, 16, 1), seed=1337):
    """[[(weights, bias) per neuron] per layer], initialised as micrograd.nn does (same numbers for any V)."""
    rng = random.Random(seed)
    return [[([V(rng.uniform(-1, 1)) for _ in range(nin)], V(0.0)) for _ in range(nout)]
            for nin, nout in zip(sizes, sizes[1:])]


def mlp(layers, x):
    """micrograd.nn.MLP's forward: act = sum(w_i x_i) + b, ReLU on every layer but the last."""
    for i, layer in enumerate(layers):
        last = i == len(layers) - 1
        acts = [sum((wi * xi for wi, xi in zip(w, x)), b) for w, b in layer]
        x = acts if last else [a.relu() for a in acts]
    return x[0]


def moons_loss(V, layers, X, y):
    """micrograd demo's loss: mean(relu(1 - y * score)) + 1e-4 * sum(p * p) over all parameters."""
    scores = [mlp(layers, [V(a), V(b)]) for a, b in X]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum(p * p for p in flat(layers))
    return data_loss + reg_loss


def flat(layers):
    return [p for layer in layers for w, b in layer for p in w + [b]]


def moons_data(n=100, noise=0.1, seed=1337):
    """Two interleaved half circles with Gaussian noise, labels -1 and +1, as scikit-learn's
    make_moons draws them (made here: importing scikit-learn would weigh on the process's timings)."""
    rng = np.random.RandomState(seed)
    t = np.linspace(0, np.pi, n // 2)
    X = np.concatenate([np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 1 - np.sin(t) - 0.5]])
    y = np.r_[np.zeros(n // 2), np.ones(n // 2)]
    order = rng.permutation(n)
    X, y = X[order] + rng.normal(scale=noise, size=(n, 2)), y[order]
    return X.tolist(), (y * 2 - 1).tolist()


# --- (b) the worked example's CNN from scalar ops ------------------------------------------------------
X5 = [[2, 1, 0, 2, 1], [2, 1, 1, 0, 2], [1, 2, 0, 1, 0], [1, 0, 2, 1, 2], [2, 1, 1, 0, 0]]
KERNEL, B1, W4, B4, LABEL = [[1, -1], [-1, 1]], 1, [-1, 1, -1, 1], 0, 1.0


def cnn_parameters(V):
    return [[V(float(k)) for k in row] for row in KERNEL], V(float(B1)), [V(float(w)) for w in W4], V(float(B4))


def relu_max(a, b):
    """max(a, b) from ops micrograd has: a + relu(b - a) (the gradient goes to a on a tie)."""
    return a + (b - a).relu()


def cnn_loss(V, params, vmax=relu_max, x=None, label=LABEL):
    """conv 2x2 (stride 1) + b1, ReLU, max-pool 2x2, linear 4->1, hinge loss relu(1 - y z4); x (5x5
    nested lists of V) is the worked example's image unless given, label y its class (+1 or -1)."""
    kernel, b1, w4, b4 = params
    x = [[V(float(v)) for v in row] for row in X5] if x is None else x
    z1 = [[sum((kernel[a][b] * x[i + a][j + b] for a in range(2) for b in range(2)), b1) for j in range(4)]
          for i in range(4)]
    a1 = [[z.relu() for z in row] for row in z1]
    a2 = [vmax(vmax(a1[i][j], a1[i][j + 1]), vmax(a1[i + 1][j], a1[i + 1][j + 1])) for i in (0, 2) for j in (0, 2)]
    z4 = sum((w * a for w, a in zip(w4, a2)), b4)
    return (1 + -label * z4).relu()


def cnn_leaves(params):
    kernel, b1, w4, b4 = params
    return [v for row in kernel for v in row] + [b1, *w4, b4]


def functional_parameters():
    return (values(np.reshape(KERNEL, (1, 1, 2, 2)), "F"), values([B1], "b1"), values([W4], "w4"),
            values([B4], "b4"))


def functional_loss(params):
    """The same net as a learner writes it with tinygrad_cnn.nn.functional on Value arrays."""
    kernel, b1, w4, b4 = params
    x = values(np.reshape(X5, (1, 1, 5, 5)), "X")
    a2 = F.max_pool2d(F.relu(F.conv2d(x, kernel, b1)), 2)
    z4 = F.linear(F.flatten(a2), w4, b4)
    return (1 - LABEL * z4[0, 0]).relu()


# --- timing --------------------------------------------------------------------------------------------
def step_fn(build, leaves, steps=1):
    """``steps`` training steps' autograd work: zero the parameters' grads, forward, backward.
    Returns the last loss (a CNN step is too short to time alone, so a run does many)."""
    def run():
        for _ in range(steps):
            for p in leaves:
                p.grad = 0.0
            loss = build()
            loss.backward()
        return loss
    return run


def time_runs(runs, repeat):
    """{name: [seconds per run]}: the runs take turns, the collector emptied before each."""
    times = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            gc.collect()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def report(title, runs, repeat, steps=1):
    """Time the runs (``steps`` steps each), print a table, return {name: median seconds per step}."""
    nodes = {name: count_nodes(run()) for name, run in runs.items()}  # also a warm-up run
    times = {name: [t / steps for t in ts] for name, ts in time_runs(runs, repeat).items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    best = {name: min(t) for name, t in times.items()}
    print(f"\n{title}\n  median of {repeat} runs, best in brackets; speed-up = {THEIRS}'s time / the engine's")
    print(f"  {'engine':<30}{'ms/step':>20}{'nodes':>8}{'us/node':>9}{'speed-up':>18}")
    for name in runs:
        ms = f"{median[name] * 1e3:.3f} [{best[name] * 1e3:.3f}]"
        speedup = f"{median[THEIRS] / median[name]:.2f}x [{best[THEIRS] / best[name]:.2f}x]"
        print(f"  {name:<30}{ms:>20}{nodes[name]:>8}{median[name] / nodes[name] * 1e6:>9.2f}{speedup:>18}")
    return median


# --- (e) replayed steps ------------------------------------------------------------------------------------
def moons_point_loss(layers, x, y):
    """One point's share of the demo's loss: relu(1 - y score) + the L2 term (their mean over the
    points is the demo's loss: the mean hinge loss + the L2 term)."""
    return (1 + -y * mlp(layers, list(x))).relu() + 1e-4 * sum(p * p for p in flat(layers))


def replayed_step(tape, batches, leaves):
    """A replayed step: zero the parameters' grads, replay the forward pass over the batch, backward
    from the batch's mean loss. Returns the mean loss."""
    def run():
        for p in leaves:
            p.grad = 0.0
        replay = tape(*batches)
        n = replay.batch_size
        replay.backward(np.full(n, 1.0 / n))
        return float(replay.data(tape.root).mean())
    return run


def micro_batch_step(build_each, leaves):
    """micrograd's step on a batch: the mean of the examples' losses, one graph, backward."""
    def run():
        for p in leaves:
            p.grad = 0.0
        losses = build_each()
        loss = sum(losses) * (1.0 / len(losses))
        loss.backward()
        return loss
    return run


def race(title, runs, repeat):
    """Time {name: run} alternately; print ms per step and each one's speed-up over micrograd's."""
    for run in runs.values():
        run()  # warm-up
    times = time_runs(runs, repeat)
    median = {name: statistics.median(t) for name, t in times.items()}
    spread = {name: (min(t), max(t)) for name, t in times.items()}
    print(f"\n{title}\n  median of {repeat} runs, [fastest, slowest]; speed-up = {THEIRS}'s median / the engine's")
    for name in runs:
        lo, hi = spread[name]
        print(f"  {name:<34}{median[name] * 1e3:>9.3f} ms [{lo * 1e3:.3f}, {hi * 1e3:.3f}]"
              f"{median[THEIRS] / median[name]:>9.2f}x")
    return median


def replay_races(X, y, repeat):
    """(e): the two replayed steps against micrograd's; returns their speed-ups."""
    micro_layers, layers = mlp_parameters(MicroValue), mlp_parameters(Value)
    x, label = values([0.0, 0.0], "x"), Value(1.0, name="y")
    tape = Tape(moons_point_loss(layers, x, label), (x, label))
    moons = {THEIRS: step_fn(lambda: moons_loss(MicroValue, micro_layers, X, y), flat(micro_layers)),
             f"{OURS} (replayed)": replayed_step(tape, (np.array(X), np.array(y)), flat(layers))}
    ours, theirs = moons[f"{OURS} (replayed)"](), moons[THEIRS]().data
    print(f"\n(e) replayed steps; the same loss on both sides: {ours:.12f} (replayed) and {theirs:.12f} ({THEIRS})")
    a = race("(e1) micrograd's demo step (a), replayed over the 100 points, forward + backward", moons, repeat)

    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 3, size=(32, 5, 5)).astype(float), rng.choice([-1.0, 1.0], size=32)
    micro_params, params = cnn_parameters(MicroValue), cnn_parameters(Value)
    xv, lv = values(np.zeros((5, 5)), "x"), Value(1.0, name="y")
    tape = Tape(cnn_loss(Value, params, Value.max, xv.tolist(), lv), (xv, lv))
    cnn = {THEIRS: micro_batch_step(lambda: [cnn_loss(MicroValue, micro_params, relu_max,
                                                      [[MicroValue(v) for v in row] for row in img], yi)
                                             for img, yi in zip(images.tolist(), labels.tolist())],
                                    cnn_leaves(micro_params)),
           f"{OURS} (replayed)": replayed_step(tape, (images, labels), cnn_leaves(params))}
    b = race("(e2) the worked CNN on a batch of 32 5x5 images, replayed, forward + backward", cnn, repeat)
    return median_ratio(a), median_ratio(b)


def median_ratio(median):
    return median[THEIRS] / median[f"{OURS} (replayed)"]


# --- (c) memory and (d) depth ---------------------------------------------------------------------------
def bytes_per_node(V, X, y):
    """Bytes the moons step's graph holds per node (tracemalloc), after the forward and after backward."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    loss = moons_loss(V, mlp_parameters(V), X, y)
    forward = tracemalloc.get_traced_memory()[0] - before
    loss.backward()
    backward = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    n = count_nodes(loss)
    return forward / n, backward / n


def backpropagates(V, links):
    """Whether the chain x = x + 1.0 (``links`` times) backpropagates to its start."""
    x = start = V(0.5)
    for _ in range(links):
        x = x + 1.0
    try:
        x.backward()
    except RecursionError:
        return False
    return start.grad == 1


def deepest_chain(V, limit):
    """The most links (up to ``limit``) that backpropagate: double while it works, then bisect."""
    good, bad = 0, 1
    while bad <= limit and backpropagates(V, bad):
        good, bad = bad, bad * 2
    bad = min(bad, limit + 1)
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if backpropagates(V, mid) else (good, mid)
    return good


def race_a(X, y, repeat):
    """(a): micrograd's demo step recorded by both engines; whether ours is >= 5x faster."""
    moons = {}
    for name, V in ENGINES.items():
        layers = mlp_parameters(V)
        moons[name] = step_fn(lambda V=V, layers=layers: moons_loss(V, layers, X, y), flat(layers))
    median = report("(a) micrograd's demo step: MLP 2-16-16-1, 100 moons, hinge loss + L2, forward + backward",
                    moons, repeat)
    return median[THEIRS] / median[OURS] >= 5


def race_b(repeat, n):
    """(b): the worked CNN's step recorded by both engines (and through nn.functional); whether >= 4x."""
    cnn = {}
    for name, V in ENGINES.items():
        params = cnn_parameters(V)
        cnn[name] = step_fn(lambda V=V, params=params: cnn_loss(V, params), cnn_leaves(params), n)
    params = cnn_parameters(Value)
    cnn[f"{OURS} (Value.max)"] = step_fn(lambda: cnn_loss(Value, params, Value.max), cnn_leaves(params), n)
    fparams = functional_parameters()
    cnn[f"{OURS} (nn.functional)"] = step_fn(lambda: functional_loss(fparams), [v for p in fparams for v in p.flat], n)
    median = report(f"(b) the worked example's 10-parameter CNN, hinge loss, forward + backward ({n} steps a run)",
                    cnn, repeat, n)
    return median[THEIRS] / median[OURS] >= 4


def memory(X, y):
    """(c): bytes per node; whether ours are <= 0.3x micrograd's."""
    print("\n(c) bytes per graph node, the moons step's graph (tracemalloc)")
    sizes = {name: bytes_per_node(V, X, y) for name, V in ENGINES.items()}
    for name, (forward, backward) in sizes.items():
        print(f"  {name:<30}{forward:>6.0f} after the forward ({forward / sizes[THEIRS][0]:.2f}x), "
              f"{backward:.0f} after backward")
    return sizes[OURS][0] <= 0.3 * sizes[THEIRS][0]


def depth(chain):
    """(d): the deepest chain each engine backpropagates; whether ours takes ``chain`` links."""
    print("\n(d) the deepest chain x = x + 1.0 that backpropagates (links; 2 nodes a link)")
    print(f"  {THEIRS:<30}{deepest_chain(MicroValue, chain):>8}")
    gc.collect()
    start = time.perf_counter()
    ours = backpropagates(Value, chain)
    print(f"  {OURS:<30}{chain if ours else 'FAILED':>8}  (built and backpropagated in "
          f"{time.perf_counter() - start:.1f} s)")
    return ours


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per engine and graph (the median is used)")
    parser.add_argument("--cnn-steps", type=int, default=500, help="CNN steps per timed run")
    parser.add_argument("--chain", type=int, default=10 ** 6, help="links of the chain our engine must backpropagate")
    parser.add_argument("--parts", default="abcde", help="which parts to run (default abcde: all)")
    args = parser.parse_args(argv)
    print("\n".join(describe()) + f"; recursion limit {sys.getrecursionlimit()}")
    ok = True

    X, y = moons_data()
    if "a" in args.parts:
        ok &= race_a(X, y, args.repeat)
    if "b" in args.parts:
        ok &= race_b(args.repeat, args.cnn_steps)
    if "c" in args.parts:
        ok &= memory(X, y)
    if "d" in args.parts:
        ok &= depth(args.chain)
    if "e" in args.parts:
        replayed_moons, replayed_cnn = replay_races(X, y, args.repeat)
        ok &= replayed_moons >= 20 and replayed_cnn >= 20
    print(f"\ntargets of the parts run (recording >= 5x micrograd's speed on (a) and >= 4x on (b), replaying >= 20x "
          f"on (e1) and (e2), <= 0.3x its bytes per node, a {args.chain}-link chain): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
