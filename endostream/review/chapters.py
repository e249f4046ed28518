"""Chapters from sections: WebVTT, FFmpeg metadata, or muxed into a copy of the recording.

One chapter per section (``skip_unusable`` leaves unusable stretches out). The title is
the label as people read it and, where the section is far from all good, its share of
good frames: ``Vocal folds (62% good)``. :func:`mux_chapters` copies every packet of the
recording unchanged (stream copy through PyAV, no re-encoding) into a new ``.mkv`` or
``.mp4`` that carries the chapters, so VLC, mpv or QuickTime list them and jump to them;
the original is never touched, and the copy carries no container metadata unless
``keep_metadata``.

>>> from endostream.segmentation.section import Section
>>> chs = chapters_of([Section("nose", 0.0, 41.3, 0, 1238, 0.86, 0.95),
...                    Section("unusable", 41.3, 45.0, 1239, 1349, 0.1, 0.8)])
>>> [c.title for c in chs]
['Nose (86% good)', 'Unusable']
>>> print(to_webvtt(chs[:1]), end="")
WEBVTT
<BLANKLINE>
1
00:00:00.000 --> 00:00:41.300
Nose (86% good)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from endostream.errors import OutputError, UsageError
from endostream.output.atomic import AtomicFile, write_text_atomic
from endostream.output.palette import display_label
from endostream.procedure.video import open_video, origin_s
from endostream.segmentation.section import UNUSABLE, Section

#: An organ section's title shows its share of good frames when below this: "where
#: useful", a mostly blurred stretch is worth knowing about before jumping there.
SHOW_GOOD_SHARE_BELOW = 0.9
#: Chapter times in the muxed copy and in .ffmeta: milliseconds.
CHAPTER_TIME_BASE = Fraction(1, 1000)
#: Output kinds by file extension.
TEXT_KINDS = (".vtt", ".ffmeta")
MUX_KINDS = (".mkv", ".mp4")


@dataclass(frozen=True)
class Chapter:
    """One chapter: title and ``[start_s, end_s)`` relative to the video stream's start."""

    title: str
    start_s: float
    end_s: float


def chapter_title(section: Section) -> str:
    """``'Nose'``, or ``'Nose (62% good)'`` when few of its frames were good."""
    title = display_label(section.label)
    if section.label != UNUSABLE and section.good_fraction < SHOW_GOOD_SHARE_BELOW:
        title += f" ({section.good_fraction:.0%} good)"
    return title


def chapters_of(sections: Sequence[Section], *, skip_unusable: bool = False) -> list[Chapter]:
    """One chapter per section, in order."""
    return [Chapter(chapter_title(s), float(s.start_s), float(s.end_s)) for s in sections
            if not (skip_unusable and s.label == UNUSABLE) and s.end_s > s.start_s]


def _vtt_time(t: float) -> str:
    ms = int(round(max(t, 0.0) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _vtt_text(text: str) -> str:
    # Cue text is markup: escape it, and keep it on one line (a blank line ends a cue).
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_webvtt(chapters: Sequence[Chapter]) -> str:
    """A WebVTT chapters file (for ``<track kind="chapters">``)."""
    lines = ["WEBVTT", ""]
    for i, c in enumerate(chapters, 1):
        lines += [str(i), f"{_vtt_time(c.start_s)} --> {_vtt_time(c.end_s)}",
                  _vtt_text(c.title), ""]
    return "\n".join(lines)


def _ffmeta_text(text: str) -> str:
    out = " ".join(text.split())
    for ch in "\\=;#":
        out = out.replace(ch, "\\" + ch)
    return out


def to_ffmetadata(chapters: Sequence[Chapter], offset_s: float = 0.0) -> str:
    """An FFmpeg metadata file with the chapters (``ffmpeg -i v.mp4 -i c.ffmeta
    -map_metadata 1 -map_chapters 1 -c copy out.mp4``). ``offset_s`` is the stream start
    in container time; no other metadata is written."""
    lines = [";FFMETADATA1"]
    for c in chapters:
        lines += ["", "[CHAPTER]", "TIMEBASE=1/1000",
                  f"START={_ms(c.start_s + offset_s)}", f"END={_ms(c.end_s + offset_s)}",
                  f"title={_ffmeta_text(c.title)}"]
    return "\n".join(lines) + "\n"


def _ms(t: float) -> int:
    return int(round(t * 1000))


def mux_chapters(video: str | os.PathLike, out: str | os.PathLike,
                 chapters: Sequence[Chapter], *, keep_metadata: bool = False) -> Path:
    """Copy ``video`` into ``out`` (``.mkv``/``.mp4``) with ``chapters``, packets unchanged.

    Video, audio and subtitle streams are copied; data streams (e.g. timecode) are not.
    Raises :class:`OutputError` when the container cannot hold a stream's codec.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in MUX_KINDS:
        raise UsageError(f"cannot mux chapters into '{out.name}'; use .mkv or .mp4")
    with open_video(video) as inp:
        origin = origin_s(inp.streams.video[0])
        streams = [s for s in inp.streams if s.type in ("video", "audio", "subtitle")]
        with AtomicFile(out, open_file=False, suffix=".tmp" + suffix,
                        hint="choose another --out") as target:
            try:
                _copy(inp, streams, target.temp_path, chapters, origin, keep_metadata)
            except av.FFmpegError as e:
                raise OutputError(
                    f"cannot copy '{Path(video).name}' into {suffix} without re-encoding "
                    f"({' '.join(str(e).split())}); try --out with "
                    f"{'.mkv' if suffix == '.mp4' else '.mp4'}") from e
    return out


def _copy(inp, streams, path: Path, chapters, origin: float, keep_metadata: bool) -> None:
    with av.open(str(path), "w") as dst:
        mapping = {}
        for s in streams:
            o = dst.add_stream_from_template(s)
            if keep_metadata:
                o.metadata.update(s.metadata)
            mapping[s.index] = o
        if keep_metadata:
            dst.metadata.update(inp.metadata)
        dst.set_chapters([
            {"id": i, "start": _ms(c.start_s + origin), "end": _ms(c.end_s + origin),
             "time_base": CHAPTER_TIME_BASE, "metadata": {"title": c.title}}
            for i, c in enumerate(chapters, 1)])
        for packet in inp.demux(streams):
            if packet.dts is None and packet.size == 0:
                continue  # the demuxer's end-of-stream marker
            packet.stream = mapping[packet.stream.index]
            dst.mux(packet)


def write_chapters(out: str | os.PathLike, chapters: Sequence[Chapter], *,
                   video: str | os.PathLike | None = None, keep_metadata: bool = False) -> Path:
    """Write ``chapters`` in the kind ``out``'s extension names (.vtt, .ffmeta, .mkv, .mp4).

    ``.ffmeta`` and the muxed kinds need the ``video`` (its time origin, its packets).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".vtt":
        write_text_atomic(out, to_webvtt(chapters), hint="choose another --out")
    elif suffix == ".ffmeta":
        offset = 0.0
        if video is not None:
            with open_video(video) as c:
                offset = origin_s(c.streams.video[0])
        write_text_atomic(out, to_ffmetadata(chapters, offset), hint="choose another --out")
    elif suffix in MUX_KINDS:
        if video is None:
            raise UsageError("a chaptered copy needs the video; pass --video PATH")
        mux_chapters(video, out, chapters, keep_metadata=keep_metadata)
    else:
        raise UsageError(f"unknown chapters kind '{out.suffix or out.name}'; end --out with "
                         ".vtt, .ffmeta, .mkv or .mp4")
    return out
