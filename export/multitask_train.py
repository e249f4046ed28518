"""``endostream train --task both``: one backbone and two heads, trained together.

The run is :mod:`.train`'s (recording split, resume, sidecars, Ctrl+C, progress, the
recipe's defaults); :class:`SharedRun` changes only what the task decides:

- data: :func:`.partial_labels.read_partial_set`, quality on every frame, organ where
  known;
- network: :class:`.multitask.SharedBackbone` (``--init`` loads its backbone: ImageNet
  weights, or from random weights a trained ``--task quality`` network, with
  ``--backbone-lr`` a third of ``--lr`` so that the organ head does not wipe its
  features out; docs/notes/shared-backbone.md);
- epochs: ``--organ-share`` of each (default half) balanced for the organ head, the rest
  for the quality head (:func:`.partial_labels.epoch_plan`), synthetic bad frames for the
  quality head as in ``--task quality``;
- loss: the masked sum of the heads' cross-entropies (:func:`.partial_labels.masked_loss`);
- validation: accuracy and recall per head, each over the frames labelled for it, after
  recomputing the BatchNorm statistics on frames drawn as an epoch draws them
  (:meth:`recalibrate`);
- calibration: a temperature per head, each fitted on the validation frames labelled
  for it (:func:`.calibration.calibrate`, as ``--task quality|organ`` fit theirs);
- sidecar: ``{"task": "both", "heads": {"quality": [...], "organ": [...]},
  "temperature": {"quality": T, "organ": T}}``, which ``endostream export --shared``
  reads for the labels and the temperatures.

Usage (hours on a CPU)::

    train(TrainConfig(dataset=Path("frames/"), task="both", out=Path("both.pth"),
                      init=Path("quality.pth"), lr=1e-3, backbone_lr=3e-4,
                      lr_schedule="cosine", keep="last"))
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from endostream.contract import HEADS
from endostream.evaluation.metrics import classification_report
from endostream.export import partial_labels as P
from endostream.export.augment import Augmenter
from endostream.export.calibration import calibrate
from endostream.export.grouping import regroup
from endostream.export.multitask import SharedBackbone, recalibrate_batchnorm
from endostream.export.onnx_init import (
    STATISTICS_FRAMES,
    OnnxWeights,
    merged_labels,
    shared_from_onnx,
)
from endostream.export.training_run import TrainingRun, to_model_input

log = logging.getLogger(__name__)

#: Training frames the BatchNorm statistics are recomputed on before each validation
#: and save (:func:`.multitask.recalibrate_batchnorm`): a forward pass each, seconds on a CPU.
RECALIBRATION_FRAMES = 256
#: Frames per recalibration batch: each batch's variance enters the average, so a batch
#: should hold a fair sample of the frames; 32 is the thesis' training batch.
RECALIBRATION_BATCH = 32
#: The epoch number whose plan the recalibration frames are drawn from: one no run reaches,
#: so they are a fixed draw per run seed, independent of the epoch being validated.
RECALIBRATION_EPOCH = 2_000_003


class SharedRun(TrainingRun):
    """A training run of the shared-backbone model (``TrainConfig.task == "both"``)."""

    def _read_set(self, path: Path) -> P.PartialSet:
        ds = P.read_partial_set(path, video_fps=self.cfg.video_fps,
                                synth_bad=self.cfg.synth_bad)
        return regroup(ds, self.cfg.group_by) if self.cfg.group_by is not None else ds

    def _build_model(self, init: Path | None) -> nn.Module:
        classes = {head: len(labels) for head, labels in zip(HEADS, self.labels, strict=True)}
        return SharedBackbone(classes, dropout=self.cfg.dropout, init_weights=init)

    def _item_loader(self, ds: P.PartialSet) -> P.ItemLoader:
        return P.ItemLoader(ds, augment=Augmenter(self.cfg.augment))

    def finish(self) -> None:
        """A temperature per head, fitted as the single-task run fits its one (each on the
        validation frames that head has labels for), with the kept weights; the sidecar's
        ``temperature`` and ``calibration`` then map head -> value."""
        if not self._score_kept_weights():
            return
        fits = {head: calibrate(*pair) for head, pair in self.val_logits.items()}
        self._record_calibration({h: f.temperature for h, f in fits.items()},
                                 {h: f.to_json() for h, f in fits.items()},
                                 [f.summary(h) for h, f in fits.items()])

    def _epoch_plan(self) -> list:
        return P.epoch_plan(self.train_set.targets, self.labels, epoch=self.epoch,
                            seed=self.cfg.seed, synth_bad=self.cfg.synth_bad,
                            organ_share=self.cfg.organ_share)

    def _batch_loss(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        total, _ = P.masked_loss(self.model(to_model_input(images)), targets)
        if total is None:  # cannot happen with epoch_plan's draws; keep the step harmless
            return torch.zeros((), device=images.device, requires_grad=True)
        return total

    def _labels_doc(self) -> dict[str, Any]:
        heads = {head: list(labels) for head, labels in zip(HEADS, self.labels, strict=True)}
        return {"head": "both", "heads": heads, "labels": heads["quality"]}

    def recalibrate(self) -> None:
        """BatchNorm statistics from :data:`RECALIBRATION_FRAMES` frames drawn as a training
        epoch draws them (:func:`.partial_labels.epoch_plan`: balanced for each head, in
        the run's ``--organ-share``, synthetic bad frames included, no augmentation), before
        every validation and save.

        The mix the heads were trained on, not real frames alone: measured on the model
        card's data, statistics of real frames only (three in four of them good) left the
        quality head 4 points lower on held-out frames (docs/notes/shared-backbone.md).
        """
        data = self._statistics_batches(RECALIBRATION_FRAMES, RECALIBRATION_EPOCH)
        recalibrate_batchnorm(self.model, (x.to(self.device) for x in data))

    def _statistics_batches(self, length: int | None = None,
                            epoch: int | None = None) -> Iterator[torch.Tensor]:
        """Normalised batches of :data:`RECALIBRATION_BATCH` training frames drawn as an
        epoch draws them (see :meth:`recalibrate`); by default the frames an ``--init
        FILE.onnx`` unfolds its BatchNorms on (:mod:`.onnx_init`)."""
        if length is None:
            length = min(STATISTICS_FRAMES, len(self.train_set))
        plan = P.epoch_plan(self.train_set.targets, self.labels,
                            epoch=RECALIBRATION_EPOCH if epoch is None else epoch,
                            seed=self.cfg.seed, synth_bad=self.cfg.synth_bad,
                            length=length, organ_share=self.cfg.organ_share)
        # The plan is shuffled: a batch of neighbouring frames (one recording, one class)
        # has a small variance, and the average of such batches' variances is far below
        # the variance of the frames.
        batches = [plan[i:i + RECALIBRATION_BATCH]
                   for i in range(0, len(plan), RECALIBRATION_BATCH)]
        return (to_model_input(images)
                for images, _ in self._loader(P.ItemLoader(self.train_set), batches))

    def _labels_with(self, weights: OnnxWeights, data_labels: tuple) -> tuple:
        return tuple(merged_labels(weights.heads.get(head), labels)
                     for head, labels in zip(HEADS, data_labels, strict=True))

    def _model_from_onnx(self, weights: OnnxWeights) -> nn.Module:
        heads = dict(zip(HEADS, self.labels, strict=True))
        net = shared_from_onnx(weights, heads, batches=self._statistics_batches(),
                               dropout=self.cfg.dropout)
        self._check_init(weights, net, heads)
        return net

    @torch.inference_mode()
    def validate(self) -> dict[str, Any]:
        self.recalibrate()
        if not self.val_set.samples:
            return {"val_loss": None, "val_accuracy": None, "val_recall": None}
        targets = self.val_set.targets
        items = P.validation_items(targets, self.labels, seed=self.cfg.seed,
                                   synth_bad=self.cfg.synth_bad)
        batches = [items[i:i + self.cfg.batch_size]
                   for i in range(0, len(items), self.cfg.batch_size)]
        data = self._loader(P.ItemLoader(self.val_set), batches)
        self.model.eval()
        logits: dict[str, list[np.ndarray]] = {h: [] for h in HEADS}
        ys: list[np.ndarray] = []
        for images, y in data:
            out = self.model(to_model_input(images.to(self.device)))
            for head in HEADS:
                logits[head].append(out[head].float().cpu().numpy())
            ys.append(y.numpy())
        y = np.concatenate(ys)
        loss, accuracy, recall = 0.0, {}, {}
        self.val_logits = {}  # head -> (logits, targets) of its labelled frames: the T fit
        for k, (head, labels) in enumerate(zip(HEADS, self.labels, strict=True)):
            keep = y[:, k] >= 0
            if not keep.any():
                continue
            self.val_logits[head] = (np.concatenate(logits[head])[keep], y[keep, k])
            p = torch.softmax(torch.from_numpy(self.val_logits[head][0]), dim=1).numpy()
            loss += float(nn.functional.nll_loss(
                torch.log(torch.from_numpy(p).clamp_min(1e-12)), torch.from_numpy(y[keep, k])))
            report = classification_report(y[keep, k], p, labels)
            accuracy[head] = report.accuracy
            recall[head] = {lb: m["recall"] for lb, m in report.per_class.items()}
        return {"val_loss": loss, "val_accuracy": accuracy, "val_recall": recall}

    def _val_parts(self, r: dict[str, Any]) -> list[str]:
        """Accuracy and recall per head on the epoch line."""
        parts = []
        for head, acc in r["val_accuracy"].items():
            recall = " ".join(f"{k} {v:.2f}" for k, v in r["val_recall"][head].items())
            parts.append(f"{head} acc {acc:.3f} recall {recall}")
        return parts


__all__ = ["SharedRun"]
