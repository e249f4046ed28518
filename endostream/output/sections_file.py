"""The ``sections.json`` document (schema ``endostream.sections/1``).

:func:`build_document` assembles the document in the schema's key order and
:func:`write_sections` writes it atomically (:mod:`endostream.output.atomic`), so a reader
never sees half a file, even after a crash or Ctrl+C. The offline pipeline, the live
session and the archive all build their documents here.

The JSON Schema ships in the package (``endostream/schema/sections.schema.json``) and is
what the tests validate against; the README documents every field.

>>> from endostream.segmentation.section import Section
>>> from endostream.frames import SourceInfo
>>> doc = build_document(sections=[Section("nose", 0.0, 41.3, 0, 1238, 0.86, 0.95)],
...                      complete=True, source=SourceInfo("v.mp4", 30.0, 1239, 41.3, 640, 480),
...                      models={}, frames_analysed=207, sample_fps=5.0, segmenter={})
>>> doc["schema"], doc["sections"][0]["label"]
('endostream.sections/1', 'nose')
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from importlib import resources
from typing import Any

from endostream.frames import SourceInfo
from endostream.output.atomic import write_json_atomic
from endostream.segmentation.section import Section

#: Schema identifier written into every document.
SCHEMA_ID = "endostream.sections/1"

#: Suffix of a video's sections file when endostream names it (beside the video, or in an
#: archive's --out-dir).
DEFAULT_SECTIONS_SUFFIX = ".sections.json"


def schema() -> dict[str, Any]:
    """The JSON Schema of ``sections.json`` shipped with the package."""
    text = resources.files("endostream").joinpath("schema/sections.schema.json").read_text()
    return json.loads(text)


def build_document(
    *,
    sections: Sequence[Section],
    complete: bool,
    source: SourceInfo,
    models: dict[str, Any],
    frames_analysed: int,
    sample_fps: float | None,
    segmenter: dict[str, Any],
    extra_analysis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a ``sections.json`` document in the schema's key order.

    ``source`` is written as given (callers pass what was really decoded), times rounded to
    the millisecond; ``models`` is :meth:`Classifier.describe`; ``extra_analysis`` adds
    run-specific facts under ``analysis`` (the live session's drops and reconnects).
    Container metadata never reaches the document: only these fields are written.
    """
    analysis: dict[str, Any] = {
        "frames_analysed": frames_analysed,
        "sample_fps": sample_fps,
        "segmenter": segmenter,
    }
    analysis.update(extra_analysis or {})
    return {
        "schema": SCHEMA_ID,
        "complete": bool(complete),
        "source": {
            "path": source.path,
            "fps": round(source.fps, 6) if source.fps else None,
            "frames": source.frames,
            "duration_s": round(source.duration_s, 3) if source.duration_s is not None else None,
            "width": source.width,
            "height": source.height,
        },
        "models": models,
        "analysis": analysis,
        "sections": [s.to_json() for s in sections],
    }


def write_sections(path: str | os.PathLike, **document_fields: Any) -> dict[str, Any]:
    """Build the document (see :func:`build_document`) and write it atomically."""
    doc = build_document(**document_fields)
    write_json_atomic(path, doc)
    return doc
