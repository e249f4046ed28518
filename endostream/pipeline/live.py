"""The live pipeline: a camera (or a file played as one) → classifier → live sections.

Three threads, each with one owner (:class:`LiveSession`) and a bounded queue between::

    live source ─CaptureThread─▶ frames queue ─InferenceWorker─▶ predictions ─results thread─▶
    (camera, crop)   │            (DROP_OLDEST,   (small batches,                (LiveSegmenter,
                     │             a few frames)   no waiting)                    stats, on_result)
                     └─▶ on_display(frame): every captured frame, for the video on screen

The display path sees every frame at the camera's rate; only the queue to inference
drops frames (the oldest first, counted), so the label on screen is never more than a
couple of batches old however slow inference is.

A session stopped by the user (Stop, closing the window, Ctrl+C, SIGTERM) is *complete*
for what it covers when the source is a camera: a live feed has no "rest" that was left
out. A file played in real time is complete only when it was played to its end, as for
``endostream segment``. A source lost for good or an error in a thread makes it
incomplete; the sections up to then are kept either way.

>>> session = LiveSession(CameraSource(0), Classifier.load("m.onnx"))  # doctest: +SKIP
>>> session.start()  # doctest: +SKIP
>>> session.stats().line()  # doctest: +SKIP
'input 30.0 fps · analysed 29.9 fps · latency p50 38 ms, p99 71 ms · dropped 0'
>>> sections = session.stop()  # doctest: +SKIP
>>> session.write("sections.json")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from endostream.errors import UsageError
from endostream.frames import QUEUE_POLL_S, Frame, Prediction, SourceInfo
from endostream.inference.defaults import LIVE_BATCH, check_batch
from endostream.inference.worker import InferenceWorker
from endostream.output.document import SectionsDocument
from endostream.output.sections_file import build_document, write_document
from endostream.pipeline.stats import (
    STATS_WINDOW_S,
    ConfidenceWindow,
    CurrentLabel,
    LiveStats,
    RateWindow,
)
from endostream.pipeline.threads import ThreadGroup
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.live import LiveSegmenter, LiveSnapshot
from endostream.segmentation.section import Section
from endostream.sources.base import (
    END_OF_STREAM,
    CaptureThread,
    FrameTap,
    Interruptible,
    Reconnecting,
)
from endostream.sources.fingerprint import fingerprint_once

log = logging.getLogger(__name__)

#: The worker takes what is queued and never waits for a batch to fill: live, latency
#: matters more than batch efficiency (batches fill by themselves when inference lags).
LIVE_MAX_WAIT_MS = 0.0
#: Seconds the results loop waits on its queue before looking at the stop Event again:
#: half the pipeline's poll, so that a stop (1 s promised) has room for every thread.
POLL_S = QUEUE_POLL_S / 2
#: Seconds :meth:`LiveSession.stop` allows all threads to finish (the issue's promise).
STOP_TIMEOUT_S = 1.0



@dataclass(frozen=True)
class LiveUpdate:
    """The session's state after one prediction (:attr:`LiveSession.latest`)."""

    prediction: Prediction
    snapshot: LiveSnapshot  #: committed and tentative sections (the timeline)
    current: CurrentLabel  #: the label, its probability and quality (the overlay)


DisplayFn = Callable[[Frame], None]
ResultFn = Callable[[Prediction, LiveSnapshot], None]
EndFn = Callable[["BaseException | None"], None]


class LiveSession:
    """Owns a live source, the capture, inference and results threads, and the segmenter.

    The session takes ownership of ``source`` (any FrameSource; ``interrupt()`` is used
    where the source has it, so a stop never waits out a camera's reconnect backoff) and
    closes it in :meth:`stop`. Callbacks run on the session's threads and must be quick:
    ``on_display(frame)`` for every captured frame (capture thread), ``on_result(pred,
    snapshot)`` for every prediction (results thread; :attr:`latest` then holds the
    matching :class:`LiveUpdate`), ``on_end(error)`` once, when the results end by
    themselves or after a stop (results thread).
    """

    def __init__(
        self,
        source: Any,
        classifier: Any,
        *,
        batch_size: int = LIVE_BATCH,
        queue_frames: int | None = None,
        config: SegmenterConfig | None = None,
        on_display: DisplayFn | None = None,
        on_result: ResultFn | None = None,
        on_end: EndFn | None = None,
    ):
        if "organ" not in classifier.heads:
            raise UsageError("live sections need an organ head; pass a model file that has one "
                             f"(this one has: {', '.join(classifier.heads)})")
        check_batch(batch_size)
        self.source = source
        self.classifier = classifier
        self.config = config = config or SegmenterConfig()
        self._on_display = on_display
        self._on_result = on_result
        self._on_end = on_end
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._started = False
        self._finished: list[Section] | None = None
        self._fingerprint: tuple[str | None] | None = None  # computed on first use
        quality_labels = classifier.heads.get("quality")
        self.segmenter = LiveSegmenter(classifier.heads["organ"], quality_labels=quality_labels,
                                       config=config)
        self._confidence = ConfidenceWindow(classifier.heads["organ"], quality_labels,
                                            config.good_threshold)
        # A frame waits in this queue for at most about one batch run: this bound, not the
        # speed of inference, is what keeps live latency flat.
        self._frames: queue.Queue = queue.Queue(maxsize=queue_frames or batch_size)
        self._preds: queue.Queue = queue.Queue(maxsize=4 * batch_size)
        self._tap = FrameTap(source, self._frame_seen, self._stop)
        self._capture = CaptureThread(self._tap, self._frames, self._stop)
        self._worker = InferenceWorker(classifier, self._frames, self._preds, self._stop,
                                       batch_size=batch_size, max_wait_ms=LIVE_MAX_WAIT_MS)
        self._results = threading.Thread(target=self._results_loop, name="endostream-live-results",
                                         daemon=True)
        # Joined results first, then inference, then capture (consumers before producers).
        self._threads = ThreadGroup(self._stop, on_stop=self._interrupt_source)
        self._threads.add("results", self._results, lambda: self._results_error)
        self._threads.add("inference", self._worker)
        self._threads.add("capture", self._capture)
        self._lock = threading.Lock()
        self._captured = RateWindow()
        self._labelled = RateWindow()
        self._start_ns = time.monotonic_ns()
        self._last_frame: tuple[int, float] | None = None  # (index, pts_s) of the newest capture
        self._update: LiveUpdate | None = None
        self._analysed = 0
        self._results_error: BaseException | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> LiveSession:
        """Start the threads (once)."""
        if self._started:
            raise RuntimeError("a LiveSession runs once; make a new one to start again")
        self._started = True
        self._start_ns = time.monotonic_ns()
        self._threads.start()
        return self

    def request_stop(self) -> None:
        """Ask every thread to stop; returns at once (see :meth:`stop` to wait)."""
        self._threads.request_stop()

    def _interrupt_source(self) -> None:
        if isinstance(self.source, Interruptible):
            self.source.interrupt()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the results end by themselves (source ended, lost, or an error)."""
        return self._ended.wait(timeout)

    @property
    def running(self) -> bool:
        return self._started and not self._ended.is_set()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> list[Section]:
        """Stop and join every thread, close the source, return the final sections.

        Re-raises the first exception of any thread (the sections up to then stay
        available from :meth:`sections`). Threads that overstay ``timeout`` are logged.
        """
        late = self._threads.stop(timeout)
        if late:
            log.warning("threads still running %.1f s after stop: %s", timeout, ", ".join(late))
        if not self._capture.is_alive():
            self.source.close()
        if self._finished is None:
            if self._results.is_alive():  # stuck: its segmenter must not be touched
                self._finished = self.sections()
            else:
                self._finished = self._finish()
        if self.error is not None:
            raise self.error
        return list(self._finished)

    def __enter__(self) -> LiveSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- results ------------------------------------------------------------------------

    @property
    def error(self) -> BaseException | None:
        """The first exception of the capture, inference or results thread, if any."""
        return self._threads.first_error()

    @property
    def complete(self) -> bool:
        """Whether the sections cover the whole of what the source had (see module doc)."""
        if self.error is not None:
            return False
        return bool(self.source.info.live) or self._tap.ended

    @property
    def snapshot(self) -> LiveSnapshot | None:
        """The segmenter's latest snapshot (``None`` before the first prediction)."""
        update = self.latest
        return None if update is None else update.snapshot

    @property
    def latest(self) -> LiveUpdate | None:
        """The latest :class:`LiveUpdate` (``None`` before the first prediction)."""
        with self._lock:
            return self._update

    def sections(self) -> list[Section]:
        """Final sections after :meth:`stop`; before, the committed and tentative ones."""
        if self._finished is not None:
            return list(self._finished)
        snap = self.snapshot
        return [] if snap is None else list(snap.committed) + list(snap.tentative)

    def stats(self) -> LiveStats:
        """Rates, latency percentiles and counters; safe to call from any thread."""
        now = time.monotonic_ns()
        in_fps, _ = self._captured.window(now, STATS_WINDOW_S, self._start_ns)
        out_fps, lat = self._labelled.window(now, STATS_WINDOW_S, self._start_ns)
        p50 = p99 = None
        if lat.size:
            p50, p99 = (float(v) for v in np.percentile(lat, [50, 99]))
        with self._lock:
            analysed = self._analysed
        return LiveStats(
            elapsed_s=(now - self._start_ns) / 1e9,
            input_fps=in_fps,
            analysed_fps=out_fps,
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            captured=self.source.decoded_frames,
            analysed=analysed,
            dropped=self._capture.dropped,
            source_state=self.source.state if isinstance(self.source, Reconnecting) else None,
            reconnects=self.source.reconnects if isinstance(self.source, Reconnecting) else 0,
        )

    def worker_stats(self) -> dict[str, Any]:
        return self._worker.stats()

    # -- sections.json ------------------------------------------------------------------

    def document(self) -> SectionsDocument:
        """The :class:`~endostream.output.document.SectionsDocument` of what the session
        has seen so far (what :meth:`write` writes)."""
        info = self.source.info
        end_s, end_frame = self._end()
        captured = self.source.decoded_frames
        duration = end_s if end_s is not None else 0.0
        fps = info.fps
        if not fps and captured > 1 and duration > 0:
            fps = captured / duration  # a camera that does not say: what it delivered
        with self._lock:
            analysed = self._analysed
        stats = self.stats()
        return build_document(
            sections=self.sections(),
            complete=self.complete,
            source=SourceInfo(path=info.path, fps=fps, frames=captured, duration_s=duration,
                              width=info.width, height=info.height, live=info.live,
                              fingerprint=self._recording_fingerprint()),
            models=self.classifier.describe(),
            frames_analysed=analysed,
            # Live, the analysed rate is whatever inference kept up with: report it.
            sample_fps=round(analysed / duration, 3) if analysed and duration > 0 else None,
            segmenter=self.segmenter.describe(),
            extra_analysis={"live": {
                "frames_dropped": stats.dropped,
                "reconnects": stats.reconnects,
                "batch_size": self._worker.batch_size,
            }},
        )

    def _recording_fingerprint(self) -> str | None:
        """The fingerprint of a recording played as live (``--file``), once per session;
        ``None`` for a camera, which leaves no file to check against."""
        if self._fingerprint is None:
            info = self.source.info
            path = Path(info.path)
            self._fingerprint = (fingerprint_once(path)
                                 if not info.live and path.is_file() else None,)
        return self._fingerprint[0]

    def write(self, path: str | Path) -> SectionsDocument:
        """Write ``sections.json`` (atomically) for what the session has seen so far."""
        document = self.document()
        write_document(path, document)
        return document

    # -- threads' side ------------------------------------------------------------------

    def _frame_seen(self, frame: Frame) -> None:
        self._captured.add(frame.captured_ns)
        with self._lock:
            self._last_frame = (frame.index, frame.pts_s)
        if self._on_display is not None:
            self._on_display(frame)

    def _results_loop(self) -> None:
        try:
            while True:
                try:
                    item = self._preds.get(timeout=POLL_S)
                except queue.Empty:
                    if self._stop.is_set() and not self._worker.is_alive() and self._preds.empty():
                        return  # the worker left without its end marker reaching us
                    continue
                if item is END_OF_STREAM:
                    return
                snap = self.segmenter.update(item)
                self._confidence.add(item.pts_s, item.probs)
                update = LiveUpdate(item, snap, self._confidence.current(
                    snap.current_label, snap.current_quality_good))
                self._labelled.add(item.labelled_ns, item.latency_ms)
                with self._lock:
                    self._update = update
                    self._analysed += 1
                if self._on_result is not None:
                    self._on_result(item, snap)
        except BaseException as e:  # noqa: BLE001 - handed to the owner, who re-raises it
            self._results_error = e
        finally:
            # Results are over: nothing downstream listens, so stop capture and inference.
            self._threads.request_stop()
            self._ended.set()
            if self._on_end is not None:
                try:
                    self._on_end(self.error)
                except Exception:  # noqa: BLE001 - a broken listener must not hide the result
                    log.exception("on_end callback failed")

    def _end(self) -> tuple[float | None, int | None]:
        """Where the sections end: one frame period after the newest captured frame."""
        with self._lock:
            last = self._last_frame
        if last is None:
            return None, None
        index, pts_s = last
        fps = self.source.info.fps
        return pts_s + (1.0 / fps if fps else 0.0), index

    def _finish(self) -> list[Section]:
        end_s, end_frame = self._end()
        return list(self.segmenter.finish(end_s=end_s, end_frame=end_frame))

