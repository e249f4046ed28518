"""Storing the files in an archive (PACS) with DICOM C-STORE.

This is the one module of endostream that opens a network connection, and only when
``endostream dicom --send HOST:PORT`` asks for it (tests/test_security.py allows
pynetdicom here and nowhere else). It listens on nothing: it is a client (SCU) only.

One association carries every file. An association the archive refuses (rejected,
aborted, or a connection that cannot be made: an archive restarting, a busy gateway) is
tried again ``retries`` times with a growing pause; after that nothing was stored and
:class:`~endostream.errors.SendError` says so. Each C-STORE's status is checked: success
(0x0000) and the standard's warnings (0xB000 coercion, 0xB006 elements discarded, 0xB007
data set does not match the SOP class) count as stored (the warning is reported); any
other status, or no answer, as not stored. The files stay where they are either way.

A success status is not proof: Orthanc, for one, answers success for an instance its own
filter discards. So, on the same association, each stored instance is then looked up
with C-FIND (Study Root, IMAGE level, by its UIDs); one the archive answered for but does
not find counts as not stored. Where the archive offers or allows no C-FIND, the report
says the storage could not be verified (not a failure: many archives allow C-FIND only
to registered callers).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import MPEG4HP41
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    StudyRootQueryRetrieveInformationModelFind,
    VideoEndoscopicImageStorage,
    VLEndoscopicImageStorage,
)

from endostream.errors import SendError, UsageError

log = logging.getLogger(__name__)

#: Statuses that mean "stored, with a remark" (PS3.4 Annex B.2.3).
WARNING_STATUSES = {0xB000: "coercion of data elements", 0xB006: "elements discarded",
                    0xB007: "data set does not match SOP class"}
#: Seconds to wait for the archive's answers (association, each C-STORE).
TIMEOUT_S = 30.0


@dataclass
class SendReport:
    """What the archive stored and what it did not (with the reason)."""

    stored: list[Path] = field(default_factory=list)
    warnings: dict[Path, str] = field(default_factory=dict)
    failed: dict[Path, str] = field(default_factory=dict)
    #: why the stored files could not be looked up afterwards ("" when they were)
    unverified: str = ""
    #: (study, series, instance) UID of each file the archive answered success for
    uids: dict[Path, tuple[str, str, str]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.failed


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → ``(host, port)``; :class:`UsageError` otherwise.

    >>> parse_address("pacs.local:104")
    ('pacs.local', 104)
    """
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--send '{text}' is not HOST:PORT (e.g. pacs.hospital.org:104); "
                         "ask the PACS administrator for the archive's address")
    return host.strip("[]"), int(port)


def check_ae_title(title: str, option: str) -> str:
    """An AE title: 1-16 characters, no backslash or control characters, not all spaces.

    >>> check_ae_title("ENDOSTREAM", "--aet")
    'ENDOSTREAM'
    """
    if not 0 < len(title) <= 16 or not title.strip() or "\\" in title or \
            any(ord(c) < 32 or ord(c) > 126 for c in title):
        raise UsageError(f"{option} '{title}' is not an AE title (1-16 printable ASCII "
                         "characters, no backslash); use the title the archive knows")
    return title


def _quiet_pynetdicom() -> None:
    # pynetdicom logs every refused connection at ERROR; the command reports the outcome
    # itself in one line, so its log is shown only at -vv.
    logging.getLogger("pynetdicom").setLevel(
        logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL)


def send_files(paths: Sequence[Path], *, host: str, port: int, calling_aet: str,
               called_aet: str, retries: int = 3, retry_pause_s: float = 1.0,
               on_file: Callable[[Path, str], None] | None = None) -> SendReport:
    """C-STORE every file in ``paths`` to ``called_aet`` at ``host:port``.

    :class:`SendError` when no association could be made after ``1 + retries`` tries;
    otherwise the report (check :attr:`SendReport.complete`). ``on_file(path, outcome)``
    is called after each file (progress).
    """
    _quiet_pynetdicom()
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    ae.connection_timeout = TIMEOUT_S
    for sop_class in (VLEndoscopicImageStorage, ComprehensiveSRStorage,
                      StudyRootQueryRetrieveInformationModelFind):
        ae.add_requested_context(sop_class)
    ae.add_requested_context(VideoEndoscopicImageStorage, [MPEG4HP41])
    assoc, problem = None, ""
    for attempt in range(1 + retries):
        if attempt:
            time.sleep(retry_pause_s * attempt)
        connected: list[bool] = []
        assoc = ae.associate(host, port, ae_title=called_aet, evt_handlers=[
            (evt.EVT_CONN_OPEN, lambda event, connected=connected: connected.append(True))])
        if assoc.is_established:
            break
        problem = ("the archive rejected the association (check --aet and --called-aet "
                   "with its administrator)" if assoc.is_rejected else
                   "the archive aborted the association" if connected else
                   "no connection could be made (is the archive running, is HOST:PORT "
                   "right, does a firewall block it?)")
        log.info("association attempt %d to %s:%d: %s", attempt + 1, host, port, problem)
    if assoc is None or not assoc.is_established:
        raise SendError(f"nothing stored at {called_aet}@{host}:{port}: {problem}, "
                        f"{1 + retries} tries")
    report = SendReport()
    try:
        for path in paths:
            outcome = _store(assoc, path, report)
            if on_file is not None:
                on_file(path, outcome)
            if not assoc.is_established:  # the archive dropped us: the rest is not sent
                for rest in paths[paths.index(path) + 1:]:
                    report.failed[rest] = "the archive closed the association"
                break
        if assoc.is_established:
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
        study, series, instance = report.uids[path]
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
    if code is None:
        report.failed[path] = "no answer from the archive"
    elif code == 0x0000:
        report.stored.append(path)
        report.uids[path] = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        return "stored"
    elif code in WARNING_STATUSES:
        report.stored.append(path)
        report.uids[path] = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        report.warnings[path] = f"stored with warning 0x{code:04X} ({WARNING_STATUSES[code]})"
        return report.warnings[path]
    else:
        report.failed[path] = f"refused with status 0x{code:04X}"
    return report.failed[path]
