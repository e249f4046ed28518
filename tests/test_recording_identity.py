"""A recording (and its per-frame CSV) is identified by its content, not its name or size.

Two generated procedures of the same script, frame size, rate and length but another
seed are segmented for real (a colour model, ``--csv``): their sections files and CSVs
agree on everything the older checks compared (size, duration, frame count, rows), so
only the content fingerprint tells them apart. Every command that opens a recording or a
CSV named by a sections file must refuse the other one (exit 2, one line naming the file
expected); corrected files (the report's edit mode in Debian's chromium, Label Studio's
import) keep the fingerprint and a name derived from their sections file; ``dataset
--videos DIR`` finds the recording by content among decoys; files written before
fingerprints still work.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from endostream.archive.resume import content_reason
from endostream.cli import main
from endostream.errors import EXIT_USAGE, EXIT_VIDEO
from endostream.output.document import read_sections
from endostream.sources.fingerprint import file_sha256, recording_fingerprint
from endostream.synth import ProcedureSpec, render_procedure
from endostream.synth.scenes import SCENE_MEAN_RGB
from helpers.onnx_models import build_color_model

SCRIPT = "nose:3,black:1,vocal_folds:3"
SIZE, FPS = (160, 120), 10.0


@dataclass(frozen=True)
class Analysed:
    video: Path
    sections: Path
    csv: Path


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Analysed, Analysed]:
    """Procedures ``a`` and ``b``: one script and size, seeds 1 and 2, each segmented with
    its CSV (sections files named ``case-a.json``: not after the recording)."""
    root = tmp_path_factory.mktemp("pair")
    model = build_color_model(root / "m.onnx", organ_colors=SCENE_MEAN_RGB)
    out = []
    for name, seed in (("a", 1), ("b", 2)):
        folder = root / name
        folder.mkdir()
        video = folder / f"{name}.mp4"
        render_procedure(video, ProcedureSpec.parse(SCRIPT), width=SIZE[0], height=SIZE[1],
                         fps=FPS, seed=seed)
        sections, csv = folder / f"case-{name}.json", folder / f"case-{name}.csv"
        assert main(["segment", str(video), "--models", str(model), "--out", str(sections),
                     "--csv", str(csv), "--quiet"]) == 0
        out.append(Analysed(video, sections, csv))
    return out[0], out[1]


def _error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1, err
    return err[0]


def test_the_pair_differs_only_in_content(pair):
    a, b = (read_sections(p.sections) for p in pair)
    assert (a.source.width, a.source.height, a.source.fps, a.source.frames,
            a.source.duration_s) == (b.source.width, b.source.height, b.source.fps,
                                     b.source.frames, b.source.duration_s)
    assert a.analysis.frames_analysed == b.analysis.frames_analysed
    assert a.source.fingerprint != b.source.fingerprint


def test_segment_records_the_recording_and_its_csv(pair):
    for p in pair:
        doc = read_sections(p.sections)
        assert doc.source.fingerprint == recording_fingerprint(p.video)
        assert doc.source.fingerprint.startswith("v1:")
        assert doc.analysis.frames_csv_sha256 == file_sha256(p.csv)
        raw = json.loads(p.sections.read_text())
        assert raw["source"]["fingerprint"] == doc.source.fingerprint
        assert raw["analysis"]["frames_csv_sha256"] == doc.analysis.frames_csv_sha256


def _commands(tmp: Path, sections: Path) -> dict[str, list[str]]:
    """Each command that opens the recording, with its output in ``tmp``."""
    (tmp / "ds").mkdir(exist_ok=True)
    return {
        "report": ["report", str(sections), "--out", str(tmp / "r.html")],
        "chapters": ["chapters", str(sections), "--out", str(tmp / "c.mkv")],
        "clips": ["clips", str(sections), "--out-dir", str(tmp / "clips")],
        "annotate": ["annotate", str(sections), "--out", str(tmp / "x.mp4")],
        "dicom": ["dicom", str(sections), "--out-dir", str(tmp / "dcm")],
        "dataset": ["dataset", str(sections), "--out", str(tmp / "ds" / "labels.csv")],
    }


@pytest.mark.parametrize("command", ["report", "chapters", "clips", "annotate", "dicom",
                                     "dataset"])
def test_every_command_refuses_another_recording_given(pair, tmp_path, capsys, command):
    a, b = pair
    argv = _commands(tmp_path, a.sections)[command] + ["--video", str(b.video)]
    if command == "dicom":
        pytest.importorskip("pydicom")
    assert main(argv) == EXIT_USAGE
    line = _error(capsys)
    assert f"'{b.video}' is not the recording '{a.sections}' was made from ('a.mp4', " \
           "fingerprint v1:" in line
    assert "its content differs" in line and "--video" in line
    assert not any(p.name != "ds" for p in tmp_path.iterdir())  # nothing written


def _swapped(pair, tmp_path) -> Analysed:
    """``a``'s sections file and CSV beside a file named ``a.mp4`` holding ``b``."""
    a, b = pair
    folder = tmp_path / "swapped"
    folder.mkdir()
    shutil.copy(b.video, folder / "a.mp4")
    for f in (a.sections, a.csv):
        shutil.copy(f, folder / f.name)
    data = json.loads((folder / a.sections.name).read_text())
    data["source"]["path"] = "a.mp4"  # beside the sections file
    (folder / a.sections.name).write_text(json.dumps(data))
    return Analysed(folder / "a.mp4", folder / a.sections.name, folder / a.csv.name)


@pytest.mark.parametrize("command", ["report", "chapters", "clips", "annotate", "dicom",
                                     "dataset", "labelstudio", "next"])
def test_every_command_refuses_another_recording_found_where_the_file_says(
        pair, tmp_path, capsys, command):
    swapped = _swapped(pair, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    argv = {**_commands(out, swapped.sections),
            "labelstudio": ["labelstudio", "export", str(swapped.sections), "--out",
                            str(out / "tasks.json"), "--config", str(out / "c.xml")],
            "next": ["next", str(swapped.sections), "--csv", str(swapped.csv), "--out-dir",
                     str(out / "next")]}[command]
    if command == "dicom":
        pytest.importorskip("pydicom")
    assert main(argv) == EXIT_USAGE
    line = _error(capsys)
    assert f"'{swapped.video}' is not the recording '{swapped.sections}' was made from " \
           "('a.mp4', fingerprint v1:" in line
    assert [p.name for p in out.iterdir()] == ["ds"]


@pytest.mark.parametrize("command", ["report", "annotate", "dicom", "next"])
def test_every_command_refuses_another_csv(pair, tmp_path, capsys, command):
    a, b = pair
    argv = {"report": ["report", str(a.sections), "--csv", str(b.csv), "--out",
                       str(tmp_path / "r.html")],
            "annotate": ["annotate", str(a.sections), "--csv", str(b.csv), "--out",
                         str(tmp_path / "x.mp4")],
            "dicom": ["dicom", str(a.sections), "--csv", str(b.csv), "--out-dir",
                      str(tmp_path / "dcm")],
            "next": ["next", str(a.sections), "--csv", str(b.csv), "--out-dir",
                     str(tmp_path / "next")]}[command]
    if command == "dicom":
        pytest.importorskip("pydicom")
    assert main(argv) == EXIT_USAGE
    line = _error(capsys)
    assert f"'{b.csv}' is not the per-frame CSV of '{a.sections}': its content differs " \
           "from the CSV written with it (SHA-256 " in line
    assert list(tmp_path.iterdir()) == []


def test_the_right_files_are_accepted(pair, tmp_path):
    a, _ = pair
    assert main(["report", str(a.sections), "--csv", str(a.csv), "--video", str(a.video),
                 "--out", str(tmp_path / "r.html")]) == 0
    assert main(["chapters", str(a.sections), "--out", str(tmp_path / "c.vtt")]) == 0


def _old_style(p: Analysed, folder: Path) -> Path:
    """``p``'s sections file as written before fingerprints (no fingerprint, no CSV hash)."""
    data = json.loads(p.sections.read_text())
    del data["source"]["fingerprint"]
    del data["analysis"]["frames_csv_sha256"]
    data["source"]["path"] = str(p.video)
    out = folder / "old.json"
    out.write_text(json.dumps(data))
    return out


def test_old_files_still_read_and_the_check_is_skipped_with_a_note(pair, tmp_path, caplog):
    a, b = pair
    old = _old_style(a, tmp_path)
    with caplog.at_level(logging.INFO, logger="endostream.procedure.identity"):
        assert main(["report", str(old), "--csv", str(a.csv), "--out",
                     str(tmp_path / "r.html")]) == 0
    notes = [r.getMessage() for r in caplog.records]
    assert any("records no fingerprint of its recording" in n for n in notes)
    assert any("records no SHA-256 of its per-frame CSV" in n for n in notes)
    # Without a fingerprint only size, length and frame counts can be compared, and the
    # other procedure has the same: it is what the fingerprint is for.
    assert main(["report", str(old), "--video", str(b.video), "--csv", str(b.csv), "--out",
                 str(tmp_path / "r2.html")]) == 0


def test_archive_resume_redoes_a_result_of_another_recording(pair, tmp_path, caplog):
    a, b = pair
    archive, out = tmp_path / "in", tmp_path / "out"
    archive.mkdir()
    shutil.copy(a.video, archive / "v.mp4")
    model = build_color_model(tmp_path / "m.onnx", organ_colors=SCENE_MEAN_RGB)
    base = ["segment", str(archive), "--out-dir", str(out), "--models", str(model), "--csv",
            "--quiet"]
    assert main(base) == 0
    sections = next(out.rglob("*.sections.json"))
    first = read_sections(sections)
    assert first.source.fingerprint == recording_fingerprint(a.video)
    csv = next(p for p in out.rglob("*.csv"))
    assert first.analysis.frames_csv_sha256 == file_sha256(csv)
    assert content_reason(first, archive / "v.mp4", csv) is None
    assert "another recording" in content_reason(first, b.video, csv)
    # The video replaced by another recording that keeps the size and time the file
    # recorded (what the cheap check compares): redone, not kept.
    shutil.copy(b.video, archive / "v.mp4")
    stat = (archive / "v.mp4").stat()
    data = json.loads(sections.read_text())
    data["analysis"]["input"] = {"size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    sections.write_text(json.dumps(data))
    with caplog.at_level(logging.INFO, logger="endostream.archive"):
        assert main(base) == 0
    assert any("made from another recording" in r.getMessage() for r in caplog.records)
    assert read_sections(sections).source.fingerprint == recording_fingerprint(b.video)
    # A CSV that is another run's is redone too; an unchanged result is kept.
    shutil.copy(a.csv, csv)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="endostream.archive"):
        assert main(base) == 0
    assert any("its per-frame CSV is another run's" in r.getMessage() for r in caplog.records)
    assert read_sections(sections).analysis.frames_csv_sha256 == file_sha256(csv)
    assert main(base) == 0
    summary = json.loads((out / "archive.json").read_text())
    assert [v["status"] for v in summary["videos"]] == ["skipped"]


# -- corrected files ------------------------------------------------------------------------


def test_label_studio_round_trip_keeps_the_fingerprint_and_names_the_file(pair, tmp_path,
                                                                          capsys):
    a, b = pair
    tasks_path = tmp_path / "tasks.json"
    assert main(["labelstudio", "export", str(a.sections), "--out", str(tasks_path),
                 "--config", str(tmp_path / "c.xml")]) == 0
    (task,) = json.loads(tasks_path.read_text())
    assert task["data"]["sections_file"] == "case-a.json"
    result = copy.deepcopy(task["predictions"][0]["result"])
    result[0]["value"]["timelinelabels"] = ["ear"]  # a reviewer relabels the first region
    export = [{"id": 1, "data": task["data"], "predictions": task["predictions"],
               "annotations": [{"id": 1, "was_cancelled": False, "result": result,
                                "updated_at": "2026-12-06T00:00:00Z"}]}]
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert main(["labelstudio", "import", str(tmp_path / "export.json"), "--out-dir",
                 str(tmp_path / "corrected")]) == 0
    corrected = tmp_path / "corrected" / "case-a.corrected.sections.json"
    doc = read_sections(corrected)
    original = read_sections(a.sections)
    assert doc.review is not None and doc.sections[0].label == "ear"
    assert doc.source.fingerprint == original.source.fingerprint
    assert doc.analysis.frames_csv_sha256 == original.analysis.frames_csv_sha256
    capsys.readouterr()
    assert main(["chapters", str(corrected), "--video", str(b.video), "--out",
                 str(tmp_path / "c.vtt")]) == EXIT_USAGE
    assert "is not the recording" in _error(capsys)
    assert main(["report", str(corrected), "--csv", str(b.csv), "--out",
                 str(tmp_path / "r.html")]) == EXIT_USAGE
    assert "is not the per-frame CSV" in _error(capsys)


def _decoys(pair, folder: Path) -> Path:
    """A folder of videos where ``a`` is one of many: ``b`` under ``a``'s name, ``b``
    again, a file that is not a video, and ``a`` renamed in a subfolder."""
    a, b = pair
    (folder / "sub" / "deeper").mkdir(parents=True)
    shutil.copy(b.video, folder / "a.mp4")
    shutil.copy(b.video, folder / "b-copy.mp4")
    (folder / "sub" / "broken.mp4").write_bytes(b"not a video")
    (folder / "sub" / "notes.txt").write_text("a.mp4 is in here somewhere")
    shutil.copy(a.video, folder / "sub" / "deeper" / "renamed.mkv")
    return folder / "sub" / "deeper" / "renamed.mkv"


def test_dataset_finds_the_recording_by_content_among_decoys(pair, tmp_path, capsys):
    a, _ = pair
    data = json.loads(a.sections.read_text())
    data["source"]["path"] = ""  # as the report saves it: no path
    unnamed = tmp_path / "saved.corrected.sections.json"
    unnamed.write_text(json.dumps(data))
    videos = tmp_path / "videos"
    right = _decoys(pair, videos)
    (tmp_path / "ds").mkdir()
    labels = tmp_path / "ds" / "labels.csv"
    assert main(["dataset", str(unnamed), "--videos", str(videos), "--out", str(labels)]) == 0
    rows = labels.read_text().splitlines()[1:]
    assert rows and all(r.startswith("../videos/sub/deeper/renamed.mkv,") for r in rows)
    # By the name first: a (with the name the file records) is found without opening the
    # decoys that have another name... and a decoy that has the name is passed over.
    data["source"]["path"] = "/somewhere/gone/a.mp4"
    named = tmp_path / "named.json"
    named.write_text(json.dumps(data))
    assert main(["dataset", str(named), "--videos", str(videos), "--out", str(labels),
                 "--overwrite"]) == 0
    assert all(r.startswith("../videos/sub/deeper/renamed.mkv,")
               for r in labels.read_text().splitlines()[1:])
    # Not there: exit 3, saying where it looked.
    os.remove(right)
    capsys.readouterr()
    assert main(["dataset", str(unnamed), "--videos", str(videos), "--out", str(labels),
                 "--overwrite"]) == EXIT_VIDEO
    line = _error(capsys)
    assert f"none of the 3 videos below '{videos}' is the recording" in line
    assert "fingerprint v1:" in line
    # Without --videos, a file that names no path cannot find its recording.
    assert main(["dataset", str(unnamed), "--out", str(labels), "--overwrite"]) == EXIT_VIDEO


def test_the_report_saves_a_correction_that_keeps_the_fingerprint(pair, tmp_path, capsys):
    """The report's edit mode in Debian's chromium: relabel, save; the saved file keeps the
    recording's fingerprint and CSV hash, is named after the sections file, names no path,
    and finds its recording by content with ``dataset --videos``."""
    pytest.importorskip("jinja2")
    pytest.importorskip("matplotlib")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from helpers.browser import WAIT_S, chrome

    a, b = pair
    page = tmp_path / "report.html"
    assert main(["report", str(a.sections), "--csv", str(a.csv), "--out", str(page)]) == 0
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = chrome(tmp_path / "profile", width=1280, height=1000, downloads=downloads)
    try:
        driver.get(page.as_uri())
        driver.find_element(By.ID, "edit-toggle").click()
        rows = driver.find_elements(By.CSS_SELECTOR, "#edit-table tbody tr")
        Select(rows[0].find_element(By.TAG_NAME, "select")).select_by_value("ear")
        driver.find_element(By.CSS_SELECTOR, "button[data-op=save]").click()
        saved = downloads / "case-a.corrected.sections.json"
        deadline = time.monotonic() + WAIT_S
        while not saved.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        driver.quit()
    assert saved.is_file(), f"no download in {list(downloads.iterdir())}"
    doc = read_sections(saved)
    original = read_sections(a.sections)
    assert doc.source.path == ""  # the report embeds no path by default
    assert doc.source.fingerprint == original.source.fingerprint
    assert doc.analysis.frames_csv_sha256 == original.analysis.frames_csv_sha256
    assert doc.review is not None and doc.sections[0].label == "ear"
    capsys.readouterr()
    assert main(["report", str(saved), "--video", str(b.video), "--out",
                 str(tmp_path / "again.html")]) == EXIT_USAGE
    assert "is not the recording" in _error(capsys)
    videos = tmp_path / "videos"
    _decoys(pair, videos)
    (tmp_path / "ds").mkdir()
    assert main(["dataset", str(saved), "--videos", str(videos), "--out",
                 str(tmp_path / "ds" / "labels.csv")]) == 0


def test_the_saved_name_never_shows_a_recording_name_the_page_hides(pair, tmp_path):
    """segment's own naming (``a.sections.json`` for ``a.mp4``) holds the recording's name:
    a page that may not show it saves under the fingerprint's name instead."""
    from endostream.corrections.editor import corrections_context
    from endostream.procedure import load_procedure

    a, _ = pair
    default_named = tmp_path / "a.sections.json"
    shutil.copy(a.sections, default_named)
    procedure = load_procedure(default_named, a.video)
    fingerprint = procedure.document.source.fingerprint
    hidden = corrections_context(procedure, video_path=None, model_path=None)
    assert hidden["filename"] == f"procedure-{fingerprint[3:11]}.corrected.sections.json"
    assert hidden["document"]["source"]["fingerprint"] == fingerprint
    shown = corrections_context(procedure, video_path="a.mp4", model_path=None)
    assert shown["filename"] == "a.corrected.sections.json"


def test_the_cost_benchmark_runs_and_reads_a_part_of_the_file(tmp_path, capsys):
    """``python -m benchmarks.fingerprint`` end to end on a short clip (its figures come
    from a real run on an hour, see docs/notes/recording-identity.md)."""
    from benchmarks.fingerprint import main as bench

    out = tmp_path / "bench.json"
    assert bench(["--minutes", "1", "--repeat", "2", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["clip"]["frames"] == 1500 and doc["fingerprint"].startswith("v1:")
    assert 0 < doc["warm"]["read_calls_bytes"] < doc["clip"]["size_bytes"]
    assert doc["whole_file_sha256"]["read_calls_bytes"] >= doc["clip"]["size_bytes"]
    assert "| fingerprint, file cached |" in capsys.readouterr().out


def test_a_recording_is_fingerprinted_once_per_run(pair, tmp_path, monkeypatch):
    """Found where the file says, checked, then decoded for thumbnails: one fingerprint;
    ``dataset --videos`` fingerprints each candidate once, the right one included."""
    import endostream.sources.fingerprint as fp

    a, _ = pair
    calls: list[Path] = []
    real = fp.recording_fingerprint

    def counted(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(fp, "recording_fingerprint", counted)
    monkeypatch.setattr(fp, "_COMPUTED", {})
    assert main(["report", str(a.sections), "--csv", str(a.csv), "--out",
                 str(tmp_path / "r.html")]) == 0
    assert calls == [a.video]
    calls.clear()
    monkeypatch.setattr(fp, "_COMPUTED", {})
    data = json.loads(a.sections.read_text())
    data["source"]["path"] = ""
    unnamed = tmp_path / "unnamed.json"
    unnamed.write_text(json.dumps(data))
    right = _decoys(pair, tmp_path / "videos")
    (tmp_path / "ds").mkdir()
    assert main(["dataset", str(unnamed), "--videos", str(tmp_path / "videos"), "--out",
                 str(tmp_path / "ds" / "labels.csv")]) == 0
    assert sorted(calls) == sorted(set(calls)) and right in calls
