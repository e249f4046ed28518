"""Opening the source of a live session: a camera, or a file played like one.

Shared by ``endostream live`` (headless) and the Qt window, so both open sources the same
way. A camera drops the oldest waiting frame when inference falls behind; a file played in
real time does the same; a file not paced to real time waits instead (every frame is
analysed, as in ``segment``).

>>> open_live_source(camera=0).info.path  # doctest: +SKIP
'camera:0'
"""

from __future__ import annotations

from pathlib import Path

from endostream.sources.base import FrameSource
from endostream.sources.camera import CameraSource
from endostream.sources.file import FileSource
from endostream.sources.realtime import RealtimeFileSource


def open_live_source(
    *,
    camera: int | str | None = None,
    file: str | Path | None = None,
    realtime: bool = True,
    keep_display: bool = True,
    give_up_s: float | None = None,
) -> FrameSource:
    """The source a live session analyses: ``camera`` (index, device path or URL), or
    ``file`` (``realtime=True`` plays it like a camera; ``False`` analyses every frame as
    fast as inference allows). ``give_up_s``: how long a lost camera is retried."""
    if file is not None:
        if realtime:
            return RealtimeFileSource(file, keep_display=keep_display)
        return FileSource(file, sample_fps=None, keep_display=keep_display)
    return CameraSource(0 if camera is None else camera, keep_display=keep_display,
                        give_up_s=give_up_s)
