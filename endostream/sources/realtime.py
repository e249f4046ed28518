"""A video file played as if it were a camera: at its native rate, dropping when behind.

:class:`RealtimeFileSource` decodes every frame of a file (:class:`~endostream.sources.file.
FileSource` with ``sample_fps=None`` and the full frame kept for display) and releases
each one when its presentation time comes, measured on the monotonic clock from the
first frame. Its policy is :attr:`QueuePolicy.DROP_OLDEST`, like a camera: when
inference falls behind, frames are dropped, not waited for. That makes ``endostream live
--file clip.mp4 --realtime`` a faithful stand-in for a scope, for demos and tests.

``pts_s`` stays the container's time, so sections line up with the video (and with its
ground truth); ``captured_ns`` is the moment the frame was released, so latency is
measured as for a camera. When decoding itself falls behind real time, frames are
released at once (late) rather than skipped: the display path still wants them.

>>> with RealtimeFileSource("procedure.mp4") as src:  # doctest: +SKIP
...     first = src.read()
>>> first.pts_s, first.display.shape  # doctest: +SKIP
(0.0, (720, 1280, 3))
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

from endostream.crop import ContentCropper
from endostream.errors import UsageError
from endostream.frames import Frame, SourceInfo
from endostream.sources.base import QueuePolicy
from endostream.sources.file import FileSource

log = logging.getLogger(__name__)


class RealtimeFileSource:
    """Plays ``path`` at ``speed`` x its native rate; a FrameSource with DROP_OLDEST policy.

    :meth:`interrupt` (any thread) makes a ``read()`` that is waiting for a frame's time
    return ``None`` at once. ``late_frames`` counts frames released after their time
    (decoding slower than real time).

    >>> src = RealtimeFileSource("clip.mp4", speed=2.0)   # twice as fast  # doctest: +SKIP
    """

    policy = QueuePolicy.DROP_OLDEST

    def __init__(
        self,
        path: str | Path,
        *,
        cropper: ContentCropper | None = None,
        keep_display: bool = True,
        speed: float = 1.0,
    ):
        if not speed > 0:
            raise UsageError(f"playback speed must be positive, got {speed}")
        self.speed = float(speed)
        self._inner = FileSource(path, sample_fps=None, cropper=cropper, keep_display=keep_display)
        self._interrupted = threading.Event()
        self._t0: float | None = None  # monotonic time the first frame was released
        self._pts0 = 0.0
        self.late_frames = 0

    @property
    def info(self) -> SourceInfo:
        return self._inner.info

    @property
    def decoded_frames(self) -> int:
        return self._inner.decoded_frames

    def read(self) -> Frame | None:
        """The next frame, at its time; ``None`` at the end or once interrupted."""
        if self._interrupted.is_set():
            return None
        frame = self._inner.read()
        if frame is None:
            return None
        now = time.monotonic()
        if self._t0 is None:
            self._t0, self._pts0 = now, frame.pts_s
        due = self._t0 + (frame.pts_s - self._pts0) / self.speed
        if due > now:
            if self._interrupted.wait(due - now):
                return None
        elif now - due > 0.05:
            self.late_frames += 1
        return dataclasses.replace(frame, captured_ns=time.monotonic_ns())

    def interrupt(self) -> None:
        """Make ``read()`` return ``None`` soon (called by the owner to stop a session)."""
        self._interrupted.set()

    def close(self) -> None:
        self.interrupt()
        self._inner.close()

    def __enter__(self) -> RealtimeFileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
