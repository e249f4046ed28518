"""FileSource: a recorded video, decoded with PyAV (FFmpeg), sampled by timestamp.

Every frame is decoded (the decoder needs them all), but only the frames that are analysed
are converted to RGB, cropped and resized: with ``sample_fps`` S that is the first frame at
or after each tick ``k / S`` seconds after the first frame, so a variable frame rate video
is sampled evenly in time, not in frame count. Timestamps come from the container (``pts``
x ``time_base``, relative to the stream start), indices are the decoder's frame count.

Errors are one-line :class:`~endostream.errors.VideoError` (cannot open: missing,
directory, unreadable, empty, not a video, no video stream) or
:class:`~endostream.errors.DecodeError` (damaged part way; raised by :meth:`read` after
every good frame before it was returned). Known behaviour of damaged files:

- MP4/MOV cut short with the index (``moov``) at the end: cannot be opened at all
  (VideoError: use the complete recording or repair it);
- FFmpeg conceals most damage instead of failing (with frame threading it reports even
  less), so a cut or damaged file usually just ends early. At that end ``read`` compares
  the time reached with the video duration the container states (MP4/MOV, MKV/WebM, AVI)
  and raises DecodeError when clearly short - e.g. an MP4 with ``moov`` at the front
  (``+faststart``) cut in half, an MKV with a damaged cluster, an AVI that lost its index;
- MPEG-PS/TS only estimate their duration: a cut ``.mpg`` ends normally, undetected;
- an error FFmpeg does raise part way is a DecodeError at once (the frames before it
  were all returned). Frames the decoder flags as corrupt are counted
  (``corrupt_frames``) and logged, not dropped.

Display rotation (phone-style ``rotate``/display-matrix metadata, multiples of 90 degrees)
is applied, so crops and ``display`` frames are upright. Container metadata (title,
comment) is never read into results.

>>> from endostream.sources import FileSource                       # doctest: +SKIP
>>> with FileSource("procedure.mp4", sample_fps=5.0) as src:         # doctest: +SKIP
...     while (frame := src.read()) is not None:
...         print(frame.index, round(frame.pts_s, 2), frame.image.shape)
0 0.0 (224, 224, 3)
5 0.2 (224, 224, 3)
"""

from __future__ import annotations

import logging
import math
import os
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from endostream.crop import ContentCropper
from endostream.errors import DecodeError, UsageError, VideoError
from endostream.frames import Frame, SourceInfo
from endostream.sources.base import QueuePolicy

#: cv2.rotate codes for a display rotation, counter-clockwise as FFmpeg's display matrix.
_TURNS = {90: cv2.ROTATE_90_COUNTERCLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_CLOCKWISE}


def upright(rgb: np.ndarray, rotation_deg: int) -> np.ndarray:
    """``rgb`` as it is meant to be shown: a display rotation (degrees counter-clockwise,
    multiples of 90) applied; other angles leave it as it is.

    >>> upright(np.zeros((2, 3, 3), np.uint8), 90).shape
    (3, 2, 3)
    """
    code = _TURNS.get(int(rotation_deg) % 360)
    return rgb if code is None else cv2.rotate(rgb, code)

log = logging.getLogger(__name__)

#: Analysed frames per second of video by default. Sections last tens of seconds, so a
#: 0.2 s resolution is plenty, and it leaves the CPU for the classifiers.
DEFAULT_SAMPLE_FPS = 5.0

#: A frame this close before a sampling tick counts as at the tick: containers round
#: timestamps (Matroska to 1 ms), and 29.97 fps frames then land a hair early.
TICK_TOLERANCE_S = 1e-3

#: FFmpeg decoder threading. "AUTO" (frame + slice threads) decoded the 720p H.264 clip
#: in shared/data at 342 frames/s against 227 with FFmpeg's default "SLICE" - but only on
#: an idle 2-core machine. With the other core busy (as it is with the classifiers running)
#: both gave ~200 frames/s, and AUTO spent ~8 % more CPU per frame (5.2 vs 4.8 ms; 6.5 vs
#: 6.0 ms with RGB conversion) that inference then lacks. Hence the default, "SLICE".
DECODER_THREAD_TYPE = "SLICE"

#: FFmpeg conceals most damage instead of failing: a cut or damaged file often just ends
#: early. At the end, if the video ended more than max(SHORTFALL_S, SHORTFALL_FRACTION of
#: the duration, SHORTFALL_FRAMES frame periods) before the duration its container states
#: for the video stream, :meth:`FileSource.read` raises DecodeError so the result is marked
#: partial. The slack absorbs a long last frame (variable frame rate). Frame counts are not
#: used: an MP4 edit list hides frames its sample table still counts (a trimmed copy).
SHORTFALL_S = 0.5
SHORTFALL_FRACTION = 0.01
SHORTFALL_FRAMES = 3
#: Where only the whole file's duration is known (it may include a longer audio track).
SHORTFALL_MIXED_S = 2.0
SHORTFALL_MIXED_FRACTION = 0.02
#: Containers whose duration is written in the header, not estimated from the bitrate
#: (MPEG-PS/TS durations are guesses; they are not checked).
_DURATION_TRUSTED_FORMATS = {"matroska", "webm", "mov", "mp4", "avi"}


def _video_duration_s(stream) -> float | None:
    """The video stream's own duration: from the stream, or Matroska's per-track tag."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    if tag:  # "HH:MM:SS.nnnnnnnnn"; used for this check only, never copied anywhere
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            return None
    return None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _reason(error: Exception) -> str:
    """FFmpeg's reason without PyAV's errno and function name ("[Errno 1094995529] ...")."""
    return _one_line(getattr(error, "strerror", None) or error)


class FileSource:
    """Frames of a video file, sampled at ``sample_fps`` (``None``: every frame).

    ``cropper`` turns each analysed full-size RGB frame into the model input; by default a
    fresh :class:`~endostream.crop.ContentCropper` (one per source, so each video finds its
    own mask). With ``keep_display`` the upright full-size RGB frame rides along in
    ``Frame.display`` (for an overlay).

    Counters for progress and reports: ``decoded_frames`` (all frames decoded),
    ``converted_frames`` (frames converted to RGB: only the analysed ones),
    ``analysed_frames`` (frames returned), ``last_pts_s`` (time of the last decoded frame).
    After the end, callers may prefer these to ``info.frames`` / ``info.duration_s``,
    which come from the container and may be missing or wrong.

    >>> src = FileSource("missing.mp4")
    Traceback (most recent call last):
    ...
    endostream.errors.VideoError: video file not found: 'missing.mp4'; check the path
    """

    policy = QueuePolicy.WAIT

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        sample_fps: float | None = DEFAULT_SAMPLE_FPS,
        cropper: ContentCropper | None = None,
        keep_display: bool = False,
    ):
        if sample_fps is not None and not (math.isfinite(sample_fps) and sample_fps > 0):
            raise UsageError(f"sample rate must be a positive number of frames per second, "
                             f"not {sample_fps!r}; use e.g. 5")
        self.path = Path(path)
        self.sample_fps = sample_fps
        self.cropper = cropper if cropper is not None else ContentCropper()
        self.keep_display = keep_display
        self.decoded_frames = 0
        self.converted_frames = 0
        self.analysed_frames = 0
        self.last_pts_s: float | None = None
        self.rotation_deg = 0
        self._container = None
        self._frames = None
        self._pending: av.VideoFrame | None = None
        self._done = False  # no more frames will come from the decoder
        self._ended = False  # the end was reported (None returned or DecodeError raised)
        self.corrupt_frames = 0
        self._expected_end: tuple[float, float] | None = None  # (seconds, tolerance)
        self._t0: float | None = None
        self._next_tick = 0
        self._check_file()
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------------------------

    def _check_file(self) -> None:
        p = self.path
        if not p.exists():
            raise VideoError(f"video file not found: '{p}'; check the path")
        if p.is_dir():
            raise VideoError(f"'{p}' is a directory, not a video file; pass a file inside it")
        if not p.is_file():
            raise VideoError(f"'{p}' is not a regular file; pass a recorded video file "
                             "(use the camera source for devices and streams)")
        try:
            with open(p, "rb") as fh:
                self._head = fh.read(12)
        except OSError as e:
            raise VideoError(f"cannot read '{p}': {e.strerror or e}; check its permissions"
                             ) from e
        if not self._head:
            raise VideoError(f"'{p}' is empty (0 bytes); the recording did not save, "
                             "use another copy")

    def _open(self) -> None:
        p = self.path
        try:
            # Metadata is never used; don't let badly encoded tags stop the open.
            self._container = av.open(str(p), metadata_errors="ignore")
        except av.FFmpegError as e:
            reason = _reason(e)
            if self._head[4:8] == b"ftyp":
                # FFmpeg only logs "moov atom not found"; an MP4 that starts right but
                # does not open has almost always lost its index at the end.
                raise VideoError(f"cannot open '{p}': MP4/MOV file without a usable index "
                                 f"({reason}), usually a recording cut short; use the "
                                 "complete file or repair it with an MP4 recovery tool") from e
            raise VideoError(f"cannot open '{p}' as a video ({reason}); check that it plays "
                             "in a media player, or re-encode it as MP4/H.264") from e
        if not self._container.streams.video:
            raise VideoError(f"'{p}' has no video stream (audio only?); pass a video file")
        stream = self._container.streams.video[0]
        self._stream = stream
        stream.thread_type = DECODER_THREAD_TYPE
        self._time_base = stream.time_base
        self._origin_s = (float(stream.start_time * stream.time_base)
                          if stream.start_time is not None and stream.time_base else None)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        self._fps = fps
        self._frames = self._container.decode(stream)
        # Decode the first frame now: a file that opens but holds nothing decodable is a
        # VideoError (bad input), not a DecodeError part way.
        try:
            first = next(self._frames, None)
        except av.FFmpegError as e:
            raise VideoError(f"cannot decode '{p}' ({_reason(e)}); the video is damaged "
                             "or in an unsupported codec, re-encode it as MP4/H.264") from e
        if first is None:
            raise VideoError(f"'{p}' holds no decodable video frames; check that it plays "
                             "in a media player, or re-encode it as MP4/H.264")
        self._pending = first
        rotation = int(getattr(first, "rotation", 0) or 0)
        if rotation % 90:
            log.warning("'%s': display rotation of %d degrees is not a multiple of 90; "
                        "ignored", p, rotation)
            rotation = 0
        self.rotation_deg = rotation % 360
        width, height = first.width, first.height
        if self.rotation_deg in (90, 270):
            width, height = height, width
        video_s = _video_duration_s(stream)
        container_s = (self._container.duration / av.time_base
                       if self._container.duration else None)
        duration_s = video_s or container_s
        if any(name in _DURATION_TRUSTED_FORMATS
               for name in self._container.format.name.split(",")):
            if video_s:
                frame_s = 1.0 / fps if fps else 0.0
                self._expected_end = (video_s, max(SHORTFALL_S, SHORTFALL_FRACTION * video_s,
                                                   SHORTFALL_FRAMES * frame_s))
            elif container_s:  # may include a longer audio track: be lenient
                self._expected_end = (container_s, max(SHORTFALL_MIXED_S,
                                                       SHORTFALL_MIXED_FRACTION * container_s))
        self.info = SourceInfo(path=str(p), fps=fps, frames=stream.frames or None,
                               duration_s=duration_s, width=width, height=height)
        log.debug("opened %s: %s, codec %s, %s", p, self.info,
                  stream.codec_context.name, stream.codec_context.pix_fmt)

    # -- reading -------------------------------------------------------------------------

    def _next_decoded(self) -> av.VideoFrame | None:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        if self._done:
            return None
        try:
            return next(self._frames, None)
        except av.FFmpegError as e:
            self._done = self._ended = True
            at = f" ({self.last_pts_s:.2f} s)" if self.last_pts_s is not None else ""
            raise DecodeError(
                f"decoding '{self.path}' failed after frame {self.decoded_frames - 1}{at}: "
                f"{_reason(e)}; the file is damaged or cut short, results cover the part "
                "before it", frame_index=self.decoded_frames) from e

    def _pts_s(self, frame: av.VideoFrame) -> float:
        if frame.pts is not None and frame.time_base:
            t = float(Fraction(frame.pts) * frame.time_base)
            if self._origin_s is None or (self.decoded_frames == 0 and t < self._origin_s):
                self._origin_s = t  # no start time, or a first frame before it: start at 0
            return t - self._origin_s
        # No timestamp (rare raw streams): step on from the last one at the nominal rate.
        step = 1.0 / self._fps if self._fps else 1.0 / 25
        return 0.0 if self.last_pts_s is None else self.last_pts_s + step

    def _selected(self, t: float) -> bool:
        if self.sample_fps is None:
            return True
        if self._t0 is None:
            self._t0 = t
        if t < self._t0 + self._next_tick / self.sample_fps - TICK_TOLERANCE_S:
            return False
        # Next tick strictly after this frame: one frame per tick, gaps skip ticks.
        self._next_tick = math.floor((t - self._t0 + TICK_TOLERANCE_S) * self.sample_fps) + 1
        return True

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        self.converted_frames += 1
        return upright(frame.to_ndarray(format="rgb24"), self.rotation_deg)

    def _finish(self) -> None:
        """End of data: raise DecodeError if the container promised clearly more."""
        if self._ended:
            return
        self._ended = self._done = True
        if self.corrupt_frames:
            log.warning("'%s': the decoder flagged %d frame(s) as corrupt (concealed)",
                        self.path, self.corrupt_frames)
        n = self.decoded_frames
        end_s = (self.last_pts_s or 0.0) + (1.0 / self._fps if self._fps else 0.0)
        if self.info.frames and n < self.info.frames:
            # Not an error by itself: an MP4 edit list hides frames the sample table counts.
            log.info("'%s': decoded %d of the %d frames the container lists", self.path, n,
                     self.info.frames)
        if self._expected_end is not None:
            expected_s, tolerance_s = self._expected_end
            if expected_s - end_s > tolerance_s:
                raise DecodeError(
                    f"'{self.path}' ended after {n} frames ({end_s:.1f} s) but its container "
                    f"says {expected_s:.1f} s; the file is damaged or cut short, results "
                    "cover the part before it", frame_index=n)

    def read(self) -> Frame | None:
        """The next analysed frame, or ``None`` at the end; DecodeError if damaged."""
        if self._container is None or self._ended:
            return None
        while True:
            frame = self._next_decoded()
            if frame is None:
                self._finish()
                return None
            captured_ns = time.monotonic_ns()
            index = self.decoded_frames
            t = self._pts_s(frame)
            self.decoded_frames += 1
            if frame.is_corrupt:
                self.corrupt_frames += 1
            self.last_pts_s = t
            if not self._selected(t):
                continue
            rgb = self._to_rgb(frame)
            image = self.cropper(rgb, t)
            self.analysed_frames += 1
            return Frame(index=index, pts_s=t, image=image, captured_ns=captured_ns,
                         display=rgb if self.keep_display else None)

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the file and the decoder; safe to call more than once."""
        self._frames = None
        self._pending = None
        container, self._container = self._container, None
        if container is not None:
            container.close()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r}, sample_fps={self.sample_fps})"
