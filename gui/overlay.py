"""The video with the current organ, its probability and an image-quality badge on it.

:class:`VideoWidget` paints the newest display frame scaled to fit (letterboxed, aspect
kept) and, in the top-left corner of the picture, one compact panel: a colour chip of the
organ (the timeline's colour), the organ and its probability in large type, and a badge
for image quality — ``Nose 0.99 · good``. The badge is green for good, amber for a poor
image; the whole panel dims when no label has arrived for :data:`STALE_AFTER_S` (inference
stalled), so an old label is never mistaken for a current one.

>>> video = VideoWidget(["ear", "nose", "vocal_folds"])  # doctest: +SKIP
>>> video.show_frame(rgb)                      # uint8 [H, W, 3]  # doctest: +SKIP
>>> video.show_label("nose", 0.99, True)  # doctest: +SKIP
>>> video.overlay_text()  # doctest: +SKIP
'Nose 0.99 · good'
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from PyQt5.QtCore import QRectF, QSize, Qt
from PyQt5.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPainterPath
from PyQt5.QtWidgets import QSizePolicy, QWidget

from endostream.gui import palette
from endostream.segmentation.section import UNUSABLE

#: Seconds without a new label after which the label panel dims and says so.
STALE_AFTER_S = 2.0
#: Label type size as a fraction of the picture height (bounded below for small windows).
LABEL_SIZE_FRACTION = 0.045
MIN_LABEL_PX = 16.0


class VideoWidget(QWidget):
    """Paints the newest frame and the label panel; all methods are for the GUI thread."""

    def __init__(self, organ_labels: Sequence[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.organ_labels = list(organ_labels)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setAttribute(Qt.WA_OpaquePaintEvent)
        self.setFocusPolicy(Qt.StrongFocus)
        self._image: QImage | None = None
        self._array: np.ndarray | None = None  # keeps the QImage's pixels alive
        self._label: str | None = None
        self._prob = 0.0
        self._good: bool | None = None
        self._label_time = 0.0
        self._placeholder = ("No source. Choose a camera or open a file (Ctrl+O), "
                             "then Start (Space).")
        self._footer = ""
        self.frames_painted = 0

    def sizeHint(self) -> QSize:
        return QSize(960, 540)

    def minimumSizeHint(self) -> QSize:
        return QSize(320, 180)

    # -- content --------------------------------------------------------------------------

    def show_frame(self, rgb: np.ndarray) -> None:
        """Show a uint8 RGB frame ``[H, W, 3]`` (kept by reference, not copied)."""
        rgb = np.ascontiguousarray(rgb)
        h, w = rgb.shape[:2]
        self._array = rgb
        self._image = QImage(rgb.data, w, h, rgb.strides[0], QImage.Format_RGB888)
        self.update()

    def show_label(self, label: str | None, prob: float, quality_good: bool | None) -> None:
        """The current organ (or ``unusable``), its probability and the quality flag."""
        self._label, self._prob, self._good = label, float(prob), quality_good
        self._label_time = time.monotonic()
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        """Forget frame and label (a new source); show ``placeholder`` until a frame comes."""
        self._image = self._array = None
        self._label, self._good = None, None
        if placeholder is not None:
            self._placeholder = placeholder
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def set_footer(self, text: str) -> None:
        """A small line at the bottom-left of the picture (e.g. the elapsed time)."""
        self._footer = text
        self.update()

    def overlay_text(self) -> str:
        """The label panel as text, e.g. ``'Nose 0.99 · good'`` (empty before a label)."""
        if self._label is None:
            return ""
        return f"{palette.display_label(self._label)} {self._prob:.2f} · {self._quality_text()}"

    @property
    def stale(self) -> bool:
        return self._label is not None and time.monotonic() - self._label_time > STALE_AFTER_S

    def _quality_text(self) -> str:
        if self.stale:
            return "no recent label"
        return {True: "good", False: "poor image", None: "quality ?"}[self._good]

    # -- painting -------------------------------------------------------------------------

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.setRenderHint(QPainter.SmoothPixmapTransform)
        p.fillRect(self.rect(), QColor(palette.BACKGROUND))
        if self._image is None:
            p.setPen(QColor(palette.TEXT_DIM))
            font = QFont(self.font())
            font.setPointSizeF(max(11.0, self.height() / 40))
            p.setFont(font)
            p.drawText(QRectF(self.rect()).adjusted(24, 24, -24, -24),
                       Qt.AlignCenter | Qt.TextWordWrap, self._placeholder)
            p.end()
            return
        target = self._fit(self._image.width(), self._image.height())
        p.drawImage(target, self._image)
        self.frames_painted += 1
        if self._label is not None:
            self._paint_panel(p, target)
        if self._footer:
            self._paint_footer(p, target)
        p.end()

    def _fit(self, w: int, h: int) -> QRectF:
        scale = min(self.width() / w, self.height() / h)
        tw, th = w * scale, h * scale
        return QRectF((self.width() - tw) / 2, (self.height() - th) / 2, tw, th)

    def _paint_panel(self, p: QPainter, picture: QRectF) -> None:
        px = max(MIN_LABEL_PX, picture.height() * LABEL_SIZE_FRACTION)
        pad = px * 0.55
        big = QFont(self.font())
        big.setPixelSize(int(px))
        big.setWeight(QFont.DemiBold)
        small = QFont(self.font())
        small.setPixelSize(int(px * 0.62))
        small.setWeight(QFont.DemiBold)
        fm_big, fm_small = QFontMetricsF(big), QFontMetricsF(small)

        stale = self.stale
        name = palette.display_label(self._label)
        prob = f"{self._prob:.2f}"
        badge = self._quality_text()
        chip = px * 0.5
        gap = px * 0.4
        name_w = fm_big.horizontalAdvance(name)
        prob_w = fm_big.horizontalAdvance(prob)
        badge_w = fm_small.horizontalAdvance(badge) + px * 0.8
        height = px * 1.25 + 2 * pad * 0.6
        width = pad + chip + gap + name_w + gap * 0.8 + prob_w + gap * 1.2 + badge_w + pad
        x0, y0 = picture.left() + px * 0.6, picture.top() + px * 0.6
        panel = QRectF(x0, y0, width, height)

        p.save()
        if stale:
            p.setOpacity(0.55)
        path = QPainterPath()
        path.addRoundedRect(panel, height * 0.22, height * 0.22)
        p.fillPath(path, palette.PANEL)
        cy = panel.center().y()
        x = x0 + pad
        color = palette.label_color(self._label, self.organ_labels)
        if self._label == UNUSABLE:
            p.setBrush(color)
            p.setPen(Qt.NoPen)
            p.drawEllipse(QRectF(x, cy - chip / 2, chip, chip))
        else:
            p.setBrush(color)
            p.setPen(Qt.NoPen)
            p.drawRoundedRect(QRectF(x, cy - chip / 2, chip, chip), chip * 0.2, chip * 0.2)
        x += chip + gap
        p.setFont(big)
        p.setPen(QColor(palette.TEXT))
        text_box = QRectF(x, panel.top(), name_w + 2, panel.height())
        p.drawText(text_box, Qt.AlignVCenter | Qt.AlignLeft, name)
        x += name_w + gap * 0.8
        p.setPen(QColor(palette.TEXT_DIM))
        p.drawText(QRectF(x, panel.top(), prob_w + 2, panel.height()),
                   Qt.AlignVCenter | Qt.AlignLeft, prob)
        x += prob_w + gap * 1.2
        if stale or self._good is None:
            bg = QColor(palette.UNKNOWN_COLOR)
        else:
            bg = QColor(palette.GOOD_COLOR if self._good else palette.POOR_COLOR)
        badge_h = px * 0.95
        badge_rect = QRectF(x, cy - badge_h / 2, badge_w, badge_h)
        p.setBrush(bg)
        p.drawRoundedRect(badge_rect, badge_h / 2, badge_h / 2)
        p.setFont(small)
        p.setPen(palette.text_color_on(bg))
        p.drawText(badge_rect, Qt.AlignCenter, badge)
        p.restore()

    def _paint_footer(self, p: QPainter, picture: QRectF) -> None:
        px = max(11.0, picture.height() * 0.024)
        font = QFont(self.font())
        font.setPixelSize(int(px))
        p.setFont(font)
        fm = QFontMetricsF(font)
        w = fm.horizontalAdvance(self._footer) + px
        box = QRectF(picture.left() + px * 0.8, picture.bottom() - px * 2.2, w, px * 1.5)
        path = QPainterPath()
        path.addRoundedRect(box, px * 0.3, px * 0.3)
        p.fillPath(path, palette.PANEL)
        p.setPen(QColor(palette.TEXT_DIM))
        p.drawText(box, Qt.AlignCenter, self._footer)
