"""Training as a library: check the data, fit a model with an optimiser, evaluate it, and keep
the best of several fresh starts judged on a validation split.

A model with one output (ending in Sigmoid) is a binary classifier: binary cross-entropy,
class 1 when the output is > 0.5. A model with k > 1 outputs gives one logit per class:
cross-entropy, the class of the largest logit. Everything random comes from ``seed``: epoch
``e`` serves the batches in the order of ``data.DataLoader(X, y, batch_size, seed=seed)``,
so a run resumed at epoch ``e`` from a checkpoint continues to the same numbers.

Progress (``progress=True``): tqdm's bar on a terminal; elsewhere (a log file, a pipe, CI) a line
on stderr at least every PROGRESS_EVERY seconds, even while one long step runs.
"""
import contextlib
import gc
import operator
import sys
import threading
import time
import weakref

import numpy as np

from .data import DataLoader
from .value_array import values
from . import nn
from .nn import functional as F
from .autograd import no_grad
from .tape import Tape
from .tensor import Tensor


def engine_of(model):
    """"tensor" or "value": the engine of ``model``'s parameters."""
    return nn.engine_of(model.parameters()[0])


def dtype_of(model):
    """The dtype of ``model``'s numbers: its parameters' (float32 or float64; exact ones count as
    float64, as their ``numbers()`` do). Its inputs are made in this dtype."""
    return model.parameters()[0].numbers().dtype


def _input(model, X):
    return Tensor(X, dtype=dtype_of(model)) if engine_of(model) == "tensor" else values(X, name="x")


def loss_and_predictions(model, X, y):
    """The mean loss of ``model`` on images X (N, C, H, W) with labels y (N,), as a graph node of the
    model's engine (a Tensor or a Value), and the predicted classes (N,) as ints."""
    return _loss_and_predictions(model(_input(model, X)), y)


# --- the value engine's training step: the scalar graph of one image, recorded once and replayed ------
_tapes = weakref.WeakKeyDictionary()  # model -> (its parameters' Values, input shape, tape, output)


def example_loss(model, x, target):
    """The training loss of one example as a Value, and the model's output: x (1, C, H, W) and target
    (1, outputs) are leaf Values. One output: binary cross-entropy, target the class (0 or 1); more:
    cross-entropy with a one-hot target, -sum(target * log_softmax(output)), which is
    ``F.cross_entropy`` of the class index (the same numbers), with the class a leaf of the graph."""
    out = model(x)
    if out.shape[-1] == 1:
        return F.binary_cross_entropy(out, target), out
    return -(F.log_softmax(out, 1) * target).sum(), out


def _targets(y, outputs):
    """Labels (N,) as the target leaves' numbers (N, 1, outputs): the class, or one-hot."""
    y = np.asarray(y)
    if outputs == 1:
        return y.astype(np.float64).reshape(-1, 1, 1)
    return np.eye(outputs)[y.astype(np.int64)][:, None]


def tape_of(model, input_shape):
    """The Tape of ``model``'s training loss on one example of ``input_shape`` (C, H, W), recorded on
    the first call and kept while the model has the same parameter Values; and its output array."""
    params = [v for p in model.parameters() for v in p.flat]
    kept = _tapes.get(model)
    if kept is not None and kept[1] == tuple(input_shape) and len(kept[0]) == len(params) and \
            all(map(operator.is_, kept[0], params)):
        return kept[2], kept[3]
    with no_grad():
        outputs = model(Tensor(np.zeros((1,) + tuple(input_shape)))).shape[-1]
    x = values(np.zeros((1,) + tuple(input_shape)), name="x")
    target = values(np.eye(outputs)[:1] if outputs > 1 else np.zeros((1, 1)), name="target")
    loss, out = example_loss(model, x, target)
    tape = Tape(loss, (x, target))
    _tapes[model] = (params, tuple(input_shape), tape, out)
    return tape, out


REPLAY_NUMBERS = 2 ** 24  # at most this many numbers (nodes x images, 128 MB) in one replay: larger batches go in parts


class ReplayedLoss:
    """A value-engine batch's mean loss from replays of the model's tape (one per part of the batch):
    ``numbers()`` and ``backward()`` as a loss node's (backward adds d mean loss / d parameter to each
    parameter's .grad)."""

    def __init__(self, replays, root):
        self.replays = replays
        self.losses = np.concatenate([replay.data(root) for replay in replays])

    def numbers(self):
        return np.array(self.losses.mean())

    def backward(self):
        for replay in self.replays:
            replay.backward(np.full(replay.batch_size, 1.0 / len(self.losses)))


def replayed_loss_and_predictions(model, X, y):
    """As ``loss_and_predictions`` for a value-engine model, with its scalar graph recorded once
    (``tape_of``) and replayed over the batch: a ``ReplayedLoss`` and the predicted classes."""
    X = np.asarray(X, dtype=np.float64)
    tape, out = tape_of(model, X.shape[1:])
    targets = _targets(y, out.shape[-1])
    part = max(1, REPLAY_NUMBERS // len(tape))
    replays = [tape(X[i:i + part, None], targets[i:i + part]) for i in range(0, len(X), part)]
    scores = np.concatenate([replay.data(out)[:, 0] for replay in replays])
    predicted = (scores[:, 0] > 0.5).astype(np.int64) if out.shape[-1] == 1 else scores.argmax(axis=1)
    return ReplayedLoss(replays, tape.root), predicted


def _step_loss(model, X, y):
    """The loss and predictions of a training step: replayed on the value engine, else the graph."""
    if engine_of(model) == "value":
        return replayed_loss_and_predictions(model, X, y)
    return loss_and_predictions(model, X, y)


def _loss_and_predictions(out, y):
    if out.shape[-1] == 1:
        loss = F.binary_cross_entropy(out, np.asarray(y, dtype=np.float64).reshape(-1, 1))
        return loss, (out.numbers()[:, 0] > 0.5).astype(np.int64)
    return F.cross_entropy(out, np.asarray(y, dtype=np.int64)), out.numbers().argmax(axis=1)


def classes_of(model, input_shape):
    """The number of classes ``model`` tells apart: 2 for one output, else its number of outputs."""
    with no_grad():
        out = model(Tensor(np.zeros((1,) + tuple(input_shape)), dtype=dtype_of(model)))
    return 2 if out.shape[-1] == 1 else out.shape[-1]


def check_data(model, X, y, name="training"):
    """Raise ValueError, naming ``name`` and the shapes or values involved, unless X (N, C, H, W)
    holds numbers finite in the model's dtype, in its input shape (``model.input_shape`` when it has
    one), and y (N,) holds whole-number labels of the model's classes."""
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim != 4 or len(X) == 0 or not np.issubdtype(X.dtype, np.number):
        raise ValueError(f"{name} images must be a non-empty (N, C, H, W) array of numbers, got shape {X.shape} "
                         f"of {X.dtype}")
    if y.shape != (len(X),):
        raise ValueError(f"{name} labels must have shape ({len(X)},), one per image, got {y.shape}")
    expected = getattr(model, "input_shape", None)
    if expected is not None and X.shape[1:] != tuple(expected):
        raise ValueError(f"{name} images are {'x'.join(map(str, X.shape[1:]))} (C x H x W), "
                         f"the model takes {'x'.join(map(str, expected))}")
    bad = ~np.isfinite(X)
    if bad.any():
        raise ValueError(f"{name} images hold {bad.sum()} NaN or infinite values (the first in image "
                         f"{np.argwhere(bad)[0][0]})")
    dtype = dtype_of(model)
    if X.dtype.kind == "f" and X.dtype.itemsize > dtype.itemsize:  # float64 images for a float32 model
        with np.errstate(over="ignore"):
            big = ~np.isfinite(X.astype(dtype))
        if big.any():
            raise ValueError(f"{name} images hold {big.sum()} values too large for the model's {dtype} (the first, "
                             f"{X[big][0].item()!r}, in image {np.argwhere(big)[0][0]})")
    try:
        classes = classes_of(model, X.shape[1:])
    except (ValueError, TypeError) as e:
        raise ValueError(f"{name} images of shape {X.shape[1:]} do not fit the model: {e}") from None
    if not np.issubdtype(y.dtype, np.number) or not np.all(np.isfinite(y)):
        raise ValueError(f"{name} labels must be finite numbers, got {y.dtype}")
    outside = (y != np.round(y)) | (y < 0) | (y >= classes)
    if outside.any():
        raise ValueError(f"{name} labels must be classes 0..{classes - 1} of the model; "
                         f"label {y[outside][0].item()!r} (image {np.flatnonzero(outside)[0]}) is not")


def evaluate(model, X, y, batch_size=500):
    """(mean loss, accuracy) of ``model`` on images X (N, C, H, W) with labels y (N,).

    Records no graph: the numbers go through the Tensor engine under ``no_grad`` whatever the
    model's engine (a Value-engine model lends its parameters' numbers), which is much faster,
    in the model's dtype (``dtype_of``).
    """
    dtype = dtype_of(model)
    total, correct = 0.0, 0
    with no_grad():
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size], np.asarray(y[i:i + batch_size])
            loss, predicted = _loss_and_predictions(model(Tensor(xb, dtype=dtype)), yb)
            total += loss.item() * len(yb)
            correct += int((predicted == yb).sum())
    return total / len(X), correct / len(X)


PROGRESS_EVERY = 10.0  # seconds: the longest wait between progress lines without a terminal


@contextlib.contextmanager
def _step(model):
    """Around one training step: on the value engine, Python's cyclic garbage collector is off. A step
    builds a graph of up to millions of Values (freed by reference counting: it holds no cycles), and
    the collections that would walk through all of them make a step several times slower, and its
    time grow faster than its batch (so that timing a small step would not predict a batch's)."""
    if engine_of(model) != "value" or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _bar(batches, total, desc, progress):
    """tqdm's progress bar over ``batches`` when asked for, tqdm is installed and stderr is a terminal
    (running loss and accuracy beside it)."""
    if progress and sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            return None, batches
        bar = tqdm(batches, total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)
        return bar, bar
    return None, batches


class _Heartbeat:
    """Progress lines on ``stream`` when there is no bar: ``desc: step i/n  loss ...  accuracy ...  t s``,
    at least every ``every`` seconds: after a step when that long has passed since the last line, and
    from a background thread while a step takes longer (so a slow engine still shows it is working)."""

    def __init__(self, desc, total, every, stream):
        self.desc, self.total, self.every, self.stream = desc, total, every, stream
        self.start = self.last = time.perf_counter()
        self.step, self.loss, self.accuracy = 0, None, None
        self.lock, self.done = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._beat, name="tinygrad_cnn progress", daemon=True)
        self.thread.start()

    def _line(self, now):
        numbers = (f"  loss {self.loss:.4f}  accuracy {self.accuracy:.4f}" if self.loss is not None
                   else "  (the first step is running)")
        print(f"{self.desc}: step {self.step}/{self.total}{numbers}  {now - self.start:.0f} s",
              file=self.stream, flush=True)
        self.last = now

    def _beat(self):
        period = max(self.every, 0.05)  # the thread never spins, whatever ``every`` is
        while not self.done.wait(max(0.01, period - (time.perf_counter() - self.last))):
            with self.lock:
                now = time.perf_counter()
                if not self.done.is_set() and now - self.last >= period:
                    self._line(now)

    def update(self, step, loss, accuracy):
        with self.lock:
            self.step, self.loss, self.accuracy = step, loss, accuracy
            now = time.perf_counter()
            if now - self.last >= self.every and step < self.total:  # the last step: the epoch's line follows
                self._line(now)

    def close(self):
        self.done.set()  # not under the lock: a Ctrl-C may have come while this thread held it
        self.thread.join(timeout=1.0)


def train_epoch(model, optimizer, loader, progress=False, desc=""):
    """One pass over ``loader`` (a DataLoader): zero_grad, loss.backward(), optimizer.step() per batch.

    Returns ``{"loss", "accuracy", "seconds", "steps"}``: loss and accuracy averaged over the
    epoch's images, and each step's (loss, accuracy) on its batch.
    """
    start, total, correct, seen, steps = time.perf_counter(), 0.0, 0, 0, []
    bar, batches = _bar(loader, len(loader), desc, progress)
    beat = _Heartbeat(desc, len(loader), PROGRESS_EVERY, sys.stderr) if progress and bar is None else None
    try:
        for xb, yb in batches:
            with _step(model):
                optimizer.zero_grad()
                loss, predicted = _step_loss(model, xb, yb)
                loss.backward()
                optimizer.step()
            value, hits = float(loss.numbers()), int((predicted == np.asarray(yb)).sum())
            total, correct, seen = total + value * len(yb), correct + hits, seen + len(yb)
            steps.append((value, hits / len(yb)))
            if bar is not None:
                bar.set_postfix(loss=f"{total / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
            if beat is not None:
                beat.update(len(steps), total / seen, correct / seen)
    finally:  # also on Ctrl-C: no bar left on the terminal, no thread left printing
        if bar is not None:
            bar.close()
        if beat is not None:
            beat.close()
    return {"loss": total / seen, "accuracy": correct / seen, "seconds": time.perf_counter() - start, "steps": steps}


def step_seconds(model, optimizer, X, y, batch_size, sample=None):
    """About how many seconds one training step on ``batch_size`` images takes: a step timed on the
    first ``sample`` images of X (all of ``batch_size`` when None) and scaled to ``batch_size``; for a
    sample of a whole batch, the faster of two steps (the first warms caches up).

    It trains ``model`` and ``optimizer``: pass throwaway copies (a fresh model of the same shape)."""
    sample = min(batch_size, len(X)) if sample is None else max(1, min(sample, batch_size, len(X)))
    xb, yb = X[:sample], np.asarray(y[:sample])
    best = None
    for _ in range(2 if sample == batch_size else 1):
        with _step(model):
            began = time.perf_counter()
            optimizer.zero_grad()
            loss, _ = _step_loss(model, xb, yb)
            loss.backward()
            optimizer.step()
            seconds = time.perf_counter() - began
            del loss  # the graph goes here, in the step's time
        best = seconds if best is None else min(best, seconds)
    return best * batch_size / sample


def fit(model, optimizer, X, y, epochs, batch_size=32, seed=0, start_epoch=0, on_epoch=None, progress=False,
        desc="epoch"):
    """Train ``model`` on images X (N, C, H, W) with labels y (N,) from epoch ``start_epoch`` to ``epochs``.

    Epoch e (counting from 0) serves shuffled batches in the order of ``DataLoader(..., seed=seed)``'s
    epoch e. ``on_epoch(epoch, stats)`` runs after each epoch (epoch counted from 1: a checkpoint
    saved there resumes with ``start_epoch=epoch``). ``progress`` shows a bar (see ``train_epoch``)
    titled ``desc``. Returns the list of each epoch's stats (``{"epoch", "loss", "accuracy",
    "seconds", "steps"}``, from ``train_epoch``).
    """
    check_data(model, X, y)
    loader = DataLoader(X, y, batch_size, shuffle=True, seed=seed)
    loader.epoch = start_epoch
    history = []
    for epoch in range(start_epoch + 1, epochs + 1):
        stats = dict(epoch=epoch, **train_epoch(model, optimizer, loader, progress, f"{desc} {epoch}/{epochs}"))
        history.append(stats)
        if on_epoch:
            on_epoch(epoch, stats)
    return history


def best_of(make, starts, X, y, X_val, y_val, epochs=1, batch_size=32, seed=0, on_start=None, progress=False):
    """Train ``starts`` fresh starts ``make(i) -> (model, optimizer)`` for ``epochs`` epochs each, on the
    same batches, and keep the one with the best accuracy on (X_val, y_val) (the lower loss on a tie,
    then the first).

    Small nets such as the square detector end dead (every ReLU off) or in a poor minimum from
    some starts; which way a start goes shows after an epoch, so a few short starts judged on
    held-out images make training reliable. ``on_start(i, val_loss, val_accuracy)`` reports each start.
    Returns ``(model, optimizer, history, i)`` of the kept start.
    """
    best, best_score = None, None
    for i in range(starts):
        model, optimizer = make(i)
        if i == 0:
            check_data(model, X_val, y_val, "validation")
        history = fit(model, optimizer, X, y, epochs, batch_size, seed, progress=progress,
                      desc=f"start {i + 1}/{starts}, epoch")
        val_loss, val_accuracy = evaluate(model, X_val, y_val)
        if on_start:
            on_start(i, val_loss, val_accuracy)
        if best is None or (val_accuracy, -val_loss) > best_score:
            best, best_score = (model, optimizer, history, i), (val_accuracy, -val_loss)
    return best
