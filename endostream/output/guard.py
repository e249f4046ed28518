"""The one place that checks a run's outputs against its inputs, before any work starts.

A recording is irreplaceable, and an hour of analysis lost to an unwritable folder is an
hour gone. So every command that writes calls :func:`check_outputs` once, right after
parsing and before it loads a model or decodes a frame. The rules, the same for every
command (the CLI's grammar, docs/cli.md):

1. **No output replaces an input or another output.** Paths are compared after
   resolving symlinks and ``..``, and by device + inode where both exist (hard links).
   Refused with :class:`~endostream.errors.UsageError` (exit 2).
2. **An existing output is replaced only with** ``--overwrite`` (``overwrite``): without
   it, :class:`~endostream.errors.UsageError` (exit 2) in one line naming the flag. With
   it, a read-only file is replaced too (and keeps its permissions). A directory, a device
   (``/dev/null``) or a FIFO in the way is refused either way (exit 5).
3. **Missing parent folders are created**, as ``--out-dir`` creates its folder
   (:func:`prepare_output_folder`), and the folder must take new files: a temporary file
   is created there and removed again (a read-only mount, ``/proc``, a full permission
   check as the kernel does it, root included). Otherwise
   :class:`~endostream.errors.OutputError` (exit 5).

``"-"`` names stdout and is skipped (only one output may go there). ``None`` entries
(options not given) are skipped. The writes themselves stay atomic
(:mod:`endostream.output.atomic`). Each command then says what it wrote, one
``wrote PATH`` line per file on stderr (:func:`say_wrote`).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> video = d / "v.mp4"; _ = video.write_bytes(b"video")
>>> check_outputs({"--out": d / "new" / "v.sections.json"}, {"VIDEO": video})
>>> (d / "new").is_dir()
True
>>> check_outputs({"--out": video})
Traceback (most recent call last):
...
endostream.errors.UsageError: --out '...' exists; add --overwrite to replace it, or choose ...
>>> check_outputs({"--out": d / "sub" / ".." / "v.mp4"}, {"VIDEO": video})
Traceback (most recent call last):
...
endostream.errors.UsageError: --out '...' is the same file as VIDEO '...'; writing ... --out
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from endostream.errors import OutputError, UsageError

#: The output path that means "write to standard output".
STDOUT = "-"

#: Prefix of the probe file created (and removed at once) in each output folder.
PROBE_PREFIX = ".endostream-probe-"

PathLike = str | os.PathLike


def option_of(key: str) -> str:
    """The option a user changes for output ``key``: ``"--out-dir's roc.png"`` →
    ``"--out-dir"``, ``"--out (its .labels.json)"`` → ``"--out"``.

    >>> option_of("--out-dir's roc.png"), option_of("VIDEO")
    ('--out-dir', 'VIDEO')
    """
    match = re.match(r"-{1,2}[A-Za-z0-9][A-Za-z0-9-]*|[A-Z]+", key)
    return match.group(0) if match else key


def is_stdout(path: PathLike | None) -> bool:
    """True for ``-`` (write to stdout)."""
    return path is not None and os.fspath(path) == STDOUT


def same_file(a: PathLike, b: PathLike) -> bool:
    """True when ``a`` and ``b`` name the same file: the same path once symlinks and ``..``
    are resolved, or (both existing) the same device and inode, as hard links do.

    >>> same_file("/tmp/../tmp", "/tmp")
    True
    """
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def output_folder(path: PathLike) -> Path:
    """The folder ``path`` would be written into (``.`` for a bare name)."""
    parent = Path(path).parent
    return parent if str(parent) else Path(".")


def check_outputs(outputs: Mapping[str, PathLike | None],
                  inputs: Mapping[str, PathLike | Sequence[PathLike] | None] | None = None,
                  *, overwrite: bool = False) -> None:
    """Refuse outputs that would destroy an input or each other, or that cannot be written.

    Keys are what the user typed (``"--out"``, ``"--csv"``, ``"VIDEO"``, ``"--models"``),
    so each message names the option to change; an input may be a list of paths (two
    ``--models`` files). Raises :class:`UsageError` (exit 2) for a collision or an
    existing output without ``overwrite``, :class:`OutputError` (exit 5) for a folder that
    cannot be created or written, or a directory or device in an output's place. Creates
    an output's missing parent folders; no file.
    """
    given_inputs = [(k, p) for k, value in (inputs or {}).items()
                    for p in (value if isinstance(value, (list, tuple)) else [value])
                    if p is not None]
    seen: list[tuple[str, PathLike]] = []
    for key, path in outputs.items():
        if path is None:
            continue
        if is_stdout(path):
            for other_key, other in seen:
                if is_stdout(other):
                    raise UsageError(f"{other_key} and {key} both write to stdout ('-'); "
                                     f"give one of them a file")
            seen.append((key, path))
            continue
        for in_key, in_path in given_inputs:
            if not is_stdout(in_path) and same_file(path, in_path):
                raise UsageError(f"{key} '{path}' is the same file as {in_key} '{in_path}'; "
                                 f"writing it would destroy it; choose another {option_of(key)}")
        for other_key, other in seen:
            if not is_stdout(other) and same_file(path, other):
                raise UsageError(f"{key} '{path}' is the same file as {other_key} '{other}'; "
                                 f"give each output its own path")
        seen.append((key, path))
        _check_existing(key, Path(path), overwrite)
        folder = output_folder(path)
        if not os.path.lexists(folder):
            _create_parents(key, folder)
        check_writable_folder(key, folder)


def _check_existing(key: str, path: Path, overwrite: bool) -> None:
    option = option_of(key)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise OutputError(f"cannot check {key} '{path}': {e.strerror or e}; "
                          f"choose another {option}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{key} '{path}' is a directory; give a file path inside it, "
                          f"e.g. '{path / _example_name(key, path)}'")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{key} '{path}' is not a regular file (a device or a pipe) and "
                          f"would be replaced; choose a file path, or '-' for stdout")
    if not overwrite:
        read_only = not st.st_mode & 0o222 or not os.access(path, os.W_OK)
        raise UsageError(f"{key} '{path}' exists{' (read-only)' if read_only else ''}; add "
                         f"--overwrite to replace it, or choose another {option}")


def _create_parents(key: str, folder: Path) -> None:
    """Create an output's missing folders (and their parents), as ``--out-dir`` does."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the folder '{folder}' (for {key}): "
                          f"{e.strerror or e}; choose another {option_of(key)}") from None


#: A file name to suggest inside a directory given as an output, by the suffix the user
#: gave it (``report --out dir.html``), else by the option.
_EXAMPLES_BY_SUFFIX = {".html": "report.html", ".htm": "report.htm", ".png": "timeline.png",
                       ".svg": "timeline.svg", ".vtt": "chapters.vtt",
                       ".ffmeta": "chapters.ffmeta", ".mkv": "copy.mkv", ".mp4": "copy.mp4",
                       ".csv": "frames.csv", ".json": "sections.json"}


def _example_name(key: str, path: Path) -> str:
    """``report --out dir.html`` (a directory) → ``report.html``, not ``sections.json``.

    >>> _example_name("--out", Path("dir.html")), _example_name("--out", Path("results"))
    ('report.html', 'sections.json')
    """
    by_suffix = _EXAMPLES_BY_SUFFIX.get(path.suffix.lower())
    return by_suffix or {"--csv": "frames.csv", "--out": "sections.json"}.get(key, "output")


def check_writable_folder(key: str, folder: PathLike) -> None:
    """Raise :class:`OutputError` unless a new file can be created in ``folder``: it is
    created there and removed at once, so the answer is the kernel's, not a guess from
    permission bits (read-only mounts, ``/proc`` and ``/sys`` refuse even root).

    >>> check_writable_folder("--out", "/proc")
    Traceback (most recent call last):
    ...
    endostream.errors.OutputError: cannot create files in '/proc' (for --out): ...; choose ...
    """
    folder = Path(folder)
    if not folder.exists():
        raise OutputError(f"output folder does not exist: '{folder}' (for {key}); "
                          f"create it first or choose another {option_of(key)}")
    if not folder.is_dir():
        raise OutputError(f"'{folder}' is not a folder (for {key}); "
                          f"choose another {option_of(key)}")
    try:
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folder)
    except OSError as e:
        raise OutputError(f"cannot create files in '{folder}' (for {key}): "
                          f"{e.strerror or e}; choose a folder you can write to") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:  # pragma: no cover - created a moment ago by this process
        pass


def add_overwrite_option(parser: argparse.ArgumentParser, *, also: str = "") -> None:
    """``--overwrite`` / ``--force``, the same on every command that writes: replace
    existing outputs, read-only ones too (``also`` names what else it does)."""
    parser.add_argument("--overwrite", "--force", action="store_true",
                        help=f"replace existing outputs{also} (default: refuse)")


def say_wrote(path: PathLike, detail: str = "") -> None:
    """``wrote PATH (detail)`` on stderr: each command's one line per file it wrote
    (stdout carries findings and data, stderr messages).

    >>> import contextlib, io
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     say_wrote("out/sections.json", "complete: false")
    >>> err.getvalue().splitlines()
    ['wrote out/sections.json (complete: false)']
    """
    print(f"wrote {os.fspath(path)}" + (f" ({detail})" if detail else ""), file=sys.stderr)


def prepare_output_folder(key: str, folder: PathLike) -> Path:
    """Create ``folder`` (and its parents) for an option that names a folder of outputs
    (``--out-dir``, ``--dataset``) and check that it takes new files; return it.

    Raises :class:`OutputError` (exit 5) when it cannot be created or written.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{key} '{folder}' is a file, not a folder; choose another {key}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {key} '{folder}': {e.strerror or e}; "
                          f"choose another {key}") from None
    check_writable_folder(key, folder)
    return folder
