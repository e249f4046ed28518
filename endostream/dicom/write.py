"""Writing one procedure as DICOM files: a key frame per organ section, one SR document,
optionally the recording.

The key frame of a section is the one the HTML report shows
(:func:`~endostream.procedure.thumbnails.thumbnail_times`: with the per-frame CSV the
analysed frame judged good with the highest probability of the section's organ, else
the middle frame), decoded again from the recording at full resolution. Unusable
stretches get no image; the document lists them all. Files are named after the section
number, label and start (:func:`~endostream.output.names.clip_name`), never after the
recording; every UID is derived from the recording and the sections
(:mod:`~endostream.dicom.uids`), and the files are written all or nothing
(:mod:`~endostream.dicom.folder`).

When the recording was made is read from its container's ``creation_time`` (a date, never
an identity), unless ``--study-date`` says otherwise; Study, Series and Content Date/Time
come from it. Where it is not known, the key frames carry no Content Date/Time (a DERIVED
image may leave them out); the document (type 1) and an ORIGINAL video (type 1C) take the
study's date and time from the worklist or ``--like``, and only where none is known the
export time, which the conformance statement says.

Warnings of pydicom and highdicom go to the ``endostream.dicom`` log, never to stderr raw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from endostream.anatomy import ANATOMY, AnatomicRegion
from endostream.dicom.document import sections_document
from endostream.dicom.folder import ExportFolder, read_back, save, stale_files
from endostream.dicom.identity import Identity
from endostream.dicom.images import KeyFrame, Series, key_frame_image
from endostream.dicom.uids import ExportUids, sections_sha256
from endostream.dicom.values import library_warnings_logged
from endostream.dicom.video import VIDEO_ENDOSCOPIC_IMAGE, recording_video
from endostream.output.names import clip_name
from endostream.output.table import count
from endostream.procedure import FrameTable, Procedure
from endostream.procedure.thumbnails import thumbnail_times
from endostream.procedure.video import grab_frames, open_video
from endostream.segmentation.section import UNUSABLE
from endostream.sources.fingerprint import recording_fingerprint

log = logging.getLogger("endostream.dicom")

#: The structured document's and the recording's file names in --out-dir.
DOCUMENT_NAME, RECORDING_NAME = "sections-sr.dcm", "recording-video.dcm"
IMAGE_SERIES, DOCUMENT_SERIES = (1, "endostream key frames"), (2, "endostream sections")
RECORDING_SERIES = (3, "endostream recording")
#: A container creation time before this is a muxer's placeholder, not a recording date.
EARLIEST_RECORDING = datetime(2000, 1, 1)


@dataclass(frozen=True)
class WrittenFile:
    """One file of the export: where it is, what it is, and its UIDs."""

    path: Path
    kind: str  #: "image", "document" or "video"
    sop_class_uid: str
    sop_instance_uid: str
    caption: str
    study_uid: str = ""


def planned_paths(procedure: Procedure, out_dir: Path, *,
                  with_video: bool = False) -> list[Path]:
    """Every path :func:`write_procedure` would write, to check before any work."""
    return [out_dir / clip_name(i, s, ".dcm") for i, s in enumerate(procedure.sections, 1)
            if s.label != UNUSABLE] + [out_dir / DOCUMENT_NAME] + \
        ([out_dir / RECORDING_NAME] if with_video else [])


def recording_codec(video: Path) -> str:
    """The recording's video codec name (``h264``, ``hevc``, ...); stream facts only."""
    with open_video(video) as container:
        return container.streams.video[0].codec_context.name


def recording_start(video: Path) -> datetime | None:
    """When the recording started, from the container's (or its video stream's)
    ``creation_time`` tag, in local time; ``None`` when absent or implausible."""
    with open_video(video) as container:
        text = container.metadata.get("creation_time") or \
            container.streams.video[0].metadata.get("creation_time")
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        log.info("the recording's creation_time %r is not a date; ignored", text)
        return None
    when = when.astimezone().replace(tzinfo=None) if when.tzinfo else when
    return when if when >= EARLIEST_RECORDING else None


def _frame_number(t: float, fps: float | None, frames: int | None) -> int:
    """1-based frame of the recording at ``t`` s (constant rate assumed, as the Video
    Endoscopic Image's Frame Time does)."""
    n = int(round(t * (fps or 25.0))) + 1
    return max(1, min(n, frames)) if frames else max(1, n)


def _predecessor(out_dir: Path, study_uid: str, sop_uid: str) -> Dataset | None:
    """The document of an earlier export of this study in ``out_dir`` that this one
    replaces (another SOP instance: the sections were corrected)."""
    path = out_dir / DOCUMENT_NAME
    if not path.is_file():
        return None
    try:
        old = dcmread(path, stop_before_pixels=True)
    except Exception:  # an unreadable file replaces nothing
        return None
    if old.get("StudyInstanceUID") == study_uid and old.get("SOPInstanceUID") != sop_uid:
        return old
    return None


def write_procedure(procedure: Procedure, frames: FrameTable | None, identity: Identity,
                    out_dir: Path, *, recorded: datetime | None = None,
                    with_video: bool = False,
                    anatomy: dict[str, AnatomicRegion] | None = None) -> list[WrittenFile]:
    """Write the key frames, the document and (``with_video``) the recording into
    ``out_dir``, all or nothing; return them in that order. ``recorded``: when the
    recording started (default: its container's creation time)."""
    video = procedure.require_video()
    with library_warnings_logged():
        return _write(procedure, frames, identity, out_dir, recorded=recorded,
                      with_video=with_video, anatomy=ANATOMY if anatomy is None else anatomy,
                      video=video)


def _write(procedure: Procedure, frames: FrameTable | None, identity: Identity,
           out_dir: Path, *, recorded: datetime | None, with_video: bool,
           anatomy: dict[str, AnatomicRegion], video: Path) -> list[WrittenFile]:
    doc = procedure.document
    uids = ExportUids(recording_fingerprint(video), sections_sha256(doc), identity.study_uid)
    identity = identity.for_export(uids.study, uids.anonymous_patient_id())
    recorded = recorded or recording_start(video)
    content = recorded or _study_time(identity) or datetime.now()
    codec = recording_codec(video)
    numbered = [(i, s) for i, s in enumerate(procedure.sections, 1) if s.label != UNUSABLE]
    times = thumbnail_times([s for _, s in numbered], frames, doc.analysis.good_threshold)
    keys = [KeyFrame(i, s, t, _frame_number(t, doc.source.fps, doc.source.frames),
                     "most confident" if frames is not None and t != (s.start_s + s.end_s) / 2
                     else "middle", anatomy.get(s.label))
            for (i, s), t in zip(numbered, times, strict=True)]
    pictures = grab_frames(video, times)
    image_series = Series(uids.key_frame_series, *IMAGE_SERIES,
                          regions=tuple(k.region for k, rgb in zip(keys, pictures, strict=True)
                                        if rgb is not None))
    video_ref = (VIDEO_ENDOSCOPIC_IMAGE, uids.video) if with_video else None
    written: list[WrittenFile] = []
    by_section: dict[int, tuple[Dataset, float]] = {}
    with ExportFolder(out_dir) as tmp:
        video_ds = None
        if with_video:
            video_ds, reason = recording_video(video, identity=identity,
                                               series=Series(uids.video_series,
                                                             *RECORDING_SERIES),
                                               sop_uid=uids.video, recorded=recorded,
                                               content=content)
        for key, rgb in zip(keys, pictures, strict=True):
            if rgb is None:
                continue  # nothing decodable there: the document lists the section without one
            ds = key_frame_image(np.asarray(rgb), identity=identity, series=image_series,
                                 sop_uid=uids.key_frame(key.frame_number, key.section.label),
                                 instance_number=len(by_section) + 1, key=key, codec=codec,
                                 recorded=recorded, video=video_ref)
            name = clip_name(key.section_index, key.section, ".dcm")
            save(ds, tmp / name)
            read_back(tmp / name, ds)
            by_section[key.section_index] = (ds, key.frame_time_s)
            written.append(WrittenFile(out_dir / name, "image", ds.SOPClassUID,
                                       ds.SOPInstanceUID,
                                       f"{key.section.label} at {key.frame_time_s:.2f} s",
                                       uids.study))
        n = len(procedure.sections)
        sr = sections_document(
            procedure.sections, [by_section.get(i, (None,))[0] for i in range(1, n + 1)],
            identity=identity, series=Series(uids.document_series, *DOCUMENT_SERIES),
            sop_uid=uids.document, model_sha256=doc.models.sha256 or "unknown",
            duration_s=doc.duration_s, complete=doc.complete,
            content_time=content,
            recorded=recorded, regions=anatomy,
            key_times_s=[by_section[i][1] if i in by_section else None
                         for i in range(1, n + 1)],
            video=video_ds, replaces=_predecessor(out_dir, uids.study, uids.document))
        save(sr, tmp / DOCUMENT_NAME)
        read_back(tmp / DOCUMENT_NAME, sr)
        written.append(WrittenFile(out_dir / DOCUMENT_NAME, "document", sr.SOPClassUID,
                                   sr.SOPInstanceUID, count(n, "section"), uids.study))
        if video_ds is not None:
            save(video_ds, tmp / RECORDING_NAME)
            read_back(tmp / RECORDING_NAME, video_ds)
            written.append(WrittenFile(
                out_dir / RECORDING_NAME, "video", video_ds.SOPClassUID,
                video_ds.SOPInstanceUID, f"the recording, {video_ds.NumberOfFrames} frames, " +
                ("H.264 copied as it is" if reason is None else
                 f"re-encoded to H.264 High Profile 4.1 because {reason}"), uids.study))
        stale = stale_files(out_dir, uids.study, {w.path.name for w in written}) \
            if out_dir.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return written


def _study_time(identity: Identity) -> datetime | None:
    """The study's date and time as the worklist or ``--like`` gave them."""
    day = str(identity.dataset.get("StudyDate") or "")
    clock = str(identity.dataset.get("StudyTime") or "000000").split(".")[0].ljust(6, "0")
    try:
        return datetime.strptime(day + clock[:6], "%Y%m%d%H%M%S") if day else None
    except ValueError:
        return None
