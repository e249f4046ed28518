"""The result of an analysis, typed: :class:`SectionsDocument`, and the one reader of
``sections.json``, :func:`read_sections`.

A document holds the source that was decoded, the models that ran, the analysis settings
(the sample rate, the segmenter's settings — among them the good-frame threshold the run
really used — and run-specific facts such as the archive's input fingerprint) and the
sections. :meth:`SectionsDocument.to_json` gives the ``sections.json`` object in the
schema's key order (:mod:`endostream.output.sections_file` writes it);
:meth:`SectionsDocument.from_json` takes one back, checked against the shipped schema
(``endostream/schema/sections.schema.json``) and the invariants the schema cannot say:

- there is at least one section, and sections are in order and cover the analysed
  stretch without gap or overlap (``start_frame`` of one is ``end_frame + 1`` of the one
  before, ``start_s`` its ``end_s``), from frame 0 and 0 s;
- every section ends after it starts (a zero-length last section is allowed only in a
  document with ``complete: false``: a run stopped on its first analysed frame);
- times and frame indices stay within the video where its duration and frame count are
  known (with the slack of a container that states them slightly wrong).

A document with a ``review`` record (a reviewer's corrections) must also keep the rules
of :mod:`endostream.output.review_rules`.

Everything that reads a sections file goes through :func:`read_sections`; a file that
fails any check raises :class:`~endostream.errors.UsageError` (exit 2: bad input) with one
line naming the file and the problem, or :class:`~endostream.errors.CorrectionsError`
(exit 9: a refused correction) for a corrected one. Nothing else indexes the JSON by its
keys.

>>> from endostream.segmentation.section import Section
>>> doc = SectionsDocument(
...     complete=True, source=SourceInfo("v.mp4", 25.0, 100, 4.0, 64, 48),
...     models=ModelsInfo("m.onnx", "0" * 64, {"quality": ("bad", "good"),
...                                            "organ": ("ear", "nose")}),
...     analysis=Analysis(frames_analysed=20, sample_fps=5.0,
...                       segmenter={"mode": "offline", "good_threshold": 0.6}),
...     sections=(Section("ear", 0.0, 4.0, 0, 99, 1.0, 0.9),))
>>> SectionsDocument.from_json(doc.to_json()) == doc
True
>>> doc.analysis.good_threshold, doc.organ_labels
(0.6, ['ear', 'nose'])
>>> bad = {**doc.to_json(), "sections": []}
>>> SectionsDocument.from_json(bad, origin="s.json")
Traceback (most recent call last):
...
endostream.errors.UsageError: 's.json' is not a usable sections file (no sections); give ...
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from endostream.errors import CorrectionsError, EndostreamError, UsageError
from endostream.frames import SourceInfo
from endostream.output.review_rules import TIME_TOLERANCE_S, refusal, review_problem
from endostream.output.schema_check import first_problem, shipped_schema
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.section import UNUSABLE, Section

#: Schema identifier written into every document.
SCHEMA_ID = "endostream.sections/1"

#: Key under ``analysis`` of the per-frame CSV's SHA-256 (hex), written with the CSV.
FRAMES_CSV_SHA256 = "frames_csv_sha256"

#: Boundaries are written rounded to the millisecond; two times this close are one time.
_TIME_TOLERANCE_S = TIME_TOLERANCE_S
#: A container may state its duration or frame count slightly wrong (the pipeline
#: corrects them only after a complete decode): sections may end this many frames and
#: seconds past them.
SLACK_FRAMES, SLACK_S = 2, 0.5
#: The last frame may lie at most this many times the stated length past its time (a
#: variable frame rate stays well inside; frames of another video do not).
FAR_FACTOR = 4

_SCHEMA: dict[str, Any] | None = None


def sections_schema() -> dict[str, Any]:
    """The JSON Schema of ``sections.json`` shipped with the package (read once)."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = shipped_schema("sections")
    return _SCHEMA


@dataclass(frozen=True)
class ModelsInfo:
    """``models``: the file(s) that ran (comma-separated), their sha256 (comma-separated
    for two files) and the labels of each head, from the files themselves."""

    path: str
    sha256: str
    heads: Mapping[str, Sequence[str]]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ModelsInfo:
        """From :meth:`~endostream.inference.classifier.Classifier.describe` or a file."""
        return cls(str(d["path"]), str(d["sha256"]),
                   {str(h): tuple(labels) for h, labels in d["heads"].items()})

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256,
                "heads": {h: list(labels) for h, labels in self.heads.items()}}


@dataclass(frozen=True)
class Analysis:
    """``analysis``: what was analysed and how.

    ``sample_fps`` is the rate really used (``None``: every frame; live: what inference
    kept up with); ``segmenter`` the segmenter's settings as it describes itself;
    ``extra`` run-specific facts written after them, in order (the archive's ``input``
    fingerprint, the live session's ``live`` counters).
    """

    frames_analysed: int
    sample_fps: float | None
    segmenter: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def good_threshold(self) -> float:
        """p(good) at which the run counted a frame as good (``good_fraction``,
        ``confidence``): the recorded setting, else the default of the time."""
        value = self.segmenter.get("good_threshold")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else SegmenterConfig().good_threshold

    @property
    def input_fingerprint(self) -> Mapping[str, Any] | None:
        """The archive's ``input`` (video size and modification time), if recorded."""
        value = self.extra.get("input")
        return value if isinstance(value, Mapping) else None

    @property
    def frames_csv_sha256(self) -> str | None:
        """SHA-256 of the per-frame CSV written with the sections, if one was."""
        value = self.extra.get(FRAMES_CSV_SHA256)
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        return {"frames_analysed": self.frames_analysed, "sample_fps": self.sample_fps,
                "segmenter": dict(self.segmenter), **self.extra}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Analysis:
        known = ("frames_analysed", "sample_fps", "segmenter")
        return cls(int(d["frames_analysed"]), d["sample_fps"], dict(d["segmenter"]),
                   {k: v for k, v in d.items() if k not in known})


@dataclass(frozen=True)
class Review:
    """``review``: present when a person corrected the sections (the report's edit mode,
    Label Studio); :mod:`endostream.corrections.rules` makes and checks it.

    ``changed`` are indices into the document's sections that the reviewer made or
    changed; ``original_sections`` the model's sections, kept through later reviews.
    """

    tool: str
    reviewed_at: str
    changed: tuple[int, ...]
    original_sections: tuple[Section, ...]

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.tool, "reviewed_at": self.reviewed_at,
                "changed": list(self.changed),
                "original_sections": [s.to_json() for s in self.original_sections]}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Review:
        return cls(str(d["tool"]), str(d["reviewed_at"]), tuple(int(i) for i in d["changed"]),
                   tuple(Section.from_json(s) for s in d["original_sections"]))


@dataclass(frozen=True)
class SectionsDocument:
    """One ``sections.json``: the typed result of an analysis (see the module docstring)."""

    complete: bool
    source: SourceInfo
    models: ModelsInfo
    analysis: Analysis
    sections: tuple[Section, ...]
    #: A reviewer's corrections (``None``: the model's findings as they are).
    review: Review | None = None

    # -- what readers ask ----------------------------------------------------------------

    @property
    def heads(self) -> Mapping[str, Sequence[str]]:
        return self.models.heads

    @property
    def organ_labels(self) -> list[str]:
        """The model's organ labels, then any other label a section uses (a model of
        another version), :data:`UNUSABLE` excluded."""
        labels = list(self.models.heads.get("organ", ()))
        for s in self.sections:
            if s.label != UNUSABLE and s.label not in labels:
                labels.append(s.label)
        return labels

    @property
    def duration_s(self) -> float:
        """The video's duration, or the end of the last section where it is not known."""
        stated = self.source.duration_s
        return float(stated) if stated else (self.sections[-1].end_s if self.sections
                                              else 0.0)

    def with_analysis_facts(self, **facts: Any) -> SectionsDocument:
        """This document with run-specific facts added under ``analysis`` (after the
        settings, in order), e.g. the archive's ``input`` fingerprint."""
        analysis = replace(self.analysis, extra={**self.analysis.extra, **facts})
        return replace(self, analysis=analysis)

    def with_frames_csv(self, sha256: str) -> SectionsDocument:
        """This document naming the per-frame CSV written with it by its SHA-256, so a
        reader refuses another run's CSV (:mod:`endostream.procedure.identity`)."""
        return self.with_analysis_facts(**{FRAMES_CSV_SHA256: sha256})

    def seconds_per_label(self) -> dict[str, float]:
        """Seconds covered by each label, in order of first appearance (ms rounded)."""
        per_label: dict[str, float] = {}
        for s in self.sections:
            per_label[s.label] = per_label.get(s.label, 0.0) + s.end_s - s.start_s
        return {k: round(v, 3) for k, v in per_label.items()}

    # -- JSON ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The ``sections.json`` object, in the schema's key order; times rounded to the
        millisecond. Container metadata never reaches it: only these fields exist."""
        src = self.source
        return {
            "schema": SCHEMA_ID,
            "complete": bool(self.complete),
            "source": {
                "path": src.path,
                "fps": round(src.fps, 6) if src.fps else None,
                "frames": src.frames,
                "duration_s": round(src.duration_s, 3) if src.duration_s is not None else None,
                "width": src.width,
                "height": src.height,
                **({"fingerprint": src.fingerprint} if src.fingerprint is not None else {}),
            },
            "models": self.models.to_json(),
            "analysis": self.analysis.to_json(),
            "sections": [s.to_json() for s in self.sections],
            **({"review": self.review.to_json()} if self.review is not None else {}),
        }

    def dumps(self) -> str:
        """The JSON text as written to a file or stdout."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, data: Any, *, origin: str | os.PathLike = "<document>"
                  ) -> SectionsDocument:
        """The document of a parsed ``sections.json``; :class:`UsageError` naming
        ``origin`` and the first problem when it breaks the schema or an invariant
        (:class:`CorrectionsError` for a document with a ``review`` record)."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA_ID:
            raise unusable(origin, f"schema is not {SCHEMA_ID}", foreign=True)
        reviewed = "review" in data
        problem = first_problem(data, sections_schema()) or invariant_problem(data)
        if problem is None and reviewed:
            problem = review_problem(data)
        if problem is not None:
            raise unusable(origin, problem, reviewed=reviewed)
        return cls._parse(data)

    def as_written(self) -> SectionsDocument:
        """This document as its file will read back: times rounded as written. The
        builders return this, so that what a run hands on (an archive summary, a report)
        is exactly what the file says."""
        return self._parse(self.to_json())

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> SectionsDocument:
        """The document of JSON already checked (or just made by :meth:`to_json`)."""
        src = data["source"]
        return cls(
            complete=data["complete"],
            source=SourceInfo(path=src["path"], fps=src["fps"], frames=src["frames"],
                              duration_s=src["duration_s"], width=src["width"],
                              height=src["height"], fingerprint=src.get("fingerprint")),
            models=ModelsInfo.from_json(data["models"]),
            analysis=Analysis.from_json(data["analysis"]),
            sections=tuple(Section.from_json(s) for s in data["sections"]),
            review=Review.from_json(data["review"]) if "review" in data else None,
        )


class NotSectionsFile(UsageError):
    """The file is not an endostream sections file at all (missing, unreadable, not JSON,
    or another schema), as opposed to one of ours that breaks a rule: the archive never
    replaces such a file without ``--overwrite``, but redoes a broken one of its own."""


def unusable(origin: str | os.PathLike, problem: str, *, foreign: bool = False,
             reviewed: bool = False) -> EndostreamError:
    """The one error of a sections file that cannot be used: a corrected one (with a
    ``review`` record) is a refused correction, :class:`CorrectionsError` (exit 9)."""
    if reviewed:
        return CorrectionsError(refusal(f"'{origin}'", problem))
    error = NotSectionsFile if foreign else UsageError
    return error(f"'{origin}' is not a usable sections file ({problem}); give the "
                 "sections.json written by 'endostream segment'")


def invariant_problem(data: Mapping[str, Any]) -> str | None:
    """What the schema cannot say about a schema-valid document (see the module
    docstring); ``None`` when it holds."""
    sections = data["sections"]
    if not sections:
        return "no sections"
    src = data["source"]
    fps = src.get("fps")
    slack_s = (SLACK_FRAMES / fps if fps else 0.0) + SLACK_S
    prev = None
    for k, s in enumerate(sections):
        where = f"sections[{k}]"
        if s["end_frame"] < s["start_frame"]:
            return f"{where} ends at frame {s['end_frame']} before it starts at {s['start_frame']}"
        if not s["end_s"] > s["start_s"]:
            last_of_partial = k == len(sections) - 1 and not data["complete"] \
                and s["end_s"] == s["start_s"]
            if not last_of_partial:
                return f"{where} ends at {s['end_s']} s, not after its start {s['start_s']} s"
        if prev is None:
            if s["start_frame"] != 0 or abs(s["start_s"]) > _TIME_TOLERANCE_S:
                return f"{where} starts at frame {s['start_frame']}, {s['start_s']} s, not at 0"
        else:
            if s["start_frame"] != prev["end_frame"] + 1:
                kind = "overlaps" if s["start_frame"] <= prev["end_frame"] else "leaves a gap to"
                return (f"{where} {kind} the one before (frame {s['start_frame']} after "
                        f"{prev['end_frame']})")
            if abs(s["start_s"] - prev["end_s"]) > _TIME_TOLERANCE_S:
                kind = "overlaps" if s["start_s"] < prev["end_s"] else "leaves a gap to"
                return (f"{where} {kind} the one before ({s['start_s']} s after "
                        f"{prev['end_s']} s)")
        prev = s
    duration = src.get("duration_s")
    if duration is not None and prev["end_s"] > duration + slack_s:
        return f"the sections end at {prev['end_s']} s, after the video's {duration} s"
    frames = src.get("frames")
    if frames is not None and fps:
        if prev["end_frame"] > frames - 1 + math.ceil(slack_s * fps):
            return (f"the sections end at frame {prev['end_frame']}, after the video's "
                    f"{frames} frames")
    if duration is not None and fps and frames is not None:
        # Frame indices and times must describe the same video: the last frame cannot lie
        # far beyond where its time says it is (variable frame rates stay well inside).
        at_s = prev["end_frame"] / fps
        if at_s > max(prev["end_s"], duration) * FAR_FACTOR + slack_s:
            return (f"frame {prev['end_frame']} at {fps:g} fps is {at_s:.1f} s, far after "
                    f"the sections' end at {prev['end_s']} s")
    return None


def read_sections(path: str | os.PathLike) -> SectionsDocument:
    """Read and check the ``sections.json`` at ``path``: the one reader of the file.

    Raises :class:`UsageError` (exit 2) with one line naming the file and the problem:
    :class:`NotSectionsFile` for a missing or unreadable file, or one that is not an
    endostream sections file at all; plain :class:`UsageError` for one that breaks the
    schema or an invariant; :class:`CorrectionsError` (exit 9) for a corrected one (with a
    ``review`` record) that breaks them or a rule of a correction.
    """
    path = Path(path)
    if not path.is_file():
        raise NotSectionsFile(f"sections file not found: '{path}'; give the sections.json "
                              "written by 'endostream segment'")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise unusable(path, f"cannot be read: {e}", foreign=True) from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise unusable(path, f"not JSON: {' '.join(str(e).split())}", foreign=True) from None
    return SectionsDocument.from_json(data, origin=path)
