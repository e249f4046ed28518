"""Reviewed sections files as training data: rows of the labels CSV that ``train`` reads.

A reviewed ``sections.json`` says, for every stretch of its video, which organ is in view
or that the stretch is unusable. :func:`section_rows` turns one into rows of the labels
CSV of :mod:`endostream.evaluation.datasets` (``path, recording, organ, quality, start_s,
end_s, fps``): one row per section, pointing at the video, which the trainer samples at
``fps`` frames per second inside ``[start_s, end_s)`` through the runtime's own decoder
and crop. The rules:

- **recording** = the video's file name, so ``train`` splits by recording (two videos of
  one recording should share a name prefix and ``train --group-by prefix:SEP``);
- **margin**: ``margin_s`` is cut from both sides of every boundary between two sections
  (not at the video's start or end): a boundary a reviewer placed by eye is right to a
  second, not to a frame; a section shorter than its margins gives no row;
- **organ sections** give the organ label; their **quality** is not known frame by frame
  (a reviewer marks long unusable stretches, not every blurred second inside an organ
  section). ``organ_quality="good"`` (the default) labels them good, which is what the
  segmenter assumed when it kept them as one section; ``"unknown"`` leaves quality empty,
  so ``--task both`` teaches only the organ head on them (partial labels) and
  ``--task quality`` skips them;
- **unusable sections** give quality ``bad`` and no organ.

The file is checked first: read through the one reader of sections files
(:func:`~endostream.output.document.read_sections`: schema, sections ordered, each
starting where the previous ended in time and in frames, from 0); a reviewed file (one
with a ``review`` record) must keep the rules of a correction
(:mod:`endostream.corrections.rules`, exit 9); then (:func:`check_trainable`) the
sections must reach the end of the video (``complete`` files) with labels among the
model's organ head plus ``unusable`` (or ``labels``), and the video must be the one the
file was made from: the same content fingerprint where the file records one
(:mod:`endostream.procedure.identity`, checked when it is loaded), and always the same
frame size and duration within :data:`DURATION_TOLERANCE_S` or
:data:`DURATION_TOLERANCE_FRACTION`. Each problem is one line naming the file and the
fix (exit 2 unless said otherwise).

>>> from endostream.segmentation.section import Section
>>> secs = [Section("nose", 0, 10, 0, 99, 1, 1), Section("unusable", 10, 14, 100, 139, 0, 1),
...         Section("ear", 14, 15, 140, 149, 1, 1)]
>>> [(r.organ, r.quality, r.start_s, r.end_s) for r in rows_of_sections(
...     secs, "v.mp4", "v.mp4", fps=2.0, margin_s=1.0)]  # ear: 1 s, all of it margin
[('nose', 'good', 0.0, 9.0), ('', 'bad', 11.0, 13.0)]
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from endostream.corrections.rules import check_reviewed
from endostream.errors import UsageError
from endostream.evaluation.datasets import DEFAULT_VIDEO_FPS, label_rows
from endostream.procedure import Procedure, load_procedure
from endostream.segmentation.section import UNUSABLE, Section
from endostream.sources.file import FileSource

log = logging.getLogger(__name__)

#: Seconds cut from each side of a boundary between two sections: a boundary placed by
#: eye in a player is right to about a second.
DEFAULT_MARGIN_S = 1.0
#: Frames sampled per second inside a section: neighbouring frames are near duplicates.
DEFAULT_FPS = DEFAULT_VIDEO_FPS
#: How the quality of frames inside an organ section is labelled (see the module doc).
ORGAN_QUALITY_CHOICES = ("good", "unknown")
#: A video whose duration differs from the file's ``source.duration_s`` by more than this
#: (and by more than the fraction) is not the video the sections were made from.
DURATION_TOLERANCE_S = 1.0
DURATION_TOLERANCE_FRACTION = 0.01
#: Columns of the CSV written by :func:`write_labels_csv`, in order.
COLUMNS = ("path", "recording", "organ", "quality", "start_s", "end_s", "fps", "sections")


@dataclass(frozen=True)
class LabelRow:
    """One row of the labels CSV: a stretch of a video with its labels."""

    path: str  #: the video, as written to the CSV (relative to it where possible)
    recording: str
    organ: str  #: organ label, or "" (unusable, or quality-only)
    quality: str  #: "good", "bad", or "" (not known)
    start_s: float
    end_s: float
    fps: float
    sections: str  #: the reviewed file the row came from (for the reader of the CSV)

    @property
    def frames(self) -> int:
        """About how many frames the trainer will sample from this row."""
        return max(int((self.end_s - self.start_s) * self.fps + 0.5), 0)


def rows_of_sections(sections: Sequence[Section], video: str, recording: str, *,
                     fps: float = DEFAULT_FPS, margin_s: float = DEFAULT_MARGIN_S,
                     organ_quality: str = "good", origin: str = "") -> list[LabelRow]:
    """The label rows of checked ``sections`` (see the module docstring for the rules)."""
    if not fps > 0:
        raise UsageError(f"--fps must be positive, got {fps}")
    if margin_s < 0:
        raise UsageError(f"--margin must be 0 or more seconds, got {margin_s}")
    if organ_quality not in ORGAN_QUALITY_CHOICES:
        raise UsageError(f"--organ-quality {organ_quality!r}: use good or unknown")
    rows = []
    for k, s in enumerate(sections):
        start = s.start_s + (margin_s if k > 0 else 0.0)
        end = s.end_s - (margin_s if k < len(sections) - 1 else 0.0)
        if end <= start:  # all of it within the margins
            continue
        if s.label == UNUSABLE:
            organ, quality = "", "bad"
        else:
            organ, quality = s.label, ("good" if organ_quality == "good" else "")
        rows.append(LabelRow(video, recording, organ, quality, round(start, 3),
                             round(end, 3), fps, origin))
    return rows


def check_trainable(procedure: Procedure, labels: Iterable[str] | None = None) -> None:
    """Refuse a sections file that cannot be training data (one line each).

    Order, gaps and overlaps were checked when the file was read
    (:func:`~endostream.output.document.read_sections`); a file with a ``review`` record
    must keep the rules of a correction (:func:`endostream.corrections.rules.check_reviewed`:
    exit 9, like every other reader of corrections); training data also needs labels
    the model knows (or ``labels``) and sections that reach the end of the video (exit 2).
    """
    where = procedure.sections_path
    if procedure.document.review is not None:
        check_reviewed(procedure.document, name=f"'{where}'")
    sections = procedure.sections
    known = set(labels) if labels is not None else set(
        procedure.document.models.heads.get("organ", ()))
    if not known:
        raise UsageError(f"'{where}' does not name the model's organ labels; give them "
                         "with --labels ear,nose,...")
    for k, s in enumerate(sections):
        if s.label != UNUSABLE and s.label not in known:
            raise UsageError(f"'{where}': section {k + 1} ({s.label} {s.start_s:g}-"
                             f"{s.end_s:g} s) has a label the model does not know; use one "
                             f"of {', '.join(sorted(known))}, {UNUSABLE} (or --labels)")
    stated = procedure.document.source.duration_s
    if procedure.document.complete and stated:
        end = sections[-1].end_s
        if abs(end - float(stated)) > _duration_tolerance(float(stated)):
            raise UsageError(f"'{where}': the sections end at {end:g} s but the video lasts "
                             f"{float(stated):g} s; they must cover all of it")


def check_video(procedure: Procedure, video: Path) -> None:
    """Refuse ``video`` unless its frame size and duration are those the file names."""
    with FileSource(video, sample_fps=None) as source:
        info = source.info
    src = procedure.document.source
    stated_size = (src.width, src.height)
    if stated_size != (info.width, info.height):
        raise UsageError(
            f"'{video}' is {info.width}x{info.height} but '{procedure.sections_path}' "
            f"describes a {stated_size[0]}x{stated_size[1]} video: not the same recording; "
            "pass the right one with --video")
    stated = src.duration_s
    if stated and info.duration_s is not None and abs(
            info.duration_s - float(stated)) > _duration_tolerance(float(stated)):
        raise UsageError(
            f"'{video}' lasts {info.duration_s:.1f} s but '{procedure.sections_path}' "
            f"describes {float(stated):.1f} s: not the same recording; pass the right one "
            "with --video")


def _duration_tolerance(duration_s: float) -> float:
    return max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_FRACTION * duration_s)


def reviewed_rows(sections_path: str | os.PathLike, *, video: str | os.PathLike | None = None,
                  videos: str | os.PathLike | None = None, csv_dir: Path | None = None,
                  fps: float = DEFAULT_FPS,
                  margin_s: float = DEFAULT_MARGIN_S, organ_quality: str = "good",
                  labels: Iterable[str] | None = None) -> tuple[list[LabelRow], list[str]]:
    """Read, check and convert one reviewed sections file (its video found as ``segment``
    wrote it, or ``video``, or by content below the folder ``videos``); paths in the rows
    are relative to ``csv_dir`` when given. Returns the rows and the organ labels of the
    model that made the file."""
    procedure = load_procedure(sections_path, video, videos=videos)
    check_trainable(procedure, labels)
    found = procedure.require_video()
    check_video(procedure, found)
    if not procedure.document.complete:
        log.warning("%s: the analysis was interrupted (complete: false); only the part "
                    "it covers is used", sections_path)
    shown = _relative(found, csv_dir) if csv_dir is not None else str(found)
    rows = rows_of_sections(procedure.sections, shown, found.name, fps=fps, margin_s=margin_s,
                            organ_quality=organ_quality, origin=str(sections_path))
    return rows, list(procedure.document.models.heads.get("organ", ()))


def missing_organs(model_organs: Iterable[str], rows: Sequence[LabelRow],
                   included: Sequence[dict[str, str]] = ()) -> list[str]:
    """Organs the model knew that no row teaches: a model trained on these rows alone has
    an organ head without them (train takes its classes from the data).

    >>> missing_organs(["ear", "nose"], [LabelRow("v", "v", "ear", "good", 0, 1, 1, "")])
    ['nose']
    """
    taught = {r.organ for r in rows} | {d.get("organ", "") for d in included}
    return [o for o in dict.fromkeys(model_organs) if o not in taught]


def _relative(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` (the CSV's paths are), absolute across drives."""
    try:
        return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
    except ValueError:  # pragma: no cover - another drive on Windows
        return str(path.resolve())


def included_rows(csv_path: str | os.PathLike, csv_dir: Path) -> list[dict[str, str]]:
    """The rows of another labels CSV with their paths made relative to ``csv_dir``."""
    source = Path(csv_path)
    if source.is_dir():
        source = source / "labels.csv"
    rows = label_rows(source)
    for row in rows:
        row["path"] = _relative(source.parent / row["path"], csv_dir)
    return rows


def labels_csv_text(rows: Sequence[LabelRow], included: Sequence[dict[str, str]] = ()) -> str:
    """The CSV: :data:`COLUMNS` first, then any other column an included CSV has."""
    extra = [c for c in dict.fromkeys(k for r in included for k in r) if c not in COLUMNS]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, *extra])
    for r in rows:
        writer.writerow([r.path, r.recording, r.organ, r.quality, f"{r.start_s:g}",
                         f"{r.end_s:g}", f"{r.fps:g}", r.sections, *([""] * len(extra))])
    for d in included:
        writer.writerow([d.get(c, "") for c in (*COLUMNS, *extra)])
    return out.getvalue()


__all__ = ["LabelRow", "rows_of_sections", "check_trainable", "check_video", "reviewed_rows",
           "missing_organs",
           "included_rows", "labels_csv_text", "DEFAULT_MARGIN_S", "DEFAULT_FPS",
           "ORGAN_QUALITY_CHOICES"]
