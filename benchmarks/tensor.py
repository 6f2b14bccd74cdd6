"""The Tensor engine against PyTorch's CPU build, both run in this one process on the same nets.

    .venv/bin/python -m pip install -e '.[parity]'     # torch 2.13.0 (CPU)
    .venv/bin/python benchmarks/tensor.py [--repeat 15] [--threads N] [--profile]

(a) one training step (zero_grad, forward, cross-entropy, backward, SGD) of a LeNet-style net,
    float32, batch 64 of 1x28x28: conv 1->8 3x3, ReLU, max-pool 2, conv 8->16 3x3, ReLU,
    max-pool 2, linear 400->10. Goal: at most 1.3x PyTorch's step time (aim: 1x).
(b) the 10-parameter CNN of the worked example (conv 2x2, ReLU, max-pool 2, linear 4->1,
    sigmoid, binary cross-entropy), batch 1, float64: zero_grad, forward and backward.
    Goal: at most 1.5x PyTorch (aim: beat it).
(c) the same 10-parameter net at scalar level: the Value engine through nn.functional.

--profile: instead, where (a)'s step spends its time: each primitive's forward and backward rule
timed (by wrapping the entries of ``tensor.PRIMITIVES``), the kernel's share (page faults), the
rest (Python: graph, optimiser); and PyTorch's step by torch.profiler's operators.

Both sides start from the same weights and data (the first losses are printed side by side).
A step's time is the median over --repeat rounds of the mean of a batch of steps (best also
shown); the two sides run alternately, round by round, and the garbage collector runs
(outside the timing) before each batch, so both meet the same machine. A ratio is the median
of the rounds' ratios, with its quartiles. PyTorch gets as many threads as numpy's BLAS has
(threadpoolctl tells, when installed; else the CPU count), or --threads N for both (set before
numpy is imported). Both BLAS libraries and thread counts are printed, and each side's minor page
faults per step (memory the kernel maps afresh: see ``backend.keep_freed_memory``).
"""
import argparse
import collections
import gc
import os
import resource
import statistics
import time


def arguments(argv=None):
    parser = argparse.ArgumentParser(description="The Tensor engine against PyTorch's CPU build, side by side.")
    parser.add_argument("--repeat", type=int, default=15, help="rounds per race (default 15)")
    parser.add_argument("--threads", type=int, default=0, help="threads for numpy's BLAS and PyTorch "
                        "(default: as many as numpy's BLAS starts with)")
    parser.add_argument("--profile", action="store_true", help="profile (a)'s step instead of racing")
    return parser.parse_args(argv)


if __name__ == "__main__":
    ARGS = arguments()
    if ARGS.threads:  # BLAS reads its thread count when numpy is imported (changing it later can stall it)
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(ARGS.threads)

import numpy as np  # noqa: E402  (after the thread count is set)

import tinygrad_cnn.nn as nn  # noqa: E402
import tinygrad_cnn.nn.functional as F  # noqa: E402
from tinygrad_cnn import Tensor, values  # noqa: E402
from tinygrad_cnn.models import tiny_cnn10  # noqa: E402
from tinygrad_cnn.optim import SGD  # noqa: E402
from machine import blas_threads, describe  # noqa: E402  (benchmarks/machine.py)

X10 = np.array([[2, 1, 0, 2, 1], [2, 1, 1, 0, 2], [1, 2, 0, 1, 0], [1, 0, 2, 1, 2], [2, 1, 1, 0, 0]],
               dtype=np.float64).reshape(1, 1, 5, 5)


def timed(step, steps):
    """Mean seconds per call of ``step`` over ``steps`` calls (garbage collected beforehand), and the
    minor page faults in them."""
    gc.collect()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def race(sides, repeat, batch_seconds=0.1):
    """{name: [seconds per step, one per round]} and {name: minor page faults per step}, the sides
    timed alternately, round by round.

    Each side's batch has as many steps as take about ``batch_seconds`` (measured once first)."""
    steps = {name: max(1, round(batch_seconds / timed(step, 3)[0])) for name, step in sides.items()}
    times, faults = {name: [] for name in sides}, dict.fromkeys(sides, 0)
    for _ in range(repeat):
        for name, step in sides.items():
            seconds, n = timed(step, steps[name])
            times[name].append(seconds)
            faults[name] += n
    return times, {name: n / (repeat * steps[name]) for name, n in faults.items()}


# --- (a) LeNet-style training step, float32, batch 64 ---------------------------------------------
def lenet_ours(rng):
    return nn.Sequential(nn.Conv2d(1, 8, 3, rng=rng, dtype=np.float32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, rng=rng, dtype=np.float32), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(400, 10, rng=rng, dtype=np.float32))


def lenet_torch(torch, state):
    tnn = torch.nn
    net = tnn.Sequential(tnn.Conv2d(1, 8, 3), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Conv2d(8, 16, 3), tnn.ReLU(),
                         tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(400, 10))
    net.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    return net


def training_steps(torch, lr=0.01):
    """The two step functions of (a), each returning its loss, from the same weights and data."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=64)
    model = lenet_ours(rng)
    opt = SGD(model.parameters(), lr=lr)
    xt = Tensor(x)

    def ours():
        opt.zero_grad()
        loss = F.cross_entropy(model(xt), y)
        loss.backward()
        opt.step()
        return loss.item()
    sides = {"tinygrad_cnn": ours}
    if torch is not None:
        net = lenet_torch(torch, model.state_dict())
        topt = torch.optim.SGD(net.parameters(), lr=lr)
        tx, ty = torch.tensor(x), torch.tensor(y)

        def theirs():
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(tx), ty)
            loss.backward()
            topt.step()
            return loss.item()
        sides["PyTorch"] = theirs
    return sides


# --- (b) and (c) the 10-parameter network, batch 1, float64 ------------------------------------------
def cnn10_steps(torch):
    """Step functions (forward + backward of the BCE loss) for our two engines and PyTorch."""
    tensor_model, x = tiny_cnn10(), Tensor(X10)
    value_model, xv = tiny_cnn10(engine="value"), values(X10, "X")

    def ours_tensor():
        tensor_model.zero_grad()
        loss = F.binary_cross_entropy(tensor_model(x), [[1.0]])
        loss.backward()
        return loss.item()

    def ours_value():
        value_model.zero_grad()
        loss = F.binary_cross_entropy(value_model(xv), [[1.0]])
        loss.backward()
        return loss.data
    sides = {"tinygrad_cnn Tensor": ours_tensor, "tinygrad_cnn Value": ours_value}
    if torch is not None:
        tnn = torch.nn
        net = tnn.Sequential(tnn.Conv2d(1, 1, 2), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(), tnn.Linear(4, 1),
                             tnn.Sigmoid()).double()
        net.load_state_dict({k: torch.tensor(v) for k, v in tensor_model.state_dict().items()})
        tx, target = torch.tensor(X10), torch.ones(1, 1, dtype=torch.float64)

        def theirs():
            net.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy(net(tx), target)
            loss.backward()
            return loss.item()
        sides["PyTorch"] = theirs
    return sides


def report(title, sides, repeat, unit, scale, goal=None, reference="PyTorch", first=None):
    """Race the sides; print their first losses, median and best times, and the ratio to ``reference``
    (the median of the rounds' ratios: each round times both sides back to back, so a busy machine
    slows both alike) with the goal ``(name, at most, aim)`` met or not."""
    first = first or {name: step() for name, step in sides.items()}
    print(f"\n{title}")
    print("  first loss: " + ", ".join(f"{name} {value:.10g}" for name, value in first.items()))
    times, faults = race(sides, repeat)
    for name, t in times.items():
        line = (f"  {name:<20} {statistics.median(t) * scale:9.1f} {unit} per step (best {min(t) * scale:.1f}, "
                f"{faults[name]:.0f} page faults)")
        if reference in times and name != reference:
            ratios = statistics.quantiles([a / b for a, b in zip(t, times[reference])], n=4)
            ratio = ratios[1]
            line += f"   {ratio:5.2f}x {reference} (quartiles {ratios[0]:.2f}-{ratios[2]:.2f})"
            if goal and goal[0] == name:
                line += f"   goal <= {goal[1]}x (aim {goal[2]}x): {'met' if ratio <= goal[1] else 'NOT met'}"
        print(line)


def cpu_seconds():
    """(user, system) CPU seconds of this process so far, and its minor page faults."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime, usage.ru_minflt


def profile_ours(step, steps):
    """Seconds per step in each primitive's forward and backward rules (timed by wrapping the entries of
    PRIMITIVES, restored afterwards), and the step's wall, user and system seconds and page faults."""
    import tinygrad_cnn.tensor as engine
    spent, original = collections.Counter(), dict(engine.PRIMITIVES)

    def timed_rule(key, rule):
        def run(*args):
            start = time.perf_counter()
            try:
                return rule(*args)
            finally:
                spent[key] += time.perf_counter() - start
        return run
    for op, (forward, *rules) in original.items():
        engine.PRIMITIVES[op] = (timed_rule(f"{op} forward", forward),) + tuple(
            timed_rule(f"{op} backward" + (f" (input {i})" if len(rules) > 1 else ""), rule)
            for i, rule in enumerate(rules))
    try:
        for _ in range(10):
            step()
        spent.clear()
        totals = whole(step, steps)
    finally:
        engine.PRIMITIVES.update(original)
    return {key: t / steps for key, t in spent.items()}, totals


def whole(step, steps):
    """Wall, user and system seconds and minor page faults per step over ``steps`` steps."""
    gc.collect()
    before, start = cpu_seconds(), time.perf_counter()
    for _ in range(steps):
        step()
    wall, after = time.perf_counter() - start, cpu_seconds()
    return (wall / steps,) + tuple((b - a) / steps for a, b in zip(before, after))


def print_profile(torch, steps=200):
    """The profile of (a): our step by primitive rule, PyTorch's by operator."""
    sides = training_steps(torch)
    parts, (wall, user, system, faults) = profile_ours(sides["tinygrad_cnn"], steps)
    print(f"\n(a) profiled, tinygrad_cnn: {wall * 1e3:.2f} ms per step (timers included; user {user * 1e3:.2f} ms, "
          f"kernel {system * 1e3:.2f} ms, {faults:.0f} page faults)")
    for key, t in sorted(parts.items(), key=lambda kv: -kv[1]):
        if t >= 0.005 * wall:
            print(f"  {key:<28} {t * 1e3:6.2f} ms  {t / wall:6.1%}")
    small = sum(t for t in parts.values() if t < 0.005 * wall)
    print(f"  {'other primitives':<28} {small * 1e3:6.2f} ms  {small / wall:6.1%}")
    rest = wall - sum(parts.values())
    print(f"  {'the rest (Python: graph, SGD)':<28} {rest * 1e3:6.2f} ms  {rest / wall:6.1%}")
    if torch is None:
        return
    theirs = sides["PyTorch"]
    for _ in range(10):
        theirs()
    wall, user, system, faults = whole(theirs, steps)
    print(f"\n(a) PyTorch: {wall * 1e3:.2f} ms per step (user {user * 1e3:.2f} ms, kernel {system * 1e3:.2f} ms, "
          f"{faults:.0f} page faults); its operators (self CPU time, under torch.profiler):")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(50):
            theirs()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events)
    for e in events[:8]:
        print(f"  {e.key:<40} {e.self_cpu_time_total / 50e3:6.2f} ms  {e.self_cpu_time_total / total:6.1%}")


def main(args):
    threads = blas_threads()
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed (pip install -e '.[parity]'): our engines only, no ratios")
    else:
        torch.set_num_threads(threads)  # the thread count of numpy's BLAS
    print("\n".join(describe()) + f"; --repeat {args.repeat}")
    load = os.getloadavg()[0]
    if load > 0.5 * os.cpu_count():
        print(f"warning: the machine is busy (load average {load:.1f} on {os.cpu_count()} CPUs): timings vary, "
              f"and threads waiting for each other make multi-threaded ones much slower (try --threads 1)")

    if args.profile:
        print_profile(torch)
        return
    lenet = training_steps(torch)
    start = time.perf_counter()
    first = {"tinygrad_cnn": lenet["tinygrad_cnn"]()}
    print(f"\nthe first LeNet step of tinygrad_cnn (no warm-up) took {(time.perf_counter() - start) * 1e3:.1f} ms")
    first.update({name: step() for name, step in lenet.items() if name not in first})
    report("(a) LeNet-style training step, float32, batch 64x1x28x28 (forward, backward, SGD)",
           lenet, args.repeat, "ms", 1e3, goal=("tinygrad_cnn", 1.3, 1), first=first)
    report("(b, c) 10-parameter CNN, batch 1, float64: forward + backward",
           cnn10_steps(torch), args.repeat, "us", 1e6, goal=("tinygrad_cnn Tensor", 1.5, 1))


if __name__ == "__main__":
    main(ARGS)
