"""Re-encode the recording (H.264) with the overlay burned in: organ, probability and a
quality badge as in the live window, and the timeline with a moving playhead.

Every frame keeps its timestamp, so the annotated video has the recording's frame count
and duration; audio is copied. With --csv the probability and quality badge follow the
analysed frames; without it they show each section's confidence and share of good frames.
The copy carries no container metadata unless --keep-metadata.

exit codes: 0 done, 2 bad arguments or sections file, 3 video missing or unreadable,
5 output not writable, 130 interrupted (nothing is written)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from endostream.commands.common import add_input_arguments
from endostream.output.guard import add_overwrite_option, say_wrote
from endostream.output.progress import Progress
from endostream.procedure import load_procedure, read_frames_csv
from endostream.review.annotate import annotate_video
from endostream.review.outputs import check_output

EXAMPLES = """\
examples:
  endostream annotate sections.json --out annotated.mp4
  endostream annotate sections.json --csv frames.csv --out annotated.mp4
  endostream annotate sections.json --video /archive/procedure.mp4 --out annotated.mkv

exit codes: 0 done, 2 bad arguments (or an output that would replace an input),
3 video unreadable, 5 output not writable, 130 interrupted
"""

def configure_parser(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="annotated.mp4",
                   help="the annotated video (.mp4, .mkv or .mov)")
    add_overwrite_option(p)
    p.add_argument("--csv", type=Path, metavar="frames.csv",
                   help="the per-frame CSV of 'segment --csv': probability and quality badge "
                        "per analysed frame (default: none; the label panel only)")
    p.add_argument("--keep-metadata", action="store_true",
                   help="copy the recording's container metadata (it may name the patient; "
                        "default: dropped)")


def run(args: argparse.Namespace) -> int:
    procedure = load_procedure(args.sections, args.video)
    video = procedure.require_video()
    check_output(args.out, inputs=[args.sections, video, args.csv], overwrite=args.overwrite)
    frames = read_frames_csv(args.csv, procedure) if args.csv else None
    progress = Progress(procedure.document.source.frames, enabled=not args.quiet,
                        label="frames")
    try:
        annotate_video(procedure, args.out, frames=frames, keep_metadata=args.keep_metadata,
                       on_progress=progress.update_frames)
    finally:
        progress.close()
    say_wrote(args.out)
    return 0
