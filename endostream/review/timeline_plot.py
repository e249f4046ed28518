"""The procedure at a glance: sections as coloured bands on a time axis (matplotlib).

The bands use the live timeline's palette (:mod:`endostream.output.palette`); unusable
stretches are grey and hatched. With the per-frame table (``segment --csv``) two panels
follow underneath: each organ's probability and the probability of good quality, with the
unusable stretches hatched across them too. A white background, so it prints. A legend
above the band names every colour and the hatched ``unusable``; the time axis is ticked
at steps a reader counts in (:data:`TICK_STEPS_S`: 2 s, 1 min, 10 min ...) with exact labels.

:func:`draw_timeline` returns the encoded picture and a :class:`TimelineGeometry` that
says where time ``t`` lands in a PNG (the tests check colours at those pixels).

>>> png, geometry = draw_timeline(procedure, fmt="png")  # doctest: +SKIP
>>> geometry.x_of(12.5), geometry.band_mid_y  # doctest: +SKIP
(431.2, 38.0)
"""

from __future__ import annotations

import io
import math
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
from endostream.output.table import format_clock
from endostream.procedure import FrameTable, Procedure
from endostream.segmentation.section import UNUSABLE

#: Picture width in inches and its resolution: 1200 px wide at 120 dpi.
WIDTH_IN = 10.0
DPI = 120
#: Heights in inches: the band panel, each panel under it, and the margins.
BAND_IN = 0.75
PANEL_IN = 1.3
TOP_IN, BOTTOM_IN = 0.34, 0.45
LEFT_IN, RIGHT_IN = 0.9, 0.25
#: Hatching of unusable stretches (matplotlib hatch pattern) and its colour.
HATCH = "///"
HATCH_COLOR = "#3A3D42"
#: Tick steps a reader counts in without effort: whole seconds, minutes and hours that
#: divide the next unit (and tenths for clips of a few seconds).
TICK_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
                3600, 7200, 10800, 21600, 43200)
#: At most this many tick labels per inch of axis (an "0:00:00" label at 8 pt is ~0.5 in).
TICKS_PER_IN = 1.0


def tick_step_s(duration_s: float, max_ticks: int) -> float:
    """The smallest step of :data:`TICK_STEPS_S` that puts at most ``max_ticks`` intervals
    on ``duration_s``.

    >>> tick_step_s(20, 10), tick_step_s(600, 10), tick_step_s(3600, 10), tick_step_s(39, 4)
    (2, 60, 600, 10)
    """
    for step in TICK_STEPS_S:
        if duration_s / step <= max(max_ticks, 1):
            return step
    return TICK_STEPS_S[-1] * math.ceil(duration_s / max(max_ticks, 1) / TICK_STEPS_S[-1])


def tick_label(t_s: float, step_s: float) -> str:
    """The time ``t_s`` (a multiple of ``step_s``) written exactly: ``m:ss``, ``h:mm:ss``
    from an hour on, tenths when the step is under a second.

    >>> tick_label(125, 5), tick_label(3600, 600), tick_label(1.5, 0.5)
    ('2:05', '1:00:00', '0:01.5')
    """
    return format_clock(t_s) if step_s < 1 else format_duration(t_s)


def timeline_ticks(duration_s: float, max_ticks: int) -> list[tuple[float, str]]:
    """Ticks from 0 to ``duration_s`` at a :func:`tick_step_s` step, with their labels.

    >>> [label for _, label in timeline_ticks(20, 10)]
    ['0:00', '0:02', '0:04', '0:06', '0:08', '0:10', '0:12', '0:14', '0:16', '0:18', '0:20']
    """
    step = tick_step_s(duration_s, max_ticks)
    count = int(math.floor(duration_s / step + 1e-9))
    # Multiples of the step computed from integers, so 0.1-steps do not drift.
    return [(round(k * step, 3), tick_label(round(k * step, 3), step)) for k in range(count + 1)]
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
    #: The time axis' ticks as drawn: (seconds, label), read back from the figure.
    ticks: tuple[tuple[float, str], ...] = ()
    #: The legend's entries as drawn, read back from the figure.
    legend: tuple[str, ...] = ()

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
    duration = max(procedure.document.duration_s, 1e-3)
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
    max_ticks = int((width_in - LEFT_IN - RIGHT_IN) * TICKS_PER_IN)
    ticks = timeline_ticks(duration, max_ticks)
    axes[-1].set_xticks([t for t, _ in ticks], [label for _, label in ticks])
    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("time (h:mm:ss)" if duration >= 3600 else "time (m:ss)", fontsize=8)
    legend = _draw_legend(band, procedure)
    fig.canvas.draw()
    box = band.get_window_extent()
    width_px, height_px = fig.canvas.get_width_height()
    drawn_ticks = tuple((float(pos), text.get_text()) for pos, text in
                        zip(axes[-1].get_xticks(), axes[-1].get_xticklabels(), strict=True))
    geometry = TimelineGeometry(width_px=width_px, height_px=height_px, x0_px=float(box.x0),
                                x1_px=float(box.x1), duration_s=duration,
                                band_top_px=float(height_px - box.y1),
                                band_bottom_px=float(height_px - box.y0),
                                ticks=drawn_ticks,
                                legend=tuple(t.get_text() for t in legend.get_texts()))
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
        color = label_hex(s.label, procedure.document.organ_labels)
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


def _draw_legend(ax, procedure: Procedure):
    """Every organ's colour and the hatched grey of ``unusable``, above the band: the
    picture is read on its own (a slide, a printout) without the report's legend."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=label_hex(label, procedure.document.organ_labels), edgecolor="white",
                     label=display_label(label)) for label in procedure.document.organ_labels]
    handles.append(Patch(facecolor=UNUSABLE_COLOR, edgecolor="white", hatch=HATCH,
                         label=display_label(UNUSABLE)))
    return ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.02),
                     ncol=len(handles), fontsize=7, frameon=False, borderaxespad=0.0,
                     handlelength=2.2, handleheight=1.1, columnspacing=1.4)


def _hatch_unusable(ax, procedure: Procedure) -> None:
    for s in procedure.sections:
        if s.label == UNUSABLE:
            ax.axvspan(s.start_s, s.end_s, facecolor="none", edgecolor=UNUSABLE_COLOR,
                       linewidth=0, hatch=HATCH, alpha=0.6)


def _draw_organs(ax, procedure: Procedure, frames: FrameTable) -> None:
    for i, label in enumerate(frames.organ_labels):
        color = label_hex(label, procedure.document.organ_labels)
        ax.plot(frames.pts_s, frames.organ[:, i], color=color, linewidth=1.2,
                label=display_label(label))
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
