"""PNG plots for ``endostream evaluate``, drawn with OpenCV (matplotlib is no dependency).

Two figures, both white background, black axes, readable at a glance:

- :func:`draw_confusion`: a heatmap of the confusion matrix, each cell coloured by the
  share of its *row* (recall per class, so a rare class is as visible as a common one)
  and labelled with its count and that share;
- :func:`draw_roc`: one-vs-rest ROC curves, one colour per class, the chance diagonal
  dashed, axes ticked 0..1 and a legend with each class' AUC.

``save_png`` writes either image; the ``draw_*`` functions return RGB arrays so tests and
callers can inspect them without touching the disk.

>>> import numpy as np
>>> img = draw_confusion(np.array([[5, 1], [2, 7]]), ["bad", "good"])
>>> img.shape[2], img.dtype.name
(3, 'uint8')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from endostream.errors import OutputError

#: Figure size in pixels (width, height) of the ROC plot; the confusion plot grows with
#: the number of classes from :data:`CELL_PX`.
ROC_SIZE = (760, 640)

#: Side of one confusion-matrix cell in pixels: room for a count and a percentage.
CELL_PX = 110

#: Hershey font and scales; Hershey is the only font OpenCV ships, SIMPLEX the most legible.
FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_SCALE = 0.5
TITLE_SCALE = 0.65

#: Distinct, colour-blind friendly line colours (Okabe–Ito), RGB.
PALETTE = (
    (0, 114, 178), (230, 159, 0), (0, 158, 115), (204, 121, 167),
    (213, 94, 0), (86, 180, 233), (240, 228, 66), (0, 0, 0),
)

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (150, 150, 150)
LIGHT_GREY = (225, 225, 225)


def draw_confusion(confusion: np.ndarray, labels: Sequence[str], title: str = "Confusion matrix"
                   ) -> np.ndarray:
    """RGB image of ``confusion [C, C]`` (rows true, columns predicted) as a heatmap."""
    cm = np.asarray(confusion, dtype=np.int64)
    c = len(labels)
    if cm.shape != (c, c):
        raise ValueError(f"confusion must be [{c}, {c}] for {c} labels, got {cm.shape}")
    label_w = max([_text_size(str(s))[0] for s in labels] + [40]) + 16
    left, top = 40 + label_w, 70
    bottom = 40 + label_w  # column labels are written rotated, so they need label_w
    width = max(left + c * CELL_PX + 30, left + _text_size(title, TITLE_SCALE, 2)[0] + 20)
    height = top + c * CELL_PX + bottom
    img = np.full((height, width, 3), 255, np.uint8)
    _put_text(img, title, (left, 28), TITLE_SCALE, thickness=2)
    _put_text(img, "count, % of true class", (left, 52), TEXT_SCALE, GREY)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    for t in range(c):
        for p in range(c):
            x0, y0 = left + p * CELL_PX, top + t * CELL_PX
            colour = _blues(share[t, p])
            cv2.rectangle(img, (x0, y0), (x0 + CELL_PX, y0 + CELL_PX), colour, -1)
            ink = WHITE if share[t, p] > 0.55 else BLACK
            _put_centered(img, str(int(cm[t, p])), (x0 + CELL_PX // 2, y0 + CELL_PX // 2 - 4),
                          0.7, ink, 2)
            _put_centered(img, f"{100 * share[t, p]:.0f}%",
                          (x0 + CELL_PX // 2, y0 + CELL_PX // 2 + 22), TEXT_SCALE, ink, 1)
    for k in range(c + 1):  # grid
        cv2.line(img, (left + k * CELL_PX, top), (left + k * CELL_PX, top + c * CELL_PX), GREY, 1)
        cv2.line(img, (left, top + k * CELL_PX), (left + c * CELL_PX, top + k * CELL_PX), GREY, 1)
    for k, label in enumerate(labels):
        tw, th = _text_size(str(label))
        _put_text(img, str(label), (left - tw - 8, top + k * CELL_PX + CELL_PX // 2 + th // 2))
        _put_rotated(img, str(label), (left + k * CELL_PX + CELL_PX // 2, top + c * CELL_PX + 8))
    _put_centered(img, "predicted", (left + c * CELL_PX // 2, height - 14), TEXT_SCALE, BLACK, 1)
    _put_rotated(img, "true", (14, top + c * CELL_PX // 2), anchor="center")
    return img


def draw_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float | None]],
             title: str = "ROC (one vs rest)") -> np.ndarray:
    """RGB image of ROC curves: ``{label: (fpr, tpr, auc)}``; AUC ``None``/NaN is "n/a"."""
    width, height = ROC_SIZE
    left, right, top, bottom = 70, 30, 50, 60
    plot_w, plot_h = width - left - right, height - top - bottom
    img = np.full((height, width, 3), 255, np.uint8)

    def to_px(x: float, y: float) -> tuple[int, int]:
        return int(round(left + x * plot_w)), int(round(top + (1.0 - y) * plot_h))

    for k in range(6):  # grid and ticks every 0.2
        v = k / 5
        xg, _ = to_px(v, 0)
        _, yg = to_px(0, v)
        cv2.line(img, (xg, top), (xg, top + plot_h), LIGHT_GREY, 1)
        cv2.line(img, (left, yg), (left + plot_w, yg), LIGHT_GREY, 1)
        cv2.line(img, (xg, top + plot_h), (xg, top + plot_h + 5), BLACK, 1)
        cv2.line(img, (left - 5, yg), (left, yg), BLACK, 1)
        _put_centered(img, f"{v:.1f}", (xg, top + plot_h + 20), TEXT_SCALE, BLACK, 1)
        tw, th = _text_size(f"{v:.1f}")
        _put_text(img, f"{v:.1f}", (left - 10 - tw, yg + th // 2))
    _dashed_line(img, to_px(0, 0), to_px(1, 1), GREY)
    cv2.rectangle(img, (left, top), (left + plot_w, top + plot_h), BLACK, 1)
    legend = []
    for k, (label, (fpr, tpr, auc)) in enumerate(curves.items()):
        colour = PALETTE[k % len(PALETTE)]
        x = np.asarray(fpr, dtype=np.float64)
        y = np.asarray(tpr, dtype=np.float64)
        ok = ~(np.isnan(x) | np.isnan(y))
        if ok.sum() >= 2:
            pts = np.array([to_px(a, b) for a, b in zip(x[ok], y[ok], strict=True)], np.int32)
            # Earlier curves are drawn thicker, so curves that coincide (two perfect
            # classifiers) stay visible as nested stripes.
            width = 2 + 2 * (len(curves) - 1 - k) if len(curves) <= 4 else 2
            cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, colour, width, cv2.LINE_AA)
        shown = "n/a" if auc is None or np.isnan(auc) else f"{auc:.3f}"
        legend.append((f"{label}  AUC {shown}", colour))
    _put_text(img, title, (left, 30), TITLE_SCALE, thickness=2)
    _put_centered(img, "false positive rate", (left + plot_w // 2, height - 14), TEXT_SCALE,
                  BLACK, 1)
    _put_rotated(img, "true positive rate", (16, top + plot_h // 2), anchor="center")
    # Legend bottom-right, inside the plot: ROC curves live in the upper-left half.
    line_h = 22
    box_w = max([_text_size(t)[0] for t, _ in legend] + [60]) + 50
    box_h = line_h * len(legend) + 10
    bx, by = left + plot_w - box_w - 10, top + plot_h - box_h - 10
    cv2.rectangle(img, (bx, by), (bx + box_w, by + box_h), WHITE, -1)
    cv2.rectangle(img, (bx, by), (bx + box_w, by + box_h), GREY, 1)
    for k, (text, colour) in enumerate(legend):
        y = by + 5 + line_h * k + line_h // 2
        cv2.line(img, (bx + 8, y), (bx + 36, y), colour, 3)
        _put_text(img, text, (bx + 44, y + 5))
    return img


def save_png(path: str | os.PathLike, image_rgb: np.ndarray) -> None:
    """Write an RGB image as PNG, or raise :class:`OutputError` saying what to do."""
    ok = False
    try:
        ok = cv2.imwrite(os.fspath(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    except cv2.error:
        ok = False
    if not ok:
        raise OutputError(f"cannot write '{path}'; check that its directory exists and is writable")


def _blues(share: float) -> tuple[int, int, int]:
    """White → dark blue as ``share`` goes 0 → 1 (RGB)."""
    lo, hi = np.array([247, 251, 255.0]), np.array([8, 48, 107.0])
    return tuple(int(v) for v in lo + (hi - lo) * float(np.clip(share, 0, 1)))


def _text_size(text: str, scale: float = TEXT_SCALE, thickness: int = 1) -> tuple[int, int]:
    (w, h), _ = cv2.getTextSize(text, FONT, scale, thickness)
    return w, h


def _put_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = TEXT_SCALE,
              colour: tuple[int, int, int] = BLACK, thickness: int = 1) -> None:
    cv2.putText(img, text, org, FONT, scale, colour, thickness, cv2.LINE_AA)


def _put_centered(img: np.ndarray, text: str, centre: tuple[int, int], scale: float,
                  colour: tuple[int, int, int], thickness: int) -> None:
    w, h = _text_size(text, scale, thickness)
    _put_text(img, text, (centre[0] - w // 2, centre[1] + h // 2), scale, colour, thickness)


def _put_rotated(img: np.ndarray, text: str, at: tuple[int, int], anchor: str = "top") -> None:
    """Text rotated 90° counter-clockwise (reads bottom to top), centred on ``at[0]``.

    ``anchor="top"`` puts the text's end at ``at[1]`` going down; ``"center"`` centres it.
    """
    w, h = _text_size(text)
    pad = 4
    patch = np.full((h + 2 * pad, w + 2 * pad, 3), 255, np.uint8)
    _put_text(patch, text, (pad, pad + h))
    patch = np.ascontiguousarray(np.rot90(patch))  # counter-clockwise
    ph, pw = patch.shape[:2]
    x0 = at[0] - pw // 2
    y0 = at[1] if anchor == "top" else at[1] - ph // 2
    x0, y0 = max(x0, 0), max(y0, 0)
    y1, x1 = min(y0 + ph, img.shape[0]), min(x0 + pw, img.shape[1])
    region = img[y0:y1, x0:x1]
    # Darkest-wins blend keeps the background (grid lines, cells) under the text.
    np.minimum(region, patch[: y1 - y0, : x1 - x0], out=region)


def _dashed_line(img: np.ndarray, p0: tuple[int, int], p1: tuple[int, int],
                 colour: tuple[int, int, int], dash: int = 8) -> None:
    length = float(np.hypot(p1[0] - p0[0], p1[1] - p0[1]))
    n = max(int(length // dash), 1)
    for k in range(0, n, 2):
        a, b = k / n, min((k + 1) / n, 1.0)
        q0 = (int(p0[0] + (p1[0] - p0[0]) * a), int(p0[1] + (p1[1] - p0[1]) * a))
        q1 = (int(p0[0] + (p1[0] - p0[0]) * b), int(p0[1] + (p1[1] - p0[1]) * b))
        cv2.line(img, q0, q1, colour, 1, cv2.LINE_AA)
