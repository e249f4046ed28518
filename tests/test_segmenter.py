"""OfflineSegmenter on generated probability sequences: clean, flicker, bad bursts, edge cases."""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest

from endostream.errors import ModelError, UsageError
from endostream.frames import Prediction
from endostream.output.sections_file import schema
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.hmm import frame_weights
from endostream.segmentation.offline import OfflineSegmenter
from endostream.segmentation.section import QUALITY_ONLY_LABEL, UNUSABLE

ORGANS = ("ear", "nose", "vocal_folds")
FPS = 5.0


def frame(i: int, pts: float, organ: str | None, p_good: float = 0.9, *,
          labels=ORGANS, peak: float = 0.9, organ_head: bool = True) -> Prediction:
    """A prediction saying ``organ`` with probability ``peak`` (flat if None)."""
    k = len(labels)
    if organ is None:
        o = np.full(k, 1.0 / k, np.float32)
    else:
        o = np.full(k, (1 - peak) / (k - 1), np.float32)
        o[labels.index(organ)] = peak
    probs = {"quality": np.array([1 - p_good, p_good], np.float32)}
    if organ_head:
        probs["organ"] = o
    return Prediction(index=i, pts_s=pts, probs=probs, captured_ns=0, labelled_ns=0)


def timeline(spec, fps: float = FPS, source_fps: float = 30.0, **kw) -> tuple[list, float, int]:
    """Predictions for ``[(organ|None, p_good, seconds), ...]`` sampled at ``fps``."""
    preds, t = [], 0.0
    total = sum(s for *_, s in spec)
    ends = np.cumsum([s for *_, s in spec])
    n = int(round(total * fps))
    for k in range(n):
        t = k / fps
        seg = int(np.searchsorted(ends, t, side="right"))
        organ, p_good, _ = spec[seg]
        preds.append(frame(int(round(t * source_fps)), t, organ, p_good, **kw))
    return preds, total, int(round(total * source_fps)) - 1


def run(preds, end_s=None, end_frame=None, labels=ORGANS, **kw):
    seg = OfflineSegmenter(labels, **kw)
    for p in preds:
        seg.update(p)
    return seg.finish(end_s=end_s, end_frame=end_frame)


SECTION_SCHEMA = schema()["properties"]["sections"]


def assert_valid(sections, end_s=None, end_frame=None):
    """Ordered, non-overlapping, contiguous in frames and time, covering [0, end]."""
    assert sections, "no sections"
    jsonschema.validate([s.to_json() for s in sections], SECTION_SCHEMA)
    assert sections[0].start_s == 0.0 and sections[0].start_frame == 0
    for a, b in zip(sections, sections[1:], strict=False):
        assert a.end_s == b.start_s
        assert b.start_frame == a.end_frame + 1
        assert a.label != b.label, "neighbours with one label should have been merged"
    for s in sections:
        assert s.start_s <= s.end_s and s.start_frame <= s.end_frame
        assert 0.0 <= s.good_fraction <= 1.0 and 0.0 <= s.confidence <= 1.0
    if end_s is not None:
        assert sections[-1].end_s == pytest.approx(end_s)
    if end_frame is not None:
        assert sections[-1].end_frame == end_frame


def labels_of(sections):
    return [s.label for s in sections]


def test_clean_sequence_gives_one_section_per_organ_with_midpoint_boundaries():
    preds, end_s, end_frame = timeline([("nose", 0.95, 20), ("ear", 0.95, 30),
                                        ("vocal_folds", 0.95, 15)])
    out = run(preds, end_s, end_frame)
    assert_valid(out, end_s, end_frame)
    assert labels_of(out) == ["nose", "ear", "vocal_folds"]
    # Last nose frame at 19.8 s, first ear frame at 20.0 s: boundary halfway.
    assert out[1].start_s == pytest.approx(19.9)
    assert out[2].start_s == pytest.approx(49.9)
    assert out[0].end_frame == 596 and out[1].start_frame == 597  # frames 594 | 600
    assert out[0].good_fraction == 1.0 and out[0].confidence == pytest.approx(0.9)


def test_flicker_does_not_split_sections():
    rng = np.random.default_rng(1)
    preds, end_s, end_frame = timeline([("nose", 0.9, 40), ("ear", 0.9, 40)])
    noisy = []
    for p in preds:
        if rng.random() < 0.25:  # a quarter of the frames say a random wrong organ
            true = ORGANS[int(np.argmax(p.probs["organ"]))]
            wrong = rng.choice([o for o in ORGANS if o != true])
            p = frame(p.index, p.pts_s, str(wrong), 0.9, peak=rng.uniform(0.5, 0.99))
        noisy.append(p)
    out = run(noisy, end_s, end_frame)
    assert_valid(out, end_s, end_frame)
    assert labels_of(out) == ["nose", "ear"]
    assert abs(out[1].start_s - 40.0) < 1.0


def test_short_wrong_label_burst_is_absorbed():
    preds, end_s, end_frame = timeline([("nose", 0.9, 20), ("ear", 0.9, 1.6), ("nose", 0.9, 20)])
    out = run(preds, end_s, end_frame)
    assert labels_of(out) == ["nose"]
    assert_valid(out, end_s, end_frame)


def test_short_bad_burst_inside_organ_never_splits_it():
    spec = [("nose", 0.9, 15), (None, 0.05, 1.8), ("nose", 0.9, 10), (None, 0.1, 1.0),
            ("nose", 0.9, 15)]
    out = run(*timeline(spec)[:1], end_s=None)
    assert labels_of(out) == ["nose"]
    assert 0.8 < out[0].good_fraction < 1.0
    assert_valid(out)


def test_long_bad_stretch_is_an_unusable_section():
    preds, end_s, end_frame = timeline([("nose", 0.9, 20), (None, 0.05, 10), ("nose", 0.9, 20)])
    out = run(preds, end_s, end_frame)
    assert_valid(out, end_s, end_frame)
    assert labels_of(out) == ["nose", UNUSABLE, "nose"]
    assert abs(out[1].start_s - 20) <= 0.2 and abs(out[1].end_s - 30) <= 0.2
    assert out[1].good_fraction == 0.0 and out[1].confidence == pytest.approx(0.95)


def test_unusable_just_above_its_minimum_is_kept_and_below_is_absorbed():
    cfg = SegmenterConfig(unusable_min_s=2.0)
    kept = run(timeline([("ear", 0.95, 20), (None, 0.01, 3.0), ("ear", 0.95, 20)])[0],
               config=cfg)
    assert labels_of(kept) == ["ear", UNUSABLE, "ear"]
    absorbed = run(timeline([("ear", 0.95, 20), (None, 0.01, 1.6), ("ear", 0.95, 20)])[0],
                   config=cfg)
    assert labels_of(absorbed) == ["ear"]


def test_short_bad_gap_between_two_organs_splits_between_them():
    preds, end_s, end_frame = timeline([("nose", 0.9, 20), (None, 0.05, 1.0), ("ear", 0.9, 20)])
    out = run(preds, end_s, end_frame)
    assert labels_of(out) == ["nose", "ear"]
    # Somewhere in the gap (flat evidence there: the decoder's tie-break picks the place).
    assert 19.8 <= out[1].start_s <= 21.1
    assert_valid(out, end_s, end_frame)


def test_sections_shorter_than_min_section_merge_into_a_neighbour():
    spec = [("ear", 0.95, 30), ("nose", 0.95, 5), ("ear", 0.95, 30)]
    assert labels_of(run(timeline(spec)[0])) == ["ear", "nose", "ear"]
    long_min = SegmenterConfig(min_section_s=8.0)
    assert labels_of(run(timeline(spec)[0], config=long_min)) == ["ear"]


def test_one_frame_video():
    p = frame(0, 0.0, "ear")
    out = run([p])
    assert_valid(out)
    assert labels_of(out) == ["ear"] and out[0].end_s == pytest.approx(0.2)
    out = run([p], end_s=0.04, end_frame=0)
    assert_valid(out, 0.04, 0)
    assert (out[0].start_frame, out[0].end_frame) == (0, 0)


def test_zero_frame_video():
    assert run([]) == []
    assert run([], end_s=3.0) == []
    (only,) = run([], end_s=3.0, end_frame=89)
    assert (only.label, only.start_s, only.end_s, only.end_frame) == (UNUSABLE, 0.0, 3.0, 89)


def test_all_bad_video_is_one_unusable_section():
    preds, end_s, end_frame = timeline([("nose", 0.02, 30)])
    out = run(preds, end_s, end_frame)
    assert labels_of(out) == [UNUSABLE]
    assert_valid(out, end_s, end_frame)


def test_organ_head_missing_in_every_prediction_invents_no_organ():
    spec = [("nose", 0.9, 20), (None, 0.05, 10), ("nose", 0.9, 20)]
    preds, end_s, end_frame = timeline(spec, organ_head=False)
    out = run(preds, end_s, end_frame)
    assert_valid(out, end_s, end_frame)
    assert labels_of(out) == [QUALITY_ONLY_LABEL, UNUSABLE, QUALITY_ONLY_LABEL]
    quality_only = run(preds, end_s, end_frame, labels=())
    assert [(s.label, s.start_s, s.end_frame) for s in out] == [
        (s.label, s.start_s, s.end_frame) for s in quality_only]
    assert out[0].confidence == 0.0  # no organ probability to average


def test_organ_head_missing_on_bad_frames_only():
    preds, end_s, end_frame = timeline([("nose", 0.9, 20), (None, 0.05, 10), ("ear", 0.9, 20)])
    preds = [p if p.probs["quality"][1] > 0.5 else
             Prediction(p.index, p.pts_s, {"quality": p.probs["quality"]}, 0, 0) for p in preds]
    out = run(preds, end_s, end_frame)
    assert labels_of(out) == ["nose", UNUSABLE, "ear"]
    assert_valid(out, end_s, end_frame)


def test_organ_only_model_counts_every_frame_good():
    preds, end_s, end_frame = timeline([("nose", 0.9, 20), ("ear", 0.9, 20)])
    preds = [Prediction(p.index, p.pts_s, {"organ": p.probs["organ"]}, 0, 0) for p in preds]
    out = run(preds, end_s, end_frame, quality_labels=None)
    assert labels_of(out) == ["nose", "ear"]
    assert all(s.good_fraction == 1.0 for s in out)


@pytest.mark.parametrize("labels", [("left_ear", "right_ear"),
                                    ("a", "b", "c", "d", "e", "f", "g")])
def test_other_label_sets(labels):
    spec = [(labels[-1], 0.9, 15), (labels[0], 0.9, 15), (None, 0.05, 8), (labels[1], 0.9, 15)]
    preds, end_s, end_frame = timeline(spec, labels=labels)
    out = run(preds, end_s, end_frame, labels=labels)
    assert labels_of(out) == [labels[-1], labels[0], UNUSABLE, labels[1]]
    assert_valid(out, end_s, end_frame)


def test_variable_frame_rate_gives_the_same_sections():
    rng = np.random.default_rng(7)
    spec = [("nose", 0.9, 20), (None, 0.05, 6), ("ear", 0.9, 25), ("vocal_folds", 0.9, 12)]
    regular, end_s, end_frame = timeline(spec)
    # Irregular sampling: gaps from 0.05 s to 0.6 s, plus a 3 s stall.
    pts = np.cumsum(rng.uniform(0.05, 0.6, 400))
    pts = pts[pts < end_s - 0.1]
    pts[pts > 33] += 3.0
    pts = pts[pts < end_s - 0.1]
    ends = np.cumsum([s for *_, s in spec])
    vfr = [frame(int(t * 30), float(t), spec[int(np.searchsorted(ends, t, side="right"))][0],
                 spec[int(np.searchsorted(ends, t, side="right"))][1]) for t in pts]
    a = run(regular, end_s, end_frame)
    b = run(vfr, end_s, end_frame)
    assert_valid(b, end_s, end_frame)
    assert labels_of(a) == labels_of(b) == ["nose", UNUSABLE, "ear", "vocal_folds"]
    for x, y in zip(a[1:], b[1:], strict=True):
        assert abs(x.start_s - y.start_s) <= 0.6  # within the coarser sampling interval


def test_decisions_do_not_depend_on_the_analysis_rate():
    spec = [("ear", 0.9, 20), ("nose", 0.9, 1.8), ("ear", 0.9, 10), ("nose", 0.9, 4.0),
            ("ear", 0.9, 10)]
    results = [run(*timeline(spec, fps=fps)[:1]) for fps in (2.0, 5.0, 15.0)]
    assert [labels_of(r) for r in results] == [["ear", "nose", "ear"]] * 3


def test_frame_weights_cap_long_gaps():
    assert frame_weights(np.array([0.0, 0.1, 0.2, 10.0])).tolist() == [0.1, 0.1, 0.1, 1.0]
    assert frame_weights(np.array([2.0])).tolist() == [0.2]


def test_timestamps_going_backwards_are_held_and_indices_must_increase():
    seg = OfflineSegmenter(ORGANS)
    seg.update(frame(0, 1.0, "ear"))
    seg.update(frame(1, 0.5, "ear"))  # held at 1.0 s
    out = seg.finish()
    assert_valid(out)
    seg = OfflineSegmenter(ORGANS)
    seg.update(frame(5, 0.0, "ear"))
    with pytest.raises(ValueError, match="frame order"):
        seg.update(frame(5, 0.2, "ear"))


def test_single_use():
    seg = OfflineSegmenter(ORGANS)
    seg.finish()
    with pytest.raises(RuntimeError):
        seg.update(frame(0, 0.0, "ear"))
    with pytest.raises(RuntimeError):
        seg.finish()


def test_wrong_vector_lengths_are_refused():
    seg = OfflineSegmenter(ORGANS)
    bad = Prediction(0, 0.0, {"organ": np.array([0.5, 0.5], np.float32)}, 0, 0)
    with pytest.raises(ValueError, match="organ vector has 2 values"):
        seg.update(bad)


@pytest.mark.parametrize("labels,quality,match", [
    (("ear", UNUSABLE), ("bad", "good"), "reserved"),
    (("ear", "ear"), ("bad", "good"), "repeat"),
    (("ear", "nose"), ("low", "high"), "lack 'good'"),
    ((), None, "organ or a quality head"),
])
def test_label_problems_are_model_errors(labels, quality, match):
    with pytest.raises(ModelError, match=match):
        OfflineSegmenter(labels, quality_labels=quality)


@pytest.mark.parametrize("field,value", [
    ("min_section_s", 0.0), ("unusable_min_s", -1.0), ("good_threshold", 1.0),
    ("switch_cost_per_s", float("nan")), ("organ_floor", 0.0)])
def test_config_validation(field, value):
    with pytest.raises(UsageError, match=field):
        SegmenterConfig(**{field: value})


def test_config_to_json_and_describe():
    cfg = SegmenterConfig(min_section_s=4.0)
    doc = cfg.to_json()
    assert doc["min_section_s"] == 4.0 and doc["method"] == "hmm-viterbi"
    assert OfflineSegmenter(ORGANS, config=cfg).describe()["mode"] == "offline"


def test_good_threshold_sets_good_fraction():
    preds, *_ = timeline([("nose", 0.6, 20)])
    assert run(preds)[0].good_fraction == 1.0
    strict = run(preds, config=SegmenterConfig(good_threshold=0.7))
    assert strict[0].good_fraction == 0.0
