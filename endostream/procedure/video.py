"""Reading the recording for review: opening it, its time origin, frames at given times.

Times in ``sections.json`` are relative to the video stream's start (as
:class:`~endostream.sources.file.FileSource` measures them); :func:`origin_s` gives that
start, so review code can go back to container time for seeking, chapters and cuts.
Container metadata is never read here (``metadata_errors="ignore"`` only keeps bad tags
from stopping the open).

>>> import tempfile, pathlib
>>> open_video(pathlib.Path(tempfile.mkdtemp()) / "none.mp4")
Traceback (most recent call last):
...
endostream.errors.VideoError: video file not found: '...none.mp4'; check the path or pass --video
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from endostream.errors import VideoError
from endostream.sources.file import upright


def open_video(path: str | os.PathLike) -> av.container.InputContainer:
    """Open ``path`` for reading; :class:`VideoError` when it is missing or not a video."""
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"video file not found: '{p}'; check the path or pass --video")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(f"cannot open '{p}' as a video ({' '.join(str(e).split())}); check "
                         "that it plays in a media player") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"'{p}' has no video stream (audio only?); pass the recording")
    return container


def origin_s(stream: av.stream.Stream) -> float:
    """Container time (s) of the stream's start: time 0 of ``sections.json``."""
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return 0.0


def frame_time_s(frame: av.VideoFrame, origin: float) -> float | None:
    """``frame``'s time relative to the stream start (``None`` without a timestamp)."""
    if frame.pts is None or not frame.time_base:
        return None
    return float(Fraction(frame.pts) * frame.time_base) - origin


def grab_frames(path: str | os.PathLike, times_s: Sequence[float]) -> list[np.ndarray | None]:
    """Upright RGB frames shown at ``times_s`` (relative to the stream start), by seeking.

    Each is the last frame starting at or before the time (the first frame for times
    before it); ``None`` where nothing could be decoded.

    >>> grab_frames("procedure.mp4", [1.0, 30.5])  # doctest: +SKIP
    [array(...), array(...)]
    """
    out: list[np.ndarray | None] = []
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        origin = origin_s(stream)
        for t in times_s:
            out.append(_frame_at(container, stream, origin, float(t)))
    return out


def _frame_at(container, stream, origin: float, t: float) -> np.ndarray | None:
    target = max(t, 0.0)
    try:
        container.seek(int((target + origin) / stream.time_base), stream=stream,
                       backward=True, any_frame=False)
    except av.FFmpegError:
        container.seek(0)
    best = None
    try:
        for frame in container.decode(stream):
            when = frame_time_s(frame, origin)
            if best is not None and when is not None and when > target + 1e-6:
                break
            best = frame
            if when is not None and when >= target - 1e-6:
                break
    except av.FFmpegError:
        pass
    if best is None:
        return None
    return upright(best.to_ndarray(format="rgb24"), int(getattr(best, "rotation", 0) or 0))
