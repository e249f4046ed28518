"""Who and which study the DICOM files belong to: only ever what the hospital says.

A file name ("smith_john_2024.mp4") or a container tag (title, comment) may name a
patient, and may name the wrong one: a recording copied under another name, a tag left
from the previous patient. Putting such a guess into a PACS files images under a person,
which is worse than filing them nowhere. So the patient and study attributes come, in
this order of precedence, from the options (``--patient-id``, ``--patient-name``,
``--study-uid``, ``--accession``), from the Modality Worklist item the order was
scheduled under (``--worklist``, see :mod:`~endostream.dicom.net.worklist`), or from a
template file of the same exam (``--like exam.dcm``). Nothing else is ever read.

Every value is checked against its VR before anything is written
(:mod:`~endostream.dicom.values`): a refusal names the option or the source it came from.

Without a patient ID the files are marked anonymous the way the standard provides:
Patient Identity Removed = YES with a De-identification Method saying why, the name
``ANONYMOUS^`` and a patient ID derived from the recording (an empty one would merge every
anonymous procedure into one patient in most archives; a random one would file a retry
under a second patient).

>>> ident = identity_from(patient_id="12345", patient_name="Doe^Jane", accession="A7")
>>> ident.anonymous, ident.dataset.PatientID, str(ident.dataset.PatientName)
(False, '12345', 'Doe^Jane')
>>> ident.dataset.AccessionNumber, ident.study_uid is None
('A7', True)
>>> anon = identity_from()
>>> anon.anonymous, anon.dataset.PatientIdentityRemoved
(True, 'YES')
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, replace

from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from endostream.dicom import values
from endostream.errors import UsageError

#: Patient module attributes copied from ``--like`` or the worklist (PS3.3 C.7.1.1).
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
    """Patient and General Study attributes for every file of one export, and the request
    the export fulfils (a Request Attributes Sequence item, from the worklist)."""

    dataset: Dataset
    anonymous: bool
    #: Request Attributes Sequence item (PS3.3 C.7.3.1): the worklist's order, or None.
    request: Dataset | None = None
    #: where the identity came from, for the summary ("options", "worklist", "--like")
    source: str = "options"

    @property
    def study_uid(self) -> str | None:
        """The study's UID when the hospital gave one (else derived from the recording)."""
        return str(self.dataset.StudyInstanceUID) if self.dataset.get("StudyInstanceUID") \
            else None

    def for_export(self, study_uid: str, anonymous_id: str) -> Identity:
        """A copy with the study UID set and, when anonymous, the recording's patient ID."""
        ds = copy.deepcopy(self.dataset)
        ds.StudyInstanceUID = study_uid
        if self.anonymous:
            ds.PatientID = anonymous_id
        return replace(self, dataset=ds)

    def describe(self) -> str:
        """One line for the command's summary (names no patient when anonymous)."""
        if self.anonymous:
            pid = f"patient ID {self.dataset.PatientID}, " if self.dataset.PatientID else ""
            return f"anonymous ({pid}no identity given)"
        return f"patient ID {self.dataset.PatientID} (from {self.source})"


def _template(path: str | os.PathLike) -> Dataset:
    try:
        return dcmread(path, stop_before_pixels=True)
    except FileNotFoundError:
        raise UsageError(f"--like file not found: '{path}'; give a DICOM file of the same "
                         "exam") from None
    except (InvalidDicomError, OSError, ValueError, EOFError) as e:
        raise UsageError(f"--like '{path}' is not a readable DICOM file ({e}); give a DICOM "
                         "file of the same exam") from e


def check_dataset(ds: Dataset, source: str) -> None:
    """Every text value of ``ds`` (nested sequences included) against its VR."""
    for elem in ds.iterall():
        if elem.VR in values.MAX_LENGTH and elem.value not in (None, ""):
            vm = elem.value if elem.VM > 1 else [elem.value]
            for v in vm:
                values.checked(str(v), elem.VR, f"{source}'s {elem.keyword or elem.tag}")


def identity_from(**given) -> Identity:
    """The identity the options, the worklist item and ``like`` give (see the module
    docstring and :func:`_identity_from`); library warnings go to the log."""
    with values.library_warnings_logged():
        return _identity_from(**given)


def _identity_from(*, patient_id: str | None = None, patient_name: str | None = None,
                   study_uid: str | None = None, accession: str | None = None,
                   like: str | os.PathLike | None = None,
                   worklist: Dataset | None = None) -> Identity:
    """No Study Instance UID unless one is given (the export derives one)."""
    ds = Dataset()
    request = None
    source = "options"
    if like is not None:
        template = _template(like)
        for keyword in PATIENT_KEYWORDS + STUDY_KEYWORDS:
            if keyword in template:
                setattr(ds, keyword, template.data_element(keyword).value)
        if not ds.get("StudyInstanceUID"):
            raise UsageError(f"--like '{like}' has no Study Instance UID; give a file of the "
                             "exam, or --study-uid")
        check_dataset(ds, f"--like '{like}'")
        source = "--like"
    if worklist is not None:
        found, request = worklist_attributes(worklist)
        check_dataset(found, "the worklist item")
        ds.update(found)
        source = "worklist"
    for keyword, value in (("PatientID", patient_id), ("PatientName", patient_name),
                           ("AccessionNumber", accession)):
        if value is not None:
            option = f"--{keyword_option(keyword)}"
            if not value.strip():
                raise UsageError(f"{option} is empty; give the value or leave the option out")
            setattr(ds, keyword, values.checked(value.strip(), dictionary_VR(keyword), option))
    if study_uid is not None:
        ds.StudyInstanceUID = values.uid(study_uid.strip(), "--study-uid")
    anonymous = not str(ds.get("PatientID") or "").strip()
    if anonymous:
        ds.PatientName = ANONYMOUS_NAME
        ds.PatientID = ""
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = ANONYMOUS_METHOD
    for keyword in REQUIRED_EMPTY:
        if keyword not in ds:
            setattr(ds, keyword, "")
    if request is not None and accession is not None:
        request.AccessionNumber = ds.AccessionNumber
    return Identity(dataset=ds, anonymous=anonymous, request=request, source=source)


#: What a worklist item (PS3.4 K.6.1.2) gives the study: its keyword → the study's keyword.
WORKLIST_STUDY = {"StudyInstanceUID": "StudyInstanceUID", "AccessionNumber": "AccessionNumber",
                  "ReferringPhysicianName": "ReferringPhysicianName",
                  "RequestedProcedureDescription": "StudyDescription",
                  "RequestedProcedureCodeSequence": "ProcedureCodeSequence",
                  "RequestedProcedureID": "StudyID"}  # IHE SWF: Study ID from the request
#: What the Request Attributes Sequence item (PS3.3 C.7.3.1) takes from the item.
REQUEST_KEYWORDS = ("RequestedProcedureID", "RequestedProcedureDescription",
                    "RequestedProcedureCodeSequence", "AccessionNumber", "StudyInstanceUID")
STEP_KEYWORDS = ("ScheduledProcedureStepID", "ScheduledProcedureStepDescription",
                 "ScheduledProtocolCodeSequence")


def worklist_attributes(item: Dataset) -> tuple[Dataset, Dataset]:
    """The patient and study attributes of a worklist item, and the Request Attributes
    Sequence item that ties the export to its order (IHE Scheduled Workflow)."""
    ds, request = Dataset(), Dataset()
    for keyword in PATIENT_KEYWORDS:
        if item.get(keyword) not in (None, ""):
            setattr(ds, keyword, item.data_element(keyword).value)
    for keyword, target in WORKLIST_STUDY.items():
        if item.get(keyword) not in (None, ""):
            setattr(ds, target, item.data_element(keyword).value)
    for keyword in REQUEST_KEYWORDS:
        if item.get(keyword) not in (None, ""):
            setattr(request, keyword, item.data_element(keyword).value)
    step = (item.get("ScheduledProcedureStepSequence") or [Dataset()])[0]
    for keyword in STEP_KEYWORDS:
        if step.get(keyword) not in (None, ""):
            setattr(request, keyword, step.data_element(keyword).value)
    return ds, request


def keyword_option(keyword: str) -> str:
    """The option that sets ``keyword``.

    >>> keyword_option("AccessionNumber")
    'accession'
    """
    return {"PatientID": "patient-id", "PatientName": "patient-name",
            "AccessionNumber": "accession"}[keyword]
