"""Coarse-to-fine runs: the wiring (:func:`run_coarse`); the document is assembled by
:func:`endostream.pipeline.offline.segment_video`, as for a dense run."""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from endostream.crop import ContentCropper
from endostream.errors import DecodeError, EndostreamError
from endostream.frames import Prediction, SourceInfo
from endostream.inference.classifier import Classifier
from endostream.inference.defaults import default_batch
from endostream.inference.worker import InferenceWorker
from endostream.pipeline.coarse.plan import CoarsePlan
from endostream.pipeline.drain import drain_predictions
from endostream.pipeline.options import (
    FrameFn,
    PredictionFn,
    ProgressFn,
    SegmentOptions,
    final_info,
    rate_above_video,
)
from endostream.pipeline.threads import ThreadGroup
from endostream.segmentation.hmm import FrameModel
from endostream.segmentation.refine import coarse_step
from endostream.sources import CaptureThread, FrameTap
from endostream.sources.fingerprint import fingerprint_once
from endostream.sources.skim import IndexMismatch, SkimSource

log = logging.getLogger(__name__)

#: ``analysis.mode`` values (``sections.json``); files without it were dense runs.
MODE_DENSE = "dense"
MODE_COARSE = "coarse-to-fine"


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


@dataclass(frozen=True)
class CoarseRun:
    """What :func:`run_coarse` found, the predictions having gone to the caller's hook:
    ``info`` with the counts of the whole video, ``analysed`` frames (the last one
    ``last``), ``error`` when it ended early, ``frames_decoded`` really decoded, and the
    plan's counts for ``analysis.coarse_to_fine`` (``describe``)."""

    info: SourceInfo
    decoded: int
    analysed: int
    last: Prediction | None
    error: EndostreamError | None
    frames_decoded: int
    describe: dict[str, Any]
    worker_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.error is None


def run_coarse(
    path: str | Path,
    classifier: Classifier,
    options: SegmentOptions,
    on_prediction: PredictionFn,
    *,
    on_frame: FrameFn | None = None,
    on_progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
    cropper: ContentCropper | None = None,
) -> CoarseRun | None:
    """The wiring of a coarse-to-fine run: every prediction goes to ``on_prediction`` in
    frame order, each once every frame before it that will be analysed has been (a few
    coarse steps late); ``on_frame`` sees analysed frames as they are converted, coarse
    ones before the dense ones behind them. ``None`` where coarse to fine does not apply.

    Where the packet scan turns out not to match the decoder, the video is decoded again
    without skipping; what was handed on before is kept and not handed on twice (frames
    after it may reach ``on_frame`` twice).
    """
    stop = stop or threading.Event()
    if not options.coarse_fps or not options.sample_fps:
        return None
    delivered: list[Prediction] = []
    try:
        return _run(path, classifier, options, on_prediction, on_frame, on_progress, stop,
                    cropper, delivered, skip=True)
    except IndexMismatch as e:
        log.warning("%s; decoding every frame instead", e)
        stop.clear()  # set by the first attempt's own ending; the caller had not stopped it
        return _run(path, classifier, options, on_prediction, on_frame, on_progress, stop,
                    cropper, delivered, skip=False)


def _run(path, classifier, options, on_prediction, on_frame, on_progress, stop, cropper,
         delivered: list[Prediction], *, skip: bool) -> CoarseRun | None:
    """One attempt; ``delivered`` holds what earlier attempts handed on (kept, not redone)
    and gets what this one hands on."""
    handed_up_to = delivered[-1].index if delivered else -1

    def hand_on(preds: list[Prediction]) -> None:
        for pred in preds:
            if pred.index <= handed_up_to:
                continue  # an earlier attempt handed this part on already
            delivered.append(pred)
            on_prediction(pred)

    model = FrameModel(classifier.heads.get("organ", ()), options.segmenter,
                       classifier.heads.get("quality", ("bad", "good")))
    batch_size = options.batch_size or default_batch(classifier.provider)
    frames_q: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    preds_q: queue.Queue = queue.Queue(maxsize=4 * batch_size)

    with SkimSource(path, sample_fps=options.sample_fps, cropper=cropper,
                    keep_display=on_frame is not None, skip=skip,
                    coarse_every=coarse_step(options.sample_fps or 1.0,
                                             options.coarse_fps or 1.0)) as skim:
        if not applies(options, skim.info.fps):
            return None
        plan = CoarsePlan(skim, model, stop)
        capture = CaptureThread(
            plan if on_frame is None else FrameTap(plan, on_frame, stop, keep_display=False),
            frames_q, stop)
        worker = InferenceWorker(classifier, frames_q, preds_q, stop, batch_size=batch_size)
        threads = ThreadGroup(stop, drain=(preds_q, frames_q))
        threads.add("inference", worker)
        threads.add("capture", capture)

        def each(item: Prediction, count: int) -> None:
            hand_on(plan.receive(item))
            if on_progress is not None:
                on_progress(plan.decoded_frames, count, skim.info.expected_frames)

        drained = drain_predictions(threads, worker, preds_q, stop, each)
        error = drained.error
        if isinstance(capture.error, IndexMismatch):
            if not drained.stopped_by_caller and error is None:
                raise capture.error  # run_coarse decodes again without skipping
        elif isinstance(capture.error, DecodeError):
            error = error or capture.error
        elif capture.error is not None:
            raise capture.error
        error = error or drained.early_end()
        decoded = skim.frames_total
        # The recording's identity, as the dense path records it (cached: read once a run).
        info = replace(final_info(skim.info, decoded, skim.last_pts_s, complete=error is None),
                       fingerprint=fingerprint_once(path))
        stats = worker.stats()
        frames_decoded = skim.decoded_frames
    hand_on(plan.flush())
    return CoarseRun(info=info, decoded=decoded, analysed=len(delivered),
                     last=delivered[-1] if delivered else None, error=error,
                     frames_decoded=frames_decoded, describe=plan.describe(),
                     worker_stats=stats)
