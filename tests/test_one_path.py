"""One path from a video to its files (:mod:`endostream.pipeline.files`) for every caller.

``segment``, ``demo``, ``evaluate`` and the archive engines all write a video's files
through it: checked on the source (none of them calls the analysis or the writers
itself), and in a real run (a rendered demo procedure, a small real ONNX model), where
the four write byte-identical sections files and CSVs. The order of writes and errors
is checked on :func:`write_files` with real files.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from endostream.cli import main
from endostream.errors import EXIT_OUTPUT, EXIT_VIDEO, OutputError, UsageError, VideoError
from endostream.frames import Prediction, SourceInfo
from endostream.output.sections_file import build_document
from endostream.pipeline.files import VideoFiles, write_files
from endostream.segmentation.section import Section
from endostream.synth.scenes import SCENE_MEAN_RGB
from helpers.onnx_models import build_color_model

ROOT = Path(__file__).resolve().parents[1] / "endostream"
#: What only endostream.pipeline.files may call to make a video's files.
ONE_PATH_ONLY = {"segment_video", "FrameCsvWriter", "write_document"}
#: The callers, and the part of the one path each uses.
CALLERS = {"commands/segment.py": "segment_to_files", "commands/demo.py": "segment_to_files",
           "commands/evaluate.py": "segment_to_files", "archive/outcome.py": "analyse"}


def _names(path: Path) -> set[str]:
    """Every name a module imports or uses (``a.b`` counts as ``b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            found |= {a.name for a in node.names}
    return found


def test_commands_and_archive_reach_the_video_only_through_the_one_path():
    bypass = {}
    for folder in ("commands", "archive"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            used = _names(path) & ONE_PATH_ONLY
            if used:
                bypass[str(path.relative_to(ROOT))] = sorted(used)
    assert not bypass, f"these write a video's files past endostream.pipeline.files: {bypass}"
    for caller, entry in CALLERS.items():
        assert entry in _names(ROOT / caller), f"{caller} does not call {entry}"
    # The archive's driver writes through the one path's second half.
    assert "write_files" in _names(ROOT / "archive/outcome.py")
    # Both engines analyse through the archive's analyse_video.
    for engine in ("archive/local.py", "archive/ray_engine.py"):
        assert "analyse_video" in _names(ROOT / engine)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("one")
    model = build_color_model(d / "m.onnx", organ_colors=SCENE_MEAN_RGB,
                              sharpness_threshold=0.5)
    assert main(["demo", "--out-dir", str(d / "demo"), "--models", str(model)]) == 0
    return d, model


def test_segment_demo_evaluate_and_the_archive_write_the_same_files(demo_run, capsys):
    d, model = demo_run
    video = d / "demo" / "procedure.mp4"
    assert main(["segment", str(video), "--models", str(model), "--out", str(d / "s.json"),
                 "--csv", str(d / "s.csv"), "--quiet"]) == 0
    assert main(["evaluate", "--video", str(video), "--truth",
                 str(d / "demo" / "procedure.truth.json"), "--models", str(model),
                 "--out-dir", str(d / "eval"), "--quiet"]) == 0
    assert main(["segment", str(video), "--models", str(model), "--out-dir",
                 str(d / "archive"), "--csv", "--quiet"]) == 0
    capsys.readouterr()
    demo = (d / "demo" / "sections.json").read_bytes()
    assert (d / "s.json").read_bytes() == demo
    # evaluate writes no per-frame CSV, so its file records no CSV hash; nothing else differs.
    evaluated = json.loads((d / "eval" / "sections.json").read_bytes())
    without_csv = json.loads(demo)
    assert without_csv["analysis"].pop("frames_csv_sha256")
    assert evaluated == without_csv
    csv = (d / "demo" / "frames.csv").read_bytes()
    assert (d / "s.csv").read_bytes() == csv and csv.count(b"\n") > 39  # at least 1/s
    # The archive's file adds what its resume check needs (analysis.input), nothing else.
    archived = json.loads((d / "archive" / "procedure.mp4.sections.json").read_bytes())
    assert set(archived["analysis"].pop("input")) == {"size_bytes", "mtime_ns"}
    assert archived == json.loads(demo)
    assert (d / "archive" / "procedure.mp4.frames.csv").read_bytes() == csv


def _document():
    return build_document(
        complete=True, source=SourceInfo("v.mp4", 10.0, 20, 2.0, 64, 48),
        models={"path": "m.onnx", "sha256": "ab" * 32, "heads": {"quality": ["bad", "good"]}},
        frames_analysed=2, sample_fps=1.0, segmenter={},
        sections=[Section("usable", 0.0, 2.0, 0, 19, 1.0, 0.9)])


def _predictions():
    return [Prediction(i, float(i), {"quality": np.array([0.1, 0.9], np.float32)}, 0, 0)
            for i in range(2)]


def test_write_order_csv_then_sections_then_each_alongside_output(tmp_path):
    calls = []

    def chapters(doc, sections):
        calls.append(("chapters", sections.exists()))
        raise UsageError("chapters failed")

    def report(doc, sections):
        calls.append(("report", sections.exists()))
        raise VideoError("report failed")

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    files = VideoFiles(sections=tmp_path / "s.json", csv=blocker / "frames.csv",
                       alongside=(chapters, report))
    written = write_files(_document(), files, predictions=_predictions())
    # The CSV failed and left nothing; the sections were still written; both alongside
    # outputs were tried, after the sections, in order; the errors kept in that order.
    assert (tmp_path / "s.json").is_file() and blocker.read_text() == "not a folder"
    assert calls == [("chapters", True), ("report", True)]
    assert [type(e) for e in written.errors] == [OutputError, UsageError, VideoError]
    with pytest.raises(OutputError) as raised:
        written.raise_first()
    assert raised.value.exit_code == EXIT_OUTPUT


def test_the_kept_predictions_make_the_streamed_csv(tmp_path):
    written = write_files(_document(), VideoFiles(sections=tmp_path / "s.json",
                                                  csv=tmp_path / "f.csv"),
                          predictions=_predictions())
    assert written.errors == ()
    rows = (tmp_path / "f.csv").read_text().splitlines()
    assert rows == ["frame,pts_s,quality,quality_bad,quality_good",
                    "0,0.0000,good,0.1000,0.9000", "1,1.0000,good,0.1000,0.9000"]


def test_no_sections_path_writes_nothing(tmp_path):
    assert write_files(_document(), VideoFiles(sections=None)).errors == ()


def test_a_missing_video_is_found_before_the_outputs_as_segment_does(tmp_path, capsys):
    missing, truth = tmp_path / "gone.mp4", tmp_path / "t.json"
    truth.write_text(json.dumps({"sections": [{"label": "nose", "start_s": 0, "end_s": 1}]}))
    unwritable = "/proc/endostream-out"  # cannot be created: an output error otherwise
    assert main(["segment", str(missing), "--out", f"{unwritable}/s.json"]) == EXIT_VIDEO
    assert main(["evaluate", "--video", str(missing), "--truth", str(truth),
                 "--out-dir", unwritable]) == EXIT_VIDEO
    err = capsys.readouterr().err
    assert err.count(f"video not found: '{missing}'") == 2
