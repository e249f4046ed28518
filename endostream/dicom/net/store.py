"""Storing an export's files in an archive (PACS) with DICOM C-STORE.

One association carries every file (see :mod:`~endostream.dicom.net.association` for its
retries and which refusals are final). Each C-STORE's status is checked: success
(0x0000) and the standard's warnings (0xB000 coercion, 0xB006 elements discarded, 0xB007
data set does not match the SOP class) count as stored (the warning is reported); any
other status, or no answer, as not stored. The files stay where they are either way, and
since their UIDs are derived from the recording (:mod:`~endostream.dicom.uids`), sending
them again stores the same instances: an archive keeps one copy.

A success status is not proof: Orthanc, for one, answers success for an instance its own
filter discards. Proof is Storage Commitment (:mod:`~endostream.dicom.net.commit`); where
it is not asked for or not offered, each stored instance is looked up on the same
association with C-FIND (Study Root, IMAGE level, by its UIDs) and one the archive does
not find counts as not stored. Where the archive allows no C-FIND either, the report says
the storage could not be verified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import MPEG4HP41
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    StudyRootQueryRetrieveInformationModelFind,
    VideoEndoscopicImageStorage,
    VLEndoscopicImageStorage,
)

from endostream.dicom.net.association import connect, new_ae

log = logging.getLogger(__name__)

#: Statuses that mean "stored, with a remark" (PS3.4 Annex B.2.3).
WARNING_STATUSES = {0xB000: "coercion of data elements", 0xB006: "elements discarded",
                    0xB007: "data set does not match SOP class"}
#: What we offer: the three SOP classes endostream writes, in the transfer syntaxes it
#: writes them (pynetdicom's defaults: Explicit and Implicit VR Little Endian), and C-FIND.
CONTEXTS = ((VLEndoscopicImageStorage, None), (ComprehensiveSRStorage, None),
            (VideoEndoscopicImageStorage, (MPEG4HP41,)),
            (StudyRootQueryRetrieveInformationModelFind, None))


@dataclass
class SendReport:
    """What the archive stored and what it did not (with the reason)."""

    stored: list[Path] = field(default_factory=list)
    warnings: dict[Path, str] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)
    #: why the stored files could not be looked up afterwards ("" when they were)
    unverified: str = ""
    #: (study, series, SOP class, SOP instance) UIDs of each file answered success for
    uids: dict[Path, tuple[str, str, str, str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.failed


def send_files(paths: Sequence[Path], *, host: str, port: int, calling_aet: str,
               called_aet: str, retries: int = 3, retry_pause_s: float = 1.0,
               verify: bool = True,
               on_file: Callable[[Path, str], None] | None = None) -> SendReport:
    """C-STORE every file in ``paths`` to ``called_aet`` at ``host:port``; with
    ``verify``, look each up again with C-FIND.

    :class:`SendError` when no association could be made; otherwise the report (check
    :attr:`SendReport.complete`). ``on_file(path, outcome)`` is called after each file.
    """
    ae = new_ae(calling_aet, CONTEXTS)
    assoc = connect(ae, host, port, called_aet=called_aet, retries=retries,
                    retry_pause_s=retry_pause_s)
    report = SendReport()
    try:
        for i, path in enumerate(paths):
            outcome = _store(assoc, path, report)
            if on_file is not None:
                on_file(path, outcome)
            if not assoc.is_established:  # the archive dropped us: the rest is not sent
                for rest in paths[i + 1:]:
                    report.failed[rest] = "the archive closed the association"
                break
        if verify and assoc.is_established:
            _verify(assoc, report)
    finally:
        if assoc.is_established:
            assoc.release()
    return report


def _verify(assoc, report: SendReport) -> None:
    """Look up each stored instance with C-FIND; move those not found to ``failed``."""
    if not any(c.abstract_syntax == StudyRootQueryRetrieveInformationModelFind
               for c in assoc.accepted_contexts):
        report.unverified = "the archive offers no C-FIND to this AE title"
        return
    for path in list(report.stored):
        study, series, _, instance = report.uids[path]
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID, query.SeriesInstanceUID = study, series
        query.SOPInstanceUID = instance
        found, final = False, None
        for status, identifier in assoc.send_c_find(query,
                                                    StudyRootQueryRetrieveInformationModelFind):
            final = getattr(status, "Status", None) if status else None
            if final in (0xFF00, 0xFF01) and identifier is not None and \
                    identifier.get("SOPInstanceUID") == instance:
                found = True
        if final != 0x0000 and not found:
            report.unverified = ("the archive refused C-FIND" if final is not None else
                                 "the archive did not answer C-FIND")
            return
        if not found:
            report.stored.remove(path)
            report.warnings.pop(path, None)
            report.failed[path] = ("answered success, but the archive does not have it "
                                   "(C-FIND finds no such instance: a filter or a rule there?)")


def _store(assoc, path: Path, report: SendReport) -> str:
    try:
        ds = dcmread(path)
    except Exception as e:  # a file changed or removed since it was written
        report.failed[path] = f"cannot read it ({e})"
        return report.failed[path]
    try:
        status = assoc.send_c_store(ds)
    except (RuntimeError, ValueError) as e:  # e.g. no accepted presentation context
        report.failed[path] = f"not sent ({e})"
        return report.failed[path]
    code = getattr(status, "Status", None) if status else None
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPClassUID, ds.SOPInstanceUID)
    if code is None:
        report.failed[path] = "no answer from the archive"
    elif code == 0x0000:
        report.stored.append(path)
        report.uids[path] = uids
        return "stored"
    elif code in WARNING_STATUSES:
        report.stored.append(path)
        report.uids[path] = uids
        report.warnings[path] = f"stored with warning 0x{code:04X} ({WARNING_STATUSES[code]})"
        return report.warnings[path]
    else:
        report.failed[path] = f"refused with status 0x{code:04X}"
    return report.failed[path]
