"""The inference thread: frames in, batched classifier runs, predictions out.

:class:`InferenceWorker` takes :class:`~endostream.frames.Frame` objects from a bounded
queue, groups them into batches (dynamic batching), runs the classifier once per batch
and puts one :class:`~endostream.frames.Prediction` per frame, in order, into the output
queue. It ends at ``END_OF_STREAM`` from the source or when the stop Event is set, always
puts ``END_OF_STREAM`` downstream in ``finally``, and keeps any exception in ``.error``
for its owner to re-raise.

>>> worker = InferenceWorker(classifier, frames_q, preds_q, stop)  # doctest: +SKIP
>>> worker.start()  # doctest: +SKIP
>>> ...  # drain preds_q until END_OF_STREAM, then:  # doctest: +SKIP
>>> worker.join(); worker.error is None  # doctest: +SKIP
True
"""

from __future__ import annotations

import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from endostream.errors import UsageError
from endostream.frames import MODEL_INPUT_SIZE, QUEUE_POLL_S, Frame, Prediction
from endostream.inference.defaults import CPU_BATCH, check_batch
from endostream.sources.base import END_OF_STREAM

#: Longest wait, once a batch has its first frame, for more frames to fill it. Bounds the
#: latency batching adds to a live feed (a 30 fps camera delivers a frame every 33 ms, so
#: live batches stay small); file sources keep the queue full and fill batches at once.
DEFAULT_MAX_WAIT_MS = 30.0

#: After stop is set, how long the worker still tries to hand END_OF_STREAM to a consumer
#: that may be draining the output queue.
END_GRACE_S = 1.0

#: Batch timings kept for the statistics (the most recent ones).
STATS_WINDOW = 2048


class BatchClassifier(Protocol):
    """What the worker needs from a classifier
    (:class:`~endostream.inference.classifier.Classifier`)."""

    def run(self, batch: np.ndarray) -> Mapping[str, np.ndarray]: ...


class InferenceWorker(threading.Thread):
    """Thread that turns Frames from ``in_queue`` into Predictions on ``out_queue``.

    ``batch_size`` caps a batch; ``max_wait_ms`` is how long a started batch may wait to
    fill (0: run whatever is queued right now). ``labelled_ns`` of every prediction is
    taken after its batch's run. :meth:`stats` reports frames, batches and run times.
    """

    def __init__(
        self,
        classifier: BatchClassifier,
        in_queue: queue.Queue,
        out_queue: queue.Queue,
        stop: threading.Event,
        *,
        batch_size: int = CPU_BATCH,
        max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
        name: str = "endostream-inference",
    ):
        # daemon: a crashed owner must not hang interpreter exit; the owner still stops
        # and joins the worker on every normal path.
        super().__init__(name=name, daemon=True)
        check_batch(batch_size)
        if max_wait_ms < 0:
            raise UsageError(f"max wait must be >= 0 ms (got {max_wait_ms})")
        self.classifier = classifier
        self.batch_size = batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self._in = in_queue
        self._out = out_queue
        self._stop_event = stop  # not "_stop": threading.Thread has a method of that name
        #: The exception that ended the thread, for the owner to re-raise; None if clean.
        self.error: BaseException | None = None
        # One staging buffer for all batches: frames are copied into it once and the
        # classifier gets a contiguous view, no np.stack allocation per batch.
        self._buffer = np.empty((batch_size, MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3), np.uint8)
        self._stats_lock = threading.Lock()
        self._frames = 0
        self._batches = 0
        self._infer_s_total = 0.0
        self._infer_ms: deque[float] = deque(maxlen=STATS_WINDOW)

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # noqa: BLE001 - handed to the owner, who re-raises it
            self.error = e
        finally:
            self._put_end()

    # --- statistics ---------------------------------------------------------------------

    @property
    def infer_ms(self) -> list[float]:
        """Run time of recent batches in ms (the last :data:`STATS_WINDOW`)."""
        with self._stats_lock:
            return list(self._infer_ms)

    def stats(self) -> dict[str, Any]:
        """Counters and batch timings so far (safe to call while running).

        ``frames_per_s_inference`` is frames over the time spent inside the classifier:
        the ceiling the inference stage alone would allow.
        """
        with self._stats_lock:
            times = list(self._infer_ms)
            frames, batches, total_s = self._frames, self._batches, self._infer_s_total
        ordered = sorted(times)
        return {
            "frames": frames,
            "batches": batches,
            "batch_size": self.batch_size,
            "mean_batch_size": frames / batches if batches else 0.0,
            "infer_ms_mean": statistics.fmean(times) if times else 0.0,
            "infer_ms_median": statistics.median(times) if times else 0.0,
            "infer_ms_p95": ordered[int(0.95 * (len(ordered) - 1))] if times else 0.0,
            "infer_s_total": total_s,
            "frames_per_s_inference": frames / total_s if total_s > 0 else 0.0,
        }

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop_event.is_set():
            try:
                first = self._in.get(timeout=QUEUE_POLL_S)
            except queue.Empty:
                continue
            if first is END_OF_STREAM:
                return
            frames, ended = self._gather(first)
            if not self._classify(frames) or ended:
                return

    def _gather(self, first: Frame) -> tuple[list[Frame], bool]:
        """Frames for one batch, starting with ``first``; True if the stream ended."""
        frames = [first]
        deadline = time.monotonic() + self.max_wait_s
        while len(frames) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                # Past the deadline, still take what is already queued: that adds no wait.
                item = self._in.get(timeout=remaining) if remaining > 0 else self._in.get_nowait()
            except queue.Empty:
                break
            if item is END_OF_STREAM:
                return frames, True
            frames.append(item)
        return frames, False

    def _classify(self, frames: list[Frame]) -> bool:
        """Run one batch and emit its predictions; False if stop interrupted the output."""
        n = len(frames)
        for i, frame in enumerate(frames):
            # Checked, not left to numpy: a [224, 3] image would be broadcast into every
            # row and a float image silently cast.
            image = frame.image
            if image.shape != self._buffer.shape[1:] or image.dtype != np.uint8:
                raise ValueError(f"frame {frame.index} has a {image.dtype} image of shape "
                                 f"{image.shape}; expected uint8 {self._buffer.shape[1:]} "
                                 "(crop and resize it first)")
            self._buffer[i] = frame.image
        t0 = time.perf_counter()
        probs = self.classifier.run(self._buffer[:n])
        elapsed = time.perf_counter() - t0
        labelled_ns = time.monotonic_ns()
        with self._stats_lock:
            self._frames += n
            self._batches += 1
            self._infer_s_total += elapsed
            self._infer_ms.append(elapsed * 1000.0)
        for i, frame in enumerate(frames):
            pred = Prediction(
                index=frame.index,
                pts_s=frame.pts_s,
                probs={head: p[i] for head, p in probs.items()},
                captured_ns=frame.captured_ns,
                labelled_ns=labelled_ns,
            )
            if not self._put(pred):
                return False
        return True

    def _put(self, item: object) -> bool:
        """Put with backpressure; gives up (False) once stop is set and the queue is full."""
        while True:
            try:
                self._out.put(item, timeout=QUEUE_POLL_S)
                return True
            except queue.Full:
                if self._stop_event.is_set():
                    return False

    def _put_end(self) -> None:
        # The consumer waits for this marker, so keep trying while it may still drain;
        # after stop, give up after END_GRACE_S: nobody is reading any more.
        give_up = None
        while True:
            try:
                self._out.put(END_OF_STREAM, timeout=QUEUE_POLL_S)
                return
            except queue.Full:
                if self._stop_event.is_set():
                    give_up = give_up or time.monotonic() + END_GRACE_S
                    if time.monotonic() >= give_up:
                        return
