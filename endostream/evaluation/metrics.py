"""Classification metrics from labels and probabilities: numpy only, pure functions.

``endostream evaluate`` and the training loop's validation both score a classifier with
these: accuracy, per-class precision / recall / F1, the confusion matrix (rows: true class,
columns: predicted class) and one-vs-rest ROC curves with their area (AUC).

Conventions, chosen so that a report never holds NaN where a number is expected:

- a class never predicted has precision 0; a class absent from ``y_true`` has recall 0
  (and ``support`` 0, so a reader can tell why);
- the AUC of a class with no positive or no negative example is undefined and reported as
  ``None`` in JSON (``nan`` in the arrays);
- tied scores are one threshold: the ROC curve moves diagonally across them, which gives
  them half credit, so a classifier that outputs a constant has AUC 0.5.

>>> import numpy as np
>>> y = np.array([0, 0, 1, 1])
>>> probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])
>>> r = classification_report(y, probs, ["bad", "good"])
>>> r.accuracy, r.confusion.tolist()
(0.75, [[2, 0], [1, 1]])
>>> r.per_class["good"]["recall"], r.per_class["good"]["auc"]
(0.5, 0.75)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Most points a ROC curve keeps in the JSON report; longer curves are thinned evenly
#: (end points always kept). A curve has at most one point per distinct score, which for
#: a large test set is thousands of near-duplicates nobody reads.
MAX_ROC_POINTS = 201


@dataclass(frozen=True)
class RocCurve:
    """One-vs-rest ROC curve of one class: false and true positive rates by threshold.

    ``thresholds[i]`` is the lowest score counted positive at point ``i``; point 0 is
    (0, 0) with threshold ``+inf``.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


@dataclass(frozen=True)
class ClassificationReport:
    """Everything ``evaluate`` writes for one head. ``to_json()`` gives plain types."""

    labels: tuple[str, ...]
    count: int
    accuracy: float
    confusion: np.ndarray  #: int64 [C, C], rows true, columns predicted
    per_class: dict[str, dict[str, Any]]  #: label -> precision, recall, f1, support, auc
    macro: dict[str, float | None]  #: unweighted means over classes
    roc: dict[str, RocCurve]

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "count": self.count,
            "accuracy": _round(self.accuracy),
            "macro": {k: _round(v) for k, v in self.macro.items()},
            "per_class": {
                label: {k: (_round(v) if isinstance(v, float) else v) for k, v in m.items()}
                for label, m in self.per_class.items()
            },
            "confusion": {"rows": "true", "columns": "predicted",
                          "matrix": self.confusion.tolist()},
            "roc": {label: _curve_json(c) for label, c in self.roc.items()},
        }


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts ``[C, C]``: entry ``[t, p]`` is how many of class ``t`` were predicted ``p``.

    >>> confusion_matrix([0, 1, 2, 2], [0, 2, 2, 2], 3).tolist()
    [[1, 0, 0], [0, 0, 1], [0, 0, 2]]
    """
    t = _indices(y_true, num_classes, "y_true")
    p = _indices(y_pred, num_classes, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries, y_pred {p.size}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    ).astype(np.int64)


def precision_recall_f1(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 from a confusion matrix (0 where undefined).

    >>> p, r, f = precision_recall_f1(np.array([[3, 1], [0, 0]]))
    >>> p.tolist(), r.tolist(), [round(x, 4) for x in f.tolist()]
    ([1.0, 0.0], [0.75, 0.0], [0.8571, 0.0])
    """
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    actual = cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1


def roc_curve(positive: Sequence[bool], scores: Sequence[float]) -> RocCurve:
    """One-vs-rest ROC of ``scores`` for the binary truth ``positive``; ties are one step.

    >>> c = roc_curve([True, True, False, False], [0.9, 0.8, 0.3, 0.1])
    >>> c.fpr.tolist(), c.tpr.tolist(), c.auc
    ([0.0, 0.0, 0.0, 0.5, 1.0], [0.0, 0.5, 1.0, 1.0, 1.0], 1.0)
    >>> roc_curve([True, False], [0.5, 0.5]).auc   # a tie: half credit
    0.5
    >>> roc_curve([True, True], [0.2, 0.7]).auc     # no negatives: undefined
    nan
    """
    pos = np.asarray(positive, dtype=bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if pos.shape != s.shape:
        raise ValueError(f"{pos.size} truth values but {s.size} scores")
    order = np.argsort(-s, kind="stable")
    s, pos = s[order], pos[order]
    # The last index of each run of equal scores: the curve has one point per distinct
    # score, so tied examples move it diagonally together.
    last_of_run = (np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1] if s.size
                   else np.array([], int))
    tps = np.cumsum(pos)[last_of_run] if s.size else np.array([])
    fps = (last_of_run + 1) - tps
    n_pos, n_neg = int(pos.sum()), int(s.size - pos.sum())
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.r_[0.0, np.full(tps.size, np.nan)]
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.r_[0.0, np.full(fps.size, np.nan)]
    thresholds = np.r_[np.inf, s[last_of_run]] if s.size else np.array([np.inf])
    auc = trapezoid_area(fpr, tpr) if n_pos and n_neg else float("nan")
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds, auc=auc)


def trapezoid_area(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the polyline through ``(x, y)`` (x non-decreasing), by trapezoids.

    >>> trapezoid_area(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    0.5
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def classification_report(
    y_true: Sequence[int], probs: np.ndarray, labels: Sequence[str]
) -> ClassificationReport:
    """Score class probabilities ``probs [N, C]`` against true class indices ``y_true``.

    The prediction is the argmax of each row (first class on ties, as ``np.argmax``).

    >>> r = classification_report([0, 1, 2], np.eye(3), ["ear", "nose", "vocal_folds"])
    >>> r.accuracy, r.macro["f1"], r.macro["auc"]
    (1.0, 1.0, 1.0)
    """
    labels = tuple(labels)
    c = len(labels)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != c:
        raise ValueError(f"probs must be [N, {c}] for {c} labels, got shape {p.shape}")
    t = _indices(y_true, c, "y_true")
    if t.size != p.shape[0]:
        raise ValueError(f"{t.size} true labels but {p.shape[0]} rows of probabilities")
    pred = np.argmax(p, axis=1) if p.shape[0] else np.zeros(0, np.int64)
    cm = confusion_matrix(t, pred, c)
    precision, recall, f1 = precision_recall_f1(cm)
    roc = {label: roc_curve(t == k, p[:, k]) for k, label in enumerate(labels)}
    per_class = {
        label: {
            "precision": float(precision[k]),
            "recall": float(recall[k]),
            "f1": float(f1[k]),
            "support": int(cm[k].sum()),
            "auc": roc[label].auc,
        }
        for k, label in enumerate(labels)
    }
    aucs = [a for a in (roc[label].auc for label in labels) if not np.isnan(a)]
    macro = {
        "precision": float(precision.mean()) if c else 0.0,
        "recall": float(recall.mean()) if c else 0.0,
        "f1": float(f1.mean()) if c else 0.0,
        "auc": float(np.mean(aucs)) if aucs else None,
    }
    accuracy = float(np.trace(cm) / t.size) if t.size else 0.0
    return ClassificationReport(labels=labels, count=int(t.size), accuracy=accuracy,
                                confusion=cm, per_class=per_class, macro=macro, roc=roc)


def thin_curve(curve: RocCurve, max_points: int = MAX_ROC_POINTS) -> RocCurve:
    """The same curve with at most ``max_points`` points, end points kept (AUC unchanged).

    >>> c = roc_curve(np.arange(1000) % 2 == 0, np.arange(1000.0))
    >>> len(thin_curve(c, 11).fpr)
    11
    """
    n = len(curve.fpr)
    if n <= max_points:
        return curve
    keep = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    return RocCurve(curve.fpr[keep], curve.tpr[keep], curve.thresholds[keep], curve.auc)


def _indices(values: Sequence[int], num_classes: int, name: str) -> np.ndarray:
    a = np.asarray(values).ravel()
    if a.size == 0:
        return a.astype(np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold class indices (integers), got {a.dtype}")
    if a.min() < 0 or a.max() >= num_classes:
        raise ValueError(f"{name} holds class index {int(a.max())} outside 0..{num_classes - 1}")
    return a.astype(np.int64)


def _round(value: float | None, digits: int = 4) -> float | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return round(float(value), digits)


def _curve_json(curve: RocCurve) -> dict[str, Any]:
    c = thin_curve(curve)
    return {
        "auc": _round(c.auc),
        "fpr": [_round(v) for v in c.fpr.tolist()],
        "tpr": [_round(v) for v in c.tpr.tolist()],
        # +inf is not JSON; the first point's threshold is "nothing counted positive".
        "thresholds": [None if np.isinf(v) else _round(v, 6) for v in c.thresholds.tolist()],
    }
