"""The Modality Worklist query: the patient and the order, as the hospital scheduled them.

``dicom --worklist HOST:PORT`` sends one C-FIND (Modality Worklist Information Model -
FIND, PS3.4 K.6.1) with the matching keys the user gives (:class:`WorklistKeys`):
Accession Number, Patient ID (with the scheduled date), or the Scheduled Station AE Title
(our ``--aet``, with the scheduled date). Exactly one matching item is used (its patient,
study, accession, requested procedure and scheduled step, see
:func:`~endostream.dicom.identity.worklist_attributes`); none or several is refused before
anything is written, with what was found, because picking one of several is how studies
get misfiled.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom.sop_class import ModalityWorklistInformationFind

from endostream.dicom.net.association import connect, new_ae
from endostream.errors import SendError, UsageError

#: Return keys asked for (empty: "send me this"), besides the matching keys.
RETURN_KEYS = ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate",
               "PatientSex", "StudyInstanceUID", "AccessionNumber", "ReferringPhysicianName",
               "RequestedProcedureID", "RequestedProcedureDescription")
STEP_KEYS = ("ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
             "ScheduledProcedureStepStartTime", "Modality", "ScheduledProcedureStepID",
             "ScheduledProcedureStepDescription")
#: Items listed in the message when several match.
SHOWN = 3


@dataclass(frozen=True)
class WorklistKeys:
    """The matching keys of one query (``None``: not matched on)."""

    accession: str | None = None
    patient_id: str | None = None
    station_aet: str | None = None
    date: str | None = None  #: DA, the scheduled step's start date

    def describe(self) -> str:
        """The keys in words, for messages.

        >>> WorklistKeys(patient_id="P1", date="20261201").describe()
        'patient ID P1, scheduled 20261201'
        """
        parts = [f"accession {self.accession}" if self.accession else "",
                 f"patient ID {self.patient_id}" if self.patient_id else "",
                 f"station {self.station_aet}" if self.station_aet else "",
                 f"scheduled {self.date}" if self.date else ""]
        return ", ".join(p for p in parts if p)

    def query(self) -> Dataset:
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 192"  # answers in UTF-8: names in any script
        for keyword in RETURN_KEYS:
            setattr(ds, keyword, "")
        ds.RequestedProcedureCodeSequence = []
        if self.accession:
            ds.AccessionNumber = self.accession
        if self.patient_id:
            ds.PatientID = self.patient_id
        step = Dataset()
        for keyword in STEP_KEYS:
            setattr(step, keyword, "")
        step.ScheduledProtocolCodeSequence = []
        if self.station_aet:
            step.ScheduledStationAETitle = self.station_aet
        if self.date:
            step.ScheduledProcedureStepStartDate = self.date
        ds.ScheduledProcedureStepSequence = [step]
        return ds


def _summary(item: Dataset) -> str:
    step = (item.get("ScheduledProcedureStepSequence") or [Dataset()])[0]
    return (f"accession {item.get('AccessionNumber') or '-'}, patient ID "
            f"{item.get('PatientID') or '-'}, scheduled "
            f"{step.get('ScheduledProcedureStepStartDate') or '-'}")


def query_worklist(keys: WorklistKeys, *, host: str, port: int, calling_aet: str,
                   called_aet: str, retries: int = 0) -> Dataset:
    """The one worklist item matching ``keys``; :class:`UsageError` (exit 2) for none or
    several, :class:`SendError` when the worklist cannot be asked."""
    ae = new_ae(calling_aet, [(ModalityWorklistInformationFind, None)])
    assoc = connect(ae, host, port, called_aet=called_aet, retries=retries,
                    what="no worklist query")
    found: list[Dataset] = []
    final = None
    try:
        for status, identifier in assoc.send_c_find(keys.query(),
                                                    ModalityWorklistInformationFind):
            final = getattr(status, "Status", None) if status else None
            if final in (0xFF00, 0xFF01) and identifier is not None:
                found.append(identifier)
    finally:
        if assoc.is_established:
            assoc.release()
    if final != 0x0000:
        said = "no answer" if final is None else f"status 0x{final:04X}"
        raise SendError(f"the worklist {called_aet}@{host}:{port} did not answer the query "
                        f"({said}); ask its administrator whether our AE title may query it")
    where = f"the worklist {called_aet}@{host}:{port}"
    if not found:
        raise UsageError(f"{where} has no item for {keys.describe()}; check the keys, or "
                         "give the identity with --patient-id/--accession without --worklist")
    if len(found) > 1:
        shown = "; ".join(_summary(i) for i in found[:SHOWN])
        more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        raise UsageError(f"{where} has {len(found)} items for {keys.describe()} ({shown}"
                         f"{more}); narrow it down with --accession")
    return found[0]
