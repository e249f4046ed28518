"""Coarse to fine: where, between two coarse answers, the sections can change.

A recorded video is analysed on a sparse grid first (one frame per coarse step, by default
every second); the frames of the dense grid (``--sample-fps``) between two neighbouring
coarse frames are analysed only when the answer can change there. The rule, in one place:

- the two coarse answers differ (another organ, or usable against unusable), or
- either of them is unsure: p(good) within :data:`QUALITY_MARGIN` of the good threshold,
  or, on a good frame, the best organ ahead of the second by less than
  :data:`ORGAN_MARGIN`.

Everything else is two confident, equal answers one coarse step apart: the frames between
them are skipped, and the segmenter's temporal model (the same Viterbi as a dense run)
decides the sections from all analysed frames, each weighted by the time it stands for.
Worst case: a stretch shorter than the coarse step that lies wholly between two equal,
confident answers is not seen. At the default 1 s step that is shorter than the shortest
section the segmenter keeps (``unusable_min_s`` 2 s, ``min_section_s`` 3 s), which a dense
run merges away as well; a stretch longer than the step holds at least one coarse frame,
whose answer differs from its neighbours, so both steps around it are analysed densely.

Pure logic: no threads, no video, testable with plain probabilities.

>>> from endostream.segmentation.hmm import FrameModel
>>> from endostream.segmentation.config import SegmenterConfig
>>> model = FrameModel(["ear", "nose"], SegmenterConfig())
>>> nose = coarse_answer(model, {"quality": [0.05, 0.95], "organ": [0.1, 0.9]})
>>> ear = coarse_answer(model, {"quality": [0.05, 0.95], "organ": [0.9, 0.1]})
>>> nose, needs_dense(nose, nose), needs_dense(nose, ear)
(CoarseAnswer(label='nose', sure=True), False, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from endostream.segmentation.hmm import FrameModel
from endostream.segmentation.section import QUALITY_ONLY_LABEL, UNUSABLE

#: Coarse frames per second of video by default: one a second, a third of the shortest
#: organ section the segmenter keeps (3 s) and half its shortest unusable one (2 s).
DEFAULT_COARSE_FPS = 1.0

#: p(good) this close to the good threshold (either side) is an unsure quality answer.
QUALITY_MARGIN = 0.25

#: A good frame whose best organ probability leads the second by less than this is an
#: unsure organ answer.
ORGAN_MARGIN = 0.3


@dataclass(frozen=True)
class CoarseAnswer:
    """What one coarse frame says: the state it points to and whether it is sure of it."""

    label: str  #: an organ label, or UNUSABLE when the quality gate says bad
    sure: bool


def coarse_answer(model: FrameModel, probs: Mapping[str, Sequence[float]] | None
                  ) -> CoarseAnswer:
    """The answer of one analysed frame's ``probs`` under ``model``'s labels and threshold.

    A missing quality head counts as good, a missing organ head as one state
    (:data:`QUALITY_ONLY_LABEL`), as in the segmenter.
    """
    g, organ = model.frame_inputs(dict(probs or {}))
    threshold = model.config.good_threshold
    quality_sure = math.isnan(g) or abs(g - threshold) >= QUALITY_MARGIN
    if not (math.isnan(g) or g >= threshold):
        return CoarseAnswer(UNUSABLE, quality_sure)
    if np.isnan(organ).any():
        return CoarseAnswer(QUALITY_ONLY_LABEL, quality_sure)
    if len(organ) < 2:
        return CoarseAnswer(model.organ_labels[0], quality_sure)
    top2 = np.sort(organ)[-2:]
    organ_sure = float(top2[1] - top2[0]) >= ORGAN_MARGIN
    return CoarseAnswer(model.organ_labels[int(np.argmax(organ))], quality_sure and organ_sure)


def needs_dense(before: CoarseAnswer, after: CoarseAnswer) -> bool:
    """Whether the dense frames between two neighbouring coarse answers must be analysed.

    >>> sure, unsure, ear = (CoarseAnswer("nose", True), CoarseAnswer("nose", False),
    ...                      CoarseAnswer("ear", True))
    >>> needs_dense(sure, sure), needs_dense(sure, unsure), needs_dense(sure, ear)
    (False, True, True)
    """
    return before.label != after.label or not before.sure or not after.sure


def coarse_step(sample_fps: float, coarse_fps: float = DEFAULT_COARSE_FPS) -> int:
    """Dense ticks per coarse tick: the coarse grid is every n-th tick of the dense grid
    (so a coarse frame is always one a dense run analyses too); 1 means no coarse pass.

    >>> coarse_step(5.0), coarse_step(30.0), coarse_step(1.0), coarse_step(0.5)
    (5, 30, 1, 1)
    """
    return max(int(round(sample_fps / coarse_fps)), 1)
