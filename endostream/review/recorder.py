"""What ``segment --report`` keeps during analysis, so the report needs no second decode.

:class:`AnalysisRecorder` sits in the pipeline twice: as the frame hook (capture thread)
it sees every analysed full-size frame and keeps a small copy until that frame's
prediction arrives; as the prediction callback (caller thread) it records the
probabilities (the per-frame table of the report's panels) and keeps, per
:data:`BUCKET_S` stretch of video, the best frame for each organ (good quality times the
organ's probability), and per second one plain frame, as JPEG. Memory stays bounded: a
few small JPEGs per bucket, plus the frames still in the pipeline's bounded queues.

>>> recorder = AnalysisRecorder(classifier.heads,
...                             options.segmenter.good_threshold)  # doctest: +SKIP
>>> result = segment_video(video, classifier, options, on_frame=recorder.on_frame,
...                        on_prediction=recorder.on_prediction)  # doctest: +SKIP
>>> recorder.thumbnails(result.sections)  # doctest: +SKIP
[array(...), ...]
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from endostream.contract import GOOD_LABEL
from endostream.frames import Frame, Prediction
from endostream.procedure import FrameTable
from endostream.procedure.thumbnails import jpeg_bytes, shrink
from endostream.segmentation.config import is_good
from endostream.segmentation.section import UNUSABLE, Section

#: Seconds of video per bucket of kept organ thumbnails: a section gets the best frame of
#: its organ among the buckets' winners inside it; 5 s keeps an hour to a few MB of JPEG.
BUCKET_S = 5.0
#: Seconds per bucket of plain frames (the one nearest the bucket's middle): shorter than
#: the shortest section (2 s), so every section holds one; about 10 kB a second of video.
PLAIN_BUCKET_S = 1.0
#: Key of the plain (middle-of-bucket) frame, for unusable stretches.
ANY = ""


class AnalysisRecorder:
    """Collects the per-frame table and thumbnail candidates while ``segment`` runs."""

    def __init__(self, heads: Mapping[str, Sequence[str]], good_threshold: float):
        """``good_threshold``: the run's (its segmenter's), so that a thumbnail is chosen
        among the frames the sections count as good."""
        self.good_threshold = good_threshold
        self.organ_labels = list(heads.get("organ", ()))
        quality = list(heads.get("quality", ()))
        self._good_index = quality.index(GOOD_LABEL) if GOOD_LABEL in quality else None
        self._lock = threading.Lock()
        self._pending: dict[int, np.ndarray] = {}  #: frame index → small copy
        #: (bucket, label or ANY) → (score, pts_s, jpeg bytes)
        self._best: dict[tuple[int, str], tuple[float, float, bytes]] = {}
        self._rows: list[tuple[int, float, float, list[float]]] = []

    def on_frame(self, frame: Frame) -> None:
        """Keep a small copy of an analysed frame until its prediction arrives (the
        pipeline's frame hook, capture thread; ``frame.display`` is the full picture)."""
        if frame.display is None:
            return
        small = shrink(frame.display)
        with self._lock:
            self._pending[frame.index] = small

    def on_prediction(self, pred: Prediction) -> None:
        """Record ``pred``; keep its frame where it is the best of its bucket so far."""
        with self._lock:
            small = self._pending.pop(pred.index, None)
            # Anything older was never predicted (dropped): let it go.
            for stale in [i for i in self._pending if i < pred.index]:
                del self._pending[stale]
        q = pred.probs.get("quality")
        good = float(q[self._good_index]) if q is not None and self._good_index is not None \
            else float("nan")
        o = pred.probs.get("organ")
        organ = [float(v) for v in o] if o is not None else [float("nan")] * len(
            self.organ_labels)
        self._rows.append((pred.index, pred.pts_s, good, organ))
        if small is None:
            return
        plain = int(pred.pts_s // PLAIN_BUCKET_S)
        scores = {(plain, ANY): -abs(pred.pts_s - (plain + 0.5) * PLAIN_BUCKET_S)}
        if is_good(good, self.good_threshold):
            bucket = int(pred.pts_s // BUCKET_S)
            for label, p in zip(self.organ_labels, organ, strict=True):
                if not np.isnan(p):
                    scores[(bucket, label)] = (1.0 if np.isnan(good) else good) * p
        jpeg = None
        for key, score in scores.items():
            kept = self._best.get(key)
            if kept is None or score > kept[0]:
                if jpeg is None:
                    jpeg = jpeg_bytes(small)
                self._best[key] = (score, pred.pts_s, jpeg)

    def frame_table(self) -> FrameTable:
        """The probabilities recorded, as :func:`~endostream.procedure.read_frames_csv`
        would read them from the CSV."""
        rows = sorted(self._rows)
        n, k = len(rows), len(self.organ_labels)
        return FrameTable(frame=np.array([r[0] for r in rows], np.int64),
                          pts_s=np.array([r[1] for r in rows], np.float64),
                          good=np.array([r[2] for r in rows], np.float64),
                          organ_labels=list(self.organ_labels),
                          organ=np.array([r[3] for r in rows], np.float64).reshape(n, k))

    def thumbnails(self, sections: Sequence[Section]) -> list[np.ndarray | None]:
        """One thumbnail per section: its organ's best kept frame inside it, else the kept
        frame nearest its middle."""
        out = []
        for s in sections:
            inside = [(key, v) for key, v in self._best.items()
                      if s.start_s - 1e-6 <= v[1] < s.end_s + 1e-6]
            best = None
            if s.label != UNUSABLE:
                organ = [v for key, v in inside if key[1] == s.label]
                best = max(organ, default=None, key=lambda v: v[0])
            if best is None:  # the plain frame nearest the middle, inside if possible
                middle = (s.start_s + s.end_s) / 2
                plain = [v for key, v in inside if key[1] == ANY] or [
                    v for key, v in self._best.items() if key[1] == ANY]
                best = min(plain, default=None, key=lambda v: abs(v[1] - middle))
            out.append(_decode(best[2]) if best is not None else None)
        return out


def _decode(jpeg: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR),
                        cv2.COLOR_BGR2RGB)
