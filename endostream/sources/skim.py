"""SkimSource: a recorded video read as its dense sampling ticks, decoding as little as it can.

Where :class:`~endostream.sources.file.FileSource` hands out analysed frames ready for the
model, this hands out the raw decoded frame at each sampling tick (``sample_fps``), marks
every ``coarse_every``-th tick as coarse, and converts a tick to a model input only when
asked (:meth:`SkimSource.convert`): a coarse-to-fine analysis converts the coarse ticks and
only those dense ticks where the answer can change.

Decoding less: where a dense tick is at least :data:`SKIP_MIN_FRAMES` frame periods apart,
the decoder is told to skip non-reference frames (``skip_frame="NONREF"``: the B-frames of
H.264/HEVC/MPEG-4, nothing in intra-only or single-reference streams), which nothing else
depends on. A tick then takes the first decoded frame at or after it: later than a full
decode's choice by the non-reference frames in a row (one with x264's B-frame pyramid, up
to three with plain B-frames). The decoder's frame count no longer counts every
frame, so frame indices come from the container instead: a demux-only pass over the
packets (:class:`FrameRanks`, no decoding) runs just ahead of the decoder, and a frame's
index is the rank of its timestamp among all packets'. It is used only for a known codec
in a container with exact timestamps, and only while it is clean (every packet
timestamped, none repeated); each decoded frame's timestamp must be where it put it,
otherwise :class:`IndexMismatch` is raised and the caller decodes again without
skipping. Without it every frame is decoded and the index is the decoder's count,
exactly as in ``FileSource``.

>>> with SkimSource("procedure.mp4", sample_fps=5.0, coarse_every=5) as src:  # doctest: +SKIP
...     tick = src.read_tick()
...     tick.index, tick.pts_s, tick.coarse, src.convert(tick).image.shape
(0, 0.0, True, (224, 224, 3))
"""

from __future__ import annotations

import bisect
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


#: Packets the rank scan reads past the first one decoded after a frame's time before it
#: ranks that frame: a margin over the deepest B-frame reordering (16 frames in H.264).
REORDER_SLACK = 32


class FrameRanks:
    """Presentation rank of each frame's timestamp, from a demux-only pass over the
    video's packets that runs just ahead of decoding (no decoding, nothing read twice
    from far apart, so the page cache serves the decoder).

    A packet's decode time is never after its presentation time, and packets come in
    decode order: once packets decoded after time P have been read, every frame shown
    before P has been seen, and P's rank is final. :attr:`clean` turns false (and
    :meth:`rank` answers ``None``) at a packet without a timestamp, a corrupt one, or a
    timestamp seen twice.
    """

    def __init__(self, container: av.container.InputContainer):
        self._container = container
        self._packets = container.demux(container.streams.video[0])
        self._pts: list[int] = []  # sorted
        self._dts: list[int] = []  # in decode order, so sorted
        self._done = False
        self.clean = True

    def _read(self) -> bool:
        """Read one more packet; False at the end."""
        for packet in self._packets:
            if packet.size == 0 or packet.is_discard:
                continue  # the flush packet; a frame an edit list hides (never decoded)
            pts, dts = packet.pts, packet.dts
            if pts is None or packet.is_corrupt:
                self.clean = False
                return False
            dts = pts if dts is None else dts
            at = bisect.bisect_left(self._pts, pts)
            if at < len(self._pts) and self._pts[at] == pts or (self._dts and dts < self._dts[-1]):
                self.clean = False
                return False
            self._pts.insert(at, int(pts))
            self._dts.append(int(dts))
            return True
        self._done = True
        return False

    def rank(self, pts: int | None) -> int | None:
        """The rank of the frame shown at ``pts`` among all frames; ``None`` if there is
        no such packet or the scan is not clean."""
        if pts is None:
            return None
        while self.clean and not self._done and \
                len(self._dts) - bisect.bisect_right(self._dts, pts) < REORDER_SLACK:
            if not self._read():
                break
        at = bisect.bisect_left(self._pts, pts)
        ok = self.clean and at < len(self._pts) and self._pts[at] == pts
        return at if ok else None

    def total(self) -> int | None:
        """Frames in the whole video (reads to the end); ``None`` if the scan is not clean."""
        while self.clean and self._read():
            pass
        return len(self._pts) if self.clean else None

    def close(self) -> None:
        self._packets = None
        self._container.close()


def scan_frame_ranks(path: str | os.PathLike) -> FrameRanks | None:
    """The rank scan of ``path``'s video, or ``None`` where its codec or container is not
    one whose packets can be trusted for it (see the module docstring)."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as e:
        log.debug("packet scan of %s failed (%s): decoding every frame", path, e)
        return None
    stream = container.streams.video[0] if container.streams.video else None
    if stream is None or stream.codec_context.name not in SKIP_CODECS or not any(
            name in SKIP_FORMATS for name in container.format.name.split(",")):
        container.close()
        return None
    return FrameRanks(container)


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
        self._ranks: FrameRanks | None = None
        try:
            fps = self.info.fps
            if skip and fps and fps / sample_fps >= SKIP_MIN_FRAMES:
                self._ranks = scan_frame_ranks(self.path)
                if self._ranks is not None:
                    self._stream.codec_context.skip_frame = "NONREF"
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        ranks, self._ranks = getattr(self, "_ranks", None), None
        if ranks is not None:
            ranks.close()
        super().close()

    @property
    def skipping(self) -> bool:
        return self._ranks is not None

    @property
    def frames_total(self) -> int:
        """Frames in the video as far as decoding went; all of them after the end."""
        if self._ranks is not None and self._ended:
            return max(self._ranks.total() or 0, self.position)
        return self.position

    def _index_of(self, frame: av.VideoFrame) -> int:
        if self._ranks is None:
            return self.decoded_frames
        rank = self._ranks.rank(frame.pts)
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
