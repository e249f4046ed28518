"""Sections cut out of the recording, one file each.

By default a clip is a stream copy (no re-encoding, fast, the packets as recorded) that
starts at the keyframe at or before the section's start, since a decoder needs it, so a
clip may begin up to one keyframe interval early (and end a frame late where a frame shown
after the end is a reference of one inside). ``exact`` re-encodes the video (H.264)
to exactly the section's frames. Audio is copied in both cases. Files are named by
number, label and start time only (``03-vocal_folds-41.3s.mp4``); they carry no container
metadata unless ``keep_metadata``.

>>> from endostream.segmentation.section import Section
>>> clip_name(3, Section("vocal_folds", 41.26, 60.0, 1238, 1799, 1.0, 0.9), ".mp4")
'03-vocal_folds-41.3s.mp4'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from endostream.errors import OutputError, UsageError
from endostream.output.atomic import AtomicFile
from endostream.output.guard import same_file
from endostream.output.names import clip_name
from endostream.procedure.video import frame_time_s, open_video, origin_s
from endostream.segmentation.section import Section

#: Containers a clip may be written in; others are turned into Matroska.
CLIP_KINDS = (".mp4", ".mkv", ".mov")
#: Seconds the seek backs off each time it lands after the start (no keyframe at or
#: before the requested time was found); doubled up to the file start.
SEEK_BACKOFF_S = 2.0
#: A stream-copied clip that starts this many seconds or more before its section is
#: reported (it shows another section's frames first); ``--exact`` avoids it.
EARLY_WARN_S = 1.0
#: Encoder of --exact clips, and its quality (x264 CRF: 18 looks like the source).
EXACT_CODEC = "libx264"
EXACT_OPTIONS = {"crf": "18", "preset": "fast"}


def label_key(label: str) -> str:
    """How a typed label is compared with the model's: case and spaces do not matter, so
    ``Ear``, ``ear`` and ``Vocal folds`` (as the report shows it) find their sections.

    >>> label_key("Vocal folds") == label_key("vocal_folds")
    True
    """
    return "_".join(label.casefold().split())


@dataclass(frozen=True)
class WrittenClip:
    """A clip on disk and how far before its section it starts (stream copy: the
    keyframe before the section; 0 for ``exact``)."""

    path: Path
    early_s: float


@dataclass(frozen=True)
class ClipPlan:
    """One clip to write: the section, its number in the procedure, the output path."""

    number: int
    section: Section
    path: Path


def plan_clips(sections: Sequence[Section], out_dir: Path, suffix: str, *,
               labels: Iterable[str] | None = None,
               known_labels: Iterable[str] = ()) -> list[ClipPlan]:
    """The clips for ``sections`` (all, or those whose label matches one of ``labels``,
    see :func:`label_key`). A label that is neither in ``known_labels`` (the model's and
    ``unusable``) nor on a section is refused, naming the labels there are."""
    wanted = {label_key(label) for label in labels} if labels else None
    if wanted is not None:
        known = {*known_labels, *(s.label for s in sections)}
        unknown = sorted(w for w in wanted if w not in {label_key(k) for k in known})
        if unknown:
            raise UsageError(f"no label {', '.join(unknown)} in this model; the labels are: "
                             f"{', '.join(sorted(known))}")
    return [ClipPlan(i, s, out_dir / clip_name(i, s, suffix))
            for i, s in enumerate(sections, 1)
            if (wanted is None or label_key(s.label) in wanted) and s.end_s > s.start_s]


def write_clip(video: str | os.PathLike, plan: ClipPlan, *, exact: bool = False,
               keep_metadata: bool = False) -> WrittenClip:
    """Cut ``plan.section`` out of ``video`` into ``plan.path`` (atomically)."""
    if same_file(plan.path, video):
        raise UsageError(f"'{plan.path}' is the recording itself; choose another --out-dir")
    suffix = plan.path.suffix.lower()
    with open_video(video) as inp, AtomicFile(plan.path, open_file=False,
                                              suffix=".tmp" + suffix,
                                              hint="choose another --out-dir") as target:
        try:
            with av.open(str(target.temp_path), "w") as out:
                if keep_metadata:
                    out.metadata.update(inp.metadata)
                first_s = _cut(inp, out, plan.section, exact=exact,
                               keep_metadata=keep_metadata)
        except av.FFmpegError as e:
            raise OutputError(f"cannot write clip '{plan.path.name}' "
                              f"({' '.join(str(e).split())}); try --format mkv") from e
    early = plan.section.start_s - first_s if first_s is not None else 0.0
    return WrittenClip(plan.path, max(early, 0.0))


def _seek_to_keyframe(inp, vs, start_s: float, origin: float) -> None:
    """Seek so that demuxing starts at a keyframe at or before ``start_s``."""
    back = 0.0
    while True:
        target = max(start_s - back, 0.0)
        inp.seek(int((target + origin) / vs.time_base), stream=vs, backward=True)
        first = next((p for p in inp.demux(vs) if p.size and p.pts is not None), None)
        first_s = float(first.pts * vs.time_base) - origin if first is not None else None
        if first is None or target == 0.0 or (first.is_keyframe and first_s <= start_s + 1e-6):
            inp.seek(int((target + origin) / vs.time_base), stream=vs, backward=True)
            return
        back = SEEK_BACKOFF_S if back == 0.0 else 2 * back


def _cut(inp, out, section: Section, *, exact: bool, keep_metadata: bool) -> float | None:
    """Copy or encode the section; return the container time the clip starts at."""
    vs = inp.streams.video[0]
    audio = list(inp.streams.audio)
    origin = origin_s(vs)
    start_s, end_s = float(section.start_s), float(section.end_s)
    _seek_to_keyframe(inp, vs, start_s, origin)
    ovs = _video_output(out, vs, exact, keep_metadata)
    oas = {}
    for a in audio:
        oas[a.index] = out.add_stream_from_template(a)
        if keep_metadata:
            oas[a.index].metadata.update(a.metadata)
    shift_s: float | None = None  # container time that becomes 0 in the clip
    video_done = False
    audio_done = {a.index: False for a in audio}
    first_pts = None
    tail: list = []  # copied video packets shown after the end, held back
    for packet in inp.demux(vs, *audio):
        if packet.size == 0 or packet.pts is None:
            if exact and packet.stream.type == "video" and not video_done:
                # The end of the file: the decoder still holds its last frames.
                first_pts, shift_s = _encode_range(packet, out, ovs, origin, start_s, end_s,
                                                   first_pts, shift_s)
            continue
        t = float(packet.pts * packet.time_base) - origin
        if packet.stream.type == "video":
            if video_done:
                continue
            dts_s = float((packet.dts if packet.dts is not None else packet.pts)
                          * packet.time_base) - origin
            if dts_s >= end_s - 1e-6:
                video_done = True
                if exact:
                    _flush(out, ovs)
            elif exact:
                first_pts, shift_s = _encode_range(packet, out, ovs, origin, start_s, end_s,
                                                   first_pts, shift_s)
            else:
                if shift_s is None:
                    shift_s = t
                offset = int(round(shift_s / float(vs.time_base)))
                packet.pts -= offset
                if packet.dts is not None:
                    packet.dts -= offset
                packet.stream = ovs
                # A frame shown after the end is kept only when a later packet (in decode
                # order) shows before the end and may refer to it.
                if t >= end_s - 1e-6:
                    tail.append(packet)
                    continue
                for held in tail:
                    out.mux(held)
                tail.clear()
                out.mux(packet)
        else:
            if shift_s is None or audio_done[packet.stream.index]:
                continue  # audio before the first video frame of the clip is dropped
            if t >= end_s:
                audio_done[packet.stream.index] = True
                continue
            if t < shift_s:
                continue
            offset = int(round(shift_s / float(packet.time_base)))
            packet.pts -= offset
            if packet.dts is not None:
                packet.dts -= offset
            packet.stream = oas[packet.stream.index]
            out.mux(packet)
        if video_done and all(audio_done.values()):
            break
    if exact and not video_done:
        _flush(out, ovs)
    return shift_s


def _encode_range(packet, out, ovs, origin: float, start_s: float, end_s: float,
                  first_pts: int | None, shift_s: float | None):
    """Decode ``packet``; encode the frames inside ``[start_s, end_s)`` from pts 0."""
    for frame in packet.decode():
        ft = frame_time_s(frame, origin)
        if ft is None or not (start_s - 1e-6 <= ft < end_s - 1e-6):
            continue
        if first_pts is None:
            first_pts, shift_s = frame.pts, ft
        frame.pts -= first_pts
        for p in ovs.encode(frame):
            out.mux(p)
    return first_pts, shift_s


def _video_output(out, vs, exact: bool, keep_metadata: bool):
    if not exact:
        ovs = out.add_stream_from_template(vs)
    else:
        rate = vs.average_rate or vs.guessed_rate or Fraction(25)
        ovs = out.add_stream(EXACT_CODEC, rate=rate)
        cc = vs.codec_context
        ovs.width, ovs.height = cc.width - cc.width % 2, cc.height - cc.height % 2
        ovs.pix_fmt = "yuv420p"
        ovs.options = dict(EXACT_OPTIONS)
        ovs.codec_context.time_base = vs.time_base
        ovs.time_base = vs.time_base
    if keep_metadata:
        ovs.metadata.update(vs.metadata)
    return ovs


def _flush(out, ovs) -> None:
    for p in ovs.encode():
        out.mux(p)
