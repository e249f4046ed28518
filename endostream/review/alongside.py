"""``segment --chapters/--report``: the review outputs written in the same run as the
analysis.

:func:`check_alongside` runs before the analysis starts (unknown kinds, an input as
output, missing extras); :func:`write_alongside` runs after ``sections.json`` is safe on
disk, with the :class:`~endostream.review.recorder.AnalysisRecorder` that kept the
thumbnails and probabilities during the run. A failure there never costs the sections:
it is returned for the caller to raise after everything else was written.

>>> check_alongside(chapters=Path("c.doc"), report=None)
Traceback (most recent call last):
...
endostream.errors.UsageError: unknown chapters kind 'c.doc'; end --chapters with .vtt, ...mp4
"""

from __future__ import annotations

import sys
from pathlib import Path

from endostream.errors import EndostreamError, UsageError
from endostream.evaluation.plots import require_matplotlib
from endostream.output.document import SectionsDocument
from endostream.procedure import Procedure
from endostream.review.chapters import MUX_KINDS, TEXT_KINDS, chapters_of, write_chapters
from endostream.review.recorder import AnalysisRecorder
from endostream.review.report import (
    DEFAULT_PATH_MODE,
    HTML_KINDS,
    PICTURE_KINDS,
    PagePart,
    load_template,
    write_report,
)


def wants_thumbnails(report: Path | None) -> bool:
    """Whether the run should keep thumbnails (only an HTML report shows them)."""
    return report is not None and report.suffix.lower() in HTML_KINDS


def check_alongside(*, chapters: Path | None, report: Path | None) -> None:
    """Refuse unknown kinds and missing extras before any analysis (the paths themselves
    were checked against the inputs by ``segment``, through the output guard)."""
    if chapters is not None:
        if chapters.suffix.lower() not in TEXT_KINDS + MUX_KINDS:
            raise UsageError(f"unknown chapters kind '{chapters.name}'; end --chapters with "
                             ".vtt, .ffmeta, .mkv or .mp4")
    if report is not None:
        if report.suffix.lower() not in HTML_KINDS + PICTURE_KINDS:
            raise UsageError(f"unknown report kind '{report.name}'; end --report with .html, "
                             ".png or .svg")
        require_matplotlib()
        if wants_thumbnails(report):
            load_template()  # jinja2 present and the template readable


def write_alongside(doc: SectionsDocument, *, sections_path: Path, video: Path,
                    chapters: Path | None, report: Path | None,
                    recorder: AnalysisRecorder | None,
                    path_mode: str = DEFAULT_PATH_MODE,
                    editor: PagePart | None = None) -> EndostreamError | None:
    """Write ``chapters`` and ``report`` (with the ``editor`` part, see :data:`PagePart`)
    for the document just written; the first error is returned, not raised."""
    if chapters is None and report is None:
        return None
    procedure = Procedure(sections_path, doc, video)
    error = None
    if chapters is not None:
        try:
            write_chapters(chapters, chapters_of(procedure.sections), video=video)
            print(f"wrote {chapters}", file=sys.stderr)
        except EndostreamError as e:
            error = e
    if report is not None:
        try:
            write_report(procedure, report,
                         frames=recorder.frame_table() if recorder else None,
                         thumbnails=recorder.thumbnails(procedure.sections)
                         if recorder and wants_thumbnails(report) else None,
                         path_mode=path_mode, editor=editor)
            print(f"wrote {report}", file=sys.stderr)
        except EndostreamError as e:
            error = error or e
    return error
