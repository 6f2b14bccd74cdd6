"""A fuzz test of the command line: hypothesis draws argv from the real sub-commands and their real
option names (read from ``cli.build_parser()``) with junk, edge and hostile values, runs each in this
process (``cli.main(argv)``) in a fresh folder, and checks what a user sees:

- the exit status is 0 or 2 (1 too for ``check``: a wrong answer), never an exception out of ``main``;
- no "Traceback" on stderr or stdout;
- an exit status 2 from the program prints exactly one line on stderr, starting "tinygrad-cnn";
  argparse's own usage errors (SystemExit(2)) print its usage block and then one
  "tinygrad-cnn COMMAND: error: ..." line, which is accepted as it is;
- no file is left in the folder but those the argv asked for (-o, --save, --html, --svg,
  --dump-model, --plots; ``graph``'s default graph.FORMAT);
- every argv ends within ``TIME_BOUND`` seconds. Runs that would train for long are tamed before they
  run: ``train squares`` always gets ``--epochs 1 --n 20`` (later values override), valid --epochs, --n,
  --restarts and --split are capped, and ``digits``/``mnist`` always use the tensor engine. Nothing is
  downloaded: mnist reads ../shared/data/mnist (or a fixture folder) or fails.

Bounded in the ``ci`` profile (deterministic, 65 examples in all); a few hundred in ``thorough``.
The hostile argv found so far are also run one by one (``test_hostile_argv``) so each is reported on
its own.

/dev/null is never given as an *output* path here: the atomic writes replace the path with a regular file,
which, run as root (as these tests may be), could replace the system's /dev/null. A symlink
``devnull -> /dev/null`` in the working folder stands for it, and
``test_an_output_path_that_is_a_device_is_not_replaced`` uses a device node made in a temporary folder.
Also outside the in-process fuzz (it would exhaust memory): ``test_an_endless_input_file_is_refused_in_bounded_memory``
runs ``--x /dev/zero`` and the like in a child process with its address space capped.
"""
import argparse
import contextlib
import io
import json
import os
import signal
import stat
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from tinygrad_cnn import checkpoint, cli, models
from tinygrad_cnn.optim import Adam
from tinygrad_cnn.testing.strategies import PROFILE_VARIABLE

# --- budgets ---------------------------------------------------------------------------------------
PROFILE = os.environ.get(PROFILE_VARIABLE) or "dev"
BUDGET = {  # max_examples per test and profile: ci 65 in all (< 60 s), thorough a few hundred
    "ci": dict(worked=20, graph=12, check=12, train=16, top=5),
    "dev": dict(worked=30, graph=20, check=20, train=30, top=10),
    "thorough": dict(worked=120, graph=80, check=80, train=120, top=30),
}.get(PROFILE, dict(worked=30, graph=20, check=20, train=30, top=10))
TIME_BOUND = 30.0  # seconds per argv (the slowest legitimate runs here take ~6 s)
# ci: bounded time even while a bug is there: the first failing argv is reported as drawn (no shrinking); other
# profiles shrink it and report each distinct bug
NO_SHRINK = dict(phases=(Phase.explicit, Phase.reuse, Phase.generate), report_multiple_bugs=False)
FUZZ = dict(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True,
            **(NO_SHRINK if PROFILE == "ci" else {}))

REPO = Path(__file__).resolve().parents[2]
MNIST = (REPO / ".." / "shared" / "data" / "mnist").resolve()
OUTPUT_DESTS = ("output", "save", "html", "svg", "dump_model", "plots")  # what an argv may write
INPUT_DESTS = ("model", "x", "kernel", "w4", "resume", "data", "answers")


# --- the parser, read -------------------------------------------------------------------------------
def subparsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@dataclass
class Option:
    names: tuple          # ("-o", "--output")
    dest: str
    takes_value: bool
    choices: tuple = None
    is_int: bool = False


@dataclass
class Command:
    name: str
    options: list = field(default_factory=list)
    positionals: list = field(default_factory=list)   # (dest, choices or None)


def commands():
    out = {}
    for name, p in subparsers().items():
        c = Command(name)
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            if not a.option_strings:
                c.positionals.append((a.dest, tuple(a.choices) if a.choices else None))
                continue
            c.options.append(Option(tuple(a.option_strings), a.dest, a.nargs != 0,
                                    tuple(a.choices) if a.choices else None, a.type is int))
        out[name] = c
    return out


COMMANDS = commands()


def test_the_fuzz_knows_every_output_option_of_the_parser():
    """An option that names a file to write must be in OUTPUT_DESTS, or the stray-file check would blame it."""
    for c in COMMANDS.values():
        for o in c.options:
            if o.takes_value and o.choices is None and not o.is_int and o.dest not in OUTPUT_DESTS + INPUT_DESTS:
                metavar = next(a for a in subparsers()[c.name]._actions if a.dest == o.dest).metavar
                assert metavar not in ("PATH", "DIR", "FILE"), (
                    f"{c.name} {o.names[-1]} (metavar {metavar}) looks like a path: add it to OUTPUT_DESTS "
                    f"or INPUT_DESTS of this fuzz test")
    dests = {o.dest for c in COMMANDS.values() for o in c.options}
    assert set(OUTPUT_DESTS) <= dests, set(OUTPUT_DESTS) - dests


# --- fixtures: the files an argv may name, made once, written into each run's fresh folder ------------
X5 = [[2, 1, 0, 2, 1], [2, 1, 1, 0, 2], [1, 2, 0, 1, 0], [1, 0, 2, 1, 2], [2, 1, 1, 0, 0]]
DEEP = 100_000  # levels of nesting: far past the recursion limit


def _npy(array, allow_pickle=False):
    f = io.BytesIO()
    np.save(f, array, allow_pickle=allow_pickle)
    return f.getvalue()


def _checkpoint_bytes(model, optimizer, epoch=1):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.npz")
        checkpoint.save(path, model, optimizer, epoch)
        return Path(path).read_bytes()


def _cli_checkpoint(*argv):
    """A checkpoint written by the command line itself (with whatever it records), or None."""
    with tempfile.TemporaryDirectory() as d, contextlib.chdir(d), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            cli.main(["train", *argv, "--save", "c.npz"])
            return Path("c.npz").read_bytes()
        except BaseException:  # noqa: BLE001 (a fixture: the fuzz reports the bug itself)
            return None


def _right_answers():
    """worked --json of cnn10: every quantity right (a student's answers file), or {} if worked fails."""
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
        try:
            cli.main(["worked", "--json", "--engine", "tensor"])
        except BaseException:  # noqa: BLE001 (a fixture: the fuzz reports the bug itself)
            return "{}"
    return out.getvalue()


DENSE = (REPO / "examples" / "models" / "notes_001_dense.json").read_bytes()


def _fixtures():
    rng = np.random.default_rng(0)
    model = models.square_detector15(0)
    ck = (_cli_checkpoint("squares", "--epochs", "1", "--n", "20")
          or _checkpoint_bytes(model, Adam(model.parameters(), lr=0.05)))
    ck_sgd = _cli_checkpoint("squares", "--epochs", "1", "--n", "20", "--optimizer", "sgd") or ck
    digits = models.digits_cnn(0)
    files = {
        # arrays for --x, --kernel, --w4
        "x.npy": _npy(np.array(X5, dtype=np.float64)),
        "x6.npy": _npy(rng.uniform(0, 1, (6, 6))),
        "k.npy": _npy(np.array([[1.0, -1.0], [0.5, 0.0]])),
        "xc.npy": _npy(np.array(X5) + 1j),
        "xo.npy": _npy(np.array(X5, dtype=object), allow_pickle=True),
        "xs.npy": _npy(np.array(X5).astype(str)),
        "xdt.npy": _npy(np.array(X5).astype("datetime64[s]")),
        "xv.npy": _npy(np.zeros((5, 5), "V8")),
        "x.txt": b"2 1 0 2 1\n2 1 1 0 2\n1 2 0 1 0\n1 0 2 1 2\n2 1 1 0 0\n",
        "x.json": json.dumps(X5).encode(),
        "deep.json": b"[" * DEEP,
        "bin.dat": bytes(rng.integers(0, 256, 512, dtype=np.uint8)),
        "afile": b"",
        # model files
        "m.json": DENSE,
        "m_conv.json": (REPO / "examples" / "models" / "notes_002_pooling.json").read_bytes(),
        "m_bad.json": b'{"input": [1, 2], "layers": [',
        "m_nan.json": DENSE.replace(b"0.2,", b"NaN,", 1),       # a weight NaN
        "m_1e400.json": DENSE.replace(b"0.2,", b"1e400,", 1),   # a weight past float64
        "m_huge.json": json.dumps({"input": [[1.0]], "target": [[1.0]], "layers": [
            {"type": "Linear", "in_features": 10 ** 6, "out_features": 10 ** 6}]}).encode(),
        # answers for check
        "right.json": _right_answers().encode(),
        "wrong.json": b'{"loss": 0.57}',
        "nan.json": b'{"loss": NaN}',
        "str.json": b'{"loss": "abc"}',
        "bigint.json": b'{"loss": 1' + b"0" * 400 + b"}",
        "empty.json": b"{}",
        # checkpoints for --resume
        "ck.npz": ck,
        "ck_sgd.npz": ck_sgd,
        "ck_digits.npz": _checkpoint_bytes(digits, Adam(digits.parameters(), lr=0.003)),
        "ck_trunc.npz": ck[: len(ck) // 2],
        "ck_bad.npz": bytes(rng.integers(0, 256, 300, dtype=np.uint8)),
        # mnist folders for --data
        "mn_bad/t10k-images-idx3-ubyte.gz": b"\x1f\x8b\x08\x00 not really gzip",
        "mn_bad/t10k-labels-idx1-ubyte.gz": b"\x1f\x8b\x08\x00 not really gzip",
        "mn_half/t10k-images-idx3-ubyte": b"".join(n.to_bytes(4, "big") for n in (2051, 1, 28, 28)) + bytes(784),
    }
    return files


FIXTURES = _fixtures()
FIXTURE_DIRS = ("adir",)
SYMLINKS = {"devnull": "/dev/null"}


def materialize(root):
    for rel, content in FIXTURES.items():
        path = Path(root, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for rel in FIXTURE_DIRS:
        Path(root, rel).mkdir(exist_ok=True)
    for rel, target in SYMLINKS.items():
        os.symlink(target, Path(root, rel))


def entries(root):
    """Every file, folder and link under ``root``, as relative paths (hidden ones too)."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


# --- running one argv -----------------------------------------------------------------------------------
class Overtime(BaseException):
    """The argv ran past TIME_BOUND (raised by SIGALRM, not catchable as an Exception)."""


@contextlib.contextmanager
def time_bound(seconds):
    def on_alarm(signum, frame):
        raise Overtime(f"still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Run:
    argv: list
    status: object = None
    out: str = ""
    err: str = ""
    seconds: float = 0.0
    escaped: str = None        # the traceback of an exception out of main
    by_argparse: bool = False  # SystemExit raised (argparse's error, --help, --version)
    strays: list = field(default_factory=list)


def _environment():
    env = {k: v for k, v in os.environ.items() if k != "TINYGRAD_CNN_MNIST"}
    env.update(MPLBACKEND="Agg", COLUMNS="100")
    return env


def run_argv(argv, folder=None):
    """Run ``cli.main(argv)`` in a fresh folder with the fixtures (or in ``folder``); stdout and stderr captured
    as a terminal would take them (stdout strict UTF-8, stderr with backslash escapes)."""
    argv = list(argv)
    run = Run(argv)
    with contextlib.ExitStack() as stack:
        root = folder or stack.enter_context(tempfile.TemporaryDirectory(prefix="fuzz-cli-"))
        if folder is None:
            materialize(root)
        before = entries(root)
        out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
        out = io.TextIOWrapper(out_bytes, encoding="utf-8", errors="strict", write_through=True)
        err = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="backslashreplace", write_through=True)
        began = time.perf_counter()
        with contextlib.chdir(root), mock.patch.dict(os.environ, _environment(), clear=True), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")  # Python's default filters, as a user's run has them
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.filterwarnings("ignore", category=category)
            try:
                with time_bound(TIME_BOUND):
                    run.status = cli.main(argv)
            except SystemExit as e:
                run.by_argparse = True
                run.status = 0 if e.code is None else e.code
            except BaseException:  # noqa: BLE001 -- the point: nothing may escape main
                run.escaped = traceback.format_exc()
            finally:
                with contextlib.suppress(Exception):
                    out.flush()
                    err.flush()
            for w in caught:  # as Python would print them on stderr
                err_bytes.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
                                .encode("utf-8", "backslashreplace"))
            run.seconds = time.perf_counter() - began
            run.out = out_bytes.getvalue().decode("utf-8", "replace")
            run.err = err_bytes.getvalue().decode("utf-8", "replace")
            allowed = asked_outputs(argv, root)
            run.strays = sorted(e for e in entries(root) - before if not _is_asked(e, allowed))
    return run


def asked_outputs(argv, root):
    """The paths (relative to ``root``) that ``argv`` asks to write, as the real parser reads it."""
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            args = cli.build_parser().parse_args(argv)
        except SystemExit:
            return []
    paths = [getattr(args, d) for d in OUTPUT_DESTS if isinstance(getattr(args, d, None), str)]
    if getattr(args, "command", None) == "graph" and not args.output:
        paths.append(f"graph.{args.format or 'svg'}")
    out = []
    for p in paths:
        rel = os.path.relpath(os.path.abspath(os.path.join(root, p)), root) if p else "."
        out.append(os.path.normpath(rel))
    return out


def _is_asked(entry, allowed):
    entry = os.path.normpath(entry)
    for a in allowed:
        if a == "." or entry == a or entry.startswith(a + os.sep) or a.startswith(entry + os.sep):
            return True  # the path itself, what is inside it (--plots DIR), or a folder made on the way to it
    return False


def shown(argv):
    """``argv`` with its long strings cut to be read in a report."""
    return [a if len(a) <= 60 else f"{a[:20]}... ({len(a)} characters)" for a in argv]


def assert_well_behaved(run, exits=(0, 2)):
    """What a user must see for any argv (see the module docstring); pytest.fail with the argv otherwise."""
    where = f"argv {shown(run.argv)!r}"
    if run.escaped is not None:
        pytest.fail(f"{where}: an exception escaped cli.main:\n{run.escaped[-3000:]}", pytrace=False)
    if not (isinstance(run.status, int) and run.status in exits):
        pytest.fail(f"{where}: exit status {run.status!r}, expected one of {exits}; stderr:\n{run.err[-2000:]}",
                    pytrace=False)
    for name, text in (("stderr", run.err), ("stdout", run.out)):
        if "Traceback" in text:
            pytest.fail(f"{where}: exit {run.status} with a traceback on {name}:\n{text[-3000:]}", pytrace=False)
    if run.status == 2:
        lines = run.err.rstrip("\n").split("\n")
        if run.by_argparse:  # argparse: its usage block, then one "tinygrad-cnn ...: error: ..." line
            usage_then_error = lines[0].startswith("usage: ") and lines[-1].startswith("tinygrad-cnn") \
                and ": error: " in lines[-1]
            if not usage_then_error:
                pytest.fail(f"{where}: argparse's exit 2 without its usage and error line:\n{run.err}", pytrace=False)
        elif not (len(lines) == 1 and lines[0].startswith("tinygrad-cnn")):
            pytest.fail(f"{where}: exit status 2 must print exactly one line starting 'tinygrad-cnn', got "
                        f"{len(lines)} line(s):\n{run.err[-3000:]}", pytrace=False)
    if run.strays:
        pytest.fail(f"{where}: exit {run.status}, left files nobody asked for: {run.strays}", pytrace=False)
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        pytest.fail(f"{where}: /dev/null is no longer a device!", pytrace=False)


def test_the_stray_file_check_allows_exactly_the_outputs_asked_for(tmp_path):
    assert asked_outputs(["graph", "--format", "dot"], str(tmp_path)) == ["graph.dot"]
    assert asked_outputs(["graph", "-o", "adir/g.svg"], str(tmp_path)) == ["adir/g.svg"]
    assert asked_outputs(["train", "squares", "--plots=p/q", "--sav", "c.npz"], str(tmp_path)) == ["c.npz", "p/q"]
    assert asked_outputs(["worked", "--nope", "--html", "a.html"], str(tmp_path)) == []  # argparse refuses it
    assert _is_asked("p/q/curves.png", ["p/q"]) and _is_asked("p", ["p/q"]) and not _is_asked("p2", ["p"])
    assert not _is_asked(".c.npz.1a2b.tmp", ["c.npz"])
    run = run_argv(["worked", "--html", "page.html"])
    assert run.status == 0 and run.strays == [], (run.status, run.strays, run.err)


# --- values ----------------------------------------------------------------------------------------------
NUMBERS = ["0", "1", "-1", "2", "-0", "0.5", "1e400", "-1e400", "1e-400", "nan", "NaN", "-nan", "inf", "-inf",
           "Infinity", "1e308", "9" * 30, "-" + "9" * 30, "9" * 5000, "0x1F", "1_000", "+1", " 1", "1.0", "1e5",
           "١٢", "½", "𝟘"]
JUNK = ["", " ", "\t", "None", "null", "true", "é", "日本語", "🙂", "\u202e", "\udcff\udcfe", "a" * 5000, "-", "--",
        "[", "]", "[1,", "{}", '{"a": 1}', "[]", "[[]]", "[1, 2]", "[[1, 2], [3]]", "[NaN]", "[1e400]", '["a"]',
        "[true]", "[null]", "[[1, 2], [3, 4]]", "--json", "-h"]
ARRAY_FILES = ["x.npy", "x6.npy", "k.npy", "xc.npy", "xo.npy", "xs.npy", "xdt.npy", "xv.npy", "x.txt", "x.json",
               "deep.json", "bin.dat", "afile", "adir", "/dev/null", "devnull", "missing.npy", "m.json"]
MODELS = ["cnn10", "square15", "CNN10", "m.json", "m_conv.json", "m_bad.json", "m_nan.json", "m_1e400.json",
          "m_huge.json", "right.json", "x.npy", "afile", "adir", "/dev/null", "missing.json", "deep.json"]
ANSWERS = ["right.json", "wrong.json", "nan.json", "str.json", "bigint.json", "empty.json", "deep.json",
           "m_bad.json", "bin.dat", "x.npy", "afile", "adir", "/dev/null", "devnull", "missing.json", "-"]
CHECKPOINTS = ["ck.npz", "ck_sgd.npz", "ck_digits.npz", "ck_trunc.npz", "ck_bad.npz", "x.npy", "afile", "adir",
               "/dev/null", "devnull", "missing.npz"]
DATA = [str(MNIST), "mn_bad", "mn_half", "adir", "afile", "/dev/null", "missing", "x.npy"]
OUT_BASES = ["out", "adir/out", "adir", "afile", "afile/sub", "nodir/out", "/proc/x", "/proc/x/y", "devnull",
             "a" * 300, "", ".", "é🙂", "-", "x.npy", "new/deeper"]
SUFFIXES = ["", ".npz", ".html", ".svg", ".json", ".png", ".pdf", ".dot", ".jpg", ".gv", ".txt", ".SVG"]


def _nested(depth, closed):
    return "[" * depth + "1" + ("]" * depth if closed else "")


numbers = st.one_of(st.sampled_from(NUMBERS), st.integers(-10 ** 20, 10 ** 20).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr))
junk = st.one_of(st.sampled_from(JUNK), st.text(max_size=12))
deep_json = st.builds(_nested, st.one_of(st.integers(1, 3000), st.just(DEEP)), st.booleans())
json_arrays = st.recursive(
    st.one_of(st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([None, True, "a"])),
    lambda inner: st.lists(inner, max_size=6), max_leaves=40).map(lambda v: json.dumps(v, allow_nan=True))
shaped = st.sampled_from([json.dumps(X5), "[[1, -1], [0.5, 0]]", "[1, 2, 3, 4]", "[1, 2, 3, NaN]",
                          "[[1e400, 1], [1, 1]]", "[[1, 2], [3]]", json.dumps([[0.5] * 6] * 6)])
values = st.one_of(numbers, junk)
array_values = st.one_of(shaped, json_arrays, deep_json, st.sampled_from(ARRAY_FILES), values)
outputs = st.builds(lambda b, s: b + s, st.sampled_from(OUT_BASES), st.sampled_from(SUFFIXES))


def value_for(command, option):
    """The values drawn for ``option`` of ``command``: its kind's hostile values, and junk."""
    d = option.dest
    if option.choices is not None:
        return st.one_of(st.sampled_from(option.choices), st.sampled_from(["", "VALUE", "x", "tensor,value"]))
    if d in OUTPUT_DESTS:
        return st.one_of(outputs, outputs, values)
    if d in ("x", "kernel", "w4"):
        return array_values
    if d == "model":
        return st.one_of(st.sampled_from(MODELS), st.sampled_from(MODELS), values)
    if d == "resume":
        return st.one_of(st.sampled_from(CHECKPOINTS), values)
    if d == "data":
        return st.one_of(st.sampled_from(DATA), values)
    return st.one_of(numbers, values)


int_texts = st.one_of(st.integers(-10 ** 30, 10 ** 30),
                      st.sampled_from([0, -1, 1, 2, 2 ** 31, 2 ** 63, 10 ** 30])).map(str)


@st.composite
def argvs(draw, command, forced=()):
    """``command``, its positionals and options in any order, with hostile values. Three argv in four
    parse (real choices, integers where argparse wants them, values starting with "-" as --opt=value, some
    options abbreviated or repeated): they reach the program's own checks. The fourth may hold anything
    (junk choices and integers, unknown options): argparse's errors."""
    c = COMMANDS[command]
    parseable = draw(st.integers(0, 3)) > 0
    argv, last = [command], []
    for dest, choices in c.positionals:
        if choices:  # a real one mostly (squares, the fast task, most often)
            weighted = [c for c in choices for _ in range(4 if c == "squares" else 1)]
            argv.append(draw(st.sampled_from(weighted) if parseable else st.one_of(st.sampled_from(weighted), junk)))
        else:
            v = draw(st.one_of(st.sampled_from(ANSWERS), st.sampled_from(ANSWERS), values))
            last = ["--", v] if parseable and v.startswith("-") else [v]
    argv += list(forced)
    for o in draw(st.lists(st.sampled_from(c.options), max_size=5)):
        name = draw(st.sampled_from(o.names))
        if not o.takes_value:
            argv.append(name)
            continue
        if o.choices is not None:
            v = draw(st.sampled_from(o.choices) if parseable else value_for(command, o))
        elif o.is_int:
            v = draw(int_texts if parseable else st.one_of(int_texts, numbers, values))
        else:
            v = draw(value_for(command, o))
        long = [n for n in o.names if n.startswith("--")]
        form = draw(st.sampled_from(["separate", "separate", "equals", "abbreviated"]))
        if v.startswith("-") and parseable:  # argparse would take it for an option
            form = "equals"
        if form == "equals" and long:
            argv.append(f"{long[-1]}={v}")
        elif form == "equals":
            argv.append(f"{name}{v}")  # -oVALUE
        elif form == "abbreviated" and long and len(long[-1]) > 4:
            argv += [long[-1][:-1], v]
        else:
            argv += [name, v]
    if not parseable and draw(st.booleans()):
        argv.insert(draw(st.integers(1, len(argv))), draw(st.sampled_from(["--nope", "-q", "--", "extra"])))
    return argv + last


# --- taming train: no long run -------------------------------------------------------------------------
CAPS = {"squares": dict(epochs=2, n=60, restarts=3, split=50),
        "digits": dict(epochs=1, n=60, restarts=1, split=50),
        "mnist": dict(epochs=1, n=60, restarts=1, split=50)}


def tame(argv):
    """``argv`` with options appended so that a train run it starts is short (argparse: the last value wins)."""
    def parse(a):
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            try:
                return cli.build_parser().parse_args(a)
            except SystemExit:
                return None
    args = parse(argv)
    if args is None or getattr(args, "command", None) != "train":
        return argv
    caps = CAPS[args.task]
    extra = []
    for dest, cap in caps.items():
        value = getattr(args, dest, None)
        if isinstance(value, int) and value > cap:
            extra += [f"--{dest}", str(cap)]
    if args.epochs is None and args.task != "squares":  # digits 30, mnist 8 by default
        extra += ["--epochs", "1"]
    if args.task != "squares" and args.engine != "tensor":
        extra += ["--engine", "tensor"]
    if args.task == "squares" and args.engine == "value" and isinstance(args.batch_size, int) and args.batch_size < 4:
        extra += ["--batch-size", "4"]
    tamed = argv + extra
    again = parse(tamed)
    if again is not None:
        for dest, cap in caps.items():
            value = getattr(again, dest, None)
            assert not (isinstance(value, int) and value > cap), tamed
    return tamed


# --- the fuzz tests ---------------------------------------------------------------------------------------
def _fuzz(argv, exits=(0, 2)):
    note(f"argv = {shown(argv)!r}")
    run = run_argv(argv)
    note(f"exit {run.status}, {run.seconds:.2f} s, stderr {run.err[-500:]!r}")
    assert_well_behaved(run, exits)


@settings(max_examples=BUDGET["worked"], **FUZZ)
@given(argvs("worked"))
def test_fuzz_worked(argv):
    _fuzz(argv)


@settings(max_examples=BUDGET["graph"], **FUZZ)
@given(argvs("graph"))
def test_fuzz_graph(argv):
    _fuzz(argv)


@settings(max_examples=BUDGET["check"], **FUZZ)
@given(argvs("check"))
def test_fuzz_check(argv):
    _fuzz(argv, exits=(0, 1, 2))


@st.composite
def train_argvs(draw):
    argv = draw(argvs("train"))
    if len(argv) > 1 and argv[1] == "squares":  # the brief: always tiny; later values override
        argv[2:2] = ["--epochs", "1", "--n", "20"]
    return tame(argv)


@settings(max_examples=BUDGET["train"], **FUZZ)
@given(train_argvs())
def test_fuzz_train(argv):
    _fuzz(argv)


@settings(max_examples=BUDGET["top"], **FUZZ)
@given(st.one_of(
    st.lists(st.one_of(junk, st.sampled_from(["--version", "-h", "--help", "worked", "check", "graph", "train"])),
             max_size=3),
    st.sampled_from(list(COMMANDS)).map(lambda c: [c, "--help"])))
def test_fuzz_top_level(argv):
    _fuzz(tame(argv))


# --- hostile argv found by the fuzz, one test each --------------------------------------------------------
TINY = ["--epochs", "1", "--n", "20"]
LONG = "a" * 300
HOSTILE = {
    "worked --kernel nested 100000 deep": ["worked", "--kernel", "[" * DEEP],
    "graph --x nested 100000 deep": ["graph", "--x", "[" * DEEP + "]" * DEEP],
    "worked --model deep.json": ["worked", "--model", "deep.json"],
    "check deep.json": ["check", "deep.json"],
    "check str.json (a quantity 'abc')": ["check", "str.json"],
    "check bigint.json (a 401-digit integer)": ["check", "bigint.json"],
    "check nan.json (loss NaN) is not all right": ["check", "nan.json"],
    "worked --model m_1e400.json": ["worked", "--model", "m_1e400.json"],
    "worked --model m_huge.json (Linear 10^6 x 10^6)": ["worked", "--model", "m_huge.json"],
    "worked --x xv.npy (void dtype)": ["worked", "--x", "xv.npy"],
    "worked --dump-model LONG.json": ["worked", "--dump-model", LONG + ".json"],
    "worked --plots afile/sub": ["worked", "--plots", "afile/sub"],
    "worked --plots /proc/x": ["worked", "--plots", "/proc/x"],
    "worked --plots LONG": ["worked", "--plots", LONG],
    "train squares --plots afile/sub": ["train", "squares", *TINY, "--plots", "afile/sub"],
    "train squares --save LONG.npz": ["train", "squares", *TINY, "--save", LONG + ".npz"],
    "train squares --save /proc/x.npz": ["train", "squares", *TINY, "--save", "/proc/x.npz"],
    "train squares --save afile/x.npz": ["train", "squares", *TINY, "--save", "afile/x.npz"],
    "train squares --resume ck_trunc.npz": ["train", "squares", *TINY, "--resume", "ck_trunc.npz"],
    "train squares --resume ck_digits.npz": ["train", "squares", *TINY, "--resume", "ck_digits.npz"],
    "train mnist (no --data, no $TINYGRAD_CNN_MNIST)": ["train", "mnist", "--epochs", "1"],
    "train mnist --data mn_bad": ["train", "mnist", "--data", "mn_bad", "--split", "5", "--epochs", "1"],
    "train mnist --data mn_half": ["train", "mnist", "--data", "mn_half", "--split", "5", "--epochs", "1"],
    "graph -o /proc/x.svg": ["graph", "-o", "/proc/x.svg"],
    "graph --max-nodes huge": ["graph", "--max-nodes", "9" * 30, "-o", "g.dot"],
    # argparse (3.11) hands the value of --opt=-- to the program as [] (a list), not "--"
    "worked --seed=--": ["worked", "--model", "square15", "--seed=--"],
    "worked --x=--": ["worked", "--x=--"],
}


@pytest.mark.parametrize("argv", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_argv(argv):
    run = run_argv(argv)
    assert_well_behaved(run, exits=(0, 1, 2) if argv[0] == "check" else (0, 2))
    if argv == ["check", "nan.json"] and not (run.status == 2 or (run.status == 1 and "WRONG" in run.out)):
        pytest.fail(f"{argv}: a loss of NaN is judged right: exit {run.status}, stdout:\n{run.out}", pytrace=False)


# --- an output path that is a device ----------------------------------------------------------------------
DEVICE_ARGV = {
    "worked --dump-model": (["worked", "--dump-model"], "null.json"),
    "worked --html": (["worked", "--html"], "null.html"),
    "worked --svg": (["worked", "--svg"], "null.svg"),
    "graph -o": (["graph", "-o"], "null.svg"),
    "train --save": (["train", "squares", *TINY, "--save"], "null"),
}


@pytest.mark.parametrize("prefix, name", list(DEVICE_ARGV.values()), ids=list(DEVICE_ARGV))
def test_an_output_path_that_is_a_device_is_not_replaced(tmp_path, prefix, name):
    """``--save /dev/null`` (or any output path that is a character device) either writes into the device
    or is refused; it never replaces the device node with a regular file. Run as root, the atomic
    write's os.replace would put a regular file in place of the system's /dev/null."""
    device = tmp_path / name
    try:
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the numbers of /dev/null
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot make a device node here ({e})")
    run = run_argv([*prefix, str(device)], folder=str(tmp_path))
    assert_well_behaved(run)
    if not stat.S_ISCHR(os.lstat(device).st_mode):
        pytest.fail(f"{[*prefix, name]}: exit {run.status}; the device node {name} (a /dev/null) was replaced by a "
                    f"{'regular file' if device.is_file() else 'something else'} (the atomic write's os.replace)",
                    pytrace=False)


# --- an endless input ---------------------------------------------------------------------------------------
ENDLESS_ARGV = {
    "worked --x /dev/zero": ["worked", "--x", "/dev/zero"],
    "worked --model /dev/zero": ["worked", "--model", "/dev/zero"],
    "check /dev/zero": ["check", "/dev/zero"],
}


@pytest.mark.parametrize("argv", list(ENDLESS_ARGV.values()), ids=list(ENDLESS_ARGV))
def test_an_endless_input_file_is_refused_in_bounded_memory(tmp_path, argv):
    """A path that never ends (/dev/zero, a device or pipe given by mistake) is read in bounded memory and
    refused with one line: run in a child process capped at 2 GB of address space beyond its start."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    code = ("import resource, sys\n"
            "from tinygrad_cnn import cli\n"
            "soft, hard = resource.getrlimit(resource.RLIMIT_AS)\n"
            "size = int(open('/proc/self/status').read().split('VmSize:')[1].split()[0]) * 1024\n"
            "resource.setrlimit(resource.RLIMIT_AS, (size + (2 << 30), hard))\n"
            "sys.exit(cli.main(sys.argv[1:]))\n")
    env = dict(_environment(), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    import subprocess
    try:
        p = subprocess.run([sys.executable, "-c", code, *argv], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{argv}: still reading after 120 s")
    lines = p.stderr.rstrip("\n").split("\n")
    if not (p.returncode == 2 and len(lines) == 1 and lines[0].startswith("tinygrad-cnn")):
        pytest.fail(f"{argv}: exit {p.returncode}, expected 2 with one line; stderr:\n{p.stderr[-2000:]}",
                    pytrace=False)
