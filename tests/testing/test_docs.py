"""docs/testing.md runs as written: its python blocks in order, every test_* they define, and
the output they print equals its text blocks (numbers to 1e-9 relative)."""
import contextlib
import io
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
NUMBER = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")


def blocks(text, language):
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.M | re.S)


def same_output(printed, expected):
    """Equal text, and equal numbers up to the last digits a libm may change."""
    if NUMBER.split(printed) != NUMBER.split(expected):
        return False
    return all(float(a) == pytest.approx(float(b), rel=1e-9) for a, b in
               zip(NUMBER.findall(printed), NUMBER.findall(expected)))


def test_the_guide_runs_and_prints_what_it_shows():
    text = GUIDE.read_text()
    code, shown = blocks(text, "python"), "".join(blocks(text, "text"))
    assert len(code) >= 4 and shown
    namespace, out = {"__name__": "guide"}, io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("\n".join(code), str(GUIDE), "exec"), namespace)
        tests = [f for name, f in namespace.items() if name.startswith("test_") and callable(f)]
        for test in tests:
            test()
    assert len(tests) == 3
    assert same_output(out.getvalue(), shown), out.getvalue()
