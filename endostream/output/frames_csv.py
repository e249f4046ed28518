"""The per-frame CSV: one row per analysed frame, written as predictions arrive.

An interrupted run keeps every analysed frame: rows go to a temporary file
(:class:`~endostream.output.atomic.AtomicFile`) that is renamed into place on
:meth:`FrameCsvWriter.close`, like the JSON, or removed by :meth:`FrameCsvWriter.discard`
when the run failed and writes no JSON either.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from endostream.errors import OutputError
from endostream.frames import Prediction
from endostream.output.atomic import AtomicFile


class FrameCsvWriter:
    """Streams one row per analysed frame: index, time, argmax labels, all probabilities.

    Columns: ``frame, pts_s, quality, organ, quality_<label>..., organ_<label>...``. The
    argmax ``organ`` is empty where the model gave no organ output for the frame.
    """

    def __init__(self, path: str | os.PathLike, heads: Mapping[str, Sequence[str]]):
        self.path = Path(path)
        self.heads = {h: list(labels) for h, labels in heads.items()}
        self._out = AtomicFile(self.path, newline="", hint="choose another --csv")
        self._csv = csv.writer(self._out.file)
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
        self._out.commit()

    def discard(self) -> None:
        """Drop what was written (a run that failed): nothing appears at ``path``."""
        self._out.discard()

    def __enter__(self) -> FrameCsvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
