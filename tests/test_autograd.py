"""The graph core both engines share: topological order, the backward driver, zero_grad, layer labels."""
import gc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinygrad_cnn import Value
from tinygrad_cnn.autograd import Node, layer


# --- topological order ---------------------------------------------------------------------------
@st.composite
def dags(draw, max_ops=40):
    """A random graph as an edge list: leaves 0..L-1, then op i (node L+i) of parents (a, b) taken from
    the nodes before it; b is None for a one-parent op. The last node is the root."""
    n_leaves = draw(st.integers(1, 4))
    ops = []
    for i in range(draw(st.integers(0, max_ops))):
        before = st.integers(0, n_leaves + i - 1)
        ops.append((draw(before), draw(st.none() | before)))
    return n_leaves, ops


def build(n_leaves, ops):
    """Values for the graph: a + b for two parents (a + a when both are the same node), -a for one."""
    nodes = [Value(float(i + 1), name=f"x{i}") for i in range(n_leaves)]
    for a, b in ops:
        nodes.append(nodes[a] + nodes[b] if b is not None else -nodes[a])
    return nodes


def reference_gradients(n_leaves, ops):
    """d root / d node by summing over paths, from the edge list alone: +1 per edge of a sum, -1 of a negation."""
    grads = [0.0] * (n_leaves + len(ops))
    grads[-1] = 1.0
    for i in reversed(range(len(ops))):
        a, b = ops[i]
        g = grads[n_leaves + i]
        if b is None:
            grads[a] -= g
        else:
            grads[a] += g
            grads[b] += g
    return grads


def reachable(n_leaves, ops):
    seen, stack = set(), [n_leaves + len(ops) - 1]
    while stack:
        i = stack.pop()
        if i not in seen:
            seen.add(i)
            if i >= n_leaves:
                stack.extend(p for p in ops[i - n_leaves] if p is not None)
    return seen


@given(dags())
def test_topo_order_lists_each_reachable_node_once_parents_first_root_last(graph):
    nodes = build(*graph)
    root = nodes[-1]
    order = root.topo_order()
    position = {id(node): k for k, node in enumerate(order)}
    assert len(position) == len(order)  # each node once
    assert order[-1] is root
    assert {id(nodes[i]) for i in reachable(*graph)} == set(position)
    for node in order:
        assert all(position[id(p)] < position[id(node)] for p in node.parents)


@given(dags())
def test_backward_gives_every_node_the_sum_over_its_paths(graph):
    nodes = build(*graph)
    nodes[-1].backward()
    live = reachable(*graph)
    for i, (node, expected) in enumerate(zip(nodes, reference_gradients(*graph))):
        assert node.grad == (expected if i in live else 0.0)


def test_diamond_graph_visits_the_shared_input_once_and_sums_both_paths():
    a = Value(3.0, name="a")
    b, c = a * 2, a + 1
    d = b * c  # d = 2a (a + 1): dd/da = 4a + 2
    order = d.topo_order()
    assert [node for node in order if node is a] == [a]
    assert order.index(a) < order.index(b) < order.index(d) and order.index(c) < order.index(d)
    d.backward()
    assert a.grad == 4 * 3.0 + 2 and (b.grad, c.grad) == (c.data, b.data)


def test_topo_order_of_a_leaf_and_of_a_deep_chain():
    leaf = Value(1.0)
    assert leaf.topo_order() == [leaf]
    chain = [leaf]
    for _ in range(20_000):  # twenty times Python's default recursion limit
        chain.append(chain[-1].tanh())
    assert chain[-1].topo_order() == chain


def test_values_carry_no_instance_dict():
    assert not hasattr(Value(1.0), "__dict__")  # __slots__ all the way down: small nodes


def test_a_value_node_holds_its_parents_itself_not_in_a_tuple():
    a, b = Value(2.0), Value(3.0)
    for node in (a * b, a.relu(), a.max(b), a):  # one object per node for the garbage collector to track
        assert not any(isinstance(r, tuple) for r in gc.get_referents(node))
    assert (a * b).parents == (a, b) and a.relu().parents == (a,) and a.parents == ()


# --- the backward driver's contract with an engine (_push, _reset_grad) -------------------------
class Probe(Node):
    """A node kind that records the driver's calls. Its _push sends the pending gradient only to the
    parents in ``targets`` (as the Tensor engine skips parents that need no gradient)."""

    __slots__ = ("calls", "targets", "fail")

    def __init__(self, parents=(), targets=None, fail=False):
        self.data, self.grad, self.op, self._a, self._b = 0.0, 0.0, "probe" if parents else "", None, tuple(parents)
        self.name, self.layer, self._pending = None, None, None
        self.calls, self.targets, self.fail = [], self.parents if targets is None else targets, fail

    def _push(self):
        self.calls.append(("push", self._pending))
        if self.fail:
            raise RuntimeError("push failed")
        g, self._pending = self._pending, None
        self.grad += g
        for p in self.targets:
            p._pending += g

    def _reset_grad(self):
        self.calls.append("reset")
        self.grad = 0.0


def test_driver_seeds_the_root_and_pushes_each_node_once_children_first_from_a_zero_mark():
    a, skipped = Probe(), Probe()
    mid = Probe([a, a])
    root = Probe([mid, skipped], targets=(mid,))
    root._backward(5.0)
    assert root.calls == [("push", 5.0)] and mid.calls == [("push", 5.0)]
    assert a.calls == [("push", 10.0)] and skipped.calls == [("push", 0.0)]  # the mark: nothing reached it
    assert (root.grad, mid.grad, a.grad, skipped.grad) == (5.0, 5.0, 10.0, 0.0)
    assert all(node._pending is None for node in (root, mid, a, skipped))


def test_topo_order_leaves_no_mark_behind():
    a = Probe()
    root = Probe([Probe([a]), a])
    assert len(root.topo_order()) == 3
    assert all(node._pending is None for node in root.topo_order() + [a])


def test_a_failed_backward_leaves_no_pending_gradient_behind():
    a = Probe()
    mid = Probe([a], fail=True)
    root = Probe([mid, a])
    with pytest.raises(RuntimeError, match="push failed"):
        root._backward(1.0)
    assert all(node._pending is None for node in (root, mid, a))
    mid.fail = False
    root.grad = mid.grad = a.grad = 0.0
    root._backward(1.0)
    assert (root.grad, mid.grad, a.grad) == (1.0, 1.0, 2.0)  # nothing left over from the failed pass


def test_zero_grad_resets_every_reachable_node_once():
    a = Probe()
    left, right = Probe([a]), Probe([a])
    root = Probe([left, right])
    root._backward(1.0)
    root.zero_grad()
    assert all(node.calls.count("reset") == 1 and node.grad == 0.0 for node in (a, left, right, root))


# --- layer labels ------------------------------------------------------------------------------------------
def test_layer_labels_nodes_made_inside_and_the_outer_label_wins():
    a = Value(1.0)
    with layer("conv2d"):
        b = a * 2
        with layer("inner"):
            c = b.relu()
    d = c + 1
    assert (a.layer, b.layer, c.layer, d.layer) == (None, "conv2d", "conv2d", None)
    assert b.parents[1].layer == "conv2d"  # the constant 2 was made inside too


def test_layer_label_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with layer("loss"):
            raise ZeroDivisionError
    assert Value(1.0).layer is None
