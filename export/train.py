"""Fine-tuning EfficientNetB0 in the thesis' recipe, with per-epoch checkpoints and resume.

The recipe (defaults of :class:`TrainConfig`): Adam, learning rate :data:`DEFAULT_LR`
(the thesis used 1e-5 to 5e-5 from ImageNet weights), batch 32, cross-entropy, every image
through the runtime's content-area crop, class-balanced epochs, and for the quality task
bad frames synthesised from good ones (see :mod:`.sampling`). From random initialisation
(no ``init``) such a small learning rate learns next to nothing in a few epochs; use a
higher one there, e.g. ``lr=1e-3``. ImageNet weights come from a local file or, with
``init="imagenet"``, from torchvision's cache (fetched once, :mod:`.init_weights`).

Training images go through :mod:`.augment` (random fields of view and endoscopy
augmentation, ``augment``); validation images never do. ``out`` keeps the epoch with the
lowest validation loss (:mod:`.selection`; ``keep="last"`` for the last) and training stops
after ``patience`` epochs without improvement. At the end a temperature is fitted on
validation (:mod:`.calibration`) and stored in the labels sidecar.

Files written after every epoch (and on Ctrl+C / ``max_steps``), each atomically:

- ``OUT`` (e.g. ``model.pth``): ``torch.save(model.state_dict())`` of the torchvision
  network, the thesis format that ``endostream export`` takes (the best epoch so far);
- ``<OUT stem>.labels.json``: task and ordered labels, for export's head metadata, the
  epoch kept, and the fitted temperature;
- ``<OUT stem>.resume.pt``: model, optimiser, epoch/step counters, the split, RNG state
  and history, for ``resume=True`` (read back with ``torch.load(weights_only=True)``).

On CPU, a run is deterministic for a seed: epochs are planned from ``(seed, epoch)`` and
every augmentation carries its own seed, so the same steps give the same weights, also
across a resume.

Usage (minutes to hours)::

    result = train(TrainConfig(dataset=Path("frames/"), task="quality", out=Path("q.pth"),
                               init=Path("efficientnet_b0_imagenet.pth")))
    result.history[-1]["val_accuracy"]

The run's settings and files are in :mod:`.train_config`, its loop in :mod:`.training_run`
(one head) and :mod:`.multitask_train` (``task="both"``).

>>> [p.name for p in sidecar_paths("q.pth")]
['q.labels.json', 'q.resume.pt']
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from endostream.errors import Interrupted
from endostream.export.multitask_train import SharedRun
from endostream.export.train_config import (
    DEFAULT_BATCH,
    DEFAULT_EPOCHS,
    DEFAULT_LR,
    TrainConfig,
    TrainResult,
    read_labels_sidecar,
    sidecar_paths,
)
from endostream.export.training_run import TrainingRun, to_model_input

log = logging.getLogger(__name__)


def train(config: TrainConfig, *, stream: TextIO | None = None) -> TrainResult:
    """Run (or resume) training; write checkpoints; return what was done.

    Ctrl+C saves a checkpoint of the steps done and raises
    :class:`~endostream.errors.Interrupted` (exit 130) saying how to resume.
    """
    # One backbone with two heads (task "both") has a loop of its own.
    run_type = SharedRun if config.task == "both" else TrainingRun
    run = run_type(config, stream if stream is not None else sys.stderr)
    run.prepare()
    if run.epoch >= run.cfg.epochs or run._steps_done():
        log.warning("nothing to do: %d epochs / %d steps already done; raise --epochs or "
                    "--max-steps to train on", run.epoch, run.global_step)
    try:
        run.loop()
    except KeyboardInterrupt:
        run.save(improved=False)
        raise Interrupted(f"training stopped at epoch {run.epoch + 1} step {run.step_in_epoch}; "
                          f"saved '{run.cfg.out}'; continue with --resume") from None
    run.finish()
    rate = run.images_seen / run.train_s if run.train_s > 0 else 0.0
    return TrainResult(checkpoint=run.cfg.out, labels=run.labels, epochs_done=run.epoch,
                       steps=run.global_step, history=run.history, images_per_s=rate,
                       best_epoch=run.epoch_in_out(), calibration=run.calibration)


__all__ = ["TrainConfig", "TrainResult", "TrainingRun", "train", "to_model_input",
           "sidecar_paths", "read_labels_sidecar", "DEFAULT_LR", "DEFAULT_BATCH",
           "DEFAULT_EPOCHS"]
