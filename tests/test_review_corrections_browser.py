"""The report's edit mode in a real headless chromium: correct, refuse, undo, save.

The page's download is validated with the shipped JSON Schema, checked by the runtime's
corrections rules against the original, and read back by the review loader. Screenshots
of the edit mode at desktop and phone width are written for a person to look at
(``ENDOSTREAM_SCREENSHOTS=DIR`` keeps them). Skips where chromium, chromium-driver,
Selenium, jinja2, matplotlib or jsonschema are missing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from endostream.cli import main
from endostream.corrections.rules import CORRECTED_SUFFIX, read_corrections
from endostream.output.document import read_sections
from endostream.output.sections_file import schema
from endostream.procedure import load_procedure
from helpers.browser import WAIT_S, chrome
from helpers.review import make_procedure

pytest.importorskip("selenium.webdriver")
pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")
jsonschema = pytest.importorskip("jsonschema")

#: What the edits below must produce: (label, first frame, last frame) at 25 fps.
EXPECTED = [("ear", 0, 24), ("nose", 25, 39), ("unusable", 40, 49), ("nose", 50, 79),
            ("vocal_folds", 80, 129)]


@pytest.fixture
def report(tmp_path):
    t = make_procedure(tmp_path)
    out = tmp_path / "report.html"
    assert main(["report", str(t.sections), "--csv", str(t.csv), "--out", str(out)]) == 0
    return t, out


def _rows(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#edit-table tbody tr")


def _state(driver):
    """(label, frames) of each row as the page shows it."""
    return [(r.find_element("css selector", "select").get_attribute("value"),
             r.find_element("css selector", ".edit-frames").get_attribute("textContent"))
            for r in _rows(driver)]


def _message(driver) -> str:
    return driver.find_element("id", "edit-message").text


def _type(element, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    # As a person types: select what is there, type over it, leave the field ("change"
    # fires then). Selenium's clear() would fire a change of its own.
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(text, Keys.TAB)


def _screenshot(driver, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ENDOSTREAM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    driver.execute_script("document.getElementById('corrections').scrollIntoView()")
    path = folder / name
    driver.save_screenshot(str(path))
    return path


def test_edit_mode_corrects_refuses_undoes_and_saves_a_valid_file(report, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    t, out = report
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chrome(tmp_path / "profile", width=1280, height=1000, downloads=downloads)
    try:
        driver.get(out.as_uri())
        wait = WebDriverWait(driver, WAIT_S)
        assert not driver.find_element(By.ID, "edit-panel").is_displayed()
        driver.find_element(By.ID, "edit-toggle").click()
        assert driver.find_element(By.ID, "edit-panel").is_displayed()
        assert _state(driver) == [("ear", "0–39"), ("unusable", "40–59"), ("nose", "60–89"),
                                  ("vocal_folds", "90–129")]
        op = {b.get_attribute("data-op"): b
              for b in driver.find_elements(By.CSS_SELECTOR, "#corrections button[data-op]")}

        # Split the first section at a typed time, then relabel its second half.
        _type(driver.find_element(By.ID, "edit-at"), "1.0")
        op["split"].click()
        assert [f for _, f in _state(driver)] == ["0–24", "25–39", "40–59", "60–89", "90–129"]
        Select(_rows(driver)[1].find_element(By.TAG_NAME, "select")).select_by_value("nose")
        assert _state(driver)[1] == ("nose", "25–39")

        # Move a boundary by typing a time; a time outside the two sections is refused.
        _type(_rows(driver)[3].find_elements(By.TAG_NAME, "input")[0], "0:02.0")
        assert _state(driver)[2:4] == [("unusable", "40–49"), ("nose", "50–89")]
        before = _state(driver)
        _type(_rows(driver)[3].find_elements(By.TAG_NAME, "input")[0], "0.5")
        assert _message(driver).startswith("Refused:")
        assert _state(driver) == before

        # Move a boundary to the player's current time.
        wait.until(lambda d: d.execute_script(
            "return document.getElementById('player').readyState >= 1"))
        driver.execute_script("document.getElementById('player').currentTime = 3.2")
        wait.until(lambda d: abs(d.execute_script(
            "return document.getElementById('player').currentTime") - 3.2) < 1e-3)
        wait.until(lambda d: d.find_element(By.ID, "edit-at").get_attribute("value") == "0:03.2")
        _rows(driver)[4].find_element(By.CSS_SELECTOR, "td").click()
        op["start"].click()
        assert _state(driver)[3:] == [("nose", "50–79"), ("vocal_folds", "80–129")]

        # The first section's start cannot move; merge, then undo it.
        op_first = _rows(driver)[0].find_elements(By.TAG_NAME, "input")[0]
        assert not op_first.is_enabled()
        _rows(driver)[3].find_element(By.CSS_SELECTOR, "td").click()
        op["merge"].click()
        assert len(_rows(driver)) == 4
        op["undo"].click()
        assert [(lab, f) for lab, f in _state(driver)] == [
            (lab, f"{a}–{b}") for lab, a, b in EXPECTED]

        _screenshot(driver, "edit-mode-1280.png", tmp_path)
        op["save"].click()
        # The report names no video by default (--path-in-report none): neither does the
        # file it saves.
        saved = downloads / f"sections{CORRECTED_SUFFIX}"  # after the sections file
        deadline = time.monotonic() + WAIT_S
        while not saved.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert saved.is_file(), f"no download in {list(downloads.iterdir())}"
        assert "Saved" in _message(driver)
    finally:
        driver.quit()

    doc = json.loads(saved.read_text())
    jsonschema.validate(doc, schema())
    original = json.loads(t.sections.read_text())
    assert read_corrections(saved, read_sections(t.sections)).review.changed == (0, 1, 2, 3, 4)
    assert doc["review"]["original_sections"] == original["sections"]
    assert doc["review"]["changed"] == [0, 1, 2, 3, 4]
    assert doc["review"]["tool"].startswith("endostream report")
    assert doc["source"] == {**original["source"], "path": ""}
    assert doc["models"] == {**original["models"], "path": "tiny.onnx"}
    assert {k: doc[k] for k in ("analysis", "complete")} == {
        k: original[k] for k in ("analysis", "complete")}
    procedure = load_procedure(saved, t.video)
    got = [(s.label, s.start_frame, s.end_frame) for s in procedure.sections]
    assert got == EXPECTED
    assert [s.start_s for s in procedure.sections] == [a / 25 for _, a, _ in EXPECTED]
    assert all(s.confidence == 1.0 for s in procedure.sections)
    # A report of the corrected file opens in edit mode again, comparing with the model.
    again = tmp_path / "again.html"
    assert main(["report", str(saved), "--video", str(t.video), "--out", str(again)]) == 0


def test_edit_mode_fits_a_phone(report, tmp_path):
    from selenium.webdriver.common.by import By

    _, out = report
    driver = chrome(tmp_path / "profile", width=600, height=900)
    try:
        # Headless chromium's window is at least ~500 px wide: a phone is emulated.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
        driver.get(out.as_uri())
        driver.find_element(By.ID, "edit-toggle").click()
        assert len(_rows(driver)) == 4
        page = driver.execute_script("return document.documentElement.clientWidth")
        assert page <= 390
        for el in driver.find_elements(By.CSS_SELECTOR, "#corrections button, #edit-table"):
            box = el.rect
            assert box["x"] >= 0 and box["x"] + box["width"] <= page + 1, el.get_attribute(
                "outerHTML")[:80]
        _screenshot(driver, "edit-mode-390.png", tmp_path)
    finally:
        driver.quit()


def test_a_second_review_still_compares_with_the_model(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from endostream.corrections.rules import reviewed_document
    from endostream.segmentation.section import Section

    t = make_procedure(tmp_path / "p")
    model = read_sections(t.sections)
    first = reviewed_document(model, [Section("ear", 0.0, 1.0, 0, 24, 0, 0),
                                      Section("nose", 1.0, 2.4, 25, 59, 0, 0),
                                      *model.sections[2:]], tool="first review")
    reviewed = tmp_path / "p" / "reviewed.json"
    reviewed.write_text(first.dumps())
    out = tmp_path / "again.html"
    assert main(["report", str(reviewed), "--video", str(t.video), "--out", str(out)]) == 0
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chrome(tmp_path / "profile", width=1280, height=1000, downloads=downloads)
    try:
        driver.get(out.as_uri())
        driver.find_element(By.ID, "edit-toggle").click()
        Select(_rows(driver)[2].find_element(By.TAG_NAME, "select")).select_by_value("ear")
        driver.find_element(By.CSS_SELECTOR, "button[data-op=save]").click()
        saved = downloads / f"reviewed{CORRECTED_SUFFIX}"  # after the sections file
        deadline = time.monotonic() + WAIT_S
        while not saved.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        driver.quit()
    second = read_corrections(saved, model)
    assert second.review.original_sections == model.sections  # the model's, not the first
    assert [(s.label, s.start_frame) for s in second.sections] == [
        ("ear", 0), ("nose", 25), ("ear", 60), ("vocal_folds", 90)]
    assert second.review.changed == (0, 1, 2)
