"""The rules of a corrected ``sections.json`` (one with a ``review`` record), checked on
the parsed JSON by the one reader (:func:`endostream.output.document.read_sections`) and
mirrored, word for word, by the report's edit mode before it saves a file.

A corrected document keeps the document's own invariants and these:

- the same extent as the model's sections in ``review.original_sections`` (first frame
  and time, last frame and time): a correction relabels the video, it does not lengthen
  or shorten it;
- labels the model knows (its organ labels, or ``usable`` for a quality-only model) or
  ``unusable``;
- a boundary the reviewer placed lies at its frame's time (``t0 + (frame - f0) / fps``
  with ``t0``, ``f0`` the start of the model's first section, within one frame
  interval); the model's own boundaries stay as the segmenter put them (midway between
  analysed frames);
- ``review.changed`` names each section at most once, and only sections that exist.

:mod:`endostream.corrections.rules` makes corrected documents, compares them with their
original and hands these rules to the page (``page_rules``).

>>> model = [{"label": "ear", "start_s": 0.0, "end_s": 1.7, "start_frame": 0,
...           "end_frame": 42}, {"label": "nose", "start_s": 1.7, "end_s": 4.0,
...           "start_frame": 43, "end_frame": 99}]
>>> correction_problem(model, model=model, labels=["ear", "nose"], fps=25.0) is None
True
>>> moved = [{**model[0], "end_frame": 29, "end_s": 1.0},
...          {**model[1], "start_frame": 30, "start_s": 1.0}]
>>> correction_problem(moved, model=model, labels=["ear", "nose"], fps=25.0)
'sections[1] starts at frame 30 but at 1.000 s; at 25 fps that frame is at 1.200 s'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from endostream.segmentation.section import QUALITY_ONLY_LABEL, UNUSABLE

#: Times are written to the millisecond; two times closer than this are the same.
TIME_TOLERANCE_S = 0.0015

#: What to do about a corrected file that breaks a rule (every refusal says it).
FIX = ("correct the sections again in the report or Label Studio and save a new file "
       "(the rules: docs/notes/corrections-rules.md)")


def refusal(name: str, problem: str) -> str:
    """The one line that refuses a corrected file ``name`` (quoted as it should show).

    >>> refusal("'c.json'", "sections[1] leaves a gap to the one before (frame 9 after 7)")
    ... # doctest: +ELLIPSIS
    "'c.json' breaks a rule of a corrected sections file: sections[1] leaves a gap ...; ..."
    """
    return f"{name} breaks a rule of a corrected sections file: {problem}; {FIX}"


def allowed_labels(heads: Mapping[str, Sequence[str]]) -> list[str]:
    """The labels a correction may use, given the model's ``heads``: its organ labels
    (``usable`` for a model with a quality head only) and ``unusable``.

    >>> allowed_labels({"quality": ["bad", "good"], "organ": ["ear", "nose"]})
    ['ear', 'nose', 'unusable']
    """
    return [*(heads.get("organ") or [QUALITY_ONLY_LABEL]), UNUSABLE]


def frame_time(frame: int, *, t0: float, f0: int, fps: float) -> float:
    """Container time of ``frame`` on a constant-rate video whose frame ``f0`` is at
    ``t0``, to the millisecond.

    >>> frame_time(50, t0=0.0, f0=0, fps=25.0)
    2.0
    """
    return round(t0 + (frame - f0) / fps, 3)


def correction_problem(sections: Sequence[Mapping[str, Any]], *,
                       model: Sequence[Mapping[str, Any]], labels: Sequence[str],
                       fps: float | None) -> str | None:
    """What, beyond the document's own invariants, is wrong with ``sections`` (as JSON)
    as a correction of ``model``; ``None`` when nothing is."""
    if not model:
        return "review.original_sections is empty: the model's sections are lost"
    for i, s in enumerate(sections):
        if s["label"] not in labels:
            return (f"sections[{i}] is labelled '{s['label']}', which the model does not know "
                    f"(labels: {', '.join(labels)})")
    first, last = sections[0], sections[-1]
    if (first["start_frame"] != model[0]["start_frame"]
            or abs(first["start_s"] - model[0]["start_s"]) > TIME_TOLERANCE_S
            or last["end_frame"] != model[-1]["end_frame"]
            or abs(last["end_s"] - model[-1]["end_s"]) > TIME_TOLERANCE_S):
        return (f"the sections cover frames {first['start_frame']}-{last['end_frame']}, the "
                f"model's frames {model[0]['start_frame']}-{model[-1]['end_frame']}: a "
                "correction must cover the same video")
    if fps:
        model_starts = {(s["start_frame"], round(s["start_s"], 3)) for s in model}
        t0, f0 = model[0]["start_s"], model[0]["start_frame"]
        for i, s in enumerate(sections[1:], 1):
            if (s["start_frame"], round(s["start_s"], 3)) in model_starts:
                continue
            expected = frame_time(s["start_frame"], t0=t0, f0=f0, fps=fps)
            if abs(s["start_s"] - expected) > 1.0 / fps + TIME_TOLERANCE_S:
                return (f"sections[{i}] starts at frame {s['start_frame']} but at "
                        f"{s['start_s']:.3f} s; at {fps:g} fps that frame is at "
                        f"{expected:.3f} s")
    return None


def changed_problem(changed: Sequence[int], n_sections: int) -> str | None:
    """What is wrong with ``review.changed`` for a document of ``n_sections`` sections."""
    if len(set(changed)) != len(changed) or any(not 0 <= i < n_sections for i in changed):
        return "review.changed names a section twice or one that does not exist"
    return None


def review_problem(data: Mapping[str, Any]) -> str | None:
    """What is wrong with a schema-valid document that keeps the invariants and carries a
    ``review`` record, checked against its own ``original_sections``; ``None`` when
    nothing is."""
    review = data["review"]
    return (correction_problem(data["sections"], model=review["original_sections"],
                               labels=allowed_labels(data["models"]["heads"]),
                               fps=data["source"]["fps"])
            or changed_problem(review["changed"], len(data["sections"])))
