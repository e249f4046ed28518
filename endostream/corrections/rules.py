"""A reviewer's corrections to a ``sections.json``: checked, and recorded beside the model's.

A corrected document is the original one with other ``sections`` and a ``review`` object
(schema ``endostream.sections/1``): which tool, when, the indices of the sections the
reviewer made or changed, and the model's sections as they were (``original_sections``),
so the change stays visible and a second review still compares with the model.

Corrections come from the HTML report's edit mode (its script builds the same document)
and from a Label Studio export (:mod:`endostream.corrections.labelstudio`). Whatever their
origin they must keep the document's invariants (schema, order, no gap, no overlap:
:mod:`endostream.output.document`, the one reader) and these, checked here:

- the same extent as the model's sections (first frame and time, last frame and time):
  a correction relabels the video, it does not lengthen or shorten it;
- labels the model knows (its organ labels, or ``usable`` for a quality-only model) or
  ``unusable``;
- a boundary the reviewer placed lies at its frame's time (``t0 + (frame - f0) / fps``,
  within one frame interval); the model's own boundaries stay as the segmenter put them
  (midway between analysed frames);
- the same video as the original (file name where both give one, frames, frame rate,
  duration, size) and the same model (sha256).

A file that breaks any of them is refused with :class:`CorrectionsError` (exit 9) and
nothing is written: the original findings are never replaced by a broken correction.

>>> from endostream.frames import SourceInfo
>>> from endostream.output.document import Analysis, ModelsInfo, SectionsDocument
>>> from endostream.segmentation.section import Section
>>> doc = SectionsDocument(
...     complete=True, source=SourceInfo("v.mp4", 25.0, 100, 4.0, 64, 48),
...     models=ModelsInfo("m.onnx", "0" * 64, {"quality": ("bad", "good"),
...                                            "organ": ("ear", "nose")}),
...     analysis=Analysis(frames_analysed=20, sample_fps=5.0),
...     sections=(Section("ear", 0.0, 4.0, 0, 99, 0.9, 0.8),))
>>> fixed = reviewed_document(doc, [Section("ear", 0.0, 1.0, 0, 24, 0.9, 0.8),
...                                 Section("nose", 1.0, 4.0, 25, 99, 0.9, 0.8)],
...                           tool="example", reviewed_at="2026-12-03T00:00:00Z")
>>> fixed.review.changed, fixed.sections[1].confidence
((0, 1), 1.0)
>>> reviewed_document(doc, [Section("ear", 0.0, 1.0, 0, 30, 0.9, 0.8),  # doctest: +ELLIPSIS
...                         Section("nose", 1.0, 4.0, 25, 99, 0.9, 0.8)], tool="example")
Traceback (most recent call last):
...
endostream.errors.CorrectionsError: the corrections: sections[1] overlaps the one before ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from endostream.errors import CorrectionsError
from endostream.output.document import (
    SCHEMA_ID,
    ModelsInfo,
    Review,
    SectionsDocument,
    invariant_problem,
    sections_schema,
)
from endostream.output.schema_check import first_problem
from endostream.segmentation.section import QUALITY_ONLY_LABEL, UNUSABLE, Section

#: What a correction says about a section the reviewer made or changed: the reviewer is
#: sure of it (the model's probability of the new label is not known without its frames).
REVIEWED_CONFIDENCE = 1.0

#: Times are written to the millisecond; two times closer than this are the same.
TIME_TOLERANCE_S = 0.0015

#: Name of a corrected file: ``VIDEO-stem.corrected.sections.json``.
CORRECTED_SUFFIX = ".corrected.sections.json"

_FIX = "correct the sections and save again"


def allowed_labels(models: ModelsInfo) -> list[str]:
    """The labels a correction may use: the model's organ labels (``usable`` for a model
    with a quality head only) and ``unusable``.

    >>> allowed_labels(ModelsInfo("m.onnx", "0" * 64, {"organ": ("ear", "nose")}))
    ['ear', 'nose', 'unusable']
    """
    return [*(models.heads.get("organ") or [QUALITY_ONLY_LABEL]), UNUSABLE]


def frame_time(frame: int, *, t0: float, f0: int, fps: float) -> float:
    """Container time of ``frame`` on a constant-rate video whose frame ``f0`` is at
    ``t0``, to the millisecond.

    >>> frame_time(50, t0=0.0, f0=0, fps=25.0)
    2.0
    """
    return round(t0 + (frame - f0) / fps, 3)


def model_sections(doc: SectionsDocument) -> tuple[Section, ...]:
    """The model's sections: those kept by a review, else the document's own."""
    return doc.review.original_sections if doc.review is not None else doc.sections


def correction_problem(sections: Sequence[Section], *, model: Sequence[Section],
                       labels: Sequence[str], fps: float | None) -> str | None:
    """What, beyond the document's own invariants, is wrong with ``sections`` as a
    correction of ``model`` (see the module docstring); ``None`` when nothing is."""
    for i, s in enumerate(sections):
        if s.label not in labels:
            return (f"sections[{i}] is labelled '{s.label}', which the model does not know "
                    f"(labels: {', '.join(labels)})")
    first, last = sections[0], sections[-1]
    if (first.start_frame != model[0].start_frame
            or abs(first.start_s - model[0].start_s) > TIME_TOLERANCE_S
            or last.end_frame != model[-1].end_frame
            or abs(last.end_s - model[-1].end_s) > TIME_TOLERANCE_S):
        return (f"the sections cover frames {first.start_frame}-{last.end_frame}, the "
                f"model's frames {model[0].start_frame}-{model[-1].end_frame}: a "
                "correction must cover the same video")
    if fps:
        model_starts = {(s.start_frame, round(s.start_s, 3)) for s in model}
        t0, f0 = model[0].start_s, model[0].start_frame
        for i, s in enumerate(sections[1:], 1):
            if (s.start_frame, round(s.start_s, 3)) in model_starts:
                continue
            expected = frame_time(s.start_frame, t0=t0, f0=f0, fps=fps)
            if abs(s.start_s - expected) > 1.0 / fps + TIME_TOLERANCE_S:
                return (f"sections[{i}] starts at frame {s.start_frame} but at "
                        f"{s.start_s:.3f} s; at {fps:g} fps that frame is at {expected:.3f} s")
    return None


def _changed(sections: Sequence[Section], model: Sequence[Section]) -> tuple[int, ...]:
    kept = {(s.label, s.start_frame, s.end_frame) for s in model}
    return tuple(i for i, s in enumerate(sections)
                 if (s.label, s.start_frame, s.end_frame) not in kept)


def _good_fraction(section: Section, model: Sequence[Section]) -> float:
    """The model's share of good frames over ``section``'s frames, weighted by frames."""
    total = weight = 0.0
    for m in model:
        overlap = min(m.end_frame, section.end_frame) - max(m.start_frame, section.start_frame) + 1
        if overlap > 0:
            total += overlap * m.good_fraction
            weight += overlap
    return round(total / weight, 4) if weight else 0.0


def reviewed_document(original: SectionsDocument, sections: Sequence[Section], *, tool: str,
                      reviewed_at: str | None = None) -> SectionsDocument:
    """``original`` with ``sections`` as corrected and a ``review`` recording the change.

    Sections equal to one of the model's (label and frames) keep the model's figures; the
    others get :data:`REVIEWED_CONFIDENCE` and the model's share of good frames over their
    frames. Raises :class:`CorrectionsError` when the result would break a rule.
    """
    model = model_sections(original)
    by_frames = {(s.label, s.start_frame, s.end_frame): s for s in model}
    changed = _changed(sections, model)
    out = tuple(replace(s, good_fraction=_good_fraction(s, model),
                        confidence=REVIEWED_CONFIDENCE) if i in changed
                else by_frames[(s.label, s.start_frame, s.end_frame)]
                for i, s in enumerate(sections))
    stamp = reviewed_at or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = replace(original, sections=out, review=Review(tool, stamp, changed, tuple(model)))
    # Through JSON and back: checked exactly as the file will be read.
    return corrections_from_json(doc.to_json(), original=None, name="the corrections")


def corrections_from_json(data: Any, *, original: SectionsDocument | None,
                          name: str) -> SectionsDocument:
    """The corrected document of parsed JSON, checked (schema, the document's invariants,
    the rules above and, with ``original``, the same video and model); raises
    :class:`CorrectionsError` naming ``name`` and the first problem."""
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA_ID:
        raise CorrectionsError(f"{name} is not a sections file (schema is not {SCHEMA_ID}); "
                               "give the file the report or 'labelstudio import' saved")
    problem = first_problem(data, sections_schema()) or invariant_problem(data)
    if problem:
        raise CorrectionsError(f"{name}: {problem}; {_FIX}")
    doc = SectionsDocument.from_json(data, origin=name)
    check_reviewed(doc, original, name=name)
    return doc


def check_reviewed(doc: SectionsDocument, original: SectionsDocument | None = None,
                   *, name: str = "the corrections") -> None:
    """Raise :class:`CorrectionsError` unless ``doc`` keeps the rules of a correction
    (against its own ``original_sections``, or ``original``'s model sections) and, with
    ``original``, describes the same video with the same model."""
    model = model_sections(doc)
    if original is not None:
        mine, theirs = doc.source, original.source
        differs = [k for k in ("fps", "frames", "duration_s", "width", "height")
                   if getattr(mine, k) != getattr(theirs, k)]
        # A report that may not name the video saves no path: then the facts decide.
        names = {Path(p).name for p in (mine.path, theirs.path)}
        if differs or (len(names) > 1 and "" not in names):
            raise CorrectionsError(f"{name} is about another video than the original "
                                   f"(different {', '.join(differs) or 'file name'}); "
                                   "correct the sections of this video")
        if doc.models.sha256 != original.models.sha256:
            raise CorrectionsError(f"{name} corrects another model's findings than the "
                                   "original's; correct the sections this model found")
        model = model_sections(original)
    problem = correction_problem(doc.sections, model=model, labels=allowed_labels(doc.models),
                                 fps=doc.source.fps)
    if problem is None and doc.review is not None:
        if len(set(doc.review.changed)) != len(doc.review.changed) or any(
                not 0 <= i < len(doc.sections) for i in doc.review.changed):
            problem = "review.changed names a section twice or one that does not exist"
    if problem:
        raise CorrectionsError(f"{name}: {problem}; {_FIX}")


def read_corrections(path: str | os.PathLike,
                     original: SectionsDocument | None = None) -> SectionsDocument:
    """Read and check a corrected ``sections.json`` (:func:`corrections_from_json`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CorrectionsError(f"cannot read '{path}' ({' '.join(str(e).split())}); give "
                               "the file the report or 'labelstudio import' saved") from e
    return corrections_from_json(data, original=original, name=f"'{path}'")
