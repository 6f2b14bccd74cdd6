"""tinygrad_cnn.data: the squares problem, batches, digits and MNIST IDX files (corrupt ones included)."""
import gzip
import hashlib
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_cnn import data
from tinygrad_cnn.data import IDXError

# ----------------------------------------------------------------------------- squares


def _squares_at(image, square, value):
    """Top-left corners of every square x square block of ``image`` that is all ``value`` (loops)."""
    size = image.shape[0]
    return [(r, c) for r in range(size - square + 1) for c in range(size - square + 1)
            if all(image[r + i, c + j] == value for i in range(square) for j in range(square))]


@given(n=st.integers(0, 25), size=st.integers(1, 7), data_=st.data(), seed=st.integers(0, 2**32 - 1))
def test_squares_classes_shapes_and_ranges(n, size, data_, seed):
    square = data_.draw(st.integers(1, size))
    low = data_.draw(st.floats(-3, 3))
    high = low + data_.draw(st.floats(0.5, 3))
    value = low - 1.0  # outside the noise range: the square is unambiguous
    X, y = data.squares(n, size, square, low, high, value, seed)
    assert X.shape == (n, 1, size, size) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.float64
    assert int(y.sum()) == n // 2 and set(y.tolist()) <= {0.0, 1.0}
    for image, label in zip(X[:, 0], y):
        if label == 1:
            assert len(_squares_at(image, square, value)) == 1
            noise = image[image != value]
            assert noise.size == size * size - square * square
        else:
            assert not _squares_at(image, square, value)
            noise = image.ravel()
        assert np.all((noise >= low) & (noise <= high))


def test_squares_is_deterministic_per_seed_and_shuffled():
    X1, y1 = data.squares(200, seed=7)
    X2, y2 = data.squares(200, seed=7)
    X3, y3 = data.squares(200, seed=8)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3) and not np.array_equal(y1, y3)
    assert 0 < y1[:100].sum() < 100  # classes are mixed, not one block after the other


def test_squares_odd_n_gives_the_extra_image_to_class_0():
    _, y = data.squares(7)
    assert (y == 0).sum() == 4 and (y == 1).sum() == 3


def test_squares_positions_are_uniform_and_noise_is_uniform():
    X, y = data.squares(20000, size=6, square=3, value=-1.0, seed=3)
    corners = [_squares_at(img, 3, -1.0)[0] for img in X[y == 1, 0]]
    counts = np.zeros((4, 4))
    for r, c in corners:
        counts[r, c] += 1
    expected = len(corners) / 16
    assert counts.min() > 0  # every position occurs, including the last row and column
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))  # 5 sigma: fails only if not uniform
    noise = X[y == 0].ravel()
    assert abs(noise.mean() - 0.5) < 0.01 and abs(noise.var() - 1 / 12) < 0.005


def test_squares_default_patch_value_is_zero():
    X, y = data.squares(50, seed=1)
    assert all(len(_squares_at(img, 3, 0.0)) == 1 for img in X[y == 1, 0])


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(n=-1), ValueError, "n must be >= 0"),
    (dict(n=2.5), TypeError, "n must be an integer"),
    (dict(n=True), TypeError, "n must be an integer"),
    (dict(n=4, size=0), ValueError, "size must be >= 1"),
    (dict(n=4, square=0), ValueError, "square must be >= 1"),
    (dict(n=4, size=4, square=5), ValueError, "square=5 does not fit inside size=4"),
    (dict(n=4, low=1.0, high=0.0), ValueError, "low=1.0 must be <= high=0.0"),
    (dict(n=4, high=float("nan")), ValueError, "high must be finite"),
    (dict(n=4, value="zero"), TypeError, "value must be a real number"),
])
def test_squares_rejects_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        data.squares(**kwargs)


# ----------------------------------------------------------------------------- batches


@given(n=st.integers(0, 30), batch_size=st.integers(1, 12), seed=st.integers(0, 1000), shuffle=st.booleans(),
       drop_last=st.booleans())
def test_batches_cover_each_sample_once_in_a_seeded_order(n, batch_size, seed, shuffle, drop_last):
    X = np.arange(n, dtype=float).reshape(n, 1) * 10
    y = np.arange(n)
    got = list(data.batches(X, y, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last))
    tail = [] if drop_last or n % batch_size == 0 else [n % batch_size]
    assert [len(yb) for _, yb in got] == [batch_size] * (n // batch_size) + tail
    for xb, yb in got:
        np.testing.assert_array_equal(xb[:, 0], yb * 10)  # X and y stay paired
    served = [int(i) for _, yb in got for i in yb]
    kept = n - n % batch_size if drop_last else n
    assert len(set(served)) == len(served) == kept
    if not drop_last:
        assert sorted(served) == list(range(n))
    if not shuffle:
        assert served == list(range(kept))
    again = [int(i) for _, yb in data.batches(X, y, batch_size, shuffle, seed, drop_last) for i in yb]
    assert served == again


def test_batches_different_seeds_give_different_orders():
    X, y = np.zeros((50, 1)), np.arange(50)
    first = np.concatenate([b[1] for b in data.batches(X, y, 8, seed=0)])
    second = np.concatenate([b[1] for b in data.batches(X, y, 8, seed=1)])
    assert not np.array_equal(first, second)


def test_dataloader_epochs_reshuffle_reproducibly_and_resume():
    X, y = np.zeros((20, 1)), np.arange(20)
    loader = data.DataLoader(X, y, 6, seed=5)
    assert len(loader) == 4 and len(data.DataLoader(X, y, 6, drop_last=True)) == 3
    epochs = [np.concatenate([b for _, b in loader]) for _ in range(3)]
    assert not np.array_equal(epochs[0], epochs[1])
    for e, order in enumerate(epochs):
        np.testing.assert_array_equal(order, loader.order(e))
    resumed = data.DataLoader(X, y, 6, seed=5)
    resumed.epoch = 2
    np.testing.assert_array_equal(np.concatenate([b for _, b in resumed]), epochs[2])


def test_batches_reject_bad_arguments():
    with pytest.raises(ValueError, match="X has 3 samples but y has 2"):
        data.batches(np.zeros((3, 1)), np.zeros(2), 2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        data.batches(np.zeros((3, 1)), np.zeros(3), 0)


# ----------------------------------------------------------------------------- digits


def test_digits_split_is_fixed_stratified_and_scaled():
    datasets = pytest.importorskip("sklearn.datasets")
    (Xtr, ytr), (Xte, yte) = data.digits()
    assert Xtr.shape == (1438, 1, 8, 8) and Xte.shape == (359, 1, 8, 8)
    assert Xtr.dtype == np.float64 and ytr.dtype == np.int64 and yte.dtype == np.int64
    assert Xtr.min() == 0.0 and Xtr.max() == 1.0
    bunch = datasets.load_digits()
    # the two sets hold every original image exactly once, with its label
    ours = np.column_stack([np.concatenate([Xtr, Xte]).reshape(-1, 64) * 16, np.concatenate([ytr, yte])])
    original = np.column_stack([bunch.data, bunch.target])
    np.testing.assert_array_equal(ours[np.lexsort(ours.T)], original[np.lexsort(original.T)])
    for c in range(10):
        total = (bunch.target == c).sum()
        assert (yte == c).sum() == round(0.2 * total)
    assert 0 < (ytr[:50] == ytr[0]).sum() < 50  # shuffled, not sorted by class
    (Xtr2, ytr2), (Xte2, _) = data.digits()
    np.testing.assert_array_equal(Xtr, Xtr2)
    np.testing.assert_array_equal(ytr, ytr2)
    np.testing.assert_array_equal(Xte, Xte2)


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install 'tinygrad-cnn\[digits\]'"):
        data.digits()


# ----------------------------------------------------------------------------- MNIST IDX files


def idx_bytes(array, magic=None):
    """An IDX file of uint8 ``array`` written by hand: magic, big-endian dims, bytes."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 + array.ndim if magic is None else magic
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


def write_pair(folder, stem, images, labels, gz=False, sep="-"):
    folder.mkdir(exist_ok=True)
    ext = ".gz" if gz else ""
    pack = gzip.compress if gz else bytes
    (folder / f"{stem}-images{sep}idx3-ubyte{ext}").write_bytes(pack(idx_bytes(images)))
    (folder / f"{stem}-labels{sep}idx1-ubyte{ext}").write_bytes(pack(idx_bytes(labels)))


def fake_digits(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 28, 28)), rng.integers(0, 10, size=n)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sep", ["-", "."])
def test_mnist_reads_a_t10k_only_folder_with_split(tmp_path, gz, sep):
    images, labels = fake_digits(12, 0)
    write_pair(tmp_path / "m", "t10k", images, labels, gz=gz, sep=sep)
    (Xtr, ytr), (Xte, yte) = data.mnist(tmp_path / "m", split=8)
    assert Xtr.shape == (8, 1, 28, 28) and Xte.shape == (4, 1, 28, 28)
    assert Xtr.dtype == np.float64 and ytr.dtype == np.int64
    np.testing.assert_array_equal(np.concatenate([Xtr, Xte])[:, 0] * 255, images)
    np.testing.assert_array_equal(np.concatenate([ytr, yte]), labels)
    with pytest.raises(ValueError, match="holds only the t10k pair; pass split=N"):
        data.mnist(tmp_path / "m")
    with pytest.raises(ValueError, match="split=12 leaves no test images"):
        data.mnist(tmp_path / "m", split=12)
    with pytest.raises(ValueError, match="split must be >= 1"):
        data.mnist(tmp_path / "m", split=0)


def test_mnist_with_both_pairs_trains_on_train_and_tests_on_t10k(tmp_path, monkeypatch):
    train, test = fake_digits(10, 1), fake_digits(5, 2)
    write_pair(tmp_path, "train", *train, gz=True)
    write_pair(tmp_path, "t10k", *test)
    (Xtr, ytr), (Xte, yte) = data.mnist(tmp_path)
    np.testing.assert_array_equal(Xtr[:, 0] * 255, train[0])
    np.testing.assert_array_equal(yte, test[1])
    (Xtr, ytr), (Xte, _) = data.mnist(tmp_path, split=6)
    assert len(Xtr) == 6 and len(Xte) == 5
    np.testing.assert_array_equal(ytr, train[1][:6])
    with pytest.raises(ValueError, match="split=11 is more than the 10 images"):
        data.mnist(tmp_path, split=11)
    monkeypatch.setenv("TINYGRAD_CNN_MNIST", str(tmp_path))
    np.testing.assert_array_equal(data.mnist()[1][1], test[1])


def test_read_idx_returns_the_stored_array(tmp_path):
    array = np.arange(24).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a"), array)
    assert data.read_idx(tmp_path / "a").shape == (2, 3, 4)


def _corrupt_cases():
    images, labels = fake_digits(4, 3)
    good_images, good_labels = idx_bytes(images), idx_bytes(labels)
    return {
        # name: (images file bytes, labels file bytes, file named in the error, words)
        "images magic is the labels one": (idx_bytes(images, magic=2049), good_labels, "images",
                                           "magic number 2049, expected 2051"),
        "labels magic is the images one": (good_images, idx_bytes(labels, magic=2051), "labels",
                                           "magic number 2051, expected 2049"),
        "not an IDX file": (b"PK\x03\x04 a zip, not IDX", good_labels, "images",
                            "not that of an unsigned-byte IDX file"),
        "float IDX": (struct.pack(">I", 0x0D03) + good_images[4:], good_labels, "images", "unsigned-byte"),
        "empty": (b"", good_labels, "images", "truncated"),
        "truncated header": (good_images[:10], good_labels, "images", "truncated inside the header"),
        "truncated pixels": (good_images[:-5], good_labels, "images", "truncated: dims \\(4, 28, 28\\)"),
        "trailing bytes": (good_images + b"\0\0", good_labels, "images", "longer than its header says"),
        "count mismatch": (good_images, idx_bytes(labels[:3]), "images", "holds 4 images but .* holds 3 labels"),
        "wrong dims": (idx_bytes(np.zeros((4, 27, 28))), good_labels, "images", "images are 27x28, MNIST's are 28x28"),
        "label 10": (good_images, idx_bytes([1, 2, 10, 3]), "labels", "label 10 is not a digit"),
        "bad gzip": (b"\x1f\x8b\x08\x00" + b"garbage" * 10, good_labels, "images", "cannot read it"),
        "truncated gzip": (gzip.compress(good_images)[:200], good_labels, "images", "cannot read it"),
        "gzip of garbage": (gzip.compress(b"\x00\x00\x08\x03\x00"), good_labels, "images",
                            "truncated inside the header"),
    }


@pytest.mark.parametrize("case", sorted(_corrupt_cases()))
def test_mnist_names_the_corrupt_file(tmp_path, case):
    image_bytes, label_bytes, culprit, words = _corrupt_cases()[case]
    suffix = ".gz" if image_bytes[:2] == b"\x1f\x8b" else ""
    (tmp_path / f"t10k-images-idx3-ubyte{suffix}").write_bytes(image_bytes)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(label_bytes)
    with pytest.raises(IDXError, match=words) as info:
        data.mnist(tmp_path, split=2)
    assert f"t10k-{culprit}-idx" in str(info.value)


def test_mnist_folder_problems(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        data.mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no MNIST IDX files in"):
        data.mnist(tmp_path)
    images, labels = fake_digits(3, 4)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(images))
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte has no matching train-labels"):
        data.mnist(tmp_path, split=1)


def test_mnist_path_is_required_without_the_env_var(monkeypatch):
    monkeypatch.delenv("TINYGRAD_CNN_MNIST", raising=False)
    with pytest.raises(ValueError, match="set TINYGRAD_CNN_MNIST"):
        data.mnist()


# ----------------------------------------------------------------------------- the real MNIST test set

REAL_SHA256 = {"t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
               "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"}


def real_mnist_folder():
    """TINYGRAD_CNN_MNIST, else ../shared/data/mnist beside the repository; None when absent."""
    folder = os.environ.get("TINYGRAD_CNN_MNIST") or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    return Path(folder) if all((Path(folder) / f).is_file() for f in REAL_SHA256) else None


@pytest.mark.skipif(real_mnist_folder() is None, reason="the MNIST t10k files are not here (see README: MNIST)")
def test_real_mnist_t10k_files():
    folder = real_mnist_folder()
    for name, digest in REAL_SHA256.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    (Xtr, ytr), (Xte, yte) = data.mnist(folder, split=5000)
    assert Xtr.shape == Xte.shape == (5000, 1, 28, 28)
    labels = np.concatenate([ytr, yte])
    # the published class counts of MNIST's test set, and its first labels
    np.testing.assert_array_equal(np.bincount(labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    np.testing.assert_array_equal(ytr[:10], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    assert Xtr.min() == 0.0 and Xtr.max() == 1.0
    # the first image is a 7: ink in the middle rows, blank borders
    assert Xtr[0, 0, :3].sum() == 0 and Xtr[0, 0, 10:20].sum() > 10
