"""The exact dtype (tinygrad_cnn.exact): Fractions through the piecewise-linear part of a pass.

1. The known example where float64 decides a ReLU wrongly (z1[0,3] = 0 by hand, 5.55e-17 in float),
   on both engines with dtype="exact": the hand computation's gradients.
2. A property test of small CNNs on decimal inputs (many exact zeros and ties) against an independent
   exact reference written here (loops over Fractions; float only for sigmoid and BCE): every ReLU
   mask, every max-pool winner, every gradient.
3. float64 (the default) really does disagree on the known example: why exact exists.
4. Unit tests of tinygrad_cnn.exact and of what stays exact (or turns float64) on both engines.
"""
import itertools
import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import Phase, assume, event, given, settings
from hypothesis import strategies as st

from tinygrad_cnn import Tensor, Value, nn, values
from tinygrad_cnn import exact as E
from tinygrad_cnn.models import tiny_cnn10
from tinygrad_cnn.nn import functional as F

ENGINES = ("tensor", "value")
TOL = 1e-12  # gradients: abs or relative


# --- reading either engine --------------------------------------------------------------------
def leaf(data, engine, dtype="exact"):
    """Input leaves that take gradients: a Tensor that requires grad, or Values."""
    if engine == "tensor":
        return Tensor(data, dtype=dtype, requires_grad=True)
    return values(data, dtype=dtype)


def data_of(x):
    """The engine's numbers as they are (Fractions stay Fractions): an object array."""
    if isinstance(x, (Tensor, Value)):
        return np.array(x.data, dtype=object)
    return np.array([v.data for v in x.flat], dtype=object).reshape(x.shape)


def kinds(a):
    """The set of Python types of an array's elements."""
    return {type(v) for v in np.asarray(a, dtype=object).flat}


def assert_close(got, ref, what):
    got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=object).astype(np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, reference {ref.shape}"
    bad = ~np.isclose(got, ref, rtol=TOL, atol=TOL)
    assert not bad.any(), f"{what}: got\n{got}\nreference\n{ref}\ndiffering at {np.argwhere(bad).tolist()}"


def assert_float64(a, what):
    assert type(a) is np.ndarray and a.dtype == np.float64, f"{what}: a {type(a).__name__} of {a.dtype}"


def assert_equal_exact(got, ref, what):
    """Elementwise equal as numbers (Fraction == Fraction, no rounding)."""
    got, ref = np.asarray(got, dtype=object), np.asarray(ref, dtype=object)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, reference {ref.shape}"
    bad = [i for i in np.ndindex(ref.shape) if got[i] != ref[i]]
    assert not bad, (f"{what}: differs at {bad[:5]}: got {[got[i] for i in bad[:5]]}, "
                     f"reference {[ref[i] for i in bad[:5]]}")


# --- an independent exact reference: loops over Fractions, float only after the logit ----------------
def zeros(shape, zero=Fraction(0)):
    a = np.empty(shape, dtype=object)
    a[...] = zero
    return a


def ref_pad(x, p, fill):
    n, c, h, w = x.shape
    out = zeros((n, c, h + 2 * p, w + 2 * p), fill)
    for i in np.ndindex(x.shape):
        out[i[0], i[1], i[2] + p, i[3] + p] = x[i]
    return out


def ref_conv2d(x, w, b, stride, padding):
    """Cross-correlation, NCHW, zero padding: z[n,o,i,j] = b[o] + sum_c,u,v w[o,c,u,v] xpad[n,c,i s+u,j s+v]."""
    xp = ref_pad(x, padding, Fraction(0))
    n, c, hp, wp = xp.shape
    o, _, kh, kw = w.shape
    ho, wo = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    z = zeros((n, o, ho, wo))
    for b_, oc, i, j in itertools.product(range(n), range(o), range(ho), range(wo)):
        total = b[oc]
        for ch, u, v in itertools.product(range(c), range(kh), range(kw)):
            total += w[oc, ch, u, v] * xp[b_, ch, i * stride + u, j * stride + v]
        z[b_, oc, i, j] = total
    return z


def ref_conv2d_backward(gz, x, w, stride, padding):
    """(d/dx, d/dw, d/db) of the conv from d/dz."""
    xp = ref_pad(x, padding, Fraction(0))
    gxp, gw, gb = zeros(xp.shape), zeros(w.shape), zeros((w.shape[0],))
    _, c, _, _ = x.shape
    _, _, kh, kw = w.shape
    for (b_, oc, i, j) in np.ndindex(gz.shape):
        g = gz[b_, oc, i, j]
        gb[oc] += g
        for ch, u, v in itertools.product(range(c), range(kh), range(kw)):
            r, s = i * stride + u, j * stride + v
            gw[oc, ch, u, v] += g * xp[b_, ch, r, s]
            gxp[b_, ch, r, s] += g * w[oc, ch, u, v]
    h, wd = x.shape[2:]
    return gxp[:, :, padding:padding + h, padding:padding + wd], gw, gb


def ref_act(z, slope):
    """ReLU (slope None) or leaky ReLU: z where z > 0, else 0 or slope z."""
    a = zeros(z.shape)
    for i in np.ndindex(z.shape):
        a[i] = z[i] if z[i] > 0 else (Fraction(0) if slope is None else slope * z[i])
    return a


def ref_act_derivative(z, slope):
    """1 where z > 0; at z <= 0 (the kink included) 0 for ReLU, the slope for leaky ReLU."""
    d = zeros(z.shape)
    for i in np.ndindex(z.shape):
        d[i] = Fraction(1) if z[i] > 0 else (Fraction(0) if slope is None else slope)
    return d


def ref_pool(a, kind, stride, padding, k=2):
    """(out, windows): max (the first largest in row-major order wins a tie; padding is -inf) or
    average (kernel k, no padding) of each window; windows[o] = the input positions of window o,
    row-major, and for max the winner first."""
    n, c, h, w = a.shape
    ho, wo = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    out, windows = zeros((n, c, ho, wo)), {}
    for b_, ch, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
        cells = [(b_, ch, i * stride + u - padding, j * stride + v - padding) for u in range(k) for v in range(k)]
        inside = [q for q in cells if 0 <= q[2] < h and 0 <= q[3] < w]
        if kind == "max":
            best, top = None, None
            for q in cells:  # row-major; a padding cell is -inf
                value = a[q] if q in inside else -math.inf
                if best is None or value > top:  # strictly larger: on a tie the first keeps it
                    best, top = q, value
            out[b_, ch, i, j] = top
            windows[(b_, ch, i, j)] = [best] + [q for q in inside if q != best]
        else:
            assert padding == 0
            out[b_, ch, i, j] = sum((a[q] for q in cells), Fraction(0)) / (k * k)
            windows[(b_, ch, i, j)] = cells
    return out, windows


def ref_pool_backward(g, shape, kind, windows, k=2):
    ga = zeros(shape)
    for o, cells in windows.items():
        if kind == "max":
            ga[cells[0]] += g[o]
        else:
            for q in cells:
                ga[q] += g[o] / (k * k)
    return ga


def ref_sigmoid(x):
    x = float(x)
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def reference(x, w1, b1, w2, b2, *, stride, padding, slope, pool, pool_stride, pool_padding, head, target):
    """Forward and backward of conv -> act -> pool -> flatten -> linear (-> sigmoid -> BCE | MSE).

    Exact (Fractions) up to the logit o; for "bce" float from the sigmoid on (natural log), for "mse"
    exact all through. Returns the values and the gradients (as exact or float numbers)."""
    z = ref_conv2d(x, w1, b1, stride, padding)
    a = ref_act(z, slope)
    p, windows = ref_pool(a, pool, pool_stride, pool_padding)
    n = x.shape[0]
    f = p.reshape(n, -1)
    o = zeros((n, 1))
    for b_ in range(n):
        o[b_, 0] = b2[0] + sum((w2[0, j] * f[b_, j] for j in range(f.shape[1])), Fraction(0))
    t = target
    if head == "bce":
        s = [ref_sigmoid(o[b_, 0]) for b_ in range(n)]
        loss = -sum(t[b_] * math.log(s[b_]) + (1 - t[b_]) * math.log(1 - s[b_]) for b_ in range(n)) / n
        go = zeros((n, 1))
        for b_ in range(n):
            go[b_, 0] = (s[b_] - t[b_]) / n  # d/do of BCE(sigmoid(o)), the mean over n
    else:
        loss = sum(((o[b_, 0] - t[b_]) ** 2 for b_ in range(n)), Fraction(0)) / n
        go = zeros((n, 1))
        for b_ in range(n):
            go[b_, 0] = 2 * (o[b_, 0] - t[b_]) / n
    gw2, gb2, gf = zeros(w2.shape), zeros((1,)), zeros(f.shape)
    for b_ in range(n):
        gb2[0] += go[b_, 0]
        for j in range(f.shape[1]):
            gw2[0, j] += go[b_, 0] * f[b_, j]
            gf[b_, j] = go[b_, 0] * w2[0, j]
    ga = ref_pool_backward(gf.reshape(p.shape), a.shape, pool, windows)
    dact = ref_act_derivative(z, slope)
    gz = zeros(z.shape)
    for i in np.ndindex(z.shape):
        gz[i] = ga[i] * dact[i]
    gx, gw1, gb1 = ref_conv2d_backward(gz, x, w1, stride, padding)
    return {"z": z, "a": a, "p": p, "windows": windows, "o": o, "loss": loss,
            "grads": {"x": gx, "0.weight": gw1, "0.bias": gb1, "4.weight": gw2, "4.bias": gb2}}


def fractions(rows):
    return np.array(rows, dtype=object).reshape(np.shape(rows))


# --- 1. the known example, exact on both engines ---------------------------------------------------
X = [[1, 2, 0, 2, 1], [2, 0, 1, 1, 1], [0, 0, 0, 0, 1], [1, 1, 2, 1, 1], [0, 0, 2, 0, 0]]
KERNEL, B1, W4, B4 = [[0.2, 0.2], [-0.2, 0]], -0.4, [0, -1, -1, 1.0], 0.0
# The hand computation: z1 = X * F + b1 is 0 or negative everywhere but z1[3,1] = 0.2 (z1[0,3] = 0 exactly:
# 2(0.2) + 1(0.2) + 1(-0.2) + 1(0) - 0.4), so a1 = relu(z1) is 0.2 at (3,1) only; a3 = pool = [0, 0, 0.2, 0]
# (the window of (0,3) is all zeros: its first entry (0,2) wins); z4 = w4 . a3 = -0.2; a4 = sigmoid(z4) =
# 0.450166; loss = -log a4 (label 1). Backward: dz4 = a4 - 1 = -0.549834, dw4 = dz4 a3, da3 = dz4 w4, which
# reaches z1 only at (3,1) (the other winners have z1 <= 0): db1 = 0.549834, dF = 0.549834 X[3:5, 1:3].
HAND = {"loss": 0.798139, "b4": -0.549834, "w4": [0.0, 0.0, -0.109967, 0.0],
        "b1": 0.549834, "F": [0.549834, 1.099668, 0.0, 1.099668]}


def known_example(engine, dtype):
    """(model, z1, loss) of tiny_cnn10 on the known example, after backward."""
    model = tiny_cnn10(engine=engine)
    model.load_state_dict({"0.weight": np.reshape(KERNEL, (1, 1, 2, 2)), "0.bias": np.array([B1]),
                           "4.weight": np.reshape(W4, (1, 4)), "4.bias": np.array([B4])})
    if dtype is not None:
        model.to_engine(engine, dtype)
    x = (Tensor(X, dtype=dtype) if engine == "tensor" else values(X, dtype=dtype)).reshape(1, 1, 5, 5)
    z1 = model[0](x)
    out = model(x)
    loss = F.binary_cross_entropy(out, [[1.0]])
    loss.backward()
    return model, z1, loss


@pytest.mark.parametrize("engine", ENGINES)
def test_known_example_exact_gives_the_hand_computation(engine):
    model, z1, loss = known_example(engine, "exact")
    z = data_of(z1)
    assert z[0, 0, 0, 3] == 0 and type(z[0, 0, 0, 3]) is Fraction  # 2(0.2) + 1(0.2) + 1(-0.2) + 1(0) - 0.4
    assert float(loss.numbers()) == pytest.approx(HAND["loss"], abs=1e-6)
    grads = {k: p.grads() for k, p in model.named_parameters()}
    assert grads["0.bias"].ravel() == pytest.approx([HAND["b1"]], abs=1e-6)
    assert grads["0.weight"].ravel() == pytest.approx(HAND["F"], abs=1e-6)
    assert grads["4.weight"].ravel() == pytest.approx(HAND["w4"], abs=1e-6)
    assert grads["4.bias"].ravel() == pytest.approx([HAND["b4"]], abs=1e-6)
    # the same by the exact reference below
    ref = reference(E.rationals(np.reshape(X, (1, 1, 5, 5))), E.rationals(np.reshape(KERNEL, (1, 1, 2, 2))),
                    E.rationals([B1]), E.rationals(np.reshape(W4, (1, 4))), E.rationals([B4]), stride=1, padding=0,
                    slope=None, pool="max", pool_stride=2, pool_padding=0, head="bce", target=[1])
    assert ref["o"][0, 0] == Fraction(-1, 5)  # z4
    assert_equal_exact(z, ref["z"], "z1")
    for key in ("0.weight", "0.bias", "4.weight", "4.bias"):
        assert_close(grads[key], ref["grads"][key], key)


# --- 3. float64 disagrees there -----------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_known_example_float64_decides_the_relu_by_rounding(engine):
    """Why exact exists: float64 sums z1[0,3] left to right (the value engine) to 5.55e-17, the ReLU
    lets it through, and the max-pool window picks it, so dL/db1 doubles (1.099668 instead of the
    hand computation's 0.549834). The tensor engine's BLAS may sum in another order (or with fused
    multiply-adds) and land on 0 or not, depending on the machine: the decision hangs on rounding."""
    model, z1, loss = known_example(engine, None)
    z = z1.numbers()
    assert z.dtype == np.float64
    if engine == "value":
        assert z[0, 0, 0, 3] == 5.551115123125783e-17  # 0 by hand
    assert abs(z[0, 0, 0, 3]) < 1e-15
    wrong = z[0, 0, 0, 3] > 0
    assert model[0].bias.grads().ravel() == pytest.approx([1.099668 if wrong else HAND["b1"]], abs=1e-6)
    assert model[0].weight.grads().ravel() == pytest.approx(
        [1.649502, 1.649502, 0.549834, 1.649502] if wrong else HAND["F"], abs=1e-6)
    assert float(loss.numbers()) == pytest.approx(HAND["loss"], abs=1e-6)  # the forward pass agrees


# --- 2. the property test ---------------------------------------------------------------------------
def _decimals(lo, hi, scale):
    return st.integers(round(lo * scale), round(hi * scale)).map(lambda k: Fraction(k, scale))


def _small(*numbers):
    return st.sampled_from([Fraction(str(v)) for v in numbers])


# element strategies: a small set (exact zeros and ties), tenths, hundredths
PIXELS = (_small(0, 0, 0, 1, 1, 2, 0.1, 0.2, -1), _decimals(-2, 2, 10), _decimals(-2, 2, 100))
KERNELS = (_small(0, 0, 0.2, -0.2, 0.1, -0.1), _decimals(-1, 1, 10), _decimals(-1, 1, 100))
BIASES = (_small(0, -0.4, -0.2, 0.2, 0.4), _decimals(-1, 1, 10), _decimals(-1, 1, 100))
LINEAR = (_small(0, 0, 1, -1, 0.1, -0.5, 0.5), _decimals(-1, 1, 10), _decimals(-0.5, 0.5, 100))


@st.composite
def cnn_cases(draw, pool, head):
    style = draw(st.sampled_from(["ties", "tenths", "hundredths", "mixed"]))

    def element(choices):
        return {"ties": choices[0], "tenths": choices[1], "hundredths": choices[2],
                "mixed": st.one_of(choices)}[style]

    def array(shape, choices):
        size = int(np.prod(shape))
        return fractions(list(draw(st.tuples(*[element(choices)] * size)))).reshape(shape)

    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h, w = draw(st.integers(4, 6)), draw(st.integers(4, 6))
    stride, padding = draw(st.sampled_from([1, 2])), draw(st.sampled_from([0, 1]))
    slope = draw(st.sampled_from([None, Fraction(1, 10), Fraction(1, 2)]))
    if pool == "max":  # kernel 2: stride 2, or stride 1 (overlapping windows); padding 0 or 1
        pool_stride, pool_padding = draw(st.sampled_from([2, 1])), draw(st.sampled_from([0, 1]))
    else:
        pool_stride, pool_padding = draw(st.sampled_from([2, 1])), 0
    hc, wc = (h + 2 * padding - 2) // stride + 1, (w + 2 * padding - 2) // stride + 1
    hp, wp = (hc + 2 * pool_padding - 2) // pool_stride + 1, (wc + 2 * pool_padding - 2) // pool_stride + 1
    features = o * hp * wp
    x = array((n, c, h, w), PIXELS)
    w1, b1 = array((o, c, 2, 2), KERNELS), array((o,), BIASES)
    w2, b2 = array((1, features), LINEAR), array((1,), BIASES)
    if head == "bce":
        target = draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n))
    else:
        target = draw(st.lists(_decimals(-2, 2, 10), min_size=n, max_size=n))
    return {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2, "stride": stride, "padding": padding, "slope": slope,
            "pool": pool, "pool_stride": pool_stride, "pool_padding": pool_padding, "head": head, "target": target}


def engine_model(case, engine):
    """The case's CNN of tinygrad_cnn.nn modules on ``engine``, its parameters made exact by to_engine."""
    c, o = case["x"].shape[1], case["w1"].shape[0]
    act = nn.ReLU() if case["slope"] is None else nn.LeakyReLU(float(case["slope"]))
    pool = (nn.MaxPool2d(2, case["pool_stride"], case["pool_padding"]) if case["pool"] == "max"
            else nn.AvgPool2d(2, case["pool_stride"]))
    layers = [nn.Conv2d(c, o, 2, stride=case["stride"], padding=case["padding"], engine=engine), act, pool,
              nn.Flatten(), nn.Linear(case["w2"].shape[1], 1, engine=engine)]
    model = nn.Sequential(*layers, *([nn.Sigmoid()] if case["head"] == "bce" else []))
    def as_floats(a):  # the decimals as floats, as a checkpoint holds them
        return np.asarray(a, dtype=object).astype(np.float64)

    model.load_state_dict({"0.weight": as_floats(case["w1"]), "0.bias": as_floats(case["b1"]),
                           "4.weight": as_floats(case["w2"]), "4.bias": as_floats(case["b2"])})
    return model.to_engine(engine, "exact")


def probe(module, data, engine, upstream):
    """The gradient that ``module`` sends back to a fresh exact leaf holding ``data`` from ``upstream``."""
    x = leaf(data, engine)
    module(x).backward(np.asarray(upstream, dtype=np.float64))
    return x.grads()


def check_case(case, engine):
    """Run the case on ``engine`` and compare with the reference; every disagreement is collected and
    reported together (so that one failing check does not hide what the others say)."""
    ref = reference(case["x"], case["w1"], case["b1"], case["w2"], case["b2"], **{
        k: case[k] for k in ("stride", "padding", "slope", "pool", "pool_stride", "pool_padding", "head", "target")})
    if case["head"] == "bce":
        assume(abs(ref["o"]).max() <= 15)  # the sigmoid far from saturating to 0 or 1 (BCE's clamp)
    if (ref["z"] == 0).any():
        event("an exact zero before the activation")
    if case["pool"] == "max" and any(ref["a"][q] == ref["a"][w[0]] for w in ref["windows"].values() for q in w[1:]):
        event("a tie for the largest in a max-pool window")

    model = engine_model(case, engine)
    x = leaf(case["x"], engine)
    outs, h = [], x
    for m in model:
        h = m(h)
        outs.append(h)
    z, a, p = (data_of(t) for t in outs[:3])
    target = np.asarray(case["target"], dtype=np.float64).reshape(-1, 1)
    loss = (F.binary_cross_entropy if case["head"] == "bce" else F.mse_loss)(h, target)
    loss.backward()
    problems = []

    def check(fn, *args):
        try:
            fn(*args)
        except AssertionError as e:
            problems.append(str(e).split("\nassert ")[0])

    def relu_mask():
        blocked = np.vectorize(lambda v: v <= 0, otypes=[bool])(ref["z"])
        zero = np.vectorize(lambda v: v == 0, otypes=[bool])(a)
        assert (zero == blocked).all(), (f"ReLU output is 0 at {np.argwhere(zero).tolist()}, "
                                         f"the reference's z <= 0 at {np.argwhere(blocked).tolist()}")

    for key, ref_param in (("0.weight", case["w1"]), ("0.bias", case["b1"]), ("4.weight", case["w2"]),
                           ("4.bias", case["b2"])):  # to_engine read the floats as the decimals
        check(assert_equal_exact, data_of(dict(model.named_parameters())[key]), ref_param, f"parameter {key}")
    # the pre-activation is the exact one, and the ReLU mask is decided on it
    check(assert_equal_exact, z, ref["z"], "conv output z")
    if case["slope"] is None:
        check(relu_mask)
    check(assert_equal_exact, a, ref["a"], "activation output")
    d_act = probe(model[1], z, engine, np.ones(z.shape))  # ReLU'(0) = 0, LeakyReLU'(0) = slope
    check(assert_equal_exact, d_act, ref_act_derivative(ref["z"], case["slope"]).astype(np.float64),
          "activation derivative")
    # the pool: its values, and (max) every window's winner, read from the gradient it routes
    check(assert_equal_exact, p, ref["p"], "pool output")
    if case["pool"] == "max":
        weights = np.zeros(p.shape)  # window (i, j) of each plane sends 2^(i W + j): an input's gradient
        for i in np.ndindex(p.shape):  # is the sum over the windows it wins, one bit each
            weights[i] = 2.0 ** (i[2] * p.shape[3] + i[3])
        got = probe(model[2], a, engine, weights)
        expected = ref_pool_backward(weights.astype(object), a.shape, "max", ref["windows"]).astype(np.float64)
        check(assert_equal_exact, got, expected, "max-pool winners (bits of the windows each input wins)")
    # the logit, the loss and every gradient
    check(assert_close, data_of(outs[4]).astype(np.float64), ref["o"], "logit")
    check(assert_close, float(loss.numbers()), float(ref["loss"]), "loss")
    got = {"x": x.grads(), **{k: q.grads() for k, q in model.named_parameters()}}
    for key, ref_grad in ref["grads"].items():
        check(assert_float64, got[key], f"d loss / d {key}")
        check(assert_close, got[key], ref_grad, f"d loss / d {key}")
    assert not problems, f"{len(problems)} disagreement(s) on {engine}:\n" + "\n".join(problems)


@pytest.mark.parametrize("head", ["bce", "mse"])
@pytest.mark.parametrize("pool", ["max", "avg"])
@pytest.mark.parametrize("engine", ENGINES)
def test_exact_cnn_agrees_with_the_exact_reference(engine, pool, head):
    # The explain phase traces every line run, which makes a failing example of this pure-Python test
    # take seconds longer to report; the loaded profile's other settings (max_examples...) are kept.
    @settings(phases=[phase for phase in Phase if phase != Phase.explain])
    @given(cnn_cases(pool, head))
    def run(case):
        check_case(case, engine)
    run()


# --- 4. unit tests of tinygrad_cnn.exact ------------------------------------------------------------
@pytest.mark.parametrize("given_, expected", [
    (3, Fraction(3)), (-2, Fraction(-2)), (np.int64(7), Fraction(7)), (True, Fraction(1)),
    (0.1, Fraction(1, 10)), (0.3, Fraction(3, 10)), (-2.5, Fraction(-5, 2)), (1e-3, Fraction(1, 1000)),
    (np.float64(0.2), Fraction(1, 5)), (-0.0, Fraction(0)), (1 / 3, Fraction("0.3333333333333333")),
    ("0.30", Fraction(3, 10)), ("1e-3", Fraction(1, 1000)), ("-2.5", Fraction(-5, 2)),
    (Decimal("0.1"), Fraction(1, 10)), (Decimal("-1.25"), Fraction(-5, 4)),
])
def test_rational(given_, expected):
    r = E.rational(given_)
    assert type(r) is Fraction and r == expected


def test_rational_keeps_a_fraction_and_infinities_stay_float():
    f = Fraction(1, 3)
    assert E.rational(f) is f
    for inf in (math.inf, -math.inf, np.float64(np.inf), Decimal("Infinity"), "inf", "-inf"):
        r = E.rational(inf)
        assert type(r) is float and math.isinf(r) and (r > 0) == (float(inf) > 0)
    assert math.isnan(E.rational(math.nan))


@pytest.mark.parametrize("data, shape", [
    (0.1, ()), ([0.1, 2, -3.5], (3,)), ([[1, 0.2], [0.3, 4]], (2, 2)), (np.zeros((2, 3, 1)), (2, 3, 1)),
    ([], (0,)), (np.zeros((2, 0, 3)), (2, 0, 3)), (np.array([Fraction(1, 3), 2], dtype=object), (2,)),
])
def test_rationals_shapes(data, shape):
    r = E.rationals(data)
    assert type(r) is np.ndarray and r.dtype == object and r.shape == shape
    assert kinds(r) <= {Fraction}
    assert_equal_exact(r, np.array([E.rational(v) for v in np.ravel(np.asarray(data, dtype=object))],
                                   dtype=object).reshape(shape), "rationals")


def test_rationals_is_fresh_and_refuses_text():
    a = np.array([Fraction(1, 2), Fraction(3)], dtype=object)
    r = E.rationals(a)
    r[0] = Fraction(9)
    assert a[0] == Fraction(1, 2)
    with pytest.raises(TypeError, match="exact: expected real numbers"):
        E.rationals(["a"])


@pytest.mark.parametrize("shape", [(), (1,), (2, 2)])
def test_settle(shape):
    def filled(*items):
        a = np.empty(shape, dtype=object)
        flat = list(itertools.islice(itertools.cycle(items), a.size))
        for i, v in zip(np.ndindex(shape), flat):
            a[i] = v
        return a

    with_float = filled(0.5, Fraction(1, 3)) if shape else filled(0.5)
    settled = E.settle(with_float)
    assert settled.dtype == np.float64 and settled.shape == shape
    assert np.allclose(settled, with_float.astype(np.float64))
    for items in [(Fraction(1, 3),), (Fraction(1, 3), 2), (-math.inf, Fraction(1, 2)), (3,), (math.inf,)]:
        a = filled(*items)
        assert E.settle(a) is a, f"settle of {items} in shape {shape}"
    empty = np.empty((0,), dtype=object)
    assert E.settle(empty) is empty


def exact_tensor(data):
    return Tensor(data, dtype="exact", requires_grad=True)


@pytest.mark.parametrize("op", ["sigmoid", "exp", "log", "tanh"])
def test_exact_tensor_turns_float64_at_transcendental_ops(op):
    t = exact_tensor([[0.5, 1.5], [2, 0.1]])
    assert t.dtype == object
    out = getattr(t, op)()
    assert out.dtype == np.float64
    assert np.allclose(out.data, getattr(np, op)(t.data.astype(np.float64)) if op != "sigmoid"
                       else 1 / (1 + np.exp(-t.data.astype(np.float64))))
    v = values([0.5, 2], dtype="exact")
    assert all(type(u.data) is float for u in getattr(v, op)().flat)


@pytest.mark.parametrize("op", [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: b - a, lambda a, b: a.maximum(b)])
def test_exact_tensor_turns_float64_when_it_meets_a_float64_tensor(op):
    a, b = exact_tensor([0.1, 0.2]), Tensor([0.3, 0.4])
    out = op(a, b)
    assert out.dtype == np.float64
    assert np.allclose(out.data, op(Tensor([0.1, 0.2]), b).data)


@pytest.mark.parametrize("engine", ENGINES)
def test_exact_meets_exact_and_numbers_stays_exact(engine):
    """Exact with exact, with plain numbers (read as decimals) and reduced to 0-d stays exact."""
    a, b = leaf([[0.1, 0.2], [-0.3, 0.5]], engine), leaf([[0.2, 0.1], [0.3, 1]], engine)
    cases = {"a + b": (a + b, [[0.3, 0.3], [0, 1.5]]), "a * b": (a * b, [[0.02, 0.02], [-0.09, 0.5]]),
             "a * 0.1": (a * 0.1, [[0.01, 0.02], [-0.03, 0.05]]), "0.7 - a": (0.7 - a, [[0.6, 0.5], [1, 0.2]]),
             "a / 4": (a / 4, [[0.025, 0.05], [-0.075, 0.125]]), "a ** 2": (a ** 2, [[0.01, 0.04], [0.09, 0.25]]),
             "a.sum()": (a.sum(), 0.5), "a.sum(1)": (a.sum(1), [0.3, 0.2]), "a.mean()": (a.mean(), 0.125)}
    for name, (out, expected) in cases.items():
        d = data_of(out)
        assert kinds(d) <= {Fraction, int}, f"{name}: {kinds(d)}"
        assert_equal_exact(d, E.rationals(expected), name)


def test_gradients_are_float64():
    t = exact_tensor([[0.1, -0.2], [0.3, 0.4]])
    w = exact_tensor([[0.5], [0.25]])
    out = F.linear(F.leaky_relu(t, 0.1), w.T)
    out.backward(np.ones(out.shape))
    assert type(t.grad) is np.ndarray and t.grad.dtype == np.float64 and w.grad.dtype == np.float64
    assert t.grads().dtype == np.float64
    v = values([[0.1, -0.2], [0.3, 0.4]], dtype="exact")
    u = values([[0.5, 0.25]], dtype="exact")
    F.linear(F.leaky_relu(v, 0.1), u).backward(np.ones((2, 1)))
    assert all(type(e.grad) is float for e in list(v.flat) + list(u.flat))
    assert v.grads().dtype == np.float64
    assert np.allclose(t.grads(), v.grads()) and np.allclose(w.grads().T, u.grads())


def test_value_numbers_of_an_exact_value_is_a_float64_0d_array():
    v = values([0.1], dtype="exact").flat[0]
    assert type(v.data) is Fraction
    n = v.numbers()
    assert type(n) is np.ndarray and n.dtype == np.float64 and n.shape == () and n == 0.1


def test_tensor_grads_before_backward_are_float64_zeros():
    t = exact_tensor([[Fraction(1, 3), 2], [0.5, 1]])
    g = t.grads()
    assert g.dtype == np.float64 and g.shape == (2, 2) and not g.any()


def assert_exact(x, allowed=(Fraction,)):
    d = data_of(x)
    if isinstance(x, Tensor):
        assert x.data.dtype == object
    assert kinds(d) <= set(allowed), f"elements {kinds(d)}"
    return d


@pytest.mark.parametrize("engine", ENGINES)
def test_leaky_relu_keeps_exactness(engine):
    x = leaf([[-1, 0.3], [0, -0.25]], engine)
    out = assert_exact(F.leaky_relu(x, 0.1))
    assert_equal_exact(out, fractions([[Fraction(-1, 10), Fraction(3, 10)], [0, Fraction(-1, 40)]]), "leaky_relu")


@pytest.mark.parametrize("engine", ENGINES)
def test_relu_keeps_exactness(engine):
    """ReLU is in the exact part of a pass: its zeros must be exact numbers too (Fraction or int),
    else the next layer's sums turn float and its kinks are decided in float again."""
    out = assert_exact(F.relu(leaf([[-1, 0.3], [0, -0.25]], engine)), (Fraction, int))
    assert_equal_exact(out, fractions([[0, Fraction(3, 10)], [0, 0]]), "relu")


@pytest.mark.parametrize("engine", ENGINES)
def test_a_second_layer_after_a_relu_is_decided_exactly(engine):
    """relu([-1, 0.1, 0.2]) . [1, 1, 1] - 0.3 is 0 by hand (float64 gives 5.55e-17): a second ReLU blocks it."""
    a = F.relu(leaf([[-1, 0.1, 0.2]], engine))
    z2 = F.linear(a, leaf([[1, 1, 1]], engine), leaf([-0.3], engine))
    d = data_of(z2)
    assert d[0, 0] == 0, f"z2 = {d[0, 0]!r}"
    assert_exact(z2, (Fraction, int))


@pytest.mark.parametrize("engine", ENGINES)
def test_conv_padding_keeps_exactness(engine):
    x = leaf(np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]]).reshape(1, 1, 3, 3), engine)
    w = leaf(np.array([[0.1, -0.2], [0.3, 0]]).reshape(1, 1, 2, 2), engine)
    b = leaf([0.01], engine)
    out = assert_exact(F.conv2d(x, w, b, padding=1))
    ref = ref_conv2d(data_of(x), data_of(w), data_of(b), 1, 1)
    assert_equal_exact(out, ref, "conv2d padding=1")


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("engine", ENGINES)
def test_max_pool_padding_keeps_exactness(engine, stride):
    x = leaf(np.array([[-0.1, -0.2, 0.3], [0.4, -0.5, 0.4], [-0.7, 0.8, 0]]).reshape(1, 1, 3, 3), engine)
    out = assert_exact(F.max_pool2d(x, 2, stride, padding=1))
    ref, _ = ref_pool(data_of(x), "max", stride, 1)
    assert_equal_exact(out, ref, "max_pool2d padding=1")


@pytest.mark.parametrize("engine", ENGINES)
def test_avg_pool_keeps_exactness(engine):
    x = leaf(np.array([[0.1, 0.2, 0.3, 0], [0.4, 0.5, 0.6, 0], [0.7, 0.8, 0.9, 1], [0, 0, 0, 1]]).reshape(1, 1, 4, 4),
             engine)
    out = assert_exact(F.avg_pool2d(x, 2))
    assert_equal_exact(out, fractions([[Fraction(3, 10), Fraction(9, 40)], [Fraction(3, 8), Fraction(29, 40)]])
                       .reshape(1, 1, 2, 2), "avg_pool2d")


@pytest.mark.parametrize("engine", ENGINES)
def test_to_engine_exact_gives_fraction_parameters(engine):
    model = tiny_cnn10(engine="tensor")
    model.load_state_dict({"0.weight": np.reshape(KERNEL, (1, 1, 2, 2)), "0.bias": np.array([B1]),
                           "4.weight": np.reshape(W4, (1, 4)), "4.bias": np.array([0.1])})
    model.to_engine(engine, "exact")
    f = Fraction
    expected = {"0.weight": fractions([[[[f(1, 5), f(1, 5)], [f(-1, 5), f(0)]]]]), "0.bias": fractions([f(-2, 5)]),
                "4.weight": fractions([[f(0), f(-1), f(-1), f(1)]]), "4.bias": fractions([f(1, 10)])}
    params = dict(model.named_parameters())
    assert params.keys() == expected.keys()
    for key, p in params.items():
        if engine == "value":
            assert all(isinstance(v, Value) and type(v.data) is Fraction for v in p.flat), key
        else:
            assert isinstance(p, Tensor) and p.requires_grad and p.data.dtype == object
            assert kinds(p.data) == {Fraction}, key
        assert_equal_exact(data_of(p), expected[key], key)


@pytest.mark.parametrize("engine", ENGINES)
def test_load_state_dict_keeps_an_exact_model_exact(engine):
    """After to_engine(engine, "exact"), loading float arrays (as a checkpoint gives them) should read
    them as decimals too, not put floats into the exact parameters."""
    model = tiny_cnn10(engine=engine).to_engine(engine, "exact")
    model.load_state_dict({"0.weight": np.reshape(KERNEL, (1, 1, 2, 2)), "0.bias": np.array([B1]),
                           "4.weight": np.reshape(W4, (1, 4)), "4.bias": np.array([0.1])})
    for key, p in model.named_parameters():
        assert kinds(data_of(p)) == {Fraction}, f"{key} holds {kinds(data_of(p))}"
    assert_equal_exact(data_of(model[0].bias), fractions([Fraction(-2, 5)]), "0.bias")
    assert_equal_exact(data_of(model[4].bias), fractions([Fraction(1, 10)]), "4.bias")


@pytest.mark.parametrize("engine", ENGINES)
def test_state_dict_of_an_exact_model_loads_back(engine):
    model = tiny_cnn10(engine=engine).to_engine(engine, "exact")
    state = model.state_dict()
    model.load_state_dict(state)
    assert all(np.asarray(a).dtype.kind in "iuf" for a in state.values()), {k: a.dtype for k, a in state.items()}


def test_repr_of_exact_values():
    v = values([0.1, -2], dtype="exact")
    assert "0.1" in repr(v.flat[0]) and "-2" in repr(v.flat[1])
    assert "0.1" in repr(v) or "1/10" in repr(v) or "Fraction(1, 10)" in repr(v)
    assert "Fraction(1, 10)" in repr(Tensor([0.1], dtype="exact"))
