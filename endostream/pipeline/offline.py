"""Offline segmentation of a recorded video: source → worker → segmenter → document.

:func:`segment_video` is the one analysis path of a recorded video: ``segment``, ``demo``,
``evaluate`` and both archive engines reach it through :mod:`endostream.pipeline.files`
(which writes the files, in one order) with a loaded classifier and typed
:class:`SegmentOptions`, and get back a :class:`SegmentResult` whose ``document`` is the
:class:`~endostream.output.document.SectionsDocument` to write. Three threads, each with
one owner and a bounded queue between them::

    FileSource ─CaptureThread─▶ frames queue ─InferenceWorker─▶ predictions queue ─▶ caller
    (decode, crop, resize)       (WAIT policy)   (batches, ORT)                    (segmenter,
                                                                                   CSV, progress)

:func:`segment_video` is two parts: the wiring (:func:`run_threads`: the threads, their
queues and stop, each prediction handed to a hook on the caller's thread) and the assembly
(:func:`assemble_document`: the segmenter's sections and the run's facts as the document).
The caller's thread drains predictions, so everything that was analysed is in the
segmenter even when the run ends early: on Ctrl+C/SIGTERM (:class:`~endostream.errors.
Interrupted`) or a decode error part way (:class:`~endostream.errors.DecodeError`),
:func:`segment_video` still returns a result with ``complete=False`` and the sections
found so far; the CLI writes it and exits with the error's code.

>>> clf = Classifier.load("endostream.onnx")  # doctest: +SKIP
>>> result = segment_video("procedure.mp4", clf, SegmentOptions(sample_fps=5))  # doctest: +SKIP
>>> [s.label for s in result.document.sections]  # doctest: +SKIP
['nose', 'vocal_folds']
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from endostream.crop import ContentCropper
from endostream.errors import DecodeError, EndostreamError
from endostream.frames import Prediction, SourceInfo
from endostream.inference.classifier import Classifier
from endostream.inference.defaults import default_batch
from endostream.inference.worker import InferenceWorker
from endostream.output.document import Analysis, ModelsInfo, SectionsDocument
from endostream.pipeline.coarse import MODE_COARSE, MODE_DENSE, CoarseRun, run_coarse
from endostream.pipeline.drain import drain_predictions
from endostream.pipeline.options import (
    FrameFn,
    PredictionFn,
    ProgressFn,
    SegmentOptions,
    SegmentResult,
    final_info,
    rate_above_video,
)
from endostream.pipeline.threads import ThreadGroup
from endostream.segmentation.offline import OfflineSegmenter
from endostream.sources import CaptureThread, FileSource, FrameTap
from endostream.sources.fingerprint import fingerprint_once

log = logging.getLogger(__name__)


def segment_video(
    path: str | Path,
    classifier: Classifier,
    options: SegmentOptions = SegmentOptions(),  # noqa: B008 - frozen dataclass
    *,
    on_frame: FrameFn | None = None,
    on_prediction: PredictionFn | None = None,
    on_progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
    cropper: ContentCropper | None = None,
) -> SegmentResult:
    """Analyse ``path`` and return its sections document (``result.document``).

    ``on_frame`` sees every analysed frame on the capture thread, with its full-size
    upright RGB picture in ``frame.display`` (taken off again before inference), which is
    how ``segment --report`` keeps thumbnails without decoding the video again;
    ``on_prediction`` sees every prediction in frame order (the CSV writer uses it);
    ``on_progress(decoded, analysed, total_frames)`` is called after each prediction.
    Setting ``stop`` ends the run early like Ctrl+C does. ``cropper`` replaces the
    source's own content cropper.
    :class:`~endostream.errors.VideoError` (cannot open) and model errors are raised;
    interruption and decode errors part way are returned in ``result.error`` with the
    partial sections. A model with a quality head and no organ head gives ``usable`` /
    ``unusable`` sections.

    The work is in two parts: :func:`run_threads` wires source, worker and caller and
    feeds the segmenter; :func:`assemble_document` turns what it found into the document.
    With ``options.coarse_fps`` set (the default) and a sample rate it applies to, the
    video is analysed coarse to fine instead (:mod:`endostream.pipeline.coarse`: same
    arguments, same result; predictions reach ``on_prediction`` in frame order once
    analysed); ``coarse_fps=None`` analyses every ``sample_fps`` frame (``segment --dense``).
    """
    stop = stop or threading.Event()
    started = time.monotonic()
    segmenter = OfflineSegmenter(
        classifier.heads.get("organ", ()),  # none: "usable"/"unusable" sections
        quality_labels=classifier.heads.get("quality", ("bad", "good")),
        config=options.segmenter,
    )

    def each(prediction: Prediction) -> None:
        segmenter.update(prediction)
        if on_prediction is not None:
            on_prediction(prediction)

    hooks = {"on_frame": on_frame, "on_progress": on_progress, "stop": stop,
             "cropper": cropper}
    # Coarse to fine where it applies (None where it does not: dense below).
    coarse = run_coarse(path, classifier, options, each, **hooks) \
        if options.coarse_fps is not None else None
    if coarse is not None:
        run, frames_decoded, sample_fps = coarse, coarse.frames_decoded, options.sample_fps
        mode = {"mode": MODE_COARSE, "coarse_to_fine": coarse.describe}
    else:
        run = run_threads(path, classifier, options, each, **hooks)
        frames_decoded, mode = run.decoded, {"mode": MODE_DENSE}
        sample_fps = (None if run.rate_above and run.analysed >= run.decoded
                      else options.sample_fps)
    return SegmentResult(
        document=assemble_document(run, segmenter, classifier.describe(), sample_fps, mode),
        frames_decoded=frames_decoded,
        wall_s=time.monotonic() - started,
        error=run.error,
        worker_stats=run.worker_stats,
    )


@dataclass(frozen=True)
class ThreadsRun:
    """What :func:`run_threads` hands to :func:`assemble_document`: the facts of one run
    through the threads, the predictions themselves having gone to the caller's hook.

    ``info`` holds the counts really decoded (:func:`final_info`); ``last`` is the last
    prediction (``None`` when none was made); ``error`` is set when the run ended early
    (interrupted, stopped, or a decode error part way); ``rate_above`` says the requested
    rate was above the video's (:func:`rate_above_video`).
    """

    info: SourceInfo
    decoded: int
    analysed: int
    last: Prediction | None
    error: EndostreamError | None
    rate_above: bool
    worker_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.error is None


def run_threads(
    path: str | Path,
    classifier: Classifier,
    options: SegmentOptions,
    on_prediction: PredictionFn,
    *,
    on_frame: FrameFn | None = None,
    on_progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
    cropper: ContentCropper | None = None,
) -> ThreadsRun:
    """The wiring: open ``path``, run the capture thread and the inference worker, and
    hand every prediction, in frame order, to ``on_prediction`` on the caller's thread.

    The hooks are :func:`segment_video`'s. Returns when the video ended, ``stop`` was set,
    Ctrl+C was pressed or decoding failed part way (those three in ``run.error``); both
    threads are joined before it returns or raises. Opening errors and the worker's
    (model) errors are raised.
    """
    stop = stop or threading.Event()
    batch_size = options.batch_size or default_batch(classifier.provider)
    frames_q: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    preds_q: queue.Queue = queue.Queue(maxsize=4 * batch_size)
    analysed = 0
    last: Prediction | None = None

    with FileSource(path, sample_fps=options.sample_fps, cropper=cropper,
                    keep_display=on_frame is not None) as source:
        # What identifies the recording in sections.json: a few packets read by seeking
        # (milliseconds), so every reader can refuse another recording of the same size.
        fingerprint = fingerprint_once(path)
        above = rate_above_video(options.sample_fps, source.info.fps)
        if above:
            log.warning("--sample-fps %g is above the video's frame rate (%.3g fps): every "
                        "frame is analysed, and sections.json records that (sample_fps: null)",
                        options.sample_fps, source.info.fps)
        capture = CaptureThread(
            source if on_frame is None else FrameTap(source, on_frame, stop, keep_display=False),
            frames_q, stop)
        worker = InferenceWorker(classifier, frames_q, preds_q, stop,
                                 batch_size=batch_size)
        # Joined consumer first; the queues are drained meanwhile so neither thread stays
        # blocked on a full queue.
        threads = ThreadGroup(stop, drain=(preds_q, frames_q))
        threads.add("inference", worker)
        threads.add("capture", capture)

        def each(item: Prediction, count: int) -> None:
            nonlocal analysed, last
            analysed, last = count, item
            on_prediction(item)
            if on_progress is not None:
                on_progress(source.decoded_frames, count, source.info.expected_frames)

        drained = drain_predictions(threads, worker, preds_q, stop, each)
        error = drained.error
        if isinstance(capture.error, DecodeError):
            error = error or capture.error  # keep what was analysed before the bad data
        elif capture.error is not None:
            raise capture.error
        error = error or drained.early_end()
        decoded = source.decoded_frames
        info = replace(final_info(source.info, decoded, getattr(source, "last_pts_s", None),
                                  complete=error is None), fingerprint=fingerprint)
        stats = worker.stats()
    return ThreadsRun(info=info, decoded=decoded, analysed=analysed, last=last, error=error,
                      rate_above=above, worker_stats=stats)


def assemble_document(run: ThreadsRun | CoarseRun, segmenter: OfflineSegmenter,
                      models: dict[str, Any], sample_fps: float | None,
                      mode: dict[str, Any]) -> SectionsDocument:
    """The assembly: the segmenter's sections and the run's facts (dense or coarse to
    fine) as the document that will be written (``as_written``).

    A complete run's last section ends with the video; a partial one's with the last
    analysed frame. ``models`` is the classifier's ``describe()``; ``sample_fps`` the rate
    to record (``None`` when every frame was analysed because the requested one was above
    the video's); ``mode`` the analysis block's ``mode`` (and coarse-to-fine counts).
    """
    if run.complete:
        end_s, end_frame = run.info.duration_s, (run.decoded - 1 if run.decoded else None)
    else:
        end_s = run.last.pts_s if run.last is not None else None
        end_frame = run.last.index if run.last is not None else None
    sections = segmenter.finish(end_s=end_s, end_frame=end_frame)
    document = SectionsDocument(
        complete=run.complete, source=run.info, models=ModelsInfo.from_json(models),
        analysis=Analysis(
            frames_analysed=run.analysed, sample_fps=sample_fps,
            segmenter=segmenter.describe(), extra=mode),
        sections=tuple(sections))
    return document.as_written()
