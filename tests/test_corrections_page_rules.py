"""One rule set for corrections: the report's page and the readers agree, and what the
page saves every command reads.

The page's validator (``corrections-rules.js``, run in Debian's headless chromium) and the
Python reader (:func:`endostream.output.document.read_sections`) judge the same crafted
documents, valid and each kind of invalid, with the same verdict in the same words. Then
a reviewer's session as the issue tells it, on a procedure whose boundaries lie midway
between analysed frames (as the segmenter puts them): relabel a section, retype the
starts the page shows (rounded to 0.1 s), split, save; ``chapters``, ``report`` and
``dataset`` read the saved file. A refused corrections file is exit 9 for every command.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from pathlib import Path

import pytest

from endostream.cli import main
from endostream.corrections.rules import CORRECTED_SUFFIX, reviewed_document
from endostream.errors import EXIT_CORRECTIONS, CorrectionsError, EndostreamError
from endostream.output.document import read_sections
from endostream.output.review_rules import FIX
from endostream.segmentation.section import Section
from helpers.browser import WAIT_S, chrome
from helpers.review import make_procedure

pytest.importorskip("selenium.webdriver")
pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

#: Boundaries as the segmenter writes them, with frames analysed every 5th at 25 fps:
#: midway between the last analysed frame of one section and the first of the next
#: (frame 38 is at 1.52 s, its boundary at 1.5 s).
MIDWAY = [("ear", 0, 37, 0.0, 1.5), ("unusable", 38, 57, 1.5, 2.3),
          ("nose", 58, 87, 2.3, 3.5), ("vocal_folds", 88, 129, 3.5, 5.2)]


def midway_procedure(directory: Path):
    t = make_procedure(directory)
    doc = json.loads(t.sections.read_text())
    doc["sections"] = [{"label": lab, "start_s": a_s, "end_s": b_s, "start_frame": a,
                        "end_frame": b, "good_fraction": 0.0 if lab == "unusable" else 0.8,
                        "confidence": 0.9} for lab, a, b, a_s, b_s in MIDWAY]
    t.sections.write_text(json.dumps(doc, indent=1))
    read_sections(t.sections)  # a valid model file
    return t


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The report of a midway procedure, in one chromium for the whole module."""
    folder = tmp_path_factory.mktemp("page")
    t = midway_procedure(folder / "p")
    out = folder / "report.html"
    assert main(["report", str(t.sections), "--csv", str(t.csv), "--out", str(out)]) == 0
    downloads = folder / "downloads"
    downloads.mkdir()
    driver = chrome(folder / "profile", width=1280, height=1000, downloads=downloads)
    driver.get(out.as_uri())
    yield t, driver, downloads
    driver.quit()


# -- the same verdicts ---------------------------------------------------------------------


def _base(t) -> dict:
    model = read_sections(t.sections)
    s = model.sections
    fixed = reviewed_document(model, [
        s[0], Section("nose", 1.5, 2.0, 38, 49, 0, 0),   # relabelled and cut at frame 50
        Section("unusable", 2.0, 2.3, 50, 57, 0, 0), *s[2:]], tool="test",
        reviewed_at="2026-12-06T00:00:00Z")
    return fixed.to_json()


def _sec(k):
    return lambda d: d["sections"][k]


def _orig(k):
    return lambda d: d["review"]["original_sections"][k]


#: name → (edit of the valid corrected document, words of the rule the result breaks;
#: ``None``: the result is valid).
CASES = {
    "valid": (lambda d: None, None),
    "valid: no review": (lambda d: d.pop("review"), None),
    "valid: a boundary within a frame of its time": (
        lambda d: [_sec(1)(d).update(end_s=2.03), _sec(2)(d).update(start_s=2.03)], None),
    "valid: partial, zero-length last section": (
        lambda d: [d.update(complete=False), d.pop("review"),
                   d.update(sections=[{**_sec(0)(d), "end_s": 0.0}])], None),
    "schema id": (lambda d: d.update(schema="other/1"), "schema is not"),
    "missing field": (lambda d: _sec(1)(d).pop("end_s"), "missing field 'end_s'"),
    "unknown field": (lambda d: _sec(1)(d).update(note="x"), "unknown field 'note'"),
    "negative frame": (lambda d: _sec(0)(d).update(end_frame=-1), "below the minimum"),
    "label not a string": (lambda d: _sec(0)(d).update(label=5), "expected string"),
    "confidence above 1": (lambda d: _sec(0)(d).update(confidence=1.5), "above the maximum"),
    "frame not an integer": (lambda d: _sec(1)(d).update(start_frame=38.5),
                             "expected integer"),
    "sha256 pattern": (lambda d: d["models"].update(sha256="xyz"), "does not match"),
    "review.changed not integers": (lambda d: d["review"].update(changed=["a"]),
                                    "review.changed[0]: expected integer"),
    "review unknown field": (lambda d: d["review"].update(by="me"), "unknown field 'by'"),
    "no sections": (lambda d: d.update(sections=[]), "no sections"),
    "ends before it starts": (lambda d: _sec(1)(d).update(end_frame=30), "before it starts"),
    "ends at its start": (lambda d: _sec(1)(d).update(end_s=1.5), "not after its start"),
    "not from zero": (lambda d: _sec(0)(d).update(start_frame=1), "not at 0"),
    "frames overlap": (lambda d: _sec(2)(d).update(start_frame=45),
                       "overlaps the one before (frame"),
    "frames leave a gap": (lambda d: _sec(2)(d).update(start_frame=52),
                           "leaves a gap to the one before (frame"),
    # The file: the neighbour kept the model's rounded end, the edited section
    # got its frame's time.
    "times leave a gap": (lambda d: _sec(1)(d).update(start_s=1.52),
                          "leaves a gap to the one before (1.52 s after 1.5 s)"),
    "times overlap": (lambda d: _sec(2)(d).update(start_s=1.9),
                      "overlaps the one before (1.9 s"),
    "after the video's duration": (
        lambda d: [_sec(-1)(d).update(end_s=9.0), _orig(-1)(d).update(end_s=9.0)],
        "after the video's 5.2 s"),
    "after the video's frames": (
        lambda d: [_sec(-1)(d).update(end_frame=200), _orig(-1)(d).update(end_frame=200)],
        "after the video's 130 frames"),
    "frames far after their time": (
        lambda d: [d["source"].update(frames=1000), _sec(-1)(d).update(end_frame=999),
                   _orig(-1)(d).update(end_frame=999)], "far after the sections' end"),
    "unknown label": (lambda d: _sec(1)(d).update(label="larynx"),
                      "which the model does not know"),
    "shorter than the model's": (lambda d: _sec(-1)(d).update(end_frame=120, end_s=4.84),
                                 "must cover the same video"),
    "boundary off its frame's time": (
        lambda d: [_sec(1)(d).update(end_s=1.7), _sec(2)(d).update(start_s=1.7)],
        "that frame is at 2.000 s"),
    "changed out of range": (lambda d: d["review"]["changed"].append(9), "review.changed"),
    "changed twice": (lambda d: d["review"]["changed"].append(1), "review.changed"),
    "no original sections": (lambda d: d["review"].update(original_sections=[]),
                             "original_sections is empty"),
    "quality-only model": (lambda d: d["models"].update(heads={"quality": ["bad", "good"]}),
                           "labels: usable, unusable"),
}


def _numbers(text: str) -> str:
    """Numbers by value: Python writes 2.0 where JavaScript writes 2."""
    return re.sub(r"\d+\.\d+", lambda m: format(float(m.group()), "g"), text)


def _python_problem(data: dict, path: Path) -> str | None:
    path.write_text(json.dumps(data))
    try:
        read_sections(path)
    except CorrectionsError as e:
        prefix = f"'{path}' breaks a rule of a corrected sections file: "
        assert str(e).startswith(prefix) and str(e).endswith(f"; {FIX}"), str(e)
        assert "review" in data
        return str(e)[len(prefix):-len(f"; {FIX}")]
    except EndostreamError as e:  # a plain sections file (or not one at all): exit 2
        match = re.fullmatch(rf"'{re.escape(str(path))}' is not a usable sections file "
                             r"\((.*)\); give the sections.json written by 'endostream segment'",
                             str(e))
        assert match, str(e)
        assert e.exit_code == 2
        return match.group(1)
    return None


def test_the_page_and_the_reader_judge_every_file_alike(page, tmp_path):
    t, driver, _ = page
    base = _base(t)
    verdicts = {}
    for name, (edit, words) in CASES.items():
        data = copy.deepcopy(base)
        edit(data)
        python = _python_problem(data, tmp_path / "c.json")
        js = driver.execute_script(
            "var data = JSON.parse(document.getElementById('corrections-data').textContent);"
            "return window.endostreamCorrectionRules(data.rules).fileProblem(arguments[0]);",
            data)
        assert (python is None) == (words is None), (name, python)
        assert words is None or words in python, (name, python)
        verdicts[name] = (python, js)
    differ = {k: v for k, v in verdicts.items()
              if v[1] is None or _numbers(v[0] or "") != _numbers(v[1] or "")
              if v != (None, None)}
    assert not differ, differ


# -- a reviewer's session --------------------------------------------------------------------


def _rows(driver):
    return driver.find_elements("css selector", "#edit-table tbody tr")


def _type(element, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(text, Keys.TAB)


def _start(driver, i):
    return _rows(driver)[i].find_elements("css selector", "input")[0]


def _saved(downloads: Path) -> Path:
    """The one corrected file the page downloaded (named after the sections file)."""
    deadline = time.monotonic() + WAIT_S
    found: list[Path] = []
    while not found and time.monotonic() < deadline:
        found = sorted(downloads.glob(f"*{CORRECTED_SUFFIX}"))
        time.sleep(0.1)
    assert len(found) == 1, f"no single download in {list(downloads.iterdir())}"
    return found[0]


def test_typing_the_values_shown_saves_a_file_every_command_reads(page, tmp_path, capsys):
    from selenium.webdriver.support.ui import Select

    t, driver, downloads = page
    driver.refresh()
    driver.find_element("id", "edit-toggle").click()
    # Relabel section 2, then retype its start as the page shows it (0:01.5, whose frame
    # 38 is at 1.52 s), in seconds as a person types it: the steps.
    Select(_rows(driver)[1].find_element("css selector", "select")).select_by_value("nose")
    assert _start(driver, 1).get_attribute("value") == "0:01.5"
    _type(_start(driver, 1), "1.5")
    # The same with the start of section 4 (0:03.5, frame 88 at 3.52 s) and a new boundary
    # where no analysed frame was: split at 2.0 s, relabel the part after it.
    assert _start(driver, 3).get_attribute("value") == "0:03.5"
    _type(_start(driver, 3), "3.5")
    _type(driver.find_element("id", "edit-at"), "2.0")
    driver.find_element("css selector", "button[data-op=split]").click()
    Select(_rows(driver)[2].find_element("css selector", "select")).select_by_value("ear")
    message = driver.find_element("id", "edit-message").text
    assert not message.startswith("Refused"), message
    driver.find_element("css selector", "button[data-op=save]").click()
    saved = _saved(downloads)
    assert "Saved" in driver.find_element("id", "edit-message").text

    doc = json.loads(saved.read_text())
    got = [(s["label"], s["start_frame"], s["end_frame"], s["start_s"], s["end_s"])
           for s in doc["sections"]]
    assert got == [("ear", 0, 37, 0.0, 1.5), ("nose", 38, 49, 1.5, 2.0),
                   ("ear", 50, 57, 2.0, 2.3), ("nose", 58, 87, 2.3, 3.5),
                   ("vocal_folds", 88, 129, 3.5, 5.2)]
    assert doc["review"]["changed"] == [1, 2]
    video = ["--video", str(t.video)]
    capsys.readouterr()
    assert main(["chapters", str(saved), *video, "--out", str(tmp_path / "ch.vtt")]) == 0
    assert main(["report", str(saved), *video, "--out", str(tmp_path / "r.html")]) == 0
    labels = tmp_path / "ds" / "labels.csv"
    labels.parent.mkdir()
    assert main(["dataset", str(saved), *video, "--out", str(labels), "--fps", "5",
                 "--margin", "0"]) == 0
    assert labels.read_text().count("\n") > 5
    saved.unlink()


def _screenshot(driver, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ENDOSTREAM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    driver.execute_script("document.getElementById('edit-message').scrollIntoView()")
    path = folder / name
    driver.save_screenshot(str(path))
    return path


def test_the_page_refuses_an_edit_or_a_file_the_readers_would_refuse(page, tmp_path):
    """Every edit is checked as the file it makes, and Save checks the very file it is
    about to offer: refused in the page, with the rule, and nothing is downloaded."""
    from selenium.webdriver.support.ui import Select

    t, driver, downloads = page
    driver.refresh()
    driver.find_element("id", "edit-toggle").click()
    # A label the model does not know slips into the choices (as a broken page would).
    driver.execute_script(
        "var s = document.querySelector('#edit-table tbody tr select');"
        "var o = document.createElement('option'); o.value = 'larynx';"
        "o.textContent = 'larynx'; s.appendChild(o);")
    Select(_rows(driver)[0].find_element("css selector", "select")).select_by_value("larynx")
    message = driver.find_element("id", "edit-message")
    assert message.text.startswith("Refused: the corrected file would break a rule: "
                                   "section 1 (sections[0] in the file) is labelled "
                                   "'larynx'"), message.text
    assert "refused" in message.get_attribute("class")

    # A page whose rules do not accept the sections it starts from ("unusable" is not a
    # label there): Save refuses the file itself, whatever the working list says.
    html = Path(driver.current_url.removeprefix("file://")).read_text()
    assert html.count('"unusable": "unusable"') == 1
    broken = tmp_path / "broken.html"
    broken.write_text(html.replace('"unusable": "unusable"', '"unusable": "void"'))
    before = set(downloads.iterdir())
    for width, height in ((1280, 1000), (390, 844)):
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1,
            "mobile": width < 500})
        driver.get(broken.as_uri())
        driver.find_element("id", "edit-toggle").click()
        driver.find_element("css selector", "button[data-op=save]").click()
        message = driver.find_element("id", "edit-message")
        assert message.text == (
            "Not saved: the corrected file would break a rule: section 2 (sections[1] in "
            "the file) is labelled 'unusable', which the model does not know (labels: ear, "
            "nose, vocal_folds, void). Undo the last change, or reload the page and correct "
            "again."), message.text
        box = message.rect
        page_width = driver.execute_script("return document.documentElement.clientWidth")
        assert box["x"] >= 0 and box["x"] + box["width"] <= page_width + 1
        _screenshot(driver, f"edit-refused-{width}.png", tmp_path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    time.sleep(0.5)
    assert set(downloads.iterdir()) == before


# -- exit 9 everywhere -------------------------------------------------------------------


def test_every_command_refuses_a_broken_correction_with_exit_9(tmp_path, capsys):
    t = midway_procedure(tmp_path / "p")
    data = _base(t)
    data["sections"][1]["start_s"] = 1.52  # the file: a gap of 20 ms
    bad = tmp_path / "procedure.corrected.sections.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "out"
    out.mkdir()
    video = ["--video", str(t.video)]
    commands = {
        "chapters": ["chapters", str(bad), *video, "--out", str(out / "c.vtt")],
        "report": ["report", str(bad), *video, "--out", str(out / "r.html")],
        "clips": ["clips", str(bad), *video, "--out-dir", str(out / "clips")],
        "annotate": ["annotate", str(bad), *video, "--out", str(out / "a.mp4")],
        "dicom": ["dicom", str(bad), *video, "--out-dir", str(out / "dicom")],
        "dataset": ["dataset", str(bad), *video, "--out", str(out / "labels.csv")],
        "next": ["next", str(bad), "--csv", str(t.csv), "--out-dir", str(out / "next")],
        "labelstudio": ["labelstudio", "export", str(bad), "--out", str(out / "t.json"),
                        "--root", str(tmp_path)],
    }
    for name, argv in commands.items():
        capsys.readouterr()
        assert main(argv) == EXIT_CORRECTIONS, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, (name, err)
        assert err == (f"endostream: error: '{bad}' breaks a rule of a corrected sections "
                       "file: sections[1] leaves a gap to the one before (1.52 s after 1.5 s); "
                       f"{FIX}"), (name, err)
    assert not any(out.rglob("*")), "a refused correction wrote something"
