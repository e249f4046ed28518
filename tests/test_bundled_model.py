"""The bundled demo model: it ships, meets the contract and segments a fresh synth clip."""

from __future__ import annotations

import json

import jsonschema
import pytest

from endostream.bundled import demo_model_path
from endostream.cli import main
from endostream.inference.classifier import Classifier
from endostream.output.sections_file import schema
from endostream.synth import ProcedureSpec, render_procedure

pytestmark = pytest.mark.skipif(not demo_model_path().is_file(),
                                reason="bundled demo model not in this checkout")


def test_demo_model_meets_the_contract():
    with Classifier.load(demo_model_path(), device="cpu") as clf:
        assert clf.heads == {"quality": ["bad", "good"], "organ": ["ear", "nose", "vocal_folds"]}
        assert clf.provider == "cpu"


def test_demo_model_segments_an_unseen_procedure(tmp_path, capsys):
    # seed and field of view differ from anything the model was trained or measured on
    truth = render_procedure(tmp_path / "clip.mp4",
                             ProcedureSpec.parse("vocal_folds:8,black:3,nose:8,blur:3,ear:8"),
                             width=320, height=240, fps=10.0, seed=2024, fov="rounded")
    out = tmp_path / "s.json"
    assert main(["segment", str(tmp_path / "clip.mp4"), "--out", str(out), "--quiet"]) == 0
    assert "DEMO model" in capsys.readouterr().err
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, schema())
    found = [(s["label"], s["start_s"], s["end_s"]) for s in doc["sections"]]
    assert [f[0] for f in found] == [t.label for t in truth.sections]
    for (_, start, end), t in zip(found, truth.sections, strict=True):
        assert abs(start - t.start_s) <= 0.5 and abs(end - t.end_s) <= 0.5


def test_quickstart_demo_command(tmp_path, capsys):
    """The README's first command: render, segment with the bundled model, compare."""
    assert main(["demo", "--out-dir", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "ground truth" in out and "segment F1" in out
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["f1"] == 1.0
    doc = json.loads((tmp_path / "demo" / "sections.json").read_text())
    jsonschema.validate(doc, schema())
    assert (tmp_path / "demo" / "frames.csv").is_file()
