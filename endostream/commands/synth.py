"""Generate a SYNTHETIC stand-in procedure video with its ground truth, or a frame dataset.

The scenes are procedurally generated textures that mimic only the colour and coarse
layout of ear canal, nasal mucosa and vocal folds inside an endoscope's field of view:
not real anatomy. They exist for tests, the demo and the bundled demo models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from endostream.errors import UsageError
from endostream.output.guard import (
    add_overwrite_option,
    check_outputs,
    is_stdout,
    prepare_output_folder,
    say_wrote,
)
from endostream.output.table import format_sections_table
from endostream.synth import ProcedureSpec, default_spec, render_dataset, render_procedure
from endostream.synth.dataset import parse_scopes
from endostream.synth.scenes import FOV_SHAPES, PALETTES

EXAMPLES = """\
examples:
  endostream synth procedure.mp4              # 39 s, 1280x720, 25 fps, + procedure.truth.json
  endostream synth short.mp4 --procedure nose:8,blur:2,ear:8 --size 640x360
  endostream synth --dataset data/ --per-class 200   # class folders + labels.csv

VIDEO and --truth are checked before rendering: their folders must take new files, they
may not be the same file, and an existing one is replaced only with --overwrite (it may
be a real recording).

exit codes: 0 done, 2 bad arguments, 5 output not writable
"""


def parse_size(text: str) -> tuple[int, int]:
    """``'1280x720'`` → ``(1280, 720)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 1280x720, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError("width and height must be at least 16")
    return w, h


def _scopes(text: str) -> dict[str, tuple[str, str]]:
    try:
        return parse_scopes(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


#: ``--help`` groups and the options it leaves to ``--help-all`` (endostream.cli).
HELP_GROUPS = {
    "video": ["--procedure", "--scale", "--fps", "--fov", "--palette", "--truth"],
    "training dataset": ["--dataset", "--per-class", "--recordings", "--scopes"],
}
RARE_OPTIONS = ["--scale", "--palette", "--scopes"]


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", type=Path, nargs="?", metavar="VIDEO",
                   help="the video to write (mp4; default: none, give VIDEO or --dataset)")
    p.add_argument("--procedure", metavar="SPEC",
                   help="segments as NAME:SECONDS, comma-separated; NAME is an organ (ear, nose, "
                        "vocal_folds) or an unusable look (blur, dark, black, out_of_body); "
                        "default: a 39 s procedure of nose, vocal folds and ear")
    p.add_argument("--scale", type=float, default=1.0,
                   help="multiply the default procedure's durations (default: %(default)s)")
    p.add_argument("--size", type=parse_size, default=None, metavar="WxH",
                   help="frame size (default: 1280x720 video, 320x240 dataset)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate (default: %(default)s)")
    p.add_argument("--fov", choices=FOV_SHAPES, default="circle",
                   help="field of view inside the black border (default: %(default)s)")
    p.add_argument("--palette", choices=tuple(PALETTES), default="none",
                   help="the scope camera's colour cast; grey: a monochrome camera (default: "
                        "%(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--truth", type=Path, metavar="PATH",
                   help="where to write the ground truth (default: VIDEO with .truth.json)")
    p.add_argument("--dataset", type=Path, metavar="DIR",
                   help="write a training dataset of still frames (class folders + labels.csv) "
                        "instead of a video (default: none)")
    add_overwrite_option(p)
    p.add_argument("--per-class", type=int, default=120,
                   help="dataset: frames per organ (default: %(default)s)")
    p.add_argument("--recordings", type=int, default=4,
                   help="dataset: independent recordings to spread frames over "
                        "(default: %(default)s)")
    p.add_argument("--scopes", type=_scopes, metavar="ORGAN=SHAPE[:PALETTE],...",
                   help="dataset: give organs their own scope, e.g. ear=circle:warm,nose=full:grey "
                        "(shapes circle, rounded, full; palettes none, warm, cool, grey): train on "
                        "one assignment, test on a swapped one (domain shift) (default: every "
                        "organ through --fov, no palette)")


def truth_path_for(video: Path) -> Path:
    """``procedure.mp4`` → ``procedure.truth.json``."""
    return video.with_suffix(".truth.json")


def check_synth_outputs(video: Path, truth: Path, *, overwrite: bool) -> None:
    """Before rendering: both files writable, not the same file, and an existing one
    replaced only when asked (a file called procedure.mp4 may well be a recording)."""
    for key, path in (("VIDEO", video), ("--truth", truth)):
        if is_stdout(path):
            raise UsageError(f"{key} is written to a file; give a path, not '-'")
        if path.exists() and not path.is_dir() and not overwrite:
            raise UsageError(f"{key} '{path}' already exists; add --overwrite to replace it, "
                             "or choose another path")
    check_outputs({"VIDEO": video, "--truth": truth}, overwrite=overwrite)


def run(args: argparse.Namespace) -> int:
    if args.dataset is not None:
        if args.video is not None:
            raise UsageError("give either VIDEO or --dataset DIR, not both")
        prepare_output_folder("--dataset", args.dataset)
        check_outputs({"--dataset's labels.csv": args.dataset / "labels.csv"},
                      overwrite=args.overwrite)
        csv_path = render_dataset(args.dataset, per_class=args.per_class,
                                  size=args.size or (320, 240), seed=args.seed,
                                  recordings=args.recordings, scopes=args.scopes)
        say_wrote(args.dataset, f"a synthetic dataset; labels: {csv_path}")
        return 0
    if args.video is None:
        raise UsageError("give the video to write, e.g. 'endostream synth procedure.mp4'")
    spec = ProcedureSpec.parse(args.procedure) if args.procedure else default_spec(args.scale)
    width, height = args.size or (1280, 720)
    truth_path = args.truth or truth_path_for(args.video)
    check_synth_outputs(args.video, truth_path, overwrite=args.overwrite)
    print(f"rendering a synthetic {spec.duration_s:.0f} s procedure at {width}x{height}, "
          f"{args.fps:g} fps ...", file=sys.stderr)
    truth = render_procedure(args.video, spec, width=width, height=height, fps=args.fps,
                             seed=args.seed, fov=args.fov, palette=args.palette)
    truth.write(truth_path)
    print(format_sections_table(truth.sections))
    say_wrote(args.video, "synthetic stand-in, not real anatomy")
    say_wrote(truth_path)
    return 0

