"""Draw a procedure: the timeline as a picture, or a self-contained HTML report.

The kind follows --out's extension: .png or .svg (sections as coloured bands on a time
axis; with --csv the per-frame organ probabilities and quality underneath), or .html (one
file, no network: the timeline, a table of sections with a thumbnail each, the source and
model facts, and, when the video can be reached from the report, a player with the
sections as chapters: clicking a section plays it). Needs the review extra:
pip install 'endostream[review]'.

exit codes: 0 done, 2 bad arguments, sections file or CSV, or matplotlib/jinja2 missing,
3 video unreadable, 5 output not writable
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from endostream.commands.common import add_input_arguments, add_path_in_report_option
from endostream.corrections.editor import editor_html
from endostream.errors import UsageError
from endostream.output.guard import add_overwrite_option, say_wrote
from endostream.procedure import load_procedure, read_frames_csv
from endostream.review.outputs import check_output
from endostream.review.report import HTML_KINDS, PICTURE_KINDS, write_report

EXAMPLES = """\
examples:
  endostream report sections.json --out report.html
  endostream report sections.json --csv frames.csv --out timeline.png
  endostream report sections.json --out report.html --no-player   # to share without the video

exit codes: 0 done, 2 bad arguments (or an output that would replace an input),
3 video unreadable, 5 output not writable
"""

def configure_parser(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="report.html, or the timeline alone: timeline.png / timeline.svg")
    add_overwrite_option(p)
    p.add_argument("--csv", type=Path, metavar="frames.csv",
                   help="the per-frame CSV of 'segment --csv': probability panels under "
                        "the timeline, and the most confident good frame as each thumbnail "
                        "(default: none; thumbnails then come from the sections' middle frames)")
    p.add_argument("--no-player", action="store_true",
                   help="no video player in the HTML report (e.g. when the report is shared "
                        "without the recording; default: a player when the video is reachable)")
    add_path_in_report_option(p)


def run(args: argparse.Namespace) -> int:
    suffix = args.out.suffix.lower()
    if suffix not in PICTURE_KINDS + HTML_KINDS:
        raise UsageError(f"unknown report kind '{args.out.suffix or args.out.name}'; end "
                         "--out with .html, .png or .svg")
    procedure = load_procedure(args.sections, args.video)
    check_output(args.out, inputs=[args.sections, procedure.video, args.csv],
                 overwrite=args.overwrite)
    frames = read_frames_csv(args.csv, procedure) if args.csv else None
    if suffix in HTML_KINDS and procedure.video is None:
        print(f"endostream: {procedure.not_found()}: the report has no player and no "
              "pictures (pass --video PATH)", file=sys.stderr)
    write_report(procedure, args.out, frames=frames, player=not args.no_player,
                 path_mode=args.path_in_report, editor=editor_html)
    say_wrote(args.out)
    return 0
