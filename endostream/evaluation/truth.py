"""The truth and sections files that video evaluation reads.

A truth file is what ``endostream synth`` writes beside its video (a ``"sections"`` list
of ``label`` / ``start_s`` / ``end_s``), or any such list; a ``sections.json`` is read
through the one reader of that format and must pass its checks.

>>> import json, tempfile
>>> path = Path(tempfile.mkdtemp()) / "truth.json"
>>> _ = path.write_text(json.dumps({"sections": [
...     {"label": "ear", "start_s": 4.0, "end_s": 9.0},
...     {"label": "nose", "start_s": 0.0, "end_s": 4.0}]}))
>>> [(s.label, s.start_s) for s in read_sections_file(path, "truth")]
[('nose', 0.0), ('ear', 4.0)]
"""

from __future__ import annotations

import json
from pathlib import Path

from endostream.errors import UsageError
from endostream.output.document import SCHEMA_ID, SectionsDocument
from endostream.segmentation.section import Section

#: What a truth section without frames, quality or confidence is read with.
TRUTH_DEFAULTS = {"start_frame": -1, "end_frame": -1, "good_fraction": 1.0, "confidence": 1.0}


def read_sections_file(path: Path, what: str) -> list[Section]:
    """Sections from a truth or sections JSON file.

    A ``sections.json`` (schema ``endostream.sections/1``) goes through the one reader,
    :func:`~endostream.output.document.read_sections`, and must pass its checks. Anything
    else is read as a truth file: a ``"sections"`` list of objects with ``label``,
    ``start_s``, ``end_s`` (other fields optional), or such a list on its own.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{what} file not found: '{path}'; check the path") from None
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {what} file '{path}': {e}") from None
    if isinstance(data, dict) and data.get("schema") == SCHEMA_ID:
        return list(SectionsDocument.from_json(data, origin=path).sections)
    items = data.get("sections") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise UsageError(f"'{path}' has no \"sections\" list; give a sections.json or a "
                         "truth file written by endostream synth")
    out = []
    for k, s in enumerate(items):
        try:
            # Truth files may give only label and times: the rest gets neutral values.
            out.append(Section.from_json({**TRUTH_DEFAULTS, **s}))
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"'{path}': section {k} lacks label/start_s/end_s") from None
    out.sort(key=lambda s: s.start_s)
    return out
