"""Training goals of issues 8 and 16, each measured as a user runs it: ``tinygrad-cnn train ... --json``.

    .venv/bin/python benchmarks/train.py squares [--seeds 10] [--plain]   # tensor engine, every seed >= 99%, < 30 s
    .venv/bin/python benchmarks/train.py squares-value [--seeds 10]        # value engine, >= 99% in < 30 s
    .venv/bin/python benchmarks/train.py digits-value [--seeds 3]          # value engine, >= 97% in < 180 s
    .venv/bin/python benchmarks/train.py squares-anatomy [--starts 40]     # why one start fails
    .venv/bin/python benchmarks/train.py digits [--seeds 3]                # >= 97% in < 60 s, beside PyTorch
    .venv/bin/python benchmarks/train.py mnist [--data ../shared/data/mnist] [--split 5000] [--repeat 3]
        # float32 within 1.5x of PyTorch float32's time, accuracy within 1 point
    .venv/bin/python benchmarks/train.py mnist --epochs 1 --split 1000 --repeat 1   # a quick check of the script

The squares runs are the commands printed beside their figures, each in a fresh process. digits
and mnist race PyTorch (the ``parity`` extra) side by side in this one process, alternating
round by round (who goes first alternates too) for ``--repeat`` rounds: our run is the printed
command run in-process (``tinygrad_cnn.cli.main``; its ``train_seconds``), PyTorch trains the
same net from the same initial weights over the same batches (``data.DataLoader``, same seed)
for the same epochs, in the same dtype (``--dtypes``: float32, PyTorch's default and ours; add
float64 to race both). Both get ``--threads`` threads (default 1: numpy's BLAS through the
environment, set before numpy is imported and inherited by the squares processes, and
``torch.set_num_threads``). A time is the median over the rounds (with the fastest and slowest),
a ratio the median of the rounds' ratios. The script prints numpy's BLAS, the thread pools
(threadpoolctl, when installed), PyTorch's threads and the load average first: timings on a
busy machine are noisy, re-run on a quiet one.
"""
import argparse
import contextlib
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOALS = ("squares", "squares-value", "squares-anatomy", "digits", "digits-value", "mnist")


def arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("goal", choices=GOALS)
    parser.add_argument("--starts", type=int, default=40, help="squares-anatomy: single starts per case")
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1 (squares 10, squares-value 10, digits 3, "
                        "digits-value 3, mnist 1)")
    parser.add_argument("--plain", action="store_true", help="squares: also the plain one-start recipe, which fails")
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "mnist"),
                        help="mnist: the folder of IDX files (default ../shared/data/mnist from the repository)")
    parser.add_argument("--split", type=int, default=5000, help="mnist: images to train on (default 5000)")
    parser.add_argument("--epochs", type=int, help="digits, mnist: epochs (default the task's: digits 30, mnist 8)")
    parser.add_argument("--repeat", type=int, help="digits, mnist: rounds per seed (default digits 1, mnist 3)")
    parser.add_argument("--dtypes", default="float32",
                        help="digits, mnist: the dtypes raced, comma-separated (default float32; float32,float64)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for numpy's BLAS and PyTorch (default 1: on a shared 2-core machine more "
                             "threads only wait)")
    args = parser.parse_args(argv)
    args.dtypes = args.dtypes.split(",")
    if not set(args.dtypes) <= {"float32", "float64"}:
        parser.error(f"--dtypes: expected float32, float64 or both, got {','.join(args.dtypes)}")
    if args.threads < 1:
        parser.error(f"--threads: expected an integer >= 1, got {args.threads}")
    return args


if __name__ == "__main__":
    ARGS = arguments()
    for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # read when numpy is imported
        os.environ[_name] = str(ARGS.threads)

import numpy as np  # noqa: E402  (after the thread count is set)

from tinygrad_cnn import cli, data  # noqa: E402
from tinygrad_cnn.cli.train import TASKS  # noqa: E402
from machine import describe  # noqa: E402  (benchmarks/machine.py)


def ours(*argv):
    """Run ``tinygrad-cnn train ARGV --json`` in a fresh process; (its JSON, the command line)."""
    cmd = [sys.executable, "-m", "tinygrad_cnn", "train", *map(str, argv), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1]), "tinygrad-cnn train " + " ".join(map(str, argv))


def ours_here(*argv):
    """Run ``tinygrad-cnn train ARGV --json`` in this process (its lines kept from the terminal); (its
    JSON, the command line)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["train", *map(str, argv), "--json"])
    if status:
        raise SystemExit(f"tinygrad-cnn train {' '.join(map(str, argv))} failed ({status}):\n{err.getvalue()}")
    return json.loads(out.getvalue().splitlines()[-1]), "tinygrad-cnn train " + " ".join(map(str, argv))


def torch_run(task, model, train_set, test_set, seed, epochs, dtype):
    """PyTorch on ``model``'s initial weights, ``task``'s batch size and Adam lr for ``epochs`` epochs:
    (accuracy, seconds)."""
    import torch
    from tinygrad_cnn import interop
    dtype = getattr(torch, dtype)
    net = interop.to_torch(model).to(dtype)
    optimizer = torch.optim.Adam(net.parameters(), lr=task.lr)
    loader = data.DataLoader(*train_set, task.batch_size, seed=seed)
    start = time.perf_counter()
    for _ in range(epochs):
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


def value_runs(args, task, goal, seconds):
    """The value engine's default run of ``task`` (its scalar graph replayed: see tinygrad_cnn.tape)
    beside the tensor engine's same run in float64, each seed in a fresh process: accuracy >= ``goal``
    in < ``seconds`` s, and the value engine's time over the tensor engine's (aim: within 2x)."""
    rows, ok, ratios = [], True, []
    for seed in range(args.seeds):
        value, cmd = ours(task, "--engine", "value", "--seed", seed)
        tensor, _ = ours(task, "--dtype", "float64", "--seed", seed)
        ok &= value["test_accuracy"] >= goal and value["train_seconds"] < seconds
        ratios.append(value["train_seconds"] / tensor["train_seconds"])
        rows.append((cmd, f"test accuracy {value['test_accuracy']:.4f}  train {value['train_seconds']:5.1f} s  "
                          f"(--engine tensor --dtype float64: {tensor['test_accuracy']:.4f} in "
                          f"{tensor['train_seconds']:.1f} s; the value engine takes {ratios[-1]:.1f}x its time)"))
    report(rows, f"{task}, value engine: every seed >= {goal} in < {seconds} s: {'MET' if ok else 'NOT MET'}; "
                 f"value engine / tensor engine time: median {statistics.median(ratios):.1f}x "
                 f"[{min(ratios):.1f}x, {max(ratios):.1f}x]")


def squares_value(args):
    value_runs(args, "squares", 0.99, 30)


def digits_value(args):
    value_runs(args, "digits", 0.97, 180)


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


def machine(threads):
    """The lines that say what the timings ran on (PyTorch given ``threads`` threads first, when installed)."""
    try:
        import torch
    except ImportError:
        return describe() + [f"PyTorch is not installed; OPENBLAS_NUM_THREADS={threads}"]
    torch.set_num_threads(threads)
    return describe()


def spread(seconds):
    return f"{statistics.median(seconds):.2f} s ({min(seconds):.2f}-{max(seconds):.2f})"


def beside_torch(task_name, extra, train_set, test_set, args):
    """Our runs and PyTorch's, alternating: ({dtype: {"ours", "torch": [(accuracy, seconds)], "ratios"}},
    rows to print)."""
    from tinygrad_cnn.models import digits_cnn, mnist_cnn
    make = {"digits": digits_cnn, "mnist": mnist_cnn}[task_name]
    task = TASKS[task_name]
    epochs = args.epochs or task.epochs
    epochs_option = ("--epochs", epochs) if args.epochs else ()
    print("\n".join(machine(args.threads)), flush=True)
    runs = {dtype: {"ours": [], "torch": [], "ratios": []} for dtype in args.dtypes}
    rows, turn = [], 0
    for seed in range(args.seeds):
        for round_ in range(args.repeat):
            for dtype in args.dtypes:
                sides = {"ours": lambda: ours_here(task_name, "--seed", seed, "--dtype", dtype, *epochs_option, *extra),
                         "torch": lambda: torch_run(task, make(seed, dtype=np.dtype(dtype)), train_set, test_set, seed,
                                                    epochs, dtype)}
                done = {}
                for side in (("ours", "torch") if turn % 2 == 0 else ("torch", "ours")):
                    gc.collect()
                    done[side] = sides[side]()
                turn += 1
                (result, cmd), theirs = done["ours"], done["torch"]
                mine = (result["test_accuracy"], result["train_seconds"])
                runs[dtype]["ours"].append(mine)
                runs[dtype]["torch"].append(theirs)
                runs[dtype]["ratios"].append(mine[1] / theirs[1])
                rows.append((cmd, f"round {round_ + 1}: test accuracy {mine[0]:.4f}  train {mine[1]:6.2f} s   "
                                  f"PyTorch {dtype}: {theirs[0]:.4f} {theirs[1]:6.2f} s   "
                                  f"{mine[1] / theirs[1]:.2f}x"))
    return runs, rows


def summary(runs):
    """One line per dtype: each side's median time (fastest-slowest) and accuracies, the median ratio."""
    lines = []
    for dtype, run in runs.items():
        ours, theirs = ([t for _, t in run[side]] for side in ("ours", "torch"))
        accuracies = {side: sorted({f"{a:.4f}" for a, _ in run[side]}) for side in ("ours", "torch")}
        lines.append(f"{dtype}, {len(ours)} runs each: ours {spread(ours)}, accuracy {'/'.join(accuracies['ours'])}; "
                     f"PyTorch {spread(theirs)}, accuracy {'/'.join(accuracies['torch'])}; ratio "
                     f"{statistics.median(run['ratios']):.2f}x ({min(run['ratios']):.2f}-{max(run['ratios']):.2f})")
    return lines


def digits(args):
    runs, rows = beside_torch("digits", (), *data.digits(), args)
    ok = all(a >= 0.97 and t < 60 for run in runs.values() for a, t in run["ours"])
    report(rows, "\n".join(summary(runs)) + f"\ndigits, tensor engine: >= 0.97 in < 60 s: {'MET' if ok else 'NOT MET'}")


def mnist(args):
    runs, rows = beside_torch("mnist", ("--data", args.data, "--split", args.split), *data.mnist(args.data, args.split),
                              args)
    lines = summary(runs)
    if "float32" in runs:
        run = runs["float32"]
        fast = statistics.median(run["ratios"]) <= 1.5
        close = all(abs(a - b) <= 0.01 for (a, _), (b, _) in zip(run["ours"], run["torch"]))
        lines.append(f"mnist, float32: within 1.5x of PyTorch float32's time ({args.threads} thread(s) each): "
                     f"{'MET' if fast else 'NOT MET'}; accuracy within 1 point: {'MET' if close else 'NOT MET'}")
    report(rows, "\n".join(lines))


def main(args):
    data_path = os.path.abspath(args.data)
    os.chdir(ROOT)  # commands run from the repository, as printed
    args.data = os.path.relpath(data_path)
    args.seeds = args.seeds or {"squares": 10, "squares-value": 10, "digits": 3, "digits-value": 3,
                                "mnist": 1}.get(args.goal)
    args.repeat = args.repeat or {"mnist": 3}.get(args.goal, 1)
    {"squares": squares, "squares-value": squares_value, "squares-anatomy": squares_anatomy, "digits": digits,
     "digits-value": digits_value, "mnist": mnist}[args.goal](args)


if __name__ == "__main__":
    main(ARGS)
