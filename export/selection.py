"""Which checkpoint to keep, and when to stop: the best validation loss, with patience.

Validation loss, not accuracy, picks the checkpoint: it moves with every frame's
confidence, so it sees over-confident mistakes that accuracy (a count of arg-max hits on a
small validation set) hides, and it is what temperature scaling later starts from.
:class:`BestTracker` is a plain object that the training loop feeds one validation loss per
evaluation; its state goes into the resume file, so a resumed run keeps the same best
checkpoint and the same patience count.

>>> t = BestTracker(patience=2)
>>> [t.update(loss, e) for e, loss in enumerate((1.0, 0.8, 0.9, 0.85), 1)], t.best_epoch
([True, True, False, False], 2)
>>> t.should_stop
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

#: Epochs without a lower validation loss before training stops (0: never stop early).
DEFAULT_PATIENCE = 5
#: Which checkpoint ``--out`` holds: the lowest validation loss, or the last epoch.
KEEP_CHOICES = ("best", "last")
DEFAULT_KEEP = "best"


@dataclass
class BestTracker:
    """Best validation loss so far, its epoch (1-based), and evaluations since then."""

    patience: int = DEFAULT_PATIENCE
    best_loss: float = math.inf
    best_epoch: int = 0
    since_best: int = 0

    def update(self, val_loss: float | None, epoch: int) -> bool:
        """Record the evaluation after ``epoch``; True when it is the new best (always True
        without validation: then the last checkpoint is the best one can tell)."""
        if val_loss is None:
            return True
        if val_loss < self.best_loss:
            self.best_loss, self.best_epoch, self.since_best = float(val_loss), epoch, 0
            return True
        self.since_best += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience

    def state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, patience: int) -> BestTracker:
        if not state:
            return cls(patience=patience)
        return cls(**{**state, "patience": patience})
