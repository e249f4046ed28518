"""Checks on output paths made before any work: the recording is never overwritten.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "v.mp4").write_bytes(b"x")
>>> check_output(d / "v.mp4", inputs=[d / "v.mp4"])
Traceback (most recent call last):
...
endostream.errors.OutputError: --out '...v.mp4' is an input ...; inputs are never overwritten, ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from endostream.errors import OutputError


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file (links and relative paths resolved)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def check_output(out: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                 option: str = "--out") -> Path:
    """Refuse ``out`` when it is an input, a directory, or in a directory that is missing."""
    out = Path(out)
    for src in inputs:
        if src is not None and same_file(out, src):
            raise OutputError(f"{option} '{out}' is an input (the recording or its sections); "
                              "inputs are never overwritten, choose another path")
    if out.is_dir():
        raise OutputError(f"{option} '{out}' is a directory; give a file path inside it")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory does not exist: '{parent}'; create it first")
    return out


def check_output_dir(directory: str | os.PathLike, *, option: str = "--out-dir") -> Path:
    """Create ``directory`` (and parents) if needed; :class:`OutputError` if impossible."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {option} '{directory}': {e.strerror or e}; "
                          "choose another directory") from e
    return directory
