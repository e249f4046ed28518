"""Whether a video's existing result can be kept: the resume check.

A result is kept when its ``sections.json`` is complete and was made from the same video
(size and modification time, stored in the file under ``analysis.input``), the same model
(sha256 of each file, checked without loading it) and the same analysis settings
(``sample_fps`` and the segmenter's settings). Anything else — no file, ``complete:
false``, a touched video, another model or other settings — is redone. A file at the
output path that is not an endostream sections file is never overwritten without
``--force``.

>>> settings = AnalysisSettings(models_sha256="ab" * 32, sample_fps=5.0,
...                             segmenter={"mode": "offline", "min_section_s": 3.0})
>>> doc = {"schema": "endostream.sections/1", "complete": True,
...        "models": {"sha256": "ab" * 32},
...        "analysis": {"sample_fps": 5.0, "segmenter": settings.segmenter,
...                     "input": {"size_bytes": 10, "mtime_ns": 7}}}
>>> settings.stale_reason(doc, InputFingerprint(10, 7)) is None
True
>>> settings.stale_reason(doc, InputFingerprint(11, 7))
'the video changed since'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endostream.errors import OutputError
from endostream.output.sections_file import SCHEMA_ID
from endostream.pipeline.offline import rate_above_video
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.offline import describe_offline


@dataclass(frozen=True)
class InputFingerprint:
    """What identifies a video's bytes cheaply: size and modification time (ns)."""

    size_bytes: int
    mtime_ns: int

    def to_json(self) -> dict[str, int]:
        return {"size_bytes": self.size_bytes, "mtime_ns": self.mtime_ns}


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything besides the video that decides a result: model hashes and settings."""

    models_sha256: str
    sample_fps: float | None
    segmenter: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, models_sha256: str, sample_fps: float | None,
           config: SegmenterConfig) -> AnalysisSettings:
        # As the offline segmenter describes itself in analysis.segmenter, through JSON so
        # that it compares equal to what a file holds.
        segmenter = json.loads(json.dumps(describe_offline(config)))
        return cls(models_sha256, sample_fps, segmenter)

    def stale_reason(self, doc: Any, fingerprint: InputFingerprint) -> str | None:
        """``None`` when ``doc`` (a parsed sections file) can be kept, else why not."""
        if not is_ours(doc):
            return "not an endostream sections file"
        if doc.get("complete") is not True:
            return "incomplete (complete: false)"
        analysis = doc.get("analysis") or {}
        if analysis.get("input") != fingerprint.to_json():
            return "the video changed since"
        if (doc.get("models") or {}).get("sha256") != self.models_sha256:
            return "made with another model"
        if not self._same_rate(analysis.get("sample_fps"), (doc.get("source") or {}).get("fps")) \
                or analysis.get("segmenter") != self.segmenter:
            return "made with other analysis settings"
        return None

    def _same_rate(self, recorded: Any, video_fps: Any) -> bool:
        """Whether a file's ``analysis.sample_fps`` is what this run would record: the
        requested rate, or ``null`` where that rate was above the video's frame rate (every
        frame analysed; :func:`~endostream.pipeline.offline.segment_video` records that)."""
        if recorded == self.sample_fps:
            return True
        return (recorded is None and isinstance(video_fps, (int, float))
                and rate_above_video(self.sample_fps, video_fps))


def read_existing(path: Path) -> Any:
    """The parsed JSON at ``path``; ``None`` when there is no file.

    A file that is there but is not JSON raises :class:`OutputError`: it is not ours, so
    it is not replaced without ``--force``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise OutputError(f"'{path}' exists and cannot be read ({e}); move it away or pass "
                          "--force to replace it") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise OutputError(f"'{path}' exists and is not an endostream sections file; move it "
                          "away or pass --force to replace it") from None


def is_ours(doc: Any) -> bool:
    """Whether a parsed file is an endostream sections document (ours to replace)."""
    return isinstance(doc, dict) and doc.get("schema") == SCHEMA_ID
