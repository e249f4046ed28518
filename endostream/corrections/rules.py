"""A reviewer's corrections to a ``sections.json``: checked, and recorded beside the model's.

A corrected document is the original one with other ``sections`` and a ``review`` object
(schema ``endostream.sections/1``): which tool, when, the indices of the sections the
reviewer made or changed, and the model's sections as they were (``original_sections``),
so the change stays visible and a second review still compares with the model.

Corrections come from the HTML report's edit mode (its script builds the same document)
and from a Label Studio export (:mod:`endostream.corrections.labelstudio`). Whatever their
origin they must keep the document's invariants (schema, order, no gap, no overlap:
:mod:`endostream.output.document`, the one reader) and the rules of a correction
(:mod:`endostream.output.review_rules`: the model's extent, its labels, boundaries at
their frame's time), which the reader applies to every file with a ``review`` record;
checked here against an original as well: the same video as the original (file name
where both give one, frames, frame rate, duration, size) and the same model (sha256).

The report's page gets these rules as data (:func:`page_rules`: the schema, the
tolerances, the labels) and its script checks the very file it is about to save with the
same rules in the same words; ``tests/test_corrections_page_rules.py`` runs both on the
same documents.

A file that breaks any of them is refused with :class:`CorrectionsError` (exit 9) and
nothing is written: the original findings are never replaced by a broken correction.

>>> from endostream.frames import SourceInfo
>>> from endostream.output.document import Analysis, ModelsInfo, SectionsDocument
>>> from endostream.segmentation.section import QUALITY_ONLY_LABEL, UNUSABLE, Section
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
endostream.errors.CorrectionsError: the corrections breaks a rule of a corrected sections file: ...
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
from endostream.output import document as _document
from endostream.output.document import (
    SCHEMA_ID,
    ModelsInfo,
    Review,
    SectionsDocument,
    invariant_problem,
    sections_schema,
)
from endostream.output.review_rules import (
    FIX,
    TIME_TOLERANCE_S,
    changed_problem,
    correction_problem,
    frame_time,
    refusal,
    review_problem,
)
from endostream.output.review_rules import allowed_labels as _labels_of_heads
from endostream.output.schema_check import first_problem
from endostream.segmentation.section import QUALITY_ONLY_LABEL, UNUSABLE, Section

__all__ = ["CORRECTED_SUFFIX", "FIX", "REVIEWED_CONFIDENCE", "TIME_TOLERANCE_S",
           "allowed_labels", "check_reviewed", "corrections_from_json", "frame_time",
           "model_sections", "page_rules", "read_corrections", "reviewed_document"]

#: What a correction says about a section the reviewer made or changed: the reviewer is
#: sure of it (the model's probability of the new label is not known without its frames).
REVIEWED_CONFIDENCE = 1.0

#: How a corrected file's name ends (:mod:`endostream.corrections.names` gives the rest).
CORRECTED_SUFFIX = ".corrected.sections.json"



def allowed_labels(models: ModelsInfo) -> list[str]:
    """The labels a correction may use: the model's organ labels (``usable`` for a model
    with a quality head only) and ``unusable``.

    >>> allowed_labels(ModelsInfo("m.onnx", "0" * 64, {"organ": ("ear", "nose")}))
    ['ear', 'nose', 'unusable']
    """
    return _labels_of_heads(models.heads)


def model_sections(doc: SectionsDocument) -> tuple[Section, ...]:
    """The model's sections: those kept by a review, else the document's own."""
    return doc.review.original_sections if doc.review is not None else doc.sections


def page_rules(doc: SectionsDocument) -> dict[str, Any]:
    """The rules of a correction of ``doc`` as data for the report's script, which checks
    the file it saves with them: the shipped schema, the tolerances and slack of the
    document's invariants, the labels a correction may use and the fix every refusal
    names. Nothing in the script restates a number of its own.

    >>> from endostream.frames import SourceInfo
    >>> from endostream.output.document import Analysis
    >>> rules = page_rules(SectionsDocument(
    ...     complete=True, source=SourceInfo("v.mp4", 25.0, 100, 4.0, 64, 48),
    ...     models=ModelsInfo("m.onnx", "0" * 64, {"organ": ("ear", "nose")}),
    ...     analysis=Analysis(frames_analysed=20, sample_fps=5.0),
    ...     sections=(Section("ear", 0.0, 4.0, 0, 99, 0.9, 0.8),)))
    >>> rules["labels"], rules["time_tolerance_s"], rules["schema"]["$id"]
    (['ear', 'nose', 'unusable'], 0.0015, 'endostream.sections/1')
    """
    # Without "$schema" (it only names the draft): the report links to nothing outside.
    schema = {k: v for k, v in sections_schema().items() if k != "$schema"}
    return {"schema": schema, "time_tolerance_s": TIME_TOLERANCE_S,
            "slack_frames": _document.SLACK_FRAMES, "slack_s": _document.SLACK_S,
            "far_factor": _document.FAR_FACTOR, "labels": allowed_labels(doc.models),
            "quality_only_label": QUALITY_ONLY_LABEL, "unusable": UNUSABLE, "fix": FIX}


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
    the rules of a correction and, with ``original``, the same video and model); raises
    :class:`CorrectionsError` naming ``name`` and the first problem."""
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA_ID:
        raise CorrectionsError(f"{name} is not a sections file (schema is not {SCHEMA_ID}); "
                               "give the file the report or 'labelstudio import' saved")
    if "review" not in data:
        raise CorrectionsError(f"{name} holds no review record: it is not a corrected "
                               "sections file; give the file the report or 'labelstudio "
                               "import' saved")
    problem = (first_problem(data, sections_schema()) or invariant_problem(data)
               or review_problem(data))
    if problem:
        raise CorrectionsError(refusal(name, problem))
    doc = SectionsDocument.from_json(dict(data), origin=name)
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
    problem = correction_problem([s.to_json() for s in doc.sections],
                                 model=[s.to_json() for s in model],
                                 labels=allowed_labels(doc.models), fps=doc.source.fps)
    if problem is None and doc.review is not None:
        problem = changed_problem(doc.review.changed, len(doc.sections))
    if problem:
        raise CorrectionsError(refusal(name, problem))


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
