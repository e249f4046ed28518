"""``segment --chapters/--report``: the review outputs written in the same run.

Not a command of its own (it has no ``run``): the checks made before the analysis starts,
and the writing after ``sections.json`` is safe on disk. A failure here never costs the
sections: it is returned and raised by ``segment`` after everything else was written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from endostream.errors import EndostreamError, UsageError
from endostream.review.chapters import MUX_KINDS, TEXT_KINDS, chapters_of, write_chapters
from endostream.review.outputs import check_output
from endostream.review.procedure import procedure_from_document
from endostream.review.recorder import AnalysisRecorder
from endostream.review.report import HTML_KINDS, PICTURE_KINDS, load_template, write_report
from endostream.review.timeline_plot import require_plotting


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse unknown kinds, inputs as outputs and missing extras before any analysis."""
    if args.chapters is not None:
        if args.chapters.suffix.lower() not in TEXT_KINDS + MUX_KINDS:
            raise UsageError(f"unknown chapters kind '{args.chapters.name}'; end --chapters "
                             "with .vtt, .ffmeta, .mkv or .mp4")
        check_output(args.chapters, inputs=[args.video], option="--chapters")
    if args.report is not None:
        if args.report.suffix.lower() not in HTML_KINDS + PICTURE_KINDS:
            raise UsageError(f"unknown report kind '{args.report.name}'; end --report with "
                             ".html, .png or .svg")
        check_output(args.report, inputs=[args.video], option="--report")
        require_plotting()
        if args.report.suffix.lower() in HTML_KINDS:
            load_template()  # jinja2 present and the template readable


def write_outputs(args: argparse.Namespace, doc: dict[str, Any],
                  recorder: AnalysisRecorder | None) -> EndostreamError | None:
    """Write ``--chapters`` and ``--report`` for the document just written; the first
    error is returned, not raised."""
    if args.chapters is None and args.report is None:
        return None
    procedure = procedure_from_document(doc, args.out, args.video)
    error = None
    if args.chapters is not None:
        try:
            write_chapters(args.chapters, chapters_of(procedure.sections), video=args.video)
            print(f"wrote {args.chapters}", file=sys.stderr)
        except EndostreamError as e:
            error = e
    if args.report is not None:
        try:
            write_report(procedure, args.report,
                         frames=recorder.frame_table() if recorder else None,
                         thumbnails=recorder.thumbnails(procedure.sections) if recorder
                         else None)
            print(f"wrote {args.report}", file=sys.stderr)
        except EndostreamError as e:
            error = error or e
    return error
