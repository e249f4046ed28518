"""Offline segmenter: per-frame predictions of a whole video → few, stable organ sections.

Per-frame argmax flickers; this turns the classifiers' probabilities into sections with a
hidden Markov model decoded by Viterbi over the whole video, then a merge pass:

1. States: the organ labels of the model plus :data:`~endostream.segmentation.section.UNUSABLE`.
   Quality gates organ evidence: a bad frame says nothing about the organ (see
   :mod:`endostream.segmentation.hmm` for the exact per-frame model).
2. Evidence is counted per second of video (each frame weighted by the time it stands
   for), and switching state costs ``switch_cost_per_s`` x the mean of the two states'
   minimum lengths, so decisions do not depend on the analysis frame rate, and irregular
   timestamps (VFR, dropped frames) are handled.
3. Runs shorter than ``min_section_s`` (organs) or ``unusable_min_s`` (unusable) are
   merged into a neighbour, shortest first; a short bad burst inside an organ never
   splits it (see :mod:`endostream.segmentation.runs`).

Sections cover the video: the first starts at 0.0 s / frame 0, the last ends at
``finish(end_s, end_frame)`` (when not given: one analysis interval after the last analysed
frame / its index); a boundary lies halfway between the last analysed frame of one
section and the first of the next, in time and in decoder frame index.

A video with no analysed frame has no sections, unless ``end_frame`` is given: then one
:data:`UNUSABLE` section covers it (frames were decoded but nothing could be seen). A
video none of whose predictions has an organ output (a model with a quality head only)
gets :data:`~endostream.segmentation.section.QUALITY_ONLY_LABEL` ("usable") sections
instead of invented organs.

>>> import numpy as np
>>> from endostream.frames import Prediction
>>> seg = OfflineSegmenter(["ear", "nose"])
>>> for i in range(50):  # 10 s of nose at 5 fps, then 10 s of ear
...     organ = [0.1, 0.9] if i < 25 else [0.9, 0.1]
...     seg.update(Prediction(i, i / 5, {"quality": np.array([0.1, 0.9]),
...                                      "organ": np.array(organ)}, 0, 0))
>>> [(s.label, s.start_s, s.end_s) for s in seg.finish(end_s=10.0, end_frame=49)]
[('nose', 0.0, 4.9), ('ear', 4.9, 10.0)]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from endostream.frames import Prediction
from endostream.segmentation import runs as runlib
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.hmm import FrameModel, frame_weights
from endostream.segmentation.section import QUALITY_ONLY_LABEL, UNUSABLE, Section

log = logging.getLogger(__name__)


def describe_offline(config: SegmenterConfig) -> dict[str, Any]:
    """``analysis.segmenter`` of an offline run with ``config`` (what the archive's resume
    check compares without running a segmenter).

    >>> describe_offline(SegmenterConfig())["mode"]
    'offline'
    """
    return {"mode": "offline", **config.to_json()}


class OfflineSegmenter:
    """Collects a whole video's predictions, then decodes them at :meth:`finish`.

    ``organ_labels`` and ``quality_labels`` are the model's label lists (organ may be
    empty for a quality-only model, quality ``None``/empty for an organ-only one, whose
    frames then all count as good). Keeps ~(16 + 4 x organs) bytes per analysed frame;
    a 3-hour video at 5 fps is about 1 MB. Single use: :meth:`finish` once.
    """

    def __init__(
        self,
        organ_labels: Sequence[str],
        quality_labels: Sequence[str] | None = ("bad", "good"),
        config: SegmenterConfig | None = None,
    ):
        config = config or SegmenterConfig()
        self.config = config
        self.model = FrameModel(organ_labels, config, quality_labels)
        self.labels = self.model.labels
        k = max(self.model.n_organs, 1)
        self._pts = np.zeros(1024, np.float64)
        self._idx = np.zeros(1024, np.int64)
        self._g = np.zeros(1024, np.float32)
        self._organ = np.zeros((1024, k), np.float32)
        self._n = 0
        self._finished = False

    @property
    def frames(self) -> int:
        """Predictions received so far."""
        return self._n

    def describe(self) -> dict[str, Any]:
        """``analysis.segmenter`` for ``sections.json``."""
        return describe_offline(self.config)

    def update(self, pred: Prediction) -> None:
        """Add the next analysed frame (frame order, increasing ``index``)."""
        if self._finished:
            raise RuntimeError("OfflineSegmenter.update() after finish(); make a new segmenter")
        g, organ = self.model.frame_inputs(pred.probs)
        prev = (self._idx[self._n - 1], self._pts[self._n - 1]) if self._n else None
        pts = check_order(pred, prev)
        if self._n == len(self._pts):
            self._pts, self._idx, self._g, self._organ = (
                np.concatenate((a, np.zeros_like(a))) for a in
                (self._pts, self._idx, self._g, self._organ))
        n = self._n
        self._pts[n], self._idx[n], self._g[n], self._organ[n] = pts, pred.index, g, organ
        self._n += 1

    def finish(self, end_s: float | None = None, end_frame: int | None = None) -> list[Section]:
        """Decode and return the sections (see the module docstring for their extent)."""
        if self._finished:
            raise RuntimeError("OfflineSegmenter.finish() called twice; make a new segmenter")
        self._finished = True
        n = self._n
        return decode(self.model, self._pts[:n], self._idx[:n], self._g[:n], self._organ[:n],
                      end_s, end_frame)


def check_order(pred: Prediction, prev: tuple[int, float] | None) -> float:
    """``pred.pts_s`` made usable: raises if ``index`` does not increase; a timestamp that
    goes backwards (or below 0) is held at the previous one, so boundaries stay ordered."""
    pts = max(float(pred.pts_s), 0.0)
    if prev is not None:
        if pred.index <= prev[0]:
            raise ValueError(f"prediction index {pred.index} after {prev[0]}: predictions must "
                             "arrive in frame order")
        if pts < prev[1]:
            log.debug("pts %.3f s of frame %d goes backwards; held at %.3f s",
                      pts, pred.index, prev[1])
            pts = float(prev[1])
    return pts


def no_frames(end_s: float | None, end_frame: int | None) -> list[Section]:
    """Sections of a video none of whose frames was analysed (see the module docstring)."""
    if end_frame is None or end_frame < 0:
        return []
    return [Section(UNUSABLE, 0.0, max(float(end_s or 0.0), 0.0), 0, int(end_frame), 0.0, 0.0)]


def decode(model: FrameModel, pts: np.ndarray, idx: np.ndarray, g: np.ndarray,
           organ: np.ndarray, end_s: float | None, end_frame: int | None) -> list[Section]:
    """Sections of whole-video arrays: Viterbi, merge pass, boundaries."""
    if len(pts) == 0:
        return no_frames(end_s, end_frame)
    w = frame_weights(pts)
    e, label_p = model.emissions(g, organ)
    store = runlib.FrameStore.from_arrays(pts, idx, w, model.good_mask(g), w[:, None] * e,
                                         label_p)
    path = model.viterbi(store.E[: len(pts)])
    runs = runlib.runs_from_path(store, path, 0)
    runs = runlib.merge_short_runs(store, runs, model.min_len_s)
    organ_seen = bool(model.n_organs) and not np.isnan(organ).any(axis=1).all()
    if model.n_organs and not organ_seen:
        log.warning("no analysed frame had an organ output; sections say only where the "
                    "video is usable ('%s')", QUALITY_ONLY_LABEL)
    return runlib.to_sections(store, runs, model.output_labels(organ_seen), (0.0, 0),
                             runlib.end_point(store, runs[-1], end_s, end_frame))
