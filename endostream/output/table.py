"""Human- and spreadsheet-facing outputs: the per-frame CSV and the sections table.

``sections.json`` itself lives in :mod:`endostream.output.sections_file`. The CSV is written as
predictions arrive (so an interrupted run keeps every analysed frame) into a temporary
file that is renamed into place on :meth:`FrameCsvWriter.close`, like the JSON, or removed
by :meth:`FrameCsvWriter.discard` when the run failed and writes no JSON either.

>>> print(format_sections_table([Section("nose", 0.0, 41.3, 0, 1238, 0.86, 0.95)]))
label  start   end     duration  good  conf
nose   0:00.0  0:41.3  41.3 s    86%   0.95
"""

from __future__ import annotations

from collections.abc import Sequence

from endostream.segmentation.section import Section


def count(n: int, noun: str) -> str:
    """``n`` and the noun, in the plural unless one: ``count(1, "video")`` → ``'1 video'``.

    >>> count(1, "clip"), count(3, "section"), count(0, "video")
    ('1 clip', '3 sections', '0 videos')
    """
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_clock(seconds: float) -> str:
    """``83.44`` → ``'1:23.4'``: minutes:seconds with tenths, and hours in front from an
    hour on (a procedure or an archive file can be longer than one).

    >>> format_clock(83.44), format_clock(3725.3), format_clock(3599.96)
    ('1:23.4', '1:02:05.3', '1:00:00.0')
    """
    tenths = int(round(seconds * 10))
    h, rem = divmod(tenths, 36000)
    m, rem = divmod(rem, 600)
    clock = f"{rem // 10:02d}.{rem % 10}"
    return f"{h}:{m:02d}:{clock}" if h else f"{m}:{clock}"


def format_sections_table(sections: Sequence[Section],
                          truth: Sequence[Section] | None = None) -> str:
    """A short fixed-width table of sections, optionally next to ground-truth sections."""
    rows = [("label", "start", "end", "duration", "good", "conf")]
    for s in sections:
        rows.append((s.label, format_clock(s.start_s), format_clock(s.end_s),
                     f"{s.end_s - s.start_s:.1f} s", f"{s.good_fraction:.0%}",
                     f"{s.confidence:.2f}"))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
    lines = ["".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if truth is not None:
        lines.append("")
        lines.append("ground truth")
        for t in truth:
            lines.append(f"{t.label.ljust(widths[0])}{format_clock(t.start_s).ljust(widths[1])}"
                         f"{format_clock(t.end_s).ljust(widths[2])}{t.end_s - t.start_s:.1f} s")
    return "\n".join(lines)
