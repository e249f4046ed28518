"""One training run's loop: :class:`TrainingRun` (data, model, epochs, validation,
checkpoints, resume, calibration) for one head; :mod:`.multitask_train` subclasses it for
one backbone with two heads, overriding what a task decides.

:func:`~endostream.export.train.train` drives a run: ``prepare()``, ``loop()``, ``finish()``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
from torch import nn

from endostream.errors import UsageError
from endostream.evaluation import datasets as D
from endostream.evaluation.metrics import classification_report
from endostream.export import sampling as S
from endostream.export import validation as V
from endostream.export.augment import AugmentConfig, Augmenter
from endostream.export.calibration import calibrate
from endostream.export.graph import IMAGENET_MEAN, IMAGENET_STD, PIXEL_MAX
from endostream.export.grouping import regroup
from endostream.export.init_weights import init_file, resolve_init
from endostream.export.model import BACKBONE_PREFIX, build_classifier
from endostream.export.onnx_init import (
    STATISTICS_BATCH,
    STATISTICS_EPOCH,
    STATISTICS_FRAMES,
    OnnxWeights,
    check_loaded,
    classifier_from_onnx,
    is_onnx,
    merged_labels,
    read_onnx_weights,
    reference_of,
)
from endostream.export.selection import BestTracker
from endostream.export.train_config import (
    LABELS_FORMAT,
    PROGRESS_INTERVAL_S,
    RESUME_FORMAT,
    TrainConfig,
    check_train_outputs,
    lr_factor,
    sidecar_paths,
)
from endostream.output.atomic import AtomicFile, write_json_atomic

log = logging.getLogger(__name__)


def to_model_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` RGB -> normalised float32 ``[N, 3, H, W]``.

    The same arithmetic as the exported graph (:class:`.graph.FrameClassifier`):
    ``x * (1 / (255 * std)) - mean / std``, so training sees exactly what the ONNX model
    computes from the runtime's uint8 frames.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=frames.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=frames.device).view(1, 3, 1, 1)
    x = frames.permute(0, 3, 1, 2).to(torch.float32)
    return x * (1.0 / (PIXEL_MAX * std)) + (-mean / std)


def _collate(batch: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.from_numpy(np.stack([b[0] for b in batch]))
    targets = torch.tensor([b[1] for b in batch], dtype=torch.int64)
    return images, targets


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA device; use --device cpu")
    return torch.device(name)


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with AtomicFile(path, open_file=False, hint="choose another --out") as f:
        torch.save(obj, f.temp_path)


def _atomic_json(doc: Any, path: Path) -> None:
    write_json_atomic(path, doc, hint="choose another --out")


class TrainingRun:
    """State of one training run; :func:`train` drives it."""

    def __init__(self, cfg: TrainConfig, stream: TextIO):
        self.cfg = cfg
        self.stream = stream
        self.labels_path, self.resume_path = sidecar_paths(cfg.out)
        self.device = _pick_device(cfg.device)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0  # epoch in progress (0-based)
        self.step_in_epoch = 0  # optimiser steps done in that epoch
        self.global_step = 0
        self.images_seen = 0
        self.train_s = 0.0
        self.tracker = BestTracker(patience=cfg.patience)
        self.calibration: dict[str, Any] | None = None
        self.optimistic = False  # validation shares recordings it cannot see

    # -- setup ------------------------------------------------------------------------

    def prepare(self) -> None:
        cfg = self.cfg
        check_train_outputs(cfg)
        saved = self._read_resume() if cfg.resume else None
        if saved is not None:
            self._restore_settings(saved)
            cfg = self.cfg
        full = self._read_set(cfg.dataset)
        if cfg.task == "quality" and cfg.synth_bad > 0 and D.BAD not in full.labels:
            full = full.with_labels(tuple(sorted(full.labels + (D.BAD,))))
        init = init_file(cfg.init)
        self.init_weights = read_onnx_weights(init) if is_onnx(init) else None
        if self.init_weights is not None:  # the file's classes first: they are kept
            full = full.with_labels(self._labels_with(self.init_weights, full.labels))
        if saved is not None and tuple(saved["labels"]) != full.labels:
            raise UsageError(f"--resume: the dataset's labels {list(full.labels)} differ from "
                             f"the checkpoint's {saved['labels']}; resume on the same dataset")
        self.labels = full.labels
        self._split(full, saved)
        if not self.train_set.samples:
            raise UsageError("the training set is empty after the split; "
                             "lower --val-fraction or name fewer --val-recordings")
        self.synth = cfg.synth_bad if cfg.task == "quality" else 0.0
        self.steps_per_epoch = math.ceil(len(self.train_set) / cfg.batch_size)
        counts = ", ".join(f"{k} {v}" for k, v in self.train_set.class_counts().items())
        log.info("training classes: %s", counts)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        if self.init_weights is not None and saved is None:
            self.model = self._model_from_onnx(self.init_weights)
        else:
            self.model = self._build_model(init=None if saved else resolve_init(cfg.init))
        if cfg.init is None and saved is None:
            log.warning("no --init weights: training from random initialisation "
                        "(expect to need many epochs and a higher --lr, e.g. 1e-3)")
        self.model.to(self.device)
        self.optimizer = torch.optim.Adam(self._parameter_groups(), lr=cfg.lr)
        # The rates as configured; --lr-schedule scales them per step from these (a
        # resumed optimiser's groups hold the last step's scaled rates).
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.total_steps = (cfg.max_steps if cfg.max_steps is not None
                            else cfg.epochs * self.steps_per_epoch)
        self.loss_fn = nn.CrossEntropyLoss()
        if saved is not None:
            self._restore_state(saved)

    def _split(self, full: Any, saved: dict[str, Any] | None) -> None:
        """Training and validation sets (:func:`.validation.choose`: corrected recordings
        are never all held out), printed with the recordings on each side."""
        cfg = self.cfg
        val_set = (self._read_set(cfg.val_split).with_labels(full.labels)
                   if cfg.val_split is not None else None)
        chosen = V.choose(full, cfg, val_set=val_set,
                          resumed=saved["val_recordings"] if saved is not None else None)
        self.train_set, self.val_set, self.optimistic = chosen.train, chosen.val, chosen.optimistic
        if self.optimistic:
            log.warning("validation is optimistic: the data set does not name its "
                        "recordings, so frames of one recording can sit on both sides; "
                        "name them (a 'recording' column, REC__name files) or pass "
                        "--group-by folder|prefix:SEP")
        for line in chosen.lines:
            self._say(line)

    def _labels_with(self, weights: OnnxWeights, data_labels: tuple) -> tuple:
        """The run's classes when it starts from a contract file (the file's first)."""
        return merged_labels(weights.heads.get(self.cfg.task), data_labels)

    def _model_from_onnx(self, weights: OnnxWeights) -> nn.Module:
        """The network with the file's weights (:mod:`.onnx_init`), BatchNorm unfolded on
        training frames, checked against onnxruntime before any step."""
        net = classifier_from_onnx(weights, self.cfg.task, self.labels,
                                   batches=self._statistics_batches(), dropout=self.cfg.dropout)
        self._check_init(weights, net, {self.cfg.task: self.labels})
        return net

    def _check_init(self, weights: OnnxWeights, net: nn.Module, heads: dict[str, Any]) -> None:
        if not set(heads) & set(weights.heads):
            self._say(f"init: backbone of {weights.path} (no {' or '.join(heads)} head in "
                      "it: new head)")
            return
        report = check_loaded(weights, reference_of(weights, net, heads))
        self._say(f"init: {weights.path}, {report.summary()}")

    def _say(self, line: str) -> None:
        """A line of what the run does, before its epochs: on the stream, or the log
        without one (tests, Python callers)."""
        if self.stream is None:
            log.info("%s", line)
        else:
            self.stream.write(line + "\n")

    def _statistics_batches(self, length: int | None = None) -> Iterator[torch.Tensor]:
        """Normalised batches of training frames drawn as an epoch draws them (synthetic
        bad frames included, no augmentation): what a BatchNorm's statistics are set on."""
        length = min(STATISTICS_FRAMES, len(self.train_set)) if length is None else length
        plan = S.epoch_plan(self.train_set.targets, self.labels, epoch=STATISTICS_EPOCH,
                            seed=self.cfg.seed, synth_bad=self.synth, length=length)
        return self._normalised(S.ItemLoader(self.train_set), plan)

    def _normalised(self, items: Any, plan: list) -> Iterator[torch.Tensor]:
        batches = [plan[i:i + STATISTICS_BATCH] for i in range(0, len(plan), STATISTICS_BATCH)]
        return (to_model_input(images) for images, _ in self._loader(items, batches))

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """The backbone (``features.*``, the same name in both networks) at ``backbone_lr``
        when given, everything else at ``lr``; one group without ``backbone_lr``."""
        if self.cfg.backbone_lr is None:
            return [{"params": list(self.model.parameters())}]
        groups: dict[bool, list[nn.Parameter]] = {True: [], False: []}
        for name, param in self.model.named_parameters():
            groups[name.startswith(BACKBONE_PREFIX)].append(param)
        return [{"params": groups[True], "lr": self.cfg.backbone_lr},
                {"params": groups[False]}]

    def _read_resume(self) -> dict[str, Any]:
        if not self.resume_path.is_file():
            raise UsageError(f"--resume: '{self.resume_path}' not found; train without "
                             "--resume first (it is written beside --out after each epoch)")
        saved = torch.load(self.resume_path, map_location="cpu", weights_only=True)
        if not isinstance(saved, dict) or saved.get("format") != RESUME_FORMAT:
            raise UsageError(f"'{self.resume_path}' is not a resume file of this version")
        return saved

    def _restore_settings(self, saved: dict[str, Any]) -> None:
        """Settings that shape the run come from the resume file, not the command line."""
        overrides = dict(saved["config"])
        if overrides["task"] != self.cfg.task:
            raise UsageError(f"--resume: the checkpoint was trained for --task {overrides['task']}")
        overrides["val_split"] = Path(overrides["val_split"]) if overrides["val_split"] else None
        overrides["augment"] = AugmentConfig.without(
            p for p in AugmentConfig().enabled() if p not in overrides.get("augment", ()))
        changed = {k: v for k, v in overrides.items() if getattr(self.cfg, k) != v}
        if changed:
            log.warning("--resume keeps the run's %s", ", ".join(
                f"{k}={v}" for k, v in sorted(changed.items())))
        overrides["val_recordings"] = None
        self.cfg = TrainConfig(**{**asdict(self.cfg), **overrides})

    def _restore_state(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.epoch, self.step_in_epoch = int(saved["epoch"]), int(saved["step_in_epoch"])
        self.global_step = int(saved["global_step"])
        self.history = list(saved["history"])
        self.tracker = BestTracker.from_state(saved.get("best"), self.cfg.patience)
        torch.set_rng_state(saved["torch_rng"])
        if self.step_in_epoch >= self.steps_per_epoch:
            self.epoch, self.step_in_epoch = self.epoch + 1, 0
        log.info("resuming at epoch %d step %d (%d steps done)", self.epoch + 1,
                 self.step_in_epoch, self.global_step)

    # -- loop -------------------------------------------------------------------------

    def loop(self) -> None:
        cfg = self.cfg
        loader = self._item_loader(self.train_set)
        while (self.epoch < cfg.epochs and not self._steps_done()
               and not self.tracker.should_stop):
            plan = self._epoch_plan()
            batches = [plan[i:i + cfg.batch_size] for i in range(0, len(plan), cfg.batch_size)]
            batches = batches[self.step_in_epoch:]
            if cfg.max_steps is not None:
                batches = batches[:cfg.max_steps - self.global_step]
            data = self._loader(loader, batches)
            self.model.train()
            losses: list[float] = []
            started = time.monotonic()
            last_draw = 0.0
            for images, targets in data:
                loss = self._batch_loss(images.to(self.device), targets.to(self.device))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                factor = lr_factor(cfg.lr_schedule, self.global_step, self.total_steps)
                for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
                    group["lr"] = base * factor
                self.optimizer.step()
                losses.append(float(loss.detach()))
                self.step_in_epoch += 1
                self.global_step += 1
                self.images_seen += int(images.shape[0])
                now = time.monotonic()
                if now - last_draw >= PROGRESS_INTERVAL_S and self._tty():
                    last_draw = now
                    self.stream.write(f"\repoch {self.epoch + 1}/{cfg.epochs} "
                                      f"[{self.step_in_epoch}/{self.steps_per_epoch}] "
                                      f"loss {np.mean(losses):.4f}")
                    self.stream.flush()
            self.train_s += time.monotonic() - started
            epoch_done = self.step_in_epoch >= self.steps_per_epoch
            record = {"epoch": self.epoch + 1, "step": self.global_step,
                      "complete_epoch": epoch_done,
                      "train_loss": float(np.mean(losses)) if losses else None}
            record.update(self.validate())
            record["best"] = self.tracker.update(record["val_loss"], self.epoch + 1)
            self.history.append(record)
            self._print_epoch(record)
            if epoch_done:
                self.epoch, self.step_in_epoch = self.epoch + 1, 0
            self.save(improved=record["best"])
            if self.tracker.should_stop:
                log.warning("stopping early: no lower validation loss for %d epochs; %s "
                            "holds epoch %d (--patience 0 trains on)", self.tracker.patience,
                            cfg.out, self.tracker.best_epoch)

    # -- what a task decides (export.multitask_train overrides these for --task both) ----

    def _read_set(self, path: Path) -> D.LabelledSet:
        ds = D.read_dataset(path, self.cfg.task, video_fps=self.cfg.video_fps)
        return regroup(ds, self.cfg.group_by) if self.cfg.group_by is not None else ds

    def _build_model(self, init: Path | None) -> nn.Module:
        return build_classifier(len(self.labels), dropout=self.cfg.dropout, init_weights=init)

    def _item_loader(self, ds: D.LabelledSet) -> S.ItemLoader:
        return S.ItemLoader(ds, augment=Augmenter(self.cfg.augment))

    def _epoch_plan(self) -> list[S.Item]:
        return S.epoch_plan(self.train_set.targets, self.labels, epoch=self.epoch,
                            seed=self.cfg.seed, synth_bad=self.synth)

    def _batch_loss(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(self.model(to_model_input(images)), targets)

    def _labels_doc(self) -> dict[str, Any]:
        return {"head": self.cfg.task, "labels": list(self.labels)}

    def _loader(self, items: S.ItemLoader, batches: list) -> torch.utils.data.DataLoader:
        # A private generator: a DataLoader draws a base seed from the global RNG each time
        # it is iterated, which would shift dropout's random stream between a run and its
        # resume. All randomness of the data is in the items' own seeds.
        return torch.utils.data.DataLoader(
            items, batch_sampler=batches, collate_fn=_collate, num_workers=self.cfg.workers,
            generator=torch.Generator().manual_seed(self.cfg.seed))

    def _steps_done(self) -> bool:
        return self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps

    def _tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    @torch.inference_mode()
    def validate(self) -> dict[str, Any]:
        if not self.val_set.samples:
            return {"val_loss": None, "val_accuracy": None, "val_recall": None}
        items = S.validation_items(self.val_set.targets, self.labels, seed=self.cfg.seed,
                                   synth_bad=self.synth)
        batches = [items[i:i + self.cfg.batch_size]
                   for i in range(0, len(items), self.cfg.batch_size)]
        data = self._loader(S.ItemLoader(self.val_set), batches)
        self.model.eval()
        logits_all, ys, loss_sum = [], [], 0.0
        for images, targets in data:
            logits = self.model(to_model_input(images.to(self.device))).float()
            loss_sum += float(nn.functional.cross_entropy(
                logits, targets.to(self.device), reduction="sum"))
            logits_all.append(logits.cpu().numpy())
            ys.append(targets.numpy())
        y = np.concatenate(ys)
        self.val_logits = (np.concatenate(logits_all), y)  # for the temperature fit
        probs = torch.softmax(torch.from_numpy(self.val_logits[0]), dim=1).numpy()
        report = classification_report(y, probs, self.labels)
        return {"val_loss": loss_sum / y.size, "val_accuracy": report.accuracy,
                "val_recall": {k: m["recall"] for k, m in report.per_class.items()}}

    def _print_epoch(self, r: dict[str, Any]) -> None:
        parts = [f"epoch {r['epoch']}/{self.cfg.epochs}"
                 + ("" if r["complete_epoch"] else f" (stopped at step {self.step_in_epoch}"
                    f"/{self.steps_per_epoch})"),
                 f"train loss {r['train_loss']:.4f}" if r["train_loss"] is not None
                 else "train loss -"]
        if r["val_loss"] is None:
            parts.append("no validation set")
        else:
            parts += [f"val loss {r['val_loss']:.4f}", *self._val_parts(r)]
        rate = self.images_seen / self.train_s if self.train_s > 0 else 0.0
        parts.append(f"{rate:.1f} img/s")
        # On a terminal, wipe the in-epoch progress line first (ANSI erase-line).
        self.stream.write(("\r\x1b[K" if self._tty() else "") + " | ".join(parts) + "\n")
        self.stream.flush()

    def _val_parts(self, r: dict[str, Any]) -> list[str]:
        """The epoch line's validation accuracy and recall (one head here)."""
        recall = " ".join(f"{k} {v:.2f}" for k, v in r["val_recall"].items())
        return [f"val acc {r['val_accuracy']:.3f}", f"recall {recall}"]

    # -- checkpoints ------------------------------------------------------------------

    def save(self, improved: bool = True) -> None:
        """Write the resume file; ``out`` and its sidecar only when ``improved`` (or --keep
        last): with validation, ``out`` holds the epoch of the lowest validation loss."""
        cfg = self.cfg
        state = {k: v.detach().to("cpu").clone() for k, v in self.model.state_dict().items()}
        if improved or cfg.keep == "last" or not cfg.out.is_file():
            _atomic_torch_save(state, cfg.out)
            self.write_sidecar()
        fixed = {k: getattr(cfg, k) for k in ("task", "lr", "backbone_lr", "lr_schedule",
                                              "organ_share",
                                              "batch_size", "seed", "synth_bad",
                                              "val_fraction", "video_fps", "dropout",
                                              "patience", "keep", "group_by")}
        fixed["val_split"] = str(cfg.val_split) if cfg.val_split else None
        fixed["augment"] = list(cfg.augment.enabled())
        _atomic_torch_save({
            "format": RESUME_FORMAT,
            "config": fixed,
            "labels": list(self.labels),
            "val_recordings": self.val_set.recordings() if cfg.val_split is None else [],
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "model": state,
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "best": self.tracker.state(),
        }, self.resume_path)
        log.info("checkpoint: %s (epoch %d, step %d)", cfg.out, self.epoch, self.global_step)

    def write_sidecar(self) -> None:
        """The labels sidecar of ``out``: labels, which epoch it holds, and its calibration."""
        cfg = self.cfg
        kept = self.history[-1] if self.history else None
        _atomic_json({"format": LABELS_FORMAT, "task": cfg.task, **self._labels_doc(),
                      "epochs_done": self.epoch,
                      "steps": self.global_step, "dataset": str(cfg.dataset),
                      "kept": cfg.keep, "epoch_kept": kept["epoch"] if kept else 0,
                      "validation": "optimistic" if self.optimistic else (
                          "by recording" if self.val_set.samples else "none"),
                      "augment": list(cfg.augment.enabled()),
                      "temperature": (self.calibration or {}).get("temperature", 1.0),
                      "calibration": self.calibration,
                      "last": kept}, self.labels_path)

    def finish(self) -> None:
        """Fit the temperature on validation with the kept weights; record it in the sidecar."""
        if not self._score_kept_weights():
            return
        fit = calibrate(*self.val_logits)
        self._record_calibration(fit.temperature, fit.to_json(), [fit.summary(self.cfg.task)])

    def epoch_in_out(self) -> int:
        """The epoch whose weights ``out`` holds (--keep best: the lowest validation loss,
        --keep last: the last), from its sidecar; 0 when unknown."""
        if not self.labels_path.is_file():
            return 0
        return int(json.loads(self.labels_path.read_text(encoding="utf-8")).get("epoch_kept", 0))

    def _score_kept_weights(self) -> bool:
        """Leave ``val_logits`` of the weights in ``out``; False when nothing is fitted
        (calibration off, no validation set, no epoch done)."""
        cfg = self.cfg
        if not cfg.calibrate or not self.val_set.samples or not self.history:
            return False
        if self.epoch_in_out() != self.history[-1]["epoch"] or not hasattr(self, "val_logits"):
            # out holds an earlier epoch than the model in memory: score that one.
            self.model.load_state_dict(torch.load(cfg.out, map_location=self.device,
                                                  weights_only=True))
            self.validate()
        return True

    def _record_calibration(self, temperature: Any, calibration: dict[str, Any],
                            summaries: list[str]) -> None:
        """Print the fit and write it into the sidecar (one float, or one per head)."""
        self.calibration = calibration
        for line in summaries:
            log.info("calibration %s", line)
            self.stream.write(f"calibration {line}\n")
        doc = json.loads(self.labels_path.read_text(encoding="utf-8"))
        doc.update(temperature=temperature, calibration=calibration)
        _atomic_json(doc, self.labels_path)
