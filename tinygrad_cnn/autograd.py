"""The graph core shared by both engines: one node shape, one topological sort, one backward driver.

A node holds ``data``, ``grad``, the ``op`` that made it, its ``parents`` and a local
backward rule (``_push``), which sends the gradient of one backward pass (``_pending``)
to the parents. ``Value`` (scalars) and ``Tensor`` (numpy arrays) are the two kinds.
"""
from contextlib import contextmanager

_layer = [None]  # the label of the layer whose nodes are being built (outermost wins)


@contextmanager
def layer(label):
    """Label every node made inside the block with ``label`` (for graph pictures).

    Nested blocks keep the outer label: a conv made inside a module's block is the module's.
    """
    outer = _layer[0]
    if outer is None:
        _layer[0] = label
    try:
        yield
    finally:
        _layer[0] = outer


class Node:
    __slots__ = ("data", "grad", "op", "parents", "name", "layer", "_pending", "__weakref__")

    def topo_order(self):
        """Every node reachable from this one, parents before children (iterative DFS)."""
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif node not in seen:
                seen.add(node)
                stack.append((node, True))
                stack.extend((p, False) for p in node.parents if p not in seen)
        return order

    def _backward(self, seed):
        """Add d self / d node to ``node.grad`` for every node reachable from self."""
        order = self.topo_order()
        for node in order:
            node._pending = None
        self._pending = seed
        for node in reversed(order):
            if node._pending is not None:
                if node.parents:
                    node._push()
                node._accumulate()
                node._pending = None

    def zero_grad(self):
        """Reset the gradient of every node reachable from this one."""
        for node in self.topo_order():
            node._reset_grad()
