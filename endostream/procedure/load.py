"""A reviewed procedure: the sections of a ``sections.json`` and the recording they describe.

:func:`load_procedure` reads and checks the document (through the one reader,
:func:`~endostream.output.document.read_sections`); the video defaults to its
``source.path`` (as written, then relative to the sections file), ``video=`` overrides, and
``videos=`` names a folder to search by content. Whichever it is, it must be the recording
the file was made from (:mod:`endostream.procedure.identity`). The per-frame CSV is read
by :mod:`endostream.procedure.frame_table`.

>>> import json, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> doc = {"schema": "endostream.sections/1", "complete": True,
...        "source": {"path": "v.mp4", "fps": 25.0, "frames": 100, "duration_s": 4.0,
...                   "width": 64, "height": 48},
...        "models": {"path": "m.onnx", "sha256": "0" * 64,
...                   "heads": {"quality": ["bad", "good"], "organ": ["ear", "nose"]}},
...        "analysis": {"frames_analysed": 20, "sample_fps": 5.0, "segmenter": {}},
...        "sections": [{"label": "ear", "start_s": 0.0, "end_s": 4.0, "start_frame": 0,
...                      "end_frame": 99, "good_fraction": 1.0, "confidence": 0.9}]}
>>> _ = (d / "s.json").write_text(json.dumps(doc))
>>> p = load_procedure(d / "s.json")
>>> [s.label for s in p.sections], p.document.organ_labels, p.video
(['ear'], ['ear', 'nose'], None)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from endostream.errors import VideoError
from endostream.output.document import SectionsDocument, read_sections
from endostream.procedure.identity import check_recording, find_recording, is_recording
from endostream.segmentation.section import Section


@dataclass(frozen=True)
class Procedure:
    """A checked ``sections.json`` (:class:`SectionsDocument`), where it was read from, and
    where its video is (``None``: not found)."""

    sections_path: Path
    document: SectionsDocument
    video: Path | None
    #: Where the video was looked for (see :func:`video_candidates`).
    looked: tuple[Path, ...] = ()

    @property
    def sections(self) -> list[Section]:
        """The document's sections (a list: callers index and slice it)."""
        return list(self.document.sections)

    def not_found(self) -> str:
        """Where the video was looked for, as a message says it."""
        where = ", ".join(f"'{p}'" for p in self.looked) or "nowhere (no source.path)"
        return f"the video of '{self.sections_path}' was not found (looked at {where})"

    def require_video(self) -> Path:
        """The video, or a :class:`VideoError` that says to pass ``--video``."""
        if self.video is None:
            raise VideoError(f"{self.not_found()}; pass it with --video PATH")
        return self.video


def load_procedure(sections_path: str | os.PathLike,
                   video: str | os.PathLike | None = None, *,
                   videos: str | os.PathLike | None = None) -> Procedure:
    """Read ``sections_path`` (:func:`~endostream.output.document.read_sections`); find the
    video (``video`` if given, else ``source.path``, else by content among the ``videos``
    folder's) and check that it is the recording the file was made from
    (:mod:`endostream.procedure.identity`): the one place every command's recording is
    checked.

    Raises :class:`UsageError` for a missing or malformed sections file and for a video
    of other content (given, or found where the file says); :class:`VideoError` for a
    ``video`` given but missing, and for a ``videos`` folder that does not hold it.
    """
    path = Path(sections_path)
    document = read_sections(path)
    source = document.source
    if video is not None:
        found: Path | None = Path(video)
        if not found.is_file():
            raise VideoError(f"video not found: '{video}'; check the --video path")
        check_recording(source, path, found)
        return Procedure(path, document, found)
    looked = video_candidates(path, source.path)
    existing = [p for p in looked if p.is_file()]
    found = next((p for p in existing if is_recording(source, path, p)), None)
    if found is None and videos is not None:
        found = find_recording(source, path, Path(videos))
    elif found is None and existing:
        check_recording(source, path, existing[0])  # refuses: another recording there
    return Procedure(path, document, found, looked)


def video_candidates(sections_path: Path, recorded: str) -> tuple[Path, ...]:
    """Where the video of a sections file may be, in order: ``source.path`` as written
    (absolute), or relative to the sections file's folder and then to the current one
    (``segment`` records the path as typed); then, for any path, a file of that name
    beside the sections file, which is where a moved recording usually went with it.

    >>> [str(p) for p in video_candidates(Path("/b/s.json"), "/a/v.mp4")]
    ['/a/v.mp4', '/b/v.mp4']
    >>> [str(p) for p in video_candidates(Path("/b/s.json"), "in/v.mp4")]
    ['/b/in/v.mp4', 'in/v.mp4', '/b/v.mp4']
    """
    if not recorded:
        return ()
    recorded_path = Path(recorded)
    beside = sections_path.parent / recorded_path.name
    if recorded_path.is_absolute():
        options = [recorded_path, beside]
    else:
        options = [sections_path.parent / recorded_path, recorded_path, beside]
    unique: list[Path] = []
    for p in options:
        if p not in unique:
            unique.append(p)
    return tuple(unique)
