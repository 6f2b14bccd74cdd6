"""Data sets and a batch iterator: synthetic squares, scikit-learn's digits, MNIST IDX files.

Images come in NCHW float64 arrays; every random choice is drawn from
``np.random.default_rng(seed)``, so the same seed gives the same data and the same batches.
"""
import gzip
import math
import operator
import os
import zlib

import numpy as np


def _count(x, name, minimum):
    """``x`` as an int >= ``minimum`` (bools and floats are refused, as range() refuses them)."""
    if isinstance(x, bool):
        raise TypeError(f"{name} must be an integer, got {x!r}")
    try:
        x = operator.index(x)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {x!r}") from None
    if x < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {x}")
    return x


def _finite(x, name):
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {x!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    return x


# ----------------------------------------------------------------------------- squares

def squares(n, size=6, square=3, low=0.0, high=1.0, value=0.0, seed=0):
    """The square-detection problem: noise (class 0) or noise with a filled square (class 1).

    Class 0 images are i.i.d. Uniform(low, high) pixels; class 1 images are the same kind of
    noise with a ``square`` x ``square`` patch set to ``value`` at a uniformly random position
    fully inside the image. Classes are balanced: n//2 images of class 1 and the rest (one
    more when n is odd) of class 0, in shuffled order. Deterministic per ``seed``.

    Returns ``(X, y)``: X (n, 1, size, size) float64, y (n,) float64 of 0.0 and 1.0.
    """
    n = _count(n, "squares: n", 0)
    size = _count(size, "squares: size", 1)
    square = _count(square, "squares: square", 1)
    if square > size:
        raise ValueError(f"squares: square={square} does not fit inside size={size} images")
    low, high = _finite(low, "squares: low"), _finite(high, "squares: high")
    value = _finite(value, "squares: value")
    if low > high:
        raise ValueError(f"squares: low={low} must be <= high={high}")
    rng = np.random.default_rng(seed)
    X = rng.uniform(low, high, size=(n, 1, size, size))
    y = rng.permutation(np.repeat([0.0, 1.0], [n - n // 2, n // 2]))
    ones = np.flatnonzero(y == 1.0)
    top, left = rng.integers(0, size - square + 1, size=(2, len(ones)))
    pixels = np.arange(size)
    rows = (pixels >= top[:, None]) & (pixels < top[:, None] + square)    # (k, size)
    cols = (pixels >= left[:, None]) & (pixels < left[:, None] + square)  # (k, size)
    patch = rows[:, :, None] & cols[:, None, :]                           # (k, size, size)
    X[ones, 0] = np.where(patch, value, X[ones, 0])
    return X, y


# ----------------------------------------------------------------------------- batches

def batches(X, y, batch_size, shuffle=True, seed=0, drop_last=False):
    """Yield ``(X[idx], y[idx])`` mini-batches of ``batch_size`` along axis 0.

    With ``shuffle`` the order is a permutation drawn from ``default_rng(seed)``: the same
    seed gives the same batches; pass a new seed each epoch (e.g. ``seed + epoch``) for a
    new order. The last batch is smaller when ``batch_size`` does not divide len(X), unless
    ``drop_last``. Works for numpy arrays and anything numpy can index with an int array.
    """
    return iter(DataLoader(X, y, batch_size, shuffle, seed, drop_last))


class DataLoader:
    """Re-iterable batches of ``(X, y)``, like ``torch.utils.data.DataLoader``.

    Each ``iter()`` starts a new epoch; with ``shuffle`` epoch ``e`` (counting from 0) uses
    the permutation of ``default_rng(seed + e)``, so a run is reproducible from its seed,
    and ``epoch`` can be set to resume at a given epoch. ``len()`` is the number of batches.
    """

    def __init__(self, X, y, batch_size, shuffle=True, seed=0, drop_last=False):
        if len(X) != len(y):
            raise ValueError(f"DataLoader: X has {len(X)} samples but y has {len(y)}")
        self.X, self.y = X, y
        self.batch_size = _count(batch_size, "DataLoader: batch_size", 1)
        self.shuffle, self.seed, self.drop_last = shuffle, seed, drop_last
        self.epoch = 0

    def __len__(self):
        n, b = len(self.X), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def order(self, epoch):
        """The sample indices of ``epoch`` in the order they are served."""
        n = len(self.X)
        return np.random.default_rng(self.seed + epoch).permutation(n) if self.shuffle else np.arange(n)

    def __iter__(self):
        idx = self.order(self.epoch)
        self.epoch += 1
        for i in range(len(self)):
            chunk = idx[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.X[chunk], self.y[chunk]


# ----------------------------------------------------------------------------- digits

DIGITS_TEST_FRACTION = 0.2


def digits():
    """scikit-learn's 1,797 bundled 8x8 handwritten digits, scaled to [0, 1], split 1,438 / 359.

    The split is fixed and stratified: in a permutation drawn from ``default_rng(0)``, the
    first round(20%) of each digit's images go to the test set (359 in all), the rest to the
    training set (1,438); both keep that shuffled order.
    Needs scikit-learn: ``pip install tinygrad-cnn[digits]``.

    Returns ``((X_train, y_train), (X_test, y_test))``: X (n, 1, 8, 8) float64, y (n,) int64.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("data.digits() needs scikit-learn, an optional extra: "
                          "pip install 'tinygrad-cnn[digits]'") from None
    bunch = load_digits()
    X = bunch.images.reshape(-1, 1, 8, 8).astype(np.float64) / 16.0
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        members = order[y[order] == c]
        test[members[:round(DIGITS_TEST_FRACTION * len(members))]] = True
    train_idx, test_idx = order[~test[order]], order[test[order]]
    return (X[train_idx], y[train_idx]), (X[test_idx], y[test_idx])


# ----------------------------------------------------------------------------- MNIST

class IDXError(ValueError):
    """An IDX file that is truncated, corrupt or not what was expected (names the file)."""


IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # 0x0803: ubyte, 3 dims; 0x0801: ubyte, 1 dim


def _read_at_most(f, n, chunk=1 << 24):
    """Up to ``n`` bytes of ``f``, read in chunks: memory grows with what the file holds, not with ``n``."""
    parts, left = [], n
    while left > 0:
        part = f.read(min(chunk, left))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def read_idx(path, magic=None):
    """The array stored in one IDX file (raw or gzipped): a read-only uint8 array of the file's dims.

    Only unsigned-byte IDX files are read (as MNIST ships them). ``magic`` (e.g. 2051 for
    images, 2049 for labels) is checked when given. Raises IDXError naming the file when
    the gzip stream is bad, the header is wrong, or the data is shorter or longer than the
    header's dimensions say.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        with (gzip.open if gzipped else open)(path, "rb") as f:  # never more than the header asks for
            raw = f.read(4)
            if len(raw) == 4 and raw[:3] == b"\x00\x00\x08" and raw[3]:
                raw += f.read(4 * raw[3])
                if len(raw) == 4 + 4 * raw[3]:
                    size = math.prod(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(raw[3]))
                    raw += _read_at_most(f, size + 1)  # one byte more: a file longer than its header says
    except (OSError, EOFError, zlib.error, OverflowError, MemoryError) as e:  # BadGzipFile is an OSError
        raise IDXError(f"{path}: cannot read it ({type(e).__name__}: {e})") from None
    if len(raw) < 4:
        raise IDXError(f"{path}: truncated, {len(raw)} bytes is shorter than an IDX header")
    found = int.from_bytes(raw[:4], "big")
    zero, dtype, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype != 0x08 or ndim == 0:
        raise IDXError(f"{path}: magic number {found} (0x{found:08x}) is not that of an unsigned-byte IDX file")
    if magic is not None and found != magic:
        raise IDXError(f"{path}: magic number {found}, expected {magic}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated inside the header ({len(raw)} of {header} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(dims)
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise IDXError(f"{path}: {problem}: dims {dims} need {expected} bytes, it holds {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


# Names the MNIST files go by: train-images-idx3-ubyte[.gz], some mirrors use train-images.idx3-ubyte.
_MNIST_SETS = ("train", "t10k")


def _find(folder, stem, kind):
    """The path of set ``stem``'s ``kind`` file ("images" or "labels") in ``folder``, or None."""
    idx = "idx3" if kind == "images" else "idx1"
    paths = [os.path.join(folder, f"{stem}-{kind}{sep}{idx}-ubyte{ext}") for sep in "-." for ext in ("", ".gz")]
    return next((p for p in paths if os.path.isfile(p)), None)


def load_mnist_pair(images_path, labels_path):
    """One pair of MNIST IDX files: X (N, 1, 28, 28) float64 in [0, 1] and y (N,) int64 in 0..9."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise IDXError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, MNIST's are 28x28")
    if len(images) != len(labels):
        raise IDXError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise IDXError(f"{labels_path}: label {labels.max()} is not a digit 0..9")
    return images.reshape(-1, 1, 28, 28).astype(np.float64) / 255.0, labels.astype(np.int64)


def mnist_files(path):
    """``{"train": (images, labels), "t10k": (images, labels)}``: the IDX pairs found in folder ``path``.

    A set whose images file is present without its labels file (or the reverse) is an error.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"mnist: {path} is not a folder")
    found = {}
    for stem in _MNIST_SETS:
        images, labels = _find(path, stem, "images"), _find(path, stem, "labels")
        if images and labels:
            found[stem] = (images, labels)
        elif images or labels:
            raise FileNotFoundError(f"mnist: {images or labels} has no matching "
                                    f"{stem}-{'labels-idx1' if images else 'images-idx3'}-ubyte[.gz] in {path}")
    if not found:
        raise FileNotFoundError(f"mnist: no MNIST IDX files in {path} (expected train-images-idx3-ubyte[.gz] "
                                f"and train-labels-idx1-ubyte[.gz], and/or the t10k-... pair)")
    return found


def mnist(path=None, split=None):
    """MNIST digits from the IDX files in folder ``path`` (nothing is downloaded).

    ``path`` defaults to the environment variable TINYGRAD_CNN_MNIST. The folder holds the
    train pair and/or the t10k pair (raw or .gz). With both pairs, the model trains on
    train and tests on t10k; ``split=N`` then keeps the first N training images. With one
    pair, ``split=N`` is required: train on its first N images, test on the rest.

    Returns ``((X_train, y_train), (X_test, y_test))``: X (n, 1, 28, 28) float64 in [0, 1],
    y (n,) int64.
    """
    if path is None:
        path = os.environ.get("TINYGRAD_CNN_MNIST")
        if not path:
            raise ValueError("mnist: pass the folder holding the IDX files, or set TINYGRAD_CNN_MNIST")
    if split is not None:
        split = _count(split, "mnist: split", 1)
    files = mnist_files(path)
    if len(files) == 1:
        (name, pair), = files.items()
        if split is None:
            raise ValueError(f"mnist: {path} holds only the {name} pair; pass split=N "
                             f"(--split N) to train on its first N images and test on the rest")
        X, y = load_mnist_pair(*pair)
        if split >= len(X):
            raise ValueError(f"mnist: split={split} leaves no test images: {pair[0]} holds {len(X)}")
        return (X[:split], y[:split]), (X[split:], y[split:])
    X, y = load_mnist_pair(*files["train"])
    if split is not None and split > len(X):
        raise ValueError(f"mnist: split={split} is more than the {len(X)} images of {files['train'][0]}")
    return (X[:split], y[:split]), load_mnist_pair(*files["t10k"])
