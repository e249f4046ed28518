"""The timeline under the video: sections by colour, growing as the procedure goes on.

Committed sections (final) are solid; the tentative tail (may still change) is drawn
lighter with a dashed edge; unusable stretches are grey and hatched, so they read as
"nothing to see" even in greyscale print-outs. A white playhead marks the newest captured
frame. The time axis shows at least :data:`MIN_SPAN_S` and compresses as the session
grows past it, so the whole procedure is always in view.

>>> tl = TimelineWidget(["ear", "nose", "vocal_folds"])  # doctest: +SKIP
>>> tl.set_sections(snapshot.committed, snapshot.tentative)  # doctest: +SKIP
>>> tl.set_now(42.0)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from PyQt5.QtCore import QPointF, QRectF, QSize, Qt
from PyQt5.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPen, QPolygonF
from PyQt5.QtWidgets import QSizePolicy, QWidget

from endostream.gui import palette
from endostream.output.palette import BAR_EMPTY, HATCH
from endostream.output.progress import format_duration
from endostream.segmentation.section import UNUSABLE, Section

#: Shortest span the axis shows (seconds): the bar fills from the left during the first
#: minute instead of one second filling the whole width.
MIN_SPAN_S = 60.0
#: Candidate tick steps (seconds); the smallest giving at most :data:`MAX_TICKS` is used.
TICK_STEPS_S = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
MAX_TICKS = 10
#: Geometry in pixels.
BAR_HEIGHT = 34
AXIS_HEIGHT = 18
MARGIN = 10


class TimelineWidget(QWidget):
    """Paints committed and tentative sections, the time axis and the playhead."""

    def __init__(self, organ_labels: Sequence[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.organ_labels = list(organ_labels)
        self.committed: list[Section] = []
        self.tentative: list[Section] = []
        self.now_s = 0.0
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setFixedHeight(BAR_HEIGHT + AXIS_HEIGHT + 2 * MARGIN)

    def sizeHint(self) -> QSize:
        return QSize(960, self.height())

    def set_sections(self, committed: Sequence[Section], tentative: Sequence[Section] = ()) -> None:
        self.committed, self.tentative = list(committed), list(tentative)
        if self.tentative or self.committed:
            self.now_s = max(self.now_s, (self.tentative or self.committed)[-1].end_s)
        self.update()

    def set_now(self, now_s: float) -> None:
        """Move the playhead to the newest captured frame's time."""
        self.now_s = max(0.0, float(now_s))
        self.update()

    def clear(self) -> None:
        self.committed, self.tentative, self.now_s = [], [], 0.0
        self.update()

    @property
    def span_s(self) -> float:
        return max(MIN_SPAN_S, self.now_s)

    def x_of(self, t_s: float) -> float:
        """Widget x coordinate of time ``t_s``."""
        width = self.width() - 2 * MARGIN
        return MARGIN + width * min(max(t_s, 0.0), self.span_s) / self.span_s

    # -- painting -------------------------------------------------------------------------

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.fillRect(self.rect(), QColor(palette.BACKGROUND))
        bar = QRectF(MARGIN, MARGIN, self.width() - 2 * MARGIN, BAR_HEIGHT)
        p.fillRect(bar, QColor(BAR_EMPTY))
        font = QFont(self.font())
        font.setPixelSize(12)
        font.setWeight(QFont.DemiBold)
        p.setFont(font)
        for s in self.committed:
            self._paint_section(p, bar, s, tentative=False)
        for s in self.tentative:
            self._paint_section(p, bar, s, tentative=True)
        self._paint_axis(p, bar)
        self._paint_playhead(p, bar)
        p.end()

    def _paint_section(self, p: QPainter, bar: QRectF, s: Section, *, tentative: bool) -> None:
        x0, x1 = self.x_of(s.start_s), self.x_of(s.end_s)
        if x1 - x0 < 0.5:
            return
        rect = QRectF(x0, bar.top(), x1 - x0, bar.height())
        color = palette.label_color(s.label, self.organ_labels)
        fill = QColor(color)
        if tentative:
            fill.setAlphaF(0.45)
        p.fillRect(rect, fill)
        if s.label == UNUSABLE:
            hatch = QBrush(QColor(HATCH), Qt.BDiagPattern)
            p.fillRect(rect, hatch)
        if tentative:
            pen = QPen(color, 1.2, Qt.DashLine)
            p.setPen(pen)
            p.setBrush(Qt.NoBrush)
            p.drawRect(rect.adjusted(0.6, 0.6, -0.6, -0.6))
        # Thin dark separators make neighbouring sections of similar colour distinct.
        p.setPen(QPen(QColor(palette.BACKGROUND), 1.0))
        p.drawLine(QPointF(x0, bar.top()), QPointF(x0, bar.bottom()))
        text = palette.display_label(s.label)
        fm = QFontMetricsF(p.font())
        if fm.horizontalAdvance(text) + 10 <= rect.width():
            p.setPen(palette.text_color_on(color) if not tentative else QColor(palette.TEXT))
            p.drawText(rect.adjusted(5, 0, -3, 0), Qt.AlignVCenter | Qt.AlignLeft, text)

    def _paint_axis(self, p: QPainter, bar: QRectF) -> None:
        span = self.span_s
        step = next((s for s in TICK_STEPS_S if span / s <= MAX_TICKS), TICK_STEPS_S[-1])
        font = QFont(self.font())
        font.setPixelSize(11)
        p.setFont(font)
        fm = QFontMetricsF(font)
        p.setPen(QColor(palette.TEXT_DIM))
        t = 0.0
        while t <= span + 1e-6:
            x = self.x_of(t)
            p.drawLine(QPointF(x, bar.bottom() + 1), QPointF(x, bar.bottom() + 5))
            text = format_duration(t)
            w = fm.horizontalAdvance(text)
            tx = min(max(x - w / 2, 0.0), self.width() - w)
            p.drawText(QPointF(tx, bar.bottom() + 5 + fm.ascent()), text)
            t += step

    def _paint_playhead(self, p: QPainter, bar: QRectF) -> None:
        if self.now_s <= 0:
            return
        x = self.x_of(self.now_s)
        p.setPen(QPen(QColor("#FFFFFF"), 2.0))
        p.drawLine(QPointF(x, bar.top() - 4), QPointF(x, bar.bottom() + 2))
        p.setBrush(QColor("#FFFFFF"))
        p.setPen(Qt.NoPen)
        p.drawPolygon(QPolygonF([QPointF(x - 5, bar.top() - 8), QPointF(x + 5, bar.top() - 8),
                                 QPointF(x, bar.top() - 2)]))
