"""Label Studio round trip: sections as tasks to correct, corrected tasks as sections files.

Label Studio's ``<Video>`` with a ``<TimelineLabels>`` control labels spans of frames. Each
sections file becomes one task: the video's URL, its frame rate (``$fps``, read by the
``frameRate`` attribute), the sections as a *prediction* (one timeline region per
section) and the original document, so that the export alone can be turned back into a
corrected ``sections.json`` (:func:`corrected_documents`).

Label Studio's frame convention, read from its own code (label-studio 1.23.2 from PyPI:
``web/dist/apps/labelstudio/358.js``, the bundle of ``web/libs/editor/src/tags/object/
Video/Video.js``, ``components/VideoCanvas/VideoCanvas.tsx`` and
``regions/TimelineRegion.js``):

- frames are numbered from **1**: the video's frame range is ``{start: 1, end: length}``
  (``fullFrameRange``) with ``length = ceil(duration × frameRate)``, and frame ``k`` is
  shown at time ``(k - 1) / frameRate`` (``goToFrame``);
- a timeline range ``{start, end}`` is **inclusive** at both ends (a one-frame region has
  ``start == end``);
- the rate is **one fixed number** per video (``frameRate``, default 24): Label Studio
  does not read the video's timestamps.

So endostream's decoder frame ``f`` (0-based, inclusive ranges) is Label Studio's frame
``f + 1``, exactly, but only for a video whose frames really come at one fixed rate from
time 0: :func:`check_constant_rate` refuses the others with the ffmpeg command that makes
such a copy (segment the copy, then export it), never shifting frames silently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from endostream.corrections.names import corrected_file_name
from endostream.corrections.rules import (
    CORRECTED_SUFFIX,
    allowed_labels,
    frame_time,
    reviewed_document,
)
from endostream.errors import CorrectionsError, UsageError, VideoError
from endostream.output.document import SectionsDocument
from endostream.output.names import percent_encode
from endostream.output.palette import label_hex
from endostream.procedure.video import open_video
from endostream.segmentation.section import Section

log = logging.getLogger(__name__)

#: Label Studio's number of a video's first frame (endostream's frame 0).
LS_FIRST_FRAME = 1
#: Names in the labelling config; the import reads regions of this control only.
CONTROL, OBJECT = "sections", "video"
#: Label Studio's timeline is ``ceil(duration × rate)`` frames long: it may run this many
#: frames past the video's last frame, and a region may end there.
TIMELINE_SLACK_FRAMES = 1
#: ``review.tool`` of a corrected file made from a Label Studio export.
TOOL = "label-studio"
#: Frame intervals may differ from 1/fps by this share and still count as one rate
#: (timestamps are rounded to the container's time base).
RATE_TOLERANCE = 0.01


def ls_frame(frame: int) -> int:
    """Label Studio's number of endostream's decoder frame ``frame``.

    >>> ls_frame(0), ls_frame(129)
    (1, 130)
    """
    return frame + LS_FIRST_FRAME


def labelling_config(labels: Sequence[str], organ_labels: Sequence[str]) -> str:
    """The labelling config to paste into the project's settings (Labeling Interface →
    Code): the video at the task's own frame rate and one timeline label per label.

    >>> print(labelling_config(["ear", "unusable"], ["ear"]))  # doctest: +ELLIPSIS
    <View>
    ...
      <Video name="video" value="$video" frameRate="$fps" timelineHeight="120"/>
      <TimelineLabels name="sections" toName="video">
        <Label value="ear" background="#E69F00"/>
    ...
    """
    lines = ["<View>",
             '  <Header value="Correct the sections: drag a boundary, relabel a region, '
             'split or join regions; every frame needs exactly one label."/>',
             f'  <Video name="{OBJECT}" value="$video" frameRate="$fps" timelineHeight="120"/>',
             f'  <TimelineLabels name="{CONTROL}" toName="{OBJECT}">']
    for label in labels:
        lines.append(f"    <Label value={quoteattr(label)} "
                     f"background={quoteattr(label_hex(label, list(organ_labels)))}/>")
    lines += ["  </TimelineLabels>", "</View>"]
    return "\n".join(lines)


def _cfr_hint(video: Path, fps: float) -> str:
    rate = f"{fps:g}" if fps else "30"
    copy = f"{video.stem}-cfr.mp4"  # in the current folder: the video's may be read-only
    # pad: H.264 in 4:2:0 (what browsers play) needs even sizes; one black row or column
    # is outside the field of view anyway.
    return (f"make a constant-rate copy that starts at 0 with 'ffmpeg -i {video} -vf "
            f"\"fps={rate},setpts=PTS-STARTPTS,pad=ceil(iw/2)*2:ceil(ih/2)*2\" -c:v libx264 "
            f"-pix_fmt yuv420p -crf 18 -an {copy}', segment the copy and export that")


def check_constant_rate(video: Path, fps: float | None) -> None:
    """Refuse (:class:`VideoError`, exit 3) a video whose frames do not come at one fixed
    rate ``fps`` from time 0: Label Studio would count other frames than the decoder.

    Reads packet timestamps only (no decoding).
    """
    if not fps:
        raise VideoError(f"the sections of '{video}' give no frame rate; Label Studio needs "
                         f"one: {_cfr_hint(video, 0.0)}")
    container = open_video(video)
    try:
        stream = container.streams.video[0]
        tb = stream.time_base
        pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size)
    finally:
        container.close()
    if not pts or not tb:
        raise VideoError(f"'{video}' has no frame timestamps; {_cfr_hint(video, fps)}")
    step = 1.0 / fps
    first_s = float(pts[0] * Fraction(tb))
    if abs(first_s) > step / 2:
        raise VideoError(f"'{video}' starts at {first_s:.3f} s, not at 0 (Label Studio "
                         f"counts frames from 0 s); {_cfr_hint(video, fps)}")
    intervals = [float((b - a) * Fraction(tb)) for a, b in zip(pts, pts[1:], strict=False)]
    off = [d for d in intervals if abs(d - step) > step * RATE_TOLERANCE]
    if off:
        raise VideoError(f"'{video}' has a variable frame rate ({len(off)} of "
                         f"{len(intervals)} frame intervals are not 1/{fps:g} s, e.g. "
                         f"{off[0] * 1000:.1f} ms); {_cfr_hint(video, fps)}")


def task_of(doc: SectionsDocument, video_url: str,
            sections_name: str | None = None) -> dict[str, Any]:
    """One Label Studio task: the video, its rate, the sections as a prediction and the
    document itself (under ``data.endostream``, its recording's fingerprint included) for
    the way back, with the sections file's name (``data.sections_file``), which names the
    corrected file."""
    results = [{"id": f"s{i}", "from_name": CONTROL, "to_name": OBJECT,
                "type": "timelinelabels",
                "value": {"ranges": [{"start": ls_frame(s.start_frame),
                                      "end": ls_frame(s.end_frame)}],
                          "timelinelabels": [s.label]}}
               for i, s in enumerate(doc.sections)]
    score = sum(s.confidence for s in doc.sections) / len(doc.sections)
    data = {"video": video_url, "fps": doc.source.fps, "endostream": doc.to_json(),
            **({"sections_file": sections_name} if sections_name else {})}
    return {"data": data,
            "predictions": [{"model_version": f"endostream {doc.models.sha256[:12]}",
                             "score": round(score, 4), "result": results}]}


def video_url(video: Path, *, root: Path, prefix: str) -> str:
    """The video's URL for Label Studio: ``prefix`` + its path below ``root``.

    >>> video_url(Path("/data/p1/a b.mp4"), root=Path("/data"), prefix="/data/local-files/?d=")
    '/data/local-files/?d=p1/a%20b.mp4'
    """
    try:
        rel = video.resolve().relative_to(root.resolve())
    except ValueError:
        raise VideoError(f"'{video}' is not below --root '{root}'; give a --root that "
                         "holds every video") from None
    return prefix + percent_encode(rel.as_posix())


def default_root(videos: Sequence[Path]) -> Path:
    """Label Studio's document root by default: the folder above the videos' common
    folder, so that the common folder is a subfolder of the root (1.23 refuses the root
    itself as a local-files storage).

    >>> default_root([Path("/data/p1/a.mp4"), Path("/data/p2/b.mp4")]).as_posix()
    '/'
    """
    common = Path(os.path.commonpath([str(v.resolve().parent) for v in videos]))
    return common.parent


def storage_folders(videos: Sequence[Path], root: Path) -> list[Path]:
    """The local-files storages that let Label Studio serve ``videos`` from document root
    ``root``: the folders right below ``root`` that hold them. A video directly in
    ``root`` is refused (:class:`UsageError`): Label Studio 1.23 will not add the root
    itself as a storage ("cannot be the same as LOCAL_FILES_DOCUMENT_ROOT").

    >>> [p.as_posix() for p in storage_folders([Path("/r/a/x.mp4"), Path("/r/a/b/y.mp4"),
    ...                                         Path("/r/c/z.mp4")], Path("/r"))]
    ['/r/a', '/r/c']
    """
    root = root.resolve()
    folders: list[Path] = []
    for video in videos:
        try:
            rel = video.resolve().relative_to(root)
        except ValueError:
            raise VideoError(f"'{video}' is not below --root '{root}'; give a --root that "
                             "holds every video") from None
        if len(rel.parts) < 2:
            raise UsageError(f"'{video}' lies directly in the document root '{root}'; Label "
                             "Studio serves local files only from a subfolder of "
                             "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT: move the videos into "
                             "a subfolder, or give the folder above theirs as --root")
        folder = root / rel.parts[0]
        if folder not in folders:
            folders.append(folder)
    return folders


# -- the way back ------------------------------------------------------------------------


def _latest_annotation(task: Mapping[str, Any]) -> Mapping[str, Any] | None:
    done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
    if not done:
        return None
    return max(done, key=lambda a: (str(a.get("updated_at") or ""), a.get("id") or 0))


def _spans(annotation: Mapping[str, Any], name: str) -> list[tuple[int, int, str]]:
    """(first frame, last frame, label) of every timeline region, endostream's frames."""
    spans = []
    for r in annotation.get("result") or []:
        if r.get("from_name") != CONTROL or r.get("type") != "timelinelabels":
            continue
        value = r.get("value") or {}
        labels = value.get("timelinelabels") or []
        if len(labels) != 1:
            raise CorrectionsError(f"{name}: a region has {len(labels)} labels; give each "
                                   "region exactly one label in Label Studio")
        for rng in value.get("ranges") or []:
            start, end = rng.get("start"), rng.get("end")
            if not isinstance(start, int) or not isinstance(end, int) or end < start:
                raise CorrectionsError(f"{name}: a region has the range {rng}; draw it again "
                                       "in Label Studio")
            spans.append((start - LS_FIRST_FRAME, end - LS_FIRST_FRAME, str(labels[0])))
    return sorted(spans)


def sections_of_spans(spans: Sequence[tuple[int, int, str]], original: SectionsDocument,
                      name: str) -> list[Section]:
    """Sections of Label Studio's regions: every frame labelled once, times from the
    original where a boundary did not move, else the frame's time at the fixed rate.

    Label Studio's timeline may run one frame past the video (its length is rounded up
    from the duration): a region's end there is taken as the video's last frame. A
    region that ends further out is refused (:class:`CorrectionsError`): it was drawn for
    another video or at another frame rate, and cutting it would hide that.
    """
    model = original.sections
    first, last = model[0].start_frame, model[-1].end_frame
    fps = float(original.source.fps or 0.0)
    times = {s.start_frame: s.start_s for s in model}
    merged: list[list[Any]] = []
    expect = first
    for a, b, label in spans:
        if b > last + TIMELINE_SLACK_FRAMES:
            raise CorrectionsError(f"{name}: a region ends at Label Studio frame "
                                   f"{ls_frame(b)}, {b - last} frames past the video's last "
                                   f"frame {ls_frame(last)}; drag its end back to frame "
                                   f"{ls_frame(last)} in Label Studio (a region longer than "
                                   "the video was drawn at another frame rate or for "
                                   "another video)")
        b = min(b, last)
        if a > last:
            raise CorrectionsError(f"{name}: a region starts at Label Studio frame "
                                   f"{ls_frame(a)}, after the video's last frame "
                                   f"{ls_frame(last)}; delete it in Label Studio")
        if a < expect:
            raise CorrectionsError(f"{name}: regions overlap at Label Studio frames "
                                   f"{ls_frame(a)}-{ls_frame(min(b, expect - 1))}; give every "
                                   "frame exactly one label")
        if a > expect:
            raise CorrectionsError(f"{name}: Label Studio frames {ls_frame(expect)}-"
                                   f"{ls_frame(a - 1)} have no label; label them (unusable "
                                   "where no organ is visible)")
        if merged and merged[-1][2] == label:  # a region cut in two: one section
            merged[-1][1] = b
        else:
            merged.append([a, b, label])
        expect = b + 1
    if expect <= last:
        raise CorrectionsError(f"{name}: Label Studio frames {ls_frame(expect)}-"
                               f"{ls_frame(last)} have no label; label them (unusable where "
                               "no organ is visible)")

    def time_of(frame: int) -> float:
        return times.get(frame, frame_time(frame, t0=model[0].start_s, f0=first, fps=fps))

    sections = []
    for k, (a, b, label) in enumerate(merged):
        end_s = time_of(b + 1) if k + 1 < len(merged) else model[-1].end_s
        sections.append(Section(label, time_of(a), end_s, a, b, 0.0, 0.0))
    return sections


def corrected_documents(tasks: Iterable[Mapping[str, Any]]
                        ) -> tuple[list[tuple[str, SectionsDocument]], int]:
    """The corrected documents of a Label Studio JSON export (its list of tasks), each
    with its file name (:func:`corrected_name`), and how many tasks had no annotation
    (left out). Raises :class:`CorrectionsError` (exit 9) for the first task whose
    annotation cannot be a correction: nothing is returned then.
    """
    docs, unannotated = [], 0
    for n, task in enumerate(tasks, 1):
        if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping) \
                or "endostream" not in task["data"]:
            raise CorrectionsError(f"task {n} of the export holds no endostream document; "
                                   "export the project of the tasks 'endostream labelstudio "
                                   "export' wrote, as JSON (not JSON-MIN or CSV)")
        name = f"task {task.get('id', n)}"
        try:
            original = SectionsDocument.from_json(task["data"]["endostream"], origin=name)
        except UsageError as e:  # the embedded document was edited: a bad correction
            raise CorrectionsError(str(e)) from e
        annotation = _latest_annotation(task)
        if annotation is None:
            unannotated += 1
            continue
        sections = sections_of_spans(_spans(annotation, name), original, name)
        labels = allowed_labels(original.models)
        unknown = sorted({s.label for s in sections} - set(labels))
        if unknown:
            raise CorrectionsError(f"{name}: the label(s) {', '.join(unknown)} are not the "
                                   f"model's ({', '.join(labels)}); use the labelling config "
                                   "that 'labelstudio export' wrote")
        when = str(annotation.get("updated_at") or annotation.get("created_at") or "") or None
        doc = reviewed_document(original, sections, tool=TOOL, reviewed_at=when)
        docs.append((corrected_name(task["data"], doc, n), doc))
    return docs, unannotated


def corrected_name(data: Mapping[str, Any], doc: SectionsDocument, n: int) -> str:
    """File name of a task's corrected document: after the sections file it was exported
    from (``data.sections_file``), else (tasks of an older export) after its video, else
    its place in the export.

    >>> corrected_name({"sections_file": "a.mp4.sections.json"}, None, 1)
    'a.mp4.corrected.sections.json'
    """
    sections_file = data.get("sections_file")
    if isinstance(sections_file, str) and sections_file:
        return corrected_file_name(sections_file)
    stem = Path(doc.source.path).stem if doc.source.path else f"task-{n}"
    return f"{stem}{CORRECTED_SUFFIX}"
