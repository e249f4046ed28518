"""Sending an export folder and proving it arrived: C-STORE, then Storage Commitment or,
where that is not asked for or not offered, C-FIND.

:func:`deliver` is what ``dicom --send`` runs, on a folder just written or on an existing
one sent again: the files' UIDs are those of the export, so an archive that has some of
them already keeps one copy of each. It raises :class:`~endostream.errors.SendError`
(exit 10) unless every file is stored *and* committed (or, where commitment is not asked
for or not offered, found again by C-FIND, or stored where the archive allows no check
at all: the summary says which).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from endostream.dicom.net.commit import REPORT_TIMEOUT_S, request_commitment
from endostream.dicom.net.store import SendReport, send_files
from endostream.errors import SendError
from endostream.output.table import count


@dataclass(frozen=True)
class Delivery:
    """Where the files went and how their arrival was checked (one line for the user)."""

    stored: int
    where: str
    check: str


def deliver(paths: Sequence[Path], *, host: str, port: int, calling_aet: str,
            called_aet: str, retries: int, commit_port: int | None,
            commit_host: str = "", commit_timeout_s: float = REPORT_TIMEOUT_S,
            on_file: Callable[[Path, str], None] | None = None) -> Delivery:
    """Store ``paths`` at ``called_aet``@``host:port`` and check they are kept."""
    where = f"{called_aet}@{host}:{port}"
    report = send_files(paths, host=host, port=port, calling_aet=calling_aet,
                        called_aet=called_aet, retries=retries, on_file=on_file)
    _require_complete(report, len(paths))
    if commit_port is None:
        return Delivery(len(report.stored), where, _by_find(report) + "; not committed "
                        "(ask for Storage Commitment with --commit-port)")
    result = request_commitment([report.uids[p][2:] for p in report.stored], host=host,
                                port=port, calling_aet=calling_aet, called_aet=called_aet,
                                listen_port=commit_port, listen_host=commit_host,
                                timeout_s=commit_timeout_s, retries=retries)
    if not result.offered:
        return Delivery(len(report.stored), where, _by_find(report) + f"; not committed: "
                        f"{result.why_not}")
    missing = {p: result.failed.get(report.uids[p][3], "not in the archive's report")
               for p in report.stored if report.uids[p][3] not in result.committed}
    if missing:
        first, why = next(iter(missing.items()))
        raise SendError(f"{where} stored {count(len(paths), 'file')} but did not commit "
                        f"{len(missing)} (e.g. {first.name}: {why})")
    return Delivery(len(report.stored), where, f"all {len(result.committed)} committed by "
                    f"Storage Commitment, transaction {result.transaction_uid}")


def _by_find(report: SendReport) -> str:
    return f"not verified: {report.unverified}" if report.unverified else \
        "each found again by C-FIND"


def _require_complete(report: SendReport, total: int) -> None:
    if report.complete:
        return
    first, why = next(iter(report.failed.items()))
    raise SendError(f"the archive stored {len(report.stored)} of {count(total, 'file')}; "
                    f"not stored: {len(report.failed)} (e.g. {first.name}: {why})")
