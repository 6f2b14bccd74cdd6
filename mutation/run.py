"""`make mutate`: mutation testing of the backward rules with cosmic-ray (not part of CI).

Copies the package and the tests into a scratch directory (a mutant is written into the file
it mutates), lets cosmic-ray make every mutant of the engines (tensor.py, backend.py,
engine.py: those inside backward-rule code, found by backward_spans.py) and of the custom
Function machinery and gradcheck (function.py, testing/__init__.py: all of them), and runs
the fast tests that check the rules against each mutant, one at a time, with the ci
profile's examples (not shrunk).
A mutant's tests run in a child forked from this process, which has pytest, numpy and
hypothesis loaded already and imports the (mutated) package afresh: about 1 s a mutant
instead of a new interpreter's several. Prints the score and every survivor with its diff.

    .venv/bin/python mutation/run.py [--tests FILE ...] [--work DIR] [--timeout SECONDS]
"""
import argparse
import difflib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from backward_spans import backward_spans, contains

ROOT = Path(__file__).resolve().parents[1]
RULES = ("tinygrad_cnn/tensor.py", "tinygrad_cnn/backend.py", "tinygrad_cnn/engine.py")  # backward code only
WHOLE = ("tinygrad_cnn/function.py", "tinygrad_cnn/testing/__init__.py")                # every line
MODULES = RULES + WHOLE
PROFILE = "mutate"
# fastest first: with pytest -x, most mutants die in the first file
TESTS = ("tests/testing/test_wrong_rules.py", "tests/test_engine.py", "tests/test_tensor.py", "tests/test_function.py",
         "tests/testing/test_gradcheck.py", "tests/nn", "tests/testing/test_backward_rules.py",
         "tests/testing/test_models_gradcheck.py")

try:
    import cosmic_ray.plugins
    from cosmic_ray.mutating import use_mutation
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult
except ImportError:
    sys.exit("mutation/run.py needs cosmic-ray: .venv/bin/python -m pip install -e '.[mutate]'")


def pytest_args(tests):
    return ["-x", "-q", "-p", "no:cacheprovider", *tests]


def config(modules, tests, timeout):
    command = " ".join([sys.executable, "-m", "pytest", *pytest_args(tests)])
    return "\n".join(["[cosmic-ray]", 'module-path = ["' + '", "'.join(modules) + '"]', f"timeout = {float(timeout)}",
                      "excluded-modules = []", f'test-command = "{command}"', "",
                      "[cosmic-ray.distributor]", 'name = "local"', ""])


def keep_backward_mutants(db, modules):
    """Mark every mutant outside backward-rule code as skipped; return the others, in source order."""
    spans = {m: backward_spans(Path(m).read_text()) for m in RULES if m in modules}
    spans.update({m: [("all", (1, 0), (len(Path(m).read_text().splitlines()) + 1, 0))] for m in WHOLE if m in modules})
    items = sorted(db.pending_work_items, key=lambda i: (str(i.mutations[0].module_path), i.mutations[0].start_pos,
                                                         i.mutations[0].operator_name, i.mutations[0].occurrence))
    inside = [i for i in items if all(contains(spans[str(m.module_path)], m.start_pos, m.end_pos) for m in i.mutations)]
    kept = {i.job_id for i in inside}
    outside = [i.job_id for i in items if i.job_id not in kept]
    db.set_multiple_results(outside, WorkResult(output="not backward-rule code", worker_outcome=WorkerOutcome.SKIPPED))
    return inside


def run_tests(tests, timeout, log):
    """pytest in a forked child (killed after ``timeout`` s): (passed, last lines of its output)."""
    pid = os.fork()
    if pid == 0:  # the child: output to the log, a fresh import of the package from the scratch copy
        code = 1
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            import tinygrad_cnn
            assert tinygrad_cnn.__file__.startswith(os.getcwd()), tinygrad_cnn.__file__
            from hypothesis import Phase, settings
            import tinygrad_cnn.testing.strategies  # noqa: F401  registers "ci"
            # ci's examples, without shrinking: a mutant needs one failing example, not the smallest
            settings.register_profile(PROFILE, settings.get_profile("ci"), phases=[Phase.explicit, Phase.generate])
            import pytest
            for test in tests:  # one file at a time: a mutant killed by the first is not made to collect the rest
                code = int(pytest.main(pytest_args([test])))
                if code != 0:
                    break
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False, "timeout"
        time.sleep(0.02)
    tail = "".join(Path(log).read_text().splitlines(keepends=True)[-6:])
    return os.waitstatus_to_exitcode(status) == 0, tail


def test_mutant(item, tests, timeout):
    m = item.mutations[0]
    operator = cosmic_ray.plugins.get_operator(m.operator_name)(**(m.operator_args or {}))
    with use_mutation(m.module_path, operator, m.occurrence) as (original, mutated):
        if mutated is None:
            return WorkResult(worker_outcome=WorkerOutcome.NO_TEST)
        passed, output = run_tests(tests, timeout, "mutant.log")
    diff = "".join(difflib.unified_diff(original.splitlines(True), mutated.splitlines(True), str(m.module_path),
                                        str(m.module_path), n=0))
    return WorkResult(output=output, diff=diff, worker_outcome=WorkerOutcome.NORMAL,
                      test_outcome=TestOutcome.SURVIVED if passed else TestOutcome.KILLED)


def report(db):
    """The score and every survivor, as text."""
    done = [(i, r) for i, r in db.completed_work_items if r.worker_outcome == WorkerOutcome.NORMAL]
    survived = [(i, r) for i, r in done if r.test_outcome == TestOutcome.SURVIVED]
    killed = len(done) - len(survived)
    lines = [f"mutants in backward-rule code: {len(done)}; killed {killed}, survived {len(survived)}; "
             f"mutation score {killed / max(len(done), 1):.1%}"]
    survived.sort(key=lambda s: (str(s[0].mutations[0].module_path), s[0].mutations[0].start_pos))
    for item, result in survived:
        m = item.mutations[0]
        lines += ["", f"SURVIVED {m.module_path}:{m.start_pos[0]} {m.operator_name} #{m.occurrence}", result.diff]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", nargs="+", default=TESTS, help="test files or folders (missing ones are left out)")
    parser.add_argument("--modules", nargs="+", default=MODULES, choices=MODULES, help="the files to mutate (all)")
    parser.add_argument("--work", default=str(ROOT / "build" / "mutate"), help="scratch directory (replaced)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for the tests of one mutant")
    args = parser.parse_args()
    tests = [t for t in args.tests if (ROOT / t).exists()]
    print("tests:", *tests, "| left out (missing):", *(sorted(set(args.tests) - set(tests)) or ["none"]), flush=True)
    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for folder in ("tinygrad_cnn", "tests", "docs"):
        shutil.copytree(ROOT / folder, work / folder, ignore=shutil.ignore_patterns("__pycache__"))
    os.chdir(work)
    sys.path.insert(0, str(work))  # the copy, not the editable install, is what the children import
    sys.dont_write_bytecode = True  # a stale .pyc of a mutant must never stand in for the next one
    os.environ.update(TINYGRAD_CNN_PROFILE=PROFILE, PYTHONDONTWRITEBYTECODE="1")
    import hypothesis.extra.numpy  # noqa: F401  loaded once here, shared by every child
    import pytest  # noqa: F401
    Path("cosmic-ray.toml").write_text(config(args.modules, tests, args.timeout))
    cosmic_ray_command = Path(sys.executable).parent / "cosmic-ray"
    subprocess.run([cosmic_ray_command, "init", "cosmic-ray.toml", "session.sqlite"], check=True)
    with use_db("session.sqlite", WorkDB.Mode.open) as db:
        items = keep_backward_mutants(db, args.modules)
        print(f"{len(items)} mutants in backward-rule code, {db.num_work_items - len(items)} elsewhere (skipped)")
        started = time.monotonic()
        passed, output = run_tests(tests, 10 * args.timeout, "baseline.log")
        if not passed:
            sys.exit(f"the tests fail without any mutant:\n{output}")
        print(f"baseline: the tests pass in {time.monotonic() - started:.1f} s", flush=True)
        for n, item in enumerate(items, 1):
            db.set_result(item.job_id, test_mutant(item, tests, args.timeout))
            if n % 50 == 0 or n == len(items):
                print(f"{n}/{len(items)} mutants tested, {time.monotonic() - started:.0f} s", flush=True)
        text = report(db)
    Path("report.txt").write_text(text + "\n")
    print(text, f"\nreport: {work / 'report.txt'}", sep="\n")


if __name__ == "__main__":
    main()
