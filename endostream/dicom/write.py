"""Writing one procedure as DICOM files: a key frame per organ section, one SR document.

The key frame of a section is the one the HTML report shows
(:func:`~endostream.procedure.thumbnails.thumbnail_times`: with the per-frame CSV the
analysed frame judged good with the highest probability of the section's organ, else
the middle frame), decoded again from the recording at full resolution. Unusable
stretches get no image; the document lists them all. Files are named after the section
number, label and start (:func:`~endostream.output.names.clip_name`), never after the
recording, and every file is read back with pydicom before the command reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from endostream.dicom.document import sections_document
from endostream.dicom.identity import Identity
from endostream.dicom.images import Series, key_frame_image
from endostream.dicom.video import recording_video
from endostream.errors import OutputError
from endostream.output.atomic import AtomicFile
from endostream.output.names import clip_name
from endostream.output.table import count
from endostream.procedure import FrameTable, Procedure
from endostream.procedure.thumbnails import thumbnail_times
from endostream.procedure.video import grab_frames, open_video
from endostream.segmentation.section import UNUSABLE

#: The structured document's and the recording's file names in --out-dir.
DOCUMENT_NAME, RECORDING_NAME = "sections-sr.dcm", "recording-video.dcm"
IMAGE_SERIES, DOCUMENT_SERIES = (1, "endostream key frames"), (2, "endostream sections")
RECORDING_SERIES = (3, "endostream recording")


@dataclass(frozen=True)
class WrittenFile:
    """One file of the export: where it is, what it is, and its instance UID."""

    path: Path
    kind: str  #: "image" or "document"
    sop_class_uid: str
    sop_instance_uid: str
    caption: str


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


def save(ds: Dataset, path: Path) -> None:
    """``ds`` as a DICOM file (preamble, file meta), atomically."""
    with AtomicFile(path, binary=True) as f:
        ds.save_as(f.file, enforce_file_format=True)


def read_back(path: Path, expected: Dataset) -> Dataset:
    """``path`` as pydicom reads it; :class:`OutputError` when it is not what was written."""
    try:
        ds = dcmread(path)
    except Exception as e:  # any reader failure means the file is not usable
        raise OutputError(f"'{path}' does not read back as DICOM ({e}); check the disk and "
                          "run again") from e
    same = ds.SOPInstanceUID == expected.SOPInstanceUID
    if same and "PixelData" in expected:
        same = ds.PixelData == expected.PixelData
    if not same:
        raise OutputError(f"'{path}' reads back differently from what was written; check "
                          "the disk and run again")
    return ds


def write_procedure(procedure: Procedure, frames: FrameTable | None, identity: Identity,
                    out_dir: Path, *, when: datetime | None = None,
                    with_video: bool = False) -> list[WrittenFile]:
    """Write the key frames, the document and (``with_video``) the recording into
    ``out_dir``; return them in that order."""
    video = procedure.require_video()
    when = when or datetime.now()
    codec = recording_codec(video)
    numbered = [(i, s) for i, s in enumerate(procedure.sections, 1) if s.label != UNUSABLE]
    doc = procedure.document
    times = thumbnail_times([s for _, s in numbered], frames, doc.analysis.good_threshold)
    pictures = grab_frames(video, times)
    image_series = Series.new(*IMAGE_SERIES)
    written: list[WrittenFile] = []
    by_section: dict[int, Dataset] = {}
    for (i, section), t, rgb in zip(numbered, times, pictures, strict=True):
        if rgb is None:
            continue  # nothing decodable there: the document lists the section without one
        ds = key_frame_image(np.asarray(rgb), identity=identity, series=image_series,
                             instance_number=len(by_section) + 1, section_index=i,
                             section=section, frame_time_s=t, codec=codec, when=when)
        path = out_dir / clip_name(i, section, ".dcm")
        save(ds, path)
        read_back(path, ds)
        by_section[i] = ds
        written.append(WrittenFile(path, "image", ds.SOPClassUID, ds.SOPInstanceUID,
                                   f"{section.label} at {t:.2f} s"))
    sr = sections_document(procedure.sections,
                           [by_section.get(i) for i in range(1, len(procedure.sections) + 1)],
                           identity=identity, series=Series.new(*DOCUMENT_SERIES),
                           model_sha256=doc.models.sha256 or "unknown",
                           duration_s=doc.duration_s, complete=doc.complete,
                           when=when)
    path = out_dir / DOCUMENT_NAME
    save(sr, path)
    read_back(path, sr)
    written.append(WrittenFile(path, "document", sr.SOPClassUID, sr.SOPInstanceUID,
                               count(len(procedure.sections), "section")))
    if with_video:
        ds, reason = recording_video(video, identity=identity,
                                     series=Series.new(*RECORDING_SERIES), when=when)
        path = out_dir / RECORDING_NAME
        save(ds, path)
        read_back(path, ds)
        written.append(WrittenFile(path, "video", ds.SOPClassUID, ds.SOPInstanceUID,
                                   f"the recording, {ds.NumberOfFrames} frames, " +
                                   ("H.264 copied as it is" if reason is None else
                                    f"re-encoded to H.264 High Profile 4.1 because {reason}")))
    return written
