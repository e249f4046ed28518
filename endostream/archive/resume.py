"""Whether a video's existing result can be kept: the resume check, and where results
are laid out from on a rerun (:func:`archive_root`).

A result is kept when its ``sections.json`` is complete and was made from the same video
(size and modification time, stored in the file under ``analysis.input``), the same model
(sha256 of each file, checked without loading it) and the same analysis settings
(``sample_fps`` and the segmenter's settings). Anything else — no file, ``complete:
false``, a touched video, another model or other settings — is redone, except the
``complete: false`` file of a video damaged part way (``partial`` in ``archive.json``),
which is kept like an unreadable video's failure until the video changes (the driver
decides that, with ``partial_ok``). A result that passes these cheap checks is read once
more by content (:func:`content_reason`): one whose recorded fingerprint is another
recording's, or whose per-frame CSV is another run's, is redone. A file at the output
path that is not an endostream sections file is never overwritten without ``--overwrite``.

>>> from endostream.output.sections_file import build_document
>>> from endostream.segmentation.section import Section
>>> from endostream.frames import SourceInfo
>>> settings = AnalysisSettings.of("ab" * 32, 5.0, SegmenterConfig())
>>> doc = build_document(complete=True, source=SourceInfo("a.mp4", 25.0, 100, 4.0, 64, 48),
...                      models={"path": "m.onnx", "sha256": "ab" * 32, "heads": {}},
...                      frames_analysed=20, sample_fps=5.0, segmenter=settings.segmenter,
...                      extra_analysis={"input": {"size_bytes": 10, "mtime_ns": 7}},
...                      sections=[Section("nose", 0.0, 4.0, 0, 99, 1.0, 0.9)])
>>> settings.stale_reason(doc, InputFingerprint(10, 7)) is None
True
>>> settings.stale_reason(doc, InputFingerprint(11, 7))
'the video changed since'
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endostream.archive.inputs import SUMMARY_JSON
from endostream.archive.summary import SCHEMA_ID
from endostream.errors import CorrectionsError, OutputError, UsageError, VideoError
from endostream.output.document import NotSectionsFile, SectionsDocument, read_sections
from endostream.pipeline.offline import rate_above_video
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.offline import describe_offline
from endostream.sources.fingerprint import file_sha256, fingerprint_once


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
        # As the offline segmenter describes itself in analysis.segmenter.
        return cls(models_sha256, sample_fps, describe_offline(config))

    def stale_reason(self, doc: SectionsDocument, fingerprint: InputFingerprint, *,
                     partial_ok: bool = False) -> str | None:
        """``None`` when ``doc`` (a checked sections file) can be kept, else why not;
        ``partial_ok``: a ``complete: false`` file of a damaged video may be kept too."""
        if not doc.complete and not partial_ok:
            return "incomplete (complete: false)"
        if doc.analysis.input_fingerprint != fingerprint.to_json():
            return "the video changed since"
        if doc.models.sha256 != self.models_sha256:
            return "made with another model"
        if not self._same_rate(doc.analysis.sample_fps, doc.source.fps) \
                or dict(doc.analysis.segmenter) != self.segmenter:
            return "made with other analysis settings"
        return None

    def _same_rate(self, recorded: float | None, video_fps: float | None) -> bool:
        """Whether a file's ``analysis.sample_fps`` is what this run would record: the
        requested rate, or ``null`` where that rate was above the video's frame rate (every
        frame analysed; :func:`~endostream.pipeline.offline.segment_video` records that)."""
        if recorded == self.sample_fps:
            return True
        return recorded is None and rate_above_video(self.sample_fps, video_fps)


def content_reason(doc: SectionsDocument, video: Path, csv: Path | None) -> str | None:
    """Why a result that passed the cheap checks (size, time, model, settings) is still
    not this video's: its recorded content fingerprint is another recording's (a file
    replaced by one of the same size and time), or its per-frame CSV is another run's.
    ``None`` when both agree, or where the file records no fingerprint (written before
    they existed: the cheap checks decide alone). Such a result is redone, never refused:
    the archive's outputs are its own, and a stale one is what a resume replaces.
    """
    expected = doc.source.fingerprint
    if expected is not None:
        try:
            found = fingerprint_once(video)
        except VideoError as e:  # the analysis says what is wrong with it
            return f"its video cannot be read now ({e})"
        if found != expected:
            return ("made from another recording of the same size and time (its content "
                    "differs)")
    recorded_csv = doc.analysis.frames_csv_sha256
    if csv is not None and recorded_csv is not None and csv.is_file() \
            and file_sha256(csv) != recorded_csv:
        return "its per-frame CSV is another run's"
    return None


def read_result(path: Path) -> SectionsDocument | None:
    """The sections file at ``path`` (:func:`~endostream.output.document.read_sections`);
    ``None`` when there is none.

    A file that is there but is not an endostream sections file (unreadable, not JSON,
    another schema) raises :class:`OutputError`: it is not ours, so it is not replaced
    without ``--overwrite``; nor is a reviewer's corrected file that breaks a rule. One of
    ours that breaks the schema or an invariant raises
    :class:`~endostream.errors.UsageError`: it is redone.
    """
    if not os.path.lexists(path):
        return None
    try:
        return read_sections(path)
    except (NotSectionsFile, CorrectionsError) as e:  # not ours, or a reviewer's: kept
        raise OutputError(f"{e}; move it away or pass --overwrite to replace it") from None


def read_existing(path: Path) -> Any:
    """The parsed JSON at ``path`` (the archive summary); ``None`` when there is no file.

    A file that is there but is not JSON raises :class:`OutputError`: it is not ours, so
    it is not replaced without ``--overwrite``.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise OutputError(f"'{path}' exists and cannot be read ({e}); move it away or pass "
                          "--overwrite to replace it") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise OutputError(f"'{path}' exists and is not JSON; move it away or pass "
                          "--overwrite to replace it") from None


def recorded_root(out_dir: Path) -> Path | None:
    """The archive root an earlier run recorded in ``out_dir``'s ``archive.json``: later
    runs lay their results out from it too (``None``: no such summary, or an old one)."""
    try:
        last = read_existing(out_dir / SUMMARY_JSON)
    except OutputError:
        return None
    if isinstance(last, dict) and last.get("schema") == SCHEMA_ID and \
            isinstance(last.get("root"), str):
        return Path(last["root"])
    return None


def archive_root(given: Path | None, out_dir: Path) -> Path | None:
    """The root to lay results out from: ``given`` (``--root``), else the one an earlier
    run recorded in ``out_dir``; a ``--root`` that differs from the recorded one is
    refused, since the same video would get a second result at another path.

    >>> archive_root(None, Path("no-such-folder")) is None
    True
    """
    recorded = recorded_root(out_dir)
    if given is None or recorded is None:
        return given if given is not None else recorded
    if Path(os.path.abspath(given)) != recorded:
        raise UsageError(f"'{out_dir}' holds results laid out from the root '{recorded}' "
                         f"(its archive.json); drop --root or give --root '{recorded}', or "
                         "choose another --out-dir")
    return recorded
