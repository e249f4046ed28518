"""Coarse to fine (issue 32): the rule without video, then real clips through the real
pipeline (PyAV decoding, onnxruntime running a small contract model).

- the rule (:mod:`endostream.segmentation.refine`) on plain probabilities;
- the sections of a coarse-to-fine run equal a dense run's within the boundary tolerance
  of the segment tests, on generated procedures with known truth, with fewer inferences;
- a stretch longer than the coarse step between two equal answers is found, and the
  stated worst case (a shorter one wholly between two coarse frames) really is missed;
- timestamps and frame indices stay frame-exact where non-reference frames are skipped,
  on the corpus's VFR, rotated, 10-bit and damaged files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from endostream.errors import DecodeError
from endostream.inference.classifier import Classifier
from endostream.pipeline.offline import SegmentOptions, segment_video
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.hmm import FrameModel
from endostream.segmentation.refine import (
    ORGAN_MARGIN,
    QUALITY_MARGIN,
    CoarseAnswer,
    coarse_answer,
    needs_dense,
)
from endostream.sources import FileSource
from endostream.sources.skim import IndexMismatch, SkimSource
from endostream.synth import ProcedureSpec, render_procedure
from endostream.synth.scenes import SCENE_MEAN_RGB
from helpers.corpus import write_corpus
from helpers.onnx_models import build_color_model

#: Boundary tolerance of the segment tests (tests/test_segment_cli.py).
BOUNDARY_TOLERANCE_S = 0.5
#: As in tests/test_segment_cli.py: clear and blurred synth scenes at 320x240.
SHARPNESS_RATIO = 0.151

MODEL = FrameModel(["ear", "nose"], SegmenterConfig())


# --- the rule, on plain probabilities ---------------------------------------------------------


def _answer(p_good: float, organ: tuple[float, float]) -> CoarseAnswer:
    return coarse_answer(MODEL, {"quality": [1 - p_good, p_good], "organ": list(organ)})


def test_clear_answers_are_sure_and_name_their_state():
    assert _answer(0.95, (0.05, 0.95)) == CoarseAnswer("nose", True)
    assert _answer(0.95, (0.95, 0.05)) == CoarseAnswer("ear", True)
    assert _answer(0.05, (0.05, 0.95)) == CoarseAnswer("unusable", True)  # quality gates


def test_quality_near_its_threshold_is_unsure():
    near = 0.5 + QUALITY_MARGIN / 2
    assert _answer(near, (0.05, 0.95)) == CoarseAnswer("nose", False)
    assert _answer(1 - near, (0.05, 0.95)) == CoarseAnswer("unusable", False)
    assert _answer(0.5 + QUALITY_MARGIN, (0.05, 0.95)).sure


def test_close_organs_are_unsure_only_on_a_good_frame():
    close = (0.5 - ORGAN_MARGIN / 4, 0.5 + ORGAN_MARGIN / 4)
    assert _answer(0.95, close) == CoarseAnswer("nose", False)
    assert _answer(0.05, close) == CoarseAnswer("unusable", True)  # organ says nothing there


def test_missing_heads_follow_the_segmenter():
    quality_only = FrameModel([], SegmenterConfig(), ("bad", "good"))
    assert coarse_answer(quality_only, {"quality": [0.1, 0.9]}) == CoarseAnswer("usable", True)
    organ_only = FrameModel(["ear", "nose"], SegmenterConfig(), None)
    assert coarse_answer(organ_only, {"organ": [0.9, 0.1]}) == CoarseAnswer("ear", True)


def test_dense_only_between_differing_or_unsure_answers():
    nose, ear = CoarseAnswer("nose", True), CoarseAnswer("ear", True)
    assert not needs_dense(nose, nose)
    assert needs_dense(nose, ear) and needs_dense(ear, nose)
    assert needs_dense(nose, CoarseAnswer("nose", False))
    assert needs_dense(CoarseAnswer("nose", False), nose)
    assert needs_dense(CoarseAnswer("unusable", True), nose)


# --- real clips, real model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_color_model(tmp_path_factory.mktemp("model") / "color.onnx",
                             organ_colors=SCENE_MEAN_RGB, sharpness="ratio",
                             sharpness_threshold=SHARPNESS_RATIO)


def _run(video: Path, model: Path, **options) -> tuple[list[tuple[str, float, float]], object]:
    with Classifier.load(model, device="cpu") as clf:
        result = segment_video(video, clf, SegmentOptions(**options))
    assert result.complete
    return [(s.label, s.start_s, s.end_s) for s in result.sections], result


def _assert_same_sections(found, expected) -> None:
    assert [f[0] for f in found] == [e[0] for e in expected], (found, expected)
    for (_, start, end), (_, e_start, e_end) in zip(found, expected, strict=True):
        assert abs(start - e_start) <= BOUNDARY_TOLERANCE_S, (found, expected)
        assert abs(end - e_end) <= BOUNDARY_TOLERANCE_S, (found, expected)


#: Unusable stretches of 3 s and more: a 2.5 s one is at the segmenter's own threshold
#: (its evidence about equals two switches' cost), where two dense runs with other batch
#: sizes can already disagree.
PROCEDURES = [
    ("nose:8,blur:3,vocal_folds:8,dark:1,black:2,ear:8", 3),
    ("ear:6,black:4,ear:5,nose:7,blur:3,nose:4,vocal_folds:6", 11),
    ("vocal_folds:5,nose:4,dark:3.5,ear:9,black:3,nose:6", 12),
]


@pytest.mark.parametrize(("spec", "seed"), PROCEDURES)
def test_coarse_to_fine_finds_the_sections_a_dense_run_finds(spec, seed, model, tmp_path):
    video = tmp_path / "p.mp4"
    truth = render_procedure(video, ProcedureSpec.parse(spec), width=320, height=240,
                             fps=25.0, seed=seed)
    dense, dense_result = _run(video, model, coarse_fps=None)
    coarse, result = _run(video, model)
    _assert_same_sections(coarse, dense)  # dense is the reference (the colour model
    # misses some blurred stretches either way; tests/test_segment_cli.py checks the truth)
    analysis = result.document.analysis
    assert analysis.extra["mode"] == "coarse-to-fine" and analysis.sample_fps == 5.0
    assert dense_result.document.analysis.extra["mode"] == "dense"
    assert analysis.frames_analysed < 0.8 * dense_result.frames_analysed
    assert analysis.extra["coarse_to_fine"]["skipped_non_reference_frames"] is True
    assert result.frames_decoded < dense_result.frames_decoded
    # Same video, same frame count and duration either way, though fewer frames decoded.
    assert result.source.frames == dense_result.source.frames == truth.n_frames
    assert result.source.duration_s == pytest.approx(dense_result.source.duration_s)


#: A 4 s coarse step (0.25/s) and short minimum lengths: here both sides of the stated
#: rule show - a stretch longer than the step is found, a shorter one can be missed.
WIDE = {"coarse_fps": 0.25,
        "segmenter": SegmenterConfig(min_section_s=1.0, unusable_min_s=1.0)}


def test_a_stretch_longer_than_the_coarse_step_is_found(model, tmp_path):
    # Black from 8.5 to 13.5 s: longer than the 4 s step, so a coarse frame (12 s) sees it.
    video = tmp_path / "long.mp4"
    render_procedure(video, ProcedureSpec.parse("nose:8.5,black:5,nose:8"), width=320,
                     height=240, fps=25.0, seed=5)
    dense, _ = _run(video, model, coarse_fps=None, segmenter=WIDE["segmenter"])
    coarse, result = _run(video, model, **WIDE)
    assert [f[0] for f in dense] == ["nose", "unusable", "nose"]
    _assert_same_sections(coarse, dense)
    steps = result.document.analysis.extra["coarse_to_fine"]
    assert steps["coarse_every"] == 20 and steps["steps_refined"] == 2


def test_the_worst_case_a_shorter_stretch_between_two_equal_answers(model, tmp_path):
    # Black from 8.5 to 11.0 s lies wholly between the coarse frames at 8 and 12 s, which
    # both see nose: the documented worst case. A dense run finds it.
    video = tmp_path / "short.mp4"
    render_procedure(video, ProcedureSpec.parse("nose:8.5,black:2.5,nose:8"), width=320,
                     height=240, fps=25.0, seed=5)
    dense, _ = _run(video, model, coarse_fps=None, segmenter=WIDE["segmenter"])
    coarse, _ = _run(video, model, **WIDE)
    assert [f[0] for f in dense] == ["nose", "unusable", "nose"]
    assert [f[0] for f in coarse] == ["nose"]


# --- frame-exact on the corpus -----------------------------------------------------------------

EXACT_CASES = ["vfr", "rotated", "10bit", "corrupt-middle", "faststart-cut-50", "black-start",
               "no-border", "single-frame"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return write_corpus(tmp_path_factory.mktemp("corpus"), names=EXACT_CASES)


def _every_frame(path: Path) -> dict[int, float]:
    frames = {}
    with FileSource(path, sample_fps=None) as src:
        try:
            while (frame := src.read()) is not None:
                frames[frame.index] = frame.pts_s
        except DecodeError:
            pass
    return frames


def _ticks(path: Path, *, skip: bool) -> tuple[list[tuple[int, float]], bool]:
    ticks = []
    with SkimSource(path, sample_fps=5.0, coarse_every=5, skip=skip) as src:
        try:
            while (tick := src.read_tick()) is not None:
                ticks.append((tick.index, tick.pts_s))
        except DecodeError:
            pass
        return ticks, src.skipping


@pytest.mark.parametrize("name", EXACT_CASES)
def test_skimmed_ticks_are_frame_exact_on_the_corpus(name, corpus):
    if name not in corpus:
        pytest.skip(f"{name} cannot be made with this FFmpeg")
    every = _every_frame(corpus[name])
    try:
        ticks, skipping = _ticks(corpus[name], skip=True)
    except IndexMismatch:  # the pipeline then decodes every frame: that must be exact too
        ticks, skipping = _ticks(corpus[name], skip=False)
    assert ticks, name
    for index, pts_s in ticks:
        assert index in every and every[index] == pytest.approx(pts_s, abs=1e-9), \
            (name, index, pts_s)
    assert [i for i, _ in ticks] == sorted({i for i, _ in ticks})
    # Each tick is the first decoded frame at or after its time: never more than a couple
    # of frames later than a full decode's choice.
    dense, _ = _ticks(corpus[name], skip=False)
    if skipping:
        assert len(ticks) >= len(dense) - 1, (ticks, dense)
    else:
        assert ticks == dense


def test_skipping_really_happens_on_h264_with_b_frames(tmp_path):
    # A generated procedure: libx264 with its default B-frames (the corpus's rotated clip
    # is one too, but PyAV before 18.1 cannot write it, so the floors would skip it).
    video = tmp_path / "b.mp4"
    render_procedure(video, ProcedureSpec.parse("nose:3,ear:3"), width=160, height=120,
                     fps=25.0, seed=1)
    with SkimSource(video, sample_fps=5.0) as src:
        while src.read_tick() is not None:
            pass
        assert src.skipping and src.decoded_frames < src.frames_total


# --- fallbacks and early ends -------------------------------------------------------------------


@pytest.fixture(scope="module")
def procedure(tmp_path_factory) -> Path:
    video = tmp_path_factory.mktemp("procedure") / "p.mp4"
    render_procedure(video, ProcedureSpec.parse(PROCEDURES[0][0]), width=320, height=240,
                     fps=25.0, seed=PROCEDURES[0][1])
    return video


def test_a_packet_scan_that_does_not_match_the_decoder_falls_back_to_decoding_all(
        procedure, model, monkeypatch, caplog):
    # Fault injection: every scanned timestamp one tick off, as a container whose packet
    # timestamps are not the frames' would be. The run must notice and decode every frame.
    from endostream.sources import skim

    real = skim.scan_frame_ranks

    class Shifted:  # every frame looked up one timestamp tick off
        def __init__(self, inner):
            self.inner = inner

        def rank(self, pts):
            return self.inner.rank(None if pts is None else pts + 1)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    def shifted(path):
        ranks = real(path)
        return None if ranks is None else Shifted(ranks)

    dense, _ = _run(procedure, model, coarse_fps=None)
    monkeypatch.setattr(skim, "scan_frame_ranks", shifted)
    coarse, result = _run(procedure, model)
    steps = result.document.analysis.extra["coarse_to_fine"]
    assert steps["skipped_non_reference_frames"] is False
    assert result.frames_decoded == result.source.frames == 750
    assert "decoding every frame instead" in caplog.text
    _assert_same_sections(coarse, dense)


def test_a_stop_part_way_keeps_what_was_analysed(procedure, model):
    import threading

    from endostream.errors import Interrupted

    stop = threading.Event()

    def progress(decoded, analysed, total):
        if analysed >= 12:
            stop.set()

    with Classifier.load(model, device="cpu") as clf:
        result = segment_video(procedure, clf, SegmentOptions(), on_progress=progress,
                               stop=stop)
    assert isinstance(result.error, Interrupted) and not result.complete
    assert 12 <= result.frames_analysed < 150
    assert result.sections and result.sections[0].label == "nose"
    assert result.document.analysis.extra["mode"] == "coarse-to-fine"
