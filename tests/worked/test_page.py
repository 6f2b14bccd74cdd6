"""The worked solution as one self-contained page: what it holds (read as text), and what a person
sees in a real browser (Debian's chromium driven by selenium; those tests skip without it)."""
import base64
import json
import os
import re
import shutil

import numpy as np
import pytest

from tinygrad_cnn import cli
from tinygrad_cnn import worked as W
from tinygrad_cnn.worked import check as C
from tinygrad_cnn.worked import modelfile
from tinygrad_cnn.worked.page import page, steps

MODEL = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "models", "batch_softmax.json")
DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs")


def _steps(html_text):
    return json.loads(re.search(r"steps=(\[.*?\]), at=", html_text, re.S).group(1))


def test_the_page_is_self_contained_and_holds_every_number():
    r = W.work()
    text = page(r.solution, errata=r.errata)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text) and "<link" not in text and "@import" not in text
    assert "<math" in text and text.count("<table") > 20
    for value in ("1.313262", "-3.718282", "0.731059"):  # the loss, dL/da4, dL/dz4 as a person writes them
        assert value in text
    assert "Course material erratum (loss)" in text
    if shutil.which("dot"):
        assert "<svg" in text


def test_the_step_through_walks_the_graph_from_the_loss_and_sums_the_chain_rule_terms():
    r = W.work()
    walk, index = steps(r.solution.root)
    assert walk[0]["label"] == "L" and walk[0]["grad"] == "1" and walk[0]["terms"] == []
    order = {s["id"]: i for i, s in enumerate(walk)}
    for node in index:  # every node comes after all the nodes that used it (a reverse topological order)
        for parent in node.parents:
            if f"v{index[node]}" in order and f"v{index[parent]}" in order:
                assert order[f"v{index[parent]}"] > order[f"v{index[node]}"]
    weight = next(s for s in walk if s["label"] == "F[0,0,0,0]")  # F[0,0]: used by 16 multiplications
    assert len(weight["terms"]) == 16 and weight["terms"][-1]["sum"] == weight["grad"]
    assert float(weight["grad"]) == pytest.approx(r.grads["F"][0, 0], abs=1e-6)


def test_check_page_shows_the_students_numbers_and_the_diagnosis(tmp_path, capsys):
    answers = tmp_path / "a.json"
    answers.write_text('{"loss": 0.85, "params": {"0": {"bias": {"grad": [0.18, 0.07]}}}}')
    out = tmp_path / "c.html"
    assert cli.main(["check", str(answers), "--model", MODEL, "--html", str(out)]) == 1
    text = out.read_text()
    assert "The student's numbers" in text and "missing-batch-mean" in text and "[0.18, 0.07]" in text


def test_a_page_for_a_model_file_and_for_a_mistake(tmp_path, capsys):
    out = tmp_path / "m.html"
    assert cli.main(["worked", "--model", MODEL, "--html", str(out), "--engine", "tensor"]) == 0
    text = out.read_text()
    assert "CrossEntropyLoss" in text and len(_steps(text)) > 5
    assert cli.main(["worked", "--model", MODEL, "--mistake", "pool-grad-to-all-ties", "--html", str(out)]) == 0
    text = out.read_text()
    assert "made on purpose" in text and "The mistake made here" in text and _steps(text) == []


def test_html_output_is_checked_before_any_work(tmp_path, capsys):
    assert cli.main(["worked", "--html", str(tmp_path / "no" / "p.html")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["worked", "--html", str(tmp_path / "p.htm")]) == 2
    assert "ending in .html" in capsys.readouterr().err


def test_in_a_notebook_two_results_do_not_collide():
    a, b = W.work()._repr_html_(), modelfile.load(MODEL).work()._repr_html_()
    ids = [re.search(r'class="tgc" id="(tg[0-9a-f]+)"', t).group(1) for t in (a, b)]
    assert ids[0] != ids[1] and "<!DOCTYPE" not in a
    assert f"getElementById({json.dumps(ids[0])})" in a and "keys_on_document" not in a
    report = C.check({"loss": 1}, *(lambda f: (f.model, f.x, f.target, f.loss, f.lr))(modelfile.load(MODEL)))
    assert "The student's numbers" in report._repr_html_()


# --- in a real browser -----------------------------------------------------------------------------------
def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[browser]')")
    from selenium.webdriver.chrome.service import Service
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them when it may: "
                    "scripts/ensure-chromium.sh)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


def _open(browser, tmp_path, solution, **options):
    path = tmp_path / "page.html"
    path.write_text(page(solution, **options), encoding="utf-8")
    browser.get(path.as_uri())
    return path


@pytest.mark.parametrize("which", ["cnn10", "square15", "model file"])
def test_the_page_loads_without_errors_and_the_arrow_keys_walk_the_backward_pass(browser, tmp_path, which):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    if which == "model file":
        solution, errata = modelfile.load(MODEL).work(), ()
    else:
        r = W.work(which)
        solution, errata = r.solution, r.errata
    _open(browser, tmp_path, solution, errata=errata)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    walk, _ = steps(solution.root)
    body = browser.find_element(By.TAG_NAME, "body")
    n = 7
    for _ in range(n):
        body.send_keys(Keys.ARROW_RIGHT)
    step = walk[n - 1]
    assert browser.find_element(By.CSS_SELECTOR, ".step-title").text == f"Step {n} of {len(walk)}: {step['label']}"
    assert browser.find_element(By.CSS_SELECTOR, ".step-grad").text == step["grad"]
    lit = browser.find_elements(By.CSS_SELECTOR, ".current")
    assert lit and all(e.get_attribute("data-n") in (step["id"], None) for e in lit)
    body.send_keys(Keys.ARROW_LEFT)
    assert browser.find_element(By.CSS_SELECTOR, ".step-title").text.startswith(f"Step {n - 1} of ")
    png = tmp_path / "shot.png"
    assert browser.save_screenshot(str(png)) and png.stat().st_size > 10_000


def test_the_first_step_is_the_loss_with_gradient_1_and_a_shared_weight_shows_its_sum(browser, tmp_path):
    from selenium.webdriver.common.by import By
    r = W.work()
    _open(browser, tmp_path, r.solution, errata=r.errata)
    nxt = browser.find_element(By.CSS_SELECTOR, "button.next")
    nxt.click()
    assert browser.find_element(By.CSS_SELECTOR, ".step-title").text.endswith(": L")
    assert browser.find_element(By.CSS_SELECTOR, ".step-grad").text == "1"
    walk, _ = steps(r.solution.root)
    k = next(i for i, s in enumerate(walk) if s["label"] == "F[0,0,0,0]")
    for _ in range(k):
        nxt.click()
    rows = browser.find_elements(By.CSS_SELECTOR, ".step-terms tr")
    assert len(rows) == 16 and rows[-1].text.endswith(f"sum so far {walk[k]['grad']}")
    if os.environ.get("TINYGRAD_CNN_SCREENSHOTS"):  # the README's picture: the shared weight's 16 terms
        browser.save_screenshot(os.path.join(DOCS, "page.png"))


def test_printing_gives_clean_a4_pages_without_buttons(browser, tmp_path):
    from selenium.webdriver.common.by import By
    r = W.work()
    _open(browser, tmp_path, r.solution, errata=r.errata)
    pdf = base64.b64decode(browser.print_page())
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 2 <= pages <= 12, pages
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert browser.find_element(By.CSS_SELECTOR, ".stepper").value_of_css_property("display") == "none"
        grid = browser.find_element(By.CSS_SELECTOR, "table.grid")
        assert grid.value_of_css_property("break-inside") == "avoid"
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})


def test_values_and_gradients_have_their_own_colours(browser, tmp_path):
    from selenium.webdriver.common.by import By
    solution = modelfile.load(MODEL).work()
    _open(browser, tmp_path, solution)
    colours = {c.value_of_css_property("background-color") for c in browser.find_elements(By.CSS_SELECTOR, "td")}
    assert len(colours) > 10
    assert np.isclose(solution.loss, float(browser.find_element(By.TAG_NAME, "b").text))
