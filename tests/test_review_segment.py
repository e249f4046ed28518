"""`segment --chapters/--report`: the review outputs in the same run, no second decode."""

from __future__ import annotations

import base64
import json
import re

import cv2
import numpy as np
import pytest

from endostream.cli import main
from endostream.synth import ProcedureSpec, render_procedure
from endostream.synth.scenes import SCENE_MEAN_RGB
from helpers.onnx_models import build_color_model

pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

PROCEDURE = "nose:4,black:3,vocal_folds:4"


def test_segment_writes_chapters_and_report_from_one_pass(tmp_path, monkeypatch, capsys):
    video = tmp_path / "procedure.mp4"
    render_procedure(video, ProcedureSpec.parse(PROCEDURE), width=160, height=120, fps=10.0,
                     seed=1)
    model = build_color_model(tmp_path / "m.onnx", organ_colors=SCENE_MEAN_RGB)

    def no_second_decode(*args, **kwargs):
        raise AssertionError("the report decoded the video again")

    monkeypatch.setattr("endostream.procedure.thumbnails.grab_frames", no_second_decode)
    out, vtt, html = tmp_path / "s.json", tmp_path / "c.vtt", tmp_path / "r.html"
    assert main(["segment", str(video), "--models", str(model), "--out", str(out),
                 "--chapters", str(vtt), "--report", str(html), "--quiet"]) == 0
    sections = json.loads(out.read_text())["sections"]
    assert [s["label"] for s in sections] == ["nose", "unusable", "vocal_folds"]
    assert vtt.read_text().count(" --> ") == len(sections)
    page = html.read_text()
    thumbs = re.findall(r'class="thumb" src="data:image/jpeg;base64,([^"]+)"', page)
    assert len(thumbs) == len(sections)
    organs = list(SCENE_MEAN_RGB)
    for section, b64 in zip(sections, thumbs, strict=True):
        img = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
        centre = img[img.shape[0] // 3: 2 * img.shape[0] // 3,
                     img.shape[1] // 3: 2 * img.shape[1] // 3]
        mean = centre.reshape(-1, 3).mean(axis=0)[::-1]
        if section["label"] == "unusable":
            assert mean.max() < 40  # black
        else:
            nearest = min(organs, key=lambda o: np.abs(mean - SCENE_MEAN_RGB[o]).sum())
            assert nearest == section["label"]
    assert 'src="procedure.mp4"' in page  # the player
    timeline = re.search(r'id="timeline" src="data:image/png;base64,([^"]+)"', page).group(1)
    png = cv2.imdecode(np.frombuffer(base64.b64decode(timeline), np.uint8), cv2.IMREAD_COLOR)
    assert png.shape[0] > 300  # the probability panels, from this run (no CSV given)


def test_segment_refuses_bad_review_outputs_before_analysing(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    render_procedure(video, ProcedureSpec.parse("ear:1"), width=64, height=48, fps=5.0)
    out = tmp_path / "s.json"
    assert main(["segment", str(video), "--out", str(out), "--report", "r.doc"]) == 2
    assert main(["segment", str(video), "--out", str(out), "--chapters", str(video)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("endostream: error:") == 2
