"""What one training run is: :class:`TrainConfig`, :class:`TrainResult`, the recipe's
defaults, and the files beside a checkpoint (labels sidecar, resume file).

Both training loops (:mod:`.training_run` for one head, :mod:`.multitask_train` for one
backbone with two heads) and :func:`~endostream.export.train.train` build on this module.

>>> [p.name for p in sidecar_paths(Path("q.pth"))]
['q.labels.json', 'q.resume.pt']
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endostream.errors import ModelError, UsageError
from endostream.evaluation import datasets as D
from endostream.export import sampling as S
from endostream.export.augment import AugmentConfig
from endostream.export.grouping import check_rule
from endostream.export.init_weights import init_file
from endostream.export.model import DEFAULT_DROPOUT
from endostream.export.partial_labels import DEFAULT_ORGAN_SHARE
from endostream.export.selection import DEFAULT_KEEP, DEFAULT_PATIENCE, KEEP_CHOICES
from endostream.output.guard import check_outputs

#: Adam learning rate: the middle of the thesis' 1e-5..5e-5 range for ImageNet-initialised
#: fine-tuning.
DEFAULT_LR = 3e-5
#: Images per optimiser step (thesis).
DEFAULT_BATCH = 32
#: Passes over the training set (one pass = as many draws as training frames).
DEFAULT_EPOCHS = 20
#: Format tag of the resume file.
RESUME_FORMAT = "endostream.train-resume/1"
#: Format tag of the labels sidecar.
LABELS_FORMAT = "endostream.train-labels/1"
#: ``--lr-schedule`` choices: the rates as given throughout, or a cosine decay to 0 over
#: the run (:func:`lr_factor`).
LR_SCHEDULES = ("constant", "cosine")
#: Seconds between in-epoch progress redraws on a terminal.
PROGRESS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Defaults live here (the CLI passes ``None`` for "not given")."""

    dataset: Path
    task: str
    out: Path
    init: Path | str | None = None  #: local ImageNet state dict, or "imagenet" (torchvision's)
    epochs: int = DEFAULT_EPOCHS
    lr: float = DEFAULT_LR
    #: Adam learning rate of the backbone (``features.*``); None: ``lr``. A lower one keeps
    #: what an ``init`` network learned while new heads start from random weights.
    backbone_lr: float | None = None
    #: "constant", or "cosine": every rate decays to 0 over the run (--max-steps, else
    #: --epochs), so the last epochs settle instead of jumping between minima.
    lr_schedule: str = "constant"
    #: ``--task both``: share of each epoch drawn for the organ head, the rest for quality.
    organ_share: float = DEFAULT_ORGAN_SHARE
    batch_size: int = DEFAULT_BATCH
    max_steps: int | None = None  #: stop after this many optimiser steps in all (resume too)
    seed: int = 0
    threads: int | None = None
    device: str = "auto"  #: auto | cpu | cuda
    workers: int = 0  #: DataLoader worker processes (0: load in the training process)
    resume: bool = False
    val_fraction: float = D.DEFAULT_VAL_FRACTION
    val_recordings: tuple[str, ...] | None = None
    val_split: Path | None = None  #: a separate labelled set used for validation
    synth_bad: float = S.DEFAULT_SYNTH_BAD  #: quality only; 0 disables synthetic bad frames
    video_fps: float = D.DEFAULT_VIDEO_FPS
    dropout: float = DEFAULT_DROPOUT
    overwrite: bool = False  #: replace a read-only --out (or sidecar)
    augment: AugmentConfig = field(default_factory=AugmentConfig)  #: training images only
    patience: int = DEFAULT_PATIENCE  #: epochs without a lower val loss before stopping; 0: off
    keep: str = DEFAULT_KEEP  #: "best" (lowest val loss) or "last" checkpoint in ``out``
    group_by: str | None = None  #: recording ids from paths: "folder" or "prefix:SEP"
    calibrate: bool = True  #: fit a temperature on validation at the end
    #: let validation hold out every corrected recording (:mod:`.validation`; refused
    #: otherwise, since training would then learn nothing from the corrections)
    hold_out_corrections: bool = False

    def __post_init__(self) -> None:
        for name, ok in (("epochs", self.epochs >= 1), ("batch", self.batch_size >= 1),
                         ("lr", self.lr > 0),
                         ("backbone-lr", self.backbone_lr is None or self.backbone_lr > 0),
                         ("organ-share", 0.0 < self.organ_share < 1.0),
                         ("workers", self.workers >= 0),
                         ("max-steps", self.max_steps is None or self.max_steps >= 1),
                         ("synth-bad", 0.0 <= self.synth_bad <= 1.0),
                         ("video-fps", self.video_fps > 0)):
            if not ok:
                value = {"batch": self.batch_size, "max-steps": self.max_steps,
                         "synth-bad": self.synth_bad, "video-fps": self.video_fps}.get(
                    name, getattr(self, name.replace("-", "_"), None))
                raise UsageError(f"--{name} out of range: {value}")
        if self.patience < 0:
            raise UsageError(f"--patience out of range: {self.patience}; 0 switches it off")
        if self.lr_schedule not in LR_SCHEDULES:
            raise UsageError(f"--lr-schedule {self.lr_schedule!r}: use "
                             + " or ".join(LR_SCHEDULES))
        if self.keep not in KEEP_CHOICES:
            raise UsageError(f"--keep {self.keep!r}: use best or last")
        if self.group_by is not None:
            check_rule(self.group_by)
        if self.val_recordings and self.val_split:
            raise UsageError("give --val-recordings or --val-split, not both")


@dataclass
class TrainResult:
    checkpoint: Path
    labels: tuple[str, ...]
    epochs_done: int
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    images_per_s: float = 0.0
    best_epoch: int = 0  #: epoch whose weights ``checkpoint`` holds (best or last; 0: unknown)
    calibration: dict[str, Any] | None = None  #: temperature and ECE before / after


def lr_factor(schedule: str, step: int, total: int) -> float:
    """What the rates are multiplied by for optimiser step ``step`` (0-based) of ``total``.

    >>> [round(lr_factor("cosine", t, 4), 3) for t in range(4)], lr_factor("constant", 3, 4)
    ([1.0, 0.854, 0.5, 0.146], 1.0)
    """
    if schedule == "constant" or total <= 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def sidecar_paths(out: Path) -> tuple[Path, Path]:
    """``(labels_json, resume_file)`` beside checkpoint ``out``.

    >>> [p.name for p in sidecar_paths(Path("runs/q.pth"))]
    ['q.labels.json', 'q.resume.pt']
    """
    out = Path(out)
    return out.with_name(out.stem + ".labels.json"), out.with_name(out.stem + ".resume.pt")


def check_train_outputs(cfg: TrainConfig) -> None:
    """Before any image is read: the checkpoint and its sidecars may not replace the
    dataset, --init or --val-split, and their folder must take new files
    (:mod:`endostream.output.guard`). The resume file is an output that --resume reads;
    --resume continues a run, so it replaces that run's files as --overwrite would."""
    labels_json, resume_file = sidecar_paths(cfg.out)
    check_outputs({"--out": cfg.out, "--out (its .labels.json)": labels_json,
                   "--out (its .resume.pt)": resume_file},
                  {"DATASET": cfg.dataset, "--init": init_file(cfg.init),
                   "--val-split": cfg.val_split},
                  overwrite=cfg.overwrite or cfg.resume)


def read_labels_sidecar(checkpoint: Path) -> dict[str, Any] | None:
    """The labels sidecar of a checkpoint (``{"task", "labels", ...}``), or None if absent."""
    path = sidecar_paths(checkpoint)[0]
    if not path.is_file():
        return None
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read '{path}': {e}; delete it or train again") from None
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("labels"), list):
        raise ModelError(f"'{path}' is not a labels file written by endostream train")
    return sidecar
