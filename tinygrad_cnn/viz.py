"""Pictures of a computation graph (Value or Tensor): every value, every operation, grouped by layer.

``to_dot(root)`` returns a ``graphviz.Digraph`` (DOT text: no Graphviz program needed, and it
shows inline in Jupyter); ``render(root, path)`` runs Graphviz's ``dot`` to write SVG, PNG or PDF.

A value is a box: its name (if any), its data and, in red, its gradient (4 significant
digits; a Tensor box shows its shape, and its numbers when there are at most 25). Each
operation is a small oval of its own. Parameters are orange rounded boxes whose arrows share
one colour per parameter, so a shared conv weight's fan-out can be followed; inputs are blue;
the root (the loss) has a double border. Nodes made inside a layer (``autograd.layer``: the
modules and the functional ops label them) are grouped into one labelled cluster per layer,
and inside it the nodes that compute one result only (the products and sums of one conv
output) into a small box of their own. Nodes are numbered in topological order, so the same
graph always gives the same DOT text.
"""
import html
import os
import re
import warnings

import graphviz
import numpy as np

from .files import FORMATS, DotNotFoundError, atomic_write, format_from_suffix, require_dot  # noqa: F401 (re-exported)

MAX_ELEMENTS = 25  # a Tensor box lists its numbers up to this many elements
FONT = "Helvetica"
COLORS = {"param": "#fdd49e", "input": "#cfe2f3", "value": "#ffffff", "root": "#f4cccc", "constant": "#f0f0f0",
          "op": "#eeeeee", "cluster": "#f7f7f7", "unit": "#cccccc", "grad": "#b03a2e"}
# one arrow colour per parameter (Paul Tol's colour-blind-safe palettes)
PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#332288", "#117733",
           "#882255", "#999933", "#44aa99", "#cc6677")
OP_SYMBOLS = {"*": "×", "-": "−", "/": "÷", "matmul": "@"}
INFIX = ("+", "-", "*", "/", "**")


class GraphTooLargeWarning(UserWarning):
    """More nodes than ``max_nodes`` to draw: a collapsed (or cut) view is drawn instead."""


def _is_tensor(node):
    return isinstance(node.data, np.ndarray)


def _fmt(x):
    """4 significant digits; -0 prints as 0."""
    return f"{float(x) + 0.0:.4g}"


def _natural(name):
    """Sort key reading the numbers in a name as numbers: X[2,10] after X[2,9]."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _describe(x):
    if isinstance(x, np.ndarray):
        return f"a numpy array of {x.dtype} with shape {x.shape}"
    return type(x).__name__


def _base(name):
    return name.split("[")[0]


# --- reading the graph ----------------------------------------------------------------------------
def _param_nodes(params, order):
    """{node: label} for ``params``: a Module, a mapping name -> parameter, or an iterable of
    parameters (Tensors, Values, object arrays of Value) or of names ("F" marks F and F[i,j])."""
    if hasattr(params, "named_parameters"):
        params = dict(params.named_parameters())
    if isinstance(params, (str, np.ndarray)) or hasattr(params, "topo_order"):
        params = [params]
    try:
        items = list(params.items()) if isinstance(params, dict) else [(None, p) for p in params]
    except TypeError:
        raise TypeError(f"to_dot: params must be a Module, a dict or a list, got {type(params).__name__}") from None
    names = {p for _, p in items if isinstance(p, str)}
    found = {n: n.name for n in order if not n.parents and n.name and (n.name in names or _base(n.name) in names)}
    for key, p in items:
        if isinstance(p, str):
            continue
        for node in (p.flat if isinstance(p, np.ndarray) else (p,)):
            if not hasattr(node, "topo_order"):
                raise TypeError(f"to_dot: params must be Tensors, Values or names, got {type(node).__name__}")
            found[node] = node.name or key
    return found


class _Graph:
    """The graph that ends at ``root``, in topological order: each node's consumers, which leaves
    are parameters, and which constants are folded into their operation."""

    def __init__(self, root, params, fold_constants):
        self.root = root
        self.order = root.topo_order()
        self.index = {node: i for i, node in enumerate(self.order)}
        self.consumers = {node: [] for node in self.order}
        for node in self.order:
            for parent in node.parents:
                self.consumers[parent].append(node)
        if params is None:  # as in PyTorch: a Tensor leaf that requires grad is a parameter
            found = {n: n.name for n in self.order if not n.parents and getattr(n, "requires_grad", False)}
        else:
            found = _param_nodes(params, self.order)
        self.label = {n: found[n] for n in self.order if n in found}
        self.colour = {p: PALETTE[i % len(PALETTE)] for i, p in enumerate(self.label)}  # of its box and arrows
        self.folded = {n for n in self.order if fold_constants and self.kind(n) == "constant" and np.size(n.data) == 1}

    def kind(self, node):
        """root, param, value (computed), input (a leaf made outside layers, or named), or
        constant (an unnamed leaf a layer made: the 1 in 1 - p, a clamp bound, a target)."""
        if node is self.root:
            return "root"
        if node in self.label:
            return "param"
        if node.parents:
            return "value"
        if node.name is None and node.layer is not None and not getattr(node, "requires_grad", False):
            return "constant"
        return "input"

    def name(self, node):
        return self.label.get(node) or node.name

    def sort_key(self, node):
        name = self.name(node)
        return (0, _natural(name)) if name else (1, self.index[node])


# --- what is drawn: everything, collapsed layers, or a cut near the root ------------------------
class _View:
    """The drawn values and, for each, the drawn values it is computed from (through hidden ones)."""

    def __init__(self, graph, collapsed):
        self.graph = graph
        self.hidden = {n for n in graph.order if n.parents and n.layer in collapsed and n is not graph.root
                       and all(c.layer == n.layer for c in graph.consumers[n])}
        self.collapsed = {n for n in graph.order if n.parents and n.layer in collapsed} - self.hidden
        self.drawn = [n for n in graph.order if n not in self.hidden and n not in graph.folded]
        self.inputs = None   # {drawn node: its drawn inputs}, from connect() or keep_near_root()
        self.cut = []        # drawn nodes with inputs left out by keep_near_root
        self.left_out = 0

    def count(self):
        """Drawn nodes: one box per value, one oval per operation."""
        return len(self.drawn) + sum(1 for n in self.drawn if n.parents)

    def sources(self, node):
        """The drawn nodes that ``node`` is computed from, looking through hidden ones."""
        found, seen, stack = {}, set(), list(reversed(node.parents))
        while stack:
            p = stack.pop()
            if p in seen or p in self.graph.folded:
                continue
            seen.add(p)
            if p in self.hidden:
                stack.extend(reversed(p.parents))
            else:
                found[p] = None
        return tuple(found)

    def connect(self):
        if self.inputs is None:
            self.inputs = {n: self.sources(n) for n in self.drawn}

    def keep_near_root(self, max_nodes):
        """Keep only the values nearest the root (breadth first), at most max_nodes drawn nodes."""
        kept, frontier, total = {}, [self.graph.root], 0
        while frontier and total < max_nodes:
            following = []
            for node in frontier:
                if node not in kept and total < max_nodes:
                    kept[node] = self.sources(node)
                    total += 2 if node.parents else 1
                    following.extend(kept[node])
            frontier = following
        self.left_out = len(self.drawn) - len(kept)
        self.drawn = sorted(kept, key=self.graph.index.__getitem__)
        self.cut = [n for n in self.drawn if any(s not in kept for s in kept[n])]
        self.inputs = {n: tuple(s for s in kept[n] if s in kept) for n in self.drawn}


# --- labels ---------------------------------------------------------------------------------------
def _grid(array):
    """A small array as an HTML table, one row per line along the last axis."""
    rows = array.reshape(-1, array.shape[-1]) if array.ndim else array.reshape(1, 1)
    cells = "".join("<TR>" + "".join(f'<TD ALIGN="RIGHT">&#160;&#160;{_fmt(x)}</TD>' for x in row) + "</TR>"
                    for row in rows)
    return f'<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">{cells}</TABLE>'


def _numbers(node, what):
    """The cells showing a node's data or (in red) its grad."""
    x = getattr(node, what)
    if x is None:  # a Tensor that needs no gradient, or that backward has not reached
        cells = ["grad —" if getattr(node, "requires_grad", False) else "no grad"]
    elif not _is_tensor(node):
        cells = [f"{what} {_fmt(x)}"]
    elif np.size(x) == 0:
        cells = [f"{what} (empty)"]
    elif np.size(x) > MAX_ELEMENTS:
        cells = [f"{what} ∈ [{_fmt(np.min(x))}, {_fmt(np.max(x))}]"]
    else:
        cells = [what, _grid(np.squeeze(np.asarray(x, dtype=np.float64)))]
    return [f'<FONT COLOR="{COLORS["grad"]}">{c}</FONT>' for c in cells] if what == "grad" else cells


def _value_label(graph, node, show_data, show_grad):
    name = graph.name(node)
    if node is graph.root and not name:
        name = "loss" if node.layer == "loss" else "root"
    cells = [f"<B>{html.escape(name)}</B>"] if name else []
    if _is_tensor(node):
        cells.append(str(tuple(node.data.shape)))
    cells += (_numbers(node, "data") if show_data else []) + (_numbers(node, "grad") if show_grad else [])
    row = "<VR/>".join(f"<TD>{c}</TD>" for c in cells or [" "])
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2"><TR>{row}</TR></TABLE>>'


def _op_label(graph, node):
    """The op's symbol; folded constants are written in, with · for each drawn input: "1 − ·"."""
    sym = OP_SYMBOLS.get(node.op, node.op)
    args = [_fmt(np.ravel(p.data)[0]) if p in graph.folded else "·" for p in node.parents]
    if all(a == "·" for a in args):
        return sym
    if node.op in INFIX and len(args) == 2:
        return f"{args[0]} {sym} {args[1]}"
    return f"{sym}({', '.join(args)})"


def _node_style(kind):
    style = {"shape": "box", "style": "filled", "fillcolor": COLORS[kind], "margin": "0.04,0.02"}
    if kind == "param":
        style.update(style="rounded,filled", penwidth="2.5")
    elif kind == "root":
        style.update(peripheries="2", penwidth="1.5")
    elif kind == "constant":
        style.update(style="filled,dashed", color="#888888")
    return style


OP_STYLE = {"shape": "ellipse", "style": "filled", "fillcolor": COLORS["op"], "fontsize": "10", "width": "0",
            "height": "0", "margin": "0.03,0.01"}


def _legend(graph, view):
    """A key to the shapes and colours of the kinds of node drawn, samples named as in the graph."""
    first = {}
    for node in sorted(view.drawn, key=graph.sort_key):
        first.setdefault(graph.kind(node), node)
    root_word = "the loss" if graph.root.layer == "loss" else "the root"
    text = {"param": "parameter; its arrows share its colour", "input": "input",
            "constant": "constant (no gradient)", "value": "value computed in the forward pass",
            "root": f"{root_word}: backward starts here with grad 1"}
    red = f'<FONT COLOR="{COLORS["grad"]}">grad</FONT>'
    rows = []
    for kind in ("param", "input", "constant", "value", "root"):
        if kind in first:
            sample = html.escape(graph.name(first[kind]) or ("loss" if kind == "root" else "data"))
            border = {"param": 'BORDER="2" STYLE="rounded"', "root": 'BORDER="2"'}.get(kind, 'BORDER="1"')
            rows.append(f'<TD BGCOLOR="{COLORS[kind]}" {border}>{sample}</TD><TD ALIGN="LEFT">{text[kind]}</TD>')
    if any(n.parents for n in view.drawn):
        rows.append(f'<TD BGCOLOR="{COLORS["op"]}" BORDER="1" STYLE="rounded">× + max</TD><TD ALIGN="LEFT">operation</TD>')
    rows.append(f'<TD BORDER="1">data | {red}</TD><TD ALIGN="LEFT">the forward value | d {root_word[4:]} / d value</TD>')
    body = "".join(f"<TR>{r}</TR>" for r in rows)
    return (f'<<TABLE BORDER="0" CELLSPACING="3" CELLPADDING="3"><TR><TD COLSPAN="2"><B>legend</B></TD></TR>{body}'
            f'<TR><TD COLSPAN="2">numbers to 4 significant digits</TD></TR></TABLE>>')


# --- the picture ------------------------------------------------------------------------------------
def to_dot(root, params=None, *, show_data=True, show_grad=True, collapse=False, fold_constants=True,
           legend=True, title=None, max_nodes=1000):
    """The computation graph that ends at ``root`` (a Value or a Tensor) as a ``graphviz.Digraph``.

    params: the leaves to draw as parameters: a Module (its parameters), a mapping name ->
        parameter, or an iterable of parameters (Tensors, Values, object arrays of Value) or of
        names ("F" marks the leaves F and F[i,j]). Default: the Tensor leaves that require grad,
        as in PyTorch; Values have no such flag, so pass ``params=model`` (or names) for them.
    show_data, show_grad: write the forward numbers / the gradients in the boxes.
    collapse: False; True (every layer); or layer labels: a collapsed layer draws only the
        values it hands on, each computed by one oval named after the layer.
    fold_constants: write the numbers a layer wrapped as nodes (the 1 in 1 - p, a clamp bound)
        into their operation's oval, "1 − ·", instead of drawing a box for each.
    legend: draw a key to the shapes and colours. title: a heading for the picture.
    max_nodes: to draw more nodes than this (a box per value, an oval per operation), warn
        (GraphTooLargeWarning) and collapse every layer; if still too many, draw only the
        values nearest the root. None: no limit (dot may then take minutes).
    """
    if isinstance(root, np.ndarray) and root.dtype == object and root.size == 1:
        root = root.flat[0]  # a (1, 1) output of Values
    if not hasattr(root, "topo_order"):
        raise TypeError(f"to_dot: root must be a Value or a Tensor, got {_describe(root)}; "
                        "for an array of Values draw a scalar made from it (its sum, or the loss)")
    graph = _Graph(root, params, fold_constants)
    layers = {n.layer for n in graph.order} - {None}
    chosen = {collapse} if isinstance(collapse, str) else layers if collapse is True else set(collapse or ())
    if chosen - layers:
        raise ValueError(f"to_dot: collapse names no layer of this graph: {', '.join(sorted(chosen - layers))} "
                         f"(its layers: {', '.join(sorted(layers)) or 'none'})")
    view = _View(graph, chosen)
    note = None
    if max_nodes is not None and view.count() > max_nodes:
        note = (f"{len(graph.order)} graph nodes ({view.count()} boxes and ovals) are more than "
                f"max_nodes={max_nodes} to draw: every layer is collapsed")
        view = _View(graph, layers)
        if view.count() > max_nodes:
            view.keep_near_root(max_nodes)
            note += f" and only the {len(view.drawn)} values nearest the root are drawn"
        note += "; max_nodes=None draws them all"
        warnings.warn(f"to_dot: {note}", GraphTooLargeWarning, stacklevel=2)
    view.connect()

    dot = graphviz.Digraph("computation_graph")
    heading = "\n".join(t for t in (title, note) if t)
    dot.attr(rankdir="LR", newrank="true", nodesep="0.06", ranksep="0.3", fontname=FONT,
             **({"label": heading, "labelloc": "t", "fontsize": "18"} if heading else {}))
    dot.attr("node", fontname=FONT, fontsize="11", height="0.2")
    dot.attr("edge", arrowsize="0.5", color="#555555")
    if legend:
        dot.node("legend", _legend(graph, view), shape="box", style="rounded,dashed", color="#999999", fontsize="11")
    _Drawing(dot, graph, view, show_data, show_grad).draw()
    return dot


class _Drawing:
    """Writes the view into the Digraph: boxes and ovals in their clusters, column and order hints, arrows."""

    def __init__(self, dot, graph, view, show_data, show_grad):
        self.dot, self.graph, self.view, self.show = dot, graph, view, (show_data, show_grad)
        self.ids = {n: f"v{graph.index[n]}" for n in view.drawn}
        self.users = {n: [] for n in view.drawn}
        self.level = {}  # steps from the leaves: results at the same level of one layer share a column
        for node in view.drawn:
            self.level[node] = 1 + max((self.level[s] for s in view.inputs[node]), default=-1) if node.parents else 0
            for s in view.inputs[node]:
                self.users[s].append(node)

    def draw(self):
        clusters = {}
        for node in self.view.drawn:
            clusters.setdefault(node.layer, []).append(node)
        for c, (label, members) in enumerate(clusters.items()):
            if label is None:
                self.nodes(self.dot, members)
                self.order(members)
                continue
            with self.dot.subgraph(name=f"cluster_{c}") as sub:
                sub.attr(label=label, style="rounded,filled", fillcolor=COLORS["cluster"], color="#aaaaaa",
                         fontsize="14", labeljust="l")
                units = self.units(members)
                self.nodes(sub, [n for n in members if n not in units])
                for u, (owner, nodes) in enumerate(self.grouped(members, units)):
                    with sub.subgraph(name=f"cluster_{c}_{u}") as box:
                        if len(nodes) > 1:
                            box.attr(label=self.graph.name(owner) or "", style="rounded", color=COLORS["unit"], fontsize="10")
                        else:
                            box.attr(label="", peripheries="0", margin="0")
                        self.nodes(box, nodes)
            self.columns(members)
        self.edges()

    def nodes(self, g, members):
        graph, view = self.graph, self.view
        for node in sorted(members, key=graph.sort_key):  # dot's first layout follows declaration order
            kind = graph.kind(node)
            style = _node_style(kind)
            if kind == "param":
                style["color"] = graph.colour[node]
            g.node(self.ids[node], _value_label(graph, node, *self.show), **style)
            if node.parents:
                label = node.layer.split(": ")[-1] if node in view.collapsed else _op_label(graph, node)
                g.node(f"o{graph.index[node]}", label, **OP_STYLE)

    def units(self, members):
        """{node: the one result of the layer it is computed for}, when the layer has several
        results. A result computed by several nodes (a conv output's products and partial sums,
        a max-pool window's maxima) gets a box of its own; in a collapsed layer each result gets
        an invisible one, so that dot keeps them in the order they are declared in."""
        inside, owners = set(members), {}
        for node in reversed(members):
            if node.parents:
                found = {node: None} if node is self.graph.root or any(u not in inside for u in self.users[node]) else {}
                for u in self.users[node]:
                    found.update(owners.get(u, {}))
                owners[node] = found
        units = {n: next(iter(o)) for n, o in owners.items() if len(o) == 1}
        sizes = {}
        for owner in units.values():
            sizes[owner] = sizes.get(owner, 0) + 1
        keep = {n: o for n, o in units.items() if sizes[o] > 1 or n in self.view.collapsed}
        return keep if len(sizes) > 1 else {}

    def grouped(self, members, units):
        """[(result, its nodes)] in index order (z1[0,0], z1[0,1], ...): dot's first layout
        follows the order of declaration, so this starts it from the natural one."""
        groups = {}
        for node in members:
            if node in units:
                groups.setdefault(units[node], []).append(node)
        return sorted(groups.items(), key=lambda item: self.graph.sort_key(item[0]))

    def columns(self, members):
        """Results of one layer the same number of steps from the leaves share a column, so parallel
        computations (the 16 outputs of a conv) line up instead of drifting apart."""
        columns = {}
        for node in members:
            if node.parents:
                columns.setdefault(2 * self.level[node], []).append(self.ids[node])
                columns.setdefault(2 * self.level[node] - 1, []).append(f"o{self.graph.index[node]}")
        for _, names in sorted(columns.items()):
            if len(names) > 1:
                self.dot.body.append("\t{rank=same; " + " ".join(names) + "}\n")

    def order(self, members):
        """Leaves of one name (X[0,0], X[0,1], ...) down one column in index order: invisible
        arrows within a rank fix the order (dot keeps it for nodes outside clusters)."""
        rows = {}
        for node in members:
            name = self.graph.name(node)
            if name and not node.parents:
                rows.setdefault(_base(name), []).append(node)
        for nodes in rows.values():
            if len(nodes) > 1:
                nodes.sort(key=self.graph.sort_key)
                self.dot.body.append("\t{rank=same; " + " -> ".join(self.ids[n] for n in nodes) + " [style=invis]}\n")

    def edges(self):
        graph, dot = self.graph, self.dot
        for node in self.view.drawn:
            if not node.parents:
                continue
            op = f"o{graph.index[node]}"
            dot.edge(op, self.ids[node])
            for s in self.view.inputs[node]:
                attrs = {"color": graph.colour[s]} if s in graph.colour else {}
                if s.layer != node.layer:
                    attrs["minlen"] = "2"  # an empty column between clusters keeps them apart
                dot.edge(self.ids[s], op, **attrs)
        if self.view.cut:
            dot.node("cut", f"⋯ {self.view.left_out} more values not drawn", shape="plaintext")
            for node in self.view.cut:
                dot.edge("cut", f"o{graph.index[node]}", style="dashed")


# --- files ------------------------------------------------------------------------------------------
def render(root, path, format=None, **options):
    """Draw the graph of ``root`` into the file ``path`` and return ``path``.

    format: "svg", "png" or "pdf" (Graphviz's ``dot`` program draws them), or "dot" (the DOT
    text; needs no program); by default the suffix of ``path`` if it is one of these, else
    "svg". The file is written atomically. Options as for ``to_dot``.
    """
    format = format or format_from_suffix(path, default="svg")
    check_dot(format)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"render: cannot write {path}: the folder {folder} does not exist")
    dot = to_dot(root, **options)
    data = dot.source.encode("utf-8") if format == "dot" else dot.pipe(format=format)
    with atomic_write(path) as f:
        f.write(data)
    return path


def check_dot(format="svg"):
    """Raise ValueError for an unknown format, DotNotFoundError if it needs ``dot`` and it is not on PATH."""
    if format not in FORMATS:
        raise ValueError(f"render: format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format != "dot":
        require_dot(format)
