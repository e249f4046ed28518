"""LiveSegmenter: same result as offline, committed sections final, bounded lag and memory."""

from __future__ import annotations

import numpy as np
import pytest

from endostream.errors import UsageError
from endostream.frames import Prediction
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.live import DEFAULT_LAG_S, LiveSegmenter
from endostream.segmentation.offline import OfflineSegmenter
from endostream.segmentation.section import QUALITY_ONLY_LABEL, UNUSABLE

ORGANS = ("ear", "nose", "vocal_folds")


def noisy_video(seed: int, *, fps: float = 5.0, n_sections: int = 6):
    """A seeded procedure with classifier noise: iid confusions, wrong-organ bursts, bad
    bursts, out-of-body stretches, jittered timestamps with a few dropped frames."""
    rng = np.random.default_rng(seed)
    layout, prev = [], None
    for _ in range(n_sections):
        if rng.random() < 0.25:
            layout.append((UNUSABLE, rng.uniform(5, 25)))
        label = str(rng.choice([o for o in ORGANS if o != prev]))
        layout.append((label, rng.uniform(5, 60)))
        prev = label
    bounds = np.concatenate(([0.0], np.cumsum([d for _, d in layout])))
    pts = np.arange(0, bounds[-1], 1 / fps) + rng.uniform(0, 0.03, int(np.ceil(bounds[-1] * fps)))
    pts = pts[(rng.random(len(pts)) > 0.02) & (pts < bounds[-1])]
    burst_until, burst_cls, bad_until = -1.0, 0, -1.0
    preds = []
    for t in pts:
        label = layout[int(np.searchsorted(bounds, t, side="right")) - 1][0]
        if rng.random() < 0.01:
            burst_until, burst_cls = t + rng.uniform(0.4, 1.6), int(rng.integers(3))
        if rng.random() < 0.01:
            bad_until = t + rng.uniform(0.2, 1.5)
        if label == UNUSABLE or t < bad_until:
            g = rng.uniform(0.0, 0.4) if rng.random() < 0.92 else rng.uniform(0.5, 1)
            cls, peak = int(rng.integers(3)), rng.uniform(0.34, 0.8)
        else:
            g = rng.uniform(0.6, 1.0) if rng.random() < 0.97 else rng.uniform(0, 0.5)
            cls = ORGANS.index(label) if rng.random() < 0.8 else int(rng.integers(3))
            cls = burst_cls if t < burst_until else cls
            peak = rng.uniform(0.4, 0.99)
        organ = np.full(3, (1 - peak) / 2, np.float32)
        organ[cls] = peak
        preds.append(Prediction(int(round(t * 30)), float(t),
                                {"quality": np.array([1 - g, g], np.float32), "organ": organ},
                                0, 0))
    return preds, float(bounds[-1]), int(bounds[-1] * 30)


def offline(preds, end_s=None, end_frame=None, labels=ORGANS, **kw):
    seg = OfflineSegmenter(labels, **kw)
    for p in preds:
        seg.update(p)
    return seg.finish(end_s, end_frame)


def live_run(preds, end_s=None, end_frame=None, labels=ORGANS, **kw):
    seg = LiveSegmenter(labels, **kw)
    snaps = [seg.update(p) for p in preds]
    return seg, snaps, seg.finish(end_s, end_frame)


def assert_same_sections(a, b):
    assert [(s.label, s.start_frame, s.end_frame) for s in a] == [
        (s.label, s.start_frame, s.end_frame) for s in b]
    for x, y in zip(a, b, strict=True):
        assert x.start_s == pytest.approx(y.start_s, abs=1e-9)
        assert x.end_s == pytest.approx(y.end_s, abs=1e-9)
        assert x.good_fraction == pytest.approx(y.good_fraction, abs=1e-9)
        assert x.confidence == pytest.approx(y.confidence, abs=1e-6)


@pytest.mark.parametrize("seed", range(6))
def test_finish_equals_offline_on_noisy_sequences(seed):
    preds, end_s, end_frame = noisy_video(seed)
    off = offline(preds, end_s, end_frame)
    seg, _, on = live_run(preds, end_s, end_frame)
    if seg.forced_commits == 0 and seg.forced_merges == 0:
        assert_same_sections(on, off)  # exact: every commitment was a converged one
    else:  # stated tolerance where the lag forced a decision
        assert [s.label for s in on] == [s.label for s in off]
        for x, y in zip(on, off, strict=True):
            assert abs(x.start_s - y.start_s) <= seg.lag_s


def test_most_noisy_sequences_need_no_forced_commitment():
    forced = [live_run(noisy_video(seed)[0])[0].forced_commits for seed in range(6)]
    assert sum(f == 0 for f in forced) >= 4, forced


def test_shortest_lag_forces_commitments_and_stays_close_to_offline():
    forced, agreement = 0, []
    for seed in range(10, 14):
        preds, end_s, end_frame = noisy_video(seed)
        off = offline(preds, end_s, end_frame)
        seg, snaps, on = live_run(preds, end_s, end_frame, lag_s=6.0)  # the shortest allowed
        forced += seg.forced_commits
        assert_valid_cover(on, end_s, end_frame)
        assert [s.label for s in on] == [s.label for s in off]
        grid = np.arange(0, end_s, 0.1)
        agreement.append(np.mean([label_at(on, t) == label_at(off, t) for t in grid]))
    assert forced > 0
    assert min(agreement) > 0.95, agreement


def label_at(sections, t):
    return sections[int(np.searchsorted([s.start_s for s in sections], t, "right")) - 1].label


def test_lag_shorter_than_twice_the_minimum_length_is_refused():
    with pytest.raises(UsageError, match="at least 6 s"):
        LiveSegmenter(ORGANS, lag_s=5.0)
    LiveSegmenter(ORGANS, config=SegmenterConfig(min_section_s=1.0, unusable_min_s=1.0), lag_s=2.0)
    assert LiveSegmenter(ORGANS).lag_s == DEFAULT_LAG_S
    # Long sections and no explicit lag: the default grows instead of failing.
    assert LiveSegmenter(ORGANS, config=SegmenterConfig(min_section_s=25.0)).lag_s == 50.0


def assert_valid_cover(sections, end_s, end_frame):
    assert sections[0].start_s == 0.0 and sections[0].start_frame == 0
    for a, b in zip(sections, sections[1:], strict=False):
        assert a.end_s == b.start_s and b.start_frame == a.end_frame + 1 and a.label != b.label
        assert a.start_s <= a.end_s and a.start_frame <= a.end_frame
    assert sections[-1].end_s == pytest.approx(end_s) and sections[-1].end_frame == end_frame


def test_snapshots_commit_only_final_sections_and_cover_the_stream():
    preds, end_s, end_frame = noisy_video(3)
    seg, snaps, final = live_run(preds, end_s, end_frame, lag_s=6.0)
    previous: tuple = ()
    for p, snap in zip(preds, snaps, strict=True):
        assert snap.committed[: len(previous)] == previous  # never revised
        previous = snap.committed
        secs = list(snap.committed) + list(snap.tentative)
        assert secs[0].start_s == 0.0 and secs[0].start_frame == 0
        for a, b in zip(secs, secs[1:], strict=False):
            assert a.end_s == b.start_s and b.start_frame == a.end_frame + 1
        assert secs[-1].end_frame == p.index and secs[-1].end_s > p.pts_s
        assert snap.current_label == snap.tentative[-1].label
        assert snap.current_quality_good == (p.probs["quality"][1] >= 0.5)
    assert final[: len(previous)] == list(previous)
    assert len(previous) >= 3


def test_uncommitted_tail_never_exceeds_the_lag():
    preds, *_ = noisy_video(4)
    seg = LiveSegmenter(ORGANS, lag_s=6.0)
    for p in preds:
        seg.update(p)
        assert seg.tail_s <= 6.0


def flicker(n: int, period_s: float = 2.9, fps: float = 5.0):
    """Worst case: confident organ changes every ``period_s``, each run shorter than the
    minimum section, forever."""
    for i in range(n):
        t = i / fps
        organ = np.full(3, 0.005, np.float32)
        organ[int(t // period_s) % 3] = 0.99
        yield Prediction(i, t, {"quality": np.array([0.05, 0.95], np.float32), "organ": organ},
                         0, 0)


def steady(n: int, fps: float = 5.0):
    organ = np.array([0.05, 0.9, 0.05], np.float32)
    for i in range(n):
        yield Prediction(i, i / fps, {"quality": np.array([0.1, 0.9], np.float32),
                                      "organ": organ}, 0, 0)


def _max_sizes(stream, lag_s: float):
    seg = LiveSegmenter(ORGANS, lag_s=lag_s)
    biggest = tail = 0
    for p in stream:
        seg.update(p)
        biggest, tail = max(biggest, seg.buffered_frames), max(tail, seg.tail_frames)
    return seg, biggest, tail


@pytest.mark.parametrize("make", [flicker, steady])
def test_memory_stays_bounded(make):
    lag_s, fps = 6.0, 5.0
    seg, biggest, tail = _max_sizes(make(20_000), lag_s)
    # tail <= lag; pending short runs <= lag + min length; plus the trim slack.
    bound = 2 * (lag_s + seg.max_pending_s + 2) * fps + 64
    assert tail <= lag_s * fps + 2
    assert biggest <= bound, (biggest, bound)
    if make is flicker:
        assert seg.forced_merges > 0
    else:
        assert seg.finish()[0].label == "nose"


@pytest.mark.slow
def test_memory_stays_bounded_over_100k_updates():
    seg, biggest, tail = _max_sizes(flicker(100_000), 6.0)
    assert biggest <= 2 * (6.0 + seg.max_pending_s + 2) * 5.0 + 64
    assert tail <= 6.0 * 5.0 + 2
    assert seg.forced_merges > 0


def test_one_frame_and_zero_frames_match_offline():
    (p,) = list(steady(1))
    assert live_run([p], 0.04, 0)[2] == offline([p], 0.04, 0)
    assert live_run([p])[2] == offline([p])
    assert live_run([], 5.0, 149)[2] == offline([], 5.0, 149)
    assert live_run([])[2] == []


def test_first_snapshot_shows_the_first_frame():
    (p,) = list(steady(1))
    snap = LiveSegmenter(ORGANS).update(p)
    assert snap.committed == () and [s.label for s in snap.tentative] == ["nose"]
    assert snap.current_label == "nose" and snap.current_quality_good


def test_organ_head_missing_throughout():
    preds, end_s, end_frame = noisy_video(5)
    preds = [Prediction(p.index, p.pts_s, {"quality": p.probs["quality"]}, 0, 0) for p in preds]
    seg, snaps, on = live_run(preds, end_s, end_frame)
    assert {s.label for s in on} <= {QUALITY_ONLY_LABEL, UNUSABLE}
    assert {s.current_label for s in snaps} <= {QUALITY_ONLY_LABEL, UNUSABLE}
    assert [(s.label, s.start_frame) for s in on] == [
        (s.label, s.start_frame) for s in offline(preds, end_s, end_frame)]


def test_other_labels_and_variable_frame_rate():
    labels = ("a", "b", "c", "d")
    rng = np.random.default_rng(2)
    pts = np.cumsum(rng.uniform(0.03, 0.7, 600))
    preds = []
    for i, t in enumerate(pts):
        organ = np.full(4, 0.1, np.float32)
        organ[int(t // 30) % 4 if rng.random() < 0.8 else int(rng.integers(4))] = 0.7
        preds.append(Prediction(i, float(t), {"quality": np.array([0.2, 0.8], np.float32),
                                              "organ": organ}, 0, 0))
    seg, _, on = live_run(preds, labels=labels)
    assert_same_sections(on, offline(preds, labels=labels))
    assert [s.label for s in on][:3] == ["a", "b", "c"]


def test_config_and_single_use():
    with pytest.raises(UsageError, match="lag_s"):
        LiveSegmenter(ORGANS, lag_s=0)
    with pytest.raises(UsageError, match="lag_s"):
        LiveSegmenter(ORGANS, lag_s=float("inf"))
    seg = LiveSegmenter(ORGANS, config=SegmenterConfig(min_section_s=4.0), lag_s=12)
    assert seg.describe()["lag_s"] == 12.0 and seg.describe()["min_section_s"] == 4.0
    seg.finish()
    with pytest.raises(RuntimeError):
        seg.update(next(steady(1)))
