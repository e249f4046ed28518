"""Atomic file writes: the one way every endostream output reaches the disk.

A reader (a viewer, a backup, the next resumed run) must see the old file or the whole new
one, never a torn one, even after a crash or Ctrl+C. So every output is written to a
temporary file in the target's directory (same filesystem), flushed, fsynced, given its
final permissions and renamed over the target. Permissions: a file that is replaced keeps
its mode; a new one gets what ``open()`` would give under the umask (``mkstemp``'s 0600
would hide results from every other account). The JSON sections file, the per-frame CSV,
exported models, checkpoints and benchmark inputs all go through :class:`AtomicFile`.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_text_atomic(d / "a.txt", "hello\\n")
>>> (d / "a.txt").read_text()
'hello\\n'
>>> with AtomicFile(d / "b.bin", binary=True) as f:
...     _ = f.file.write(b"\\x00\\x01")
>>> sorted(p.name for p in d.iterdir())
['a.txt', 'b.bin']
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any

from endostream.errors import OutputError

#: Suffix of the temporary files (left behind only if the process is killed outright).
TEMP_SUFFIX = ".tmp"


def new_file_mode() -> int:
    """The permissions ``open()`` gives a new file under this process's umask (0o644 for
    the usual 022)."""
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


def _target_mode(target: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return new_file_mode()


def _error(target: Path, e: OSError, hint: str) -> OutputError:
    return OutputError(f"cannot write '{target}': {e.strerror or e}; {hint}")


class AtomicFile:
    """A temporary file that becomes ``path`` on :meth:`commit` and vanishes on
    :meth:`discard`.

    ``file`` is the open handle (text, UTF-8, or ``binary=True``); writers that want a path
    of their own (``torch.save``, ``onnx.save``, a PyAV muxer) write to :attr:`temp_path`
    and open nothing (``open_file=False``; ``suffix`` keeps an extension such writers
    read, e.g. ``".tmp.mp4"``). As a context manager it commits when the block ends
    normally and discards on an exception (an ``OSError`` comes out as
    :class:`OutputError`). ``hint`` ends every error message (what the user should do,
    e.g. "choose another --csv").
    """

    def __init__(self, path: str | os.PathLike, *, binary: bool = False, newline: str | None = None,
                 open_file: bool = True, suffix: str = TEMP_SUFFIX,
                 hint: str = "choose another output path"):
        self.path = Path(path)
        self.hint = hint
        directory = self.path.parent if str(self.path.parent) else Path(".")
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=suffix,
                                       dir=directory)
        except OSError as e:
            raise _error(self.path, e, hint) from e
        self.temp_path = Path(tmp)
        self.file: IO[Any] | None = None
        if open_file:
            if binary:
                self.file = os.fdopen(fd, "wb")
            else:
                self.file = os.fdopen(fd, "w", encoding="utf-8", newline=newline)
        else:
            os.close(fd)
        self._done = False

    def commit(self) -> None:
        """Flush, fsync, set the permissions and rename into place; on failure remove the
        temporary file and raise :class:`OutputError`."""
        if self._done:
            return
        try:
            if self.file is not None:
                self.file.flush()
                os.fsync(self.file.fileno())
                self.file.close()
            else:
                with open(self.temp_path, "rb") as fh:
                    os.fsync(fh.fileno())
            os.chmod(self.temp_path, _target_mode(self.path))
            os.replace(self.temp_path, self.path)
        except OSError as e:
            self.discard()
            raise _error(self.path, e, self.hint) from e
        self._done = True

    def discard(self) -> None:
        """Drop what was written: nothing appears at ``path`` (an earlier file stays)."""
        if self._done:
            return
        self._done = True
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
        try:
            os.unlink(self.temp_path)
        except OSError:
            pass

    @property
    def closed(self) -> bool:
        return self._done

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.commit()
            return
        self.discard()
        if isinstance(exc, OSError):
            raise _error(self.path, exc, self.hint) from exc


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *,
                       hint: str = "choose another output path") -> None:
    """Write ``data`` to ``path`` atomically, or raise :class:`OutputError`."""
    with AtomicFile(path, binary=True, hint=hint) as f:
        f.file.write(data)


def write_text_atomic(path: str | os.PathLike, text: str, *,
                      hint: str = "choose another output path") -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, or raise :class:`OutputError`."""
    write_bytes_atomic(path, text.encode("utf-8"), hint=hint)


def write_json_atomic(path: str | os.PathLike, document: Any, *,
                      hint: str = "choose another --out") -> None:
    """Write ``document`` as indented UTF-8 JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                      hint=hint)
