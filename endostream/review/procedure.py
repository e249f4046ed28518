"""A reviewed procedure: the sections of a ``sections.json`` and the recording they describe.

:func:`load_procedure` reads and checks the document (through the one reader,
:func:`~endostream.output.document.read_sections`); the video defaults to its
``source.path`` (as written, then relative to the sections file), ``video=`` overrides.
:func:`read_frames_csv` reads the per-frame CSV of ``segment --csv`` into arrays.

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> doc = {"schema": "endostream.sections/1", "complete": True,
...        "source": {"path": "v.mp4", "fps": 25.0, "frames": 100, "duration_s": 4.0,
...                   "width": 64, "height": 48},
...        "models": {"path": "m.onnx", "sha256": "0" * 64,
...                   "heads": {"quality": ["bad", "good"], "organ": ["ear", "nose"]}},
...        "analysis": {"frames_analysed": 20, "sample_fps": 5.0, "segmenter": {}},
...        "sections": [{"label": "ear", "start_s": 0.0, "end_s": 4.0, "start_frame": 0,
...                      "end_frame": 99, "good_fraction": 1.0, "confidence": 0.9}]}
>>> _ = (d / "s.json").write_text(json.dumps(doc))
>>> p = load_procedure(d / "s.json")
>>> [s.label for s in p.sections], p.organ_labels, p.video
(['ear'], ['ear', 'nose'], None)
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from endostream.errors import UsageError, VideoError
from endostream.frames import SourceInfo
from endostream.output.document import Analysis, ModelsInfo, SectionsDocument, read_sections
from endostream.segmentation.section import Section


@dataclass(frozen=True)
class Procedure:
    """A checked ``sections.json`` (:class:`SectionsDocument`), where it was read from, and
    where its video is (``None``: not found)."""

    sections_path: Path
    document: SectionsDocument
    video: Path | None
    #: Where the video was looked for (see :func:`video_candidates`).
    looked: tuple[Path, ...] = ()

    @property
    def sections(self) -> list[Section]:
        return list(self.document.sections)

    @property
    def organ_labels(self) -> list[str]:
        return self.document.organ_labels

    @property
    def source(self) -> SourceInfo:
        return self.document.source

    @property
    def models(self) -> ModelsInfo:
        return self.document.models

    @property
    def analysis(self) -> Analysis:
        return self.document.analysis

    @property
    def complete(self) -> bool:
        return self.document.complete

    @property
    def duration_s(self) -> float:
        """The video's duration, or the end of the last section when it is not known."""
        return self.document.duration_s

    @property
    def good_threshold(self) -> float:
        """p(good) at which the run that wrote the file counted a frame as good."""
        return self.document.analysis.good_threshold

    @property
    def fps(self) -> float | None:
        return self.source.fps or None

    def not_found(self) -> str:
        """Where the video was looked for, as a message says it."""
        where = ", ".join(f"'{p}'" for p in self.looked) or "nowhere (no source.path)"
        return f"the video of '{self.sections_path}' was not found (looked at {where})"

    def require_video(self) -> Path:
        """The video, or a :class:`VideoError` that says to pass ``--video``."""
        if self.video is None:
            raise VideoError(f"{self.not_found()}; pass it with --video PATH")
        return self.video


def load_procedure(sections_path: str | os.PathLike,
                   video: str | os.PathLike | None = None) -> Procedure:
    """Read ``sections_path`` (:func:`~endostream.output.document.read_sections`); find the
    video (``video`` if given, else ``source.path``).

    Raises :class:`UsageError` for a missing or malformed sections file and
    :class:`VideoError` for a ``video`` given but missing.
    """
    path = Path(sections_path)
    document = read_sections(path)
    if video is not None:
        found: Path | None = Path(video)
        if not found.is_file():
            raise VideoError(f"video not found: '{video}'; check the --video path")
        return Procedure(path, document, found)
    looked = video_candidates(path, document.source.path)
    return Procedure(path, document, next((p for p in looked if p.is_file()), None), looked)


def video_candidates(sections_path: Path, recorded: str) -> tuple[Path, ...]:
    """Where the video of a sections file may be, in order: ``source.path`` as written
    (absolute), or relative to the sections file's folder and then to the current one
    (``segment`` records the path as typed); then, for any path, a file of that name
    beside the sections file, which is where a moved recording usually went with it.

    >>> [str(p) for p in video_candidates(Path("/b/s.json"), "/a/v.mp4")]
    ['/a/v.mp4', '/b/v.mp4']
    >>> [str(p) for p in video_candidates(Path("/b/s.json"), "in/v.mp4")]
    ['/b/in/v.mp4', 'in/v.mp4', '/b/v.mp4']
    """
    if not recorded:
        return ()
    recorded_path = Path(recorded)
    beside = sections_path.parent / recorded_path.name
    if recorded_path.is_absolute():
        options = [recorded_path, beside]
    else:
        options = [sections_path.parent / recorded_path, recorded_path, beside]
    unique: list[Path] = []
    for p in options:
        if p not in unique:
            unique.append(p)
    return tuple(unique)


@dataclass(frozen=True)
class FrameTable:
    """The per-frame CSV as arrays, one row per analysed frame, in frame order.

    ``good`` is the probability of good quality (NaN without a quality head); ``organ`` is
    ``[N, len(organ_labels)]`` (NaN where the model gave no organ output for the frame).
    """

    frame: np.ndarray
    pts_s: np.ndarray
    good: np.ndarray
    organ_labels: list[str]
    organ: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


def read_frames_csv(path: str | os.PathLike,
                    procedure: Procedure | None = None) -> FrameTable:
    """Read the CSV written by ``segment --csv`` (:mod:`endostream.output.frames_csv`);
    with ``procedure``, also check that it comes from the same run (:func:`check_frames_of`).

    Raises :class:`UsageError` when the file is missing or is not such a CSV.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"frames CSV not found: '{path}'; give the file written by "
                         "'endostream segment --csv'")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read '{path}': {e}; give the file written by "
                         "'endostream segment --csv'") from e
    if not rows or rows[0][:2] != ["frame", "pts_s"]:
        raise UsageError(f"'{path}' is not a per-frame CSV (no 'frame, pts_s' header); give "
                         "the file written by 'endostream segment --csv'")
    header, body = rows[0], rows[1:]
    organ_cols = [(i, c[len("organ_"):]) for i, c in enumerate(header) if c.startswith("organ_")]
    good_col = header.index("quality_good") if "quality_good" in header else None

    def number(text: str) -> float:
        return float(text) if text else float("nan")

    try:
        frame = np.array([int(r[0]) for r in body], np.int64)
        pts = np.array([float(r[1]) for r in body], np.float64)
        good = np.array([number(r[good_col]) if good_col is not None else float("nan")
                         for r in body], np.float64)
        organ = np.array([[number(r[i]) for i, _ in organ_cols] for r in body],
                         np.float64).reshape(len(body), len(organ_cols))
    except (ValueError, IndexError) as e:
        raise UsageError(f"'{path}' has a malformed row ({e}); give the file written by "
                         "'endostream segment --csv'") from e
    table = FrameTable(frame=frame, pts_s=pts, good=good,
                       organ_labels=[name for _, name in organ_cols], organ=organ)
    if procedure is not None:
        check_frames_of(table, procedure, path)
    return table


def check_frames_of(table: FrameTable, procedure: Procedure, path: Path) -> None:
    """Refuse a per-frame CSV written by another run than ``procedure``'s sections file:
    it would draw one video's probabilities under another's sections. The CSV and the
    sections file of one run agree on the model's organ labels, the number of analysed
    frames, and the video's length (the last row lies inside it)."""
    problem = None
    doc = procedure.document
    organs = list(doc.heads.get("organ") or [])
    if organs and table.organ_labels != organs:
        problem = (f"its organ columns are {', '.join(table.organ_labels) or 'none'}, the "
                   f"model's are {', '.join(organs)}")
    elif len(table) != doc.analysis.frames_analysed:
        problem = (f"it has {len(table)} analysed frames, the sections were made from "
                   f"{doc.analysis.frames_analysed}")
    elif len(table):
        fps = procedure.fps
        slack_s = (2.0 / fps if fps else 0.0) + 0.5  # as the sections' own check allows
        frames, duration = procedure.source.frames, procedure.source.duration_s
        if duration and table.pts_s.max() > duration + slack_s:
            problem = (f"its last frame is at {table.pts_s.max():.1f} s, the video lasts "
                       f"{duration:.1f} s")
        elif frames and fps and table.frame.max() > frames - 1 + math.ceil(slack_s * fps):
            problem = f"its last frame is {table.frame.max()}, the video has {frames}"
    if problem:
        raise UsageError(f"'{path}' is not the per-frame CSV of '{procedure.sections_path}' "
                         f"({problem}); give the CSV written by the same 'endostream "
                         "segment' run")
