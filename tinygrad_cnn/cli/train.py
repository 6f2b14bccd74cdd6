"""``tinygrad-cnn train squares|digits|mnist``: train a CNN with a progress bar, checkpoints each
epoch, ``--resume`` to the same numbers, and pictures of what it learned.

Everything that can be checked is checked before any work: the options, the output paths
(--save, --plots: writable, of the right kind), the checkpoint to resume and whether its task,
model and options agree with the command line. A checkpoint records the run's task, model,
options and history, so ``--resume PATH`` continues with the recorded options (an option given
again must have its recorded value, except those in MAY_CHANGE) and the history, curves and
step axis go on from it. Ctrl-C or SIGTERM stops a run with one line saying how to resume
(exit status 130); the checkpoint of the last complete epoch is intact.

``--dtype``: the tensor engine trains in float32 unless given float64 (float32 is PyTorch's
default dtype: what a PyTorch user's run computes in); the value engine computes in float64
only. The dtype is recorded, and a resumed run continues in it.
"""
import json
import math
import os
import secrets
import shlex
import sys
import time
from dataclasses import dataclass

import numpy as np

from .. import checkpoint, cli, data, nn, train
from ..models import digits_cnn, mnist_cnn, square_detector15
from ..optim import SGD, Adam

VALIDATION_FRACTION = 0.2  # of the training images, held out to judge the starts when --restarts > 1
SQUARES_TEST = 2000


@dataclass(frozen=True)
class Task:
    title: str
    model: object        # model(seed or Generator, engine) -> Module
    epochs: int
    batch_size: int
    lr: float
    restarts: int


TASKS = {
    "squares": Task("the 15-parameter square detector on generated 6x6 images", square_detector15, 10, 32, 0.05, 10),
    "digits": Task("the small CNN on scikit-learn's 8x8 digits", digits_cnn, 30, 16, 0.003, 1),
    "mnist": Task("the LeNet-style CNN on 28x28 MNIST digits", mnist_cnn, 8, 64, 0.001, 1),
}
OPTIMIZERS = {"adam": Adam, "sgd": SGD}
INITS = ("detector", "pytorch")
DTYPES = ("float32", "float64")
DEFAULT_DTYPE = {"tensor": "float32", "value": "float64"}  # float32 as torch.get_default_dtype(); Values are float64
# The options a checkpoint records. On --resume, the recorded value is the default, and one given on
# the command line must be the same, except those in MAY_CHANGE (where the data is, how long to go on).
RECORDED = ("engine", "dtype", "optimizer", "lr", "batch_size", "seed", "restarts", "init", "n", "split", "epochs",
            "data")
MAY_CHANGE = ("epochs", "data")  # and the outputs (--save, --plots, --json), which are not recorded
PLOT_FILES = ("curves.png", "kernels.png", "feature_maps.png")
LONG_RUN = 60.0  # seconds: a value-engine run estimated to take longer is announced, with the tensor engine's time


def register(subparsers):
    p = subparsers.add_parser(
        "train", help="train a CNN: the square detector, scikit-learn's digits, or MNIST from IDX files",
        description="Train a CNN with a progress bar (when tqdm is installed and stderr is a terminal; "
                    "else a line at least every 10 s), then print its test accuracy. The same --seed "
                    "gives the same numbers; --save writes a checkpoint after every epoch, and --resume "
                    "continues one to the numbers of an uninterrupted run, with the options it records "
                    "(given again, they must agree; --epochs and --data may change). Ctrl-C stops a run "
                    "with the command that resumes it (exit status 130).")
    p.add_argument("task", choices=tuple(TASKS), help="; ".join(f"{k}: {t.title}" for k, t in TASKS.items()))
    p.add_argument("--engine", choices=nn.ENGINES,
                   help="tensor (default): numpy arrays; value: one graph node per scalar (one image's graph "
                        "recorded once, replayed over each batch)")
    p.add_argument("--dtype", choices=DTYPES,
                   help="the numbers' precision: float32 (the tensor engine's default, as PyTorch's) or float64 "
                        "(the value engine's only one)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="epochs in all, counting resumed ones (" + _defaults("epochs") + ")")
    p.add_argument("--batch-size", type=int, metavar="N", help="images per step (" + _defaults("batch_size") + ")")
    p.add_argument("--lr", type=float, metavar="X", help="learning rate (" + _defaults("lr") + ")")
    p.add_argument("--optimizer", choices=tuple(OPTIMIZERS), help="default adam")
    p.add_argument("--seed", type=int, metavar="S",
                   help="seeds the initial weights, the batch order and the generated squares (default 0)")
    p.add_argument("--restarts", type=int, metavar="K",
                   help=f"train K fresh starts for one epoch each and continue the one with the best accuracy on "
                        f"a validation split (the last {VALIDATION_FRACTION:.0%}% of the training images, then "
                        f"not trained on); 1 trains one start on all of them (" + _defaults("restarts") + ")")
    p.add_argument("--init", choices=INITS,
                   help="squares: detector (default): w4 and b1 start >= 0 (see models.square_detector15); "
                        "pytorch: PyTorch's initialisation as drawn")
    p.add_argument("--n", type=int, metavar="N",
                   help=f"squares: generated training images, validation split included (default 5000); "
                        f"{SQUARES_TEST} more are the test set")
    p.add_argument("--data", metavar="PATH", help="mnist: the folder of IDX files (default $TINYGRAD_CNN_MNIST)")
    p.add_argument("--split", type=int, metavar="N",
                   help="mnist: train on the first N images of the folder's training set (of its only set, "
                        "testing on the rest, when it holds just the t10k pair)")
    p.add_argument("--save", metavar="PATH", help="write a checkpoint (.npz) to PATH after every epoch, "
                                                  "atomically (an interrupted write leaves the last one whole)")
    p.add_argument("--resume", metavar="PATH",
                   help="continue from this checkpoint: its epoch, weights, optimiser, options and history")
    p.add_argument("--plots", metavar="DIR", help="write curves.png, kernels.png and feature_maps.png to DIR "
                                                  "(needs matplotlib: pip install 'tinygrad-cnn[plots]')")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object as the last line (the other lines go to stderr)")
    p.set_defaults(func=run)


def _defaults(field):
    return ", ".join(f"{k} {getattr(t, field):g}" for k, t in TASKS.items())


def _option(name):
    return "--" + name.replace("_", "-")


def _model_name(task):
    return TASKS[task].model.__name__


# --- output paths: checked before any work ----------------------------------------------------------
def _nearest_existing(path):
    """``path`` (made absolute) or its nearest ancestor that exists."""
    path = os.path.abspath(path)
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _unwritable(folder):
    """Why no file can be made in the existing folder ``folder`` ("permission denied", "read-only file
    system", ...), or None when one can (tried with an empty file, removed at once)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        return "read-only file system" if read_only else "permission denied"
    probe = os.path.join(folder, f".tinygrad-cnn-{secrets.token_hex(4)}.tmp")
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as e:  # root is refused too on some file systems (sysfs, a full disk's quota, ...)
        return (e.strerror or str(e)).lower()
    try:
        os.unlink(probe)
    except OSError:
        pass
    return None


TEMPORARY = len(".") + len(".0123abcd.tmp")  # what files.atomic_write adds to a name for its temporary file


def _too_long(folder, names, extra=0):
    """Why the new ``names`` (path components, the last one a file when ``extra``, the room its temporary
    file needs) cannot be made in the existing folder ``folder`` for their length, or None."""
    try:
        name_max, path_max = os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):
        name_max, path_max = 255, 4096
    for i, name in enumerate(names):
        padded = extra if i == len(names) - 1 else 0
        size = len(os.fsencode(name)) + padded
        if size > name_max:
            return f"file name too long ({size} bytes{' with its temporary file' if padded else ''}; the file " \
                   f"system takes {name_max})"
    if len(os.fsencode(os.path.join(os.path.abspath(folder), *names))) + extra >= path_max:
        return f"path too long (the file system takes {path_max} bytes)"
    return None


def _not_a_folder(path):
    return "a file, not a folder" if os.path.isfile(path) else "not a folder"


def check_output_file(path, option):
    """Raise cli.UsageError, naming ``option``, ``path`` and the reason, unless a file can be written to
    ``path``: not a folder or a device (/dev/null), in an existing folder that takes new files."""
    if not path:
        raise cli.UsageError(f"{option}: expected a file path, got an empty one")
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        raise cli.UsageError(f"{option}: expected a file path, {path} is a folder")
    if os.path.lexists(path) and not os.path.isfile(path):
        raise cli.UsageError(f"{option}: expected a file path, {path} is not a regular file (it would be replaced)")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        existing = _nearest_existing(folder)
        why = (f"the folder {folder} does not exist" if os.path.isdir(existing)
               else f"{existing} is {_not_a_folder(existing)}")
        raise cli.UsageError(f"{option}: expected a file path in an existing folder, got {path}: {why}")
    why = _too_long(folder, [os.path.basename(path)], TEMPORARY) or _unwritable(folder)
    if why:
        raise cli.UsageError(f"{option}: cannot write {path}: {why} (in the folder {folder})")


def check_plots(folder, names=()):
    """``--plots DIR``: raise cli.UsageError, before any work, unless DIR is a folder (or can be made
    one) that takes new files, none of ``names`` in it is a folder or a device, and matplotlib is there."""
    if not folder:
        raise cli.UsageError("--plots: expected a folder, got an empty path")
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise cli.UsageError(f"--plots: expected a folder, {folder} is {_not_a_folder(folder)}"
                             .replace("a file, not a folder", "a file"))
    if os.path.isdir(folder):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.lexists(path) and not os.path.isfile(path):
                kind = "a folder" if os.path.isdir(path) else "not a regular file"
                raise cli.UsageError(f"--plots: cannot write {path}: it is {kind}")
        why = _too_long(folder, [max(names, key=len)], TEMPORARY) if names else None
        why = why or _unwritable(folder)
        if why:
            raise cli.UsageError(f"--plots: cannot write to the folder {folder}: {why}")
    else:
        existing = _nearest_existing(folder)
        if not os.path.isdir(existing):
            raise cli.UsageError(f"--plots: cannot make the folder {folder}: {existing} is {_not_a_folder(existing)}")
        new = os.path.relpath(os.path.abspath(folder), existing).split(os.sep)
        why = _too_long(existing, new + ([max(names, key=len)] if names else []), TEMPORARY if names else 0)
        why = why or _unwritable(existing)
        if why:
            raise cli.UsageError(f"--plots: cannot make the folder {folder}: {why} (in the folder {existing})")
    try:
        from .. import plots  # noqa: F401  (fails here without matplotlib)
    except ImportError as e:
        raise cli.UsageError(f"--plots: {e}") from None


def _write_error(option, e, path):
    """One line for a write that failed after the checks (a full disk, a folder removed meanwhile)."""
    if isinstance(e, OSError) and e.strerror:
        return cli.UsageError(f"{option}: cannot write {e.filename or path}: {e.strerror.lower()}")
    return cli.UsageError(f"{option}: {e}")


# --- checking the options, all before any work ------------------------------------------------------
def _problem(name, value):
    """What is wrong with ``value`` for option ``name`` (types included: a forged checkpoint may record
    anything), or None."""
    if name in ("epochs", "batch_size", "restarts", "seed", "n", "split"):
        minimum = {"seed": 0, "n": 2}.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            return f"expected an integer >= {minimum}, got {value}"
    elif name == "lr":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            return f"expected a positive number, got {value}"
    elif name in ("engine", "dtype", "optimizer", "init"):
        choices = {"engine": nn.ENGINES, "dtype": DTYPES, "optimizer": tuple(OPTIMIZERS), "init": INITS}[name]
        if value not in choices:
            return f"expected one of {', '.join(choices)}, got {value!r}"
    elif name == "data":
        if not isinstance(value, str) or not value:
            return f"expected a folder, got {value!r}"
    return None


def _only_for(task, name):
    """The task an option is for, if it is not for all."""
    owner = {"init": "squares", "n": "squares", "data": "mnist", "split": "mnist"}.get(name)
    return owner if owner not in (None, task) else None


def _given(args):
    """{option name: value} of the recorded options given on the command line, checked."""
    given = {name: getattr(args, name) for name in RECORDED if getattr(args, name) is not None}
    for name, value in given.items():
        owner = _only_for(args.task, name)
        if owner:
            raise cli.UsageError(f"{_option(name)}: only for {owner}")
        problem = _problem(name, value)
        if problem:
            raise cli.UsageError(f"{_option(name)}: {problem}")
    return given


def _task_defaults(task):
    t = TASKS[task]
    settings = {"engine": "tensor", "dtype": None, "optimizer": "adam", "lr": t.lr, "batch_size": t.batch_size,
                "seed": 0, "restarts": t.restarts, "epochs": t.epochs, "init": None, "n": None, "split": None,
                "data": None}  # dtype None: the engine's default
    if task == "squares":
        settings.update(init="detector", n=5000)
    return settings


def _shown(name, value):
    return f"{_option(name)} {value:g}" if isinstance(value, float) else f"{_option(name)} {value}"


def _recorded(args, loaded, given):
    """The options recorded in the checkpoint ``loaded`` (from --resume), after checking that it is one
    of this task and model and that ``given`` agrees with it."""
    path, run = args.resume, loaded["run"]
    if run is not None and run.get("task") != args.task:
        raise cli.UsageError(f"--resume: {path} is a checkpoint of task {run.get('task')}, not {args.task}")
    if run is not None and run.get("model") != _model_name(args.task):
        raise cli.UsageError(f"--resume: {path} is a checkpoint of model {run.get('model')}, not "
                             f"{_model_name(args.task)} (the model of {args.task})")
    saved_optimizer = loaded["optimizer"]  # checked against the command line also when no options are recorded
    if saved_optimizer is not None and "optimizer" in given:
        if saved_optimizer["type"] != OPTIMIZERS[given["optimizer"]].__name__:
            raise cli.UsageError(f"--optimizer: {path} holds {saved_optimizer['type']} state, not "
                                 f"{OPTIMIZERS[given['optimizer']].__name__}; a resumed run continues with "
                                 f"the checkpoint's optimiser (leave --optimizer out)")
    if saved_optimizer is not None and "lr" in given:
        saved_lr = saved_optimizer["hyperparameters"].get("lr")
        if saved_lr is not None and saved_lr != given["lr"]:
            raise cli.UsageError(f"--lr: {path} was trained with --lr {saved_lr:g}, not --lr {given['lr']:g}; a "
                                 f"resumed run continues with the recorded options (leave --lr out)")
    saved_dtype = checkpoint.saved_dtype(loaded).name  # of a checkpoint from before dtypes were recorded
    if run is None:  # a checkpoint from before options were recorded: the command line's, as given
        if given.get("dtype", saved_dtype) != saved_dtype:
            raise cli.UsageError(f"--dtype: {path} holds {saved_dtype} parameters, not {given['dtype']}; a resumed "
                                 f"run continues in the checkpoint's dtype (leave --dtype out)")
        return {"dtype": saved_dtype}
    recorded = {name: run.get(name) for name in RECORDED}
    if recorded["dtype"] is None:
        recorded["dtype"] = saved_dtype
    for name, value in recorded.items():
        owner = _only_for(args.task, name) if value is not None else None
        problem = owner and f"only for {owner}" or (value is not None and _problem(name, value))
        if problem:
            raise cli.UsageError(f"--resume: {path} records {_shown(name, value)}, which is not valid: {problem}")
    for name, value in given.items():
        if name not in MAY_CHANGE and value != recorded[name]:
            was = _shown(name, recorded[name]) if recorded[name] is not None else f"no {_option(name)}"
            raise cli.UsageError(f"{_option(name)}: {path} was trained with {was}, not {_shown(name, value)}; "
                                 f"a resumed run continues with the recorded options (leave {_option(name)} out)")
    return {name: value for name, value in recorded.items() if value is not None}


def _settings(args):
    """(settings, the --resume checkpoint as checkpoint.load returns it, or None): every option of the
    run, from the command line, the checkpoint's record and the task's defaults, checked."""
    given = _given(args)
    loaded = None
    if args.resume is not None:
        if not args.resume:
            raise cli.UsageError("--resume: expected a checkpoint file, got an empty path")
        try:
            loaded = checkpoint.load(args.resume)
        except checkpoint.CheckpointError as e:
            raise cli.UsageError(f"--resume: {e}") from None
        if loaded["epoch"] is None:
            raise cli.UsageError(f"--resume: {args.resume} records no epoch to continue from")
    settings = _task_defaults(args.task)
    settings.update(_recorded(args, loaded, given) if loaded else {})
    settings.update(given)
    if settings["dtype"] is None:
        settings["dtype"] = DEFAULT_DTYPE[settings["engine"]]
    if settings["engine"] == "value" and settings["dtype"] != "float64":
        why = "the value engine computes in float64 only"
        if "dtype" in given:
            raise cli.UsageError(f"--dtype: {given['dtype']} is not for --engine value ({why}); leave --dtype out, "
                                 f"or pass --engine tensor")
        if "engine" in given:
            raise cli.UsageError(f"--engine: {args.resume} holds {settings['dtype']} parameters, and {why} "
                                 f"(leave --engine out)")
        raise cli.UsageError(f"--resume: {args.resume} records --engine value with --dtype {settings['dtype']}, "
                             f"which is not valid: {why}")
    if args.task == "squares":
        _at_least(settings["n"], 2 if settings["restarts"] == 1 else 10, "--n")
    return settings, loaded


def _at_least(value, minimum, option):
    if value < minimum:
        raise cli.UsageError(f"{option}: expected an integer >= {minimum}, got {value}")


def _check_outputs(args):
    if args.save is not None:
        check_output_file(args.save, "--save")
    if args.plots is not None:
        check_plots(args.plots, PLOT_FILES)


def _split_message(message):
    """data.mnist's message in the words of the command line: --split N, not split=N."""
    return message.replace("pass split=N (--split N)", "pass --split N").replace("split=", "--split ")


def _load(args, settings):
    """((X_train, y_train), (X_val, y_val) or None, (X_test, y_test)) of the task."""
    restarts = settings["restarts"]
    try:
        if args.task == "squares":
            n = settings["n"]
            X, y = data.squares(n + SQUARES_TEST, seed=settings["seed"])
            train_set, test = (X[:n], y[:n]), (X[n:], y[n:])
        elif args.task == "digits":
            train_set, test = data.digits()
        else:
            train_set, test = data.mnist(settings["data"], settings["split"])
    except MemoryError:
        option = "--n" if args.task == "squares" else "--split" if settings["split"] else "--data"
        raise cli.UsageError(f"{option}: the images do not fit in memory") from None
    except (ImportError, OSError, ValueError) as e:
        message = str(e)
        option = (args.task if args.task != "mnist" else
                  "--split" if "split=" in message and "pass split=" not in message else "--data")
        raise cli.UsageError(f"{option}: {_split_message(message)}") from None
    if restarts == 1:
        return train_set, None, test
    X, y = train_set
    cut = len(X) - max(1, round(VALIDATION_FRACTION * len(X)))
    if cut < 1:
        raise cli.UsageError(f"--restarts: {len(X)} training images are too few to hold out a validation split")
    return (X[:cut], y[:cut]), (X[cut:], y[cut:]), test


def _new_model(task, rng, engine, init, dtype):
    if task == "squares":
        return square_detector15(rng, engine, detector_init=init == "detector", dtype=np.dtype(dtype))
    return TASKS[task].model(rng, engine, dtype=np.dtype(dtype))


def _which_task(state):
    """The task whose model has exactly the keys and shapes of the state_dict ``state``, or None."""
    shapes = {key: np.shape(value) for key, value in state.items()}
    for name in TASKS:
        model = _new_model(name, np.random.default_rng(0), "tensor", "detector", "float64")
        if {key: np.shape(value) for key, value in model.state_dict().items()} == shapes:
            return name
    return None


def _restore(args, loaded, model, optimizer):
    try:
        return checkpoint.restore(args.resume, model, optimizer, loaded=loaded)
    except checkpoint.CheckpointError as e:
        message = str(e)
        other = _which_task(loaded["model"]) if "does not fit the model" in message else None
        if other and other != args.task:
            message += f" ({args.resume} holds the weights of {_model_name(other)}: a checkpoint of task {other}, " \
                       f"not {args.task})"
        raise cli.UsageError(f"--resume: {message}") from None


# --- how long it will take --------------------------------------------------------------------------
def _duration(seconds):
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _estimate(args, settings, X, y, steps, out):
    """On the value engine, time a step (on throwaway models) and, when the run will take longer than
    LONG_RUN, say how long and how long the tensor engine would take."""
    if settings["engine"] != "value" or steps == 0:
        return
    batch_size = settings["batch_size"]

    def seconds(engine, dtype, sample):
        model = _new_model(args.task, np.random.default_rng(0), engine, settings["init"], dtype)
        optimizer = OPTIMIZERS[settings["optimizer"]](model.parameters(), lr=settings["lr"])
        return train.step_seconds(model, optimizer, X, y, batch_size, sample=sample)

    value = seconds("value", "float64", None)  # a whole batch: its scalar graph is recorded once, then replayed
    if value * steps < LONG_RUN:
        return
    tensor = seconds("tensor", args.dtype or DEFAULT_DTYPE["tensor"], None)  # what --engine tensor would run
    print(f"this will take about {_duration(value * steps)} ({steps:,} steps of about {value:.2g} s on the value "
          f"engine); --engine tensor does it in about {_duration(tensor * steps)}", file=out, flush=True)


# --- the run ------------------------------------------------------------------------------------------
def _resume_command(args, path, records):
    """The command line that continues this run from the checkpoint at ``path``: ``records`` is None when
    the checkpoint records no options (they are given again), "this run" when this run wrote it (it
    records them all), else "another run" (it records its own --epochs and --data: given again)."""
    words = ["tinygrad-cnn", "train", args.task]
    names = RECORDED if records is None else MAY_CHANGE if records == "another run" else ()
    for name in names:
        if getattr(args, name) is not None:
            words += [_option(name), str(getattr(args, name))]
    for option, value in (("--save", args.save), ("--plots", args.plots)):
        if value is not None:
            words += [option, value]
    if args.json:
        words.append("--json")
    return " ".join(shlex.quote(w) for w in words + ["--resume", path])


def _interrupted(args, e, where, epochs, restarts, start_epoch, loaded):
    """The one line that says where the run stopped, what was saved and how to go on."""
    by = " by SIGTERM" if getattr(e, "signal_name", "SIGINT") == "SIGTERM" else ""
    epoch = where["epoch"]
    if where["trained"]:
        line = f"interrupted{by} after the last epoch ({epochs} of {epochs}), before the test"
    else:
        line = f"interrupted{by} at epoch {epoch} of {epochs}" + (
            f" (start {where['start']} of {restarts})" if where["start"] else "")
    if args.save is None:
        kept = f"; {args.resume} is unchanged" if args.resume else ""
        return f"{line}; nothing was saved (no --save){kept}"
    if where["saved"] is not None:
        path, saved, records = args.save, where["saved"], "this run"
    elif args.resume:
        path, saved, records = args.resume, start_epoch, "another run" if loaded["run"] is not None else None
    else:
        return f"{line}; nothing was saved: {args.save} is written after each epoch"
    return f"{line}; {path} holds epoch {saved}; resume with: {_resume_command(args, path, records)}"


def run(args):
    settings, loaded = _settings(args)
    _check_outputs(args)
    task = TASKS[args.task]
    epochs, batch_size, restarts = settings["epochs"], settings["batch_size"], settings["restarts"]
    (X, y), val, (X_test, y_test) = _load(args, settings)
    if args.task == "mnist" and settings["data"] is None and os.environ.get("TINYGRAD_CNN_MNIST"):
        settings["data"] = os.environ["TINYGRAD_CNN_MNIST"]
    if settings["data"] is not None:
        settings["data"] = os.path.abspath(settings["data"])  # recorded so that a resume finds it from anywhere
    out = sys.stderr if args.json else sys.stdout
    rng = np.random.default_rng(settings["seed"])  # start i draws its weights after starts 0..i-1

    def make(i):
        model = _new_model(args.task, rng, settings["engine"], settings["init"], settings["dtype"])
        return model, OPTIMIZERS[settings["optimizer"]](model.parameters(), lr=settings["lr"])

    model, optimizer = make(0)
    try:
        for name, images_labels in (("training", (X, y)), ("validation", val), ("test", (X_test, y_test))):
            if images_labels is not None:
                train.check_data(model, *images_labels, name)
    except ValueError as e:
        raise cli.UsageError(f"{args.task}: {e}") from None
    start_epoch, history = 0, []
    if loaded is not None:
        start_epoch = _restore(args, loaded, model, optimizer)
        history = [h for h in loaded["history"] or () if h["epoch"] <= start_epoch]
    record = dict(task=args.task, model=_model_name(args.task), **settings)

    sizes = f"{len(X):,} training" + (f", {len(val[0]):,} validation" if val else "") + f", {len(X_test):,} test images"
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    print(f"{args.task}: {task.title}; {sizes}; {n_params:,} parameters, {settings['engine']} engine in "
          f"{settings['dtype']}, {type(optimizer).__name__} lr {optimizer.lr:g}, batch {batch_size}, "
          f"seed {settings['seed']}", file=out)
    if loaded is not None:
        print(f"resuming {args.resume} at epoch {start_epoch}" +
              (f" (its history from epoch {history[0]['epoch']})" if history else " (it records no history)"),
              file=out)
    per_epoch = math.ceil(len(X) / batch_size)
    best_of = restarts > 1 and start_epoch == 0
    _estimate(args, settings, X, y, per_epoch * (restarts + epochs - 1 if best_of else max(0, epochs - start_epoch)),
              out)
    kept, starts = None, []
    where = {"epoch": start_epoch + 1, "start": None, "saved": None, "trained": False}

    def save(epoch):
        try:
            with cli.uninterrupted():  # a checkpoint is written whole, and where["saved"] says which
                checkpoint.save(args.save, model, optimizer, epoch, run=record, history=history)
                where["saved"] = epoch
        except (OSError, checkpoint.CheckpointError) as e:
            raise _write_error("--save", e, args.save) from None

    def on_epoch(epoch, stats):
        with cli.uninterrupted():  # an epoch done is recorded, printed and saved, or the signal waits
            history.append(stats)
            print(f"epoch {epoch:>{len(str(epochs))}}/{epochs}  loss {stats['loss']:.4f}  "
                  f"accuracy {stats['accuracy']:.4f}  {stats['seconds']:.1f} s", file=out, flush=True)
            if args.save is not None:
                save(epoch)
            where.update(epoch=epoch + 1, start=None)

    began = time.perf_counter()
    try:
        if best_of:
            def on_start(i, loss, accuracy):
                starts.append(accuracy)
                print(f"start {i + 1:>{len(str(restarts))}}/{restarts}: validation accuracy {accuracy:.4f}  "
                      f"loss {loss:.4f}", file=out, flush=True)

            def start(i):
                where["start"] = i + 1
                return (model, optimizer) if i == 0 else make(i)

            model, optimizer, first, kept = train.best_of(start, restarts, X, y, *val, epochs=1,
                                                          batch_size=batch_size, seed=settings["seed"],
                                                          on_start=on_start, progress=True)
            print(f"kept start {kept + 1}", file=out)
            on_epoch(1, first[0])
            start_epoch = 1
        elif start_epoch >= epochs:
            print(f"{args.resume} is at epoch {start_epoch}: nothing left to train for --epochs {epochs}", file=out)
        train.fit(model, optimizer, X, y, epochs, batch_size, settings["seed"], start_epoch, on_epoch, progress=True)
        where["trained"] = True
        if args.save is not None and where["saved"] is None:  # nothing left to train: --save still gets it
            save(start_epoch)
        seconds = time.perf_counter() - began

        test_loss, test_accuracy = train.evaluate(model, X_test, y_test)
        print(f"test accuracy {test_accuracy:.4f}  loss {test_loss:.4f}  ({len(X_test):,} images); "
              f"trained in {seconds:.1f} s", file=out)
        if args.save is not None:
            print(f"checkpoint: {args.save} (epoch {max(start_epoch, epochs)})", file=out)
        if args.plots is not None:
            from .. import plots
            example = X_test[np.argmax(y_test == 1) if args.task == "squares" else 0]  # squares: one with a square
            try:
                written = plots.training_figures(args.plots, model, history, example, test_accuracy)
            except OSError as e:
                raise _write_error("--plots", e, args.plots) from None
            print(f"pictures: {', '.join(written)}", file=out)
    except (KeyboardInterrupt, SystemError) as e:
        interrupt = cli.interrupt_in(e)  # a SystemError: a Ctrl-C inside numpy's loop over Values
        if interrupt is None:
            raise
        raise cli.Interrupted(_interrupted(args, interrupt, where, epochs, restarts, start_epoch, loaded)) from None
    if args.json:
        print(json.dumps({"task": args.task, "engine": settings["engine"], "dtype": settings["dtype"],
                          "seed": settings["seed"], "test_accuracy": test_accuracy, "test_loss": test_loss,
                          "train_seconds": seconds,
                          "epochs": max(start_epoch, epochs), "kept_start": kept, "start_accuracies": starts,
                          "steps": sum(len(s["steps"]) for s in history),
                          "history": [{k: s[k] for k in ("epoch", "loss", "accuracy")} for s in history]}))
    return 0
