"""Storage Commitment (PS3.4 Annex J, Push Model): the archive's word that it keeps each
instance, the proof that the local files may be deleted.

After the C-STOREs, endostream asks the archive (N-ACTION, action type 1, a new
Transaction UID) to commit every instance it answered success for, then waits for the
archive's N-EVENT-REPORT with that Transaction UID: event type 1 (all committed) or 2
(some failed, each with its Failure Reason). The standard lets the archive send the report
on the same association while it is open, or open an association back to the requester;
most archives, Orthanc among them, do the latter, to the host and port their
administrator registered for our AE title. So with ``--commit-port PORT`` a listener
runs on that port for the wait only, accepts only the archive's AE title (``--called-aet``)
and only the Storage Commitment SOP class; without it, the report can only arrive on the
same association.

Where the archive does not offer Storage Commitment to our AE title (the presentation
context is rejected, or the request is refused as not authorised or not supported, or
answered by closing the association: Orthanc's ``AllowStorageCommitment: false``),
:func:`request_commitment` says so (``offered`` false, with why) and the caller verifies
with C-FIND instead.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    StorageCommitmentPushModel,
    StorageCommitmentPushModelInstance,
    Verification,
)

from endostream.dicom.net.association import TIMEOUT_S, connect, new_ae, quiet_pynetdicom
from endostream.errors import SendError

log = logging.getLogger(__name__)

#: Seconds to wait for the archive's report after its N-ACTION answer (default).
REPORT_TIMEOUT_S = 60.0
#: Failure Reason values (PS3.3 C.14.1.1) in words.
FAILURE_REASONS = {0x0110: "processing failure", 0x0112: "no such object instance",
                   0x0119: "class-instance conflict", 0x0122: "referenced SOP class not "
                   "supported", 0x0131: "duplicate transaction UID", 0x0213: "resource "
                   "limitation"}


#: N-ACTION statuses that mean "not for you" rather than "failed" (PS3.7 C): the caller
#: falls back to C-FIND, as for an archive that does not offer the SOP class at all.
NOT_OFFERED = {0x0124: "refused: not authorised", 0x0123: "no such action",
               0x0118: "no such SOP class", 0x0211: "unrecognised operation"}


@dataclass
class Commitment:
    """The archive's answer: committed instance UIDs, failed ones with the reason."""

    offered: bool = True
    #: why it is not offered (the context rejected, the request refused)
    why_not: str = ""
    committed: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    transaction_uid: str = ""


def _request(instances: list[tuple[str, str]], transaction_uid: str) -> Dataset:
    ds = Dataset()
    ds.TransactionUID = transaction_uid
    items = []
    for sop_class, sop_instance in instances:
        item = Dataset()
        item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class, sop_instance
        items.append(item)
    ds.ReferencedSOPSequence = items
    return ds


class _Waiter:
    """Receives the report (on either association) for one transaction."""

    def __init__(self, transaction_uid: str):
        self.transaction_uid = transaction_uid
        self.done = threading.Event()
        self.report: Dataset | None = None
        self.event_type: int | None = None

    def handle(self, event):
        info = event.event_information
        if info is None or info.get("TransactionUID") != self.transaction_uid:
            return 0x0000, None  # another transaction's report: acknowledged, not ours
        self.report, self.event_type = info, event.request.EventTypeID
        self.done.set()
        return 0x0000, None


def _listen(port: int, bind: str, calling_aet: str, archive_aet: str, waiter: _Waiter):
    """A listener for the association the archive opens back (Storage Commitment only,
    from ``archive_aet`` only)."""
    quiet_pynetdicom()
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    ae.require_calling_aet = [archive_aet]
    ae.add_supported_context(StorageCommitmentPushModel, scu_role=False, scp_role=True)
    try:
        return ae.start_server((bind, port), block=False,
                               evt_handlers=[(evt.EVT_N_EVENT_REPORT, waiter.handle)])
    except OSError as e:
        raise SendError(f"cannot listen on port {port} for the archive's commitment report "
                        f"({e.strerror}); choose another --commit-port") from None


def request_commitment(instances: list[tuple[str, str]], *, host: str, port: int,
                       calling_aet: str, called_aet: str, listen_port: int | None,
                       listen_host: str = "", timeout_s: float = REPORT_TIMEOUT_S,
                       retries: int = 0) -> Commitment:
    """Ask ``called_aet`` to commit ``instances`` ((SOP class, SOP instance) UIDs) and wait
    for its report; :class:`SendError` when the request fails or no report comes."""
    transaction = str(generate_uid())
    waiter = _Waiter(transaction)
    server = _listen(listen_port, listen_host, calling_aet, called_aet, waiter) \
        if listen_port is not None else None
    try:
        # Verification too: an archive that refuses commitment still accepts the
        # association, so "not offered" is told apart from "not reachable".
        ae = new_ae(calling_aet, [(StorageCommitmentPushModel, None), (Verification, None)])
        assoc = connect(ae, host, port, called_aet=called_aet, retries=retries,
                        evt_handlers=[(evt.EVT_N_EVENT_REPORT, waiter.handle)],
                        what="no commitment asked")
        try:
            if not any(c.abstract_syntax == StorageCommitmentPushModel
                       for c in assoc.accepted_contexts):
                return Commitment(offered=False, why_not="the archive does not offer "
                                  "Storage Commitment to this AE title")
            status, _ = assoc.send_n_action(_request(instances, transaction), 1,
                                            StorageCommitmentPushModel,
                                            StorageCommitmentPushModelInstance)
            code = getattr(status, "Status", None) if status else None
            # No answer: the archive aborted the association on the request (Orthanc's
            # way when commitment is not allowed for our AE title).
            if code in NOT_OFFERED or code is None:
                said = "it aborted the association" if code is None else \
                    f"answered 0x{code:04X}, {NOT_OFFERED[code]}"
                return Commitment(offered=False, why_not="the archive refused the Storage "
                                  f"Commitment request from this AE title ({said})")
            if code != 0x0000:
                raise SendError(f"{called_aet}@{host}:{port} refused the Storage Commitment "
                                f"request (status 0x{code:04X})")
            waiter.done.wait(timeout_s)
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        if server is not None:
            server.shutdown()
    if not waiter.done.is_set():
        where = (f"on port {listen_port} or the association" if listen_port is not None else
                 "on the association (the archive may send it to a port of ours: give "
                 "--commit-port, registered for our AE title at the archive)")
        raise SendError(f"{called_aet}@{host}:{port} accepted the commitment request but no "
                        f"report arrived within {timeout_s:.0f} s {where}")
    return _result(waiter, transaction)


def _result(waiter: _Waiter, transaction: str) -> Commitment:
    result = Commitment(transaction_uid=transaction)
    report = waiter.report or Dataset()
    for item in report.get("ReferencedSOPSequence", []):
        result.committed.add(str(item.ReferencedSOPInstanceUID))
    for item in report.get("FailedSOPSequence", []):
        code = int(item.get("FailureReason", 0x0110))
        result.failed[str(item.ReferencedSOPInstanceUID)] = \
            FAILURE_REASONS.get(code, f"failure reason 0x{code:04X}")
    return result
