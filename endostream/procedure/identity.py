"""Whether a recording, or a per-frame CSV, is the one a sections file was made from.

``segment`` records the recording's content fingerprint in ``source.fingerprint``
(:func:`~endostream.sources.fingerprint.recording_fingerprint`) and, with ``--csv``, the
CSV's SHA-256 in ``analysis.frames_csv_sha256``. Every command that opens a recording or a
CSV named by a sections file checks it here, once: :func:`check_recording` and
:func:`check_frames_csv` refuse another file with one line (exit 2) that names the file
expected, whatever its size and duration. :func:`find_recording` looks for the recording
by content in a folder (``dataset --videos DIR``).

A file written before fingerprints existed records none: the check is skipped then, with
a note at ``-v``. A fingerprint is computed once per run per file
(:func:`~endostream.sources.fingerprint.fingerprint_once`).

>>> import tempfile, pathlib
>>> from endostream.frames import SourceInfo
>>> old = SourceInfo("v.mp4", 25.0, 100, 4.0, 64, 48)
>>> check_recording(old, pathlib.Path("s.json"), pathlib.Path("any.mp4")) is None
True
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from endostream.errors import UsageError, VideoError
from endostream.frames import SourceInfo
from endostream.sources.fingerprint import FINGERPRINT_VERSION, file_sha256, fingerprint_once

log = logging.getLogger(__name__)

#: File name endings searched for recordings in a folder (``dataset --videos DIR``).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts",
                  ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".mxf")

def recorded_name(source: SourceInfo) -> str:
    """How a message names the recording a sections file was made from: its recorded
    path's file name and the start of its fingerprint (a report's corrected file names no
    path).

    >>> recorded_name(SourceInfo("/clinic/a.mp4", 25.0, 1, 1.0, 8, 8))
    "'a.mp4'"
    >>> recorded_name(SourceInfo("", 25.0, 1, 1.0, 8, 8, fingerprint="v1:" + "ab" * 32))
    'fingerprint v1:abababababab…'
    """
    parts = [f"'{Path(source.path).name}'"] if source.path else []
    if source.fingerprint:
        parts.append(f"fingerprint {source.fingerprint[:15]}…")
    return ", ".join(parts) or "not named"


def _comparable(fingerprint: str | None, sections_path: Path) -> bool:
    """Whether a recorded fingerprint can be compared with one computed now (present, and
    made the way this version makes them); a note at ``-v`` where it cannot."""
    if fingerprint is None:
        log.info("'%s' records no fingerprint of its recording (written before they "
                 "existed); the recording is not checked by its content", sections_path)
        return False
    if fingerprint.partition(":")[0] != FINGERPRINT_VERSION:
        log.info("'%s' records a fingerprint of another kind (%s); the recording is not "
                 "checked by its content", sections_path, fingerprint.partition(":")[0])
        return False
    return True


def is_recording(source: SourceInfo, sections_path: Path, video: Path) -> bool:
    """Whether ``video`` is the recording ``source`` (the sections file at
    ``sections_path``) describes by content; ``True`` where the file records no
    fingerprint to compare with (a note at ``-v``)."""
    if not _comparable(source.fingerprint, sections_path):
        return True
    return fingerprint_once(video) == source.fingerprint


def check_recording(source: SourceInfo, sections_path: Path, video: Path) -> None:
    """Refuse (:class:`UsageError`, exit 2) a ``video`` whose content is not that of the
    recording the sections file at ``sections_path`` (``source``) was made from."""
    if not _comparable(source.fingerprint, sections_path):
        return
    if fingerprint_once(video) != source.fingerprint:
        raise UsageError(f"'{video}' is not the recording '{sections_path}' was made from "
                         f"({recorded_name(source)}): its content differs, whatever its name "
                         "and length; pass that recording with --video")


def check_frames_csv(recorded_sha256: str | None, sections_path: Path, csv: Path) -> None:
    """Refuse (:class:`UsageError`, exit 2) a per-frame CSV whose bytes are not those of
    the CSV written with the sections file at ``sections_path``."""
    if recorded_sha256 is None:
        log.info("'%s' records no SHA-256 of its per-frame CSV (written before, or without "
                 "--csv); '%s' is checked by its frames and labels only", sections_path, csv)
        return
    if file_sha256(csv) != recorded_sha256:
        raise UsageError(f"'{csv}' is not the per-frame CSV of '{sections_path}': its content "
                         f"differs from the CSV written with it (SHA-256 "
                         f"{recorded_sha256[:12]}…); give the CSV written by the same "
                         "'endostream segment' run")


def videos_in(folder: Path) -> Iterator[Path]:
    """The video files below ``folder`` (by :data:`VIDEO_SUFFIXES`, any depth), in a
    stable order."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(VIDEO_SUFFIXES):
                yield Path(root) / name


def find_recording(source: SourceInfo, sections_path: Path, folder: Path) -> Path:
    """The video below ``folder`` that is the recording of the sections file: those with
    the recorded file name first (a cheap hint), then the others, each fingerprinted
    only when reached. Raises :class:`VideoError` (exit 3) when none is.

    Without a fingerprint (an older file) only the recorded name can find it.
    """
    if not folder.is_dir():
        raise VideoError(f"--videos '{folder}' is not a folder; give the folder that holds "
                         "the recordings")
    name = Path(source.path).name if source.path else None
    if name is None and source.fingerprint is None:
        raise VideoError(f"'{sections_path}' names no recording and records no fingerprint "
                         "to find it by; pass the recording with --video")
    candidates = list(videos_in(folder))
    by_name = [p for p in candidates if name is not None and p.name == name]
    if source.fingerprint is None:
        if by_name:
            log.info("'%s' records no fingerprint: taking '%s' by its name alone",
                     sections_path, by_name[0])
            return by_name[0]
        raise VideoError(f"no video named '{name}' below '{folder}', and "
                         f"'{sections_path}' records no fingerprint to find it by content; "
                         "pass the recording with --video")
    others = [p for p in candidates if p not in by_name]
    for p in by_name + others:
        try:
            if is_recording(source, sections_path, p):
                return p
        except VideoError as e:  # a broken file among the videos is not the one
            log.info("skipping '%s': %s", p, e)
    raise VideoError(f"none of the {len(candidates)} videos below '{folder}' is the "
                     f"recording '{sections_path}' was made from ({recorded_name(source)}; "
                     "looked for by name, then by content); give the folder that holds it, "
                     "or pass it with --video")
