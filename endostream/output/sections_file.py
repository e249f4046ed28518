"""Writing ``sections.json`` (schema ``endostream.sections/1``).

The document itself is :class:`~endostream.output.document.SectionsDocument` (with its one
reader, :func:`~endostream.output.document.read_sections`); :func:`write_document` writes
one atomically (:mod:`endostream.output.atomic`), so a reader never sees half a file, even
after a crash or Ctrl+C. :func:`build_document` assembles a document from a run's parts
(the live session's; the offline pipeline returns its document ready made).

The JSON Schema ships in the package (``endostream/schema/sections.schema.json``); the
reader checks every file against it and docs/sections-schema.md documents every field.

>>> from endostream.segmentation.section import Section
>>> from endostream.frames import SourceInfo
>>> doc = build_document(sections=[Section("nose", 0.0, 41.3, 0, 1238, 0.86, 0.95)],
...                      complete=True, source=SourceInfo("v.mp4", 30.0, 1239, 41.3, 640, 480),
...                      models={"path": "m.onnx", "sha256": "0" * 64, "heads": {}},
...                      frames_analysed=207, sample_fps=5.0, segmenter={})
>>> doc.to_json()["schema"], doc.sections[0].label
('endostream.sections/1', 'nose')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from endostream.frames import SourceInfo
from endostream.output.atomic import write_text_atomic
from endostream.output.document import (
    SCHEMA_ID,
    Analysis,
    ModelsInfo,
    SectionsDocument,
    sections_schema,
)
from endostream.segmentation.section import Section

__all__ = ["SCHEMA_ID", "DEFAULT_SECTIONS_SUFFIX", "schema", "build_document",
           "write_document"]

#: Suffix of a video's sections file when endostream names it (beside the video, or in an
#: archive's --out-dir).
DEFAULT_SECTIONS_SUFFIX = ".sections.json"


def schema() -> dict[str, Any]:
    """The JSON Schema of ``sections.json`` shipped with the package."""
    return sections_schema()


def build_document(
    *,
    sections: Sequence[Section],
    complete: bool,
    source: SourceInfo,
    models: Mapping[str, Any],
    frames_analysed: int,
    sample_fps: float | None,
    segmenter: Mapping[str, Any],
    extra_analysis: Mapping[str, Any] | None = None,
) -> SectionsDocument:
    """A run's parts as a :class:`SectionsDocument`, as its file will read back (times
    rounded as written).

    ``source`` is written as given (callers pass what was really decoded); ``models`` is
    :meth:`Classifier.describe`; ``extra_analysis`` adds run-specific facts under
    ``analysis`` (the archive's input fingerprint, the live session's drops and
    reconnects).
    """
    return SectionsDocument(
        complete=bool(complete), source=source, models=ModelsInfo.from_json(models),
        analysis=Analysis(frames_analysed, sample_fps, dict(segmenter),
                          dict(extra_analysis or {})),
        sections=tuple(sections)).as_written()


def write_document(path: str | os.PathLike, document: SectionsDocument, *,
                   hint: str = "choose another --out") -> None:
    """Write ``document`` to ``path`` atomically (``hint``: what to do when it fails)."""
    write_text_atomic(path, document.dumps(), hint=hint)
