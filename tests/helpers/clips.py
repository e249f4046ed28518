"""Short test videos encoded with PyAV, and frames that say which frame they are.

Tests make their own inputs: a handful of frames, encoded into ``tmp_path`` in well under a
second. The frames from :func:`index_frame` carry their frame number as eight big black or
white cells, so after any lossy codec :func:`read_index` tells which source frame a
decoded frame was - that is how tests check sampling, ordering and drops.

>>> from pathlib import Path; import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> path = encode_clip(d / "a.mp4", [index_frame(i) for i in range(10)], fps=25)
>>> path.name
'a.mp4'
>>> p = encode_format(d, "gray", index_frames(5, 97, 61))    # any recipe in FORMATS
>>> p.suffix
'.mkv'

Recipes in :data:`FORMATS` (all checked with PyAV 18.1 / FFmpeg 8):

========  ======  ==========  ===========  =============================================
name      file    codec       pix_fmt      notes
========  ======  ==========  ===========  =============================================
mp4       .mp4    libx264     yuv420p      the common case; B-frames, 1/12800 time base
faststart .mp4    libx264     yuv420p      ``moov`` at the front: a cut file still opens
mkv       .mkv    libx264     yuv420p      Matroska: 1 ms time base, no frame count
avi       .avi    mpeg4       yuv420p      AVI / MPEG-4 part 2; odd sizes work
mpg       .mpg    mpeg2video  yuv420p      MPEG-PS; stream starts at 0.54 s, no frame count
gif       .gif    gif         rgb8         animated GIF, decodes as bgra (pal8 won't encode)
gray      .mkv    ffv1        gray         decodes as gray (libx264 'gray' decodes as yuv)
10bit     .mp4    libx264     yuv420p10le  High 10
hevc10    .mp4    libx265     yuv420p10le  HEVC Main 10 (noisy on stderr)
odd       .mkv    ffv1        yuv420p      lossless, any size incl. 97x61
webm      .webm   libvpx-vp9  yuv420p      VP9
========  ======  ==========  ===========  =============================================

Variable frame rate: pass ``pts`` (in ``time_base`` units, default 1/1000 s) - the encoder
time base is set to match, so the container keeps exactly those times. Rotation: pass
``rotation`` (degrees counter-clockwise, written as display-matrix side data).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.video.stream
import numpy as np

#: Grey levels of a 0 and a 1 cell in :func:`index_frame` (far from 0/255 so limited-range
#: YUV round trips and GIF palettes keep them apart).
CELL_LEVELS = (30, 220)
#: Cells in :func:`index_frame`: 4 columns x 2 rows = 8 bits, frame numbers 0..255.
INDEX_BITS = 8


@dataclass(frozen=True)
class ClipFormat:
    """One encoding recipe: file suffix, encoder, pixel format, encoder/muxer options."""

    suffix: str
    codec: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)


#: Named recipes for :func:`encode_format` (see the table in the module docstring).
FORMATS: dict[str, ClipFormat] = {
    "mp4": ClipFormat(".mp4", "libx264", "yuv420p"),
    "faststart": ClipFormat(".mp4", "libx264", "yuv420p",
                            container_options={"movflags": "+faststart"}),
    "mkv": ClipFormat(".mkv", "libx264", "yuv420p"),
    "avi": ClipFormat(".avi", "mpeg4", "yuv420p", options={"qscale": "3"}),
    "mpg": ClipFormat(".mpg", "mpeg2video", "yuv420p", options={"qscale": "3"}),
    "gif": ClipFormat(".gif", "gif", "rgb8"),
    "gray": ClipFormat(".mkv", "ffv1", "gray"),
    "10bit": ClipFormat(".mp4", "libx264", "yuv420p10le"),
    "hevc10": ClipFormat(".mp4", "libx265", "yuv420p10le",
                         options={"x265-params": "log-level=error"}),
    "odd": ClipFormat(".mkv", "ffv1", "yuv420p"),
    "webm": ClipFormat(".webm", "libvpx-vp9", "yuv420p"),
}


def index_frame(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    """An RGB uint8 frame whose 8 cells spell ``i`` in binary (cell 0 = lowest bit).

    >>> read_index(index_frame(37, 97, 61))
    37
    """
    if not 0 <= i < 2 ** INDEX_BITS:
        raise ValueError(f"index_frame holds 0..{2 ** INDEX_BITS - 1}, not {i}")
    img = np.empty((height, width, 3), np.uint8)
    for bit in range(INDEX_BITS):
        y0, y1, x0, x1 = _cell(bit, width, height)
        img[y0:y1, x0:x1] = CELL_LEVELS[(i >> bit) & 1]
    return img


def index_frames(n: int, width: int = 64, height: int = 48) -> list[np.ndarray]:
    """``[index_frame(0), ..., index_frame(n - 1)]``."""
    return [index_frame(i, width, height) for i in range(n)]


def read_index(image: np.ndarray) -> int:
    """The number :func:`index_frame` wrote into ``image`` (RGB or grey, any codec)."""
    grey = image if image.ndim == 2 else image[..., :3].mean(axis=2)
    h, w = grey.shape
    value = 0
    for bit in range(INDEX_BITS):
        y0, y1, x0, x1 = _cell(bit, w, h)
        # Middle half of the cell: away from edges that codecs blur.
        cy, cx = (y1 - y0) // 4, (x1 - x0) // 4
        level = grey[y0 + cy:y1 - cy, x0 + cx:x1 - cx].mean()
        value |= int(level > sum(CELL_LEVELS) / 2) << bit
    return value


def _cell(bit: int, width: int, height: int) -> tuple[int, int, int, int]:
    col, row = bit % 4, bit // 4
    return (row * height // 2, (row + 1) * height // 2,
            col * width // 4, (col + 1) * width // 4)


def display_matrix_unsupported() -> str | None:
    """Why a display matrix cannot be written here, or None: PyAV before 18.1 has no
    ``VideoStream.set_display_rotation``. Reading one needs only the floor (PyAV 16), so
    only the tests that must write one skip on older PyAV, with this reason."""
    if hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        return None
    return (f"PyAV {av.__version__} cannot write a display matrix (VideoStream."
            "set_display_rotation came in 18.1); reading one is tested with newer PyAV")


def encode_clip(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray] | Callable[[int], np.ndarray],
    *,
    n_frames: int | None = None,
    fps: float = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` (uint8 RGB ``[H, W, 3]`` or grey ``[H, W]``) into ``path``.

    ``frames`` is an iterable of arrays, or a function of the frame number called for
    ``0 .. n_frames - 1``. Constant frame rate by default; with ``pts`` (one int per frame,
    in ``time_base`` units, default 1/1000 s) the clip has exactly those timestamps
    (variable frame rate). ``rotation`` writes a display matrix (degrees
    counter-clockwise, as ``VideoFrame.rotation`` reads it back). Returns ``Path(path)``.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "vfr.mkv"
    >>> _ = encode_clip(p, index_frames(3), pts=[0, 40, 250])
    >>> with av.open(str(p)) as c:
    ...     [f.pts for f in c.decode(video=0)]
    [0, 40, 250]
    """
    path = Path(path)
    if callable(frames):
        if n_frames is None:
            raise ValueError("give n_frames with a frame function")
        fn = frames
        frames = (fn(i) for i in range(n_frames))
    if pts is not None and time_base is None:
        time_base = Fraction(1, 1000)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = dict(options)
        if time_base is not None:
            # Both: the encoder rescales frame pts into its own time base, and would
            # round VFR timestamps onto the 1/fps grid otherwise.
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        count = 0
        for i, image in enumerate(frames):
            image = np.ascontiguousarray(image)
            if count == 0:
                stream.height, stream.width = image.shape[:2]
            fmt = "gray" if image.ndim == 2 else "rgb24"
            frame = av.VideoFrame.from_ndarray(image, format=fmt)
            if pts is not None:
                frame.pts = int(pts[i])
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        if count == 0:
            raise ValueError("no frames to encode")
        for packet in stream.encode():
            container.mux(packet)
    return path


def encode_format(
    directory: str | os.PathLike,
    name: str,
    frames: Iterable[np.ndarray] | Callable[[int], np.ndarray],
    *,
    stem: str | None = None,
    **kwargs,
) -> Path:
    """Encode with the recipe ``FORMATS[name]`` into ``directory/<stem or name><suffix>``.

    Extra keyword arguments go to :func:`encode_clip` (``fps``, ``pts``, ``rotation``...).
    """
    recipe = FORMATS[name]
    path = Path(directory) / f"{stem or name}{recipe.suffix}"
    kwargs.setdefault("options", recipe.options)
    kwargs.setdefault("container_options", recipe.container_options)
    return encode_clip(path, frames, codec=recipe.codec, pix_fmt=recipe.pix_fmt, **kwargs)


def truncated_copy(src: str | os.PathLike, dst: str | os.PathLike, fraction: float) -> Path:
    """Copy the first ``fraction`` of ``src``'s bytes to ``dst`` (a recording cut short)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def damaged_copy(src: str | os.PathLike, dst: str | os.PathLike, *, at: float = 0.5,
                 nbytes: int = 2000, seed: int = 0) -> Path:
    """Copy ``src`` to ``dst`` with ``nbytes`` random bytes written at ``at`` (0..1) of it."""
    data = bytearray(Path(src).read_bytes())
    start = int(len(data) * at)
    junk = np.random.default_rng(seed).integers(0, 256, nbytes, np.uint8).tobytes()
    data[start:start + nbytes] = junk[: max(0, len(data) - start)]
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def trimmed_copy(src: str | os.PathLike, dst: str | os.PathLike, skip_s: float) -> Path:
    """Remux MP4 ``src`` so its first ``skip_s`` seconds are hidden by an edit list.

    Like ``ffmpeg -ss`` with ``-c copy``: every packet is kept (decoding needs them), the
    timestamps move so the first shown frame is at 0, and the MP4 muxer writes an edit
    list. The sample table still counts the hidden frames, so ``stream.frames`` is larger
    than what a decoder outputs - a valid file, not a damaged one.
    """
    with av.open(str(src)) as inp:
        ist = inp.streams.video[0]
        shift = int(Fraction(skip_s).limit_denominator(1000) / ist.time_base)
        with av.open(str(dst), "w") as out:
            ost = out.add_stream_from_template(ist)
            for packet in inp.demux(ist):
                if packet.size == 0:
                    continue
                packet.pts -= shift
                packet.dts -= shift
                packet.stream = ost
                out.mux(packet)
    return Path(dst)


def encode_audio_only(path: str | os.PathLike, seconds: float = 0.5) -> Path:
    """An AAC file with no video stream (e.g. ``x.m4a``): opens fine, holds no video."""
    rate, chunk = 44100, 1024
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        for i in range(int(seconds * rate / chunk) + 1):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, chunk), np.float32),
                                               format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, i * chunk
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def frames_of(path: str | os.PathLike) -> list[tuple[int | None, np.ndarray]]:
    """Every frame of ``path`` as ``(pts, rgb)`` decoded plainly with PyAV (a reference)."""
    with av.open(str(path)) as container:
        return [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
