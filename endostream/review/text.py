"""Text burned into video frames, laid out by the ink OpenCV really draws.

OpenCV's Hershey text changed renderer in 5.0: the same font scale and thickness give other
glyph heights, weights and ``getTextSize`` boxes than 4.x, so a layout computed from the
font's nominal metrics puts text over the edge of its panel under one version or the other.
Here a string is drawn once onto a scratch canvas and cropped to the pixels that were
inked; sizes and centring come from that crop, so the layout is the same under any renderer.
The stamp is then blended into each frame (no ``putText`` per frame).

>>> stamp = text_stamp("Nose", height_px=20)
>>> stamp.alpha.shape[0] == 20 and stamp.alpha.dtype == np.float32
True
>>> 0.0 <= float(stamp.alpha.min()) and float(stamp.alpha.max()) <= 1.0
True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
#: The string whose ink height defines a font's "height": capitals and digits, no
#: descenders, so every label of one size shares one baseline-to-cap distance.
_REFERENCE = "H0"
#: Stroke thickness as a fraction of the cap height (about a regular weight in both
#: renderers).
STROKE_FRACTION = 1 / 11


@dataclass(frozen=True)
class TextStamp:
    """Anti-aliased ink of one string: ``alpha`` in [0, 1], ``[h, w]``.

    ``top_px`` is how far the ink starts above the baseline (the cap height for strings
    without taller glyphs); descenders reach below it.
    """

    alpha: np.ndarray
    top_px: int

    @property
    def width(self) -> int:
        return int(self.alpha.shape[1])

    @property
    def height(self) -> int:
        return int(self.alpha.shape[0])


def _ink(text: str, scale: float, thickness: int) -> tuple[np.ndarray, int]:
    """Draw ``text`` on black and crop to its ink: (coverage uint8, baseline row in crop)."""
    (w, h), base = cv2.getTextSize(text, FONT, scale, thickness)
    margin = 4 * max(h, 4) + 4 * thickness  # generous: a renderer may ink outside its box
    canvas = np.zeros((h + base + 2 * margin, w + 2 * margin), np.uint8)
    origin_y = margin + h
    cv2.putText(canvas, text, (margin, origin_y), FONT, scale, 255, thickness, cv2.LINE_AA)
    rows = np.flatnonzero(canvas.max(axis=1))
    cols = np.flatnonzero(canvas.max(axis=0))
    if not len(rows):  # an empty string or all spaces
        return np.zeros((1, 1), np.uint8), 0
    crop = canvas[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return crop, origin_y - int(rows[0])


@lru_cache(maxsize=32)
def _scale_for(height_px: int) -> tuple[float, int]:
    """Font scale and thickness whose reference ink is ``height_px`` tall."""
    thickness = max(1, int(round(height_px * STROKE_FRACTION)))
    scale = height_px / 22.0  # first guess: Hershey's nominal cap height at scale 1
    for _ in range(4):  # converge on the renderer's real ink height
        ink, _ = _ink(_REFERENCE, scale, thickness)
        scale *= height_px / max(1, ink.shape[0])
    return scale, thickness


@lru_cache(maxsize=256)
def text_stamp(text: str, *, height_px: int) -> TextStamp:
    """The ink of ``text`` at a cap height of ``height_px`` pixels (cached)."""
    scale, thickness = _scale_for(max(4, int(height_px)))
    ink, top = _ink(text, scale, thickness)
    return TextStamp(alpha=(ink.astype(np.float32) / 255.0), top_px=top)


def blend_stamp(rgb: np.ndarray, stamp: TextStamp, x: int, baseline_y: int,
                color: tuple[int, int, int]) -> None:
    """Blend ``stamp`` into ``rgb`` in ``color``, its baseline at ``baseline_y``; clipped."""
    y = baseline_y - stamp.top_px
    h, w = rgb.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w, x + stamp.width), min(h, y + stamp.height)
    if x1 <= x0 or y1 <= y0:
        return
    a = stamp.alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    region = rgb[y0:y1, x0:x1]
    region[:] = (region * (1 - a) + np.asarray(color, np.float32) * a + 0.5).astype(np.uint8)
