"""Scores of predicted sections against ground-truth sections: pure functions, numpy only.

Used by ``benchmarks.segmenter_quality`` (and by anything that scores a segmentation
against annotations). Sections are anything with ``label``, ``start_s`` and ``end_s``
(a :class:`~endostream.segmentation.section.Section`) or ``(label, start_s, end_s)`` tuples, ordered
and non-overlapping. The metrics:

- **boundary error**, both ways: for every true boundary (the start of every true section
  but the first) the distance in seconds to the nearest predicted boundary (how well
  true changes are found), and for every predicted boundary the distance to the nearest
  true one (how far spurious changes are from real ones). Where the other side has no
  boundary at all, the distance is to the nearest end of the video. The headline
  ``boundary_error_s`` is the median over both sets together: one direction alone is
  easy to game (a prediction that changes label every frame is always near a true
  boundary; one with a single boundary is never far from all of them);
- **extra sections**: predicted count minus true count (negative: too few);
- **segment precision / recall / F1**: a predicted section matches a true one when they
  have the same label and their time IoU is at least ``iou_threshold`` (one-to-one,
  greedy by IoU);
- **time accuracy**: the share of the true video duration where the labels agree.

>>> truth = [("nose", 0.0, 40.0), ("ear", 40.0, 100.0)]
>>> pred = [("nose", 0.0, 41.0), ("ear", 41.0, 70.0), ("nose", 70.0, 72.0), ("ear", 72.0, 100.0)]
>>> r = evaluate_sections(pred, truth)
>>> r["boundary_errors_s"], r["pred_boundary_errors_s"], r["boundary_error_s"]
([1.0], [1.0, 30.0, 32.0], 15.5)
>>> r["extra_sections"], r["matched"], round(r["f1"], 3)
(2, 1, 0.333)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: Time IoU at which a predicted section counts as finding a true one.
DEFAULT_IOU_THRESHOLD = 0.5


def _intervals(sections: Iterable[Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    labels, starts, ends = [], [], []
    for s in sections:
        if isinstance(s, tuple):
            label, start, end = s[:3]
        else:
            label, start, end = s.label, s.start_s, s.end_s
        labels.append(str(label))
        starts.append(float(start))
        ends.append(float(end))
    return labels, np.asarray(starts, np.float64), np.asarray(ends, np.float64)


def boundary_errors(pred: Sequence[Any], truth: Sequence[Any]) -> np.ndarray:
    """Seconds from each boundary of ``truth`` to the nearest one of ``pred``.

    Swap the arguments for the other direction. Where ``pred`` has no boundary, the
    distance is to the nearest end of ``truth``'s extent.
    """
    _, t_start, t_end = _intervals(truth)
    _, p_start, _ = _intervals(pred)
    true_b = t_start[1:]
    if len(true_b) == 0:
        return np.zeros(0)
    pred_b = np.sort(p_start[1:])
    if len(pred_b) == 0:
        pred_b = np.array([t_start[0], t_end[-1]])
    k = np.searchsorted(pred_b, true_b)
    left = pred_b[np.clip(k - 1, 0, len(pred_b) - 1)]
    right = pred_b[np.clip(k, 0, len(pred_b) - 1)]
    return np.minimum(np.abs(true_b - left), np.abs(true_b - right))


def _median(*arrays: np.ndarray) -> float | None:
    x = np.concatenate([np.asarray(a, np.float64) for a in arrays])
    return float(np.median(x)) if len(x) else None


def _overlaps(p_start, p_end, t_start, t_end):
    """Yields ``(i_pred, i_true, overlap_s)`` for every overlapping pair (sorted inputs)."""
    for i in range(len(p_start)):
        lo = int(np.searchsorted(t_end, p_start[i], side="right"))
        hi = int(np.searchsorted(t_start, p_end[i], side="left"))
        for j in range(lo, hi):
            ov = min(p_end[i], t_end[j]) - max(p_start[i], t_start[j])
            if ov > 0:
                yield i, j, ov


def match_sections(pred: Sequence[Any], truth: Sequence[Any],
                   iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(i_pred, i_true, iou)``: same label, IoU >= threshold, best first."""
    p_lab, p_start, p_end = _intervals(pred)
    t_lab, t_start, t_end = _intervals(truth)
    cands = []
    for i, j, ov in _overlaps(p_start, p_end, t_start, t_end):
        if p_lab[i] != t_lab[j]:
            continue
        union = max(p_end[i], t_end[j]) - min(p_start[i], t_start[j])
        iou = ov / union if union > 0 else 0.0
        if iou >= iou_threshold:
            cands.append((iou, i, j))
    cands.sort(key=lambda c: (-c[0], c[1], c[2]))
    used_p, used_t, out = set(), set(), []
    for iou, i, j in cands:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            out.append((i, j, float(iou)))
    return sorted(out)


def time_accuracy(pred: Sequence[Any], truth: Sequence[Any]) -> float:
    """Share of the true sections' total duration where the predicted label is the same."""
    p_lab, p_start, p_end = _intervals(pred)
    t_lab, t_start, t_end = _intervals(truth)
    total = float(np.sum(t_end - t_start))
    if total <= 0:
        return 0.0
    pairs = _overlaps(p_start, p_end, t_start, t_end)
    agree = sum(ov for i, j, ov in pairs if p_lab[i] == t_lab[j])
    return float(agree / total)


def _prf(matched: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    if n_pred == 0 and n_true == 0:
        return 1.0, 1.0, 1.0
    precision = matched / n_pred if n_pred else 0.0
    recall = matched / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def evaluate_sections(pred: Sequence[Any], truth: Sequence[Any], *,
                      iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> dict[str, Any]:
    """All metrics of one video, JSON-ready (``None`` where undefined, e.g. no true boundary)."""
    errors = boundary_errors(pred, truth)
    pred_errors = boundary_errors(pred=truth, truth=pred) if len(pred) else np.zeros(0)
    matched = len(match_sections(pred, truth, iou_threshold))
    n_pred, n_true = len(pred), len(truth)
    return {
        **_counts_and_errors(n_true, n_pred, matched, errors, pred_errors),
        "time_accuracy": time_accuracy(pred, truth),
        "true_duration_s": float(sum(e - s for _, s, e in zip(*_intervals(truth), strict=True))),
    }


def _counts_and_errors(n_true: int, n_pred: int, matched: int, errors: np.ndarray,
                       pred_errors: np.ndarray) -> dict[str, Any]:
    """The fields one video and a pool of videos share: counts, P/R/F1, boundary errors."""
    precision, recall, f1 = _prf(matched, n_pred, n_true)
    return {
        "n_true": n_true,
        "n_pred": n_pred,
        "matched": matched,
        "extra_sections": n_pred - n_true,
        "unmatched_pred": n_pred - matched,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "boundary_error_s": _median(errors, pred_errors),
        "boundary_errors_s": [float(x) for x in errors],
        "pred_boundary_errors_s": [float(x) for x in pred_errors],
        "median_boundary_error_s": _median(errors),
        "median_pred_boundary_error_s": _median(pred_errors),
    }


def pool(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pool :func:`evaluate_sections` results of several videos into one.

    Counts add up (so precision/recall/F1 are over all sections), boundary errors are
    pooled before taking the median, time accuracy is weighted by duration.
    """
    n_true = sum(r["n_true"] for r in results)
    n_pred = sum(r["n_pred"] for r in results)
    matched = sum(r["matched"] for r in results)
    errors = np.array([e for r in results for e in r["boundary_errors_s"]], np.float64)
    pred_errors = np.array([e for r in results for e in r["pred_boundary_errors_s"]], np.float64)
    duration = sum(r["true_duration_s"] for r in results)
    return {
        "videos": len(results),
        **_counts_and_errors(n_true, n_pred, matched, errors, pred_errors),
        "time_accuracy": (sum(r["time_accuracy"] * r["true_duration_s"] for r in results)
                          / duration if duration > 0 else 0.0),
        "true_duration_s": duration,
    }
