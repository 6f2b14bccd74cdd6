"""The graph core shared by both engines: one node shape, one topological sort, one backward driver.

A node holds ``data``, ``grad``, the ``op`` that made it, its ``parents`` and a local
backward rule (``_push``), which adds the gradient of one backward pass (``_pending``,
complete when the driver reaches the node) to ``grad`` and sends each parent its share.
``Value`` (scalars) and ``Tensor`` (numpy arrays) are the two kinds.
"""
from contextlib import contextmanager

_layer = [None]  # the label of the layer whose nodes are being built (outermost wins)
_grad_enabled = [True]


@contextmanager
def no_grad():
    """Inside this block Tensor operations record no graph (as ``torch.no_grad``)."""
    before = _grad_enabled[0]
    _grad_enabled[0] = False
    try:
        yield
    finally:
        _grad_enabled[0] = before


def grad_enabled():
    """False inside a ``no_grad()`` block."""
    return _grad_enabled[0]


class layer:
    """``with layer(label):`` labels every node made inside the block with ``label`` (for graph
    pictures). Nested blocks keep the outer label: a conv made inside a module's block is the
    module's. (A class, not a generator: entered once per layer call, it must cost little.)
    """

    __slots__ = ("label", "outer")

    def __init__(self, label):
        self.label = label

    def __enter__(self):
        self.outer = _layer[0]
        if self.outer is None:
            _layer[0] = self.label

    def __exit__(self, *exception):
        _layer[0] = self.outer


class Node:
    """A node of the graph. Between backward passes ``_pending`` is None; during one it holds the
    gradient of the pass's root with respect to this node, summed over the paths seen so far.

    The parents live in two slots, not in a tuple: ``_a`` and ``_b`` (None where there is none),
    or, when ``_a`` is None, all of them as a tuple in ``_b``. (A tuple that holds nodes is one more
    object for the garbage collector to track; in scalar graphs that cost more than half of the
    forward pass.) ``parents`` gives them as a tuple.
    """

    __slots__ = ("data", "grad", "op", "name", "layer", "_pending", "_a", "_b")

    @property
    def parents(self):
        """The nodes this one was computed from, as a tuple (``()`` for a leaf)."""
        a, b = self._a, self._b
        if a is None:
            return () if b is None else b
        return (a,) if b is None else (a, b)

    @property
    def is_leaf(self):
        """True for a node no op made (a parameter, an input, a constant, or a Tensor whose inputs
        need no gradient), as ``torch.Tensor.is_leaf``: only leaves keep ``.grad`` in PyTorch."""
        return self._a is None and not self._b

    def topo_order(self):
        """Every node reachable from this one, each once, parents before children."""
        order = self._reached()
        for node in order:
            node._pending = None
        return order

    def _reached(self):
        """topo_order, leaving each node's ``_pending`` at 0.0, the mark that it is listed (and the
        start of its gradient's sum in a backward pass).

        Depth-first with an explicit stack (no recursion, so any depth works): a node seen for the
        first time is marked False and goes back on the stack with its parents above it; when it
        comes off again, its parents are all listed, and so it is.
        """
        order, stack = [], [self]
        push, pop, append = stack.append, stack.pop, order.append
        try:
            while stack:
                node = pop()
                mark = node._pending
                if mark is None:
                    node._pending = False
                    push(node)
                    a = node._a  # node.parents, from the slots
                    if a is not None:
                        push(a)
                        b = node._b
                        if b is not None:
                            push(b)
                    elif node._b is not None:
                        stack += node._b
                elif mark is False:
                    node._pending = 0.0
                    append(node)
        except BaseException:  # unmark what was marked
            for node in order + stack:
                node._pending = None
            raise
        return order

    def _backward(self, seed):
        """Add d self / d node to ``node.grad`` for every node reachable from self (``seed`` = d self / d self)."""
        order = self._reached()
        self._pending = seed
        try:
            for node in reversed(order):  # children first: a node's gradient is complete when it is reached
                node._push()
        except BaseException:  # leave no half-finished pass behind
            for node in order:
                node._pending = None
            raise

    def zero_grad(self):
        """Reset the gradient of every node reachable from this one."""
        for node in self.topo_order():
            node._reset_grad()

    def draw(self, **options):
        """The graph that ends here as a ``graphviz.Digraph`` (shown inline in Jupyter); options as
        ``tinygrad_cnn.viz.to_dot``, e.g. ``loss.draw(params=model)``."""
        from .viz import to_dot  # viz needs the graphviz package; the engines do not
        return to_dot(self, **options)
