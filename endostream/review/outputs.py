"""Output checks of the review commands, made before any work: the recording, its
sections and the per-frame CSV are never overwritten.

The rules live in :mod:`endostream.output.guard` (the one module every command that writes
uses); this module names the review commands' inputs for its messages.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "v.mp4").write_bytes(b"x")
>>> check_output(d / "v.mp4", inputs=[d / "v.mp4"])
Traceback (most recent call last):
...
endostream.errors.UsageError: --out '...v.mp4' is the same file as an input '...'; ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from endostream.output.guard import check_outputs, prepare_output_folder


def check_output(out: str | os.PathLike, *, inputs: Iterable[str | os.PathLike | None] = (),
                 option: str = "--out", overwrite: bool = True) -> Path:
    """Refuse ``out`` when it is an input (exit 2), a directory, or in a folder that is
    missing or not writable (exit 5). ``overwrite``: an earlier read-only result may be
    replaced (the review outputs are derived files, made again at will)."""
    check_outputs({option: out}, {"an input": [p for p in inputs if p is not None]},
                  overwrite=overwrite)
    return Path(out)


def check_output_dir(directory: str | os.PathLike, *, option: str = "--out-dir") -> Path:
    """Create ``directory`` (and parents) if needed and check it takes new files."""
    return prepare_output_folder(option, directory)
