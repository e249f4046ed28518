"""PNG plots for ``endostream evaluate``, drawn with matplotlib (the ``review`` extra).

Two figures, white background, readable at a glance:

- :func:`draw_confusion`: a heatmap of the confusion matrix, each cell coloured by the
  share of its *row* (recall per class, so a rare class is as visible as a common one)
  and labelled with its count and that share;
- :func:`draw_roc`: one-vs-rest ROC curves, one colour per class (Okabe–Ito), the chance
  diagonal dashed, a legend with each class' AUC.

The ``draw_*`` functions return RGB arrays so tests and callers can inspect them without
touching the disk; :func:`save_png` writes one atomically. matplotlib is used through its
object-oriented API on the Agg canvas (no pyplot, no global state, no display needed).

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

from endostream.errors import OutputError, UsageError
from endostream.output.atomic import write_bytes_atomic

#: Figure size in pixels (width, height) of the ROC plot; the confusion plot grows with
#: the number of classes from :data:`CELL_PX`.
ROC_SIZE = (760, 640)
#: Side of one confusion-matrix cell in pixels: room for a count and a percentage.
CELL_PX = 110
#: Pixels per inch of the figures (sizes above are in pixels at this resolution).
DPI = 100
#: Distinct, colour-blind friendly line colours (Okabe–Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442",
           "#000000")
INSTALL_HINT = "pip install 'endostream[review]' (matplotlib and jinja2)"


def require_matplotlib():
    """matplotlib's ``Figure`` and the Agg canvas, or a one-line :class:`UsageError`."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise UsageError(f"plots need matplotlib, which is not installed; {INSTALL_HINT}"
                         ) from e
    return Figure, FigureCanvasAgg


def _figure(width_px: int, height_px: int):
    Figure, FigureCanvasAgg = require_matplotlib()
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def _rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def draw_confusion(confusion: np.ndarray, labels: Sequence[str], title: str = "Confusion matrix"
                   ) -> np.ndarray:
    """RGB image of ``confusion [C, C]`` (rows true, columns predicted) as a heatmap."""
    cm = np.asarray(confusion, dtype=np.int64)
    c = len(labels)
    if cm.shape != (c, c):
        raise ValueError(f"confusion must be [{c}, {c}] for {c} labels, got {cm.shape}")
    label_px = 8 * max([len(str(s)) for s in labels] + [5]) + 40
    left, top, bottom, right = label_px + 30, 80, label_px + 20, 30
    fig = _figure(left + c * CELL_PX + right, top + c * CELL_PX + bottom)
    w, h = fig.get_size_inches() * DPI
    ax = fig.add_axes((left / w, bottom / h, c * CELL_PX / w, c * CELL_PX / h))
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
    ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto",
              interpolation="nearest")
    for t in range(c):
        for p in range(c):
            ink = "white" if share[t, p] > 0.55 else "black"
            ax.text(p, t - 0.08, str(int(cm[t, p])), ha="center", va="center", color=ink,
                    fontsize=13, fontweight="bold")
            ax.text(p, t + 0.22, f"{100 * share[t, p]:.0f}%", ha="center", va="center",
                    color=ink, fontsize=9)
    ax.set_xticks(range(c), [str(s) for s in labels], rotation=90)
    ax.set_yticks(range(c), [str(s) for s in labels])
    ax.set_xticks(np.arange(-0.5, c), minor=True)
    ax.set_yticks(np.arange(-0.5, c), minor=True)
    ax.grid(which="minor", color="#999999", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.text(left / w, 1 - 30 / h, title, fontsize=12, fontweight="bold", va="center")
    fig.text(left / w, 1 - 55 / h, "count, % of true class", fontsize=9, color="#777777",
             va="center")
    return _rgb(fig)


def draw_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float | None]],
             title: str = "ROC (one vs rest)") -> np.ndarray:
    """RGB image of ROC curves: ``{label: (fpr, tpr, auc)}``; AUC ``None``/NaN is "n/a"."""
    fig = _figure(*ROC_SIZE)
    ax = fig.add_axes((0.1, 0.1, 0.86, 0.82))
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1)
    for k, (label, (fpr, tpr, auc)) in enumerate(curves.items()):
        x = np.asarray(fpr, dtype=np.float64)
        y = np.asarray(tpr, dtype=np.float64)
        ok = ~(np.isnan(x) | np.isnan(y))
        shown = "n/a" if auc is None or np.isnan(auc) else f"{auc:.3f}"
        # Earlier curves are drawn thicker, so curves that coincide (two perfect
        # classifiers) stay visible as nested stripes.
        width = 1.5 + 1.5 * (len(curves) - 1 - k) if len(curves) <= 4 else 1.5
        ax.plot(x[ok], y[ok], color=PALETTE[k % len(PALETTE)], linewidth=width,
                label=f"{label}  AUC {shown}")
    ax.set_xlim(-0.01, 1.01)  # curves on the axes' edges stay visible
    ax.set_ylim(-0.01, 1.01)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.grid(color="#E1E1E1", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold")
    ax.legend(loc="lower right", frameon=True)
    return _rgb(fig)


def save_png(path: str | os.PathLike, image_rgb: np.ndarray) -> None:
    """Write an RGB image as PNG atomically, or raise :class:`OutputError`."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"cannot encode '{path}' as PNG; this is a bug, please report it")
    write_bytes_atomic(path, data.tobytes(),
                       hint="check that its directory exists and is writable")
