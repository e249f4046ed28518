"""Human- and spreadsheet-facing outputs: the per-frame CSV and the sections table.

``sections.json`` itself lives in :mod:`endostream.sections`. The CSV is written as
predictions arrive (so an interrupted run keeps every analysed frame) into a temporary
file that is renamed into place on :meth:`FrameCsvWriter.close`, like the JSON, or removed
by :meth:`FrameCsvWriter.discard` when the run failed and writes no JSON either.

>>> print(format_sections_table([Section("nose", 0.0, 41.3, 0, 1238, 0.86, 0.95)]))
label  start   end     duration  good  conf
nose   0:00.0  0:41.3  41.3 s    86%   0.95
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import OutputError
from .frames import Prediction
from .sections import Section, new_file_mode


def format_clock(seconds: float) -> str:
    """``83.44`` → ``'1:23.4'`` (minutes:seconds with tenths).

    >>> format_clock(3725.0)
    '62:05.0'
    """
    tenths = int(round(seconds * 10))
    m, rem = divmod(tenths, 600)
    return f"{m}:{rem // 10:02d}.{rem % 10}"


def format_sections_table(sections: Sequence[Section],
                          truth: Sequence[Section] | None = None) -> str:
    """A short fixed-width table of sections, optionally next to ground-truth sections."""
    rows = [("label", "start", "end", "duration", "good", "conf")]
    for s in sections:
        rows.append((s.label, format_clock(s.start_s), format_clock(s.end_s),
                     f"{s.end_s - s.start_s:.1f} s", f"{s.good_fraction:.0%}",
                     f"{s.confidence:.2f}"))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
    lines = ["".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if truth is not None:
        lines.append("")
        lines.append("ground truth")
        for t in truth:
            lines.append(f"{t.label.ljust(widths[0])}{format_clock(t.start_s).ljust(widths[1])}"
                         f"{format_clock(t.end_s).ljust(widths[2])}{t.end_s - t.start_s:.1f} s")
    return "\n".join(lines)


class FrameCsvWriter:
    """Streams one row per analysed frame: index, time, argmax labels, all probabilities.

    Columns: ``frame, pts_s, quality, organ, quality_<label>..., organ_<label>...``. The
    argmax ``organ`` is empty where the model gave no organ output for the frame.
    """

    def __init__(self, path: str | os.PathLike, heads: Mapping[str, Sequence[str]]):
        self.path = Path(path)
        self.heads = {h: list(labels) for h, labels in heads.items()}
        directory = self.path.parent if str(self.path.parent) else Path(".")
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                             dir=directory)
        except OSError as e:
            raise OutputError(f"cannot write '{self.path}': {e.strerror or e}; "
                              "choose another --csv") from e
        self._fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh)
        header = ["frame", "pts_s"] + [h for h in ("quality", "organ") if h in self.heads]
        for head, labels in self.heads.items():
            header += [f"{head}_{label}" for label in labels]
        self._csv.writerow(header)

    def write(self, pred: Prediction) -> None:
        row: list[object] = [pred.index, f"{pred.pts_s:.4f}"]
        for head in ("quality", "organ"):
            if head in self.heads:
                p = pred.probs.get(head)
                row.append(self.heads[head][int(p.argmax())] if p is not None else "")
        for head, labels in self.heads.items():
            p = pred.probs.get(head)
            row += [f"{v:.4f}" for v in p] if p is not None else [""] * len(labels)
        try:
            self._csv.writerow(row)
        except OSError as e:
            raise OutputError(f"cannot write '{self.path}': {e.strerror or e}; "
                              "choose another --csv") from e

    def close(self) -> None:
        """Flush and move the file into place (also after an interrupted run).

        If that fails, the temporary file is removed: no half-written file is left behind.
        """
        if self._fh.closed:
            return
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.chmod(self._tmp, new_file_mode())
            os.replace(self._tmp, self.path)
        except OSError as e:
            self.discard()
            raise OutputError(f"cannot write '{self.path}': {e.strerror or e}; "
                              "choose another --csv") from e

    def discard(self) -> None:
        """Drop what was written (a run that failed): nothing appears at ``path``."""
        try:
            self._fh.close()
        except OSError:
            pass
        try:
            os.unlink(self._tmp)
        except OSError:
            pass

    def __enter__(self) -> FrameCsvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
