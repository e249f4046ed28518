"""The correction loop as a new user runs it: the README's lines, the report's edit mode.

``benchmarks.readme_loop`` runs the command lines of the README's "The correction loop"
block, in order, through the real command line, in a folder holding a generated procedure
seen through a scope the bundled model never knew. Here the reviewer is a person in the
report ``segment --report`` wrote, in Debian's headless chromium: edit mode, merge the
model's sections into one, split it at each true boundary by typing the time as the page
shows it, pick each true organ, save. The download is what the README's ``dataset`` line
reads, found by content in the folder (``--videos .``); ``train --init bundled`` fine-tunes
the bundled model (two steps: this proves the walk, the benchmark measures it), ``export``
and ``evaluate`` run on what it made. Skips where chromium, Selenium or torch are missing.
"""

from __future__ import annotations

import csv
import re
import shutil
import time
from pathlib import Path

import pytest

from benchmarks import readme_loop as walk_loop
from endostream.corrections.rules import read_corrections
from endostream.output.document import read_sections
from helpers.browser import WAIT_S, chrome

pytest.importorskip("selenium.webdriver")
pytest.importorskip("jinja2")
pytest.importorskip("torch")
pytestmark = pytest.mark.slow

#: The walk's default seed: the bundled model gets a quarter of procedure.mp4 wrong, so the
#: reviewer has something to correct (segment F1 0.5 before).
SEED = walk_loop.DEFAULT_SEED


def _type(element, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(text, Keys.TAB)


def _clock(t: float) -> str:
    """A time as the page shows it (m:ss.s)."""
    return f"{int(t // 60)}:{t % 60:04.1f}"


def browser_reviewer(tmp: Path):
    def review(work: Path, truth) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select

        downloads = tmp / "downloads"
        downloads.mkdir()
        driver = chrome(tmp / "profile", width=1280, height=1000, downloads=downloads)
        try:
            driver.get((work / "report.html").as_uri())
            driver.find_element(By.ID, "edit-toggle").click()
            op = {b.get_attribute("data-op"): b for b in
                  driver.find_elements(By.CSS_SELECTOR, "#corrections button[data-op]")}

            def rows():
                return driver.find_elements(By.CSS_SELECTOR, "#edit-table tbody tr")

            rows()[0].find_element(By.CSS_SELECTOR, "td").click()
            while len(rows()) > 1:
                op["merge"].click()
            for section in truth.sections[1:]:
                _type(driver.find_element(By.ID, "edit-at"), _clock(section.start_s))
                op["split"].click()
            assert len(rows()) == len(truth.sections), \
                driver.find_element(By.ID, "edit-message").text
            for k, section in enumerate(truth.sections):  # each change redraws the table
                Select(rows()[k].find_element(By.TAG_NAME, "select")).select_by_value(
                    section.label)
            op["save"].click()
            deadline = time.monotonic() + WAIT_S
            while not list(downloads.glob("*.json")) and time.monotonic() < deadline:
                time.sleep(0.1)
            (saved,) = downloads.glob("*.json")
        finally:
            driver.quit()
        # The page names no recording (--path-in-report none): the name is the
        # fingerprint's, and it matches the README's glob.
        assert re.fullmatch(r"procedure-[0-9a-f]{8}\.corrected\.sections\.json", saved.name)
        shutil.move(str(saved), work / saved.name)  # next to the video, as the README says

    return review


def test_the_readme_loop_runs_as_written_with_the_reviewer_in_the_report(tmp_path, capsys):
    work = tmp_path / "clinic"
    result = walk_loop.walk(work, reviewer=browser_reviewer(tmp_path), quick=True, seed=SEED)

    # Every README line ran, in its order, as written (but for --quick's smaller numbers).
    written = walk_loop.readme_commands()
    assert [c[0] for c in result.commands] == [c[0] for c in written] == [
        "segment", "next", "synth", "dataset", "train", "export", "evaluate"]
    for ran, line in zip(result.commands, written, strict=True):
        expected = walk_loop.with_options(walk_loop.expand(line, work), {
            k: v for k, v in walk_loop.QUICK.get(line[0], {}).items() if k in line})
        assert ran[:len(expected)] == expected  # globs as bash expands them

    # The page's file is the reviewer's correction, valid for every reader, and it was a
    # correction: the model had it wrong before.
    model = read_sections(work / "procedure.sections.json")
    corrected = read_corrections(result.corrected, model)
    assert corrected.review.changed
    truth = [(s.label, s.start_frame, s.end_frame) for s in result_truth(work)]
    assert [(s.label, s.start_frame, s.end_frame) for s in corrected.sections] == truth
    assert result.scores["corrected video, before"]["f1"] < 1.0

    # dataset found the recording by content and trained on it beside the old data.
    with open(work / "corrected" / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert {Path(r["path"]).name for r in rows if r["path"].endswith(".mp4")} == {
        "procedure.mp4"}
    assert any(r["path"].endswith(".jpg") for r in rows)
    err = capsys.readouterr().err
    assert "corrected recordings trained on: procedure.mp4" in err
    assert (work / "tuned.onnx").is_file() and (work / "review" / "next.csv").is_file()
    assert set(result.scores) == {f"{v} video, {m}" for v in ("corrected", "kept-out")
                                  for m in ("before", "after")}


def result_truth(work: Path):
    """The truth of procedure.mp4 as the walk rendered it (its seed)."""
    import numpy as np

    from benchmarks import loop_world as lw
    from endostream.synth import ground_truth

    spec = lw.procedure_spec(np.random.default_rng(SEED))
    fov, _, palette = lw.CLINIC_SCOPE.partition(":")
    return ground_truth(spec, fps=lw.VIDEO_FPS, width=lw.SIZE[0], height=lw.SIZE[1],
                        seed=SEED * 100, fov=fov, palette=palette).sections
