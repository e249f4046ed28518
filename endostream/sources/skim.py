"""SkimSource: a recorded video read as its dense sampling ticks, decoding as little as it can.

Where :class:`~endostream.sources.file.FileSource` hands out analysed frames ready for the
model, this hands out the raw decoded frame at each sampling tick (``sample_fps``), marks
every ``coarse_every``-th tick as coarse, and converts a tick to a model input only when
asked (:meth:`SkimSource.convert`): a coarse-to-fine analysis converts the coarse ticks and
only those dense ticks where the answer can change.

Decoding less: where a dense tick is at least :data:`SKIP_MIN_FRAMES` frame periods apart,
the decoder is told to skip non-reference frames (``skip_frame="NONREF"``: the B-frames of
H.264/HEVC/MPEG-4, nothing in intra-only or single-reference streams), which nothing else
depends on. A tick then takes the first decoded frame at or after it, at most a frame or
two later than a full decode would take. The decoder's frame count no longer counts every
frame, so frame indices come from the container instead: a demux-only scan (no decoding,
~5 ms per minute of 720p) lists every packet's timestamp, and a frame's index is the rank of
its timestamp. The scan is used only where it is clean (a known codec in a container with
exact timestamps, every packet timestamped, no repeats); each decoded frame's timestamp
must then be in it and ranked after the previous one, otherwise :class:`IndexMismatch` is
raised and the caller decodes again without skipping. Without a clean scan every frame is
decoded and the index is the decoder's count, exactly as in ``FileSource``.

>>> with SkimSource("procedure.mp4", sample_fps=5.0, coarse_every=5) as src:  # doctest: +SKIP
...     tick = src.read_tick()
...     tick.index, tick.pts_s, tick.coarse, src.convert(tick).image.shape
(0, 0.0, True, (224, 224, 3))
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

import av

from endostream.crop import ContentCropper
from endostream.errors import EndostreamError
from endostream.frames import Frame
from endostream.sources.file import DEFAULT_SAMPLE_FPS, FileSource

log = logging.getLogger(__name__)

#: Skip non-reference frames only where dense ticks are at least this many frame periods
#: apart: a tick that lands on a skipped frame takes the next decoded one, which must not
#: reach the next tick.
SKIP_MIN_FRAMES = 3.0

#: Codecs whose non-reference frames FFmpeg really skips, and whose packets are one frame
#: each (so the packet scan counts frames).
SKIP_CODECS = frozenset({"h264", "hevc", "mpeg4", "mpeg2video", "mpeg1video"})

#: Containers whose packets carry exact presentation timestamps (MPEG-PS/TS are left out:
#: their timestamps wrap and their streams often start mid-GOP).
SKIP_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "avi"})


class IndexMismatch(EndostreamError):
    """A decoded frame's timestamp is not where the packet scan put it; decode again
    without skipping (the caller does so)."""


@dataclass(frozen=True)
class Tick:
    """The decoded frame at one sampling tick, not yet converted."""

    index: int
    pts_s: float
    coarse: bool
    captured_ns: int
    frame: av.VideoFrame = field(repr=False)


def scan_frame_ranks(path: str | os.PathLike) -> dict[int, int] | None:
    """Presentation rank of every video packet's timestamp, from a demux-only pass, or
    ``None`` where the scan cannot be trusted (see the module docstring)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            stream = container.streams.video[0]
            if stream.codec_context.name not in SKIP_CODECS or not any(
                    name in SKIP_FORMATS for name in container.format.name.split(",")):
                return None
            stamps = []
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's flush packet
                if packet.is_discard:
                    continue  # hidden by an edit list: the decoder drops its frame too
                if packet.pts is None or packet.is_corrupt:
                    return None
                stamps.append(int(packet.pts))
    except (av.FFmpegError, IndexError, OSError) as e:
        log.debug("packet scan of %s failed (%s): decoding every frame", path, e)
        return None
    if not stamps or len(set(stamps)) != len(stamps):
        return None
    return {pts: rank for rank, pts in enumerate(sorted(stamps))}


class SkimSource(FileSource):
    """The dense ticks of a video (:class:`Tick`), every ``coarse_every``-th one coarse.

    ``skip`` allows skipping non-reference frames where it is safe (module docstring).
    ``position`` is the number of frames decoding has gone past (the last decoded
    frame's index + 1), ``frames_total`` the frame count once the end was reached.
    ``skipping`` says whether non-reference frames are being skipped.
    """

    def __init__(self, path: str | os.PathLike, *, sample_fps: float = DEFAULT_SAMPLE_FPS,
                 coarse_every: int = 5, cropper: ContentCropper | None = None,
                 keep_display: bool = False, skip: bool = True):
        super().__init__(path, sample_fps=sample_fps, cropper=cropper,
                         keep_display=keep_display)
        self.coarse_every = max(int(coarse_every), 1)
        self.position = 0
        self._ticks = 0
        self._ranks: dict[int, int] | None = None
        try:
            fps = self.info.fps
            if skip and fps and fps / sample_fps >= SKIP_MIN_FRAMES:
                self._ranks = scan_frame_ranks(self.path)
                if self._ranks is not None:
                    self._stream.codec_context.skip_frame = "NONREF"
        except BaseException:
            self.close()
            raise

    @property
    def skipping(self) -> bool:
        return self._ranks is not None

    @property
    def frames_total(self) -> int:
        """Frames in the video as far as decoding went; all of them after the end."""
        if self._ranks is not None and self._ended:
            return len(self._ranks)
        return self.position

    def _index_of(self, frame: av.VideoFrame) -> int:
        if self._ranks is None:
            return self.decoded_frames
        rank = self._ranks.get(frame.pts) if frame.pts is not None else None
        if rank is None or rank < self.position:
            raise IndexMismatch(f"'{self.path}': decoded frame at pts {frame.pts} is not where "
                                "the packet scan put it")
        return rank

    def _finish(self) -> None:
        # The end checks and their messages count frames gone through, skipped ones too.
        decoded, self.decoded_frames = self.decoded_frames, max(self.position,
                                                                self.decoded_frames)
        try:
            super()._finish()
        finally:
            self.decoded_frames = decoded

    def read_tick(self) -> Tick | None:
        """The next tick's frame, or ``None`` at the end; DecodeError if damaged."""
        if self._container is None or self._ended:
            return None
        while True:
            frame = self._next_decoded()
            if frame is None:
                self._finish()
                return None
            captured_ns = time.monotonic_ns()
            index = self._index_of(frame)
            t = self._pts_s(frame)
            self.decoded_frames += 1
            self.position = index + 1
            if frame.is_corrupt:
                self.corrupt_frames += 1
            self.last_pts_s = t
            if not self._selected(t):
                continue
            coarse = self._ticks % self.coarse_every == 0
            self._ticks += 1
            return Tick(index, t, coarse, captured_ns, frame)

    def read(self) -> Frame | None:
        """Every tick, converted (a dense run through this source)."""
        tick = self.read_tick()
        return None if tick is None else self.convert(tick)

    def convert(self, tick: Tick) -> Frame:
        """The model input of ``tick`` (and its upright picture with ``keep_display``)."""
        rgb = self._to_rgb(tick.frame)
        image = self.cropper(rgb, tick.pts_s)
        self.analysed_frames += 1
        return Frame(index=tick.index, pts_s=tick.pts_s, image=image,
                     captured_ns=tick.captured_ns, display=rgb if self.keep_display else None)
