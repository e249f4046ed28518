"""One association with an archive: its address, our AE, retries, and which refusals are
final.

An association that cannot be made because the archive is not there yet (no connection,
an abort, a rejection the archive marks *transient*: congestion, a local limit) is tried
again ``retries`` times with a growing pause. A rejection marked *permanent* (an AE title
the archive does not know, an application context it does not support) will be the same
on every try: it fails at once, naming the AE title refused, so the user fixes the
configuration rather than waits.

>>> parse_address("pacs.local:104")
('pacs.local', 104)
>>> plural(1, "try"), plural(2, "try")
('1 try', '2 tries')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pynetdicom import AE, evt

from endostream.dicom.values import ae_title
from endostream.errors import SendError, UsageError

log = logging.getLogger(__name__)

#: Seconds to wait for the archive's answers (association, each message).
TIMEOUT_S = 30.0
#: A-ASSOCIATE-RJ reasons from the service user (source 1), PS3.8 9.3.4.
USER_REASONS = {1: "no reason given", 2: "application context name not supported",
                3: "calling AE title not recognized", 7: "called AE title not recognized"}

check_ae_title = ae_title


def plural(n: int, word: str) -> str:
    """``n word`` with the right plural ("1 try", "3 tries")."""
    if n == 1:
        return f"1 {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def parse_address(text: str, option: str = "--send") -> tuple[str, int]:
    """``HOST:PORT`` → ``(host, port)``; :class:`UsageError` otherwise."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{option} '{text}' is not HOST:PORT (e.g. pacs.hospital.org:104); "
                         "ask the PACS administrator for the archive's address")
    return host.strip("[]"), int(port)


def quiet_pynetdicom() -> None:
    """pynetdicom logs every refused connection at ERROR; the command reports the outcome
    itself in one line, so its log is shown only at -vv."""
    logging.getLogger("pynetdicom").setLevel(
        logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.CRITICAL)


def new_ae(calling_aet: str, contexts: Sequence[tuple[str, Sequence[str] | None]]) -> AE:
    """Our AE with the presentation contexts we ask for (abstract syntax, transfer
    syntaxes or ``None`` for pynetdicom's defaults)."""
    quiet_pynetdicom()
    ae = AE(ae_title=calling_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    ae.connection_timeout = TIMEOUT_S
    for abstract, syntaxes in contexts:
        if syntaxes is None:
            ae.add_requested_context(abstract)
        else:
            ae.add_requested_context(abstract, list(syntaxes))
    return ae


def _rejection(primitive, called_aet: str, calling_aet: str) -> tuple[bool, str]:
    """(permanent, why) for an A-ASSOCIATE-RJ."""
    result = getattr(primitive, "result", None)
    source = getattr(primitive, "result_source", None)
    reason = getattr(primitive, "diagnostic", None)
    permanent = result == 0x01
    if source == 0x01 and reason == 7:
        why = f"it does not know the called AE title '{called_aet}' (check --called-aet)"
    elif source == 0x01 and reason == 3:
        why = (f"it does not accept our AE title '{calling_aet}' (check --aet, or ask the "
               "administrator to register it)")
    elif source == 0x01:
        why = USER_REASONS.get(reason, f"reason {reason}")
    elif source == 0x03:
        why = "it is busy (temporary congestion or a local limit)"
    else:
        why = "its protocol layer refused it"
    return permanent, f"the archive {'permanently ' if permanent else ''}rejected the " \
                      f"association: {why}"


def connect(ae: AE, host: str, port: int, *, called_aet: str, retries: int = 3,
            retry_pause_s: float = 1.0, evt_handlers: Sequence = (), what: str = "nothing "
            "stored"):
    """An established association to ``called_aet`` at ``host:port``;
    :class:`SendError` after ``1 + retries`` tries, or at once for a permanent rejection."""
    problem = ""
    tries = 0
    for attempt in range(1 + retries):
        if attempt:
            time.sleep(retry_pause_s * attempt)
        tries += 1
        seen: dict[str, object] = {}

        def on_open(event, seen=seen):
            seen["connected"] = True

        def on_acse(event, seen=seen):
            if type(event.primitive).__name__ == "A_ASSOCIATE" and \
                    getattr(event.primitive, "result", None) is not None:
                seen["answer"] = event.primitive

        assoc = ae.associate(host, port, ae_title=called_aet, evt_handlers=[
            (evt.EVT_CONN_OPEN, on_open), (evt.EVT_ACSE_RECV, on_acse), *evt_handlers])
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            permanent, problem = _rejection(seen.get("answer"), called_aet, ae.ae_title)
            if permanent:
                raise SendError(f"{what} at {called_aet}@{host}:{port}: {problem}")
        elif seen.get("connected"):
            problem = "the archive aborted the association"
        else:
            problem = ("no connection could be made (is the archive running, is HOST:PORT "
                       "right, does a firewall block it?)")
        log.info("association attempt %d to %s:%d: %s", attempt + 1, host, port, problem)
    raise SendError(f"{what} at {called_aet}@{host}:{port}: {problem}, "
                    f"{plural(tries, 'try')}")
