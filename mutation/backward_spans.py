"""Where the backward rules are in the engines' source (tensor.py, backend.py, engine.py, ...), found in it.

Backward-rule code is:
- the rules in the rule table (``PRIMITIVES``: every tuple entry after the forward);
- every lambda or nested function whose first argument is ``g`` (a Tensor op's rule);
- the local derivatives of a Value op (``local``, the 4th argument of a ``Value(...)`` call; ``da`` and
  ``db``, the 4th and 6th of an ``_op(...)`` call);
- ``_push`` (where a node applies its rules and collects its gradient);
- then, repeatedly, what only that code uses: a module function called only from backward
  code (``unbroadcast``, ``keep``, ``scatter_windows``...) and a local variable read only
  by it (``inverse`` in ``transpose``).
Found by reading the syntax tree, so the spans follow the files as they change.
"""
import ast

TABLES = ("PRIMITIVES",)
ENTRY_POINTS = ("_push",)
LOCALS = {"Value": {3: "local"}, "_op": {3: "da", 5: "db"}}  # call: {position: keyword} of the derivatives


def _span(node):
    return (node.lineno, node.col_offset), (node.end_lineno, node.end_col_offset)


def _inside(node, spans):
    start, end = _span(node)
    return any(a <= start and end <= b for _, a, b in spans)


def _first_arg(fn):
    args = fn.args.posonlyargs + fn.args.args
    return args[0].arg if args else None


def _functions(tree):
    """Every function and method definition (module level, in classes, nested)."""
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _seeds(tree):
    spans = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict) and \
                any(isinstance(t, ast.Name) and t.id in TABLES for t in node.targets):
            for key, entry in zip(node.value.keys, node.value.values):
                if isinstance(entry, ast.Tuple):
                    label = f"{node.targets[0].id}[{ast.literal_eval(key)!r}] rule"
                    spans += [(label, *_span(rule)) for rule in entry.elts[1:]]
    for node in ast.walk(tree):
        if isinstance(node, ast.Lambda) and _first_arg(node) == "g":
            spans.append((f"rule at line {node.lineno}", *_span(node)))
        elif isinstance(node, ast.FunctionDef) and (_first_arg(node) == "g" or node.name in ENTRY_POINTS):
            spans.append((node.name, *_span(node)))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in LOCALS:
            for position, keyword in LOCALS[node.func.id].items():
                local = node.args[position] if len(node.args) > position else next(
                    (k.value for k in node.keywords if k.arg == keyword), None)
                if local is not None:
                    spans.append((f"local derivatives at line {node.lineno}", *_span(local)))
    return _outermost(spans)


def _outermost(spans):
    """The spans not inside another one, in source order."""
    kept = []
    for span in sorted(spans, key=lambda s: (s[1], -s[2][0], -s[2][1])):
        if not (kept and kept[-1][1] <= span[1] and span[2] <= kept[-1][2]):
            kept.append(span)
    return kept


def _only_used_by(spans, names, scope):
    """True when ``names`` are read in ``scope`` at least once, and only inside ``spans``."""
    reads = [n for n in ast.walk(scope) if isinstance(n, ast.Name) and n.id in names and isinstance(n.ctx, ast.Load)]
    return bool(reads) and all(_inside(n, spans) for n in reads)


def backward_spans(source):
    """[(label, (line, col), (end_line, end_col))] of the backward-rule code in ``source``."""
    tree = ast.parse(source)
    spans = _seeds(tree)
    changed = True
    while changed:
        changed = False
        for fn in tree.body:
            if isinstance(fn, ast.FunctionDef) and not _inside(fn, spans) and _only_used_by(spans, {fn.name}, tree):
                spans.append((fn.name, *_span(fn)))
                changed = True
        for fn in _functions(tree):
            for stmt in ast.walk(fn):
                if isinstance(stmt, ast.Assign) and not _inside(stmt, spans):
                    names = {n.id for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)}
                    if names and _only_used_by(spans, names, fn):
                        spans.append((f"{', '.join(sorted(names))} in {fn.name}", *_span(stmt)))
                        changed = True
    return _outermost(spans)


def contains(spans, start, end):
    """Whether the source range start..end ((line, col) pairs) lies inside one of ``spans``."""
    return any(a <= tuple(start) and tuple(end) <= b for _, a, b in spans)
