"""Rank the stretches of analysed videos where the model is least sure: what to label next.

For every SECTIONS file (written by 'segment', with the per-frame CSV of 'segment --csv'
beside it or given with --csv), each analysed frame gets a doubt: on frames judged good,
one minus the margin between the organ head's two most likely labels; and a
disagreement: its own answer (the organ, or unusable when judged bad) differs from the
section it lies in; and a context: its section is a short island unlike the organ
sections on both sides of it (found even where the model is sure of every frame: a
confident mistake). A stretch of --window seconds scores its mean doubt on good frames
plus its share of disagreeing frames plus its mean context (0 to 3); next.csv says why
each was listed. The best --count stretches over all videos
are kept, at least --spacing seconds apart within a video, and written to OUT-DIR as
next.csv and next.json (best first) with a thumbnail of each (thumbs/). Correct those
stretches first: they teach the model most.

exit codes: 0 done, 2 bad arguments, sections file or frames CSV, 3 video missing or
unreadable (for thumbnails; --no-thumbnails skips them), 5 output not writable
"""

from __future__ import annotations

import argparse
from pathlib import Path, PurePath

from endostream.corrections.picks import (
    CSV_NAME,
    JSON_NAME,
    THUMBS_DIR,
    AnalysedVideo,
    frames_csv_beside,
    gather,
    write_picks,
)
from endostream.corrections.uncertainty import (
    DEFAULT_COUNT,
    DEFAULT_SPACING_S,
    DEFAULT_WINDOW_S,
    MIN_SCORE,
    rank,
)
from endostream.errors import UsageError
from endostream.output.guard import (
    add_overwrite_option,
    check_outputs,
    prepare_output_folder,
    say_wrote,
)
from endostream.output.table import format_clock

EXAMPLES = """\
examples:
  endostream segment procedure.mp4 --out procedure.sections.json --csv procedure.frames.csv
  endostream next procedure.sections.json --out-dir review/
  endostream segment archive/ --out-dir analysed/ --csv
  endostream next analysed/*.sections.json --out-dir review/ --count 30 --spacing 20

The best ten are listed on stdout by recording (its file name), clock time and score:
the stretch's mean doubt on good frames plus its share of frames that disagree with
their section, from 0 (the model is sure) to 2; highest first. next.csv holds them all.

exit codes: 0 done, 2 bad arguments or input file, 3 video unreadable, 5 output not writable
"""


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("sections", type=Path, nargs="+", metavar="SECTIONS",
                   help="sections files written by 'segment' (one per analysed video)")
    p.add_argument("--out-dir", type=Path, required=True, metavar="DIR",
                   help="where next.csv, next.json and thumbs/ go (created if needed)")
    p.add_argument("--csv", type=Path, action="extend", nargs="+", default=None,
                   metavar="frames.csv",
                   help="the per-frame CSV of each SECTIONS file, in the same order "
                        "(several: --csv A B or --csv A --csv B; default: NAME.frames.csv "
                        "beside NAME.sections.json, as 'segment --csv' names it in an "
                        "archive)")
    p.add_argument("--count", type=_count, default=DEFAULT_COUNT, metavar="N",
                   help="stretches listed at most (default: %(default)s)")
    p.add_argument("--window", type=_positive, default=DEFAULT_WINDOW_S, metavar="SECONDS",
                   help="length of a stretch (default: %(default)g)")
    p.add_argument("--spacing", type=_positive, default=DEFAULT_SPACING_S, metavar="SECONDS",
                   help="least time between two stretches of one video (default: %(default)g)")
    p.add_argument("--no-thumbnails", action="store_true",
                   help="write no pictures (the videos need not be reachable) "
                        "(default: one per stretch)")
    add_overwrite_option(p)


def _pairs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    if args.csv and len(args.csv) != len(args.sections):
        raise UsageError(f"{len(args.csv)} --csv for {len(args.sections)} SECTIONS files; give "
                         "one per file in the same order, or none (NAME.frames.csv beside each)")
    pairs = []
    for k, sections in enumerate(args.sections):
        frames = args.csv[k] if args.csv else frames_csv_beside(sections)
        if not frames.is_file():
            raise UsageError(f"no per-frame CSV for '{sections}' (looked for '{frames}'); "
                             "run 'endostream segment' with --csv, or pass it with --csv")
        pairs.append((sections, frames))
    return pairs


def run(args: argparse.Namespace) -> int:
    pairs = _pairs(args)
    out_dir = Path(args.out_dir)
    inputs = [p for pair in pairs for p in pair]
    if out_dir.is_dir():  # a new folder is made below, after the inputs are read
        check_outputs({"--out-dir's next.csv": out_dir / CSV_NAME,
                       "--out-dir's next.json": out_dir / JSON_NAME},
                      {"SECTIONS": inputs}, overwrite=args.overwrite)
    videos, doubts = gather(pairs)
    if not args.no_thumbnails:
        for v in videos:
            v.procedure.require_video()
    out_dir = prepare_output_folder("--out-dir", out_dir)
    picks = rank(doubts, window_s=args.window, spacing_s=args.spacing, count=args.count)
    settings = {"window_s": args.window, "spacing_s": args.spacing, "count": args.count,
                "min_score": MIN_SCORE}
    written = write_picks(out_dir, videos, picks, settings, thumbnails=not args.no_thumbnails)
    if picks:
        print(f"label these first (score: doubt on good frames + share disagreeing with the "
              f"section, 0-2; {min(len(picks), SHOWN)} of {len(picks)} shown):")
    else:
        print("nothing to label first: the model was sure everywhere")
    for r, p in enumerate(picks[:SHOWN], 1):
        print(f"{r:2d}. {recording_name(videos[p.video])} "
              f"{format_clock(p.start_s)}-{format_clock(p.end_s)} "
              f"score {p.score:.2f}: section {p.section}, model says {p.model_says}"
              + (f" ({p.top_organs})" if p.top_organs else ""))
    say_wrote(out_dir / CSV_NAME, f"{len(picks)} stretches")
    say_wrote(out_dir / JSON_NAME)
    thumbs = sum(1 for row in written["stretches"] if row["thumbnail"])
    if thumbs:
        say_wrote(out_dir / THUMBS_DIR, f"{thumbs} thumbnails")
    return 0


#: Stretches listed on stdout (all of them are in next.csv).
SHOWN = 10


def recording_name(video: AnalysedVideo) -> str:
    """The recording a stretch is of, by the file name its sections file records."""
    return PurePath(video.procedure.document.source.path).name or video.sections.name
