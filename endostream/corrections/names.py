"""The name of a corrected sections file: derived from the sections file it corrects.

Each procedure's correction gets its own name (``case7.mp4.sections.json`` →
``case7.mp4.corrected.sections.json``), so corrections of several procedures never land
under one download name, and correcting a corrected file again keeps its name. Where the
report may not show the recording's name (``--path-in-report none``, the default) and the
sections file's name starts with it (``segment``'s own naming), the name comes from the
recording's fingerprint instead (``procedure-1a2b3c4d``): as unique, and it names no
patient where the recording's name does.

>>> corrected_file_name("case7.mp4.sections.json")
'case7.mp4.corrected.sections.json'
>>> corrected_file_name("case7.mp4.corrected.sections.json")
'case7.mp4.corrected.sections.json'
>>> corrected_file_name("sections.json")
'sections.corrected.sections.json'
"""

from __future__ import annotations

from pathlib import Path

from endostream.corrections.rules import CORRECTED_SUFFIX

#: Endings taken off a sections file's name before :data:`CORRECTED_SUFFIX` is added, in
#: this order.
_ENDINGS = (CORRECTED_SUFFIX, ".sections.json", ".json")
#: Name used where neither the sections file's name nor a fingerprint may be shown.
NEUTRAL_STEM = "procedure"


def corrected_file_name(sections_name: str) -> str:
    """``NAME.corrected.sections.json`` for the sections file called ``sections_name``,
    where NAME is that name without ``.sections.json`` (or ``.json``)."""
    name = Path(sections_name).name
    for ending in _ENDINGS:
        if name.lower().endswith(ending) and len(name) > len(ending):
            name = name[: -len(ending)]
            break
    return f"{name or NEUTRAL_STEM}{CORRECTED_SUFFIX}"


def neutral_corrected_name(fingerprint: str | None) -> str:
    """The corrected file's name where no file name may be shown: after the recording's
    fingerprint (unique per recording), else :data:`NEUTRAL_STEM`.

    >>> neutral_corrected_name("v1:" + "1a2b3c4d" * 8)
    'procedure-1a2b3c4d.corrected.sections.json'
    >>> neutral_corrected_name(None)
    'procedure.corrected.sections.json'
    """
    digest = (fingerprint or "").partition(":")[2][:8]
    return f"{NEUTRAL_STEM}{'-' + digest if digest else ''}{CORRECTED_SUFFIX}"


def names_recording(sections_name: str, recording_path: str) -> bool:
    """Whether the sections file's name starts with the recording's (its stem), as the
    names ``segment`` gives do (``smith_john.sections.json`` for ``smith_john.mp4``).

    >>> names_recording("smith_john.sections.json", "/clinic/smith_john.mp4")
    True
    >>> names_recording("case7.sections.json", "/clinic/smith_john.mp4")
    False
    """
    stem = Path(recording_path).stem if recording_path else ""
    return bool(stem) and Path(sections_name).name.lower().startswith(stem.lower())
