"""Write the sections of a procedure as chapters: WebVTT, FFmpeg metadata, or a copy of
the recording with the chapters in it.

The kind follows --out's extension: .vtt (WebVTT chapters for an HTML5 player), .ffmeta
(FFmpeg metadata), .mkv or .mp4 (the recording copied packet for packet, no re-encoding,
with the chapters muxed in, so VLC, mpv or QuickTime jump between organs). The original
recording is never touched; the copy carries no container metadata (title, comment,
artist, creation time) unless --keep-metadata.

exit codes: 0 done, 2 bad arguments or sections file, 3 video missing or unreadable,
5 output not writable
"""

from __future__ import annotations

import argparse
from pathlib import Path

from endostream.commands.common import add_input_arguments
from endostream.output.guard import add_overwrite_option, say_wrote
from endostream.output.table import count
from endostream.procedure import load_procedure
from endostream.review.chapters import MUX_KINDS, chapters_of, write_chapters
from endostream.review.outputs import check_output

EXAMPLES = """\
examples:
  endostream chapters sections.json --out chapters.vtt
  endostream chapters sections.json --out procedure-chapters.mkv --skip-unusable
  endostream chapters sections.json --video /archive/procedure.mp4 --out chapters.ffmeta

exit codes: 0 done, 2 bad arguments (or an output that would replace an input),
3 video unreadable, 5 output not writable
"""


def configure_parser(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--out", type=Path, required=True, metavar="FILE",
                   help="chapters.vtt, chapters.ffmeta, or a chaptered copy: copy.mkv / "
                        "copy.mp4")
    add_overwrite_option(p)
    p.add_argument("--skip-unusable", action="store_true",
                   help="leave unusable stretches out of the chapters (default: kept)")
    p.add_argument("--keep-metadata", action="store_true",
                   help="copy the recording's container metadata into the chaptered copy "
                        "(it may name the patient; default: dropped)")


def run(args: argparse.Namespace) -> int:
    procedure = load_procedure(args.sections, args.video)
    check_output(args.out, inputs=[args.sections, procedure.video], overwrite=args.overwrite)
    needs_video = args.out.suffix.lower() in MUX_KINDS
    video = procedure.require_video() if needs_video else procedure.video
    chapters = chapters_of(procedure.sections, skip_unusable=args.skip_unusable)
    write_chapters(args.out, chapters, video=video, keep_metadata=args.keep_metadata)
    say_wrote(args.out, count(len(chapters), 'chapter'))
    return 0
