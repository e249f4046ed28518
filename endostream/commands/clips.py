"""Cut each section of a procedure (or those of some labels) into its own video file.

By default a clip is a stream copy (fast, no re-encoding) from the keyframe at or before
the section's start, so it may begin up to one keyframe interval early (and end a frame
late, where earlier frames refer to it); --exact re-encodes the video to exactly the
section's frames; a copied clip that starts more than a second early is named on stderr.
Audio is copied. Clips are named NN-label-START.EXT and carry no container metadata
(title, comment, artist, creation time) unless --keep-metadata. Labels are matched
without regard to case or spaces (--label "Vocal folds"). An existing clip is replaced,
like every review output; a read-only one only with --overwrite.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from endostream.commands.common import add_input_arguments
from endostream.output.guard import add_overwrite_option, check_outputs, say_wrote
from endostream.output.progress import Progress
from endostream.output.table import count
from endostream.procedure import load_procedure
from endostream.review.clips import CLIP_KINDS, EARLY_WARN_S, plan_clips, write_clip
from endostream.review.outputs import check_output_dir
from endostream.segmentation.section import UNUSABLE

EXAMPLES = """\
examples:
  endostream clips sections.json --out-dir clips/
  endostream clips sections.json --out-dir clips/ --label vocal_folds --exact
  endostream clips sections.json --video /archive/procedure.mp4 --out-dir clips/ --format mp4

exit codes: 0 done, 2 bad arguments or sections file (or a clip that would replace an
input), 3 video missing or unreadable, 5 output not writable
"""

def configure_parser(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    p.add_argument("--out-dir", type=Path, required=True, metavar="DIR",
                   help="where the clips go (created if needed)")
    p.add_argument("--label", action="extend", nargs="+", metavar="LABEL", dest="labels",
                   help="only sections with these labels, e.g. vocal_folds (several: --label "
                        "A B or --label A --label B; default: every section)")
    p.add_argument("--exact", action="store_true",
                   help="re-encode (H.264) to exactly the section's frames instead of copying "
                        "from the keyframe before it (default: stream copy)")
    p.add_argument("--format", choices=[k[1:] for k in CLIP_KINDS], default=None,
                   help="container of the clips (default: the recording's when it is one of "
                        "these, else mkv)")
    p.add_argument("--keep-metadata", action="store_true",
                   help="copy the recording's container metadata into the clips (it may name "
                        "the patient; default: dropped)")
    add_overwrite_option(p)


def run(args: argparse.Namespace) -> int:
    procedure = load_procedure(args.sections, args.video)
    video = procedure.require_video()
    if args.format:
        suffix = "." + args.format
    else:
        suffix = video.suffix.lower() if video.suffix.lower() in CLIP_KINDS else ".mkv"
    plans = plan_clips(procedure.sections, Path(args.out_dir), suffix, labels=args.labels,
                       known_labels=[*procedure.document.organ_labels, UNUSABLE])
    out_dir = check_output_dir(args.out_dir)
    check_outputs({f"--out-dir's {p.path.name}": p.path for p in plans},
                  {"the recording": video, "SECTIONS": args.sections},
                  overwrite=args.overwrite)
    progress = Progress(len(plans), enabled=not args.quiet, label="clips", analysed=False)
    written = []
    try:
        for done, plan in enumerate(plans, 1):
            written.append(write_clip(video, plan, exact=args.exact,
                                      keep_metadata=args.keep_metadata))
            progress.update(done=done, analysed=done)
    finally:
        progress.close()
    for clip in written:
        say_wrote(clip.path)
    if not written:
        print(f"endostream: no section to cut: nothing written to {out_dir}", file=sys.stderr)
    early = [c for c in written if c.early_s > EARLY_WARN_S]
    if early:
        worst = max(early, key=lambda c: c.early_s)
        one = len(early) == 1
        print(f"endostream: warning: {count(len(early), 'clip')} of {len(written)} "
              f"{'starts' if one else 'start'} more than {EARLY_WARN_S:g} s before "
              f"{'its section' if one else 'their sections'}, at the keyframe before "
              f"(up to {worst.early_s:.1f} s: '{worst.path.name}'); use --exact for exactly "
              "the sections' frames", file=sys.stderr)
    return 0
