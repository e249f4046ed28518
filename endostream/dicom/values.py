"""Every value endostream puts into a DICOM file, checked against its VR before anything is
written.

A value that breaks its VR is refused here with :class:`~endostream.errors.UsageError`
(one line, exit 2) naming the option it came from and what to do; nothing is written. The
rules are PS3.5 6.2's: lengths per VR (LO 64, SH 16, CS 16, AE 16, UI 64 characters), a
person name's five components separated by ``^`` (each at most 64 characters), and no
backslash (DICOM's value separator) in any single value. Characters outside ASCII are
allowed in person names and long strings (LO, LT, ST, PN): every file is written with
Specific Character Set ``ISO_IR 192`` (UTF-8), which holds any script; codes, IDs, UIDs
and AE titles are ASCII.

>>> person_name("Doe^Jane", "--patient-name")
'Doe^Jane'
>>> person_name("Doe\\\\Jane", "--patient-name")
Traceback (most recent call last):
...
endostream.errors.UsageError: --patient-name 'Doe\\Jane' has a backslash, which DICOM reads ...
>>> checked("A" * 17, "SH", "--accession")
Traceback (most recent call last):
...
endostream.errors.UsageError: --accession is 17 characters long; DICOM's SH allows at most 16 ...
>>> dicom_date("2026-12-01", "--study-date"), dicom_date("20261201", "--study-date")
('20261201', '20261201')
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from datetime import date, datetime

from endostream.errors import UsageError

log = logging.getLogger("endostream.dicom")

#: Maximum length (characters) per VR (PS3.5 Table 6.2-1); PN is per component group.
MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "PN": 64, "UI": 64, "DA": 8,
              "TM": 14, "ST": 1024, "LT": 10240, "DS": 16, "IS": 12}
#: VRs whose values may hold any character of the character set (not only ASCII).
TEXT_VRS = {"SH", "LO", "PN", "ST", "LT"}
#: Characters a CS value may hold.
CS_PATTERN = re.compile(r"[A-Z0-9 _]*")
#: A UID (PS3.5 9.1): numeric components without leading zeros, dot-separated.
UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+")


@contextlib.contextmanager
def library_warnings_logged() -> Iterator[None]:
    """pydicom's and highdicom's warnings (a value they find odd, a default they chose)
    go to the ``endostream.dicom`` log, never raw to stderr: the command checks values
    itself and says what matters in one line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                log.info("%s: %s", w.category.__name__, w.message)


def _control(value: str) -> bool:
    return any(ord(c) < 32 for c in value)


def checked(value: str, vr: str, option: str) -> str:
    """``value`` if it fits ``vr``; :class:`UsageError` naming ``option`` otherwise."""
    if vr == "PN":
        return person_name(value, option)
    if vr == "UI":
        return uid(value, option)
    if "\\" in value:
        raise UsageError(f"{option} '{value}' has a backslash, which DICOM reads as a "
                         "second value; give one value")
    if _control(value):
        raise UsageError(f"{option} has a control character (tab, newline); give one line")
    limit = MAX_LENGTH[vr]
    if len(value) > limit:
        raise UsageError(f"{option} is {len(value)} characters long; DICOM's {vr} allows at "
                         f"most {limit} (check the value with the hospital's information "
                         "system)")
    if vr not in TEXT_VRS and not value.isascii():
        raise UsageError(f"{option} '{value}' has characters outside ASCII, which DICOM's "
                         f"{vr} does not allow; use letters A-Z, digits and spaces")
    if vr == "DA":
        return dicom_date(value, option)
    if vr == "CS" and not CS_PATTERN.fullmatch(value):
        raise UsageError(f"{option} '{value}' is not a DICOM code string (capitals, digits, "
                         "space and underscore)")
    return value


def person_name(value: str, option: str) -> str:
    """A person name (PN): at most 5 ``^``-separated components, each component group at
    most 64 characters, no backslash; the ``=`` groups (ideographic, phonetic) at most 3."""
    if "\\" in value:
        raise UsageError(f"{option} '{value}' has a backslash, which DICOM reads as a second "
                         "name; write the name as Family^Given^Middle^Prefix^Suffix")
    if _control(value):
        raise UsageError(f"{option} has a control character (tab, newline); give one line")
    groups = value.split("=")
    if len(groups) > 3:
        raise UsageError(f"{option} '{value}' has {len(groups)} '='-separated groups; DICOM "
                         "allows 3 (alphabetic=ideographic=phonetic)")
    for group in groups:
        if len(group) > MAX_LENGTH["PN"]:
            raise UsageError(f"{option} is {len(group)} characters long; DICOM allows at "
                             "most 64 per name (shorten it as the hospital's information "
                             "system writes it)")
        if group.count("^") > 4:
            raise UsageError(f"{option} '{value}' has {group.count('^') + 1} components; "
                             "DICOM allows 5: Family^Given^Middle^Prefix^Suffix")
    return value


def uid(value: str, option: str) -> str:
    """A UID: digits and dots, at most 64 characters, no leading zeros."""
    if len(value) > 64 or not UID_PATTERN.fullmatch(value):
        raise UsageError(f"{option} '{value}' is not a valid DICOM UID (digits and dots, at "
                         "most 64 characters); copy it from the worklist or the exam")
    return value


def ae_title(title: str, option: str) -> str:
    """An AE title: 1-16 characters, no backslash or control characters, not all spaces.

    >>> ae_title("ENDOSTREAM", "--aet")
    'ENDOSTREAM'
    """
    if not 0 < len(title) <= 16 or not title.strip() or "\\" in title or \
            any(ord(c) < 32 or ord(c) > 126 for c in title):
        raise UsageError(f"{option} '{title}' is not an AE title (1-16 printable ASCII "
                         "characters, no backslash); use the title the archive knows")
    return title


def dicom_date(value: str, option: str) -> str:
    """A date as DA (``YYYYMMDD``), from ``YYYYMMDD`` or ``YYYY-MM-DD``; a real date."""
    text = value.strip().replace("-", "")
    try:
        if len(text) != 8 or not text.isdigit():
            raise ValueError
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise UsageError(f"{option} '{value}' is not a date; give YYYY-MM-DD (or YYYYMMDD)"
                         ) from None
    return text


def parse_date_time(value: str, option: str) -> datetime:
    """``--study-date``: ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM[:SS]`` (local time)."""
    day, _, clock = value.strip().partition("T")
    if not clock and " " in day:
        day, _, clock = day.partition(" ")
    d = dicom_date(day, option)
    h = m = s = 0
    if clock:
        parts = clock.split(":")
        try:
            if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
                raise ValueError
            h, m = int(parts[0]), int(parts[1])
            s = int(parts[2]) if len(parts) == 3 else 0
            return datetime(int(d[:4]), int(d[4:6]), int(d[6:]), h, m, s)
        except ValueError:
            raise UsageError(f"{option} '{value}': the time is not HH:MM[:SS]") from None
    return datetime(int(d[:4]), int(d[4:6]), int(d[6:]))
