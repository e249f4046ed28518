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
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from endostream.errors import UsageError, VideoError
from endostream.frames import SourceInfo
from endostream.output.document import Analysis, ModelsInfo, SectionsDocument, read_sections
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.section import Section


@dataclass(frozen=True)
class Procedure:
    """A checked ``sections.json`` (:class:`SectionsDocument`), where it was read from, and
    where its video is (``None``: not found)."""

    sections_path: Path
    document: SectionsDocument
    video: Path | None

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
    def fps(self) -> float | None:
        return self.source.fps or None

    def require_video(self) -> Path:
        """The video, or a :class:`VideoError` that says to pass ``--video``."""
        if self.video is None:
            raise VideoError(f"the video of '{self.sections_path}' was not found at "
                             f"'{self.source.path}'; pass it with --video PATH")
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
    else:
        found = _find_video(path, document.source.path)
    return Procedure(path, document, found)


def _find_video(sections_path: Path, recorded: str) -> Path | None:
    if not recorded:
        return None
    candidate = Path(recorded)
    options = [candidate] if candidate.is_absolute() else [candidate,
                                                           sections_path.parent / candidate,
                                                           sections_path.parent / candidate.name]
    return next((p for p in options if p.is_file()), None)


#: A frame counts as good when its probability of good quality reaches this: the
#: threshold the segmenter used for ``good_fraction`` and ``confidence``.
GOOD_AT = SegmenterConfig().good_threshold


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


def read_frames_csv(path: str | os.PathLike) -> FrameTable:
    """Read the CSV written by ``segment --csv`` (:mod:`endostream.output.frames_csv`).

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
    return FrameTable(frame=frame, pts_s=pts, good=good,
                      organ_labels=[name for _, name in organ_cols], organ=organ)
