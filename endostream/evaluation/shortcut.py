"""The shortcut check: does a classifier's answer follow the field-of-view mask?

A model that learned the scope instead of the organ changes its answer when only the mask
changes. The check shows it the same model inputs through a round, an elliptical and a
full-frame mask (:data:`endostream.fov.CHECK_MASKS`, outside painted black as the runtime
leaves it) and counts the images whose arg-max is not the same under all three. Above
:data:`SHORTCUT_THRESHOLD` (and :data:`MIN_CHANGED` images) the model is flagged.

Use it on images of the organs the model knows: on unrelated images (a calibration
target, street footage) a model's answers are arbitrary and flip with any change, so the
figure says nothing about shortcuts there.

``endostream evaluate --task organ`` runs it on the labelled frames (figures in
metrics.json); ``endostream export`` runs it on its parity frames and warns.

The threshold: in probes on real ENT recordings (issue 15), a model trained with square
nasal crops and round otoscopy masks changed 37 of 120 answers (31 %) when a round mask
was added; one trained on copies with round masks added, 10 of 120 (8 %); one trained
with five random mask shapes and augmentation, 2 of 120 (1.7 %). On synthetic scopes
(docs/performance.md, "Training across scopes") models trained without augmentation
changed 29-69 %, with it 0-4 %. 10 % separates the two groups with room on both sides; a
model near 8 % deserves a look.

>>> import numpy as np
>>> def corner_model(x):   # "ear" when the top-left corner is dark: a pure mask reader
...     dark = x[:, :8, :8].mean(axis=(1, 2, 3)) < 40
...     return np.stack([dark, ~dark], axis=1).astype(np.float32)
>>> images = np.full((10, 224, 224, 3), 150, np.uint8)
>>> report = shortcut_check(images, corner_model, ("ear", "nose"))
>>> report.changed, report.flagged
(10, True)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from endostream.fov import CHECK_MASKS, FovMask

log = logging.getLogger(__name__)

#: Share of images whose answer changes with the mask above which a model is flagged.
SHORTCUT_THRESHOLD = 0.10
#: ... and at least this many changed answers: on export's 16 parity frames one or two
#: changes are what any model near a decision boundary shows (measured: 1 of 8 for a model
#: that changed 3 of 90 answers on a labelled set).
MIN_CHANGED = 3

#: Images the check uses at most (evenly spaced over the set): it runs the model three
#: times on each, and 120 images tell 31 % from 2 % without doubt.
DEFAULT_CHECK_FRAMES = 120

#: Images per model call.
BATCH = 16


@dataclass(frozen=True)
class ShortcutReport:
    """How often the answer changed with the mask, and what each mask made the model say."""

    frames: int
    changed: int
    threshold: float
    #: mask -> label -> how many images got that answer through that mask
    answers: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def changed_fraction(self) -> float:
        return self.changed / self.frames if self.frames else 0.0

    @property
    def flagged(self) -> bool:
        return self.changed_fraction > self.threshold and self.changed >= MIN_CHANGED

    def summary(self) -> str:
        """One line, e.g. ``shortcut check: 2 of 120 answers (1.7 %) change ... ok``."""
        if self.flagged:
            verdict = ("FLAGGED: the answers follow the field-of-view mask; train with the "
                       "default augmentation (random fields of view)")
        elif self.changed_fraction > self.threshold:
            verdict = f"too few images to judge (a flag needs {MIN_CHANGED} changed answers)"
        else:
            verdict = "ok"
        return (f"shortcut check: {self.changed} of {self.frames} answers "
                f"({100 * self.changed_fraction:.1f} %) change when only the mask changes "
                f"({', '.join(CHECK_MASKS)}; threshold {100 * self.threshold:.0f} %): {verdict}")

    def to_json(self) -> dict:
        return {"frames": self.frames, "changed": self.changed,
                "changed_fraction": round(self.changed_fraction, 4),
                "threshold": self.threshold, "flagged": self.flagged,
                "masks": list(CHECK_MASKS), "answers": self.answers}


def pick_frames(count: int, limit: int = DEFAULT_CHECK_FRAMES) -> list[int]:
    """At most ``limit`` indices evenly spaced over ``range(count)``.

    >>> pick_frames(10, 4)
    [0, 2, 5, 7]
    """
    if count <= limit:
        return list(range(count))
    return [int(k * count / limit) for k in range(limit)]


def shortcut_check(images: np.ndarray, predict: Callable[[np.ndarray], np.ndarray],
                   labels: Sequence[str], threshold: float = SHORTCUT_THRESHOLD
                   ) -> ShortcutReport:
    """Run ``predict`` (uint8 ``[N, S, S, 3]`` -> probabilities ``[N, C]``) on ``images``
    through each check mask; report how many images' arg-max differs between masks."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        return ShortcutReport(0, 0, threshold)
    answers = []
    for name in CHECK_MASKS:
        mask = FovMask.named(name)
        picks = []
        for start in range(0, len(images), BATCH):
            batch = np.stack([mask.apply(im) for im in images[start:start + BATCH]])
            picks.append(np.asarray(predict(batch)).argmax(axis=1))
        answers.append(np.concatenate(picks))
    table = np.stack(answers)  # [masks, N]
    changed = int((table != table[:1]).any(axis=0).sum())
    counts = {name: {label: int((row == k).sum()) for k, label in enumerate(labels)}
              for name, row in zip(CHECK_MASKS, table, strict=True)}
    return ShortcutReport(len(images), changed, threshold, counts)

