"""Statistics of a live session: input and analysed fps, latency percentiles, drops.

:class:`RateWindow` keeps the times (and values) of recent events in a bounded deque and
answers "how many per second, and which values, over the last N seconds"; :class:`LiveStats`
is the frozen snapshot a status line is made from.

>>> w = RateWindow()
>>> for k in range(10):
...     w.add(k * 100_000_000, value=float(k))       # 10 events, 0.1 s apart
>>> rate, values = w.window(1_000_000_000, 5.0, since_ns=0)
>>> round(rate, 1), values.tolist()[:3]
(10.0, [0.0, 1.0, 2.0])
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from endostream.contract import GOOD_LABEL
from endostream.segmentation.config import SegmenterConfig, is_good

#: Seconds of history behind the fps and latency figures of a live session's stats.
STATS_WINDOW_S = 5.0
#: Most events kept for the statistics (5 s of a 240 fps camera plus margin).
STATS_MAXLEN = 2048


@dataclass(frozen=True)
class LiveStats:
    """A status-line snapshot; rates and latencies cover the last :data:`STATS_WINDOW_S`.

    Latencies are capture → label (:attr:`Prediction.latency_ms`); ``None`` before the
    first prediction. ``source_state`` is the camera's state (``streaming``,
    ``reconnecting``, ...) or ``None`` for sources without one.
    """

    elapsed_s: float
    input_fps: float
    analysed_fps: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    captured: int
    analysed: int
    dropped: int
    source_state: str | None = None
    reconnects: int = 0

    def line(self) -> str:
        """``'input 30.0 fps · analysed 29.9 fps · latency p50 38 ms, p99 71 ms · dropped 0'``"""
        if self.latency_p50_ms is None:
            lat = "latency –"
        else:
            lat = f"latency p50 {self.latency_p50_ms:.0f} ms, p99 {self.latency_p99_ms:.0f} ms"
        parts = [f"input {self.input_fps:.1f} fps", f"analysed {self.analysed_fps:.1f} fps",
                 lat, f"dropped {self.dropped}"]
        if self.source_state not in (None, "streaming"):
            parts.append(f"camera {self.source_state}")
        if self.reconnects:
            parts.append(f"reconnects {self.reconnects}")
        return " · ".join(parts)


class RateWindow:
    """Events per second and values over a sliding time window (thread-safe)."""

    def __init__(self) -> None:
        self._t: deque[int] = deque(maxlen=STATS_MAXLEN)
        self._v: deque[float] = deque(maxlen=STATS_MAXLEN)
        self._lock = threading.Lock()

    def add(self, t_ns: int, value: float = 0.0) -> None:
        with self._lock:
            self._t.append(t_ns)
            self._v.append(value)

    def window(self, now_ns: int, window_s: float, since_ns: int) -> tuple[float, np.ndarray]:
        """(events per second, values) over the last ``window_s`` (or since ``since_ns``)."""
        start = now_ns - int(window_s * 1e9)
        with self._lock:
            times = np.fromiter(self._t, np.int64, len(self._t))
            values = np.fromiter(self._v, np.float64, len(self._v))
        keep = times >= start
        span_s = (now_ns - max(start, since_ns)) / 1e9
        rate = float(keep.sum()) / span_s if span_s > 0 else 0.0
        return rate, values[keep]


#: Seconds of recent frames behind the probability shown next to the current label.
CONFIDENCE_WINDOW_S = 1.0


@dataclass(frozen=True)
class CurrentLabel:
    """What the overlay shows: the segmenter's current label, how sure the classifier is.

    ``prob`` is the classifier's mean probability of ``label`` over the good frames of the
    last :data:`CONFIDENCE_WINDOW_S` (for :data:`~endostream.segmentation.section.UNUSABLE`:
    the mean probability of a bad image over all of them) — the same measure as a section's
    ``confidence``, over a short window. ``quality_good`` is the newest frame's quality.
    """

    label: str
    prob: float
    quality_good: bool


class ConfidenceWindow:
    """Recent frames' head outputs, for :class:`CurrentLabel` (results thread only).

    >>> w = ConfidenceWindow(["ear", "nose"], ["bad", "good"])
    >>> for k, p_nose in enumerate([0.9, 0.95, 1.0]):
    ...     w.add(k * 0.1, {"quality": np.array([0.1, 0.9]),
    ...                     "organ": np.array([1 - p_nose, p_nose])})
    >>> w.current("nose", True)
    CurrentLabel(label='nose', prob=0.95, quality_good=True)
    """

    def __init__(self, organ_labels: Sequence[str], quality_labels: Sequence[str] | None,
                 good_threshold: float = SegmenterConfig().good_threshold):
        self.organ_labels = list(organ_labels)
        labels = list(quality_labels or ())
        self._good_index = labels.index(GOOD_LABEL) if GOOD_LABEL in labels else None
        self.good_threshold = good_threshold
        self._recent: deque[tuple[float, float, np.ndarray | None]] = deque(maxlen=STATS_MAXLEN)

    def add(self, pts_s: float, probs: Mapping[str, np.ndarray]) -> None:
        quality = probs.get("quality")
        p_good = 1.0 if quality is None or self._good_index is None else float(
            quality[self._good_index])
        self._recent.append((pts_s, p_good, probs.get("organ")))
        while self._recent and self._recent[0][0] < pts_s - CONFIDENCE_WINDOW_S:
            self._recent.popleft()

    def current(self, label: str, quality_good: bool) -> CurrentLabel:
        frames = list(self._recent)
        if not frames:
            return CurrentLabel(label, 0.0, quality_good)
        if label not in self.organ_labels:  # unusable
            prob = float(np.mean([1.0 - g for _, g, _ in frames]))
        else:
            k = self.organ_labels.index(label)
            organ = [(g, o[k]) for _, g, o in frames if o is not None]
            good = [p for g, p in organ if is_good(g, self.good_threshold)]
            values = good or [p for _, p in organ]
            prob = float(np.mean(values)) if values else 0.0
        return CurrentLabel(label, round(prob, 4), quality_good)
