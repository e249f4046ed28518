"""The DICOM options shared by ``endostream dicom`` and ``segment --dicom-out``.

Not a command (commands never import one another): the identity options, their typed
value, the install hint and the closing line, and ``segment --dicom-out`` parsed once into
a :class:`DicomOut`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endostream.errors import UsageError
from endostream.review.outputs import check_output_dir

INSTALL_HINT = "pip install 'endostream[dicom]' (pydicom, highdicom, pynetdicom)"

#: The identity options' argparse names (``--patient-id`` ...).
IDENTITY_OPTIONS = ("patient_id", "patient_name", "study_uid", "accession", "like")


def add_identity_arguments(p: argparse.ArgumentParser) -> None:
    """The patient and study options, shared with ``segment --dicom-out``."""
    who = p.add_argument_group("identity (only from here: never from file names or metadata)")
    who.add_argument("--patient-id", metavar="ID",
                     help="Patient ID as the hospital has it (default: none, the files are "
                          "marked anonymous)")
    who.add_argument("--patient-name", metavar="NAME",
                     help="Patient's Name, e.g. 'Doe^Jane' (default: empty)")
    who.add_argument("--study-uid", metavar="UID",
                     help="Study Instance UID of the exam (from the worklist); default: a new "
                          "one, or the one of --like")
    who.add_argument("--accession", metavar="NUMBER",
                     help="Accession Number of the order (default: empty)")
    who.add_argument("--like", type=Path, metavar="exam.dcm",
                     help="a file of the same exam whose patient and study are copied "
                          "(default: none)")


def identity_of(args: argparse.Namespace, worklist=None):
    """The :class:`~endostream.dicom.identity.Identity` the options (and the worklist
    item, when one was found) give."""
    from endostream.dicom.identity import identity_from
    return identity_from(patient_id=args.patient_id, patient_name=args.patient_name,
                         study_uid=args.study_uid, accession=args.accession, like=args.like,
                         worklist=worklist)


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """``dicom``'s worklist, date and anatomy options."""
    g = p.add_argument_group("worklist, time and anatomy")
    g.add_argument("--worklist", metavar="HOST:PORT",
                   help="patient and order from the one worklist item matching "
                        "--accession, or --patient-id and --study-date (default: none)")
    g.add_argument("--worklist-aet", metavar="TITLE",
                   help="the worklist's AE title (default: --called-aet)")
    g.add_argument("--scheduled-station", action="store_true",
                   help="match the worklist's Scheduled Station AE Title against --aet "
                        "(default: no)")
    g.add_argument("--study-date", metavar="DATE[THH:MM]",
                   help="when the recording started, YYYY-MM-DD (default: its container's "
                        "creation time)")
    g.add_argument("--anatomy-map", type=Path, metavar="FILE",
                   help="JSON map of the model's organ labels to anatomic codes, for a model "
                        "with other classes (default: ear, nose, vocal_folds built in)")


def say_written(written, identity, out_dir: Path) -> None:
    """What was written, for whom, on stderr (and that it is anonymous, when it is)."""
    images = sum(w.kind == "image" for w in written)
    video = " and the recording" if any(w.kind == "video" for w in written) else ""
    study = f", study {written[0].study_uid}" if written and written[0].study_uid else ""
    print(f"wrote {images} key frame(s), the sections document{video} to {out_dir}: "
          f"{identity.describe()}{study}", file=sys.stderr)
    for w in written:
        if w.kind == "video":
            print(f"  {w.path.name}: {w.caption}", file=sys.stderr)
    if identity.anonymous:
        print("endostream: no patient identity given: the files are marked anonymous "
              "(Patient Identity Removed = YES); give --patient-id or --like to file them "
              "under a patient", file=sys.stderr)


def require_dicom_extra() -> None:
    """:class:`UsageError` with the install hint when the dicom extra is missing."""
    try:
        from endostream.dicom import identity, write  # noqa: F401
    except ImportError as e:
        raise UsageError(f"endostream dicom needs {INSTALL_HINT}; missing: {e.name}") from None


@dataclass(frozen=True)
class DicomOut:
    """``segment --dicom-out DIR``: the folder (checked) and the identity to file under."""

    folder: Path
    identity: Any  #: :class:`~endostream.dicom.identity.Identity`

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DicomOut | None:
        """The extra, the identity and the folder, checked before any analysis; ``None``
        without --dicom-out (identity options alone are refused)."""
        if args.dicom_out is None:
            given = [o for o in IDENTITY_OPTIONS if getattr(args, o) is not None]
            if given:
                raise UsageError(f"--{given[0].replace('_', '-')} is only used with "
                                 "--dicom-out DIR (or 'endostream dicom')")
            return None
        require_dicom_extra()
        identity = identity_of(args)
        folder = check_output_dir(args.dicom_out, option="--dicom-out")
        if any(folder.glob("*.dcm")) and not args.overwrite:
            raise UsageError(f"--dicom-out '{folder}' holds DICOM files already; pass "
                              "--overwrite to replace them or choose another folder")
        return cls(Path(args.dicom_out), identity)
