"""How endostream names what it writes: a section's file, a path inside a URL.

One home for these rules, so the clips, the DICOM files and Label Studio's task links agree
on them; names are made from the section (number, label, start) only, never from a
recording's metadata.

>>> from endostream.segmentation.section import Section
>>> clip_name(3, Section("vocal_folds", 41.26, 60.0, 1238, 1799, 1.0, 0.9), ".mp4")
'03-vocal_folds-41.3s.mp4'
"""

from __future__ import annotations

import re

from endostream.segmentation.section import Section


def clip_name(number: int, section: Section, suffix: str) -> str:
    """The file name of a clip: number, label and start only (never metadata)."""
    label = re.sub(r"[^A-Za-z0-9_-]+", "_", section.label).strip("_") or "section"
    return f"{number:02d}-{label}-{section.start_s:.1f}s{suffix}"


#: Characters a relative URL path keeps as they are (RFC 3986 unreserved, and "/").
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/")


def percent_encode(path: str) -> str:
    """``path`` for a URL: unreserved characters and ``/`` kept, the rest percent-encoded.

    >>> percent_encode("a b/ö.mp4")
    'a%20b/%C3%B6.mp4'
    """
    # By hand: urllib is a networking package, which the runtime does not import
    # (tests/test_security.py).
    return "".join(c if c in _URL_SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8"))
                   for c in path)
