"""Corrections to a sections.json: what is accepted, what is refused and why.

The browser test (test_review_corrections_browser.py) checks that the report's page saves
files these rules accept; these tests hold the rules themselves on hand-made files.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from endostream.corrections.rules import corrections_from_json, read_corrections, reviewed_document
from endostream.errors import EXIT_CORRECTIONS, CorrectionsError
from endostream.output.document import SectionsDocument
from endostream.output.sections_file import schema
from endostream.segmentation.section import Section

jsonschema = pytest.importorskip("jsonschema")

MODEL = [Section("ear", 0.0, 1.6, 0, 39, 0.8, 0.9), Section("nose", 1.6, 4.0, 40, 99, 0.7, 0.8)]


def original() -> SectionsDocument:
    return SectionsDocument.from_json({
        "schema": "endostream.sections/1", "complete": True,
        "source": {"path": "/videos/p1.mp4", "fps": 25.0, "frames": 100, "duration_s": 4.0,
                   "width": 64, "height": 48},
        "models": {"path": "m.onnx", "sha256": "a" * 64,
                   "heads": {"quality": ["bad", "good"], "organ": ["ear", "nose"]}},
        "analysis": {"frames_analysed": 20, "sample_fps": 5.0, "segmenter": {}},
        "sections": [s.to_json() for s in MODEL]})


def corrected() -> SectionsDocument:
    return reviewed_document(original(), [
        Section("ear", 0.0, 1.0, 0, 24, 0, 0), Section("unusable", 1.0, 1.6, 25, 39, 0, 0),
        Section("nose", 1.6, 4.0, 40, 99, 0.7, 0.8)], tool="test",
        reviewed_at="2026-12-03T00:00:00Z")


def test_a_correction_keeps_the_model_findings_and_marks_what_changed(tmp_path):
    doc = corrected()
    data = doc.to_json()
    jsonschema.validate(data, schema())
    assert data["review"]["changed"] == [0, 1]
    assert data["review"]["original_sections"] == [s.to_json() for s in MODEL]
    assert doc.sections[2] == MODEL[1]  # unchanged: the model's figures
    assert doc.sections[0].confidence == 1.0
    assert doc.sections[0].good_fraction == 0.8  # the model's share over frames 0-24
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    assert read_corrections(path, original()) == doc
    # Corrected again: still compared with the model, not with the first correction.
    again = reviewed_document(doc, MODEL, tool="test")
    assert again.review.changed == ()
    assert again.review.original_sections == tuple(MODEL)


def _broken(how) -> dict:
    data = corrected().to_json()
    how(data)
    return data


BAD = {
    "overlap": (lambda d: d["sections"][1].update(start_frame=20), "overlaps the one before"),
    "gap": (lambda d: d["sections"][1].update(start_frame=30), "leaves a gap"),
    "times apart": (lambda d: d["sections"][1].update(start_s=1.2), "leaves a gap"),
    "shorter": (lambda d: [d["sections"][2].update(end_frame=90),
                           d["sections"][2].update(end_s=3.64)], "must cover the same video"),
    "unknown label": (lambda d: d["sections"][0].update(label="larynx"), "does not know"),
    "backwards": (lambda d: d["sections"][0].update(end_frame=-1), "below the minimum"),
    "frame off its time": (lambda d: [d["sections"][0].update(end_frame=29),
                                      d["sections"][1].update(start_frame=30)],
                           "that frame is at 1.200 s"),
    "missing field": (lambda d: d["sections"][0].pop("end_s"), "missing field 'end_s'"),
    "not sections": (lambda d: d.update(schema="other/1"), "not a sections file"),
    "changed out of range": (lambda d: d["review"]["changed"].append(7), "does not exist"),
    "changed twice": (lambda d: d["review"]["changed"].append(0), "twice"),
    "review incomplete": (lambda d: d["review"].pop("tool"), "missing field 'tool'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_broken_correction_is_refused_with_the_reason(case):
    how, words = BAD[case]
    with pytest.raises(CorrectionsError, match=words) as e:
        corrections_from_json(_broken(how), original=original(), name="c.json")
    assert e.value.exit_code == EXIT_CORRECTIONS == 9
    assert "\n" not in str(e.value) and str(e.value).startswith("c.json")


@pytest.mark.parametrize("field, value", [("frames", 101), ("fps", 30.0), ("path", "/v/p2.mp4")])
def test_a_correction_of_another_video_is_refused(field, value):
    other = replace(original(), source=replace(original().source, **{field: value}))
    with pytest.raises(CorrectionsError, match="another video"):
        corrections_from_json(corrected().to_json(), original=other, name="c.json")


def test_a_correction_without_a_video_name_is_judged_by_the_video_facts():
    nameless = replace(corrected(), source=replace(corrected().source, path=""))
    corrections_from_json(nameless.to_json(), original=original(), name="c.json")


def test_a_correction_of_another_model_is_refused():
    other = replace(original(), models=replace(original().models, sha256="b" * 64))
    with pytest.raises(CorrectionsError, match="another model"):
        corrections_from_json(corrected().to_json(), original=other, name="c.json")


def test_read_corrections_refuses_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("{not json")
    with pytest.raises(CorrectionsError, match="cannot read"):
        read_corrections(path)
