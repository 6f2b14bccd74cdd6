"""A worked solution as one self-contained HTML page: every number as a heatmap cell, the formulas
in MathML, the graph inline as SVG, and a step-through of the backward pass.

Nothing is fetched: styles, the script and the pictures are inline, so the page opens from a
USB stick. Values and gradients have two diverging colour scales (values: blue below 0, red
above; gradients: purple below, green above; white at 0), each with one range for the whole
page. The step-through walks the graph's nodes in reverse topological order (the order
backpropagation reaches them): the current node is highlighted in the graph and in its grid,
and a panel lists the chain-rule terms it receives from each node that used it and their
running sum, which ends at its gradient.
"""
import html
import json
import secrets

import numpy as np

from .text import FORMULAS, LOSS_FORMULAS, number

MAX_STEPS = 5000        # a larger graph gets no step-through (its page would be too slow)
MAX_GRAPH_NODES = 1500  # boxes and ovals: more is drawn collapsed, or not at all
VALUE_COLOURS = ((33, 102, 172), (178, 24, 43))    # below 0, above 0 (RdBu's ends)
GRAD_COLOURS = ((118, 42, 131), (27, 120, 55))     # PRGn's ends


# --- numbers and colours -------------------------------------------------------------------------
def _colour(v, scale, colours):
    """The background of a cell: white at 0, the end colour at +-scale (linear in between)."""
    if not scale or v != v:
        return "#ffffff"
    t = min(1.0, abs(v) / scale)
    r, g, b = colours[int(v > 0)]
    mix = [round(255 + (c - 255) * t) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def _ink(v, scale):
    return "#ffffff" if scale and abs(v) / scale > 0.6 else "#111111"


def _bar(label, scale, colours):
    low, high = colours
    return (f'<div class="bar"><span>{label}</span><span>{number(-scale)}</span><span class="ramp" style="'
            f'background:linear-gradient(to right, rgb{low}, #ffffff, rgb{high})"></span>'
            f'<span>{number(scale)}</span></div>')


class _Cells:
    """Which graph node each grid cell shows (for the step-through's highlight)."""

    def __init__(self, index):
        self.index = index  # graph node -> its number in topological order

    def ids(self, node, shape):
        """An array of node ids ("v12") per element of ``node`` (one id for a Tensor), or None."""
        if node is None:
            return None
        if isinstance(node, np.ndarray):  # Values: one id per element
            if node.size != int(np.prod(shape)):
                return None
            return np.vectorize(lambda v: f"v{self.index[v]}" if v in self.index else "", otypes=[object])(
                np.asarray(node).reshape(shape))
        return np.full(shape, f"v{self.index[node]}" if node in self.index else "", dtype=object)


def _table(a, scale, colours, ids=None):
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    ids = None if ids is None else np.asarray(ids, dtype=object).reshape(a.shape)
    rows = []
    for i in range(a.shape[0]):
        cells = []
        for j in range(a.shape[1]):
            v = a[i, j]
            node = f' data-n="{ids[i, j]}"' if ids is not None and ids[i, j] else ""
            cells.append(f'<td style="background:{_colour(v, scale, colours)};color:{_ink(v, scale)}"{node}>'
                         f'{number(v)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="grid">{"".join(rows)}</table>'


def _grids(a, scale, colours, dims, ids=None):
    """An array of any rank as tables: the last two dims as rows and columns, one table per index of the others."""
    a = np.asarray(a, dtype=np.float64)
    if ids is not None:
        ids = np.asarray(ids, dtype=object).reshape(a.shape)
    if a.ndim <= 2:
        return f'<div class="grids">{_table(a, scale, colours, ids)}</div>'
    parts = []
    for index in np.ndindex(a.shape[:-2]):
        head = ", ".join(f"{d} {i}" for d, i in zip(dims, index))
        parts.append(f'<figure><figcaption>{head}</figcaption>'
                     f'{_table(a[index], scale, colours, None if ids is None else ids[index])}</figure>')
    return f'<div class="grids">{"".join(parts)}</div>'


# --- formulas in MathML ----------------------------------------------------------------------------
def _mi(s):
    return f"<mi>{s}</mi>"


def _sub(base, *index):
    return f"<msub>{_mi(base)}<mrow>{'<mo>,</mo>'.join(_mi(i) for i in index)}</mrow></msub>"


def _sum(*over):
    return f"<munder><mo>&#x2211;</mo><mrow>{'<mo>,</mo>'.join(_mi(i) for i in over)}</mrow></munder>"


def _math(*parts):
    return f'<math display="block">{"".join(parts)}</math>'


_EQ, _PLUS, _TIMES = "<mo>=</mo>", "<mo>+</mo>", "<mo>&#x22C5;</mo>"
MATH = {
    "Conv2d": _math(_sub("y", "n", "c", "i", "j"), _EQ, _sum("k", "u", "v"), _sub("w", "c", "k", "u", "v"), _TIMES,
                    "<msub><mi>x</mi><mrow><mi>n</mi><mo>,</mo><mi>k</mi><mo>,</mo><mi>s</mi><mi>i</mi><mo>+</mo>"
                    "<mi>u</mi><mo>,</mo><mi>s</mi><mi>j</mi><mo>+</mo><mi>v</mi></mrow></msub>", _PLUS, _sub("b", "c")),
    "Conv1d": _math(_sub("y", "n", "c", "i"), _EQ, _sum("k", "u"), _sub("w", "c", "k", "u"), _TIMES,
                    "<msub><mi>x</mi><mrow><mi>n</mi><mo>,</mo><mi>k</mi><mo>,</mo><mi>s</mi><mi>i</mi><mo>+</mo>"
                    "<mi>u</mi></mrow></msub>", _PLUS, _sub("b", "c")),
    "Linear": _math(_sub("y", "n", "o"), _EQ, _sum("i"), _sub("w", "o", "i"), _TIMES, _sub("x", "n", "i"), _PLUS,
                    _sub("b", "o")),
    "ReLU": _math(_mi("y"), _EQ, "<mo>max</mo><mo>(</mo>", _mi("x"), "<mo>,</mo><mn>0</mn><mo>)</mo>"),
    "LeakyReLU": _math(_mi("y"), _EQ, "<mrow><mo>{</mo><mtable><mtr><mtd>", _mi("x"), "</mtd><mtd><mi>x</mi><mo>&gt;"
                       "</mo><mn>0</mn></mtd></mtr><mtr><mtd><mi>&#x3B1;</mi><mi>x</mi></mtd><mtd><mtext>otherwise"
                       "</mtext></mtd></mtr></mtable></mrow>"),
    "Sigmoid": _math(_mi("y"), _EQ, "<mfrac><mn>1</mn><mrow><mn>1</mn><mo>+</mo><msup><mi>e</mi><mrow><mo>&#x2212;"
                     "</mo><mi>x</mi></mrow></msup></mrow></mfrac>"),
    "Tanh": _math(_mi("y"), _EQ, "<mo>tanh</mo>", _mi("x")),
    "Softmax": _math(_sub("y", "i"), _EQ, "<mfrac><msup><mi>e</mi><msub><mi>x</mi><mi>i</mi></msub></msup><mrow>",
                     _sum("j"), "<msup><mi>e</mi><msub><mi>x</mi><mi>j</mi></msub></msup></mrow></mfrac>"),
    "MaxPool2d": _math(_sub("y", "n", "c", "i", "j"), _EQ, "<munder><mo>max</mo><mrow><mo>(</mo><mi>u</mi><mo>,</mo>"
                       "<mi>v</mi><mo>)</mo><mo>&#x2208;</mo><mtext>window</mtext></mrow></munder>",
                       _sub("x", "n", "c", "u", "v")),
    "AvgPool2d": _math(_sub("y", "n", "c", "i", "j"), _EQ, "<mfrac><mn>1</mn><mi>d</mi></mfrac>",
                       "<munder><mo>&#x2211;</mo><mtext>window</mtext></munder>", _sub("x", "n", "c", "u", "v")),
}


# --- the step-through ---------------------------------------------------------------------------------
def _short(a):
    a = np.asarray(a, dtype=np.float64)
    if a.size == 1:
        return number(a.reshape(()))
    if a.size <= 25:
        return "[" + " ".join(number(v) for v in a.ravel()) + "]" + f" {tuple(a.shape)}"
    return f"{tuple(a.shape)} array, from {number(a.min())} to {number(a.max())}"


def _label(node, named=None):
    """A node's name, or its op and the named value it goes into ("* for z1[0,0,1]")."""
    if node.name:
        return node.name
    if named and named.get(node):
        return f"{node.op} for {named[node]}"
    return f"{node.op} ({node.layer})" if node.layer else node.op or "leaf"


def steps(root, composite=("loss",)):
    """The backward pass, one entry per node in the order backpropagation reaches it (the root first,
    with gradient 1): its id, label, gradient, and the chain-rule terms from each node that used it
    (with their running sum). The nodes of a ``composite`` layer (the loss) are one step, the root:
    what they send a node outside is one term from that layer."""
    order = root.topo_order()
    index = {n: i for i, n in enumerate(order)}
    inside = lambda n: n.layer in composite and n.parents
    users = {n: {} for n in order}
    for node in order:
        if node.parents and node.grad is not None:
            for parent, term in node._terms(node.grad):
                user = root if inside(node) and not inside(parent) else node
                got = users[parent].get(user)
                users[parent][user] = term if got is None else got + term
    depth = {root: 0}  # the longest path to the root: sorting by it keeps a reverse topological order
    for node in reversed(order):  # and walks the graph layer by layer from the loss
        for parent in node.parents:
            depth[parent] = max(depth.get(parent, 0), depth.get(node, 0) + 1)
    named = {}  # the first named value each node goes into
    for node in reversed(order):
        for parent in node.parents:
            named.setdefault(parent, node.name or named.get(node))
    out = []
    for node in sorted(reversed(order), key=lambda n: depth.get(n, 0)):  # noqa: C414 (stable: ties keep that order)
        if node.grad is None or node is not root and inside(node):
            continue
        if not node.parents and node.name is None and node.layer is not None:
            continue  # a constant a layer made (the 1 in 1 - p): no one asks for its gradient
        running, terms = None, []
        for user, term in users[node].items():
            running = term if running is None else running + term
            terms.append({"from": _label(user, named), "fromId": f"v{index[user]}", "term": _short(term),
                          "sum": _short(running)})
        out.append({"id": f"v{index[node]}", "label": _label(node, named), "op": node.op or "leaf",
                    "grad": _short(node.grad), "terms": terms})
    return out, index


# --- the graph ---------------------------------------------------------------------------------------
def _svg(solution, collapse):
    """The graph as inline SVG (None when dot is missing or the graph is too large)."""
    import warnings

    from .. import viz
    from ..files import DotNotFoundError, require_dot
    try:
        require_dot("svg")
    except DotNotFoundError:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dot = viz.to_dot(solution.root, params=solution.network, collapse=collapse, max_nodes=MAX_GRAPH_NODES,
                         legend=not collapse)
    svg = dot.pipe(format="svg").decode("utf-8")
    return svg[svg.index("<svg"):]


# --- the page -----------------------------------------------------------------------------------------
STYLE = """
.tgc{font-family:"DejaVu Sans",Verdana,Arial,sans-serif;color:#111;max-width:none}
.tgc h1{font-size:1.4em;margin:.2em 0}.tgc h2{font-size:1.15em;margin:1em 0 .3em;border-bottom:1px solid #ccc}
.tgc h3{font-size:1em;margin:.8em 0 .2em}
.tgc .layout{display:flex;gap:1em;align-items:flex-start}
.tgc .work{flex:1 1 60%;min-width:0}.tgc .side{flex:1 1 40%;position:sticky;top:0;max-height:100vh;overflow:auto}
.tgc table.grid{border-collapse:collapse;margin:.2em .6em .4em 0;font-size:12px}
.tgc table.grid td{border:1px solid #ddd;padding:2px 5px;text-align:right;font-variant-numeric:tabular-nums}
.tgc .grids{display:flex;flex-wrap:wrap;gap:.3em}.tgc figure{margin:0}.tgc figcaption{font-size:11px;color:#555}
.tgc .bar{display:flex;gap:.4em;align-items:center;font-size:12px;margin:.2em 0}
.tgc .ramp{display:inline-block;width:12em;height:.9em;border:1px solid #999}
.tgc .kink{color:#8a4b00;font-size:12px}.tgc .erratum{background:#fff4e0;border-left:4px solid #e69500;padding:.3em .6em;margin:.4em 0;font-size:13px}
.tgc .mistake{background:#fde8e8;border-left:4px solid #c0392b;padding:.3em .6em;margin:.4em 0}
.tgc .wrong{color:#b00020;font-weight:bold}.tgc .right{color:#1b7837}
.tgc .stepper{border:1px solid #bbb;padding:.5em;margin:.5em 0;background:#fafafa;font-size:13px}
.tgc .stepper table{border-collapse:collapse;font-size:12px}.tgc .stepper td{padding:1px 6px;border-bottom:1px solid #eee}
.tgc .current{outline:3px solid #ff8c00 !important;outline-offset:-1px}
.tgc svg .current polygon,.tgc svg .current ellipse,.tgc svg .current path{stroke:#ff8c00;stroke-width:4}
.tgc .graph{overflow:auto;max-height:75vh;border:1px solid #eee}.tgc .hidden{display:none}
.tgc .note{font-size:12px;color:#444}
@media print{.tgc .controls,.tgc .stepper,.tgc button{display:none}.tgc .layout{display:block}
.tgc .side{position:static;max-height:none}.tgc figure,.tgc table.grid,.tgc .erratum{break-inside:avoid}
.tgc h2,.tgc h3{break-after:avoid}@page{size:A4;margin:12mm}}
"""

SCRIPT = """
(function(){
var root=document.getElementById(%(uid)s), steps=%(steps)s, at=-1;
function q(sel){return root.querySelectorAll(sel);}
function show(i){
  if(!steps.length)return; at=Math.max(0,Math.min(steps.length-1,i)); var s=steps[at];
  q('.current').forEach(function(e){e.classList.remove('current');});
  var cells=q('[data-n="'+s.id+'"]'); cells.forEach(function(e){e.classList.add('current');});
  if(cells.length)cells[cells.length-1].scrollIntoView({block:'nearest'});
  var drawn=false;
  q('svg g.node').forEach(function(g){var t=g.querySelector('title'); if(t&&t.textContent===s.id){g.classList.add('current');
    if(g.getBoundingClientRect().width){drawn=true;g.scrollIntoView({block:'nearest',inline:'nearest'});}}});
  var where=root.querySelector('.step-where'); if(where)where.textContent=drawn?'':
    (toggle?'(inside a layer: drawn in the scalar graph, one click away)':'(not drawn in this picture)');
  var rows=s.terms.map(function(t){return '<tr><td>from '+esc(t.from)+'</td><td>'+esc(t.term)+'</td><td>sum so far '+esc(t.sum)+'</td></tr>';}).join('');
  root.querySelector('.step-title').textContent='Step '+(at+1)+' of '+steps.length+': '+s.label;
  root.querySelector('.step-grad').textContent=s.grad;
  root.querySelector('.step-terms').innerHTML=rows||'<tr><td>the start of the backward pass: dL/dL = 1</td></tr>';
}
function esc(t){return String(t).replace(/&/g,'&amp;').replace(/</g,'&lt;');}
root.querySelector('.next').addEventListener('click',function(){show(at+1);});
root.querySelector('.prev').addEventListener('click',function(){show(at-1);});
var toggle=root.querySelector('.toggle-graph');
if(toggle)toggle.addEventListener('click',function(){q('.graph').forEach(function(g){g.classList.toggle('hidden');});});
var target=%(keys_on_document)s?document:root;
target.addEventListener('keydown',function(e){
  if(e.key==='ArrowRight'){show(at+1);e.preventDefault();} else if(e.key==='ArrowLeft'){show(at-1);e.preventDefault();}
});
})();
"""


def page(solution, *, report=None, errata=(), fragment=False):
    """The HTML of the page for ``solution`` (a ``network.Solution``); ``report`` a check ``Report``
    (the student's numbers beside the right ones), ``errata`` the built-ins' ``Erratum`` list.
    ``fragment``: a <div> for a notebook (the arrow keys act when it has the focus), else a whole document."""
    from .text import _settings, batched as is_batched, dims as dim_names
    s = solution
    uid = "tg" + secrets.token_hex(4)
    batched = is_batched(s)
    values = [s.input] + [layer.output for layer in s.layers] + [p["value"] for p in s.params.values()]
    grads = [layer.grad_output for layer in s.layers] + [s.grad_input] + [p["grad"] for p in s.params.values()]
    vscale = max((float(np.max(np.abs(v))) for v in values if np.size(v)), default=1.0) or 1.0
    gscale = max((float(np.max(np.abs(g))) for g in grads if np.size(g)), default=1.0) or 1.0
    step_list, index = ([], {})
    if s.mistake is None and s.root is not None and len(s.root.topo_order()) <= MAX_STEPS:
        step_list, index = steps(s.root)
    cells = _Cells(index)
    def val(a, node=None, dims=None):
        return _grids(a, vscale, VALUE_COLOURS, dims or dim_names(np.ndim(a), batched), cells.ids(node, np.shape(a)))

    def grd(a, node=None, dims=None):
        return _grids(a, gscale, GRAD_COLOURS, dims or dim_names(np.ndim(a), batched), cells.ids(node, np.shape(a)))
    weights = ["out channel", "in channel"]
    params = dict(s.network.named_parameters()) if s.network is not None else {}
    keys = {}
    for key in s.params:
        keys.setdefault(int(key.split(".")[0]), []).append(key)
    e = html.escape
    work = [f"<h1>{e(s.title)}</h1>",
            f'<p class="note">Engine: {e(s.engine)}. Every number is the engine\'s: values are the graph nodes\' '
            f'.data, gradients their .grad after one loss.backward(). The decimals given are exact fractions through '
            f'conv, linear, sums, ReLU, max and the pools, so every ReLU mask and max-pool winner is the hand '
            f'computation\'s.</p>',
            _bar("values", vscale, VALUE_COLOURS), _bar("gradients", gscale, GRAD_COLOURS)]
    if s.mistake:
        work.append(f'<div class="mistake">This solution has the mistake <b>{e(s.mistake)}</b> made on purpose '
                    f'(marked where it acts). Its numbers are wrong.</div>')
    if report is not None:
        work += _check_section(report)
    for erratum in errata:
        work.append(f'<div class="erratum"><b>Course material erratum ({e(erratum.step)}):</b> {e(erratum.title)}. '
                    f'{e(" ".join(erratum.lines))}</div>')
    work += ["<h2>Forward pass</h2>", f"<h3>x, the input {tuple(s.input.shape)}</h3>", val(s.input, s.input_node)]
    for layer in s.layers:
        settings = _settings(layer.module)
        work.append(f"<h3>{e(layer.name)}: {e(layer.type)}{' (' + e(settings) + ')' if settings else ''}</h3>")
        for key in keys.get(layer.index, ()):
            work += [f"<p>{e(key.split('.', 1)[1])} {tuple(s.params[key]['value'].shape)}</p>",
                     val(s.params[key]["value"], params.get(key), weights)]
        work.append(MATH.get(layer.type) or f"<p>{e(FORMULAS[layer.type][0])}</p>")
        work += [f"<p>output {tuple(layer.output.shape)}</p>", val(layer.output, layer.node)]
        work += [f'<p class="kink">{e(k)}</p>' for k in layer.kinks]
    formula, _ = LOSS_FORMULAS[s.loss_type]
    work += [f"<h3>Loss: {e(s.loss_type)}</h3>", f"<p>{e(formula)}</p>",
             f"<p>L = <b>{number(s.loss)}</b></p>", _mark(s, "loss"), "<h2>Backward pass</h2>"]
    last = s.layers[-1]
    work += [f"<h3>dL/d(output of {e(last.name)}), from the loss: {e(LOSS_FORMULAS[s.loss_type][1])}</h3>",
             grd(last.grad_output, last.node)]
    for layer, below in zip(reversed(s.layers), [*reversed(s.layers[:-1]), None]):
        work += [f"<h3>{e(layer.name)}</h3>", f"<p>{e(FORMULAS[layer.type][1])}</p>", _mark(s, layer.index)]
        for key in keys.get(layer.index, ()):
            work += [f"<p>dL/d{e(key.split('.', 1)[1])} (summed over every position it touched"
                     f"{' and the images of the batch' if batched else ''})</p>", grd(s.params[key]["grad"],
                                                                                       params.get(key), weights)]
        target = f"output of {below.name}" if below is not None else "x, the input"
        work += [f"<p>dL/d({e(target)})</p>", grd(below.grad_output if below is not None else s.grad_input,
                                                   below.node if below is not None else s.input_node)]
    work += [f"<h2>One step of gradient descent, lr = {s.lr:g}</h2>", _mark(s, "step")]
    for key, p in s.params.items():
        work += [f"<p>{e(key)} after the step</p>", val(p["after_step"], None, weights)]
    work.append(f"<p>L = {number(s.loss)} &#x2192; {number(s.loss_after_step)} on this input</p>")

    side = ['<div class="stepper"><div class="controls"><button class="prev">&#x2190; Previous</button> '
            '<button class="next">Next &#x2192;</button> <span class="note">(or the arrow keys)</span></div>',
            '<p class="step-title">Press Next (or the right arrow) to walk the backward pass from the loss.</p>',
            '<p>gradient: <b class="step-grad"></b> <span class="note step-where"></span></p>'
            '<table class="step-terms"></table></div>'
            if step_list else '<p class="note">No step-through for this graph (it is too large, or a mistake was '
                              'made on purpose: its numbers are not the graph\'s).</p></div>']
    collapsed, scalar = _svg(s, True), (_svg(s, False) if step_list else None)
    if collapsed or scalar:
        if collapsed and scalar:
            side.append('<button class="toggle-graph">Show the scalar graph / the collapsed graph</button>')
        side.append(f'<div class="graph">{collapsed or scalar}</div>')
        if collapsed and scalar:
            side.append(f'<div class="graph hidden">{scalar}</div>')
    else:
        side.append('<p class="note">(No graph picture: Graphviz\'s dot is not installed, or the graph is too '
                    'large.)</p>')
    body = (f'<div class="tgc" id="{uid}" tabindex="0"><div class="layout"><div class="work">{"".join(work)}</div>'
            f'<div class="side">{"".join(side)}</div></div></div>')
    script = SCRIPT % {"uid": json.dumps(uid), "steps": json.dumps(step_list), "keys_on_document": json.dumps(
        not fragment)}
    if fragment:
        return f"<style>{STYLE}</style>{body}<script>{script}</script>"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(s.title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}<script>{script}</script></body></html>")


def _mark(s, place):
    return f'<div class="mistake">The mistake made here: {html.escape(s.marks[place])}</div>' if place in s.marks else ""


def _check_section(report):
    e = html.escape
    rows = []
    for key, q in report.quantities.items():
        status = '<span class="right">right</span>' if q["right"] else '<span class="wrong">wrong</span>'
        rows.append(f"<tr><td>{e(key)}</td><td>{status}</td><td>{e(json.dumps(q['given']))}</td>"
                    f"<td>{e(json.dumps(np.round(q['expected'], 6).tolist()))}</td></tr>")
    out = ["<h2>The student's numbers</h2>", '<table class="grid"><tr><th>quantity</th><th></th><th>given</th>'
           f'<th>the engine\'s</th></tr>{"".join(rows)}</table>']
    if report.all_right:
        return out + ["<p class='right'>All right.</p>"]
    out.append(f"<p>The first wrong quantity, in working order: <b>{e(report.first_wrong)}</b></p>")
    for d in report.diagnoses:
        out.append(f'<div class="mistake"><b>{e(d["mistake"])}</b>: {e(d["text"])}. It reproduces '
                   f'{e(", ".join(d["explains"]))}.</div>')
    if not report.diagnoses:
        out.append("<p>No mistake of the catalogue reproduces these numbers.</p>")
    return out
