"""Sections and the ``sections.json`` file (schema ``endostream.sections/1``).

A :class:`Section` is one stretch of video with one label: an organ from the model's
organ head, or :data:`UNUSABLE` where no organ could be seen long enough to matter.
:func:`write_sections` writes the document atomically (temp file in the same directory,
fsync, rename), so a reader never sees half a file, even after a crash or Ctrl+C.

The JSON Schema ships in the package (``endostream/schema/sections.schema.json``) and is
what the tests validate against; the README documents every field.

>>> s = Section("nose", 0.0, 41.3, 0, 1238, good_fraction=0.86, confidence=0.95)
>>> s.duration_s
41.3
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import OutputError

#: Schema identifier written into every document.
SCHEMA_ID = "endostream.sections/1"

#: Reserved label for stretches where no organ can be seen (bad quality, out of body).
UNUSABLE = "unusable"


@dataclass(frozen=True)
class Section:
    """One labelled stretch: ``[start_s, end_s)`` in container time, frames inclusive.

    ``good_fraction`` is the share of analysed frames in the section that the quality head
    called good; ``confidence`` the mean probability of ``label`` over the good frames
    (for ``unusable``: the mean probability of bad quality over all its frames).
    """

    label: str
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    good_fraction: float
    confidence: float

    @property
    def duration_s(self) -> float:
        return round(self.end_s - self.start_s, 6)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("start_s", "end_s"):
            d[k] = round(float(d[k]), 3)
        for k in ("good_fraction", "confidence"):
            d[k] = round(float(d[k]), 4)
        return d


def schema() -> dict[str, Any]:
    """The JSON Schema of ``sections.json`` shipped with the package."""
    text = resources.files("endostream").joinpath("schema/sections.schema.json").read_text()
    return json.loads(text)


def build_document(
    *,
    sections: Sequence[Section],
    source: dict[str, Any],
    models: dict[str, Any],
    analysis: dict[str, Any],
    complete: bool,
) -> dict[str, Any]:
    """Assemble a ``sections.json`` document in the schema's key order."""
    return {
        "schema": SCHEMA_ID,
        "complete": bool(complete),
        "source": source,
        "models": models,
        "analysis": analysis,
        "sections": [s.to_json() for s in sections],
    }


def new_file_mode() -> int:
    """The permissions ``open()`` gives a new file under this process's umask (0o644 for
    the usual 022). ``mkstemp`` makes its files 0o600, which would keep every other
    account (a viewer, a backup) from reading the results once renamed into place."""
    return 0o666 & ~_umask()


def _umask() -> int:
    # Linux states the umask in /proc; elsewhere reading it means setting it and putting it
    # straight back, which another thread creating a file at that instant could notice.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | os.PathLike, document: Any) -> None:
    """Write ``document`` as JSON to ``path`` atomically, or raise :class:`OutputError`.

    The data goes to a temporary file next to ``path`` (same filesystem), is flushed and
    fsynced, then renamed over ``path``: readers see the old file or the new one, never a
    torn one.
    """
    target = Path(path)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise OutputError(f"cannot write '{target}': {e.strerror or e}; "
                          "choose another --out") from e
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, target)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise OutputError(f"cannot write '{target}': {e.strerror or e}; "
                          "choose another --out") from e


def write_sections(path: str | os.PathLike, **document_fields: Any) -> dict[str, Any]:
    """Build the document (see :func:`build_document`) and write it atomically."""
    doc = build_document(**document_fields)
    write_json_atomic(path, doc)
    return doc
