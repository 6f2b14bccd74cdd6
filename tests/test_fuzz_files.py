"""The file readers under hypothesis-generated corruption: ``checkpoint.load``, ``data.read_idx``, model
files (``worked.modelfile.loads``, then working the file as ``worked --model`` does) and a student's
answers (``worked.check.loads`` + ``check``).

Each valid file is damaged (truncated at any byte, bits flipped, bytes overwritten, inserted or
deleted, a wrong magic number, random bytes, huge declared sizes: IDX headers declaring 10^12 items,
.npz members whose .npy headers declare huge shapes, model files declaring huge layers or nesting
deeper than Python's recursion limit, numbers like 1e400, NaN and 401-digit integers). Whatever
the damage, the reader either reads a well-formed result or raises the package's named error with a
one-line message -- CheckpointError, IDXError, ModelFileError, AnswersError (and NetworkError when a
model file is worked or answers checked: the command line turns those into exit status 2) -- never
MemoryError, RecursionError, OverflowError or a bare numpy/zipfile/json exception, and it never
allocates more than the file's size suggests: the peak traced by ``tracemalloc`` (numpy traces its
buffers there too) stays under ``50 MB + 100 x the file's size``. The address space is capped
(``RLIMIT_AS``, 3 GB beyond the process's size) while a reader runs, so that an over-allocation fails
here instead of exhausting the machine.

Also: a .npy given to ``worked --x`` (``--kernel``, ``--w4``) holding complex numbers, objects (which
need pickle: refused, never unpickled), strings, bytes or dates is refused with exit status 2 and one
line naming the option.
"""
import contextlib
import gzip
import io
import json
import math
import os
import pathlib
import resource
import tempfile
import tracemalloc
import traceback
import warnings
import zipfile
import zlib
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from tinygrad_cnn import checkpoint, cli, data, models
from tinygrad_cnn import worked as W
from tinygrad_cnn.optim import Adam
from tinygrad_cnn.testing.strategies import PROFILE_VARIABLE
from tinygrad_cnn.worked import check as C
from tinygrad_cnn.worked import modelfile
from tinygrad_cnn.worked.network import work_network

PROFILE = os.environ.get(PROFILE_VARIABLE) or "dev"
EXAMPLES = {"ci": 40, "dev": 100, "thorough": 400}.get(PROFILE, 100)  # per reader
# ci: bounded time even while a bug is there: the first failing example is reported as drawn (no shrinking,
# which replays a failing check hundreds of times); other profiles shrink it and report each distinct bug
NO_SHRINK = dict(phases=(Phase.explicit, Phase.reuse, Phase.generate), report_multiple_bugs=False)
FUZZ = dict(max_examples=EXAMPLES, deadline=None, print_blob=True, **(NO_SHRINK if PROFILE == "ci" else {}),
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                   HealthCheck.filter_too_much])
REPO = pathlib.Path(__file__).resolve().parents[1]
MB = 1 << 20


# --- the two bounds: memory traced, address space capped ------------------------------------------------
def allowed_bytes(size):
    return 50 * MB + 100 * size


def _address_space():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmSize:")[1].split()[0]) * 1024


@contextlib.contextmanager
def capped_address_space(extra=3 << 30):
    """RLIMIT_AS at the process's current size + ``extra`` while the block runs (a safety net: a reader that
    asks for gigabytes gets a MemoryError here instead of the machine's memory)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    try:
        cap = _address_space() + extra
    except (OSError, IndexError, ValueError):
        yield
        return
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def read_bounded(read, size, named, what):
    """``read()`` under both bounds: its result, or the named error it raised (as ``("refused", error)``).
    Anything else it raises, and a traced peak past ``allowed_bytes(size)``, fail the test."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    escaped = None
    try:
        with capped_address_space():
            try:
                result = ("read", read())
            except named as e:
                result = ("refused", e)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001 -- the point: only the named error may come out
                escaped = (e, traceback.format_exc())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if escaped:
        e, tb = escaped
        pytest.fail(f"{what}: {type(e).__name__} escaped (expected {' or '.join(n.__name__ for n in named)}): "
                    f"{str(e)[:300]}\n{tb[-2500:]}", pytrace=False)
    if peak > allowed_bytes(size):
        pytest.fail(f"{what}: asked for {peak / MB:,.0f} MB at its peak (traced by tracemalloc, which counts an "
                    f"allocation numpy failed to make too) for a file of {size:,} bytes (allowed: "
                    f"{allowed_bytes(size) / MB:.0f} MB)", pytrace=False)
    if result[0] == "refused" and "\n" in str(result[1]):
        pytest.fail(f"{what}: {type(result[1]).__name__}'s message is not one line (the command line prints it "
                    f"as its one line):\n{str(result[1])[:2000]}", pytrace=False)
    return result


# --- corruptions of a valid file -----------------------------------------------------------------------------
def _flip(data_, bits):
    b = bytearray(data_)
    for position, bit in bits:
        b[position % len(b)] ^= 1 << bit
    return bytes(b)


def corruptions(valid, magics=()):
    """Damaged versions of the bytes ``valid``: truncated, bit-flipped, overwritten, with bytes inserted or
    deleted, with a wrong magic number (``magics``: prefixes to put in front), or random bytes."""
    n = len(valid)
    return st.one_of(
        st.integers(0, n - 1).map(lambda k: valid[:k]),
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 7)), min_size=1, max_size=16)
        .map(lambda bits: _flip(valid, bits)),
        st.tuples(st.integers(0, n - 1), st.binary(min_size=1, max_size=64))
        .map(lambda t: valid[:t[0]] + t[1] + valid[t[0] + len(t[1]):]),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64))
        .map(lambda t: valid[:t[0]] + t[1] + valid[t[0]:]),
        st.tuples(st.integers(0, n - 1), st.integers(1, 256)).map(lambda t: valid[:t[0]] + valid[t[0] + t[1]:]),
        st.sampled_from(list(magics) or [b"\x00\x00\x00\x00"]).map(lambda m: m + valid[len(m):]),
        st.binary(max_size=2048),
    )


@contextlib.contextmanager
def written(content, suffix):
    with tempfile.TemporaryDirectory(prefix="fuzz-files-") as d:
        path = os.path.join(d, "file" + suffix)
        with open(path, "wb") as f:
            f.write(content)
        yield path


def _npy_header(shape, descr, fortran=False, version=1):
    header = repr({"descr": descr, "fortran_order": fortran, "shape": tuple(shape)}).encode("latin1")
    head_len = 10 if version == 1 else 12
    pad = (-(head_len + len(header) + 1)) % 64
    header = header + b" " * pad + b"\n"
    size = len(header).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + header


# --- checkpoint.load ------------------------------------------------------------------------------------------
def _valid_checkpoint():
    model = models.square_detector15(0)
    optimizer = Adam(model.parameters(), lr=0.05)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "c.npz")
        checkpoint.save(path, model, optimizer, 3)
        return pathlib.Path(path).read_bytes()


CHECKPOINT = _valid_checkpoint()
with zipfile.ZipFile(io.BytesIO(CHECKPOINT)) as _z:
    MEMBERS = {name: _z.read(name) for name in _z.namelist()}
NPZ_MAGICS = [b"PK\x05\x06", b"PK\x03\x03", b"\x93NUMPY", b"\x1f\x8b\x08\x00", b"\x80\x04\x95",
              b"PK\x03\x04\x14\x00\x09"]
HUGE_SHAPES = [(10 ** 12,), (10 ** 6, 10 ** 6), (2 ** 62,), (10 ** 8,), (3 * 10 ** 7,), (2 ** 31, 2), (0, 10 ** 12),
               (10 ** 4, 10 ** 4, 10 ** 4), (-1,), (5,), ()]
DESCRS = ["<f8", "<i8", "|u1", "<c16", "|O", "<U8", "|S4", "|V8", "<M8[s]", "|b1", ">f8", [("a", "<f8")]]


@st.composite
def npz_with_a_declared_shape(draw):
    """The valid checkpoint with one member rewritten: its .npy header declares ``shape`` (often huge) and
    ``descr``; its data is the member's own, cut short, or nothing."""
    name = draw(st.sampled_from(sorted(MEMBERS)))
    shape = draw(st.sampled_from(HUGE_SHAPES))
    descr = draw(st.sampled_from(DESCRS))
    body = MEMBERS[name][128:] if len(MEMBERS[name]) > 128 else b""
    body = body[:draw(st.integers(0, len(body)))]
    member = _npy_header(shape, descr, draw(st.booleans()), draw(st.sampled_from([1, 2]))) + body
    compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for other, content in MEMBERS.items():
            z.writestr(other, member if other == name else content)
    return out.getvalue()


@st.composite
def npz_with_odd_members(draw):
    """Members added, dropped or renamed: not .npy, a directory entry, a name with / or .., many members."""
    members = dict(MEMBERS)
    for name in draw(st.lists(st.sampled_from(sorted(MEMBERS)), max_size=3)):
        members.pop(name, None)
    extra = draw(st.lists(st.tuples(st.sampled_from(["x.npy", "model/0.weight.npy", "../up.npy", "dir/", "a.txt",
                                                     "optimizer/state/9.exp_avg.npy", "epoch.npy",
                                                     "__format__.npy", "model/.npy"]),
                                    st.binary(max_size=200)), max_size=3))
    for name, content in extra:
        foreign_marker = _npy_header((), "<U30") + "tinygrad_cnn.checkpoint/0".ljust(30).encode("utf-32-le")
        members[name] = draw(st.sampled_from([content, _npy_header((2,), "<f8") + bytes(16), foreign_marker]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return out.getvalue()


def _check_checkpoint(result):
    assert set(result) >= {"model", "optimizer", "epoch"}, result.keys()
    for key, value in result["model"].items():
        assert isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and np.all(np.isfinite(value)), key
    assert result["epoch"] is None or (isinstance(result["epoch"], int) and result["epoch"] >= 0), result["epoch"]


@settings(**FUZZ)
@given(st.one_of(corruptions(CHECKPOINT, NPZ_MAGICS), npz_with_a_declared_shape(), npz_with_odd_members()))
def test_checkpoint_load_of_a_damaged_file(content):
    with written(content, ".npz") as path:
        note(f"{len(content)} bytes: {content[:64]!r}...")
        outcome, result = read_bounded(lambda: checkpoint.load(path), len(content), (checkpoint.CheckpointError,),
                                       f"checkpoint.load of a damaged checkpoint ({len(content)} bytes)")
        if outcome == "read":
            _check_checkpoint(result)
        else:
            assert path in str(result), f"the error does not name the file: {result}"


@settings(**FUZZ)
@given(st.sampled_from(HUGE_SHAPES), st.sampled_from(DESCRS), st.binary(max_size=64))
def test_checkpoint_load_of_a_npy_declaring_a_huge_shape(shape, descr, body):
    """A .npy (not an .npz) given as the checkpoint, whose header declares ``shape``."""
    content = _npy_header(shape, descr) + body
    with written(content, ".npz") as path:
        read_bounded(lambda: checkpoint.load(path), len(content), (checkpoint.CheckpointError,),
                     f"checkpoint.load of a {len(content)}-byte .npy declaring shape {shape} of {descr}")


# --- data.read_idx -------------------------------------------------------------------------------------------------
def idx_bytes(dims, magic_dtype=0x08, payload=None):
    header = bytes([0, 0, magic_dtype, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)
    return header + (bytes(range(256)) * (math.prod(dims) // 256 + 1))[:math.prod(dims)] if payload is None \
        else header + payload


IDX_IMAGES = idx_bytes((3, 4, 4))
IDX_LABELS = idx_bytes((6,))
IDX_MAGICS = [b"\x00\x00\x0b\x03", b"\x00\x00\x08\x00", b"\x00\x00\x0d\x01", b"\x08\x03\x00\x00", b"\x1f\x8b",
              b"\x00\x00\x08\xff", b"\xff\xff\xff\xff"]


@st.composite
def idx_declaring_huge_sizes(draw):
    """An IDX header whose dims declare 10^12 items and more (up to 2^32 - 1 per dim, up to 255 dims),
    followed by a few bytes."""
    ndim = draw(st.sampled_from([1, 2, 3, 4, 255]))
    big = st.sampled_from([10 ** 6, 2 ** 32 - 1, 2 ** 31, 10 ** 9, 0, 1, 28])  # a dim is 4 bytes: 10^12 is 10^6 x 10^6
    dims = [draw(big) for _ in range(min(ndim, 4))] + [1] * max(0, ndim - 4)
    return idx_bytes(dims, payload=draw(st.binary(max_size=64)))


def _maybe_gzip(draw_gz, content):
    return gzip.compress(content, mtime=0) if draw_gz else content


@settings(**FUZZ)
@given(st.one_of(corruptions(IDX_IMAGES, IDX_MAGICS), corruptions(IDX_LABELS, IDX_MAGICS), idx_declaring_huge_sizes()),
       st.booleans(), st.sampled_from([None, 2051, 2049]))
def test_read_idx_of_a_damaged_file(content, gz, magic):
    content = _maybe_gzip(gz, content)
    with written(content, ".gz" if gz else "") as path:
        outcome, result = read_bounded(lambda: data.read_idx(path, magic), len(content), (data.IDXError,),
                                       f"data.read_idx of a damaged {'gzipped ' if gz else ''}IDX file "
                                       f"({len(content)} bytes)")
        if outcome == "read":
            assert result.dtype == np.uint8 and result.ndim >= 1, (result.dtype, result.shape)
        else:
            assert path in str(result), f"the error does not name the file: {result}"


@settings(**FUZZ)
@given(corruptions(gzip.compress(IDX_IMAGES, mtime=0), [b"\x1f\x8b\x08\x08", b"\x1f\x8b\x00\x00", b"\x1f\x8c"]))
def test_read_idx_of_a_damaged_gzip_stream(content):
    with written(content, ".gz") as path:
        read_bounded(lambda: data.read_idx(path), len(content), (data.IDXError,),
                     f"data.read_idx of a damaged gzip stream ({len(content)} bytes)")


def _gzip_of(header, zeros):
    """gzip of ``header`` followed by ``zeros`` zero bytes, compressed a megabyte at a time."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [c.compress(header)]
    chunk = bytes(MB)
    for start in range(0, zeros, MB):
        parts.append(c.compress(chunk[:min(MB, zeros - start)]))
    parts.append(c.flush())
    return b"".join(parts)


def test_read_idx_of_a_small_gzip_that_inflates_far_past_its_header():
    """A 200 KB .gz whose IDX header declares 10 bytes of labels but which inflates to 200 MB: the reader
    needs header + 10 bytes (and one more to see it is too long), not the whole stream."""
    content = _gzip_of(idx_bytes((10,)), 200 * MB)
    with written(content, ".gz") as path:
        outcome, error = read_bounded(lambda: data.read_idx(path), len(content), (data.IDXError,),
                                      f"data.read_idx of a {len(content) // 1024} KB gzip inflating to 200 MB")
        assert outcome == "refused", "a file longer than its header says was read"


# --- model files ------------------------------------------------------------------------------------------------
class Raw:
    """A JSON token written as it is (1e400, NaN, a 401-digit integer, nesting 100000 deep)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''})"


def dumps(value):
    """JSON text of ``value`` with Raw tokens as written."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(json.dumps(str(k)) + ": " + dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value)


def _nested(depth, leaf="1"):
    return Raw("[" * depth + leaf + "]" * depth)


NUMBER_TOKENS = ["1e400", "-1e400", "1e-400", "NaN", "Infinity", "-Infinity", "1e999999", "-0", "0.1e1", "1E+2",
                 "9" * 401, "-" + "9" * 401, "4294967296", "18446744073709551617", "1.5", "0", "-1"]
HUGE_LAYERS = [
    {"type": "Linear", "in_features": 10 ** 6, "out_features": 10 ** 6},
    {"type": "Linear", "in_features": 30000, "out_features": 30000},
    {"type": "Linear", "in_features": 7000, "out_features": 7000},
    {"type": "Linear", "in_features": 10 ** 30, "out_features": 1},
    {"type": "Conv2d", "in_channels": 1000, "out_channels": 1000, "kernel_size": 30},
    {"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 10 ** 9},
    {"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 2, "stride": 0},
    {"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 2, "padding": 10 ** 6},
    {"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 2, "dilation": 10 ** 6},
    {"type": "MaxPool2d", "kernel_size": 10 ** 9},
    {"type": "Flatten", "start_dim": 10 ** 20},
    {"type": "Linear", "in_features": 3, "out_features": 2, "weight": Raw("[[1e400, 0, 0], [0, 0, 0]]")},
]


def hostile_values():
    leaves = st.one_of(st.sampled_from(NUMBER_TOKENS).map(Raw), st.integers(-10 ** 20, 10 ** 20),
                       st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
                       st.sampled_from([None, True, False, "", "1e400", "NaN", "0.5"]))
    return st.one_of(
        leaves,
        st.builds(_nested, st.sampled_from([2, 30, 33, 64, 65, 500, 900, 2000, 100_000])),
        st.builds(_nested, st.sampled_from([3, 40, 70]), st.sampled_from(NUMBER_TOKENS)),
        st.sampled_from(HUGE_LAYERS).map(dict),
        st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                     max_leaves=12),
    )


def _base_model_files():
    out = {}
    for name in ("notes_001_dense", "notes_002_pooling", "batch_softmax"):
        out[name] = (REPO / "examples" / "models" / f"{name}.json").read_text(encoding="utf-8")
    net, x, target = W.spec_model("cnn10")
    out["cnn10"] = json.dumps(modelfile.to_json("cnn10", net, x, target, "BCELoss", 0.01))
    return out


MODEL_FILES = _base_model_files()


def _places(value, path=()):
    """Every place in a JSON value (paths of keys and indices), the root included."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _places(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _places(v, path + (i,))


def _replace(value, path, new):
    if not path:
        return new
    if isinstance(value, dict):
        return {k: (_replace(v, path[1:], new) if k == path[0] else v) for k, v in value.items()}
    return [_replace(v, path[1:], new) if i == path[0] else v for i, v in enumerate(value)]


@st.composite
def mutated_json(draw, texts):
    """A JSON text of ``texts`` with one place replaced by a hostile value (or a key added or dropped), or
    the text itself damaged (truncated, characters inserted, deleted)."""
    text = draw(st.sampled_from(sorted(texts.values())))
    kind = draw(st.sampled_from(["replace", "replace", "replace", "add", "drop", "text"]))
    if kind == "text":
        return draw(corruptions(text.encode("utf-8"), [b"{", b"[", b"\xef\xbb\xbf", b"\xff\xfe"]))
    obj = json.loads(text)
    places = list(_places(obj))
    path = draw(st.sampled_from(places))
    if kind == "replace":
        obj = _replace(obj, path, draw(hostile_values()))
    else:
        target = obj
        for step in path:
            target = target[step]
        if isinstance(target, dict) and kind == "add":
            target[draw(st.sampled_from(["weight", "bias", "seed", "type", "x", "input", "lr", "layers"]))] = \
                draw(hostile_values())
        elif isinstance(target, dict) and target:
            target.pop(draw(st.sampled_from(sorted(target))))
        elif isinstance(target, list) and target:
            del target[draw(st.integers(0, len(target) - 1))]
    return dumps(obj).encode("utf-8")


def _text(content):
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


@settings(**FUZZ)
@given(mutated_json(MODEL_FILES))
def test_a_damaged_model_file_is_read_or_refused_with_ModelFileError(content):
    text = _text(content)
    note(f"model file: {text[:400] if text else content[:200]!r}")
    if text is None:  # modelfile.load reads text: not UTF-8 is its own "not a text file" error
        with written(content, ".json") as path:
            read_bounded(lambda: modelfile.load(path), len(content), (modelfile.ModelFileError,),
                         "modelfile.load of a file that is not UTF-8")
        return
    outcome, f = read_bounded(lambda: modelfile.loads(text), len(content), (modelfile.ModelFileError,),
                              f"modelfile.loads of a damaged model file ({len(content)} bytes)")
    if outcome == "read":  # then worked --model works it: only the errors the command line reports may come out
        read_bounded(lambda: f.work("tensor"), len(content), (modelfile.ModelFileError, W.NetworkError),
                     f"working a damaged model file ({len(content)} bytes) that modelfile.loads read")


NON_FINITE = ["NaN", "-Infinity", "1e400"]
PLACES = {"input": ("input", 0, 0), "weight": ("layers", 0, "weight", 0, 0), "bias": ("layers", 0, "bias", 0),
          "lr": ("lr",), "target of MSELoss": ("target", 0, 0)}


@pytest.mark.parametrize("token", NON_FINITE)
@pytest.mark.parametrize("place", list(PLACES))
def test_a_model_file_with_a_non_finite_number_is_refused(place, token):
    """A model file is numbers a person works by hand: NaN, an infinity, or a number past float64 (1e400) is
    refused by ModelFileError naming the place, as --x, --b1, ... refuse them for the built-ins."""
    obj = json.loads(MODEL_FILES["notes_001_dense"])
    if place == "target of MSELoss":
        obj.update(loss="MSELoss", target=[[0.0, 0.0, 0.0]])
    obj = _replace(obj, PLACES[place], Raw(token))
    text = dumps(obj)
    outcome, result = read_bounded(lambda: modelfile.loads(text), len(text), (modelfile.ModelFileError,),
                                   f"modelfile.loads with {place} {token}")
    assert outcome == "refused", f"a model file with {place} = {token} was read (lr {result.lr}, x {result.x.tolist()})"


@pytest.mark.parametrize("layer", HUGE_LAYERS[:3],
                         ids=["Linear 10^6 x 10^6", "Linear 30000 x 30000", "Linear 7000 x 7000"])
def test_a_model_file_declaring_a_huge_layer_is_refused_in_bounded_memory(layer):
    obj = json.loads(MODEL_FILES["notes_001_dense"])
    obj["layers"] = [layer]
    text = dumps(obj)
    outcome, _ = read_bounded(lambda: modelfile.loads(text), len(text), (modelfile.ModelFileError,),
                              f"modelfile.loads of a {len(text)}-byte file declaring {layer}")
    assert outcome == "refused"


@pytest.mark.parametrize("depth", [33, 65, 100_000])
def test_a_model_file_nested_deeper_than_numpy_or_python_goes_is_refused(depth):
    obj = json.loads(MODEL_FILES["notes_001_dense"])
    obj["input"] = _nested(depth)
    text = dumps(obj)
    outcome, _ = read_bounded(lambda: modelfile.loads(text), len(text), (modelfile.ModelFileError,),
                              f"modelfile.loads of an input nested {depth} deep")
    assert outcome == "refused"


# --- a student's answers ---------------------------------------------------------------------------------------------
def _network(model):
    """What ``tinygrad-cnn check --model MODEL`` checks against (as cli/check.py builds it)."""
    if model in W.MODELS:
        net, x, target = W.spec_model(model)
        return dict(model=net, x=x, target=[target], loss="BCELoss", lr=W.LEARNING_RATE, names=None, state=None,
                    keys_of=W.builtin_json)
    f = modelfile.loads(MODEL_FILES[model])
    return dict(model=f.model, x=f.x, target=f.target, loss=f.loss, lr=f.lr, names=f.names, state=f.state)


def _answers(model):
    """The right answers at 6 decimals (as a student writes them), nested as worked --json."""
    network = _network(model)
    solution = work_network(network["model"], network["x"], network["target"], network["loss"],
                                      network["lr"], "tensor", None, network["names"], network["state"])
    obj = (network.get("keys_of") or (lambda s: s.to_json()))(solution)

    def rounded(v):
        if isinstance(v, dict):
            return {k: rounded(x) for k, x in v.items()}
        if isinstance(v, list):
            return [rounded(x) for x in v]
        return round(v, 6) if isinstance(v, float) else v
    return json.dumps(rounded(obj))


ANSWER_NETWORKS = ("cnn10", "notes_001_dense")
NETWORKS = {m: _network(m) for m in ANSWER_NETWORKS}
ANSWERS = {m: _answers(m) for m in ANSWER_NETWORKS}


def _non_finite(value):
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    return isinstance(value, float) and not math.isfinite(value) or isinstance(value, Decimal) and not value.is_finite()


def _some_answers(model):
    """A student's answers: some of the quantities of worked --json (a few top-level keys), as JSON text."""
    full = json.loads(ANSWERS[model])
    return st.lists(st.sampled_from(sorted(full)), min_size=1, max_size=5, unique=True).map(
        lambda keys: json.dumps({k: full[k] for k in keys}))


@st.composite
def damaged_answers(draw):
    model = draw(st.sampled_from(ANSWER_NETWORKS))
    return model, draw(mutated_json({model: draw(_some_answers(model))}))


@settings(**FUZZ)
@given(damaged_answers())
def test_damaged_answers_are_checked_or_refused_with_AnswersError(model_and_content):
    model, content = model_and_content
    text = _text(content)
    if text is None:
        return  # check reads text: not UTF-8 is cli/check.py's own "not a text file"
    note(f"answers for {model}: {text[:400]}")
    outcome, answers = read_bounded(lambda: C.loads(text), len(content), (C.AnswersError,),
                                    f"check.loads of damaged answers ({len(content)} bytes)")
    if outcome == "refused":
        return
    outcome, report = read_bounded(lambda: C.check(answers, engine="tensor", **NETWORKS[model]), len(content),
                                   (C.AnswersError, W.NetworkError), f"check of damaged answers for {model}")
    if outcome == "read":
        flat = C.flatten(answers)
        for key, q in report.quantities.items():
            assert not (q["right"] and _non_finite(flat[key])), f"{key} = {flat[key]} is judged right"


HOSTILE_ANSWERS = {"loss NaN": '{"loss": NaN}', "loss Infinity": '{"loss": Infinity}', "loss 'abc'": '{"loss": "abc"}',
                   "loss 'NaN'": '{"loss": "NaN"}', "loss 401 digits": '{"loss": 1' + "0" * 400 + "}",
                   "loss 1e999999999": '{"loss": 1e999999999}', "loss [{}] (nothing to check)": '{"loss": [{}]}',
                   "nested 100000 deep": '{"a": ' + "[" * 100_000 + "}",
                   "an object inside grad.F": '{"grad": {"F": [[1, 2], [3, {"x": 1}]]}}'}


@pytest.mark.parametrize("text", list(HOSTILE_ANSWERS.values()), ids=list(HOSTILE_ANSWERS))
def test_hostile_answers_are_refused_or_judged_wrong(text):
    outcome, answers = read_bounded(lambda: C.loads(text), len(text), (C.AnswersError,), f"check.loads of {text[:40]}")
    if outcome == "refused":
        return
    outcome, report = read_bounded(lambda: C.check(answers, engine="tensor", **NETWORKS["cnn10"]), len(text),
                                   (C.AnswersError, W.NetworkError), f"check of {text[:60]}")
    assert outcome == "refused" or not report.all_right, f"{text[:60]} is judged all right: {report.quantities}"


# --- a .npy of non-real numbers given to worked --x ----------------------------------------------------------------
class Touch:
    """Unpickling it makes the file PWNED (the test's proof that a pickle was loaded)."""

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path("PWNED"),))


X5 = np.array([[2, 1, 0, 2, 1], [2, 1, 1, 0, 2], [1, 2, 0, 1, 0], [1, 0, 2, 1, 2], [2, 1, 1, 0, 0]], dtype=np.float64)
SHAPES = {"--x": (5, 5), "--kernel": (2, 2), "--w4": (4,)}


def _non_real(kind, shape):
    a = X5.ravel()[:math.prod(shape)].reshape(shape)
    if kind == "complex":
        return a + 1j
    if kind == "complex, imaginary part 0":
        return a.astype(np.complex128)
    if kind == "objects (a pickle)":
        o = a.astype(object)
        o.flat[0] = Touch()
        return o
    if kind == "numeric strings":
        return a.astype(str)
    if kind == "strings":
        return np.full(shape, "a")
    if kind == "bytes":
        return a.astype("S3")
    if kind == "void":
        return np.zeros(shape, "V8")
    if kind == "dates":
        return a.astype("datetime64[s]")
    if kind == "records":
        return np.zeros(shape, [("a", "<f8")])
    raise ValueError(kind)


KINDS = ["complex", "complex, imaginary part 0", "objects (a pickle)", "numeric strings", "strings", "bytes", "void",
         "dates", "records"]


NPY_CASES = [(kind, "--x") for kind in KINDS] + [("complex", "--kernel"), ("complex", "--w4"),
                                                  ("numeric strings", "--w4")]


@pytest.mark.parametrize("kind, option", NPY_CASES, ids=[f"{o} {k}" for k, o in NPY_CASES])
def test_worked_refuses_a_npy_of_non_real_numbers(tmp_path, kind, option):
    path = tmp_path / "a.npy"
    np.save(path, _non_real(kind, SHAPES[option]), allow_pickle=True)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            status = cli.main(["worked", option, "a.npy"])
        except BaseException as e:  # noqa: BLE001
            pytest.fail(f"worked {option} (a .npy of {kind}): {type(e).__name__} escaped: {e}", pytrace=False)
    assert not (tmp_path / "PWNED").exists(), f"worked {option} unpickled the .npy of objects"
    lines = err.getvalue().rstrip("\n").split("\n")
    problems = []
    if status != 2:
        problems.append(f"exit {status}, expected 2")
    if not (len(lines) == 1 and lines[0].startswith(f"tinygrad-cnn worked: {option}")):
        problems.append(f"stderr is not one line naming {option}: {err.getvalue()[:600]!r}")
    if caught:
        problems.append(f"warnings: {[str(w.message) for w in caught]}")
    if problems:
        pytest.fail(f"worked {option} a.npy holding {kind}: " + "; ".join(problems), pytrace=False)
