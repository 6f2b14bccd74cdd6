"""Checking a student's answers: which numbers are right, the first wrong one, and why.

The answers are any of the quantities of ``worked --json`` (same keys), the decimals the student
wrote. A number is right when it agrees with the engine's at those decimals (0.57 for 0.570342).
Each mistake of the catalogue is replayed on the engine; it explains a wrong quantity when its
numbers are the student's at the student's decimals.
"""
import json
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from . import mistakes as M
from .network import batch_size, work_network


class AnswersError(ValueError):
    """Answers that cannot be checked (not JSON, unknown keys, wrong shapes)."""


@dataclass
class Report:
    quantities: dict   # key -> {"given", "expected", "right"}
    first_wrong: str
    diagnoses: list    # {"mistake", "explains", "text"}
    solution: object = None  # the right solution

    def _repr_html_(self):
        """The check as one page (the student's numbers beside the right ones), inline in a notebook."""
        from .page import page
        return page(self.solution, report=self, fragment=True)

    @property
    def all_right(self):
        return self.first_wrong is None

    def to_json(self):
        return {"all_right": self.all_right, "first_wrong": self.first_wrong, "diagnoses": self.diagnoses,
                "quantities": self.quantities}


_LABELS = ("index", "type", "name")  # a layer's labels in worked --json: not quantities


def flatten(obj, prefix=""):
    """{dotted key: leaf} for the quantities of a worked --json object (lists of layers indexed)."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in _LABELS:
                out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list) and obj and isinstance(obj[0], dict):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = obj
    return out


def working_order(keys):
    """The keys in the order a person works them: forward values, the loss, then the gradients from
    the loss back, then the step."""
    from . import FORWARD, GRADS  # the built-ins' keys, in working order

    def rank(key):
        parts = key.split(".")
        if key in FORWARD[:-1]:
            return (0, FORWARD.index(key))
        if parts[0] == "grad" and len(parts) == 2 and parts[1] in GRADS:
            return (2, GRADS.index(parts[1]))
        if parts[0] == "layers":
            i = int(parts[1])
            return (0, i) if parts[2] == "output" else (2, -i)
        if parts[0] == "loss":
            return (1, 0)
        if parts[0] == "grad_input":
            return (3, 0)
        if parts[0] == "params":
            return (4 if parts[-1] == "grad" else 5, 0)
        return (0, 0) if parts[0] in ("input", "target") else (0, 1)
    return sorted(keys, key=rank)


def _shown(key):
    """A key for a one-line message: as written, or as a JSON string when it is empty or holds line
    breaks or other characters that do not print."""
    return key if key and key.isprintable() else json.dumps(key)


def _check_numbers(key, value):
    """The student's numbers of one quantity: finite JSON numbers (nested lists of them), or an AnswersError."""
    for v in np.ravel(np.array(value, dtype=object)) if isinstance(value, list) else [value]:
        if isinstance(v, list):
            _check_numbers(key, v)
        elif isinstance(v, bool) or not isinstance(v, (int, Decimal)) or not Decimal(v).is_finite() \
                or v and Decimal(v).adjusted() > 300:
            raise AnswersError(f"{_shown(key)}: expected finite numbers, got {json.dumps(_plain(v), default=str)[:40]}")


def _decimals(d):
    return max(0, -d.as_tuple().exponent) if isinstance(d, Decimal) else 0


def _agrees(given, expected):
    """Whether the student's numbers (Decimals/ints, nested) agree with ``expected`` at their decimals."""
    g, e = np.array(given, dtype=object), np.asarray(expected, dtype=np.float64)
    if g.shape != e.shape:
        return False
    for a, b in zip(g.flat, e.flat):
        if isinstance(a, (list, dict)) or a is None or isinstance(a, bool):
            return False
        if abs(float(a) - b) > 0.5 * 10.0 ** -_decimals(a) + 1e-9:
            return False
    return True


def _plain(value):
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return float(value) if isinstance(value, Decimal) else value


def check(answers, model, x, target, loss, lr=0.01, engine="value", names=None, state=None, keys_of=None):
    """Check ``answers`` (a dict as ``worked --json``, numbers as Decimals) against the worked solution of
    the network; ``keys_of(solution)`` gives the JSON object (default ``solution.to_json()``)."""
    keys_of = keys_of or (lambda s: s.to_json())
    solve = lambda mistakes=(): keys_of(work_network(model, x, target, loss, lr, engine, None, names, state,
                                                     mistakes))
    right = work_network(model, x, target, loss, lr, engine, None, names, state)
    expected = flatten(keys_of(right))
    given = flatten(answers)
    if not given:
        raise AnswersError("no quantities to check (the keys are those of worked --json: loss, layers.0.output, ...)")
    for key, value in given.items():
        _check_numbers(key, value)
    unknown = [k for k in given if k not in expected]
    if unknown:
        listed = ", ".join(map(_shown, unknown))
        raise AnswersError(f"unknown quantit{'ies' if len(unknown) > 1 else 'y'} {listed} (the keys are "
                           f"those of worked --json: {', '.join(list(expected)[:12])}, ...)")
    quantities = {}
    for key in working_order(given):
        if np.shape(np.array(given[key], dtype=object)) != np.shape(expected[key]):
            raise AnswersError(f"{key}: expected shape {np.shape(expected[key])}, got "
                               f"{np.shape(np.array(given[key], dtype=object))}")
        quantities[key] = {"given": _plain(given[key]), "expected": expected[key],
                           "right": _agrees(given[key], expected[key])}
    wrong = [k for k, q in quantities.items() if not q["right"]]
    diagnoses = []
    if wrong:
        batch = batch_size(model, np.shape(x))
        explained = {}
        for name in M.CATALOGUE:
            if not M.applies(name, model, batch):
                continue
            replay = flatten(solve((name,)))
            hits = [k for k in wrong if _agrees(given[k], replay[k])]
            if hits:
                explained[name] = hits
        if len(explained) > 1:  # several mistakes at once: the replay of all of them together
            together = tuple(explained)
            replay = flatten(solve(together))
            hits = [k for k in wrong if _agrees(given[k], replay[k])]
            if len(hits) > max(map(len, explained.values())):
                explained = {" + ".join(together): hits, **explained}
        for name, hits in sorted(explained.items(), key=lambda kv: (wrong[0] not in kv[1], -len(kv[1]))):
            text = "; ".join(M.CATALOGUE[n].text for n in name.split(" + "))
            diagnoses.append({"mistake": name, "explains": hits, "text": text})
    return Report(quantities, wrong[0] if wrong else None, diagnoses, right)


def loads(text, source="answers"):
    from .modelfile import decimal_json
    obj = decimal_json(text, source, AnswersError)
    if not isinstance(obj, dict):
        raise AnswersError(f"{source}: expected a JSON object with quantities of worked --json")
    return obj


def lines(report):
    """The report as text: each quantity right or wrong, the first wrong one, the diagnoses."""
    out = []
    for key, q in report.quantities.items():
        out.append(f"{'right' if q['right'] else 'WRONG'}  {key} = {json.dumps(q['given'])}"
                   + ("" if q["right"] else f"   (the engine's: {json.dumps(np.round(q['expected'], 6).tolist())})"))
    if report.all_right:
        return out + ["", "All right."]
    out += ["", f"The first wrong quantity, in working order: {report.first_wrong}"]
    if not report.diagnoses:
        out.append("No mistake of the catalogue reproduces these numbers.")
    for d in report.diagnoses:
        out.append(f"Diagnosis: {d['mistake']}: {d['text']}. It reproduces {', '.join(d['explains'])}.")
    return out
