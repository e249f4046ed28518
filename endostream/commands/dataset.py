"""Turn reviewed sections files (and their videos) into a labels CSV that train reads.

Each section becomes one row pointing at the video: the trainer samples it at --fps frames
per second, leaving out --margin seconds on both sides of every boundary between two
sections. Organ sections give the organ label; unusable sections give quality 'bad'. The
quality of frames inside an organ section is not known from the review: --organ-quality
good (the default) labels them good, unknown leaves it empty (then --task both teaches only
the organ head on them, and --task quality skips them). The recording of every row is the
video's file name, so train splits by recording. --include adds the rows of other labels
CSVs (paths rewritten), to train on old and new labels in one run.

Every file is checked before anything is written: the schema, sections ordered and
covering the video without gaps or overlaps, labels the model knows (or --labels), and
the video being the one the file was made from (its content fingerprint; frame size and
duration for older files). A file that names no video (saved from a report) or whose
video moved finds it by content below --videos DIR.

exit codes: 0 done, 2 bad arguments or a sections file that cannot be training data
(including a video that is not the one it names), 3 video missing or unreadable,
5 output not writable, 9 a reviewed file breaks the rules of a correction
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from endostream.bundled import demo_model_path
from endostream.corrections.dataset import (
    DEFAULT_FPS,
    DEFAULT_MARGIN_S,
    ORGAN_QUALITY_CHOICES,
    included_rows,
    labels_csv_text,
    missing_organs,
    reviewed_rows,
)
from endostream.errors import UsageError
from endostream.inference.classifier import sha256_file
from endostream.output.atomic import write_text_atomic
from endostream.output.document import read_sections
from endostream.output.guard import add_overwrite_option, check_outputs, output_folder, say_wrote
from endostream.output.table import count

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  endostream dataset reviewed/*.sections.json --out corrected/labels.csv
  endostream dataset a.sections.json --video /archive/a.mp4 --out ds/labels.csv --fps 2
  endostream dataset a.corrected.sections.json --videos /archive --out ds/labels.csv
  endostream dataset reviewed/*.json --out ds/labels.csv --include old/labels.csv
  endostream train ds/labels.csv --task both --out tuned.pth --init bundled --epochs 5

exit codes: 0 done, 2 bad arguments or sections file (or the wrong video),
3 video missing or unreadable (or not below --videos), 5 output not writable,
9 a refused correction
"""


def _labels(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected organ labels separated by commas")
    return names


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("sections", type=Path, nargs="+", metavar="SECTIONS",
                   help="reviewed sections.json files; each video is found where the file "
                        "says (as for 'report')")
    p.add_argument("--out", type=Path, required=True, metavar="labels.csv",
                   help="the labels CSV to write (paths in it are relative to it)")
    p.add_argument("--video", type=Path, metavar="VIDEO",
                   help="the video of a single SECTIONS file, where it moved "
                        "(default: the file's source.path)")
    p.add_argument("--videos", type=Path, metavar="DIR",
                   help="a folder (searched with its subfolders) holding the recordings of "
                        "files that name none or whose recording moved; each is found by "
                        "its content (default: none)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS, metavar="FPS",
                   help="frames sampled per second inside each section (default: %(default)g)")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN_S, metavar="SECONDS",
                   help="left out on both sides of each boundary between sections "
                        "(default: %(default)g)")
    p.add_argument("--organ-quality", choices=ORGAN_QUALITY_CHOICES, default="good",
                   help="quality label of frames inside organ sections: good, or unknown "
                        "(left empty; default: %(default)s)")
    p.add_argument("--labels", type=_labels, action="extend", nargs="+", metavar="LABEL",
                   help="organ labels accepted in the sections (several: A B, A,B or "
                        "repeated; default: the organ head of the model each file was made "
                        "with)")
    p.add_argument("--include", type=Path, action="extend", nargs="+", metavar="CSV",
                   help="also copy the rows of these labels CSVs (or folders holding "
                        "labels.csv) (several: --include A B or --include A --include B; "
                        "default: none)")
    add_overwrite_option(p)


def run(args: argparse.Namespace) -> int:
    if args.video is not None and len(args.sections) > 1:
        raise UsageError("--video names the video of one SECTIONS file; with several, keep "
                         "each video where its file says")
    include = list(args.include or [])
    labels = tuple(name for group in args.labels for name in group) if args.labels else None
    check_outputs({"--out": args.out},
                  {"SECTIONS": list(args.sections), "--video": args.video,
                   "--include": include}, overwrite=args.overwrite)
    csv_dir = output_folder(args.out)
    rows, model_organs = [], []
    for path in args.sections:
        more, organs = reviewed_rows(path, video=args.video, videos=args.videos,
                                     csv_dir=csv_dir, fps=args.fps,
                                     margin_s=args.margin, organ_quality=args.organ_quality,
                                     labels=labels)
        rows += more
        model_organs += organs
    included = [row for path in include for row in included_rows(path, csv_dir)]
    missing = missing_organs(model_organs, rows, included)
    if missing:
        log.warning("no row teaches %s: a model trained on this CSV alone will not know "
                    "%s; --include the data set the model was trained on",
                    ", ".join(missing), "it" if len(missing) == 1 else "them")
    if not rows and not included:
        raise UsageError("no section is longer than its margins; lower --margin")
    write_text_atomic(args.out, labels_csv_text(rows, included), hint="choose another --out")
    frames = sum(r.frames for r in rows)
    counts: dict[str, int] = {}
    for r in rows:
        key = r.organ or f"quality {r.quality}"
        counts[key] = counts.get(key, 0) + r.frames
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    say_wrote(args.out, f"{count(len(rows), 'section')} of "
              f"{count(len(args.sections), 'file')}, about {count(frames, 'frame')}: {summary}"
              + (f"; plus {count(len(included), 'row')} included" if included else ""))
    print(f"next: endostream train {args.out} --task both --init {_model_of(args.sections)} "
          "--out tuned.pth --lr 1e-4 --epochs 5   # "
          + ("validates on the included recordings, trains on the corrected ones" if included
             else "no --include: the model forgets what it learnt; include its data (the "
                  "bundled model's: MODEL_CARD.md)"), file=sys.stderr)
    return 0


def _model_of(sections: list[Path]) -> str:
    """What ``train --init`` should start from: the one model the files were made with
    (``bundled`` for the demo model), else a placeholder."""
    models = {(m.path, m.sha256) for m in (read_sections(p).models for p in sections)}
    if len(models) != 1:
        return "MODEL.onnx"
    ((path, sha),) = models
    demo = demo_model_path()
    if demo.is_file() and sha == sha256_file(demo):
        return "bundled"
    return path if path.endswith(".onnx") and "," not in path else "MODEL.onnx"
