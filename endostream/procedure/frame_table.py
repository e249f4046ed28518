"""The per-frame CSV of ``segment --csv`` as arrays (:class:`FrameTable`), checked against
the sections file of the same run.

>>> table = FrameTable(frame=np.array([0, 5]), pts_s=np.array([0.0, 0.2]),
...                    good=np.array([0.9, 0.1]), organ_labels=["ear"],
...                    organ=np.array([[1.0], [1.0]]))
>>> len(table)
2
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from endostream.errors import UsageError
from endostream.procedure.identity import check_frames_csv
from endostream.procedure.load import Procedure


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
    sections file of one run agree on the CSV's SHA-256 where the sections file records
    it (:func:`~endostream.procedure.identity.check_frames_csv`: any other CSV is refused,
    whatever its length), and always on the model's organ labels, the number of analysed
    frames, and the video's length (the last row lies inside it)."""
    doc = procedure.document
    check_frames_csv(doc.analysis.frames_csv_sha256, procedure.sections_path, path)
    problem = None
    organs = list(doc.heads.get("organ") or [])
    if organs and table.organ_labels != organs:
        problem = (f"its organ columns are {', '.join(table.organ_labels) or 'none'}, the "
                   f"model's are {', '.join(organs)}")
    elif len(table) != doc.analysis.frames_analysed:
        problem = (f"it has {len(table)} analysed frames, the sections were made from "
                   f"{doc.analysis.frames_analysed}")
    elif len(table):
        fps = (procedure.document.source.fps or None)
        slack_s = (2.0 / fps if fps else 0.0) + 0.5  # as the sections' own check allows
        frames, duration = procedure.document.source.frames, procedure.document.source.duration_s
        if duration and table.pts_s.max() > duration + slack_s:
            problem = (f"its last frame is at {table.pts_s.max():.1f} s, the video lasts "
                       f"{duration:.1f} s")
        elif frames and fps and table.frame.max() > frames - 1 + math.ceil(slack_s * fps):
            problem = f"its last frame is {table.frame.max()}, the video has {frames}"
    if problem:
        raise UsageError(f"'{path}' is not the per-frame CSV of '{procedure.sections_path}' "
                         f"({problem}); give the CSV written by the same 'endostream "
                         "segment' run")
