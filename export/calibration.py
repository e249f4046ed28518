"""Temperature scaling: calibrated probabilities for the segmenter, fitted on validation.

The segmenter weighs each frame by the heads' probabilities; an over-confident wrong frame
costs it whole sections. One temperature ``T`` per head divides the logits before the
softmax (``softmax(z / T)``): it keeps every answer (the arg-max does not move) and only
makes the probabilities say how often they are right. ``T`` is fitted at the end of
training on the validation split by minimising its negative log-likelihood, stored in the
checkpoint's labels sidecar, and folded into the exported graph (recorded in the model's
metadata under :data:`endostream.contract.META_TEMPERATURE`).

The fit is one-dimensional and convex in ``1 / T``, so a golden-section search over
:data:`TEMPERATURE_RANGE` finds it in about 60 evaluations; numpy only.

``T`` is never below 1: temperature scaling here only softens. The validation split comes
from the same scopes and clinics as training (and is optimistic when recordings are
unknown); a head that is nearly always right there is "under-confident" on it, and
sharpening it (one synthetic run fitted T = 0.26) would make it over-confident on footage
from other scopes, where over-confident wrong frames cost the segmenter whole sections.

The expected calibration error (ECE) is the frame-weighted mean ``|accuracy - confidence|``
over :data:`ECE_BINS` equal-width confidence bins, reported before and after.

>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 3, 2000)
>>> logits = rng.normal(size=(2000, 3)); logits[np.arange(2000), y] += 1.0
>>> fit = calibrate(logits * 6, y)            # a made-up over-confident head
>>> fit.temperature > 3, fit.ece_after < fit.ece_before
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Temperatures searched: never sharpen (see above); past 20 a head is broken rather than
#: miscalibrated.
TEMPERATURE_RANGE = (1.0, 20.0)
#: Confidence bins of the ECE (the common choice in the calibration literature).
ECE_BINS = 15
#: Fewer validation frames than this give no fit (T stays 1): too noisy to trust.
MIN_FRAMES = 20


@dataclass(frozen=True)
class Calibration:
    """A fitted temperature with the validation figures before and after."""

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    frames: int

    def to_json(self) -> dict[str, float | int]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in vars(self).items()}

    def summary(self, head: str) -> str:
        return (f"{head}: temperature {self.temperature:.3f} on {self.frames} validation "
                f"frames; ECE {self.ece_before:.3f} -> {self.ece_after:.3f}, "
                f"NLL {self.nll_before:.3f} -> {self.nll_after:.3f}")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` in float64."""
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``targets`` under ``softmax(logits / T)``."""
    z = np.asarray(logits, np.float64) / float(temperature)
    m = z.max(axis=1, keepdims=True)
    log_norm = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
    t = np.asarray(targets, np.int64)
    return float(np.mean(log_norm - z[np.arange(t.size), t]))


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray,
                               bins: int = ECE_BINS) -> float:
    """ECE of ``probs`` ``[N, C]`` against integer ``targets``.

    >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
    0.4
    """
    p = np.asarray(probs, np.float64)
    t = np.asarray(targets, np.int64)
    if t.size == 0:
        return 0.0
    conf = p.max(axis=1)
    right = (p.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            total += sel.sum() * abs(right[sel].mean() - conf[sel].mean())
    return round(float(total / t.size), 12)


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The ``T`` in :data:`TEMPERATURE_RANGE` that minimises the NLL (golden section on 1/T)."""
    lo, hi = 1.0 / TEMPERATURE_RANGE[1], 1.0 / TEMPERATURE_RANGE[0]
    golden = (math.sqrt(5.0) - 1.0) / 2.0

    def f(beta: float) -> float:
        return nll(logits, targets, 1.0 / beta)

    a, b = lo, hi
    c, d = b - golden * (b - a), a + golden * (b - a)
    fc, fd = f(c), f(d)
    while b - a > 1e-5 * (1.0 + a):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - golden * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + golden * (b - a)
            fd = f(d)
    return float(1.0 / ((a + b) / 2.0))


def calibrate(logits: np.ndarray, targets: np.ndarray) -> Calibration:
    """Fit ``T`` on ``(logits, targets)`` and report ECE / NLL before and after.

    With fewer than :data:`MIN_FRAMES` frames, or a single class among the targets, ``T``
    stays 1 (the figures are still reported).
    """
    logits = np.asarray(logits, np.float64)
    targets = np.asarray(targets, np.int64)
    enough = targets.size >= MIN_FRAMES and np.unique(targets).size > 1
    t = fit_temperature(logits, targets) if enough else 1.0
    return Calibration(
        temperature=t,
        ece_before=expected_calibration_error(softmax(logits), targets),
        ece_after=expected_calibration_error(softmax(logits, t), targets),
        nll_before=nll(logits, targets),
        nll_after=nll(logits, targets, t),
        frames=int(targets.size),
    )
