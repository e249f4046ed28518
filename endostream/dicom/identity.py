"""Who and which study the DICOM files belong to: only ever what the user says.

A file name ("smith_john_2024.mp4") or a container tag (title, comment) may name a
patient, and may name the wrong one: a recording copied under another name, a tag left
from the previous patient. Putting such a guess into a PACS files images under a person,
which is worse than filing them nowhere. So the patient and study attributes come from
the options (``--patient-id``, ``--patient-name``, ``--study-uid``, ``--accession``) or
from a template file of the same exam (``--like exam.dcm``, whose Patient and General
Study attributes are copied; options given as well win). Nothing else is ever read.

Without a patient ID the files are marked anonymous the way the standard provides:
Patient Identity Removed = YES with a De-identification Method saying why, the name
``ANONYMOUS^`` and a random patient ID (an empty one would merge every anonymous
procedure into one patient in most archives).

>>> ident = identity_from(patient_id="12345", patient_name="Doe^Jane", accession="A7")
>>> ident.anonymous, ident.dataset.PatientID, str(ident.dataset.PatientName)
(False, '12345', 'Doe^Jane')
>>> ident.dataset.AccessionNumber, ident.dataset.StudyInstanceUID == ident.study_uid
('A7', True)
>>> anon = identity_from()
>>> anon.anonymous, anon.dataset.PatientIdentityRemoved, anon.dataset.PatientID[:5]
(True, 'YES', 'ANON-')
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import generate_uid

from endostream.errors import UsageError

#: Patient module attributes copied from ``--like`` (PS3.3 C.7.1.1).
PATIENT_KEYWORDS = ("PatientName", "PatientID", "IssuerOfPatientID",
                    "IssuerOfPatientIDQualifiersSequence", "PatientBirthDate", "PatientSex",
                    "OtherPatientIDsSequence", "PatientIdentityRemoved",
                    "DeidentificationMethod", "DeidentificationMethodCodeSequence")
#: General Study module attributes copied from ``--like`` (PS3.3 C.7.2.1).
STUDY_KEYWORDS = ("StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName",
                  "StudyID", "AccessionNumber", "IssuerOfAccessionNumberSequence",
                  "StudyDescription", "ProcedureCodeSequence")
#: Type 2 attributes of those modules: present, empty when not known.
REQUIRED_EMPTY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                  "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")

ANONYMOUS_NAME = "ANONYMOUS^"  # the trailing caret: a family name alone, not the retired form
ANONYMOUS_METHOD = "endostream: no patient identity was given"


@dataclass(frozen=True)
class Identity:
    """Patient and General Study attributes for every file of one export."""

    dataset: Dataset
    anonymous: bool

    @property
    def study_uid(self) -> str:
        return str(self.dataset.StudyInstanceUID)

    def describe(self) -> str:
        """One line for the command's summary (names no patient when anonymous)."""
        if self.anonymous:
            return f"anonymous (patient ID {self.dataset.PatientID}, no identity given)"
        return f"patient ID {self.dataset.PatientID}, study {self.study_uid}"


#: A UID (PS3.5 9.1): numeric components without leading zeros, dot-separated.
UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+")


def _check_uid(value: str, option: str) -> str:
    if len(value) > 64 or not UID_PATTERN.fullmatch(value):
        raise UsageError(f"{option} '{value}' is not a valid DICOM UID (digits and dots, at "
                         "most 64 characters); copy it from the worklist or the exam")
    return value


def _template(path: str | os.PathLike) -> Dataset:
    try:
        return dcmread(path, stop_before_pixels=True)
    except FileNotFoundError:
        raise UsageError(f"--like file not found: '{path}'; give a DICOM file of the same "
                         "exam") from None
    except (InvalidDicomError, OSError, ValueError, EOFError) as e:
        raise UsageError(f"--like '{path}' is not a readable DICOM file ({e}); give a DICOM "
                         "file of the same exam") from e


def identity_from(*, patient_id: str | None = None, patient_name: str | None = None,
                  study_uid: str | None = None, accession: str | None = None,
                  like: str | os.PathLike | None = None) -> Identity:
    """The identity the options give (see the module docstring); a new Study Instance UID
    unless one is given or copied."""
    ds = Dataset()
    if like is not None:
        template = _template(like)
        for keyword in PATIENT_KEYWORDS + STUDY_KEYWORDS:
            if keyword in template:
                setattr(ds, keyword, template.data_element(keyword).value)
        if not ds.get("StudyInstanceUID"):
            raise UsageError(f"--like '{like}' has no Study Instance UID; give a file of the "
                             "exam, or --study-uid")
    for keyword, value in (("PatientID", patient_id), ("PatientName", patient_name),
                           ("AccessionNumber", accession)):
        if value is not None:
            if not value.strip():
                raise UsageError(f"--{keyword_option(keyword)} is empty; give the value or "
                                 "leave the option out")
            setattr(ds, keyword, value.strip())
    if study_uid is not None:
        ds.StudyInstanceUID = _check_uid(study_uid.strip(), "--study-uid")
    if not ds.get("StudyInstanceUID"):
        ds.StudyInstanceUID = generate_uid()
    else:
        _check_uid(str(ds.StudyInstanceUID), "the study UID of --like")
    anonymous = not str(ds.get("PatientID") or "").strip()
    if anonymous:
        ds.PatientName = ANONYMOUS_NAME
        ds.PatientID = "ANON-" + secrets.token_hex(6).upper()
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = ANONYMOUS_METHOD
    for keyword in REQUIRED_EMPTY:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return Identity(dataset=ds, anonymous=anonymous)


def keyword_option(keyword: str) -> str:
    """The option that sets ``keyword``.

    >>> keyword_option("AccessionNumber")
    'accession'
    """
    return {"PatientID": "patient-id", "PatientName": "patient-name",
            "AccessionNumber": "accession"}[keyword]
