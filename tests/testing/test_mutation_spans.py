"""`make mutate` mutates backward-rule code only: mutation/backward_spans.py finds it in the source."""
import ast
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("backward_spans", ROOT / "mutation" / "backward_spans.py")
spans_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(spans_module)

SOURCE = '''
import numpy as np

def _unbroadcast(g, shape):
    return g.sum(axis=0)

def _norm(x):
    return np.sqrt(x)

def _helper_of_rules(x):
    return x * 2

def _shared(x):
    return x + 1

class T:
    def mul(self, other):
        x, y = self.data, other.data
        twice = _helper_of_rules(y)
        out = _shared(x) * y
        return make(out, (self, other), "*", (lambda g: g * twice, lambda g: g * _shared(x)))

    def _push(self):
        self.parent.pending = _unbroadcast(self.pending, self.shape)

    def scaled(self, k):
        return Value(self.data * k, (self,), "scaled", (k + 0,))

PRIMITIVES = {"+": (np.add, lambda g, x, y, out: g, lambda g, x, y, out: g)}
'''


def covered(source, fragment, occurrence=0):
    """Whether the ``occurrence``-th appearance of ``fragment`` in ``source`` lies in backward-rule code."""
    spans = spans_module.backward_spans(source)
    lines, at = source.splitlines(), -1
    for number, line in enumerate(lines, 1):
        col = line.find(fragment)
        while col >= 0:
            at += 1
            if at == occurrence:
                return spans_module.contains(spans, (number, col), (number, col + len(fragment)))
            col = line.find(fragment, col + 1)
    raise AssertionError(f"{fragment!r} #{occurrence} not in source")


def test_rules_entry_points_and_what_only_they_use_are_backward_code():
    assert covered(SOURCE, "lambda g: g * twice") and covered(SOURCE, "lambda g: g * _shared(x)")
    assert covered(SOURCE, "return g.sum(axis=0)")            # a function whose first argument is g
    assert covered(SOURCE, "return x * 2")                    # called only from backward code
    assert covered(SOURCE, "twice = _helper_of_rules(y)")     # a local read only by a rule
    assert covered(SOURCE, "self.parent.pending")             # _push
    assert covered(SOURCE, "k + 0")                           # a Value's local derivatives
    assert covered(SOURCE, "lambda g, x, y, out: g", 0) and covered(SOURCE, "lambda g, x, y, out: g", 1)


def test_forward_code_is_not_backward_code():
    assert not covered(SOURCE, "np.add")                      # a table entry's forward
    assert not covered(SOURCE, "return x + 1")                # used by forward and backward
    assert not covered(SOURCE, "out = _shared(x) * y")
    assert not covered(SOURCE, "x, y = self.data, other.data")  # read by forward code too
    assert not covered(SOURCE, "self.data * k")               # a Value's forward
    assert not covered(SOURCE, "np.sqrt(x)")                  # used by nobody


def test_the_engines_rule_tables_and_value_locals_are_all_selected():
    tensor = (ROOT / "tinygrad_cnn" / "tensor.py").read_text()
    spans = spans_module.backward_spans(tensor)
    for node in ast.walk(ast.parse(tensor)):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "PRIMITIVES":
            for entry in node.value.values:
                forward, *rules = entry.elts
                assert rules and all(spans_module.contains(spans, (r.lineno, r.col_offset),
                                                           (r.end_lineno, r.end_col_offset)) for r in rules)
                assert not spans_module.contains(spans, (forward.lineno, forward.col_offset),
                                                 (forward.end_lineno, forward.end_col_offset))
    engine = (ROOT / "tinygrad_cnn" / "engine.py").read_text()
    spans = spans_module.backward_spans(engine)
    assert "_push" in [label for label, _, _ in spans]
    ops = [node for node in ast.walk(ast.parse(engine))
           if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "_op"]
    derivatives = [node.args[i] for node in ops for i in (3, 5) if len(node.args) > i]  # da and db
    assert len(ops) >= 12 and len(derivatives) > len(ops)
    for d in derivatives:
        assert spans_module.contains(spans, (d.lineno, d.col_offset), (d.end_lineno, d.end_col_offset)), ast.unparse(d)
    for node in ops:  # the op's forward value is not backward code
        data = node.args[0]
        assert not spans_module.contains(spans, (data.lineno, data.col_offset), (data.end_lineno, data.end_col_offset))
