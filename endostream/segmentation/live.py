"""Live segmenter: the offline segmenter's model, decoded causally with a bounded lag.

Each :meth:`LiveSegmenter.update` runs one Viterbi step (same frame model, same
switching costs as :class:`~endostream.segmentation.offline.OfflineSegmenter`) and returns a
:class:`LiveSnapshot`: sections already *committed* (final, never revised) and the
*tentative* rest up to the newest frame, which may still change.

How frames get committed:

* as soon as every surviving Viterbi path agrees on a frame, it and everything before it
  are fixed: any future best path goes through them, exactly as offline;
* when they still disagree ``lag_s`` after a frame, the current best path is committed
  for the frames older than ``lag_s - FORCE_HOP_S`` and decoding goes on from there
  (bounded lag, at the price of possibly differing from the offline result there);
* runs shorter than their minimum length are merged as offline once a long enough run
  follows them (the merge of runs between two long runs depends on nothing else); if
  short runs keep coming for ``lag_s + max(min lengths)`` seconds, they are merged as
  if the video ended there.

So a frame's final label is fixed at most about ``2 x lag_s + min_section_s`` after it was
seen (usually within a few seconds: :attr:`LiveSegmenter.tail_s`), and memory stays
bounded: the segmenter keeps the undecided tail and the frames of short runs, never the
whole stream (:attr:`LiveSegmenter.buffered_frames`). Without forced commits or forced
merges (:attr:`~LiveSegmenter.forced_commits`, :attr:`~LiveSegmenter.forced_merges`),
:meth:`LiveSegmenter.finish` returns exactly the offline sections. With them the result
may differ where the evidence was ambiguous for longer than the lag; in the tests'
generated noisy videos that stays within one section label and ``lag_s`` of boundary.

>>> import numpy as np
>>> from endostream.frames import Prediction
>>> live = LiveSegmenter(["ear", "nose"], lag_s=6.0)
>>> for i in range(100):  # 10 s of nose, then 10 s of ear, at 5 fps
...     organ = [0.1, 0.9] if i < 50 else [0.9, 0.1]
...     snap = live.update(Prediction(i, i / 5, {"quality": np.array([0.1, 0.9]),
...                                              "organ": np.array(organ)}, 0, 0))
>>> [s.label for s in snap.committed], snap.current_label, snap.current_quality_good
(['nose'], 'ear', True)
>>> [(s.label, s.start_s, s.end_s) for s in live.finish(end_s=20.0, end_frame=99)]
[('nose', 0.0, 9.9), ('ear', 9.9, 20.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from endostream.errors import UsageError
from endostream.frames import Prediction
from endostream.segmentation import runs as runlib
from endostream.segmentation.config import SegmenterConfig, validate_positive
from endostream.segmentation.hmm import FALLBACK_FRAME_INTERVAL_S, FrameModel, gap_weight
from endostream.segmentation.offline import check_order, no_frames
from endostream.segmentation.section import Section

#: Default commitment lag (seconds of video). Most frames commit within a few seconds
#: (as soon as the Viterbi survivors agree); the lag bounds the ambiguous ones, such as
#: a stretch where the organ head keeps mistaking one organ for another. In
#: ``benchmarks.segmenter_quality`` a 30 s lag gave the offline result exactly, 10-20 s
#: a few sections that differ; the tentative sections are shown without any lag anyway.
DEFAULT_LAG_S = 30.0

#: Shortest lag allowed, in multiples of the longest minimum section length. A forced
#: commitment keeps the state the evidence has not yet paid the switching cost to leave;
#: with a lag shorter than that pay-off time, the decoder could never switch at all.
MIN_LAG_PER_MIN_LENGTH = 2.0

#: A forced commitment fixes the frames older than ``lag_s - FORCE_HOP_S`` (at most a
#: quarter of the lag), so every committed frame had nearly ``lag_s`` of look-ahead while
#: the tail is re-decoded at most once per hop.
FORCE_HOP_S = 1.0

#: Frames the store may hold beyond the ones still needed before it is compacted
#: (compacting moves the kept rows; doing it in batches keeps the cost per frame O(1)).
TRIM_SLACK_FRAMES = 64


@dataclass(frozen=True)
class LiveSnapshot:
    """What a live view shows after one frame.

    ``committed``: final sections, oldest first; ``tentative``: the sections from the end
    of the last committed one up to the newest frame (the last one ends one analysis
    interval after it). ``current_label`` is the newest frame's state on the best path,
    ``current_quality_good`` whether the quality head called the newest frame good (the
    overlay's probability comes from the session's recent frames,
    :class:`~endostream.pipeline.stats.ConfidenceWindow`).
    """

    committed: tuple[Section, ...]
    tentative: tuple[Section, ...]
    current_label: str
    current_quality_good: bool


class LiveSegmenter:
    """Causal segmenter with bounded lag and bounded memory; see the module docstring.

    Same arguments as :class:`~endostream.segmentation.offline.OfflineSegmenter`, plus ``lag_s``:
    at least :data:`MIN_LAG_PER_MIN_LENGTH` x the longest minimum section length, else
    :class:`~endostream.errors.UsageError`; ``None`` means :data:`DEFAULT_LAG_S`, raised
    to that minimum when the configured sections are long. Single use: :meth:`finish` once.
    """

    def __init__(
        self,
        organ_labels: Sequence[str],
        quality_labels: Sequence[str] | None = ("bad", "good"),
        config: SegmenterConfig | None = None,
        lag_s: float | None = None,
    ):
        config = config or SegmenterConfig()
        self.config = config
        self.model = FrameModel(organ_labels, config, quality_labels)
        shortest = MIN_LAG_PER_MIN_LENGTH * float(self.model.min_len_s.max())
        if lag_s is None:
            lag_s = max(DEFAULT_LAG_S, shortest)
        validate_positive("lag_s", lag_s)
        self.lag_s = float(lag_s)
        if self.lag_s < shortest:
            raise UsageError(f"live segmenter lag_s {self.lag_s:g} s is too short for sections "
                             f"of {self.model.min_len_s.max():g} s; use at least {shortest:g} s")
        self.labels = self.model.labels
        #: Short runs pending for longer than this are merged as if the video ended there.
        self.max_pending_s = self.lag_s + float(self.model.min_len_s.max())
        self._store = runlib.FrameStore(self.model.n_states)
        self._delta: np.ndarray | None = None  # Viterbi scores at the newest frame
        self._e0: np.ndarray | None = None  # frame 0's evidence until frame 1 gives its weight
        self._frontier = 0  # ordinal of the first uncommitted frame
        self._open: list[runlib.Run] = []  # committed runs not yet emitted as sections
        self._committed: tuple[Section, ...] = ()
        self._next_start: tuple[float, int] = (0.0, 0)  # (start_s, start_frame) to come
        self._prev: tuple[int, float] | None = None  # (index, pts_s) of the newest frame
        self._organ_seen = False  # has any frame had an organ output? (see output_labels)
        self._finished = False
        self.forced_commits = 0  #: times the lag forced a commitment (diagnostic)
        self.forced_merges = 0  #: times pending short runs were merged early (diagnostic)

    # -- sizes (bounded; the tests watch them) ------------------------------------------------

    @property
    def buffered_frames(self) -> int:
        """Analysed frames held in memory (undecided tail, short runs, trim slack)."""
        return self._store.n

    @property
    def tail_frames(self) -> int:
        """Frames not committed yet."""
        return self._store.end - self._frontier

    @property
    def tail_s(self) -> float:
        """Seconds from the oldest uncommitted frame to the newest frame (0 when none)."""
        store = self._store
        if self._frontier >= store.end:
            return 0.0
        return float(store.pts[store.row(store.end - 1)] - store.pts[store.row(self._frontier)])

    def describe(self) -> dict[str, Any]:
        """``analysis.segmenter`` for ``sections.json``."""
        return {"mode": "live", "lag_s": self.lag_s, **self.config.to_json()}

    # -- input ------------------------------------------------------------------------------

    def update(self, pred: Prediction) -> LiveSnapshot:
        """Add the next analysed frame; returns the sections as they now stand."""
        if self._finished:
            raise RuntimeError("LiveSegmenter.update() after finish(); make a new segmenter")
        model, store = self.model, self._store
        g, organ = model.frame_inputs(pred.probs)
        pts = check_order(pred, self._prev)
        e, label_p, good = model.emission_row(g, organ)
        self._organ_seen = self._organ_seen or not np.isnan(organ[0])
        if store.end == 0:
            # Frame 0's weight is frame 1's gap (as offline); until then, the fallback.
            self._e0 = e
            store.append(pts, pred.index, FALLBACK_FRAME_INTERVAL_S, good,
                         FALLBACK_FRAME_INTERVAL_S * e, label_p)
            self._start_decoding()
        else:
            w = gap_weight(self._prev[1], pts)
            if store.end == 1:
                store.reweigh(0, w, self._e0)
                self._start_decoding()
            t = store.append(pts, pred.index, w, good, w * e, label_p)
            self._delta, store.bp[store.row(t)] = model.viterbi_step(self._delta, w * e)
            self._commit_converged()
            self._commit_forced()
            self._resolve()
            self._trim()
        self._prev = (pred.index, pts)
        return self._snapshot(good)

    def finish(self, end_s: float | None = None, end_frame: int | None = None) -> list[Section]:
        """Commit everything and return all sections (extent as offline)."""
        if self._finished:
            raise RuntimeError("LiveSegmenter.finish() called twice; make a new segmenter")
        self._finished = True
        store = self._store
        if store.end == 0:
            return no_frames(end_s, end_frame)
        if self._frontier < store.end:
            self._commit(self._best_path())
        runs = runlib.merge_short_runs(store, self._open, self.model.min_len_s)
        tail = runlib.to_sections(store, runs, self._labels(), self._next_start,
                                 runlib.end_point(store, runs[-1], end_s, end_frame))
        return list(self._committed) + tail

    # -- frame level: Viterbi with commitment -------------------------------------------------

    def _start_decoding(self) -> None:
        e0 = self._store.E[0]
        self._delta = e0 - e0.max()

    def _best_path(self) -> np.ndarray:
        """States of the uncommitted frames on the current best path."""
        return self._path_from(self._store.end - 1, int(self._delta.argmax()))

    def _path_from(self, t: int, s: int) -> np.ndarray:
        """States of frames ``frontier .. t`` on the survivor that is in state ``s`` at ``t``."""
        store = self._store
        bps = store.bp[store.row(self._frontier + 1): store.row(t + 1)].tolist()
        path = [s]
        for row in reversed(bps):  # plain ints: far cheaper than numpy per element
            s = row[s]
            path.append(s)
        return np.array(path[::-1], np.int16)

    def _commit_converged(self) -> None:
        """Commit up to the newest frame on which all survivor paths agree."""
        store = self._store
        bps = store.bp[store.row(self._frontier + 1): store.row(store.end)].tolist()
        cur = list(range(self.model.n_states))
        t = store.end - 1
        for row in reversed(bps):
            cur = [row[c] for c in cur]  # survivors' states at frame t - 1
            t -= 1
            first = cur[0]
            if all(c == first for c in cur):
                self._commit(self._path_from(t, first))
                return

    def _commit_forced(self) -> None:
        """Bound the lag: commit the best path's old part, then decode on from it."""
        store, model = self._store, self.model
        newest = store.pts[store.row(store.end - 1)]
        if newest - store.pts[store.row(self._frontier)] <= self.lag_s:
            return
        path = self._best_path()
        pts = store.pts[store.row(self._frontier): store.row(store.end)]
        hop = min(FORCE_HOP_S, self.lag_s / 4)
        k = max(int(np.searchsorted(pts, newest - self.lag_s + hop, side="right")), 1)
        self._commit(path[:k])
        self.forced_commits += 1
        delta = np.full(model.n_states, -np.inf)
        delta[int(path[k - 1])] = 0.0
        for t in range(self._frontier, store.end):
            r = store.row(t)
            delta, store.bp[r] = model.viterbi_step(delta, store.E[r])
        self._delta = delta

    def _commit(self, states: np.ndarray) -> None:
        """Hand the states of frames ``frontier ..`` to the run level."""
        store = self._store
        runs = runlib.runs_from_path(store, states, self._frontier)
        if self._open and runs and self._open[-1].state == runs[0].state:
            self._open[-1].append(store, runs[0].b)
            runs = runs[1:]
        self._open.extend(runs)
        self._frontier += len(states)

    # -- run level: merge, emit, forget ---------------------------------------------------------

    def _labels(self) -> tuple[str, ...]:
        return self.model.output_labels(self._organ_seen)

    def _is_long(self, run: runlib.Run) -> bool:
        return run.duration(self._store) >= self.model.min_len_s[run.state]

    def _resolve(self) -> None:
        store, min_len = self._store, self.model.min_len_s
        runs = self._open
        longs = [k for k, r in enumerate(runs) if self._is_long(r)]
        if longs and longs[-1] >= 1:
            # Everything up to the last long run can be merged now, as offline would.
            j = longs[-1]
            runs = runlib.merge_short_runs(store, runs[: j + 1], min_len) + runs[j + 1:]
            longs = [k for k, r in enumerate(runs) if self._is_long(r)]
        pending = runs[longs[-1] + 1:] if longs else runs
        if sum(r.duration(store) for r in pending) > self.max_pending_s:
            runs = runlib.merge_short_runs(store, runs, min_len)
            self.forced_merges += 1
        emitted = []
        while len(runs) >= 2 and self._is_long(runs[1]):
            t, frame = runlib.boundary(runs[0], runs[1])
            emitted.append(runlib.to_section(store, runs[0], self._labels()[runs[0].state],
                                            self._next_start, (t, frame - 1)))
            self._next_start = (t, frame)
            runs = runs[1:]
        if emitted:
            self._committed = self._committed + tuple(emitted)
        for r in runs:
            if self._is_long(r):
                r.fold_all(store)  # long runs are never split: their frames can go
        self._open = runs

    def _trim(self) -> None:
        store = self._store
        keep = min([self._frontier, store.end - 1] + [r.fold for r in self._open])
        if keep - store.offset >= max(TRIM_SLACK_FRAMES, store.n // 2):
            store.drop_before(keep)

    # -- output ------------------------------------------------------------------------------

    def _snapshot(self, good: bool) -> LiveSnapshot:
        store = self._store
        runs = [r.copy() for r in self._open]
        if self._frontier < store.end:
            path = self._best_path()
            tent = runlib.runs_from_path(store, path, self._frontier)
            if runs and runs[-1].state == tent[0].state:
                runs[-1].extend(store, tent[0])
                tent = tent[1:]
            runs += tent
        runs = runlib.merge_short_runs(store, runs, self.model.min_len_s, open_end=True)
        tentative = runlib.to_sections(store, runs, self._labels(), self._next_start,
                                      runlib.end_point(store, runs[-1], None, None))
        state = runs[-1].state
        return LiveSnapshot(
            committed=self._committed,
            tentative=tuple(tentative),
            current_label=self._labels()[state],
            current_quality_good=good,
        )
