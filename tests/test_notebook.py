"""examples/worked_notebook.ipynb runs top to bottom in a kernel and shows each result as the page
(needs the `notebook` extra: pip install -e '.[notebook]'; skipped without it)."""
import os
import re

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook extra is not installed (pip install -e '.[notebook]')")
nbclient = pytest.importorskip("nbclient", reason="the notebook extra is not installed (pip install -e '.[notebook]')")
pytest.importorskip("ipykernel", reason="the notebook extra is not installed (pip install -e '.[notebook]')")

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def test_the_notebook_runs_and_shows_three_pages_that_do_not_collide():
    nb = nbformat.read(os.path.join(EXAMPLES, "worked_notebook.ipynb"), as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": EXAMPLES}}).execute()
    pages, printed = [], []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "execute_result" and "text/html" in out.get("data", {}):
                pages.append(out["data"]["text/html"])
            if out.get("output_type") == "stream":
                printed.append(out["text"])
            assert out.get("output_type") != "error", out
    assert len(pages) == 3
    ids = [re.search(r'class="tgc" id="(tg[0-9a-f]+)"', p).group(1) for p in pages]
    assert len(set(ids)) == 3 and all("<!DOCTYPE" not in p for p in pages)
    assert "loss 1.313262" in printed[0] and "loss 0.853508" in printed[1]
    assert "missing-batch-mean" in printed[2] and "The student's numbers" in pages[2]
