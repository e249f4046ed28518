"""The one analysis path of a recorded video: ``segment_video`` returns the document, and
its ``on_frame`` hook sees every analysed full-size frame (the report's recorder uses it).

Real parts: a PyAV-encoded synthetic procedure and a small real ONNX model on the CPU.
"""

from __future__ import annotations

import threading

import pytest

from endostream.inference.classifier import Classifier
from endostream.output.document import SectionsDocument
from endostream.pipeline.offline import SegmentOptions, segment_video
from endostream.synth import ProcedureSpec, render_procedure
from endostream.synth.scenes import SCENE_MEAN_RGB
from helpers.onnx_models import build_color_model


@pytest.fixture(scope="module")
def clip_and_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("path")
    render_procedure(d / "v.mp4", ProcedureSpec.parse("nose:3,ear:3"), width=128, height=96,
                     fps=10.0, seed=5)
    model = build_color_model(d / "m.onnx", organ_colors=SCENE_MEAN_RGB,
                              sharpness_threshold=0.5)
    return d / "v.mp4", model


def test_on_frame_sees_every_analysed_full_size_frame_before_its_prediction(clip_and_model):
    video, model = clip_and_model
    seen, predicted, threads = [], [], set()

    def on_frame(frame):
        threads.add(threading.current_thread().name)
        seen.append((frame.index, frame.display.shape))

    with Classifier.load(model, device="cpu") as clf:
        result = segment_video(video, clf, SegmentOptions(sample_fps=5.0), on_frame=on_frame,
                               on_prediction=lambda p: predicted.append(p.index))
    assert isinstance(result.document, SectionsDocument) and result.complete
    # Coarse to fine looks at the 1/s frames first and the ones between after them; the
    # predictions are handed on in frame order.
    assert sorted(i for i, _ in seen) == predicted and len(seen) == len(set(seen))
    assert predicted == sorted(predicted)
    assert {shape for _, shape in seen} == {(96, 128, 3)}  # full size, not the model input
    assert threads == {"endostream-capture"}  # the capture thread, not the caller's
    # The document is the one the file will hold: it reads back as itself.
    assert SectionsDocument.from_json(result.document.to_json()) == result.document
    assert result.document.analysis.frames_analysed == len(seen) <= 30  # 6 s at 5 fps


def test_without_a_hook_no_full_size_frame_is_kept(clip_and_model, monkeypatch):
    from endostream.sources import file as file_source

    kept = []
    original = file_source.FileSource.__init__

    def spy(self, *args, **kwargs):
        kept.append(kwargs.get("keep_display", False))
        original(self, *args, **kwargs)

    monkeypatch.setattr(file_source.FileSource, "__init__", spy)
    video, model = clip_and_model
    with Classifier.load(model, device="cpu") as clf:
        segment_video(video, clf, SegmentOptions(sample_fps=5.0))
    assert kept == [False]
