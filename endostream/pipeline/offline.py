"""Offline segmentation of a recorded video: source → worker → segmenter → document.

:func:`segment_video` is the one analysis path of a recorded video: ``segment``, ``demo``,
``evaluate`` and both archive engines call it with a loaded classifier and typed
:class:`SegmentOptions`, and get back a :class:`SegmentResult` whose ``document`` is the
:class:`~endostream.output.document.SectionsDocument` to write. Three threads, each with
one owner and a bounded queue between them::

    FileSource ─CaptureThread─▶ frames queue ─InferenceWorker─▶ predictions queue ─▶ caller
    (decode, crop, resize)       (WAIT policy)   (batches, ORT)                    (segmenter,
                                                                                   CSV, progress)

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endostream.crop import ContentCropper
from endostream.errors import DecodeError, EndostreamError, Interrupted, UsageError
from endostream.frames import QUEUE_POLL_S, Frame, Prediction, SourceInfo
from endostream.inference.classifier import Classifier
from endostream.inference.defaults import check_batch, default_batch
from endostream.inference.worker import InferenceWorker
from endostream.output.document import Analysis, ModelsInfo, SectionsDocument
from endostream.pipeline.threads import ThreadGroup
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.offline import OfflineSegmenter
from endostream.segmentation.refine import DEFAULT_COARSE_FPS
from endostream.segmentation.section import Section
from endostream.sources import END_OF_STREAM, CaptureThread, FileSource, FrameTap
from endostream.sources.file import DEFAULT_SAMPLE_FPS

log = logging.getLogger(__name__)

#: Seconds allowed for the threads to finish after they were asked to stop.
JOIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SegmentOptions:
    """How to analyse a video. Defaults live here and nowhere else."""

    sample_fps: float | None = DEFAULT_SAMPLE_FPS  #: analysed frames per second; None = all
    batch_size: int | None = None  #: frames per inference batch; None = default_batch()
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    #: coarse grid of a coarse-to-fine run (:mod:`endostream.pipeline.coarse`); None = dense
    coarse_fps: float | None = DEFAULT_COARSE_FPS

    def __post_init__(self) -> None:
        if self.sample_fps is not None and not self.sample_fps > 0:
            raise UsageError(f"--sample-fps must be positive, got {self.sample_fps}; "
                             "use 'all' to analyse every frame")
        if self.coarse_fps is not None and not self.coarse_fps > 0:
            raise UsageError(f"the coarse rate must be positive, got {self.coarse_fps}")
        check_batch(self.batch_size)


@dataclass
class SegmentResult:
    """What a run produced: the document, and facts about the run that are not in it.

    ``error`` is set when the run ended early (the document then says ``complete:
    false``). The sections, source and counts are the document's, as its file will read.
    """

    document: SectionsDocument
    frames_decoded: int
    wall_s: float
    error: EndostreamError | None = None
    worker_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def sections(self) -> list[Section]:
        return list(self.document.sections)

    @property
    def complete(self) -> bool:
        return self.document.complete

    @property
    def source(self) -> SourceInfo:
        return self.document.source

    @property
    def frames_analysed(self) -> int:
        return self.document.analysis.frames_analysed

    @property
    def segmenter(self) -> dict[str, Any]:
        """The segmenter's settings as written (``analysis.segmenter``)."""
        return dict(self.document.analysis.segmenter)

    @property
    def sample_fps(self) -> float | None:
        """The rate really used (``analysis.sample_fps``): ``None`` when every frame was
        analysed, also when the requested rate was above the video's frame rate."""
        return self.document.analysis.sample_fps

    @property
    def analysed_fps(self) -> float:
        return self.frames_analysed / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def decoded_fps(self) -> float:
        return self.frames_decoded / self.wall_s if self.wall_s > 0 else 0.0


ProgressFn = Callable[[int, int, "int | None"], None]
PredictionFn = Callable[[Prediction], None]
FrameFn = Callable[[Frame], None]


def segment_video(
    path: str | Path,
    classifier: Classifier,
    options: SegmentOptions = SegmentOptions(),
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
    """
    stop = stop or threading.Event()
    if options.coarse_fps is not None:  # coarse to fine where it applies, else dense below
        from endostream.pipeline.coarse import segment_coarse  # it imports this module

        result = segment_coarse(path, classifier, options, on_frame=on_frame,
                                on_prediction=on_prediction, on_progress=on_progress,
                                stop=stop, cropper=cropper)
        if result is not None:
            return result
    started = time.monotonic()
    segmenter = OfflineSegmenter(
        classifier.heads.get("organ", ()),  # none: "usable"/"unusable" sections
        quality_labels=classifier.heads.get("quality", ("bad", "good")),
        config=options.segmenter,
    )
    batch_size = options.batch_size or default_batch(classifier.provider)
    frames_q: queue.Queue = queue.Queue(maxsize=2 * batch_size)
    preds_q: queue.Queue = queue.Queue(maxsize=4 * batch_size)
    error: EndostreamError | None = None
    analysed = 0
    last: Prediction | None = None
    stopped_by_caller = False

    with FileSource(path, sample_fps=options.sample_fps, cropper=cropper,
                    keep_display=on_frame is not None) as source:
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
        threads.start()
        try:
            while True:
                try:
                    item = preds_q.get(timeout=QUEUE_POLL_S)
                except queue.Empty:
                    if not worker.is_alive() and preds_q.empty():
                        break  # worker died without its end marker reaching us
                    continue
                if item is END_OF_STREAM:
                    break
                segmenter.update(item)
                analysed += 1
                last = item
                if on_prediction is not None:
                    on_prediction(item)
                if on_progress is not None:
                    on_progress(source.decoded_frames, analysed, source.info.expected_frames)
            # Looked at before the threads are stopped below (which sets the Event too):
            # set now, it was the caller's stop, and the video did not end.
            stopped_by_caller = stop.is_set()
        except KeyboardInterrupt:
            error = Interrupted(f"interrupted after {analysed} analysed frames; "
                                "the sections found so far were kept")
        finally:
            # Stop and join both threads before leaving: never abandon a decoder thread
            # that still holds the container open.
            late = threads.stop(JOIN_TIMEOUT_S)
            if late:
                log.warning("threads still running %.1f s after stop: %s", JOIN_TIMEOUT_S,
                            ", ".join(late))
        if worker.error is not None:
            raise worker.error
        if isinstance(capture.error, DecodeError):
            error = error or capture.error  # keep what was analysed before the bad data
        elif capture.error is not None:
            raise capture.error
        if error is None and stopped_by_caller:
            error = Interrupted(f"stopped after {analysed} analysed frames; the sections found "
                                "so far were kept")
        decoded = source.decoded_frames
        info = _final_info(source.info, decoded, getattr(source, "last_pts_s", None),
                           complete=error is None)
        stats = worker.stats()

    complete = error is None
    if complete:
        end_s, end_frame = info.duration_s, (decoded - 1 if decoded else None)
    else:
        end_s = last.pts_s if last is not None else None
        end_frame = last.index if last is not None else None
    sections = segmenter.finish(end_s=end_s, end_frame=end_frame)
    document = SectionsDocument(
        complete=complete, source=info, models=ModelsInfo.from_json(classifier.describe()),
        analysis=Analysis(
            frames_analysed=analysed,
            sample_fps=None if above and analysed >= decoded else options.sample_fps,
            segmenter=segmenter.describe(), extra={"mode": "dense"}),
        sections=tuple(sections))
    return SegmentResult(
        document=document.as_written(),
        frames_decoded=decoded,
        wall_s=time.monotonic() - started,
        error=error,
        worker_stats=stats,
    )


def rate_above_video(sample_fps: float | None, video_fps: float | None) -> bool:
    """Whether ``sample_fps`` asks for more frames than the video has: every frame is
    analysed then, and ``sections.json`` records ``sample_fps: null``.

    >>> rate_above_video(25.0, 10.0), rate_above_video(5.0, 10.0), rate_above_video(None, 10)
    (True, False, False)
    """
    return bool(sample_fps and video_fps and sample_fps > video_fps)


def _final_info(info: SourceInfo, decoded: int, last_pts_s: float | None,
                *, complete: bool) -> SourceInfo:
    """The source info as it will be written: counts from what was really decoded.

    Containers often state a frame count or duration that is slightly off (or none at
    all); after a complete decode the decoder's own count is the truth.
    """
    frames = decoded if complete else info.frames
    duration = info.duration_s
    if complete and last_pts_s is not None:
        step = 1.0 / info.fps if info.fps else 0.0
        measured = last_pts_s + step
        if duration is None or abs(duration - measured) > 2 * step + 0.5:
            duration = measured
    return SourceInfo(path=info.path, fps=info.fps, frames=frames, duration_s=duration,
                      width=info.width, height=info.height, live=info.live)

