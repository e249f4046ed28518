"""What each organ label of the model means in the hospital's words: a coded anatomic region.

The organ head's labels are the model's own (:data:`~endostream.contract.DEFAULT_LABELS`
for the thesis' model; another model may have others), so the map from a label to a
standard code lives here, beside them, and a model with other classes brings its own map
as a JSON file (``endostream dicom --anatomy-map FILE``)::

    {"ear": {"code": "28347008", "scheme": "SCT", "meaning": "External ear",
             "body_part": "EAR", "paired": true}}

The codes are SNOMED CT concepts of DICOM's CID 4 (Anatomic Region), and ``body_part`` is
the Body Part Examined defined term that PS3.16 Annex L maps to the same concept. Each
label of the default model:

- ``ear``: the otoscope sees the ear canal and drum: External ear (SCT 28347008), body
  part ``EAR``; an ear is paired, so a reader expects a side (Laterality), which the
  model does not know;
- ``nose``: the nasopharyngoscope's first half: Nose (SCT 45206002, which CID 4 holds;
  its nasal cavity, SCT 279549004, is not a CID 4 region), body part ``NOSE``;
- ``vocal_folds``: the larynx with its vocal folds: Larynx (SCT 4596009), ``LARYNX``.

A label with no entry has no anatomic code (the DICOM files then carry the label as text
only, under endostream's documented private scheme).

>>> ANATOMY["nose"].code, ANATOMY["nose"].body_part, ANATOMY["nose"].paired
('45206002', 'NOSE', False)
>>> anatomy_from_json('{"cecum": {"code": "32713005", "scheme": "SCT", '
...                   '"meaning": "Cecum", "body_part": "CECUM"}}')["cecum"].meaning
'Cecum'
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from endostream.errors import UsageError


@dataclass(frozen=True)
class AnatomicRegion:
    """One coded region: the code (value, scheme, meaning), the Body Part Examined term and
    whether the structure is paired (left/right)."""

    code: str
    scheme: str
    meaning: str
    body_part: str
    paired: bool = False


#: The default model's organ labels (see the module docstring for why these codes).
ANATOMY: dict[str, AnatomicRegion] = {
    "ear": AnatomicRegion("28347008", "SCT", "External ear", "EAR", paired=True),
    "nose": AnatomicRegion("45206002", "SCT", "Nose", "NOSE"),
    "vocal_folds": AnatomicRegion("4596009", "SCT", "Larynx", "LARYNX"),
}


def anatomy_from_json(text: str, *, source: str = "the anatomy map") -> dict[str, AnatomicRegion]:
    """A label → region map from JSON (the format in the module docstring)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{source} is not JSON ({e}); see 'endostream dicom --help'") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{source} must be a JSON object of label → code")
    out = {}
    for label, entry in raw.items():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) and entry[k]
                                                  for k in ("code", "scheme", "meaning",
                                                            "body_part")):
            raise UsageError(f"{source}: '{label}' needs code, scheme, meaning and body_part "
                             "(strings), and optionally paired (true/false)")
        out[label] = AnatomicRegion(entry["code"], entry["scheme"], entry["meaning"],
                                    entry["body_part"], bool(entry.get("paired", False)))
    return out


def load_anatomy(path: str | os.PathLike | None) -> dict[str, AnatomicRegion]:
    """:data:`ANATOMY`, or the map in ``path`` (which replaces it: the labels are another
    model's)."""
    if path is None:
        return dict(ANATOMY)
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--anatomy-map '{p}' cannot be read ({e.strerror}); check the "
                         "path") from None
    return anatomy_from_json(text, source=f"--anatomy-map '{p}'")
