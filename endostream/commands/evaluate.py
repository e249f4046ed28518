"""Score a model on a labelled set of frames, or a video's sections against ground truth.

Dataset mode (--dataset DATASET --task quality|organ): runs the ONNX model on every
labelled frame, through the same content-area crop as 'endostream segment', and writes
metrics.json (accuracy, per-class precision / recall / F1 / AUC, confusion matrix, ROC
curves), confusion.png and roc.png to --out-dir. DATASET is read like 'endostream train'
reads it: class folders, a labels CSV, or a folder holding labels.csv. For --task organ it
also runs the shortcut check: up to --shortcut-frames of the frames go through a round,
an elliptical and a full-frame mask, and a model whose answers change with the mask more
often than 10 % of the time is flagged (it learned the scope, not the organ).

Video mode (--truth truth.json with --video VIDEO and/or --sections sections.json):
compares sections with the ground-truth sections (a truth file written by 'endostream
synth', or any sections.json-like file with a "sections" list) and writes
video_metrics.json: boundary error in seconds per true boundary, segment precision / recall
/ F1 (same label, time IoU >= --iou), the over-segmentation count (extra sections) and the
share of time labelled right. Without --sections the video is segmented first (the result
is kept as sections.json in --out-dir).

Without --out-dir the scores are only printed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from endostream.commands.common import ModelChoice, add_model_arguments, parse_sample_fps
from endostream.errors import UsageError, VideoError
from endostream.evaluation.metrics import ClassificationReport, classification_report
from endostream.evaluation.plots import draw_confusion, draw_roc, save_png
from endostream.evaluation.sections import DEFAULT_IOU_THRESHOLD, evaluate_sections
from endostream.evaluation.shortcut import DEFAULT_CHECK_FRAMES, pick_frames, shortcut_check
from endostream.evaluation.truth import read_sections_file
from endostream.inference.defaults import batch_help, check_batch, default_batch
from endostream.output.atomic import write_json_atomic
from endostream.output.guard import (
    add_overwrite_option,
    check_outputs,
    prepare_output_folder,
    say_wrote,
)
from endostream.output.table import format_clock
from endostream.pipeline.files import VideoFiles, segment_to_files
from endostream.pipeline.offline import SegmentOptions
from endostream.segmentation.section import Section
from endostream.sources.file import DEFAULT_SAMPLE_FPS

log = logging.getLogger(__name__)

#: Schema ids of the files this command writes.
METRICS_SCHEMA = "endostream.evaluation/1"
VIDEO_METRICS_SCHEMA = "endostream.video-evaluation/1"

#: Files written into --out-dir by each mode.
DATASET_FILES = ("metrics.json", "confusion.png", "roc.png")
VIDEO_FILES = ("video_metrics.json", "sections.json")

#: Sections and truth whose ends differ by more than this share of the longer one (or
#: :data:`DURATION_SLACK_S`, whichever is larger) probably come from different videos.
DURATION_MISMATCH = 0.02
DURATION_SLACK_S = 1.0

EXAMPLES = """\
examples:
  endostream evaluate --models endostream.onnx --dataset held_out/ --task organ --out-dir eval/
  endostream evaluate --sections sections.json --truth procedure.truth.json
  endostream evaluate --video procedure.mp4 --truth procedure.truth.json --out-dir eval/

Without --out-dir the scores are printed and nothing is written. Files in --out-dir are
checked before any frame is read: none may be an input (dataset CSV, truth, sections,
video, model).

exit codes: 0 done, 2 bad arguments or dataset, 3 video unreadable, 4 model problem,
5 output not writable, 130 interrupted
"""


def configure_parser(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("dataset mode")
    d.add_argument("--dataset", type=Path, metavar="DATASET",
                   help="class folders, a labels CSV, or a folder holding labels.csv "
                        "(default: none, video mode)")
    d.add_argument("--task", choices=("quality", "organ"),
                   help="which head to score against which labels (required with --dataset)")
    d.add_argument("--video-fps", type=float, default=1.0, metavar="FPS",
                   help="frames per second taken from video rows of a labels CSV "
                        "(default: %(default)s)")
    d.add_argument("--shortcut-frames", type=int, default=DEFAULT_CHECK_FRAMES, metavar="N",
                   help="organ task: frames for the field-of-view shortcut check (0: skip; "
                        "default: %(default)s)")
    v = p.add_argument_group("video mode")
    v.add_argument("--video", type=Path, metavar="VIDEO",
                   help="the video to segment (default: none, score --sections)")
    v.add_argument("--truth", type=Path, metavar="truth.json",
                   help="ground-truth sections (endostream synth truth file or sections.json; "
                        "required in video mode)")
    v.add_argument("--sections", type=Path, metavar="sections.json",
                   help="predicted sections to score (default: segment --video now)")
    v.add_argument("--sample-fps", type=parse_sample_fps, default=DEFAULT_SAMPLE_FPS,
                   metavar="N|all",
                   help="frames analysed per second when segmenting; 'all' analyses every "
                        "frame (default: %(default)g, as segment)")
    v.add_argument("--iou", type=float, default=DEFAULT_IOU_THRESHOLD, metavar="F",
                   help="time IoU at which a predicted section matches a true one "
                        "(default: %(default)s)")
    p.add_argument("--out-dir", type=Path, default=None, metavar="DIR",
                   help="where the metrics and plots go (created if missing; default: none, "
                        "the scores are only printed)")
    add_model_arguments(p)
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help=batch_help())
    add_overwrite_option(p)


def run(args: argparse.Namespace) -> int:
    dataset_mode = args.dataset is not None
    video_mode = args.truth is not None or args.video is not None or args.sections is not None
    if dataset_mode == video_mode:
        raise UsageError("give either --dataset with --task, or --truth with --video "
                         "and/or --sections")
    check_batch(args.batch)
    if args.video is not None and args.sections is None and not args.video.exists():
        # segment's order: a missing video (to segment) before the outputs and the model.
        raise VideoError(f"video not found: '{args.video}'; check the path")
    if args.out_dir is None:
        if args.quiet:
            raise UsageError("--quiet without --out-dir would show and keep nothing; "
                             "add --out-dir DIR or drop --quiet")
    else:
        # Before any frame is read or model loaded: the outputs, checked against every
        # input (a dataset CSV, truth, sections, video, model).
        prepare_output_folder("--out-dir", args.out_dir)
        files = DATASET_FILES if dataset_mode else VIDEO_FILES
        if not dataset_mode and args.video is None:
            files = VIDEO_FILES[:1]  # sections.json is written only when --video is segmented
        check_outputs({f"--out-dir's {name}": args.out_dir / name for name in files},
                      {"--dataset": args.dataset, "--truth": args.truth,
                       "--sections": args.sections, "--video": args.video,
                       "--models": ModelChoice.from_args(args).input_paths()},
                      overwrite=args.overwrite)
    if dataset_mode:
        return _run_dataset(args)
    return _run_video(args)


# --- dataset mode --------------------------------------------------------------------


def _run_dataset(args: argparse.Namespace) -> int:
    if args.task is None:
        raise UsageError("--dataset needs --task quality or --task organ")
    # The reader lives with the training code, but needs numpy and OpenCV only.
    from endostream.evaluation.datasets import read_dataset

    ds = read_dataset(args.dataset, args.task, video_fps=args.video_fps)
    with ModelChoice.from_args(args).load() as classifier:
        if args.task not in classifier.heads:
            raise UsageError(f"the model has no {args.task} head (it has: "
                             f"{', '.join(classifier.heads)}); pass a model with one")
        labels = tuple(classifier.heads[args.task])
        ds = ds.with_labels(labels)
        probs = []
        step = args.batch or default_batch(classifier.provider)
        for start in range(0, len(ds), step):
            batch = np.stack([ds.load(i) for i in range(start, min(start + step, len(ds)))])
            probs.append(classifier.run(batch)[args.task])
        shortcut = None
        if args.task == "organ" and args.shortcut_frames > 0:
            picked = np.stack([ds.load(i) for i in pick_frames(len(ds), args.shortcut_frames)])
            shortcut = shortcut_check(picked, lambda x: classifier.run(x)[args.task], labels)
        models = classifier.describe()
    report = classification_report(ds.targets, np.concatenate(probs), labels)
    doc = {
        "schema": METRICS_SCHEMA,
        "task": args.task,
        "dataset": str(args.dataset),
        "frames": len(ds),
        "recordings": len(ds.recordings()) if ds.recordings_known else None,
        "models": models,
        **report.to_json(),
        "shortcut": shortcut.to_json() if shortcut else None,
    }
    out = args.out_dir
    if out is not None:
        write_json_atomic(out / "metrics.json", doc)
        written = ["metrics.json"]
        try:
            save_png(out / "confusion.png", draw_confusion(
                report.confusion, labels,
                title=f"{args.task}: confusion matrix ({len(ds)} frames)"))
            save_png(out / "roc.png", draw_roc(
                {k: (c.fpr, c.tpr, c.auc) for k, c in report.roc.items()},
                title=f"{args.task}: ROC, one vs rest"))
            written += ["confusion.png", "roc.png"]
        except UsageError as e:  # matplotlib missing: the metrics still count
            print(f"endostream: plots skipped: {e}", file=sys.stderr)
    if not args.quiet:
        print(format_report(report, args.task))
        if shortcut is not None:
            print(shortcut.summary())
    if shortcut is not None and shortcut.flagged:
        log.warning("%s", shortcut.summary())
    if out is not None:
        for name in written:
            say_wrote(out / name)
    return 0


def format_report(report: ClassificationReport, task: str) -> str:
    """Fixed-width summary: accuracy, then one row per class.

    >>> r = classification_report([0, 1], np.eye(2), ["bad", "good"])
    >>> print(format_report(r, "quality").splitlines()[0])
    quality: 2 frames, accuracy 1.000, macro F1 1.000, macro AUC 1.000
    """
    auc = report.macro["auc"]
    lines = [f"{task}: {report.count} frames, accuracy {report.accuracy:.3f}, "
             f"macro F1 {report.macro['f1']:.3f}, macro AUC "
             + ("n/a" if auc is None else f"{auc:.3f}")]
    rows = [("class", "precision", "recall", "f1", "auc", "support")]
    for label, m in report.per_class.items():
        a = m["auc"]
        rows.append((label, f"{m['precision']:.3f}", f"{m['recall']:.3f}", f"{m['f1']:.3f}",
                     "n/a" if a != a else f"{a:.3f}", str(m["support"])))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
    lines += ["".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


# --- video mode ----------------------------------------------------------------------


def _run_video(args: argparse.Namespace) -> int:
    if args.truth is None:
        raise UsageError("video mode needs --truth (the ground-truth sections)")
    truth = read_sections_file(args.truth, "truth")
    if args.sections is not None:
        predicted = read_sections_file(args.sections, "sections")
        origin = str(args.sections)
    elif args.video is not None:
        predicted = _segment(args)
        origin = str(args.out_dir / "sections.json") if args.out_dir else str(args.video)
    else:
        raise UsageError("video mode needs --video (to segment) or --sections")
    if not 0.0 < args.iou <= 1.0:
        raise UsageError(f"--iou must be in (0, 1], got {args.iou}")
    warn_duration_mismatch(predicted, truth, args.truth)
    metrics = evaluate_sections(predicted, truth, iou_threshold=args.iou)
    doc = {
        "schema": VIDEO_METRICS_SCHEMA,
        "video": str(args.video) if args.video else None,
        "truth": str(args.truth),
        "sections": origin,
        "iou_threshold": args.iou,
        "metrics": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()},
        "predicted": [s.to_json() for s in predicted],
        "ground_truth": [{"label": s.label, "start_s": round(s.start_s, 3),
                          "end_s": round(s.end_s, 3)} for s in truth],
    }
    if args.out_dir is not None:
        write_json_atomic(args.out_dir / "video_metrics.json", doc)
    if not args.quiet:
        print(format_video_metrics(metrics, predicted, truth))
    if args.out_dir is not None:
        say_wrote(args.out_dir / "video_metrics.json")
    return 0


def warn_duration_mismatch(predicted: Sequence[Section], truth: Sequence[Section],
                           truth_path: Path) -> bool:
    """Warn (and return True) when the sections and the truth end at clearly different
    times: sections cover their video, so they were probably made from another video
    than the truth describes, and every score would be meaningless."""
    if not predicted or not truth:
        return False
    end_p, end_t = predicted[-1].end_s, truth[-1].end_s
    if abs(end_p - end_t) <= max(DURATION_SLACK_S, DURATION_MISMATCH * max(end_p, end_t)):
        return False
    log.warning("the sections cover %s but the truth '%s' covers %s: are they of the same "
                "video? The scores below compare them anyway", format_clock(end_p),
                truth_path, format_clock(end_t))
    return True


def _segment(args: argparse.Namespace) -> list[Section]:
    options = SegmentOptions(sample_fps=args.sample_fps, batch_size=args.batch)
    # Without --out-dir the sections are scored and not kept.
    files = VideoFiles(sections=args.out_dir / "sections.json" if args.out_dir else None,
                       hint="choose another --out-dir")
    with ModelChoice.from_args(args).load() as classifier:
        result = segment_to_files(args.video, classifier, options, files)
    return list(result.sections)



def format_video_metrics(metrics: dict[str, Any], predicted: Sequence[Section],
                         truth: Sequence[Section]) -> str:
    """The headline numbers, then predicted and true sections side by side."""
    med = metrics["median_boundary_error_s"]
    errors = ", ".join(f"{e:.1f}" for e in metrics["boundary_errors_s"]) or "-"
    lines = [
        f"sections: {metrics['n_pred']} predicted, {metrics['n_true']} true, "
        f"{metrics['matched']} matched; extra sections {metrics['extra_sections']:+d}",
        f"segment precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f}, "
        f"F1 {metrics['f1']:.3f}; time labelled right {metrics['time_accuracy']:.1%}",
        "boundary error: median " + ("n/a" if med is None else f"{med:.2f} s")
        + f" (per true boundary, s: {errors})",
        "",
    ]
    rows = [("predicted", "", "", "truth", "", "")]
    for k in range(max(len(predicted), len(truth))):
        p = predicted[k] if k < len(predicted) else None
        t = truth[k] if k < len(truth) else None
        rows.append((p.label if p else "", format_clock(p.start_s) if p else "",
                     format_clock(p.end_s) if p else "", t.label if t else "",
                     format_clock(t.start_s) if t else "", format_clock(t.end_s) if t else ""))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(6)]
    lines += ["".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
