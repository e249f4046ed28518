"""The typed result (:class:`SectionsDocument`) and its one reader, :func:`read_sections`.

A real ``segment`` run (PyAV-encoded synthetic procedure, a small real ONNX model) writes a
file that reads back into a document whose JSON is byte for byte the file; every way a
file can break the schema or an invariant is refused with one line naming the file and the
problem, by the reader and by the commands that read (exit 2); the runtime's own schema
check agrees with ``jsonschema`` on the shipped schemas.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from endostream.cli import main
from endostream.errors import EXIT_USAGE, UsageError
from endostream.output.document import NotSectionsFile, SectionsDocument, read_sections
from endostream.output.schema_check import first_problem, shipped_schema
from endostream.output.sections_file import schema
from endostream.synth import ProcedureSpec, render_procedure
from endostream.synth.scenes import SCENE_MEAN_RGB
from helpers.onnx_models import build_color_model
from helpers.review import make_procedure


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    """A sections.json written by a real ``segment`` run."""
    d = tmp_path_factory.mktemp("doc")
    render_procedure(d / "v.mp4", ProcedureSpec.parse("nose:4,black:3,ear:4"), width=160,
                     height=120, fps=10.0, seed=2)
    model = build_color_model(d / "m.onnx", organ_colors=SCENE_MEAN_RGB,
                              sharpness_threshold=0.5)
    out = d / "sections.json"
    assert main(["segment", str(d / "v.mp4"), "--models", str(model), "--out", str(out),
                 "--quiet"]) == 0
    return out


def test_a_written_file_reads_back_to_the_same_bytes(written):
    doc = read_sections(written)
    assert doc.dumps() == written.read_text(encoding="utf-8")
    assert SectionsDocument.from_json(doc.to_json()) == doc
    assert len(doc.sections) >= 2 and doc.complete
    # The threshold the run used is in the document, typed.
    assert doc.analysis.good_threshold == 0.5
    assert doc.analysis.segmenter["good_threshold"] == 0.5


def _mutations(good: dict) -> list[tuple[str, dict, str]]:
    """(name, broken document, words the message must contain)."""
    out = []

    def m(name, words, fn):
        d = copy.deepcopy(good)
        fn(d)
        out.append((name, d, words))

    s = good["sections"]
    m("no sections", "no sections", lambda d: d.update(sections=[]))
    m("missing field", "missing field 'complete'", lambda d: d.pop("complete"))
    m("wrong type", "source.width", lambda d: d["source"].update(width="wide"))
    m("unknown section field", "unknown field 'colour'",
      lambda d: d["sections"][0].update(colour="red"))
    m("negative time", "sections[1].start_s", lambda d: d["sections"][1].update(start_s=-1))
    m("bad sha", "models.sha256", lambda d: d["models"].update(sha256="xyz"))
    m("ends before it starts", "not after its start",
      lambda d: d["sections"][0].update(end_s=0.0))
    m("frames backwards", "before it starts",
      lambda d: d["sections"][0].update(end_frame=0, start_frame=0) or
      d["sections"][1].update(start_frame=1, end_frame=0))
    m("gap in frames", "leaves a gap", lambda d: d["sections"][1].update(
        start_frame=s[1]["start_frame"] + 3))
    m("overlap in time", "overlaps", lambda d: d["sections"][1].update(
        start_s=s[1]["start_s"] - 0.5))
    m("out of order", "sections[1]", lambda d: d.update(sections=[s[0], s[2], s[1], *s[3:]]))
    m("not from zero", "not at 0", lambda d: d["sections"][0].update(start_s=1.0))
    m("past the video's end", "after the video's",
      lambda d: d["source"].update(duration_s=s[-1]["end_s"] / 4))
    m("past the last frame", "after the video's",
      lambda d: d["source"].update(frames=s[-1]["end_frame"] // 4))
    return out


def test_every_broken_document_is_refused_with_the_file_and_the_problem(written, tmp_path):
    good = json.loads(written.read_text())
    assert len(good["sections"]) >= 3
    for name, doc, words in _mutations(good):
        path = tmp_path / f"{name.replace(' ', '_')}.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(UsageError) as e:
            read_sections(path)
        message = str(e.value)
        assert "\n" not in message and str(path) in message and words in message, (name,
                                                                                   message)
        assert not isinstance(e.value, NotSectionsFile), name


def test_a_file_that_is_not_a_sections_file_says_so(tmp_path):
    for name, text in [("other.json", '{"schema": "something/2"}'), ("text.json", "hello"),
                       ("list.json", "[]")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(NotSectionsFile, match=name):
            read_sections(tmp_path / name)
    with pytest.raises(NotSectionsFile, match="not found"):
        read_sections(tmp_path / "missing.json")


def test_a_partial_run_stopped_on_its_first_frame_is_still_readable(written, tmp_path):
    doc = json.loads(written.read_text())
    first = doc["sections"][0]
    doc["complete"] = False
    doc["sections"] = [{**first, "end_s": 0.0, "end_frame": 0}]
    (tmp_path / "p.json").write_text(json.dumps(doc))
    assert read_sections(tmp_path / "p.json").sections[0].end_s == 0.0
    doc["complete"] = True
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(UsageError, match="not after its start"):
        read_sections(tmp_path / "c.json")


@pytest.mark.parametrize("command", ["report", "chapters", "clips", "annotate"])
def test_commands_refuse_a_broken_sections_file_with_one_line(tmp_path, capsys, command):
    t = make_procedure(tmp_path / "p")
    doc = copy.deepcopy(t.doc)
    doc["sections"][2]["start_frame"] += 1  # a gap
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    out = ["--out-dir", str(tmp_path / "o")] if command == "clips" else \
        ["--out", str(tmp_path / ("o.vtt" if command == "chapters" else
                                  "o.mp4" if command == "annotate" else "o.html"))]
    assert main([command, str(bad), *out]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("endostream: error: ")
    assert str(bad) in err[0] and "leaves a gap" in err[0]


def test_evaluate_reads_sections_json_through_the_reader(written, tmp_path, capsys):
    doc = json.loads(written.read_text())
    doc["sections"][1]["end_frame"] = doc["sections"][1]["start_frame"] - 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    truth = tmp_path / "t.json"
    truth.write_text(json.dumps({"sections": [{"label": "nose", "start_s": 0, "end_s": 11}]}))
    assert main(["evaluate", "--truth", str(truth), "--sections", str(bad)]) == EXIT_USAGE
    assert "before it starts" in capsys.readouterr().err


def test_the_runtime_schema_check_agrees_with_jsonschema(written):
    good = json.loads(written.read_text())
    sch = schema()
    cases = [good] + [d for _, d, _ in _mutations(good)]
    extra = copy.deepcopy(good)
    extra["analysis"]["frames_analysed"] = 2.0  # an integer to JSON Schema
    cases.append(extra)
    for bad_type in (True, None, "3", 1.5):
        d = copy.deepcopy(good)
        d["analysis"]["frames_analysed"] = bad_type
        cases.append(d)
    d = copy.deepcopy(good)
    d["schema"] = "endostream.sections/2"
    cases.append(d)
    d = copy.deepcopy(good)
    d["models"]["heads"]["organ"] = ["only"]
    cases.append(d)
    for case in cases:
        ours = first_problem(case, sch)
        try:
            jsonschema.validate(case, sch)
            theirs = None
        except jsonschema.ValidationError as e:
            theirs = e.message
        assert (ours is None) == (theirs is None), (ours, theirs)


def test_the_archive_schema_is_checkable_too():
    # Every keyword of every shipped schema is one the runtime check implements: a new one
    # would raise here instead of being silently ignored.
    for name in ("sections", "archive"):
        first_problem({}, shipped_schema(name))
    with pytest.raises(ValueError, match="not supported"):
        first_problem(1, {"type": "integer", "multipleOf": 2})
