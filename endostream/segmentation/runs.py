"""Runs of one state → sections: the merge pass and section boundaries, shared by both segmenters.

Private. A *run* is a stretch of consecutive analysed frames that the decoder gave one
state. The merge pass removes runs shorter than their state's minimum length
(:attr:`FrameModel.min_len_s <endostream.segmentation.hmm.FrameModel>`), shortest first:

* a short run with one neighbour (at either end of the video) joins it;
* a short run between two runs of the same label joins both into one section (an organ
  interrupted by a short bad burst stays one section);
* a short run between two different labels is split between them where the per-frame
  evidence says the change happened (ties: the middle of the tied split points).

A run that is long enough is never relabelled and only grows, so runs between two long
runs are resolved independently of the rest of the video. The live segmenter relies on
that to give the same result as the offline one without keeping the whole video.

Section boundaries sit halfway between the last analysed frame of one section and the
first of the next, in time and in decoder frame index: the change happened somewhere in
that gap, and the midpoint halves the worst-case error (half an analysis interval).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from endostream.segmentation.section import Section

# Columns of a run's aggregate vector (additive over frames).
_N, _N_GOOD, _DUR, _CONF_SUM, _CONF_N = range(5)


class FrameStore:
    """Per-frame arrays addressed by ordinal (0 = first analysed frame), droppable from the front.

    Columns: ``pts`` (s), ``idx`` (decoder frame index), ``w`` (seconds the frame stands
    for), ``good`` (quality verdict), ``E`` (weighted log-evidence ``[S]``), ``P`` (label
    probabilities ``[S]``, see
    :meth:`FrameModel.emissions <endostream.segmentation.hmm.FrameModel>`),
    ``bp`` (Viterbi back-pointers ``[S]``, live only) and ``cw`` (sum of ``w`` before the
    frame, so a run's duration is one subtraction).
    """

    def __init__(self, n_states: int, capacity: int = 256):
        self.offset = 0  # ordinal of row 0
        self.n = 0
        self._alloc(n_states, max(int(capacity), 1))

    def _alloc(self, s: int, cap: int) -> None:
        self.pts = np.zeros(cap, np.float64)
        self.idx = np.zeros(cap, np.int64)
        self.w = np.zeros(cap, np.float64)
        self.cw = np.zeros(cap + 1, np.float64)
        self.good = np.zeros(cap, bool)
        self.E = np.zeros((cap, s), np.float64)
        self.P = np.zeros((cap, s), np.float32)
        self.bp = np.zeros((cap, s), np.int16)

    _COLUMNS = ("pts", "idx", "w", "good", "E", "P", "bp")

    @classmethod
    def from_arrays(cls, pts, idx, w, good, E, P) -> FrameStore:
        """A store holding a whole video (offline)."""
        n, s = E.shape
        store = cls(s, capacity=n)
        store.pts[:n], store.idx[:n], store.w[:n], store.good[:n] = pts, idx, w, good
        store.E[:n], store.P[:n] = E, P
        store.cw[1:n + 1] = np.cumsum(store.w[:n])
        store.n = n
        return store

    @property
    def end(self) -> int:
        """Ordinal one past the newest frame."""
        return self.offset + self.n

    def row(self, ordinal: int) -> int:
        return ordinal - self.offset

    def append(self, pts: float, idx: int, w: float, good: bool, E, P) -> int:
        """Add one frame; returns its ordinal."""
        if self.n == len(self.pts):
            self._grow()
        r = self.n
        self.pts[r], self.idx[r], self.w[r], self.good[r] = pts, idx, w, good
        self.E[r], self.P[r] = E, P
        self.cw[r + 1] = self.cw[r] + w
        self.n += 1
        return self.offset + r

    def _grow(self) -> None:
        old = {c: getattr(self, c) for c in self._COLUMNS}
        cw = self.cw
        self._alloc(self.E.shape[1], 2 * len(self.pts))
        for c, a in old.items():
            getattr(self, c)[: self.n] = a[: self.n]
        self.cw[: self.n + 1] = cw[: self.n + 1]

    def drop_before(self, ordinal: int) -> None:
        """Forget frames older than ``ordinal``; memory is reused, never grown by old frames."""
        k = min(max(ordinal - self.offset, 0), self.n)
        if k == 0:
            return
        for c in self._COLUMNS:
            a = getattr(self, c)
            a[: self.n - k] = a[k: self.n]
        self.cw[: self.n - k + 1] = self.cw[k: self.n + 1]
        self.n -= k
        self.offset += k

    def reweigh(self, ordinal: int, w: float, e_raw: np.ndarray) -> None:
        """Set the weight of frame ``ordinal`` (the newest or the one before) after the fact."""
        r = self.row(ordinal)
        self.w[r] = w
        self.E[r] = w * e_raw
        for k in range(r, self.n):
            self.cw[k + 1] = self.cw[k] + self.w[k]

    def cum_w(self, ordinal: int) -> float:
        return float(self.cw[self.row(ordinal)])

    def stats(self, a: int, b: int, state: int) -> np.ndarray:
        """Aggregate of frames ``[a, b)`` as if labelled ``state`` (see ``_N`` ... ``_CONF_N``)."""
        agg = np.zeros(5)
        if b <= a:
            return agg
        ra, rb = self.row(a), self.row(b)
        p = self.P[ra:rb, state]
        have = ~np.isnan(p)
        agg[_N] = b - a
        agg[_N_GOOD] = np.count_nonzero(self.good[ra:rb])
        agg[_DUR] = self.cw[rb] - self.cw[ra]
        agg[_CONF_SUM] = float(p[have].sum(dtype=np.float64))
        agg[_CONF_N] = np.count_nonzero(have)
        return agg


class Run:
    """Frames ``[a, b)`` given one state. Frames ``[a, fold)`` are folded into ``agg``.

    Only runs that are long enough (never split again) are folded; the frames of the rest
    stay in the store. ``first_*`` / ``last_*`` cache the end frames' time and index for
    the section boundaries, so a folded run needs none of its frames.
    """

    __slots__ = ("state", "a", "fold", "b", "agg", "first_pts", "first_idx", "last_pts",
                 "last_idx")

    def __init__(self, store: FrameStore, state: int, a: int, b: int):
        self.state, self.a, self.fold, self.b = int(state), a, a, b
        self.agg = np.zeros(5)
        self._set_first(store, a)
        self._set_last(store, b - 1)

    def copy(self) -> Run:
        other = object.__new__(Run)
        for k in self.__slots__:
            setattr(other, k, getattr(self, k))
        other.agg = self.agg.copy()
        return other

    def _set_first(self, store: FrameStore, ordinal: int) -> None:
        r = store.row(ordinal)
        self.first_pts, self.first_idx = float(store.pts[r]), int(store.idx[r])

    def _set_last(self, store: FrameStore, ordinal: int) -> None:
        r = store.row(ordinal)
        self.last_pts, self.last_idx = float(store.pts[r]), int(store.idx[r])

    def duration(self, store: FrameStore) -> float:
        """Seconds of video the run's frames stand for (sum of frame weights)."""
        return float(self.agg[_DUR] + store.cw[store.row(self.b)] - store.cw[store.row(self.fold)])

    def total(self, store: FrameStore) -> np.ndarray:
        return self.agg + store.stats(self.fold, self.b, self.state)

    def fold_all(self, store: FrameStore) -> None:
        self.agg += store.stats(self.fold, self.b, self.state)
        self.fold = self.b

    def append(self, store: FrameStore, b: int) -> None:
        """Take the frames from ``self.b`` up to ``b`` (they follow this run)."""
        if b > self.b:
            self.b = b
            self._set_last(store, b - 1)

    def prepend(self, store: FrameStore, a: int) -> None:
        """Take the frames from ``a`` up to ``self.a`` (they precede this run)."""
        if a >= self.a:
            return
        if self.fold > self.a:  # keep the invariant: folded frames are a prefix
            self.agg += store.stats(a, self.a, self.state)
        else:
            self.fold = a
        self.a = a
        self._set_first(store, a)

    def extend(self, store: FrameStore, other: Run) -> None:
        """Join ``other``, which starts where this run ends, under this run's state."""
        if other.fold > other.a:
            # other has a folded prefix: fold everything before it so folded stays a prefix.
            self.agg += store.stats(self.fold, self.b, self.state) + other.agg
            self.fold = other.fold
        self.b = other.b
        self.last_pts, self.last_idx = other.last_pts, other.last_idx


def runs_from_path(store: FrameStore, path: np.ndarray, first_ordinal: int) -> list[Run]:
    """Runs of a state path whose first element is frame ``first_ordinal``."""
    runs, start, states = [], 0, path.tolist()
    for k in range(1, len(states) + 1):
        if k == len(states) or states[k] != states[start]:
            runs.append(Run(store, states[start], first_ordinal + start, first_ordinal + k))
            start = k
    return runs


def _split_point(store: FrameStore, run: Run, left: int, right: int) -> int:
    """Ordinal where ``run`` best changes from state ``left`` to ``right``."""
    ra, rb = store.row(run.a), store.row(run.b)
    e_left = np.concatenate(([0.0], np.cumsum(store.E[ra:rb, left])))
    e_right = np.concatenate(([0.0], np.cumsum(store.E[ra:rb, right][::-1])))[::-1]
    score = e_left + e_right  # score[m]: frames before m go left, the rest right
    best = np.flatnonzero(score >= score.max() - 1e-9 * max(1.0, abs(score.max())))
    return run.a + int(best[len(best) // 2])


def merge_short_runs(store: FrameStore, runs: Sequence[Run], min_len_s: np.ndarray,
                     *, open_end: bool = False) -> list[Run]:
    """Merge runs shorter than ``min_len_s[state]`` into neighbours, shortest first.

    Mutates the runs it is given (pass copies to keep them). With ``open_end`` the last
    run is still growing and is not merged away (its length is not known yet).
    """
    runs = list(runs)
    while len(runs) > 1:
        last = len(runs) - 1 if open_end else len(runs)
        i, shortest = -1, np.inf
        for k in range(last):
            d = runs[k].duration(store)
            if d < min_len_s[runs[k].state] and d < shortest:
                i, shortest = k, d
        if i < 0:
            break
        run = runs[i]
        left = runs[i - 1] if i > 0 else None
        right = runs[i + 1] if i + 1 < len(runs) else None
        if left is None:
            right.prepend(store, run.a)
            del runs[i]
        elif right is None:
            left.append(store, run.b)
            del runs[i]
        elif left.state == right.state:
            left.append(store, run.b)
            left.extend(store, right)
            del runs[i: i + 2]
        else:
            m = _split_point(store, run, left.state, right.state)
            left.append(store, m)
            right.prepend(store, m)
            del runs[i]
    return runs


def boundary(prev: Run, nxt: Run) -> tuple[float, int]:
    """``(start_s, start_frame)`` of ``nxt``: the midpoint of the gap after ``prev``."""
    t = (prev.last_pts + nxt.first_pts) / 2.0
    frame = prev.last_idx + (nxt.first_idx - prev.last_idx + 1) // 2
    return t, frame


def to_section(store: FrameStore, run: Run, label: str, start: tuple[float, int],
               end: tuple[float, int]) -> Section:
    """The :class:`Section` of ``run`` between ``start`` and ``end`` (``(s, frame)`` pairs;
    ``end`` is ``(end_s, end_frame)``: exclusive time, inclusive frame)."""
    agg = run.total(store)
    n = agg[_N]
    good_fraction = float(agg[_N_GOOD] / n) if n else 0.0
    confidence = float(agg[_CONF_SUM] / agg[_CONF_N]) if agg[_CONF_N] else 0.0
    return Section(
        label=label,
        start_s=float(start[0]),
        end_s=float(max(end[0], start[0])),
        start_frame=int(start[1]),
        end_frame=int(max(end[1], start[1])),
        good_fraction=min(max(good_fraction, 0.0), 1.0),
        confidence=min(max(confidence, 0.0), 1.0),
    )


def to_sections(store: FrameStore, runs: Sequence[Run], labels: Sequence[str],
                start: tuple[float, int], end: tuple[float, int]) -> list[Section]:
    """Sections of consecutive ``runs`` from ``start`` (``(s, frame)``) to ``end``."""
    out = []
    for k, run in enumerate(runs):
        stop = end
        if k + 1 < len(runs):
            t, frame = boundary(run, runs[k + 1])
            stop = (t, frame - 1)
        out.append(to_section(store, run, labels[run.state], start, stop))
        if k + 1 < len(runs):
            start = (t, frame)
    return out


def end_point(store: FrameStore, run: Run, end_s: float | None,
             end_frame: int | None) -> tuple[float, int]:
    """``(end_s, end_frame)`` of the last section: as given, but never before its last
    frame; when not given, one frame interval after the last analysed frame."""
    last_w = float(store.w[store.row(store.end - 1)]) if store.n else 0.0
    t = run.last_pts + last_w if end_s is None else max(float(end_s), run.last_pts)
    frame = run.last_idx if end_frame is None else max(int(end_frame), run.last_idx)
    return t, frame
