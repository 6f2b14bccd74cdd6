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
output) into a small box of their own. A composite operation is one oval (``expand=True``
draws its insides): a loss named after the operations inside it ("BCE", "cross-entropy",
"MSE", ...), a softmax. The picture runs left to right or, for deep chains of tensors, top
to bottom (``rankdir``); an input array X[i,j] is laid out as its image grid, so that each
conv window's arrows stay short. Text is DejaVu Sans (it comes with Graphviz on Debian), the
SVG naming Verdana, Arial and sans-serif after it. Nodes are numbered in topological order,
so the same graph always gives the same DOT text.
"""
import html
import os
import re
import warnings

import graphviz
import numpy as np

from .files import FORMATS, DotNotFoundError, atomic_write, format_from_suffix, require_dot  # noqa: F401 (re-exported)

MAX_ELEMENTS = 25  # a Tensor box lists its numbers up to this many elements
# DejaVu Sans comes with Graphviz on Debian; the SVG names the whole list, so that a viewer
# without it takes the next (CSS reads "DejaVu Sans,Verdana,Arial,sans-serif" as four families)
FONT = "DejaVu Sans,Verdana,Arial,sans-serif"
COLORS = {"param": "#fdd49e", "input": "#cfe2f3", "value": "#ffffff", "root": "#f4cccc", "constant": "#f0f0f0",
          "op": "#eeeeee", "cluster": "#f7f7f7", "unit": "#cccccc", "grad": "#b03a2e"}
# one arrow colour per parameter (Paul Tol's colour-blind-safe palettes)
PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#332288", "#117733",
           "#882255", "#999933", "#44aa99", "#cc6677")
OP_SYMBOLS = {"*": "×", "-": "−", "/": "÷", "matmul": "@"}
INFIX = ("+", "-", "*", "/", "**")

# Composite operations, drawn as one oval unless to_dot(expand=True): the layers of these labels
# ("softmax", "2: Softmax", "Softmax #2", ...) by name, and a loss layer by the first entry of
# LOSS_NAMES that fits the operations inside it: (name, ops it has all of, ops it has only or None).
# To name another loss, put an entry in front.
COMPOSITES = {"softmax": "softmax", "Softmax": "softmax", "log_softmax": "log_softmax", "LogSoftmax": "log_softmax"}
LOSS_NAMES = (
    ("BCE with logits", {"relu", "exp", "log"}, None),
    ("cross-entropy", {"exp", "log"}, None),
    ("BCE", {"log", "max"}, None),
    ("MSE", {"**"}, {"-", "**", "sum", "+", "*", "/", "neg"}),
    ("NLL", set(), {"index", "sum", "/", "neg", "+", "*"}),
)
RANKDIRS = ("LR", "TB")


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


def _index(name):
    """The integer index of a name, X[2,3] -> (2, 3), or None."""
    m = re.fullmatch(r"[^\[\]]+\[(\d+(?:,\d+)*)\]", name or "")
    return tuple(int(i) for i in m.group(1).split(",")) if m else None


def _composite_name(label, ops):
    """The name of the one oval a layer is drawn as ("BCE", "softmax"), or None to draw its operations."""
    kind = re.sub(r" #\d+$", "", label.split(": ")[-1])
    if kind in COMPOSITES:
        return COMPOSITES[kind]
    if kind != "loss":
        return None
    ops = {"max" if op == "maximum" else "**" if op.startswith("**") else op for op in ops}
    for name, needed, only in LOSS_NAMES:
        if needed <= ops and (only is None or ops <= only):
            return name
    return "loss"


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
    """The drawn values and, for each, the drawn values it is computed from (through hidden ones).

    collapsed: layer labels drawn as one oval per value they hand on, named after the layer.
    composite: {layer label: name}: layers drawn as one oval per connected part ("BCE" with its
    inputs and the loss; "softmax" with its inputs and outputs), their own constants hidden."""

    def __init__(self, graph, collapsed, composite=None):
        self.graph = graph
        composite = composite or {}
        grouped = set(collapsed) | set(composite)
        self.hidden = {n for n in graph.order if n.parents and n.layer in grouped and n is not graph.root
                       and all(c.layer == n.layer for c in graph.consumers[n])}
        self.hidden |= self._own_constants(composite)
        self.collapsed = {n for n in graph.order if n.parents and n.layer in collapsed} - self.hidden
        self.part = self._parts(composite)  # composite value -> the first node of its connected part
        self.names = {lead: composite[lead.layer] for lead in self.part.values()}
        self.collapsed -= set(self.part)
        self.drawn = [n for n in graph.order if n not in self.hidden and n not in graph.folded]
        self.inputs = None   # {drawn node: its drawn inputs}, from connect() or keep_near_root()
        self.cut = []        # drawn nodes with inputs left out by keep_near_root
        self.left_out = 0
        self.lead = {}       # composite value drawn -> the first drawn value of its part (its oval's id)

    def _own_constants(self, composite):
        """The constants a composite layer made (the 1 in 1 - p, clamp bounds, softmax's shift), but
        not a target array given as numbers (more than one number, the shape of an input of the layer)."""
        graph = self.graph
        shapes = {}
        for n in graph.order:
            if n.layer in composite:
                shapes.setdefault(n.layer, set()).update(np.shape(p.data) for p in n.parents if p.layer != n.layer)
        return {n for n in graph.order if not n.parents and n.layer in composite and graph.kind(n) == "constant"
                and not (np.size(n.data) > 1 and np.shape(n.data) in shapes[n.layer])}

    def _parts(self, composite):
        """{computed node of a composite layer that is drawn: the first node of its connected part}:
        separate calls (or the independent rows of a batch of Values) are separate ovals."""
        graph, parent = self.graph, {}

        def find(n):
            while parent[n] is not n:
                parent[n] = parent[parent[n]]
                n = parent[n]
            return n

        for n in graph.order:  # topological order: a part's first node is its root in the union-find
            if n.parents and n.layer in composite:
                parent[n] = n
                for p in n.parents:
                    if p in parent and p.layer == n.layer:
                        a, b = find(p), find(n)
                        if a is not b:
                            parent[max(a, b, key=graph.index.__getitem__)] = min(a, b, key=graph.index.__getitem__)
        return {n: find(n) for n in parent if n not in self.hidden}

    def count(self):
        """Drawn nodes: one box per value, one oval per operation (one per part of a composite layer)."""
        return len(self.drawn) + len({self.part.get(n, n) for n in self.drawn if n.parents})

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
        leads = {}
        for n in self.drawn:
            if n in self.part:
                self.lead[n] = leads.setdefault(self.part[n], n)
        for n in self.drawn:  # a part's oval takes the inputs of all its values, not the values themselves
            lead = self.lead.get(n)
            if lead is not None and lead is not n:
                self.inputs[lead] += tuple(s for s in self.inputs[n] if s not in self.inputs[lead])
        for n, lead in self.lead.items():
            own = [s for s in self.inputs[lead] if self.lead.get(s) is not lead]
            self.inputs[n] = tuple(own)

    def oval(self, node):
        """The id of the oval that computes a drawn value."""
        return f"o{self.graph.index[self.lead.get(node, node)]}"

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


def _legend(graph, view, show_data=True, show_grad=True):
    """A key to the shapes and colours of the kinds of node drawn, samples named as in the graph (its
    line for the numbers in the boxes only with the numbers that are shown)."""
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
    shown = [(cell, words) for cell, words, on in (("data", "the forward value", show_data),
                                                   (red, f"d {root_word[4:]} / d value", show_grad)) if on]
    if shown:
        rows.append(f'<TD BORDER="1">{" | ".join(c for c, _ in shown)}</TD>'
                    f'<TD ALIGN="LEFT">{" | ".join(w for _, w in shown)}</TD>')
    body = "".join(f"<TR>{r}</TR>" for r in rows)
    digits = '<TR><TD COLSPAN="2">numbers to 4 significant digits</TD></TR>' if shown else ""
    return f'<<TABLE BORDER="0" CELLSPACING="3" CELLPADDING="3"><TR><TD COLSPAN="2"><B>legend</B></TD></TR>{body}{digits}</TABLE>>'


# --- the picture ------------------------------------------------------------------------------------
def to_dot(root, params=None, *, show_data=True, show_grad=True, collapse=False, fold_constants=True,
           legend=True, title=None, max_nodes=1000, expand=False, rankdir=None):
    """The computation graph that ends at ``root`` (a Value or a Tensor) as a ``graphviz.Digraph``.

    params: the leaves to draw as parameters: a Module (its parameters), a mapping name ->
        parameter, or an iterable of parameters (Tensors, Values, object arrays of Value) or of
        names ("F" marks the leaves F and F[i,j]). Default: the Tensor leaves that require grad,
        as in PyTorch; Values have no such flag, so pass ``params=model`` (or names) for them.
    show_data, show_grad: write the forward numbers / the gradients in the boxes.
    collapse: False; True (every layer); or layer labels: a collapsed layer draws only the
        values it hands on, each computed by one oval named after the layer.
    expand: False draws a composite operation as one oval: a loss ("BCE", "BCE with logits",
        "cross-entropy", "MSE", "NLL", told by the operations inside it; see LOSS_NAMES) from the
        network's output (and the target, if it is drawn) to the loss, and a softmax or
        log_softmax from its inputs to its outputs. True draws their operations one by one.
    rankdir: "LR" (left to right) or "TB" (top to bottom); None picks the one whose picture is
        nearer a page's shape: deep chains of tensors stack top to bottom, wide scalar graphs
        run left to right. An input array of leaves X[i,j] is laid out as its grid.
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
    if rankdir not in (None, *RANKDIRS):
        raise ValueError(f"to_dot: rankdir must be 'LR', 'TB' or None, got {rankdir!r}")
    graph = _Graph(root, params, fold_constants)
    layers = {n.layer for n in graph.order} - {None}
    chosen = {collapse} if isinstance(collapse, str) else layers if collapse is True else set(collapse or ())
    if chosen - layers:
        raise ValueError(f"to_dot: collapse names no layer of this graph: {', '.join(sorted(chosen - layers))} "
                         f"(its layers: {', '.join(sorted(layers)) or 'none'})")
    ops = {}
    for n in graph.order:
        if n.parents and n.layer is not None:
            ops.setdefault(n.layer, set()).add(n.op)
    composite = {} if expand else {label: name for label in sorted(ops)
                                   if (name := _composite_name(label, ops[label])) is not None}
    view = _View(graph, chosen, composite)
    note = None
    if max_nodes is not None and view.count() > max_nodes:
        note = (f"{len(graph.order)} graph nodes ({view.count()} boxes and ovals) are more than "
                f"max_nodes={max_nodes} to draw: every layer is collapsed")
        view = _View(graph, layers, composite)
        if view.count() > max_nodes:
            view.keep_near_root(max_nodes)
            note += f" and only the {len(view.drawn)} values nearest the root are drawn"
        note += "; max_nodes=None draws them all"
        warnings.warn(f"to_dot: {note}", GraphTooLargeWarning, stacklevel=2)
    view.connect()

    dot = graphviz.Digraph("computation_graph")
    drawing = _Drawing(dot, graph, view, show_data, show_grad)
    heading = "\n".join(t for t in (title, note) if t)
    drawing.rankdir = rankdir or drawing.best_rankdir(heading, legend)
    dot.attr(rankdir=drawing.rankdir, newrank="true", nodesep="0.06", ranksep="0.3", fontname=FONT,
             **({"label": heading, "labelloc": "t", "fontsize": "18"} if heading else {}))
    dot.attr("node", fontname=FONT, fontsize="11", height="0.2")
    dot.attr("edge", arrowsize="0.5", color="#555555")
    if legend:
        dot.node("legend", _legend(graph, view, show_data, show_grad), shape="box", style="rounded,dashed", color="#999999", fontsize="11")
        if drawing.rankdir == "LR":  # beside the loss, at the right end, where there is room
            dot.body.append(f"\t{{rank=same; v{graph.index[graph.root]} legend}}\n")
    drawing.draw()
    return dot


def _text_width(chars, fontsize=11):
    """Inches: DejaVu Sans averages about 0.58 em a character."""
    return 0.58 * fontsize / 72 * chars


class _Drawing:
    """Writes the view into the Digraph: boxes and ovals in their clusters, column and order hints, arrows."""

    def __init__(self, dot, graph, view, show_data, show_grad):
        self.dot, self.graph, self.view, self.show = dot, graph, view, (show_data, show_grad)
        self.ids = {n: f"v{graph.index[n]}" for n in view.drawn}
        self.users = {n: [] for n in view.drawn}
        self.level = {}  # steps from the leaves: results at the same level of one layer share a column
        self.rankdir = "LR"
        self.gridded = set()  # leaves laid out as an image grid
        self.near = set()     # leaves beside the grid (the kernel): the grid's layer reads them, no gap between
        for node in view.drawn:
            self.level[node] = 1 + max((self.level[s] for s in view.inputs[node]), default=-1) if node.parents else 0
            for s in view.inputs[node]:
                if node not in self.users[s]:
                    self.users[s].append(node)

    # --- which way the picture runs ---------------------------------------------------------------------
    def box_size(self, node):
        """About how wide and tall (inches) a value's box is drawn."""
        chars, rows = len(self.graph.name(node) or ""), 1
        if _is_tensor(node):
            chars += len(str(tuple(node.data.shape))) + 2
        for what, shown in zip(("data", "grad"), self.show):
            x = getattr(node, what) if shown else None
            if not shown:
                continue
            if x is None or not _is_tensor(node):
                chars += 12
            elif np.size(x) == 0 or np.size(x) > MAX_ELEMENTS:
                chars += 26
            else:
                a = np.squeeze(np.asarray(x))
                cols = a.shape[-1] if a.ndim else 1
                rows = max(rows, a.size // cols)
                chars += 6 + 7 * cols
        return 0.15 + _text_width(max(chars, 1)), 0.1 + 0.19 * rows

    def ranks(self):
        """{drawn node or oval id: its rank}, about as dot ranks them: an oval one step after its
        inputs (two from another layer), its value one after it, a leaf just before its first use."""
        rank, view = {}, self.view
        for node in view.drawn:
            if node.parents:
                op = view.oval(node)
                if op not in rank:
                    rank[op] = max((rank.get(s, 0) + (2 if s.layer != node.layer else 1)
                                    for s in view.inputs[node]), default=0)
                rank[node] = rank[op] + 1
        for node in view.drawn:
            if not node.parents:
                uses = [rank[view.oval(u)] - (2 if u.layer != node.layer else 1) for u in self.users[node]]
                rank[node] = min(uses, default=0)
        low = min(rank.values(), default=0)
        return {k: r - low for k, r in rank.items()}

    def best_rankdir(self, heading, legend):
        """"LR" or "TB", whichever gives the picture (estimated from the boxes' sizes and ranks)
        the shape nearer a screen's, 3:2 across; LR unless TB is clearly better."""
        sizes = {}
        for key, r in self.ranks().items():
            if isinstance(key, str):
                node = self.view.lead.get(self.graph.order[int(key[1:])])
                label = self.view.names[self.view.part[node]] if node is not None else "max"
                size = (0.1 + _text_width(len(label), 10), 0.25)
            else:
                size = self.box_size(key)
            sizes.setdefault(r, []).append(size)
        if legend:
            sizes.setdefault(0, []).append((3.6, 2.0))
        along = [max(w for w, _ in s) for _, s in sorted(sizes.items())]      # LR: a column per rank
        across = [sum(h for _, h in s) + 0.06 * len(s) for s in sizes.values()]
        lr = (sum(along) + 0.3 * len(along), max(across))
        tb = (max(sum(w for w, _ in s) + 0.06 * len(s) for s in sizes.values()),
              sum(max(h for _, h in s) for s in sizes.values()) + 0.3 * len(sizes))
        title = _text_width(max((len(t) for t in heading.split("\n")), default=0), 18)

        def badness(w, h):
            w = max(w, title)
            return abs(np.log(w / h / 1.5))

        return "TB" if badness(*tb) < badness(*lr) - 0.5 else "LR"

    # --- the picture -----------------------------------------------------------------------------------
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
                units = {} if any(n in self.view.part for n in members) else self.units(members)
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
            if node in view.lead:
                if view.lead[node] is node:  # one oval for the part, declared with its first value
                    g.node(view.oval(node), view.names[view.part[node]], **OP_STYLE)
            elif node.parents:
                label = node.layer.split(": ")[-1] if node in view.collapsed else _op_label(graph, node)
                g.node(view.oval(node), label, **OP_STYLE)

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
                columns.setdefault(2 * self.level[node], {})[self.ids[node]] = None
                columns.setdefault(2 * self.level[node] - 1, {})[self.view.oval(node)] = None
        for _, names in sorted(columns.items()):
            if len(names) > 1:
                self.dot.body.append("\t{rank=same; " + " ".join(names) + "}\n")

    def order(self, members):
        """Leaves of one name in index order: an input array X[i,j] as its image grid (LR: a column
        per j, each top down; TB: a row per i, each left to right), other arrays (F[0,0], F[0,1],
        ...) in one column (LR) or row (TB). Invisible arrows within a rank fix the order (dot keeps
        it for nodes outside clusters); heavy invisible arrows across ranks keep the grid's rows
        straight. The grid's arrows pull each window's results level with its rows; the other
        leaves its layer reads (the kernel, the bias) sit next to the layer too, where dot puts them."""
        graph, arrays = self.graph, {}
        for node in sorted((n for n in members if not n.parents), key=graph.sort_key):
            index = _index(graph.name(node))
            if index is not None:  # leaves of one name, rank and reader: two layers' "weight" are two arrays
                readers = tuple(sorted({str(u.layer) for u in self.users[node]}))
                arrays.setdefault((graph.kind(node), _base(graph.name(node)), len(index), readers), []).append(node)
        grids = {key: grid for key, nodes in arrays.items() if key[0] == "input" and (grid := self.grid(nodes))}
        for key, nodes in sorted(arrays.items(), key=lambda item: (_natural(item[0][1]), item[0][2:])):
            if key in grids:
                lines = [list(column) for column in zip(*grids[key])] if self.rankdir == "LR" else grids[key]
                for line in lines:           # one rank each, in order
                    self.chain(line, rank_same=True)
                for across in zip(*lines):   # from rank to rank, straight
                    self.chain(across, rank_same=False)
            elif len(nodes) > 1:
                self.chain(nodes, rank_same=True)
        cells = {n for grid in grids.values() for row in grid for n in row}
        reads = {u.layer for n in cells for u in self.users[n]}
        self.gridded |= cells
        self.near |= {n for n in members if not n.parents and n not in cells and self.users[n]
                      and all(u.layer in reads for u in self.users[n])}

    def grid(self, nodes):
        """The leaves as rows of a full grid (by all but the last index, then the last), or None."""
        index = {n: _index(self.graph.name(n)) for n in nodes}
        if any(i is None or len(i) < 2 for i in index.values()) or len({len(i) for i in index.values()}) > 1:
            return None
        rows = {}
        for n in nodes:
            rows.setdefault(index[n][:-1], []).append(n)
        grid = [sorted(row, key=lambda n: index[n][-1]) for _, row in sorted(rows.items())]
        return grid if len(grid) > 1 and len({len(r) for r in grid}) == 1 and len(grid[0]) > 1 else None

    def chain(self, nodes, rank_same):
        arrows = " -> ".join(self.ids[n] for n in nodes)
        if rank_same:
            self.dot.body.append("\t{rank=same; " + arrows + " [style=invis]}\n")
        else:
            self.dot.body.append("\t" + arrows + " [style=invis weight=1000]\n")

    def edges(self):
        graph, dot, view = self.graph, self.dot, self.view
        fed = set()
        for node in view.drawn:
            if not node.parents:
                continue
            op = view.oval(node)
            dot.edge(op, self.ids[node])
            if op in fed:  # a composite's oval: its inputs are drawn once
                continue
            fed.add(op)
            for s in view.inputs[node]:
                attrs = {"color": graph.colour[s]} if s in graph.colour else {}
                if s in self.gridded:
                    attrs["weight"] = "8"  # pulls each window's outputs level with its rows
                elif s.layer != node.layer and s not in self.near:
                    attrs["minlen"] = "2"  # an empty column between clusters keeps them apart
                dot.edge(self.ids[s], op, **attrs)
        if view.cut:
            dot.node("cut", f"⋯ {view.left_out} more values not drawn", shape="plaintext")
            for op in dict.fromkeys(view.oval(n) for n in view.cut):
                dot.edge("cut", op, style="dashed")


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
