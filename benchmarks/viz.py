"""How long a graph picture takes: building the DOT text, and Graphviz's ``dot`` drawing it.

    .venv/bin/python benchmarks/viz.py [--repeat 5] [--format svg]

For each graph (the 10-parameter CNN of the worked example at scalar level, as `tinygrad-cnn
graph` draws it, collapsed, and at tensor level; the 15-parameter square detector at scalar
level): the number of drawn nodes (a box per value, an oval per operation), the time of
``viz.to_dot`` and of ``dot`` rendering (the ``render`` call without building the graph),
each the median of --repeat runs (best in brackets). Exits 1 when the 10-parameter scalar
graph takes 5 s or more end to end (``to_dot`` + ``dot``).
"""
import argparse
import re
import statistics
import sys
import time

from tinygrad_cnn import viz
from tinygrad_cnn import worked as W

GOAL_SECONDS = 5.0
CASES = (("cnn10", "scalar", "value", {}), ("cnn10", "scalar collapsed", "value", {"collapse": True}),
         ("cnn10", "tensor", "tensor", {}), ("square15", "scalar", "value", {}))


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times), min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--format", choices=("svg", "png", "pdf"), default="svg")
    args = parser.parse_args(argv)
    viz.check_dot(args.format)
    print(f"{'graph':<28} {'nodes':>6} {'to_dot s':>17} {'dot -T' + args.format + ' s':>17} {'total s':>8}")
    totals = {}
    for model, level, engine, options in CASES:
        root = W.work(model, engine).root
        build = lambda: viz.to_dot(root, params=tuple(W.PARAMS), **options)  # noqa: E731
        dot, t_build, best_build = timed(build, args.repeat)
        _, t_dot, best_dot = timed(lambda: dot.pipe(format=args.format), args.repeat)
        nodes = len(re.findall(r"^\t+[vo]\d+ \[", dot.source, flags=re.M))
        name = f"{model} {level}"
        totals[name] = t_build + t_dot
        print(f"{name:<28} {nodes:>6} {t_build:>8.3f} [{best_build:.3f}] {t_dot:>8.3f} [{best_dot:.3f}] "
              f"{totals[name]:>8.3f}")
    ok = totals["cnn10 scalar"] < GOAL_SECONDS
    print(f"cnn10 scalar: {totals['cnn10 scalar']:.2f} s end to end; goal < {GOAL_SECONDS:g} s: "
          f"{'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
