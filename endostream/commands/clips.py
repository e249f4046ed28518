"""Cut each section of a procedure (or those of some labels) into its own video file.

By default a clip is a stream copy (fast, no re-encoding) from the keyframe at or before
the section's start, so it may begin up to one keyframe interval early (and end a frame
late, where earlier frames refer to it); --exact re-encodes the video to exactly the
section's frames. Audio is copied. Clips are named NN-label-START.EXT and carry no
container metadata (title, comment, artist, creation time) unless --keep-metadata.
Existing clips are kept unless --force.

exit codes: 0 done, 2 bad arguments or sections file, 3 video missing or unreadable,
5 output not writable (or a clip exists and --force was not given)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from endostream.commands.chapters import add_input_arguments
from endostream.errors import OutputError
from endostream.output.progress import Progress
from endostream.review.clips import CLIP_KINDS, plan_clips, write_clip
from endostream.review.outputs import check_output_dir
from endostream.review.procedure import load_procedure

EXAMPLES = """\
examples:
  endostream clips sections.json --out-dir clips/
  endostream clips sections.json --out-dir clips/ --label vocal_folds --exact
  endostream clips sections.json --video /archive/procedure.mp4 --out-dir clips/ --format mp4

exit codes: 0 done, 2 bad arguments, 3 video unreadable, 5 output not writable
"""

def configure_parser(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--out-dir", type=Path, required=True, metavar="DIR",
                   help="where the clips go (created if needed)")
    p.add_argument("--label", action="append", metavar="LABEL", dest="labels",
                   help="only sections with this label (repeat for more), e.g. vocal_folds "
                        "(default: every section)")
    p.add_argument("--exact", action="store_true",
                   help="re-encode (H.264) to exactly the section's frames instead of copying "
                        "from the keyframe before it (default: stream copy)")
    p.add_argument("--format", choices=[k[1:] for k in CLIP_KINDS], default=None,
                   help="container of the clips (default: the recording's when it is one of "
                        "these, else mkv)")
    p.add_argument("--keep-metadata", action="store_true",
                   help="copy the recording's container metadata into the clips (it may name "
                        "the patient; default: dropped)")
    p.add_argument("--force", action="store_true",
                   help="replace clips that exist already (default: keep them)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress line (default: a progress line on stderr)")


def run(args: argparse.Namespace) -> int:
    procedure = load_procedure(args.sections, args.video)
    video = procedure.require_video()
    if args.format:
        suffix = "." + args.format
    else:
        suffix = video.suffix.lower() if video.suffix.lower() in CLIP_KINDS else ".mkv"
    plans = plan_clips(procedure.sections, Path(args.out_dir), suffix, labels=args.labels)
    out_dir = check_output_dir(args.out_dir)
    if not args.force:
        existing = [p.path.name for p in plans if p.path.exists()]
        if existing:
            raise OutputError(f"{len(existing)} clip(s) exist already in '{out_dir}' (e.g. "
                              f"'{existing[0]}'); pass --force to replace them or choose "
                              "another --out-dir")
    progress = Progress(len(plans), enabled=not args.quiet, label="clips")
    try:
        for done, plan in enumerate(plans, 1):
            write_clip(video, plan, exact=args.exact, keep_metadata=args.keep_metadata)
            progress.update(done=done, analysed=done)
    finally:
        progress.close()
    print(f"wrote {len(plans)} clips to {out_dir}", file=sys.stderr)
    return 0
