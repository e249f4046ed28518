"""The frame model both segmenters decode: states, per-frame evidence, switching costs.

Shared by :mod:`~endostream.segmentation.offline` and :mod:`~endostream.segmentation.live`, which
must make exactly the same per-frame decisions (the live one is tested against the offline one),
so everything numeric lives here once.

States are the organ labels in model order followed by
:data:`~endostream.segmentation.section.UNUSABLE`.
For a model without an organ head the one "organ" state is :data:`QUALITY_ONLY_LABEL`.

Evidence of one frame for state ``s`` (a scaled likelihood: the classifiers' softmax
outputs divided by a flat prior, so a flat output is neutral):

* quality ``q`` = p(good), recalibrated so that ``good_threshold`` is the neutral point;
* organ ``f_k = (1 - organ_floor) * K * p(organ k) + organ_floor``; 1 for every organ when
  the frame has no organ output (no evidence);
* organ state ``k``: ``L = good_rate_organ * q * f_k + (1 - good_rate_organ) * (1 - q)``;
* unusable: ``L = good_rate_unusable * q + (1 - good_rate_unusable) * (1 - q)``.

So quality gates the organ evidence: on a bad frame ``q ~ 0`` and every organ state gets
the same ``L``, whatever the organ head said. ``organ_floor`` caps what one confidently
wrong frame can cost (``log(K / organ_floor)`` at most), which keeps the switching cost
meaningful under label noise.

Each frame's log-evidence is multiplied by the time it stands for (``w`` seconds: the gap
since the previous analysed frame, capped at :data:`MAX_FRAME_WEIGHT_S`), so evidence is
counted per second of video, not per frame: the same video analysed at 2, 5 or 30 fps, or
with irregular gaps (VFR, dropped live frames), needs the same seconds of contrary
evidence to switch. Switching from state ``i`` to ``j`` costs
``switch_cost_per_s * (min_len[i] + min_len[j]) / 2`` where ``min_len`` is ``min_section_s``
for organs and ``unusable_min_s`` for :data:`UNUSABLE`.

>>> import numpy as np
>>> from endostream.segmentation.config import SegmenterConfig
>>> m = FrameModel(["ear", "nose"], SegmenterConfig())
>>> e, _ = m.emissions(np.array([0.95]), np.array([[0.1, 0.9]], np.float32))
>>> [m.labels[i] for i in np.argsort(-e[0])]
['nose', 'ear', 'unusable']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from endostream.contract import GOOD_LABEL
from endostream.errors import ModelError
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.section import QUALITY_ONLY_LABEL, UNUSABLE

#: Longest time one analysed frame may stand for. A longer gap (a stalled live source, a
#: run of dropped frames) counts as this much, so one frame after a stall cannot outvote
#: the many frames before it.
MAX_FRAME_WEIGHT_S = 1.0

#: Time a frame stands for when it has no neighbour to measure it from (a one-frame
#: video): 0.2 s, the interval of the default 5 fps analysis.
FALLBACK_FRAME_INTERVAL_S = 0.2


def frame_weights(pts_s: np.ndarray) -> np.ndarray:
    """Seconds each analysed frame stands for: the gap since the previous one, capped.

    The first frame gets the second one's weight (it has no previous frame); a lone frame
    gets :data:`FALLBACK_FRAME_INTERVAL_S`. Non-increasing timestamps give weight 0.

    >>> frame_weights(np.array([0.0, 0.2, 0.4, 5.0])).tolist()
    [0.2, 0.2, 0.2, 1.0]
    """
    pts = np.asarray(pts_s, dtype=np.float64)
    w = np.empty(len(pts), dtype=np.float64)
    if len(pts) == 0:
        return w
    if len(pts) == 1:
        w[0] = FALLBACK_FRAME_INTERVAL_S
        return w
    w[1:] = np.clip(np.diff(pts), 0.0, MAX_FRAME_WEIGHT_S)
    w[0] = w[1]
    return w


def gap_weight(prev_pts_s: float, pts_s: float) -> float:
    """The weight :func:`frame_weights` gives a frame at ``pts_s`` after ``prev_pts_s``."""
    return min(max(float(pts_s) - float(prev_pts_s), 0.0), MAX_FRAME_WEIGHT_S)


# The evidence formulas, each written once: the offline segmenter applies them to arrays
# (:meth:`FrameModel.emissions`), the live one to plain floats per frame
# (:meth:`FrameModel.emission_row`), with the same operations in the same order.


def good_evidence(p_good, threshold: float):
    """p(good) recalibrated so that ``threshold`` maps to 0.5, the neutral point."""
    num = p_good * (1.0 - threshold)
    return num / (num + (1.0 - p_good) * threshold)


def organ_factor(p_organ, n_organs: int, floor: float):
    """How much an organ's (normalised) probability favours its state over a flat
    guess; ``floor`` bounds what one confidently wrong frame costs."""
    return (1.0 - floor) * n_organs * p_organ + floor


def state_likelihood(good_rate: float, q, factor):
    """A state's likelihood of a frame whose recalibrated quality is ``q``: good frames
    at ``good_rate`` (weighted by the organ ``factor``), bad ones at the rest."""
    return good_rate * q * factor + (1.0 - good_rate) * (1.0 - q)


class FrameModel:
    """States, per-frame evidence and switching costs for one label set and config.

    ``labels[s]`` names state ``s``; the last state is :data:`UNUSABLE`. ``min_len_s[s]`` is
    the shortest section of that state that survives the merge pass.
    """

    def __init__(
        self,
        organ_labels: Sequence[str],
        config: SegmenterConfig,
        quality_labels: Sequence[str] | None = ("bad", "good"),
    ):
        organs = [str(x) for x in organ_labels]
        qualities = [str(x) for x in (quality_labels or ())]
        if not organs and not qualities:
            raise ModelError("the segmenter needs an organ or a quality head; pass a model "
                             "that has at least one of them")
        if UNUSABLE in organs:
            raise ModelError(f"organ label '{UNUSABLE}' is reserved for stretches with no "
                             "usable image; rename that class in the model's endostream.heads")
        if len(set(organs)) != len(organs):
            raise ModelError(f"organ labels repeat ({', '.join(organs)}); give every class "
                             "its own name in the model's endostream.heads")
        if qualities and GOOD_LABEL not in qualities:
            raise ModelError(f"quality labels {qualities} lack '{GOOD_LABEL}'; the quality head "
                             f"must have a '{GOOD_LABEL}' class")
        self.config = config
        self.organ_labels: tuple[str, ...] = tuple(organs)
        self.n_organs = len(organs)
        self.good_index: int | None = qualities.index(GOOD_LABEL) if qualities else None
        self.labels: tuple[str, ...] = tuple(organs or [QUALITY_ONLY_LABEL]) + (UNUSABLE,)
        self.n_states = len(self.labels)
        self.unusable = self.n_states - 1
        if self.n_states > np.iinfo(np.int16).max:
            raise ModelError(f"the organ head has {self.n_organs} classes; at most "
                             f"{np.iinfo(np.int16).max - 1} are supported")
        self.min_len_s = np.full(self.n_states, config.min_section_s, dtype=np.float64)
        self.min_len_s[self.unusable] = config.unusable_min_s
        # trans[i, j]: log-score of going from state i to state j (0 to stay).
        cost = config.switch_cost_per_s * (self.min_len_s[:, None] + self.min_len_s[None, :]) / 2
        np.fill_diagonal(cost, 0.0)
        self.trans = -cost
        self._arange = np.arange(self.n_states)

    def output_labels(self, organ_seen: bool) -> tuple[str, ...]:
        """Section labels by state. Until some frame has had an organ output, every organ
        state is named :data:`QUALITY_ONLY_LABEL`: with no organ evidence the organ states
        tie, the decoder keeps the first one, and naming it would invent an organ. (With
        the evidence flat, the decoding is exactly that of a quality-only model.)"""
        if organ_seen or not self.n_organs:
            return self.labels
        return (QUALITY_ONLY_LABEL,) * self.n_organs + (UNUSABLE,)

    # -- inputs ---------------------------------------------------------------------------

    def frame_inputs(self, probs: dict | None) -> tuple[float, np.ndarray]:
        """``(p_good, organ_probs)`` of one prediction's ``probs``; NaN marks a missing head."""
        probs = probs or {}
        q = probs.get("quality")
        if q is None or self.good_index is None:
            g = np.nan
        else:
            q = np.asarray(q).reshape(-1)
            if len(q) <= self.good_index:
                raise ValueError(f"quality vector has {len(q)} values, the segmenter expects "
                                 f"more than {self.good_index}")
            g = float(q[self.good_index])
        organ = np.full(max(self.n_organs, 1), np.nan, dtype=np.float32)
        o = probs.get("organ")
        if o is not None and self.n_organs:
            o = np.asarray(o, dtype=np.float32).reshape(-1)
            if len(o) != self.n_organs:
                raise ValueError(f"organ vector has {len(o)} values, the segmenter was built "
                                 f"for {self.n_organs} labels {list(self.organ_labels)}")
            organ[:] = o
        return g, organ

    # -- evidence -------------------------------------------------------------------------

    def good_mask(self, g: np.ndarray) -> np.ndarray:
        """Frames the quality head calls good (a missing quality head counts as good)."""
        return self.config.is_good(np.asarray(g, dtype=np.float64))

    def emissions(self, g: np.ndarray, organ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame log-evidence ``[N, S]`` and label probabilities ``[N, S]``.

        ``g`` is ``[N]`` p(good) (NaN: no quality output, treated as good); ``organ`` is
        ``[N, K]`` organ probabilities (a NaN row: no organ output). The second array holds,
        per state, the probability :class:`~endostream.segmentation.section.Section` ``confidence``
        averages: p(organ) on good frames (NaN elsewhere, so it is skipped), 1 - p(good)
        for :data:`UNUSABLE` on all frames, p(good) for :data:`QUALITY_ONLY_LABEL`.
        """
        cfg = self.config
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        n = len(g)
        good = self.good_mask(g)
        graw = np.clip(np.where(np.isnan(g), 1.0, g), 0.0, 1.0)
        q = good_evidence(graw, cfg.good_threshold)
        if self.n_organs:
            o = np.asarray(organ, dtype=np.float64).reshape(n, self.n_organs)
            missing = np.isnan(o).any(axis=1)
            o = np.clip(np.where(missing[:, None], 0.0, o), 0.0, None)
            total = o.sum(axis=1, keepdims=True)
            o = np.where(total > 0, o / np.where(total > 0, total, 1.0), 1.0 / self.n_organs)
            f = organ_factor(o, self.n_organs, cfg.organ_floor)
            f[missing] = 1.0
        else:
            f = np.ones((n, 1))
        lik = np.empty((n, self.n_states), dtype=np.float64)
        lik[:, :-1] = state_likelihood(cfg.good_rate_organ, q[:, None], f)
        lik[:, -1] = state_likelihood(cfg.good_rate_unusable, q, 1.0)
        e = np.log(np.maximum(lik, 1e-300))

        label_p = np.full((n, self.n_states), np.nan, dtype=np.float32)
        if self.n_organs:
            raw = np.asarray(organ, dtype=np.float32).reshape(n, self.n_organs)
            label_p[:, :-1] = np.where(good[:, None], raw, np.nan)
        else:
            label_p[:, 0] = graw
        label_p[:, -1] = 1.0 - graw
        return e, label_p

    def emission_row(self, g: float, organ: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """:meth:`emissions` of one frame plus its good flag, in plain floats (fast).

        The live segmenter calls this per frame; it uses the same formulas
        (:func:`good_evidence`, :func:`organ_factor`, :func:`state_likelihood`) on plain
        floats, in the same order, so live and offline see the same evidence.
        """
        cfg = self.config
        missing_q = g != g  # NaN
        good = bool(cfg.is_good(float(g)))
        graw = 1.0 if missing_q else min(max(float(g), 0.0), 1.0)
        q = good_evidence(graw, cfg.good_threshold)
        k = self.n_organs
        raw = [float(x) for x in organ[:k]]
        if k and not any(x != x for x in raw):
            o = [max(x, 0.0) for x in raw]
            total = 0.0
            for x in o:
                total += x
            o = [x / total for x in o] if total > 0 else [1.0 / k] * k
            f = [organ_factor(x, k, cfg.organ_floor) for x in o]
        else:
            f = [1.0] * max(k, 1)
        lik = [state_likelihood(cfg.good_rate_organ, q, x) for x in f]
        lik.append(state_likelihood(cfg.good_rate_unusable, q, 1.0))
        e = np.array([math.log(max(x, 1e-300)) for x in lik])
        label_p = np.full(self.n_states, np.nan, dtype=np.float32)
        if k:
            if good:
                label_p[:-1] = organ[:k]
        else:
            label_p[0] = graw
        label_p[-1] = 1.0 - graw
        return e, label_p, good

    # -- decoding ---------------------------------------------------------------------------

    def viterbi_step(self, delta: np.ndarray, e_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One max-product step: new scores (max shifted to 0) and back-pointers ``[S]``."""
        cand = delta[:, None] + self.trans
        bp = cand.argmax(axis=0)
        new = cand[bp, self._arange] + e_t
        new -= new.max()
        return new, bp.astype(np.int16)

    def viterbi(self, weighted_e: np.ndarray) -> np.ndarray:
        """Best state path ``[N]`` (int16) for weighted log-evidence ``[N, S]``.

        Ties go to the lowest state index, the same rule as the live decoder's.
        """
        n = len(weighted_e)
        path = np.zeros(n, dtype=np.int16)
        if n == 0:
            return path
        bps = np.zeros((n, self.n_states), dtype=np.int16)
        delta = weighted_e[0] - weighted_e[0].max()
        for t in range(1, n):
            delta, bps[t] = self.viterbi_step(delta, weighted_e[t])
        s = int(delta.argmax())
        path[-1] = s
        for t in range(n - 1, 0, -1):
            s = int(bps[t, s])
            path[t - 1] = s
        return path
