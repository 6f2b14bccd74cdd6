"""Record a scalar graph once, replay it over a batch.

A network's scalar graph has the same shape for every input: only its numbers differ, and the
decisions at kinks (which side of a ReLU, which entry of a max), which change a node's local
derivative but not its parents. So the graph ``Value`` records for one example can be replayed
for a whole batch: a ``Tape`` lays the recorded nodes out in levels (a node's level is one more
than its parents' highest), and a replay evaluates each level with one numpy op per kind of
node over every node of that kind and every example of the batch: a row of numbers per node,
a column per example. Backward runs the levels in reverse and adds each node's gradient times
its local derivative into its parents' rows. Kinks are decided per example by the same
comparisons ``Value`` makes (``x <= 0`` for ReLU, ``a >= b`` for max, a tie to the left).

It is still the scalar graph, one node per scalar op: ``replay.data(node)`` and
``replay.grad(node)`` give any node's numbers for every example, and ``replay.load(b)`` puts
example b's into the recorded Values, to print or draw.
"""
import operator
from functools import reduce
from itertools import groupby

import numpy as np

from .engine import Held, Value
from .value_array import as_value_array


# --- the rules: forward over arrays (one row per node, one column per example) and, beside it,
# each parent's share of the gradient g. forward returns (out, what backward needs).
def _sigmoid(x):  # Value's two branches: 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _pow(x, k):
    """x ** k as C99's pow, as Value computes it: numpy gives NaN for -inf to a power that is not a
    whole number, C99 gives inf for k > 0 and 0 for k < 0."""
    p = x ** k
    odd = np.isneginf(x) & (k != np.floor(k))
    return np.where(odd, np.where(k > 0, np.inf, 0.0), p) if np.any(odd) else p


def _power(x, e):  # x ** e, d/dx and d/de, as Value.__pow__ with a Value exponent (0 ln 0 taken as 0)
    p = _pow(x, e)
    return p, (np.where(e != 0, e * _pow(x, e - 1), 0.0), np.where((x == 0) & (e >= 0), 0.0, p * np.log(x)))


RULES = {
    "+": (lambda a, b: (a + b, None), lambda g, s: (g, g)),
    "-": (lambda a, b: (a - b, None), lambda g, s: (g, -g)),
    "*": (lambda a, b: (a * b, (a, b)), lambda g, s: (g * s[1], g * s[0])),
    "/": (lambda a, b: ((q := a / b), (b, q)), lambda g, s: (g * (1.0 / s[0]), g * (-s[1] / s[0]))),
    "**": (lambda a, b: ((r := _power(a, b))[0], r[1]), lambda g, s: (g * s[0], g * s[1])),
    "neg": (lambda a: (-a, None), lambda g, s: (-g,)),
    "exp": (lambda a: ((e := np.exp(a)), e), lambda g, s: (g * s,)),
    "log": (lambda a: (np.log(a), a), lambda g, s: (g * (1.0 / s),)),
    "relu": (lambda a: (np.where(m := a <= 0, 0.0, a), m), lambda g, s: (g * ~s,)),
    "sigmoid": (lambda a: ((y := _sigmoid(a)), y), lambda g, s: (g * (s * (1.0 - s)),)),
    "tanh": (lambda a: ((t := np.tanh(a)), t), lambda g, s: (g * (1.0 - s * s),)),
    "max": (lambda a, b: (np.where(m := (a >= b) | (a != a), a, b), m), lambda g, s: (g * s, g * ~s)),
}
HELD = "held max"  # a Held leaf: the max of its sources again for each example, no gradient to them
HELD_RULE = (lambda *a: (reduce(np.maximum, a), None), lambda g, s, k: ())
# ops with a number in their name: x ** k ("**2") and leaky ReLU ("leaky_relu", or "leaky_relu(0.2)")
PARAMETRIC = {
    "**": (lambda a, k: (_pow(a, k), a), lambda g, s, k: (g * (k * _pow(s, k - 1) if k else 0.0),)),
    "leaky_relu": (lambda a, k: (np.where(m := a <= 0, a * k, a), m), lambda g, s, k: (g * np.where(s, k, 1.0),)),
}


def _rule(op, arity):
    """(forward, backward(g, saved, number), number) for a recorded op, or a ValueError saying why it
    cannot be replayed."""
    if op == HELD:
        return (*HELD_RULE, None)
    if op in RULES and RULES[op][0].__code__.co_argcount == arity:
        forward, backward = RULES[op]
        return forward, lambda g, s, k: backward(g, s), None
    name = "**" if op.startswith("**") else "leaky_relu" if op.startswith("leaky_relu") else None
    if arity == 1 and name:
        text = op[len(name):]
        try:
            number = 0.01 if text == "" and name == "leaky_relu" else float(text.removeprefix("(").removesuffix(")"))
        except ValueError:
            number = None
        if number is not None:
            return (*PARAMETRIC[name], number)
    raise ValueError(f"Tape: cannot replay op {op!r} with {arity} parent{'s' * (arity != 1)}: only the built-in "
                     f"Value ops have rules ({', '.join(RULES)}, **k, leaky_relu); a custom op's local "
                     f"derivatives are numbers of one example, not a rule")


# --- scattering a gradient back into the parents' rows ---------------------------------------------
class _Scatter:
    """One parent slot of a level: its rows read (a slice when they are consecutive) and
    ``G[rows] += contributions`` written so that it is right where a parent appears many times in
    the level (the contributions summed per parent, in an order sorted once, here)."""

    __slots__ = ("read", "target", "order", "starts")

    def __init__(self, rows):
        n = len(rows)
        consecutive = n > 0 and rows[-1] - rows[0] == n - 1 and bool(np.all(np.diff(rows) == 1))
        self.read = self.target = slice(int(rows[0]), int(rows[0]) + n) if consecutive else rows
        self.order = self.starts = None
        if not consecutive:
            order = np.argsort(rows, kind="stable")
            ordered = rows[order]
            starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
            if len(starts) < n:  # some parent appears more than once
                self.target, self.order, self.starts = ordered[starts], order, starts

    def add(self, G, c):
        if self.order is None:
            G[self.target] += c
        else:
            G[self.target] += np.add.reduceat(c[self.order], self.starts, axis=0)


class _Level:
    """The nodes of one op in one level: rows start..stop, their parents' rows slot by slot."""

    __slots__ = ("start", "stop", "op", "forward", "backward", "number", "scatters")

    def __init__(self, start, stop, op, parents):
        self.start, self.stop, self.op = start, stop, op
        self.forward, self.backward, self.number = _rule(op, len(parents))
        self.scatters = [_Scatter(p) for p in parents]

    def run(self, D):
        args = [D[s.read] for s in self.scatters]
        if self.number is not None:
            args.append(self.number)
        out, saved = self.forward(*args)
        D[self.start:self.stop] = out
        return saved

    def back(self, G, saved):
        g = G[self.start:self.stop]
        for scatter, c in zip(self.scatters, self.backward(g, saved, self.number)):
            scatter.add(G, c)


def _leaves_of(inputs):
    """The input leaves, flat, in order, checked: leaf Values, each once."""
    arrays = []
    for i, x in enumerate(inputs):
        va = as_value_array(x)
        if va is None:
            raise TypeError(f"Tape: input {i} must be a Value or an array of Values, got {type(x).__name__}")
        arrays.append(va)
    leaves = [v for va in arrays for v in va.flat]
    for v in leaves:
        if v.parents:
            raise ValueError(f"Tape: an input must be leaf Values (made by values(...)), but one was made by "
                             f"op {v.op!r}")
    if len(set(map(id, leaves))) != len(leaves):
        raise ValueError("Tape: a Value appears twice among the inputs")
    return arrays, leaves


def _parents(node):
    """The nodes a node is computed from: a Held leaf's sources (it is worked out again per example)."""
    return node.sources if type(node) is Held else node.parents


def _order_for_slices(groups):
    """Order the nodes of each group (one op in one level; groups listed by level) as their
    consumers first read them, top level first, so that a level's parents in one slot are mostly
    consecutive rows (a slice: a view, not a copy): the running sums of a dot product follow
    one another, and the products each level of sums adds are side by side."""
    rank = {}
    for group in reversed(groups):  # every consumer of a group sits in a higher level: ranked already
        group.sort(key=lambda n: rank.get(n, -1))
        for j in range(max(len(_parents(n)) for n in group)):
            for n in group:
                parents = _parents(n)
                if j < len(parents) and parents[j] not in rank:
                    rank[parents[j]] = len(rank)


def _topo_order(root):
    """Node.topo_order, with a Held leaf after its sources (they are its parents here)."""
    order, seen, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if node is None:
            order.append(stack.pop())
        elif node not in seen:
            seen.add(node)
            stack += (node, None, *_parents(node))
    return order


def _op(node):
    return HELD if type(node) is Held else node.op


class Tape:
    """The graph recorded by ``Value`` for one example, laid out to be replayed over a batch.

    ``root``: the Value to backpropagate from (the example's loss); ``inputs``: the arrays of leaf
    Values (made by ``values``) that take each example's numbers, e.g. ``(x, target)``. Every other
    leaf (parameters, constants) is read from its Value at each replay, so an optimiser's step shows
    in the next one, and receives the batch's gradient in ``.grad`` from ``Replay.backward``.

    The recording is checked at once: the rules, replayed on the recorded example, must give every
    node's number and local derivative as recorded. The graph must not change its shape with the
    input (any nn.Sequential of the built-in layers and losses keeps it; Python ``if``s on values
    would not), and exact (Fraction) data cannot be replayed.
    """

    def __init__(self, root, inputs):
        if not isinstance(root, Value):
            raise TypeError(f"Tape: root must be a Value (the loss of one example), got {type(root).__name__}")
        self.root = root
        self.inputs, leaves = _leaves_of(inputs)
        order = _topo_order(root)
        position = {node: i for i, node in enumerate(order)}
        fed = set(leaves)
        held = [node for node in order if not _parents(node) and node not in fed]
        level = [0] * len(order)
        for i, node in enumerate(order):
            parents = _parents(node)
            if parents:
                level[i] = 1 + max([level[position[p]] for p in parents])
        key = lambda i: (level[i], _op(order[i]), len(_parents(order[i])))  # noqa: E731
        groups = [[order[i] for i in group] for _, group in
                  groupby(sorted((i for i, node in enumerate(order) if _parents(node)), key=key), key=key)]
        _order_for_slices(groups)
        self.nodes = leaves + held + [node for group in groups for node in group]  # the rows, in this order
        if any(type(node.data) is not float for node in self.nodes):
            raise ValueError("Tape: exact (Fraction) data cannot be replayed; record the graph in float64")
        self.row = row = {node: r for r, node in enumerate(self.nodes)}
        self.held, self.n_inputs = held, len(leaves)
        self.depth = max(level, default=0)  # the longest path from a leaf to the root
        self.levels, start = [], len(leaves) + len(held)
        for nodes in groups:
            parents = [np.array([row[_parents(n)[j]] for n in nodes], dtype=np.intp)
                       for j in range(len(_parents(nodes[0])))]
            self.levels.append(_Level(start, start + len(nodes), _op(nodes[0]), parents))
            start += len(nodes)
        self._check()

    def __len__(self):
        """The number of nodes (rows)."""
        return len(self.nodes)

    def __call__(self, *batches):
        """Replay the forward pass over a batch: ``batches[i]`` has shape (B, *inputs[i].shape)."""
        return Replay(self, batches)

    def _check(self):
        """Replay the recorded example and compare each node's number and local derivatives."""
        replay = self(*(va.numbers()[None] for va in self.inputs))
        recorded = np.array([node.data for node in self.nodes])
        got = replay.D[:, 0]
        bad = ~_same(got, recorded)
        if bad.any():
            node = self.nodes[int(np.flatnonzero(bad)[0])]
            raise ValueError(f"Tape: replaying op {node.op!r} gives {float(got[np.flatnonzero(bad)[0]])!r}, "
                             f"but the recorded Value holds {node.data!r}: not a built-in op's node")
        with np.errstate(all="ignore"):
            for lvl, saved in zip(self.levels, replay.saved):
                ones = np.ones((lvl.stop - lvl.start, 1))
                for j, c in enumerate(lvl.backward(ones, saved, lvl.number)):
                    want = np.array([node._local[j] for node in self.nodes[lvl.start:lvl.stop]])
                    c = np.broadcast_to(c, ones.shape)[:, 0]
                    wrong = ~_same(c, want)
                    if wrong.any():
                        i = int(np.flatnonzero(wrong)[0])
                        raise ValueError(f"Tape: op {lvl.op!r}'s rule gives the local derivative {float(c[i])!r} "
                                         f"for parent {j}, but the recorded Value holds {float(want[i])!r}: not a "
                                         f"built-in op's node")

    def draw(self, **options):
        """The recorded graph as a graphviz.Digraph (``Value.draw``); ``replay.load(b)`` first shows example b."""
        return self.root.draw(**options)


def _same(got, recorded):
    """Equal, or within 1e-12 of each other relative to max(1, |recorded|): numpy's exp, log and tanh
    may differ from Python's math by an ulp, and 1 - tanh(x)^2 near 0 keeps that ulp, not its size."""
    with np.errstate(invalid="ignore"):
        return (got == recorded) | (np.isnan(got) & np.isnan(recorded)) | (
            np.abs(got - recorded) <= 1e-12 * np.maximum(1.0, np.abs(recorded)))


class Replay:
    """A Tape replayed over a batch of B examples: every node's number per example (forward, done
    on creation) and, after ``backward``, its gradient per example."""

    def __init__(self, tape, batches):
        if len(batches) != len(tape.inputs):
            raise TypeError(f"Tape: replay takes {len(tape.inputs)} batch{'es' * (len(tape.inputs) != 1)} "
                            f"(one per input), got {len(batches)}")
        columns = []
        for i, (batch, va) in enumerate(zip(batches, tape.inputs)):
            b = np.asarray(batch, dtype=np.float64)
            if b.ndim != va.ndim + 1 or b.shape[1:] != va.shape:
                raise ValueError(f"Tape: batch {i} must have shape (B, {', '.join(map(str, va.shape))}) for an "
                                 f"input of shape {va.shape}, got {b.shape}")
            columns.append(b.reshape(len(b), -1))
        sizes = {len(c) for c in columns}
        if len(sizes) > 1:
            raise ValueError(f"Tape: the batches hold different numbers of examples: {[len(c) for c in columns]}")
        self.tape = tape
        self.batch_size = n = sizes.pop() if sizes else 1
        self.D = D = np.empty((len(tape.nodes), n))
        if columns:
            D[:tape.n_inputs] = np.concatenate(columns, axis=1).T
        held = slice(tape.n_inputs, tape.n_inputs + len(tape.held))
        D[held] = np.fromiter(map(_data, tape.held), np.float64, len(tape.held))[:, None]
        with np.errstate(all="ignore"):
            self.saved = [lvl.run(D) for lvl in tape.levels]
        self.G = None

    def _rows(self, nodes):
        va = nodes if isinstance(nodes, Value) else as_value_array(nodes)
        if va is None:
            raise TypeError(f"Replay: expected a Value or an array of Values of the tape, got {type(nodes).__name__}")
        try:
            if isinstance(va, Value):
                return self.tape.row[va], ()
            return np.array([self.tape.row[v] for v in va.flat], dtype=np.intp).reshape(va.shape), va.shape
        except KeyError:
            raise ValueError("Replay: a Value that is not in the tape's graph") from None

    def _pick(self, table, nodes):
        rows, shape = self._rows(nodes)
        return np.moveaxis(table[rows], -1, 0) if shape else table[rows].copy()

    def data(self, nodes):
        """The numbers of a Value (shape (B,)) or an array of Values (shape (B, *array's shape))."""
        return self._pick(self.D, nodes)

    def grad(self, nodes):
        """d root / d node per example, as ``data`` (zeros before ``backward``)."""
        return self._pick(self.G, nodes) if self.G is not None else np.zeros_like(self.data(nodes))

    def backward(self, grad=None):
        """Backpropagate from the root of every example: ``grad`` (B,) is d loss / d root per example
        (ones by default: the loss is the batch's sum). Adds the batch's gradient (summed over the
        examples) to ``.grad`` of each leaf that is not an input, as ``Value.backward`` does."""
        seed = np.ones(self.batch_size) if grad is None else np.asarray(grad, dtype=np.float64)
        if seed.shape != (self.batch_size,):
            raise ValueError(f"Replay.backward: grad must have shape ({self.batch_size},), one number per example, "
                             f"got {seed.shape}")
        tape = self.tape
        self.G = G = np.zeros(self.D.shape)
        G[tape.row[tape.root]] = seed
        with np.errstate(all="ignore"):
            for lvl, saved in zip(reversed(tape.levels), reversed(self.saved)):
                lvl.back(G, saved)
        held = G[tape.n_inputs:tape.n_inputs + len(tape.held)].sum(axis=1)
        for node, g in zip(tape.held, held.tolist()):
            node.grad += g

    def load(self, b):
        """Put example ``b``'s numbers (and gradients, after backward) into the recorded Values, to print
        or draw that example's graph; returns the root. The parameters' ``.grad`` become example b's
        too: read or step the batch's gradient first."""
        if not -self.batch_size <= b < self.batch_size:
            raise IndexError(f"Replay.load: example {b} is out of range for a batch of {self.batch_size}")
        for node, x in zip(self.tape.nodes, self.D[:, b].tolist()):
            node.data = x
        if self.G is not None:
            for node, g in zip(self.tape.nodes, self.G[:, b].tolist()):
                node.grad = g
        return self.tape.root


_data = operator.attrgetter("data")
