"""Where the model is least sure: stretches of analysed videos ranked for review.

A reviewer's time is best spent where a correction teaches the model most: where it
hesitated between organs, and where its per-frame answers contradict the section the
segmenter finally drew. From the per-frame probabilities of ``segment --csv``
(:class:`~endostream.procedure.FrameTable`) and the sections:

- **doubt** of a frame judged good (probability of good quality ≥ the run's threshold):
  ``1 - (p1 - p2)``, one minus the margin between the organ head's two most likely
  labels (0: certain, 1: a tie). Frames judged bad carry no organ evidence (as in the
  segmenter) and no doubt;
- **disagreement** of any frame: its own answer (``unusable`` when judged bad, else the
  organ head's argmax) differs from the label of the section it lies in;
- **context** of any frame: how unlike the sections around it its section is. A model can
  be wrong with confidence 1.00 on every frame of a stretch, so that neither doubt nor
  disagreement sees it; what gives it away is the procedure around it. An organ section
  whose organ neighbours on both sides (unusable stretches skipped) share one other label
  is an island; it scores ``1 - duration / CONTEXT_S`` (a 6 s ear between two nose
  sections 0.8, an island of :data:`CONTEXT_S` or more 0: a long visit, as the larynx
  between the way in and the way out through the nose, is the procedure, not a mistake).

A **stretch** is a window of ``window_s`` seconds centred on an analysed frame; its
score is the mean doubt over its good frames plus the share of its frames that disagree
plus its mean context (0 to 3); each pick says why it was listed (:attr:`Stretch.why`).
:func:`rank` keeps the best-scoring stretches across all videos, at least ``spacing_s``
seconds apart (centre to centre) within a video, so one confusing minute does not fill
the list; stretches scoring :data:`MIN_SCORE` or less are never listed.

>>> import numpy as np
>>> from endostream.segmentation.section import Section
>>> from endostream.procedure import FrameTable
>>> t = np.arange(0, 20, 0.5)
>>> organ = np.tile([0.99, 0.01], (len(t), 1)); organ[(t >= 12) & (t < 14)] = [0.5, 0.5]
>>> frames = FrameTable(np.arange(len(t)), t, np.full(len(t), 0.9), ["ear", "nose"], organ)
>>> doubt = frame_doubt(frames, [Section("ear", 0, 20, 0, 39, 1, 1)], good_at=0.5)
>>> [(p.at_s, round(p.score, 2)) for p in rank([doubt], window_s=2, spacing_s=5)]
[(13.0, 1.0)]

A confident island: every frame sure, the section short and unlike both neighbours.

>>> organ = np.tile([0.0, 1.0], (len(t), 1)); organ[(t >= 8) & (t < 12)] = [1.0, 0.0]
>>> frames = FrameTable(np.arange(len(t)), t, np.full(len(t), 0.9), ["ear", "nose"], organ)
>>> sections = [Section("nose", 0, 8, 0, 15, 1, 1), Section("ear", 8, 12, 16, 23, 1, 1),
...             Section("nose", 12, 20, 24, 39, 1, 1)]
>>> doubt = frame_doubt(frames, sections, good_at=0.5)
>>> top = rank([doubt], window_s=2, spacing_s=5)[0]
>>> 8 <= top.at_s < 12, top.section, top.why
(True, 'ear', 'unlike the sections around it')
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from endostream.procedure import FrameTable
from endostream.segmentation.config import is_good
from endostream.segmentation.section import UNUSABLE, Section

#: Seconds of video a stretch spans: long enough to see what the scope shows, short
#: enough to check at a glance.
DEFAULT_WINDOW_S = 4.0
#: Least distance between the centres of two stretches of one video.
DEFAULT_SPACING_S = 10.0
#: Stretches listed at most.
DEFAULT_COUNT = 20
#: Scores at or below this are not worth a reviewer's look: a margin of 0.9 or more
#: between the two most likely organs on every good frame, and no frame disagreeing.
MIN_SCORE = 0.1
#: Seconds from which an island section (see the module docstring) no longer looks like a
#: mistake: a visit that long is part of the procedure.
CONTEXT_S = 30.0
#: A component counts towards a pick's reason from this value on.
REASON_AT = 0.1


@dataclass(frozen=True)
class FrameDoubt:
    """Per analysed frame of one video: time, doubt, disagreement, answers, mean probs."""

    pts_s: np.ndarray
    good: np.ndarray  #: bool: judged good
    doubt: np.ndarray  #: 0..1 on good frames, 0 elsewhere
    disagree: np.ndarray  #: bool
    context: np.ndarray  #: 0..1: how much its section is an island (see the docstring)
    answer: list[str]  #: per-frame answer: an organ, or unusable
    section: list[str]  #: label of the section each frame lies in
    organ_labels: list[str]
    organ: np.ndarray  #: [N, organs] probabilities (NaN-free; 0 where missing)
    video: int = 0  #: index of the video among those ranked together


@dataclass(frozen=True)
class Stretch:
    """One place to review: ``[start_s, end_s)`` of video ``video``, centred on ``at_s``."""

    video: int
    start_s: float
    end_s: float
    at_s: float  #: the centre frame's time
    thumb_s: float  #: the most doubtful good frame in it (or the centre)
    score: float
    doubt: float
    disagreement: float
    context: float
    section: str  #: label of the section at the centre
    model_says: str  #: the most common per-frame answer in the stretch
    top_organs: str  #: the two organs with the highest mean probability on its good frames

    @property
    def why(self) -> str:
        """Why the stretch was listed, in words, strongest reason first."""
        parts = sorted(((self.doubt, "the model hesitates between organs"),
                        (self.disagreement, "frames disagree with their section"),
                        (self.context, "unlike the sections around it")), reverse=True)
        return "; ".join(text for value, text in parts if value >= REASON_AT)


def island_context(sections: Sequence[Section], context_s: float = CONTEXT_S) -> np.ndarray:
    """Per section, how much it is an island: an organ section whose nearest organ sections
    before and after (unusable ones skipped) share one label other than its own scores
    ``1 - duration / context_s`` (at least 0); every other section 0.

    >>> s = [Section("nose", 0, 40, 0, 1, 1, 1), Section("unusable", 40, 42, 2, 3, 0, 1),
    ...      Section("ear", 42, 48, 4, 5, 1, 1), Section("nose", 48, 90, 6, 7, 1, 1)]
    >>> island_context(s).round(2).tolist()
    [0.0, 0.0, 0.8, 0.0]
    """
    out = np.zeros(len(sections))
    organs = [k for k, s in enumerate(sections) if s.label != UNUSABLE]
    for i in range(1, len(organs) - 1):
        before, here, after = (sections[organs[i - 1]], sections[organs[i]],
                               sections[organs[i + 1]])
        if before.label == after.label != here.label:
            out[organs[i]] = max(0.0, 1.0 - (here.end_s - here.start_s) / context_s)
    return out


def frame_doubt(frames: FrameTable, sections: Sequence[Section], *, good_at: float,
                video: int = 0) -> FrameDoubt:
    """Doubt and disagreement of every analysed frame (see the module docstring)."""
    n = len(frames)
    organ = np.nan_to_num(frames.organ, nan=0.0).reshape(n, len(frames.organ_labels))
    # A model without a quality head: every frame counts as good.
    good = is_good(frames.good, good_at)
    if organ.shape[1] >= 2:
        top2 = np.sort(organ, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
    else:
        margin = np.ones(n)
    doubt = np.where(good & (organ.sum(axis=1) > 0), 1.0 - margin, 0.0)
    argmax = organ.argmax(axis=1) if organ.shape[1] else np.zeros(n, np.int64)
    answer = [frames.organ_labels[int(k)] if g and organ.shape[1] else UNUSABLE
              for k, g in zip(argmax, good, strict=True)]
    starts = np.array([s.start_s for s in sections], np.float64)
    where = np.clip(np.searchsorted(starts, frames.pts_s, side="right") - 1, 0,
                    max(len(sections) - 1, 0))
    section = [sections[int(k)].label if sections else UNUSABLE for k in where]
    disagree = np.array([a != s for a, s in zip(answer, section, strict=True)], bool)
    context = island_context(sections)[where] if sections else np.zeros(n)
    return FrameDoubt(np.asarray(frames.pts_s, np.float64), good, doubt, disagree, context,
                      answer, section, list(frames.organ_labels), organ, video)


def scores(d: FrameDoubt, window_s: float = DEFAULT_WINDOW_S
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per analysed frame, the stretch centred on it: ``(score, doubt, disagreement,
    context, first, end)`` with ``[first, end)`` its frames (vectorised: an hour at 5 fps
    is 18 000 stretches)."""
    t = d.pts_s
    lo = np.searchsorted(t, t - window_s / 2, side="left")
    hi = np.searchsorted(t, t + window_s / 2, side="left")

    def window_sum(values: np.ndarray) -> np.ndarray:
        c = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
        return c[hi] - c[lo]

    goods = window_sum(d.good)
    doubt = np.divide(window_sum(d.doubt), goods, out=np.zeros(len(t)), where=goods > 0)
    frames = np.maximum(hi - lo, 1)
    dis = window_sum(d.disagree) / frames
    context = window_sum(d.context) / frames
    return doubt + dis + context, doubt, dis, context, lo, hi


def _stretch(d: FrameDoubt, k: int, a: int, b: int, values: tuple[float, float, float, float],
             window_s: float) -> Stretch:
    score, doubt, dis, context = values
    inside = slice(a, b)
    good = d.good[inside]
    thumb = d.pts_s[k]
    top = ""
    if good.any():
        idx = np.flatnonzero(good) + a
        thumb = float(d.pts_s[idx[int(np.argmax(d.doubt[idx]))]])
        mean = d.organ[idx].mean(axis=0)
        order = np.argsort(-mean)[:2]
        top = ", ".join(f"{d.organ_labels[int(i)]} {mean[int(i)]:.2f}" for i in order)
    says = Counter(d.answer[a:b]).most_common(1)[0][0] if b > a else d.answer[k]
    return Stretch(d.video, max(float(d.pts_s[k]) - window_s / 2, 0.0),
                   float(d.pts_s[k]) + window_s / 2, float(d.pts_s[k]), float(thumb),
                   score, doubt, dis, context, d.section[k], says, top)


def rank(videos: Sequence[FrameDoubt], *, window_s: float = DEFAULT_WINDOW_S,
         spacing_s: float = DEFAULT_SPACING_S, count: int = DEFAULT_COUNT) -> list[Stretch]:
    """The ``count`` best stretches over all ``videos``, ``spacing_s`` apart per video
    (ties: earlier video, then earlier time)."""
    per_video = [scores(d, window_s) for d in videos]
    candidates = [(float(score[k]), v, k) for v, (score, *_) in enumerate(per_video)
                  for k in np.flatnonzero(score > MIN_SCORE)]
    candidates.sort(key=lambda c: (-c[0], c[1], videos[c[1]].pts_s[c[2]]))
    picked: list[tuple[int, int]] = []
    for _, v, k in candidates:
        if len(picked) >= count:
            break
        at = videos[v].pts_s[k]
        if all(pv != v or abs(videos[pv].pts_s[pk] - at) >= spacing_s for pv, pk in picked):
            picked.append((v, int(k)))
    out = []
    for v, k in picked:
        *values, lo, hi = per_video[v]
        out.append(_stretch(videos[v], k, int(lo[k]), int(hi[k]),
                            tuple(float(x[k]) for x in values), window_s))
    return out
