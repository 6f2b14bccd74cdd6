"""Training goals of issue 8, each measured as a user runs it: ``tinygrad-cnn train ... --json``.

    .venv/bin/python benchmarks/train.py squares [--seeds 10] [--plain]   # tensor engine, every seed >= 99%, < 30 s
    .venv/bin/python benchmarks/train.py squares-value [--seeds 10]        # value engine, >= 97%
    .venv/bin/python benchmarks/train.py squares-anatomy [--starts 40]     # why one start fails
    .venv/bin/python benchmarks/train.py digits [--seeds 3]                # >= 97% in < 60 s, beside PyTorch
    .venv/bin/python benchmarks/train.py mnist [--data ../shared/data/mnist] [--split 5000]   # beside PyTorch

Each run of ours is the command printed beside its figures (a fresh process). PyTorch (the
``parity`` extra) trains the same net from the same initial weights over the same batches
(``data.DataLoader``, same seed) for the same epochs, in float32 as PyTorch users do and in
float64 as we train (the goal compares with float32), with
``--torch-threads`` threads (default 1: on a shared 2-core machine more threads only wait).
Timings on a busy machine are noisy: re-run on a quiet one.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from tinygrad_cnn import data
from tinygrad_cnn.cli.train import TASKS

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def ours(*argv):
    """Run ``tinygrad-cnn train ARGV --json`` in a fresh process; (its JSON, the command line)."""
    cmd = [sys.executable, "-m", "tinygrad_cnn", "train", *map(str, argv), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1]), "tinygrad-cnn train " + " ".join(map(str, argv))


def torch_run(task, model, train_set, test_set, seed, threads, dtype):
    """PyTorch on ``model``'s initial weights, ``task``'s epochs, batch size and Adam lr: (accuracy, seconds)."""
    import torch
    from tinygrad_cnn import interop
    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype)
    net = interop.to_torch(model).to(dtype)
    optimizer = torch.optim.Adam(net.parameters(), lr=task.lr)
    loader = data.DataLoader(*train_set, task.batch_size, seed=seed)
    start = time.perf_counter()
    for _ in range(task.epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(torch.tensor(xb, dtype=dtype)), torch.tensor(yb)).backward()
            optimizer.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        predicted = net(torch.tensor(test_set[0], dtype=dtype)).argmax(dim=1).numpy()
    return float(np.mean(predicted == test_set[1])), seconds


def report(rows, goal):
    width = max(len(cmd) for cmd, _ in rows)
    for cmd, text in rows:
        print(f"  {cmd:<{width}}  {text}")
    print(goal, flush=True)


def squares(args):
    rows, ok = [], True
    for seed in range(args.seeds):
        result, cmd = ours("squares", "--seed", seed)
        ok &= result["test_accuracy"] >= 0.99 and result["train_seconds"] < 30
        good = sum(a >= 0.99 for a in result["start_accuracies"])
        rows.append((cmd, f"test accuracy {result['test_accuracy']:.4f}  train {result['train_seconds']:5.1f} s  "
                          f"(starts >= 0.99 after one epoch: {good}/{len(result['start_accuracies'])}; "
                          f"kept start {result['kept_start'] + 1})"))
    report(rows, f"squares, tensor engine: every seed >= 0.99 in < 30 s: {'MET' if ok else 'NOT MET'}")
    if args.plain:  # what each half of the recipe does alone, and the plain recipe that fails
        for title, options in (("plain: PyTorch init, one start, 30 epochs of 4,000 images",
                                ("--init", "pytorch", "--restarts", 1, "--n", 4000, "--epochs", 30)),
                               ("detector init, one start, 30 epochs of 4,000 images",
                                ("--restarts", 1, "--n", 4000, "--epochs", 30)),
                               ("PyTorch init, 20 starts judged on validation",
                                ("--init", "pytorch", "--restarts", 20))):
            runs = [ours("squares", "--seed", seed, *options) for seed in range(args.seeds)]
            below = sum(r["test_accuracy"] < 0.99 for r, _ in runs)
            report([(cmd, f"test accuracy {r['test_accuracy']:.4f}  train {r['train_seconds']:5.1f} s")
                    for r, cmd in runs], f"{title}: {below} of {len(runs)} seeds below 0.99")


def squares_value(args):
    rows, ok = [], True
    for seed in range(args.seeds):
        result, cmd = ours("squares", "--engine", "value", "--n", 1000, "--batch-size", 16, "--epochs", 5,
                           "--restarts", 5, "--seed", seed)
        ok &= result["test_accuracy"] >= 0.97
        rows.append((cmd, f"test accuracy {result['test_accuracy']:.4f}  train {result['train_seconds']:5.1f} s"))
    report(rows, f"squares, value engine: every seed >= 0.97: {'MET' if ok else 'NOT MET'}")


def squares_anatomy(args):
    """Single starts of the square detector (no restarts), sorted by how they end after 5 epochs: above
    0.99, dead (no conv output > 0 on any test image: no gradient reaches F or b1 again), or stuck in
    another minimum; with the course's dark square and a bright one, PyTorch's initialisation and
    one with w4 and b1 made >= 0."""
    from tinygrad_cnn import Tensor, no_grad, train
    from tinygrad_cnn.models import square_detector15
    from tinygrad_cnn.optim import Adam
    task, epochs = TASKS["squares"], 5
    print(f"{args.starts} starts each: 4,000 training images, {epochs} epochs, Adam lr {task.lr}, "
          f"batch {task.batch_size}; accuracy on 2,000 test images")
    for value, problem in ((0.0, "dark square (value 0, the course's)"), (1.0, "bright square (value 1)")):
        X, y = data.squares(6000, value=value, seed=0)
        for signs in (False, True):
            rng, ends = np.random.default_rng(0), []
            for _ in range(args.starts):
                model = square_detector15(rng)
                state = model.state_dict()
                if signs:
                    state["4.weight"], state["0.bias"] = np.abs(state["4.weight"]), np.abs(state["0.bias"])
                    model.load_state_dict(state)
                w4_up = state["4.weight"].sum() > 0
                train.fit(model, Adam(model.parameters(), lr=task.lr), X[:4000], y[:4000], epochs, task.batch_size)
                accuracy = train.evaluate(model, X[4000:], y[4000:])[1]
                with no_grad():
                    alive = (model[0](Tensor(X[4000:])).data > 0).any()
                end = "above 0.99" if accuracy >= 0.99 else "another minimum" if alive else "dead ReLU"
                ends.append((end, w4_up, model.state_dict()["0.weight"].sum() < 0))
            print(f"{problem}, {'w4, b1 >= 0 at start' if signs else 'PyTorch init'}:")
            for end in ("above 0.99", "another minimum", "dead ReLU"):
                mine = [e for e in ends if e[0] == end]
                print(f"  {end:<15} {len(mine):3d}   of them started with sum(w4) > 0: {sum(e[1] for e in mine):3d},"
                      f" ended with a kernel of sum < 0: {sum(e[2] for e in mine):3d}", flush=True)


def beside_torch(task_name, extra, train_set, test_set, args, goal):
    from tinygrad_cnn.models import digits_cnn, mnist_cnn
    make = {"digits": digits_cnn, "mnist": mnist_cnn}[task_name]
    rows, ok = [], True
    for seed in range(args.seeds):
        result, cmd = ours(task_name, "--seed", seed, *extra)
        torch_runs = {dtype: torch_run(TASKS[task_name], make(seed), train_set, test_set, seed, args.torch_threads,
                                       dtype) for dtype in ("float32", "float64")}
        ok &= goal(result, torch_runs["float32"][0])
        rows.append((cmd, f"test accuracy {result['test_accuracy']:.4f}  train {result['train_seconds']:5.1f} s   "
                          "PyTorch " + ", ".join(f"{d}: {a:.4f} {t:5.1f} s" for d, (a, t) in torch_runs.items())))
    return rows, ok


def digits(args):
    rows, ok = beside_torch("digits", (), *data.digits(), args,
                            lambda r, torch_accuracy: r["test_accuracy"] >= 0.97 and r["train_seconds"] < 60)
    report(rows, f"digits, tensor engine: >= 0.97 in < 60 s: {'MET' if ok else 'NOT MET'}")


def mnist(args):
    rows, ok = beside_torch("mnist", ("--data", args.data, "--split", args.split), *data.mnist(args.data, args.split),
                            args, lambda r, torch_accuracy: abs(r["test_accuracy"] - torch_accuracy) <= 0.01)
    report(rows, f"mnist: within 1 point of PyTorch's accuracy: {'MET' if ok else 'NOT MET'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("goal", choices=("squares", "squares-value", "squares-anatomy", "digits", "mnist"))
    parser.add_argument("--starts", type=int, default=40, help="squares-anatomy: single starts per case")
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 (squares 10, squares-value 10, digits 3, mnist 1)")
    parser.add_argument("--plain", action="store_true", help="squares: also the plain one-start recipe, which fails")
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "mnist"),
                        help="mnist: the folder of IDX files (default ../shared/data/mnist from the repository)")
    parser.add_argument("--split", type=int, default=5000)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    data_path = os.path.abspath(args.data)
    os.chdir(ROOT)  # commands run from the repository, as printed
    args.data = os.path.relpath(data_path)
    args.seeds = args.seeds or {"squares": 10, "squares-value": 10, "digits": 3, "mnist": 1}.get(args.goal)
    {"squares": squares, "squares-value": squares_value, "squares-anatomy": squares_anatomy, "digits": digits,
     "mnist": mnist}[args.goal](args)


if __name__ == "__main__":
    main()
