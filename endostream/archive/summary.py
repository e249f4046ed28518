"""The archive summary: ``archive.json`` (schema ``endostream.archive/1``) and ``archive.csv``.

One record per video — its status, duration, frames analysed, sections, seconds per
label, unusable share, wall time, and the one-line error of a video that failed — and
totals over the archive (hours of video, hours per label, failures, video-hours analysed
per wall-hour of this run). The driver rewrites both files atomically after every video,
so a crash loses at most the videos in flight. Only facts from the sections files and
the file system go in: nothing from container metadata.

Statuses: ``done`` (analysed this run), ``skipped`` (an up-to-date result was kept),
``partial`` (written with ``complete: false``: decoding failed part way),
``interrupted`` (in flight at Ctrl+C: written with ``complete: false``), ``failed``
(nothing could be analysed), ``pending`` (not reached yet).

>>> from endostream.output.sections_file import build_document
>>> from endostream.segmentation.section import Section
>>> from endostream.frames import SourceInfo
>>> doc = build_document(complete=True, source=SourceInfo("a.mp4", 5.0, 100, 20.0, 64, 48),
...                      models={"path": "m.onnx", "sha256": "0" * 64, "heads": {}},
...                      frames_analysed=100, sample_fps=None, segmenter={},
...                      sections=[Section("nose", 0, 15, 0, 74, 1, 1),
...                                Section("unusable", 15, 20, 75, 99, 0, 1)])
>>> r = VideoRecord.from_document("a.mp4", "a.mp4.sections.json", "done", doc, wall_s=2.0)
>>> r.seconds_per_label, r.unusable_share
({'nose': 15.0, 'unusable': 5.0}, 0.25)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from endostream.archive.inputs import SUMMARY_CSV, SUMMARY_JSON
from endostream.output.atomic import write_json_atomic, write_text_atomic
from endostream.output.document import SectionsDocument
from endostream.segmentation.section import UNUSABLE

#: Schema identifier written into every summary.
SCHEMA_ID = "endostream.archive/1"
STATUSES = ("done", "skipped", "partial", "interrupted", "failed", "pending")
#: Statuses whose sections file is complete: they count towards the hours of video.
COMPLETE_STATUSES = ("done", "skipped")
#: Statuses that count as failures (exit code 8).
FAILURE_STATUSES = ("failed", "partial")


def schema() -> dict[str, Any]:
    """The JSON Schema of ``archive.json`` shipped with the package."""
    text = resources.files("endostream").joinpath("schema/archive.schema.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class VideoRecord:
    """One video's line in the summary. ``wall_s`` is ``None`` unless analysed this run."""

    name: str
    output: str
    status: str
    error: str | None = None
    duration_s: float | None = None
    frames_analysed: int | None = None
    sections: int | None = None
    seconds_per_label: dict[str, float] = field(default_factory=dict)
    unusable_share: float | None = None
    wall_s: float | None = None
    worker: str | None = None
    exit_code: int | None = None  #: what a single-video ``segment`` would have exited with
    size_bytes: int | None = None  #: the video's fingerprint when this record was made
    mtime_ns: int | None = None

    @classmethod
    def from_document(cls, name: str, output: str, status: str, doc: SectionsDocument, *,
                      error: str | None = None, wall_s: float | None = None,
                      worker: str | None = None) -> VideoRecord:
        """The record of a video from its sections document."""
        per_label = doc.seconds_per_label()
        covered = sum(per_label.values())
        return cls(
            name=name, output=output, status=status, error=error,
            duration_s=doc.source.duration_s,
            frames_analysed=doc.analysis.frames_analysed,
            sections=len(doc.sections),
            seconds_per_label=per_label,
            unusable_share=round(per_label.get(UNUSABLE, 0.0) / covered, 4) if covered else None,
            wall_s=round(wall_s, 3) if wall_s is not None else None,
            worker=worker,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "output": self.output, "status": self.status,
            "error": self.error, "duration_s": self.duration_s,
            "frames_analysed": self.frames_analysed, "sections": self.sections,
            "seconds_per_label": dict(self.seconds_per_label),
            "unusable_share": self.unusable_share, "wall_s": self.wall_s,
            "worker": self.worker, "exit_code": self.exit_code,
            "size_bytes": self.size_bytes, "mtime_ns": self.mtime_ns,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> VideoRecord:
        """A record as :meth:`to_json` wrote it (unknown keys ignored)."""
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__ if k in d})


def totals(records: Sequence[VideoRecord], wall_s: float) -> dict[str, Any]:
    """Archive totals; the throughput counts only what was analysed in this run."""
    counts = {s: 0 for s in STATUSES}
    for r in records:
        counts[r.status] += 1
    complete = [r for r in records if r.status in COMPLETE_STATUSES]
    hours_per_label: dict[str, float] = {}
    for r in complete:
        for label, s in r.seconds_per_label.items():
            hours_per_label[label] = hours_per_label.get(label, 0.0) + s / 3600
    covered = sum(hours_per_label.values())
    this_run = [r for r in records if r.wall_s is not None and r.status != "failed"]
    run_hours = sum((r.duration_s or 0.0) for r in this_run if r.status == "done") / 3600
    run_hours += sum(sum(r.seconds_per_label.values()) for r in this_run
                     if r.status != "done") / 3600
    return {
        "videos": len(records),
        **counts,
        "failures": sum(counts[s] for s in FAILURE_STATUSES),
        "hours_of_video": round(sum((r.duration_s or 0.0) for r in complete) / 3600, 6),
        "hours_per_label": {k: round(v, 6) for k, v in hours_per_label.items()},
        "unusable_share": round(hours_per_label.get(UNUSABLE, 0.0) / covered, 4)
        if covered else None,
        "run": {
            "videos_analysed": len(this_run),
            "hours_analysed": round(run_hours, 6),
            "wall_s": round(wall_s, 3),
            "video_hours_per_wall_hour": round(run_hours * 3600 / wall_s, 3) if wall_s > 0
            else None,
        },
    }


def build_summary(records: Sequence[VideoRecord], *, engine: str, models: dict[str, Any],
                  analysis: dict[str, Any], started_at: datetime,
                  wall_s: float, root: str | None = None) -> dict[str, Any]:
    """The ``archive.json`` document. ``complete`` is false while any video is pending
    or was interrupted; ``root`` is the folder the videos' names are relative to."""
    summary = {
        "schema": SCHEMA_ID,
        "complete": not any(r.status in ("pending", "interrupted") for r in records),
        "engine": engine,
        "models": models,
        "analysis": analysis,
        "started_at": _iso(started_at),
        "updated_at": _iso(datetime.now(timezone.utc)),
        "totals": totals(records, wall_s),
        "videos": [r.to_json() for r in records],
    }
    if root is not None:
        summary["root"] = root
    return summary


def summary_csv(records: Sequence[VideoRecord], labels: Sequence[str] = ()) -> str:
    """``archive.csv``: one row per video; ``seconds_<label>`` for ``labels`` and any
    other label found, in that order."""
    all_labels = list(labels)
    for r in records:
        all_labels += [k for k in r.seconds_per_label if k not in all_labels]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "status", "duration_s", "frames_analysed", "sections",
                "unusable_share", "wall_s", *(f"seconds_{k}" for k in all_labels),
                "output", "worker", "error"])
    for r in records:
        w.writerow([r.name, r.status, _cell(r.duration_s), _cell(r.frames_analysed),
                    _cell(r.sections), _cell(r.unusable_share), _cell(r.wall_s),
                    *(_cell(r.seconds_per_label.get(k, 0.0) if r.sections is not None
                            else None) for k in all_labels),
                    r.output, r.worker or "", r.error or ""])
    return buf.getvalue()


def write_summary(out_dir: Path, document: dict[str, Any], records: Sequence[VideoRecord],
                  labels: Sequence[str] = ()) -> None:
    """Write ``archive.json`` and ``archive.csv`` atomically into ``out_dir``."""
    hint = "choose another --out-dir"
    write_json_atomic(out_dir / SUMMARY_JSON, document, hint=hint)
    write_text_atomic(out_dir / SUMMARY_CSV, summary_csv(records, labels), hint=hint)


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
