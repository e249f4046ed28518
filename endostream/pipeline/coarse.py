"""Coarse-to-fine analysis of a recorded video: a sparse grid first, densely where it matters.

The default of ``segment`` (and of everything that calls
:func:`~endostream.pipeline.offline.segment_video`) for a recorded video. The dense grid is
the one a dense run analyses (``--sample-fps``, default 5/s); every n-th tick of it is a
coarse tick (n = ``sample_fps / coarse_fps``, default 5). Coarse frames are analysed as they
are decoded; the dense frames between two coarse frames wait, still in the decoder's own
format (never converted), until both coarse answers are in, and are analysed only where
:func:`~endostream.segmentation.refine.needs_dense` says the answer can change there. The
segmenter then decodes all analysed frames together, exactly as after a dense run::

    SkimSource ─CoarsePlan (capture thread)─▶ frames ─InferenceWorker─▶ predictions ─▶ caller
    (decode, skip       coarse ticks at once;            (batches, ORT)                (answers back
     non-reference)     dense ones once decided ◀──────────── decisions ──────────────  to the plan)

At most :data:`MAX_WAITING_STEPS` coarse steps of dense frames wait for their decision, so
memory stays bounded (about ``MAX_WAITING_STEPS x n`` decoded frames). Predictions arrive
out of frame order (a coarse frame before the dense ones behind it) and are sorted before
the segmenter, the CSV hook and the result see them: each is handed on once every frame
before it that will be analysed has been (:meth:`CoarsePlan.receive`).

>>> result = segment_coarse("procedure.mp4", clf, SegmentOptions())  # doctest: +SKIP
>>> result.document.analysis.extra["mode"]  # doctest: +SKIP
'coarse-to-fine'
"""

from __future__ import annotations

import bisect
import collections
import heapq
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from endostream.crop import ContentCropper
from endostream.errors import DecodeError, EndostreamError, Interrupted
from endostream.frames import QUEUE_POLL_S, Frame, Prediction, SourceInfo
from endostream.inference.classifier import Classifier
from endostream.inference.defaults import default_batch
from endostream.inference.worker import InferenceWorker
from endostream.output.document import Analysis, ModelsInfo, SectionsDocument
from endostream.pipeline.options import (
    JOIN_TIMEOUT_S,
    FrameFn,
    PredictionFn,
    ProgressFn,
    SegmentOptions,
    SegmentResult,
    final_info,
    rate_above_video,
)
from endostream.pipeline.threads import ThreadGroup
from endostream.segmentation.hmm import FrameModel
from endostream.segmentation.offline import OfflineSegmenter
from endostream.segmentation.refine import CoarseAnswer, coarse_answer, coarse_step, needs_dense
from endostream.sources import END_OF_STREAM, CaptureThread, FrameTap
from endostream.sources.base import QueuePolicy
from endostream.sources.skim import IndexMismatch, SkimSource, Tick

log = logging.getLogger(__name__)

#: Coarse steps whose dense frames may wait for a decision at once. Two would make the
#: decoder wait for every coarse frame's round trip through inference; three keeps it
#: busy while a batch runs, and holds at most 3 x (n - 1) decoded frames.
MAX_WAITING_STEPS = 3

#: ``analysis.mode`` values (``sections.json``); files without it were dense runs.
MODE_DENSE = "dense"
MODE_COARSE = "coarse-to-fine"


class CoarsePlan:
    """The capture thread's source in a coarse-to-fine run, and the caller's way back to it.

    The capture thread calls :meth:`read` (coarse frames as decoded, dense frames once
    their step is decided); the caller hands every prediction to :meth:`receive`, which
    decides the step a coarse answer closes. ``stop`` ends a wait for a decision. A
    DecodeError part way is raised once the frames decoded before it were handed out,
    the last of them as a coarse frame, as at a normal end.
    """

    policy = QueuePolicy.WAIT

    def __init__(self, skim: SkimSource, model: FrameModel, stop: threading.Event):
        self.skim = skim
        self.model = model
        self._stop = stop
        self.skipping = skim.skipping  # read here: the source forgets it when closed
        # capture thread
        self._open: list[Tick] = []
        self._waiting: collections.deque[tuple[int, list[Tick]]] = collections.deque()
        self._out: collections.deque[Frame] = collections.deque()
        self._decided: dict[int, bool] = {}
        self._next_coarse = 0
        self._eof = False
        self._error: DecodeError | None = None  # damage part way, raised after the rest
        # written by the capture thread before the coarse frame is queued, read by the caller:
        # coarse frame index -> (its number, dense ticks of the step it closes)
        self._coarse_number: dict[int, tuple[int, int]] = {}
        # caller
        self._decisions: queue.Queue[tuple[int, bool]] = queue.Queue()
        self._answers: dict[int, CoarseAnswer] = {}
        self._step_ends: list[int] = []  # coarse frame index by number
        self._dense_wanted: dict[int, int] = {}  # step -> dense predictions still to come
        self._held: list[tuple[int, Prediction]] = []  # heap by frame index
        self._settled = -1  # every step up to this number is complete
        self.coarse_frames = 0
        self.fine_frames = 0
        self.steps_refined = 0

    # -- what the capture thread sees ----------------------------------------------------

    @property
    def info(self) -> SourceInfo:
        return self.skim.info

    @property
    def decoded_frames(self) -> int:
        return self.skim.position

    def read(self) -> Frame | None:
        while True:
            if self._out:
                return self._out.popleft()
            self._take_decisions(block=False)
            if self._out:
                continue
            if self._eof or len(self._waiting) >= MAX_WAITING_STEPS:
                if not self._waiting:
                    if self._error is not None:
                        raise self._error
                    return None
                if not self._take_decisions(block=True):
                    return None  # stopped
                continue
            try:
                tick = self.skim.read_tick()
            except DecodeError as e:
                # Damaged part way: what was decoded before is good; look at it as at an
                # end (the last tick coarse, the waiting steps decided), then report.
                self._error, tick = e, None
            if tick is None:
                self._eof = True
                if self._open:  # the video's last tick is always looked at
                    self._coarse(self._open.pop())
            elif tick.coarse:
                self._coarse(tick)
            else:
                self._open.append(tick)

    def _coarse(self, tick: Tick) -> None:
        number = self._next_coarse
        self._next_coarse += 1
        if self._open:
            self._waiting.append((number, self._open))
        self._coarse_number[tick.index] = (number, len(self._open))
        self._open = []
        self.coarse_frames += 1
        self._out.append(self.skim.convert(tick))

    def _take_decisions(self, *, block: bool) -> bool:
        """Apply the decisions that came in (waiting for one with ``block``); False if
        stopped while waiting."""
        while True:
            try:
                number, dense = self._decisions.get(timeout=QUEUE_POLL_S) if block \
                    else self._decisions.get_nowait()
            except queue.Empty:
                if not block:
                    break
                if self._stop.is_set():
                    return False
                continue
            self._decided[number] = dense
            block = False
        while self._waiting and self._waiting[0][0] in self._decided:
            number, ticks = self._waiting.popleft()
            if self._decided.pop(number):
                self.fine_frames += len(ticks)
                self.steps_refined += 1
                self._out.extend(self.skim.convert(t) for t in ticks)
        return True

    # -- what the caller does ------------------------------------------------------------

    def receive(self, pred: Prediction) -> list[Prediction]:
        """Note ``pred`` (a coarse answer decides the step it closes) and return the
        predictions now settled, in frame order: every frame before them that will be
        analysed has been."""
        heapq.heappush(self._held, (pred.index, pred))
        coarse = self._coarse_number.get(pred.index)
        if coarse is None:  # a dense frame: of the step whose coarse frames enclose it
            step = bisect.bisect_left(self._step_ends, pred.index)
            self._dense_wanted[step] -= 1
        else:
            number, ticks = coarse
            self._step_ends.append(pred.index)
            answer = coarse_answer(self.model, pred.probs)
            self._answers[number] = answer
            before = self._answers.pop(number - 1, None)
            if before is not None:
                dense = needs_dense(before, answer)
                self._dense_wanted[number] = ticks if dense else 0
                self._decisions.put((number, dense))
            else:
                self._dense_wanted[number] = 0
        while self._dense_wanted.get(self._settled + 1) == 0:
            self._settled += 1
        return self._release(self._step_ends[self._settled] if self._settled >= 0 else -1)

    def flush(self) -> list[Prediction]:
        """Every prediction still held, in frame order (at the end of a run)."""
        return self._release(None)

    def _release(self, up_to: int | None) -> list[Prediction]:
        out = []
        while self._held and (up_to is None or self._held[0][0] <= up_to):
            out.append(heapq.heappop(self._held)[1])
        return out

    def describe(self) -> dict[str, Any]:
        """``analysis.coarse_to_fine`` for ``sections.json``."""
        return {"coarse_every": self.skim.coarse_every, "coarse_frames": self.coarse_frames,
                "fine_frames": self.fine_frames, "steps_refined": self.steps_refined,
                "skipped_non_reference_frames": self.skipping}


def applies(options: SegmentOptions, video_fps: float | None) -> bool:
    """Whether a run with ``options`` on a video at ``video_fps`` goes coarse to fine: a
    coarse rate is set, the dense rate is a rate (not every frame) the video has, and the
    coarse grid is sparser than the dense one.

    >>> applies(SegmentOptions(), 30.0), applies(SegmentOptions(sample_fps=None), 30.0)
    (True, False)
    >>> applies(SegmentOptions(sample_fps=1.0), 30.0), applies(SegmentOptions(coarse_fps=None), 30)
    (False, False)
    """
    return bool(options.coarse_fps and options.sample_fps and video_fps
                and not rate_above_video(options.sample_fps, video_fps)
                and coarse_step(options.sample_fps, options.coarse_fps) > 1)


def segment_coarse(
    path: str | Path,
    classifier: Classifier,
    options: SegmentOptions,
    *,
    on_frame: FrameFn | None = None,
    on_prediction: PredictionFn | None = None,
    on_progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
    cropper: ContentCropper | None = None,
) -> SegmentResult | None:
    """:func:`~endostream.pipeline.offline.segment_video` coarse to fine, with the same
    arguments, errors and result; ``None`` where coarse to fine does not apply
    (:func:`applies`: the caller then runs densely).

    ``on_prediction`` sees the predictions in frame order, each once every frame before it
    that will be analysed has been (so a few coarse steps late); ``on_frame`` sees analysed
    frames as they are converted, coarse ones before the dense ones behind them. Where the
    packet scan turns out not to match the decoder, the video is decoded again without
    skipping and what was handed on before is kept (the frames after it may be seen twice
    by ``on_frame``).
    """
    stop = stop or threading.Event()
    if not options.coarse_fps or not options.sample_fps:
        return None
    delivered: list[Prediction] = []
    try:
        return _run(path, classifier, options, on_frame, on_prediction, on_progress, stop,
                    cropper, delivered, skip=True)
    except IndexMismatch as e:
        log.warning("%s; decoding every frame instead", e)
        stop.clear()  # set by the first attempt's own ending; the caller had not stopped it
        return _run(path, classifier, options, on_frame, on_prediction, on_progress, stop,
                    cropper, delivered, skip=False)


def _run(path, classifier, options, on_frame, on_prediction, on_progress, stop, cropper,
         delivered: list[Prediction], *, skip: bool) -> SegmentResult | None:
    """One attempt; ``delivered`` holds what earlier attempts handed on (kept, not redone)
    and gets what this one hands on."""
    started = time.monotonic()
    segmenter = OfflineSegmenter(
        classifier.heads.get("organ", ()),
        quality_labels=classifier.heads.get("quality", ("bad", "good")),
        config=options.segmenter,
    )
    for pred in delivered:
        segmenter.update(pred)
    handed_up_to = delivered[-1].index if delivered else -1

    def hand_on(preds: list[Prediction]) -> None:
        for pred in preds:
            if pred.index <= handed_up_to:
                continue  # an earlier attempt handed this part on already
            segmenter.update(pred)
            delivered.append(pred)
            if on_prediction is not None:
                on_prediction(pred)

    batch_size = options.batch_size or default_batch(classifier.provider)
    frames_q: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    preds_q: queue.Queue = queue.Queue(maxsize=4 * batch_size)
    error: EndostreamError | None = None
    received = 0
    stopped_by_caller = False

    with SkimSource(path, sample_fps=options.sample_fps, cropper=cropper,
                    keep_display=on_frame is not None, skip=skip,
                    coarse_every=coarse_step(options.sample_fps or 1.0,
                                             options.coarse_fps or 1.0)) as skim:
        if not applies(options, skim.info.fps):
            return None
        plan = CoarsePlan(skim, segmenter.model, stop)
        capture = CaptureThread(
            plan if on_frame is None else FrameTap(plan, on_frame, stop, keep_display=False),
            frames_q, stop)
        worker = InferenceWorker(classifier, frames_q, preds_q, stop, batch_size=batch_size)
        threads = ThreadGroup(stop, drain=(preds_q, frames_q))
        threads.add("inference", worker)
        threads.add("capture", capture)
        threads.start()
        try:
            while True:
                try:
                    item = preds_q.get(timeout=QUEUE_POLL_S)
                except queue.Empty:
                    if not worker.is_alive() and preds_q.empty():
                        break
                    continue
                if item is END_OF_STREAM:
                    break
                hand_on(plan.receive(item))
                received += 1
                if on_progress is not None:
                    on_progress(plan.decoded_frames, received, skim.info.expected_frames)
            stopped_by_caller = stop.is_set()
        except KeyboardInterrupt:
            error = Interrupted(f"interrupted after {received} analysed frames; "
                                "the sections found so far were kept")
        finally:
            late = threads.stop(JOIN_TIMEOUT_S)
            if late:
                log.warning("threads still running %.1f s after stop: %s", JOIN_TIMEOUT_S,
                            ", ".join(late))
        if worker.error is not None:
            raise worker.error
        if isinstance(capture.error, IndexMismatch):
            if not stopped_by_caller and error is None:
                raise capture.error  # segment_coarse decodes again without skipping
        elif isinstance(capture.error, DecodeError):
            error = error or capture.error
        elif capture.error is not None:
            raise capture.error
        if error is None and stopped_by_caller:
            error = Interrupted(f"stopped after {received} analysed frames; the sections "
                                "found so far were kept")
        complete = error is None
        decoded = skim.frames_total
        info = final_info(skim.info, decoded, skim.last_pts_s, complete=complete)
        stats = worker.stats()
        frames_decoded = skim.decoded_frames

    hand_on(plan.flush())
    last = delivered[-1] if delivered else None
    if complete:
        end_s, end_frame = info.duration_s, (decoded - 1 if decoded else None)
    else:
        end_s = last.pts_s if last is not None else None
        end_frame = last.index if last is not None else None
    document = SectionsDocument(
        complete=complete, source=info, models=ModelsInfo.from_json(classifier.describe()),
        analysis=Analysis(
            frames_analysed=len(delivered), sample_fps=options.sample_fps,
            segmenter=segmenter.describe(),
            extra={"mode": MODE_COARSE, "coarse_to_fine": plan.describe()}),
        sections=tuple(segmenter.finish(end_s=end_s, end_frame=end_frame)))
    return SegmentResult(document=document.as_written(), frames_decoded=frames_decoded,
                         wall_s=time.monotonic() - started, error=error, worker_stats=stats)
