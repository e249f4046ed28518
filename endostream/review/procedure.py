"""A reviewed procedure: the sections of a ``sections.json`` and the recording they describe.

:func:`load_procedure` reads and checks the document; the video defaults to its
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
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from endostream.errors import UsageError, VideoError
from endostream.output.sections_file import SCHEMA_ID
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.section import UNUSABLE, Section


@dataclass(frozen=True)
class Procedure:
    """What a ``sections.json`` says, plus where its video is (``None``: not found)."""

    sections_path: Path
    sections: list[Section]
    organ_labels: list[str]
    source: dict[str, Any]
    models: dict[str, Any]
    complete: bool
    video: Path | None
    analysis: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """The video's duration, or the end of the last section when it is not known."""
        stated = self.source.get("duration_s")
        end = self.sections[-1].end_s if self.sections else 0.0
        return float(stated) if stated else end

    @property
    def fps(self) -> float | None:
        return self.source.get("fps") or None

    def require_video(self) -> Path:
        """The video, or a :class:`VideoError` that says to pass ``--video``."""
        if self.video is None:
            raise VideoError(f"the video of '{self.sections_path}' was not found at "
                             f"'{self.source.get('path')}'; pass it with --video PATH")
        return self.video


def _bad(path: Path, problem: str) -> UsageError:
    return UsageError(f"'{path}' is not a usable sections file ({problem}); give the "
                      "sections.json written by 'endostream segment'")


def load_procedure(sections_path: str | os.PathLike,
                   video: str | os.PathLike | None = None) -> Procedure:
    """Read ``sections_path``; find the video (``video`` if given, else ``source.path``).

    Raises :class:`UsageError` for a missing or malformed sections file and
    :class:`VideoError` for a ``video`` given but missing.
    """
    path = Path(sections_path)
    if not path.is_file():
        raise UsageError(f"sections file not found: '{path}'; give the sections.json "
                         "written by 'endostream segment'")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _bad(path, f"not JSON: {' '.join(str(e).split())}") from e
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        raise _bad(path, f"schema is not {SCHEMA_ID}")
    if video is not None:
        found: Path | None = Path(video)
        if not found.is_file():
            raise VideoError(f"video not found: '{video}'; check the --video path")
    else:
        found = _find_video(path, str((doc.get("source") or {}).get("path") or ""))
    return procedure_from_document(doc, path, found)


def procedure_from_document(doc: dict[str, Any], sections_path: Path,
                            video: Path | None) -> Procedure:
    """A :class:`Procedure` from a ``sections.json`` document already in memory (what
    ``segment --report`` has just written)."""
    try:
        sections = [Section.from_json(s) for s in doc["sections"]]
        source = dict(doc["source"])
        models = dict(doc.get("models") or {})
    except (KeyError, TypeError, ValueError) as e:
        raise _bad(sections_path, f"missing field {e}") from e
    heads = models.get("heads") or {}
    organ_labels = list(heads.get("organ") or [])
    for s in sections:  # labels a model of another version may have used
        if s.label != UNUSABLE and s.label not in organ_labels:
            organ_labels.append(s.label)
    return Procedure(sections_path=sections_path, sections=sections,
                     organ_labels=organ_labels, source=source, models=models,
                     complete=bool(doc.get("complete", True)), video=video,
                     analysis=dict(doc.get("analysis") or {}))


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
