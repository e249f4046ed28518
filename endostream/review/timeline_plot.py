"""The procedure at a glance: sections as coloured bands on a time axis (matplotlib).

The bands use the live timeline's palette (:mod:`endostream.output.palette`); unusable
stretches are grey and hatched. With the per-frame table (``segment --csv``) two panels
follow underneath: each organ's probability and the probability of good quality, with the
unusable stretches hatched across them too. A white background, so it prints.

:func:`draw_timeline` returns the encoded picture and a :class:`TimelineGeometry` that
says where time ``t`` lands in a PNG (the tests check colours at those pixels).

>>> png, geometry = draw_timeline(procedure, fmt="png")  # doctest: +SKIP
>>> geometry.x_of(12.5), geometry.band_mid_y  # doctest: +SKIP
(431.2, 38.0)
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from endostream.evaluation.plots import require_matplotlib
from endostream.output.palette import (
    GOOD_COLOR,
    UNUSABLE_COLOR,
    display_label,
    label_hex,
    text_hex_on,
)
from endostream.output.progress import format_duration
from endostream.review.procedure import FrameTable, Procedure
from endostream.segmentation.section import UNUSABLE

#: Picture width in inches and its resolution: 1200 px wide at 120 dpi.
WIDTH_IN = 10.0
DPI = 120
#: Heights in inches: the band panel, each panel under it, and the margins.
BAND_IN = 0.75
PANEL_IN = 1.3
TOP_IN, BOTTOM_IN = 0.12, 0.45
LEFT_IN, RIGHT_IN = 0.9, 0.25
#: Hatching of unusable stretches (matplotlib hatch pattern) and its colour.
HATCH = "///"
HATCH_COLOR = "#3A3D42"
@dataclass(frozen=True)
class TimelineGeometry:
    """Where things are in the PNG, in pixels from its top-left corner."""

    width_px: int
    height_px: int
    x0_px: float  #: time 0
    x1_px: float  #: the end of the procedure
    duration_s: float
    band_top_px: float
    band_bottom_px: float

    def x_of(self, t_s: float) -> float:
        return self.x0_px + (self.x1_px - self.x0_px) * t_s / self.duration_s

    @property
    def band_mid_y(self) -> float:
        return (self.band_top_px + self.band_bottom_px) / 2


def draw_timeline(procedure: Procedure, frames: FrameTable | None = None, *,
                  fmt: str = "png", width_in: float = WIDTH_IN,
                  dpi: int = DPI) -> tuple[bytes, TimelineGeometry]:
    """The timeline as ``png`` or ``svg`` bytes, and where its band lies."""
    Figure, FigureCanvasAgg = require_matplotlib()
    import matplotlib

    # Local settings only: the process's matplotlib defaults stay as they were.
    with matplotlib.rc_context({"hatch.color": HATCH_COLOR, "hatch.linewidth": 1.2,
                                "svg.hashsalt": "endostream"}):
        return _draw(Figure, FigureCanvasAgg, procedure, frames, fmt, width_in, dpi)


def _draw(Figure, FigureCanvasAgg, procedure, frames, fmt, width_in, dpi):  # noqa: N803
    duration = max(procedure.duration_s, 1e-3)
    panels = 2 if frames is not None and len(frames) else 0
    height_in = TOP_IN + BAND_IN + panels * (PANEL_IN + 0.15) + BOTTOM_IN
    fig = Figure(figsize=(width_in, height_in), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    heights = [BAND_IN] + [PANEL_IN] * panels
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights, hspace=0.15,
                            left=LEFT_IN / width_in, right=1 - RIGHT_IN / width_in,
                            top=1 - TOP_IN / height_in, bottom=BOTTOM_IN / height_in)
    band = fig.add_subplot(grid[0])
    axes = [band] + [fig.add_subplot(grid[i], sharex=band) for i in range(1, len(heights))]
    _draw_band(band, procedure, width_in - LEFT_IN - RIGHT_IN, duration)
    if panels:
        _draw_organs(axes[1], procedure, frames)
        _draw_quality(axes[2], frames)
        for ax in axes[1:]:
            _hatch_unusable(ax, procedure)
    for ax in axes:
        ax.set_xlim(0, duration)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(labelbottom=ax is axes[-1], labelsize=8)
    ticks = axes[-1].get_xticks()
    axes[-1].set_xticks(ticks)
    axes[-1].set_xticklabels([format_duration(t) for t in ticks])
    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("time (m:ss)", fontsize=8)
    fig.canvas.draw()
    box = band.get_window_extent()
    width_px, height_px = fig.canvas.get_width_height()
    geometry = TimelineGeometry(width_px=width_px, height_px=height_px, x0_px=float(box.x0),
                                x1_px=float(box.x1), duration_s=duration,
                                band_top_px=float(height_px - box.y1),
                                band_bottom_px=float(height_px - box.y0))
    out = io.BytesIO()
    # Metadata off: no creation date or software tag in the picture.
    metadata = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    fig.savefig(out, format=fmt, dpi=dpi, facecolor="white", metadata=metadata)
    return out.getvalue(), geometry


def _draw_band(ax, procedure: Procedure, width_in: float, duration: float) -> None:
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.set_facecolor("#F2F3F5")
    for s in procedure.sections:
        color = label_hex(s.label, procedure.organ_labels)
        unusable = s.label == UNUSABLE
        ax.axvspan(s.start_s, s.end_s, 0, 1, facecolor=color, edgecolor="white",
                   linewidth=0.8, hatch=HATCH if unusable else None)
        text = display_label(s.label)
        span_in = (s.end_s - s.start_s) / duration * width_in
        if span_in > 0.09 * len(text) + 0.1:  # room for the label (8 pt is ~0.08 in/char)
            ax.text((s.start_s + s.end_s) / 2, 0.5, text, ha="center", va="center",
                    fontsize=8, fontweight="bold", color=text_hex_on(color),
                    bbox=dict(facecolor=UNUSABLE_COLOR, edgecolor="none", pad=1.0)
                    if unusable else None, clip_on=True)


def _hatch_unusable(ax, procedure: Procedure) -> None:
    for s in procedure.sections:
        if s.label == UNUSABLE:
            ax.axvspan(s.start_s, s.end_s, facecolor="none", edgecolor=UNUSABLE_COLOR,
                       linewidth=0, hatch=HATCH, alpha=0.6)


def _draw_organs(ax, procedure: Procedure, frames: FrameTable) -> None:
    for i, label in enumerate(frames.organ_labels):
        ax.plot(frames.pts_s, frames.organ[:, i], color=label_hex(label, procedure.organ_labels),
                linewidth=1.2, label=display_label(label))
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("organ p", fontsize=8)
    if frames.organ_labels:
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 0.98), fontsize=7, frameon=False,
                  ncol=len(frames.organ_labels), borderaxespad=0.0)


def _draw_quality(ax, frames: FrameTable) -> None:
    good = np.asarray(frames.good, float)
    ax.fill_between(frames.pts_s, 0, np.nan_to_num(good), color=GOOD_COLOR, alpha=0.35,
                    linewidth=0)
    ax.plot(frames.pts_s, good, color=GOOD_COLOR, linewidth=1.0)
    ax.axhline(0.5, color="#888888", linewidth=0.6, linestyle=":")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("p(good)", fontsize=8)
