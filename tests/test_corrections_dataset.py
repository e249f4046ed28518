"""`endostream dataset`: reviewed sections files and their videos as training data.

The tiny procedure of :mod:`helpers.review` has one flat colour per section, so every
frame the trainer's reader decodes from the written CSV can be checked against the
section it was labelled from: right label, inside the section, outside the margins.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from endostream.cli import main
from endostream.corrections.dataset import rows_of_sections
from endostream.errors import EXIT_CORRECTIONS, EXIT_OUTPUT, EXIT_USAGE, EXIT_VIDEO
from endostream.evaluation.datasets import read_dataset
from endostream.segmentation.section import Section
from helpers.review import COLORS, FPS, LAYOUT, encode, make_procedure


@pytest.fixture()
def tiny(tmp_path):
    return make_procedure(tmp_path / "rec")


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _label_of_colour(image: np.ndarray) -> str:
    """The section whose flat colour the crop's lower right quarter shows."""
    h, w = image.shape[:2]
    mean = image[h // 2 + 20:, w // 2 + 20:].reshape(-1, 3).mean(axis=0)
    return min(COLORS, key=lambda k: float(np.abs(mean - np.array(COLORS[k])).sum()))


def test_rows_follow_the_sections_margins_and_quality_rule():
    secs = [Section("ear", 0, 10, 0, 99, 1, 1), Section("unusable", 10, 14, 100, 139, 0, 1),
            Section("nose", 14, 30, 140, 299, 1, 1)]
    rows = rows_of_sections(secs, "v.mp4", "v.mp4", fps=2, margin_s=0.5)
    assert [(r.organ, r.quality, r.start_s, r.end_s) for r in rows] == [
        ("ear", "good", 0.0, 9.5), ("", "bad", 10.5, 13.5), ("nose", "good", 14.5, 30.0)]
    unknown = rows_of_sections(secs, "v.mp4", "v.mp4", fps=2, margin_s=0.5,
                               organ_quality="unknown")
    assert [(r.organ, r.quality) for r in unknown] == [("ear", ""), ("", "bad"), ("nose", "")]
    assert rows[0].frames == 19


def test_dataset_frames_come_from_inside_their_sections(tiny, tmp_path, capsys):
    out = tmp_path / "ds" / "labels.csv"
    out.parent.mkdir()
    assert main(["dataset", str(tiny.sections), "--out", str(out), "--fps", "10",
                 "--margin", "0.2"]) == 0
    said = capsys.readouterr().err
    rows = _rows(out)
    assert f"wrote {out} (4 sections of 1 file, about " in said and " frames: " in said
    assert [r["recording"] for r in rows] == ["procedure.mp4"] * 4
    assert rows[0]["path"] == "../rec/procedure.mp4"  # relative to the CSV
    assert [(r["organ"], r["quality"]) for r in rows] == [
        ("ear", "good"), ("", "bad"), ("nose", "good"), ("vocal_folds", "good")]

    bounds = {name: (a / FPS, (b + 1) / FPS) for name, a, b in LAYOUT}
    video_end = (LAYOUT[-1][2] + 1) / FPS
    for task in ("organ", "quality"):
        ds = read_dataset(out, task)
        assert ds.recordings() == ["procedure.mp4"]
        for s in ds.samples:
            truth = _label_of_colour(s.image)
            start, end = bounds[truth]
            # Inside the section it shows, 0.2 s away from every inner boundary.
            inner_start = start + (0.2 if start > 0 else 0.0)
            inner_end = end - (0.2 if end < video_end else 0.0)
            assert inner_start - 1e-6 <= s.pts_s < inner_end + 1e-6, (task, truth, s.pts_s)
            label = ds.labels[s.label]
            assert label == (truth if task == "organ" else
                             ("bad" if truth == "unusable" else "good"))
    organ = read_dataset(out, "organ")
    # 10 frames a second: ear 0-1.4 s, nose 2.6-3.4 s, vocal folds 3.8-5.2 s.
    assert organ.class_counts() == {"ear": 14, "nose": 8, "vocal_folds": 14}


def test_include_mixes_another_labels_csv(tiny, tmp_path):
    other = tmp_path / "old"
    other.mkdir()
    shutil.copy(tiny.video, other / "clip.mp4")
    (other / "labels.csv").write_text("path,organ,quality,recording\n"
                                      "clip.mp4,ear,good,old1\n")
    out = tmp_path / "labels.csv"
    assert main(["dataset", str(tiny.sections), "--out", str(out), "--margin", "0.2",
                 "--include", str(other)]) == 0
    rows = _rows(out)
    assert rows[-1]["path"] == "old/clip.mp4" and rows[-1]["recording"] == "old1"
    assert read_dataset(out, "organ").recordings() == ["procedure.mp4", "old1"]


def _broken(tiny, tmp_path, change) -> str:
    doc = json.loads(tiny.sections.read_text())
    change(doc)
    path = tmp_path / "bad.sections.json"
    path.write_text(json.dumps(doc))
    return str(path)


def _shift_second_start(doc):
    doc["sections"][1]["start_s"] -= 0.2
    doc["sections"][1]["start_frame"] -= 5


@pytest.mark.parametrize("change, words", [
    (_shift_second_start, "overlaps"),
    (lambda d: d["sections"].pop(1), "gap"),
    (lambda d: d["sections"][0].update(label="larynx"), "does not know"),
    (lambda d: d["sections"].pop(), "must cover"),
    (lambda d: d.update(schema="other/1"), "not a usable sections file"),
    (lambda d: d["source"].update(width=640), "not the same recording"),
])
def test_a_bad_sections_file_is_one_line_and_exit_2(tiny, tmp_path, capsys, change, words):
    path = _broken(tiny, tmp_path, change)
    out = tmp_path / "labels.csv"
    assert main(["dataset", path, "--out", str(out)]) == EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.startswith("endostream: error:") and "\n" not in err and words in err, err
    assert not out.exists()


def test_a_reviewed_file_keeps_the_rules_of_a_correction(tiny, tmp_path, capsys, caplog):
    from endostream.corrections.rules import reviewed_document
    from endostream.output.document import read_sections
    from endostream.output.sections_file import write_document

    original = read_sections(tiny.sections)
    fixed = list(original.sections)
    fixed[2] = Section("ear", *[getattr(fixed[2], f) for f in (
        "start_s", "end_s", "start_frame", "end_frame", "good_fraction", "confidence")])
    reviewed = reviewed_document(original, fixed, tool="test")
    good = tmp_path / "rec" / "reviewed.sections.json"
    write_document(good, reviewed)
    out = tmp_path / "labels.csv"
    assert main(["dataset", str(good), "--out", str(out), "--margin", "0.2"]) == 0
    assert [r["organ"] for r in _rows(out)] == ["ear", "", "ear", "vocal_folds"]
    # Nose is gone from the data: a model trained on it alone would not know nose.
    assert "no row teaches nose" in caplog.text
    # A review record whose correction lengthens the video breaks a correction's rule.
    doc = json.loads(good.read_text())
    doc["sections"][-1]["end_s"] = 5.0
    doc["source"]["duration_s"] = 5.2
    bad = tmp_path / "rec" / "bad.sections.json"
    bad.write_text(json.dumps(doc))
    assert main(["dataset", str(bad), "--out", str(out), "--overwrite"]) == EXIT_CORRECTIONS
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("endostream: error:") and "same video" in err[-1], err


def test_wrong_or_missing_video_and_unwritable_output(tiny, tmp_path, capsys):
    other = encode(tmp_path / "other.mp4")  # same size; cut shorter below
    assert main(["dataset", str(tiny.sections), "--video", str(tmp_path / "none.mp4"),
                 "--out", str(tmp_path / "l.csv")]) == EXIT_VIDEO
    assert "not found" in capsys.readouterr().err
    # A video of another length: refused, not silently sampled past its end.
    doc = json.loads(tiny.sections.read_text())
    doc["source"]["duration_s"] = 9.0
    for s in doc["sections"]:
        s["start_s"], s["end_s"] = s["start_s"] * 9.0 / 5.2, s["end_s"] * 9.0 / 5.2
    longer = tmp_path / "longer.sections.json"
    longer.write_text(json.dumps(doc))
    assert main(["dataset", str(longer), "--video", str(other),
                 "--out", str(tmp_path / "l.csv")]) == EXIT_USAGE
    assert "lasts 5.2 s" in capsys.readouterr().err
    # A missing folder is created, as --out-dir's is (the README's corrected/labels.csv)...
    assert main(["dataset", str(tiny.sections), "--out",
                 str(tmp_path / "missing" / "l.csv")]) == 0
    assert (tmp_path / "missing" / "l.csv").is_file()
    # ... unless it cannot be.
    assert main(["dataset", str(tiny.sections), "--out",
                 str(tiny.sections / "l.csv")]) == EXIT_OUTPUT
    # The output may not be one of the inputs.
    assert main(["dataset", str(tiny.sections), "--out", str(tiny.sections)]) == EXIT_USAGE
    assert json.loads(tiny.sections.read_text())["sections"]  # untouched


def test_train_on_a_sections_file_says_how(tiny, tmp_path, capsys):
    pytest.importorskip("torch")
    assert main(["train", str(tiny.sections), "--task", "organ",
                 "--out", str(tmp_path / "x.pth")]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "endostream dataset" in err, err
