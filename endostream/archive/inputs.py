"""Which videos an archive run covers, and where each one's results go.

Inputs are videos, directories (searched recursively for files with a video suffix),
globs, or the lines of a list file. Every video gets its results at its path relative to
one root — ``--root``, else the root an earlier run recorded in the output directory's
``archive.json`` (so a second call with fewer or other inputs lays its results out the
same way), else the deepest folder that holds all the inputs — inside the output directory,
named after the whole file name (``a.mp4`` → ``a.mp4.sections.json``). Two different
videos therefore never share an output (``a.mp4`` and ``a.mkv`` in one folder, or
``p1/video.mp4`` and ``p2/video.mp4``), and a name never changes with the order of the
inputs. The same file reached twice (a folder and a glob, a symlink) is analysed once.

>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> for name in ("a.mp4", "a.mkv", "sub/b.avi", "notes.txt"):
...     (d / name).parent.mkdir(exist_ok=True); _ = (d / name).write_bytes(b"")
>>> jobs = discover([d], out_dir=d / "results")
>>> [str(j.output.relative_to(d / "results")) for j in jobs]
['a.mkv.sections.json', 'a.mp4.sections.json', 'sub/b.avi.sections.json']
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from endostream.errors import UsageError, VideoError
from endostream.output.guard import same_file
from endostream.output.sections_file import DEFAULT_SECTIONS_SUFFIX

#: File suffixes (lower case) a directory search treats as videos. A file named on the
#: command line or in a list is taken whatever its suffix.
VIDEO_SUFFIXES = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".webm", ".wmv", ".flv", ".mxf", ".vob", ".3gp", ".ogv", ".dv",
})
#: Appended to a video's file name for its sections file and its per-frame CSV.
SECTIONS_SUFFIX = DEFAULT_SECTIONS_SUFFIX
CSV_SUFFIX = ".frames.csv"
#: Names of the archive summary inside the output directory.
SUMMARY_JSON = "archive.json"
SUMMARY_CSV = "archive.csv"
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class ArchiveJob:
    """One video of the archive: where it is, where its results go, what it looked like.

    ``video`` is absolute (workers on other nodes or in other folders open it as is);
    ``name`` is its path relative to the archive root, as reports show it. ``size_bytes``
    and ``mtime_ns`` are the fingerprint the resume check compares (see :mod:`.resume`).
    """

    video: Path
    name: str
    output: Path
    csv: Path | None
    size_bytes: int
    mtime_ns: int


def has_glob(text: str) -> bool:
    """Whether ``text`` holds glob characters (``*``, ``?``, ``[``)."""
    return any(c in _GLOB_CHARS for c in text)


def read_list(path: Path) -> list[Path]:
    """The paths in a list file: one per line; blank lines and ``#`` comments skipped;
    relative paths are relative to the list file's folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"--from-list '{path}' not found; check the path") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--from-list '{path}' cannot be read ({e}); give a UTF-8 text file "
                         "with one path per line") from None
    base = path.parent
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line).expanduser()
            out.append(p if p.is_absolute() else base / p)
    return out


def discover(paths: Iterable[str | os.PathLike], *, out_dir: Path,
             csv: bool = False, root: Path | None = None) -> list[ArchiveJob]:
    """The jobs for ``paths`` (videos, directories, globs), sorted by name, laid out from
    ``root`` (default: the deepest folder that holds every input).

    Raises :class:`UsageError` when nothing is found, a video lies outside ``root`` or an
    output would land on an input, :class:`VideoError` for a path that does not exist.
    """
    out_dir = Path(os.path.abspath(out_dir))
    anchors: list[Path] = []  # what the root must hold: folders searched, files' parents
    videos: list[Path] = []
    for raw in paths:
        text = os.fspath(raw)
        p = Path(os.path.abspath(Path(text).expanduser()))
        if p.is_dir():
            anchors.append(p)
            videos.extend(_search(p, skip=out_dir))
        elif p.exists():
            anchors.append(p.parent)
            videos.append(p)
        elif has_glob(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            if not matches:
                raise UsageError(f"no file matches '{text}'; check the pattern (quote it so "
                                 "the shell leaves it to endostream)")
            anchors.append(Path(os.path.abspath(_glob_base(text))))
            for m in map(Path, map(os.path.abspath, matches)):
                videos.extend(_search(m, skip=out_dir) if m.is_dir() else [m])
        else:
            raise VideoError(f"video not found: '{text}'; check the path")
    videos = _unique(videos)
    if not videos:
        raise UsageError("no video found in " + ", ".join(f"'{os.fspath(p)}'" for p in paths)
                         + f"; videos are found by suffix ({', '.join(sorted(VIDEO_SUFFIXES))})")
    if root is None:
        root = Path(os.path.commonpath([*anchors, *(v.parent for v in videos)]))
    else:
        root = Path(os.path.abspath(root))
        outside = next((v for v in videos if not v.is_relative_to(root)), None)
        if outside is not None:
            raise UsageError(f"'{outside}' is not inside the archive root '{root}'; results "
                             "are laid out from that root: give videos under it, or another "
                             "--out-dir")
    jobs = [_job(v, root, out_dir, csv) for v in videos]
    _refuse_outputs_on_inputs(jobs, out_dir)
    return sorted(jobs, key=lambda j: j.name)


def root_of(job: ArchiveJob) -> Path:
    """The archive root ``job`` was laid out from (its video less its name)."""
    return job.video.parents[len(Path(job.name).parts) - 1]


def _search(folder: Path, *, skip: Path) -> list[Path]:
    """Video files under ``folder`` (recursively), leaving out ``skip`` (the output
    directory) and hidden files and folders (temporary files of a run in progress)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith(".") and here / d != skip)
        found.extend(here / f for f in sorted(filenames)
                     if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_SUFFIXES)
    return found


def _glob_base(pattern: str) -> str:
    """The folder part of ``pattern`` before its first glob character."""
    head = []
    for part in Path(pattern).parts:
        if has_glob(part):
            break
        head.append(part)
    return os.path.join(*head) if head else "."


def _unique(videos: Sequence[Path]) -> list[Path]:
    seen: set[str] = set()
    out = []
    for v in videos:
        key = os.path.realpath(v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _job(video: Path, root: Path, out_dir: Path, csv: bool) -> ArchiveJob:
    rel = video.relative_to(root)
    try:
        st = video.stat()
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime = -1, -1  # reported as a failed video when it is opened
    base = out_dir / rel.parent
    return ArchiveJob(
        video=video,
        name=rel.as_posix(),
        output=base / (rel.name + SECTIONS_SUFFIX),
        csv=base / (rel.name + CSV_SUFFIX) if csv else None,
        size_bytes=size,
        mtime_ns=mtime,
    )


def _refuse_outputs_on_inputs(jobs: Sequence[ArchiveJob], out_dir: Path) -> None:
    """An output may never replace an input (say a video named ``x.sections.json``)."""
    inputs = {os.path.realpath(j.video): j for j in jobs}
    outputs = [out_dir / SUMMARY_JSON, out_dir / SUMMARY_CSV]
    for j in jobs:
        outputs += [j.output, *([j.csv] if j.csv else [])]
    for out in outputs:
        # By path first (fast, for thousands of videos), then by inode for hard links.
        hit = inputs.get(os.path.realpath(out))
        if hit is None and out.exists():
            hit = next((j for j in jobs if same_file(out, j.video)), None)
        if hit is not None:
            raise UsageError(f"the output '{out}' would replace the input '{hit.video}'; "
                             "choose another --out-dir")
