"""``tinygrad-cnn train squares|digits|mnist``: train a CNN with a progress bar, checkpoints each
epoch, ``--resume`` to the same numbers, and pictures of what it learned."""
import json
import os
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


def register(subparsers):
    p = subparsers.add_parser(
        "train", help="train a CNN: the square detector, scikit-learn's digits, or MNIST from IDX files",
        description="Train a CNN with a progress bar (when tqdm is installed and stderr is a terminal), "
                    "then print its test accuracy. The same --seed gives the same numbers; --save writes "
                    "a checkpoint after every epoch, and --resume continues one to the numbers of an "
                    "uninterrupted run (pass the same options).")
    p.add_argument("task", choices=tuple(TASKS), help="; ".join(f"{k}: {t.title}" for k, t in TASKS.items()))
    p.add_argument("--engine", choices=nn.ENGINES, default="tensor",
                   help="tensor (default): numpy arrays; value: one graph node per scalar (slow: small nets)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="epochs in all, counting resumed ones (" + _defaults("epochs") + ")")
    p.add_argument("--batch-size", type=int, metavar="N", help="images per step (" + _defaults("batch_size") + ")")
    p.add_argument("--lr", type=float, metavar="X", help="learning rate (" + _defaults("lr") + ")")
    p.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="adam", help="default adam")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="seeds the initial weights, the batch order and the generated squares (default 0)")
    p.add_argument("--restarts", type=int, metavar="K",
                   help=f"train K fresh starts for one epoch each and continue the one with the best accuracy on "
                        f"a validation split (the last {VALIDATION_FRACTION:.0%}% of the training images, then "
                        f"not trained on); 1 trains one start on all of them (" + _defaults("restarts") + ")")
    p.add_argument("--init", choices=("detector", "pytorch"), default="detector",
                   help="squares: detector (default): w4 and b1 start >= 0 (see models.square_detector15); "
                        "pytorch: PyTorch's initialisation as drawn")
    p.add_argument("--n", type=int, default=5000, metavar="N",
                   help=f"squares: generated training images, validation split included (default 5000); "
                        f"{SQUARES_TEST} more are the test set")
    p.add_argument("--data", metavar="PATH", help="mnist: the folder of IDX files (default $TINYGRAD_CNN_MNIST)")
    p.add_argument("--split", type=int, metavar="N",
                   help="mnist: train on the first N images of the folder's training set (of its only set, "
                        "testing on the rest, when it holds just the t10k pair)")
    p.add_argument("--save", metavar="PATH", help="write a checkpoint (.npz) to PATH after every epoch")
    p.add_argument("--resume", metavar="PATH", help="continue from this checkpoint (its epoch, weights, optimiser)")
    p.add_argument("--plots", metavar="DIR", help="write curves.png, kernels.png and feature_maps.png to DIR "
                                                  "(needs matplotlib: pip install 'tinygrad-cnn[plots]')")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object as the last line (the other lines go to stderr)")
    p.set_defaults(func=run)


def _defaults(field):
    return ", ".join(f"{k} {getattr(t, field):g}" for k, t in TASKS.items())


# --- checking the options, all before any work ------------------------------------------------------
def _at_least(value, minimum, option):
    if value < minimum:
        raise cli.UsageError(f"{option}: expected an integer >= {minimum}, got {value}")


def _options(args):
    """The task's settings with the given options, checked."""
    task = TASKS[args.task]
    epochs = task.epochs if args.epochs is None else args.epochs
    batch_size = task.batch_size if args.batch_size is None else args.batch_size
    lr = task.lr if args.lr is None else args.lr
    restarts = task.restarts if args.restarts is None else args.restarts
    _at_least(epochs, 1, "--epochs")
    _at_least(batch_size, 1, "--batch-size")
    _at_least(restarts, 1, "--restarts")
    _at_least(args.seed, 0, "--seed")
    if not (np.isfinite(lr) and lr > 0):
        raise cli.UsageError(f"--lr: expected a positive number, got {lr}")
    if args.task != "squares" and (args.n != 5000 or args.init != "detector"):
        raise cli.UsageError(f"--{'n' if args.n != 5000 else 'init'}: only for squares")
    if args.task == "squares":
        _at_least(args.n, 2 if restarts == 1 else 10, "--n")
    if args.task != "mnist" and (args.data is not None or args.split is not None):
        raise cli.UsageError(f"--{'data' if args.data is not None else 'split'}: only for mnist")
    if args.save:
        folder = os.path.dirname(os.path.abspath(args.save))
        if os.path.isdir(args.save) or not os.path.isdir(folder):
            raise cli.UsageError(f"--save: expected a file path in an existing folder, got {args.save}")
    if args.plots:
        check_plots(args.plots)
    return epochs, batch_size, lr, restarts


def check_plots(folder):
    """``--plots DIR``: raise cli.UsageError, before any work, unless DIR can be a folder and matplotlib is there."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise cli.UsageError(f"--plots: expected a folder, {folder} is a file")
    try:
        from .. import plots  # noqa: F401  (fails here without matplotlib)
    except ImportError as e:
        raise cli.UsageError(f"--plots: {e}") from None


def _load(args, restarts):
    """((X_train, y_train), (X_val, y_val) or None, (X_test, y_test)) of the task."""
    try:
        if args.task == "squares":
            X, y = data.squares(args.n + SQUARES_TEST, seed=args.seed)
            train_set, test = (X[:args.n], y[:args.n]), (X[args.n:], y[args.n:])
        elif args.task == "digits":
            train_set, test = data.digits()
        else:
            train_set, test = data.mnist(args.data, args.split)
    except (ImportError, OSError, ValueError) as e:
        option = "--data" if args.task == "mnist" else args.task
        raise cli.UsageError(f"{option}: {e}") from None
    if restarts == 1:
        return train_set, None, test
    X, y = train_set
    cut = len(X) - max(1, round(VALIDATION_FRACTION * len(X)))
    if cut < 1:
        raise cli.UsageError(f"--restarts: {len(X)} training images are too few to hold out a validation split")
    return (X[:cut], y[:cut]), (X[cut:], y[cut:]), test


# --- the run ------------------------------------------------------------------------------------------
def run(args):
    epochs, batch_size, lr, restarts = _options(args)
    task = TASKS[args.task]
    (X, y), val, (X_test, y_test) = _load(args, restarts)
    out = sys.stderr if args.json else sys.stdout
    rng = np.random.default_rng(args.seed)  # start i draws its weights after starts 0..i-1

    def make(i):
        model = (square_detector15(rng, args.engine, detector_init=args.init == "detector") if args.task == "squares"
                 else task.model(rng, args.engine))
        return model, OPTIMIZERS[args.optimizer](model.parameters(), lr=lr)

    model, optimizer = make(0)
    try:
        for name, images_labels in (("training", (X, y)), ("validation", val), ("test", (X_test, y_test))):
            if images_labels is not None:
                train.check_data(model, *images_labels, name)
    except ValueError as e:
        raise cli.UsageError(f"{args.task}: {e}") from None
    start_epoch = 0
    if args.resume:
        try:
            start_epoch = checkpoint.restore(args.resume, model, optimizer)
        except checkpoint.CheckpointError as e:
            raise cli.UsageError(f"--resume: {e}") from None
        if start_epoch is None:
            raise cli.UsageError(f"--resume: {args.resume} records no epoch to continue from")

    sizes = f"{len(X):,} training" + (f", {len(val[0]):,} validation" if val else "") + f", {len(X_test):,} test images"
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    print(f"{args.task}: {task.title}; {sizes}; {n_params:,} parameters, {args.engine} engine, "
          f"{type(optimizer).__name__} lr {optimizer.lr:g}, batch {batch_size}, seed {args.seed}", file=out)
    history, kept, starts = [], None, []

    def on_epoch(epoch, stats):
        history.append(stats)
        print(f"epoch {epoch:>{len(str(epochs))}}/{epochs}  loss {stats['loss']:.4f}  "
              f"accuracy {stats['accuracy']:.4f}  {stats['seconds']:.1f} s", file=out, flush=True)
        if args.save:
            checkpoint.save(args.save, model, optimizer, epoch)

    began = time.perf_counter()
    if restarts > 1 and start_epoch == 0:
        def on_start(i, loss, accuracy):
            starts.append(accuracy)
            print(f"start {i + 1:>{len(str(restarts))}}/{restarts}: validation accuracy {accuracy:.4f}  "
                  f"loss {loss:.4f}", file=out, flush=True)
        model, optimizer, first, kept = train.best_of(
            lambda i: (model, optimizer) if i == 0 else make(i), restarts, X, y, *val,
            epochs=1, batch_size=batch_size, seed=args.seed, on_start=on_start, progress=True)
        print(f"kept start {kept + 1}", file=out)
        on_epoch(1, first[0])
        start_epoch = 1
    elif start_epoch >= epochs:
        print(f"{args.resume} is at epoch {start_epoch}: nothing left to train for --epochs {epochs}", file=out)
    train.fit(model, optimizer, X, y, epochs, batch_size, args.seed, start_epoch, on_epoch, progress=True)
    seconds = time.perf_counter() - began

    test_loss, test_accuracy = train.evaluate(model, X_test, y_test)
    print(f"test accuracy {test_accuracy:.4f}  loss {test_loss:.4f}  ({len(X_test):,} images); "
          f"trained in {seconds:.1f} s", file=out)
    if args.save:
        print(f"checkpoint: {args.save} (epoch {max(start_epoch, epochs)})", file=out)
    if args.plots:
        from .. import plots
        example = X_test[np.argmax(y_test == 1) if args.task == "squares" else 0]  # squares: one with a square
        written = plots.training_figures(args.plots, model, history, example, test_accuracy)
        print(f"pictures: {', '.join(written)}", file=out)
    if args.json:
        print(json.dumps({"task": args.task, "engine": args.engine, "seed": args.seed,
                          "test_accuracy": test_accuracy, "test_loss": test_loss, "train_seconds": seconds,
                          "epochs": max(start_epoch, epochs), "kept_start": kept, "start_accuracies": starts,
                          "history": [{k: s[k] for k in ("epoch", "loss", "accuracy")} for s in history]}))
    return 0
