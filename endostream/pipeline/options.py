"""What a recorded video's analysis takes and gives: :class:`SegmentOptions` in,
:class:`SegmentResult` out, shared by the dense path (:mod:`endostream.pipeline.offline`)
and the coarse-to-fine one (:mod:`endostream.pipeline.coarse`).

>>> SegmentOptions().sample_fps, SegmentOptions(coarse_fps=None).coarse_fps
(5.0, None)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from endostream.errors import EndostreamError, UsageError
from endostream.frames import Frame, Prediction, SourceInfo
from endostream.inference.defaults import check_batch
from endostream.output.document import SectionsDocument
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.refine import DEFAULT_COARSE_FPS
from endostream.segmentation.section import Section
from endostream.sources.file import DEFAULT_SAMPLE_FPS

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


def rate_above_video(sample_fps: float | None, video_fps: float | None) -> bool:
    """Whether ``sample_fps`` asks for more frames than the video has: every frame is
    analysed then, and ``sections.json`` records ``sample_fps: null``.

    >>> rate_above_video(25.0, 10.0), rate_above_video(5.0, 10.0), rate_above_video(None, 10)
    (True, False, False)
    """
    return bool(sample_fps and video_fps and sample_fps > video_fps)


def final_info(info: SourceInfo, decoded: int, last_pts_s: float | None,
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
