"""Fine-tune an EfficientNetB0 classifier (quality or organ) on labelled endoscope frames.

DATASET is a folder of class folders (ROOT/<class>/*.jpg), or a labels CSV with columns
path, organ, quality, recording (images or videos; a folder holding labels.csv works too).
Frames are split into training and validation by recording, never by frame; a split with a
recording on both sides is refused. Every frame gets the runtime's content-area crop.

The thesis recipe is the default: Adam, lr 3e-5, batch 32, cross-entropy, balanced classes,
and for --task quality bad frames synthesised from good ones (blur, brightness, or both).
Initial weights come from --init: a local ImageNet state dict, or 'imagenet' for
torchvision's EfficientNetB0 ImageNet weights (fetched once into torch's cache, checked
against their published checksum); without it training starts from random weights (then use
a higher --lr, e.g. 1e-3). Nothing is downloaded unless --init imagenet asks for it.

Every training image is shown through a random field of view (disc, ellipse, rounded
rectangle, octagon or full frame, whatever its class), rotated, flipped, zoomed, colour-,
grey-, blur-, noise- and highlight-jittered (--no-augment PART,... switches parts off);
validation images are not. OUT keeps the epoch with the lowest validation loss
(--keep last: the last one); training stops after --patience epochs without a lower one.
At the end a temperature is fitted on validation (calibrated probabilities for the
segmenter) and stored in OUT-stem.labels.json; export folds it into the graph.

After every epoch OUT (torch.save(model.state_dict()), the format 'endostream export'
takes), OUT-stem.labels.json and OUT-stem.resume.pt are written; --resume continues from
them. Ctrl+C saves and exits with 130. --task both trains one backbone with both heads
(export it with 'endostream export --shared OUT'): half the inference of two networks.

exit codes: 0 done, 2 bad arguments or dataset (e.g. a leaking split) or --init imagenet
without network, 4 bad --init file,
5 output not writable, 130 interrupted (checkpoint saved)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from endostream.errors import UsageError
from endostream.output.guard import add_overwrite_option

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  endostream train corrected/labels.csv --task both --init bundled --out tuned.pth --epochs 5
  endostream train data/labels.csv --task organ --out organ.pth --resume

OUT, OUT-stem.labels.json and OUT-stem.resume.pt are checked before any image is read:
none may be the dataset, --init or --val-split, and their folder must take new files.

exit codes: 0 done, 2 bad arguments or dataset (e.g. a leaking split), 4 bad --init file,
5 output not writable, 130 interrupted (checkpoint saved)
"""

# Defaults repeated for --help only; the source of truth is export.train_config and
# evaluation.datasets (the first imports torch). A test checks that the two agree.
HELP_DEFAULTS = {"lr": 3e-5, "batch": 32, "epochs": 20, "val_fraction": 0.2,
                 "synth_bad": 0.5, "video_fps": 1.0, "patience": 5, "organ_share": 0.5}
#: Kept in step with export.train_config.LR_SCHEDULES (a test checks).
LR_SCHEDULES = ("constant", "cosine")
#: Kept in step with export.augment.PARTS (a test checks).
AUGMENT_PARTS = ("geometry", "colour", "grey", "blur", "noise", "specular", "fov")


def _recordings(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected recording ids separated by commas")
    return names


def _parts(text: str) -> tuple[str, ...]:
    parts = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in parts if n != "all" and n not in AUGMENT_PARTS]
    if not parts or unknown:
        raise argparse.ArgumentTypeError(f"use all or any of {','.join(AUGMENT_PARTS)}")
    return parts


def _flat(groups: list[tuple[str, ...]] | None) -> tuple[str, ...]:
    """``--val-recordings a,b --val-recordings c`` → ``('a', 'b', 'c')``."""
    return tuple(name for group in groups or () for name in group)


#: Left out of ``--help``, shown by ``--help-all`` and in docs/cli.md (endostream.cli).
RARE_OPTIONS = ["--hold-out-corrections", "--backbone-lr", "--lr-schedule", "--organ-share",
                "--max-steps", "--seed",
                "--synth-bad", "--no-augment", "--patience", "--keep", "--no-calibrate",
                "--val-recordings", "--val-split", "--group-by", "--video-fps", "--threads",
                "--workers"]


def configure_parser(p: argparse.ArgumentParser) -> None:
    d = HELP_DEFAULTS
    p.add_argument("dataset", type=Path, metavar="DATASET",
                   help="class-folder root, labels CSV, or a folder holding labels.csv")
    p.add_argument("--task", choices=("quality", "organ", "both"), required=True,
                   metavar="TASK",
                   help="quality, organ, or both (one backbone, two heads; organ labels "
                        "where known)")
    p.add_argument("--out", type=Path, required=True, metavar="model.pth",
                   help="checkpoint to write (state dict; sidecars beside it)")
    p.add_argument("--init", metavar="imagenet|bundled|FILE",
                   help="'bundled' or FILE.onnx (fine-tune the model you run: backbone, "
                        "heads, classes), 'imagenet', or a state dict; default: random")
    add_overwrite_option(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the run whose OUT-stem.resume.pt is beside --out "
                        "(default: start afresh)")
    g = p.add_argument_group("recipe")
    g.add_argument("--epochs", type=int, default=d["epochs"], metavar="N",
                   help="passes over the training set (default: %(default)s)")
    g.add_argument("--lr", type=float, default=d["lr"],
                   help="Adam learning rate (default: %(default)g; 1e-5..5e-5 from ImageNet "
                        "weights, about 1e-3 from random)")
    g.add_argument("--backbone-lr", type=float, metavar="LR",
                   help="Adam learning rate of the backbone only (default: --lr); lower "
                        "keeps what an --init network learned while new heads train, e.g. "
                        "--task both --init quality.pth --lr 1e-3 --backbone-lr 3e-4")
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=LR_SCHEDULES[0],
                   help="cosine: every rate decays to 0 over the run (--max-steps, else "
                        "--epochs), so the last epochs settle instead of jumping between "
                        "minima; kept by --resume (default: %(default)s)")
    g.add_argument("--organ-share", type=float, default=d["organ_share"], metavar="FRACTION",
                   help="--task both: share of each epoch drawn class-balanced for the organ "
                        "head, the rest for the quality head (default: %(default)s)")
    g.add_argument("--batch", type=int, default=d["batch"], metavar="N",
                   help="images per step (default: %(default)s)")
    g.add_argument("--max-steps", type=int, metavar="N",
                   help="stop after N optimiser steps in all (smoke runs, tests; "
                        "default: no limit)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the split, sampling, augmentation and weights (default: 0)")
    g.add_argument("--synth-bad", type=float, default=d["synth_bad"], metavar="FRACTION",
                   help="quality task: share of the bad class made by blurring/darkening good "
                        "frames (all of it if there are no bad frames; 0: off; "
                        "default: %(default)s)")
    g.add_argument("--no-augment", type=_parts, action="extend", nargs="+", metavar="PART",
                   help="switch augmentation parts off: all, or any of "
                        f"{','.join(AUGMENT_PARTS)} (several: A B, A,B or repeated; "
                        "default: all on, training images only)")
    g.add_argument("--patience", type=int, default=d["patience"], metavar="N",
                   help="stop after N epochs without a lower validation loss (0: off; "
                        "default: %(default)s)")
    g.add_argument("--keep", choices=("best", "last"), default="best",
                   help="checkpoint in --out: lowest validation loss or last epoch "
                        "(default: %(default)s)")
    g.add_argument("--no-calibrate", action="store_true",
                   help="do not fit a temperature on the validation split at the end "
                        "(default: fit one, never below 1)")
    s = p.add_argument_group("validation split (by recording)")
    s.add_argument("--val-fraction", type=float, default=d["val_fraction"], metavar="F",
                   help="share of recordings held out, stratified by class (default: "
                        "%(default)s; 0: no validation)")
    s.add_argument("--val-recordings", type=_recordings, action="extend", nargs="+",
                   metavar="ID",
                   help="hold out exactly these recordings (several: A B, A,B or repeated; "
                        "default: chosen by --val-fraction)")
    s.add_argument("--val-split", type=Path, metavar="DATASET",
                   help="a separate labelled set for validation (checked for shared "
                        "recordings; default: split off DATASET)")
    s.add_argument("--hold-out-corrections", action="store_true",
                   help="allow a validation set that holds every corrected recording (rows "
                        "from 'endostream dataset'); default: refused, since training would "
                        "learn nothing from them (--val-fraction draws among the other "
                        "recordings first)")
    s.add_argument("--group-by", metavar="folder|prefix:SEP",
                   help="recording ids from paths when the data set does not name them: "
                        "the file's folder, or the file name up to SEP (e.g. prefix:_) "
                        "(default: the data set's own recording ids)")
    s.add_argument("--video-fps", type=float, default=d["video_fps"], metavar="FPS",
                   help="frames sampled per second from video rows without a frame column "
                        "(default: %(default)s)")
    r = p.add_argument_group("machine")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", metavar="DEVICE",
                   help="auto, cpu or cuda (default: %(default)s = CUDA if torch sees a GPU)")
    r.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's own, one per physical core)")
    r.add_argument("--workers", type=int, default=0, metavar="N",
                   help="data loading processes (default: 0 = in the training process)")


def run(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        raise UsageError("training needs torch and torchvision: "
                         "pip install 'endostream[export]'") from None
    from endostream.export.augment import AugmentConfig
    from endostream.export.train import TrainConfig, train

    config = TrainConfig(
        dataset=args.dataset, task=args.task, out=args.out, init=args.init,
        epochs=args.epochs, lr=args.lr, backbone_lr=args.backbone_lr,
        lr_schedule=args.lr_schedule, organ_share=args.organ_share, batch_size=args.batch,
        max_steps=args.max_steps,
        seed=args.seed, threads=args.threads, device=args.device, workers=args.workers,
        resume=args.resume, val_fraction=args.val_fraction,
        val_recordings=_flat(args.val_recordings) or None,
        val_split=args.val_split, synth_bad=args.synth_bad, video_fps=args.video_fps,
        overwrite=args.overwrite,
        augment=AugmentConfig.without(_flat(args.no_augment)), patience=args.patience,
        keep=args.keep,
        group_by=args.group_by, calibrate=not args.no_calibrate,
        hold_out_corrections=args.hold_out_corrections,
    )
    result = train(config)
    labels = (", ".join(result.labels) if args.task != "both" else "; ".join(
        f"{head} {','.join(names)}" for head, names in zip(("quality", "organ"), result.labels,
                                                           strict=True)))
    print(f"wrote {result.checkpoint} ({result.steps} steps, {result.epochs_done} epochs done, "
          f"labels {labels}, {result.images_per_s:.1f} training images/s"
          + (f", kept epoch {result.best_epoch}" if result.best_epoch else "")
          + _temperature_text(result.calibration) + ")", file=sys.stderr)
    from endostream.export.train_config import sidecar_paths
    for sidecar in sidecar_paths(result.checkpoint):
        if sidecar.is_file():
            print(f"wrote {sidecar}", file=sys.stderr)
    return 0


def _temperature_text(calibration: dict | None) -> str:
    """", temperature 1.234" for one head, ", temperature quality 1.1, organ 1.0" for both."""
    if not calibration:
        return ""
    if "temperature" in calibration:
        return f", temperature {calibration['temperature']:.3f}"
    return ", temperature " + ", ".join(f"{head} {fit['temperature']:.3f}"
                                        for head, fit in calibration.items())
