"""An export folder written all or nothing, and read again for a resend.

Every file of an export is first written into a temporary folder beside ``--out-dir``
(same filesystem, so moving is a rename), read back with pydicom and compared with what
was meant; only when every file is there are they renamed into place: the whole folder
at once when ``--out-dir`` is new or empty, else file by file (each rename atomic) and
only after all were written. A refusal, a crash or Ctrl+C before that leaves ``--out-dir``
as it was; the temporary folder is removed (or, after a hard kill, left with a name that
says what it is: ``.DIR.endostream-partial-...``).

With ``--overwrite``, the files of an earlier export of the same study that the new one
does not write again (a key frame of a section the corrected sections file no longer has)
are removed, so that the folder is one consistent export that ``dicom --send`` can send.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "dicom"
>>> with ExportFolder(out) as tmp:
...     _ = (tmp / "a.dcm").write_bytes(b"x")
>>> sorted(p.name for p in out.iterdir())
['a.dcm']
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from endostream.errors import OutputError
from endostream.output.atomic import new_file_mode


class ExportFolder:
    """A context manager: yields the temporary folder; on a clean exit moves its files
    into ``out_dir`` (:meth:`commit`), on an exception removes it."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        parent = self.out_dir.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out_dir.name}.endostream-partial-",
                                             dir=parent))
        except OSError as e:
            raise OutputError(f"cannot write beside '{self.out_dir}' ({e.strerror}); choose "
                              "another --out-dir") from None
        return self.tmp

    def __exit__(self, kind, value, tb) -> None:
        try:
            if kind is None:
                self.commit()
        finally:
            if self.tmp is not None and self.tmp.exists():
                shutil.rmtree(self.tmp, ignore_errors=True)

    def commit(self) -> None:
        """Every file of the temporary folder into ``out_dir``."""
        assert self.tmp is not None
        mode = new_file_mode()
        for path in self.tmp.iterdir():
            path.chmod(mode)
        try:
            if not self.out_dir.exists() or not any(self.out_dir.iterdir()):
                if self.out_dir.exists():
                    self.out_dir.rmdir()
                os.rename(self.tmp, self.out_dir)
                self.out_dir.chmod(mode | (mode & 0o444) >> 2)  # mkdtemp made it 0700
                return
            for path in sorted(self.tmp.iterdir()):
                os.replace(path, self.out_dir / path.name)
        except OSError as e:
            raise OutputError(f"cannot move the export into '{self.out_dir}' ({e.strerror}); "
                              "check the folder's permissions and run again") from None


def save(ds: Dataset, path: Path) -> None:
    """``ds`` as a DICOM file (preamble, file meta)."""
    ds.save_as(path, enforce_file_format=True)


def read_back(path: Path, expected: Dataset) -> Dataset:
    """``path`` as pydicom reads it; :class:`OutputError` when it is not what was written
    (UIDs, pixels, and every person name: a non-ASCII name must survive its encoding)."""
    try:
        ds = dcmread(path)
    except Exception as e:  # any reader failure means the file is not usable
        raise OutputError(f"'{path.name}' does not read back as DICOM ({e}); check the disk "
                          "and run again") from e
    same = ds.SOPInstanceUID == expected.SOPInstanceUID and \
        str(ds.get("PatientName", "")) == str(expected.get("PatientName", ""))
    if same and "PixelData" in expected:
        same = ds.PixelData == expected.PixelData
    if not same:
        raise OutputError(f"'{path.name}' reads back differently from what was written; "
                          "check the disk and run again")
    return ds


def export_files(folder: Path) -> list[Path]:
    """The DICOM files of an export folder, in the order they are sent: images first,
    the document after the instances it references."""
    paths = sorted(p for p in Path(folder).glob("*.dcm") if p.is_file())
    return sorted(paths, key=lambda p: (p.name.startswith("sections-"), p.name))


def stale_files(out_dir: Path, study_uid: str, keep: set[str]) -> list[Path]:
    """Files of an earlier endostream export of ``study_uid`` in ``out_dir`` whose names
    are not in ``keep`` (what the new export writes)."""
    found = []
    for path in export_files(out_dir):
        if path.name in keep:
            continue
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except Exception:  # not ours to judge: a file we cannot read is left alone
            continue
        if ds.get("Manufacturer") == "endostream" and ds.get("StudyInstanceUID") == study_uid:
            found.append(path)
    return found
