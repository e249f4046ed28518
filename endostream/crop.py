"""Content area ("black border") detection, the caching cropper, and :func:`preprocess`.

Endoscope images are a bright disc or rounded rectangle inside a black mask, and every
scope draws a different mask. A model trained on uncropped images learns the mask instead
of the organ, so every frame is cropped to its content area before it is resized to the
model input. :func:`preprocess` is THE crop+resize: runtime, training and export parity
checks all call it, so they all see the same pixels.

Detection (:func:`find_content_area`) works on a ~160 px wide grey copy of the frame
(brightest channel, so dark-red tissue counts as content). The black level and contrast
come from a blurred copy; the mask is the copy thresholded a little above the black
level, with small gaps closed. The largest region's convex hull is the candidate (masks
are convex; dark tissue at their edge is not). It is a mask only if what lies outside is
flat black (no bright strays, no texture or gradient: a night sky is dark, not a mask).
Then:

- ``"circle"``: the region fills its enclosing circle (also when the frame edge clips the
  disc); the crop box is the circle's bounding square clipped to the frame;
- ``"rect"``: anything else with a black border; the crop box is the region's bounding box;
- ``"full"``: no black border (the region spans the frame, or what looks dark outside it is
  scene, not mask), or a frame that says nothing (all black, uniform): the whole frame.

:class:`ContentCropper` caches the area per source and re-checks it every
:data:`RECHECK_INTERVAL_S` of video time; a changed area is taken only when two consecutive
checks agree, so a few dark frames cannot collapse the crop.

>>> import numpy as np, cv2
>>> img = np.zeros((480, 640, 3), np.uint8)
>>> _ = cv2.circle(img, (320, 240), 200, (180, 120, 110), -1)
>>> area = find_content_area(img)
>>> area.shape, area.box                    # the disc spans x 120..520, y 40..440
('circle', (118, 38, 404, 404))
>>> preprocess(img, area).shape
(224, 224, 3)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from endostream.frames import MODEL_INPUT_SIZE

log = logging.getLogger(__name__)

#: Width of the grey copy the detector works on. The mask edge is a large structure, so
#: 160 px is plenty and keeps a detection at ~1 ms for any input size.
ANALYSIS_WIDTH = 160

#: Black level = this percentile of the blurred grey copy (robust to a few 0-valued pixels).
DARK_PERCENTILE = 2.0
#: Content level = this percentile; with the black level it gives the frame's contrast.
BRIGHT_PERCENTILE = 99.0
#: Below this contrast (0-255 scale) the frame says nothing: all black, blank, fade.
MIN_CONTRAST = 20.0
#: A black level above this means the frame has no black at all, hence no border. Real masks
#: sit at 0-20 (some camera heads lift black to ~17); a night sky sits at 50+.
MAX_BORDER_LEVEL = 45.0
#: A mask is flat: the 90th percentile of what lies outside the region (away from its edge)
#: may exceed the black level by at most this much. Measured: the masks in shared/data 0-2
#: (JPEG, H.264), synthetic masks with noise sigma 30: 6; the night sky of city_cc0.mpg 9+.
MAX_BORDER_SPREAD = 8.0
#: The threshold sits this fraction of the contrast above the black level ...
THRESHOLD_FRACTION = 0.2
#: ... but at least this far above it (JPEG/compression noise on the mask) ...
MIN_THRESHOLD_MARGIN = 10.0
#: ... and at most this far, so dim content near the mask edge is kept.
MAX_THRESHOLD_MARGIN = 40.0
#: The largest bright region must cover this share of the frame to be the content area.
MIN_REGION_FRACTION = 0.02
#: If more than this share of the area outside the region is bright too, the dark parts are
#: scene (shadows), not a mask: no border.
MAX_STRAY_FRACTION = 0.08
#: A region that fills at least this share of its enclosing circle (clipped to the frame)
#: is a disc.
CIRCLE_FILL = 0.90
#: A crop box covering at least this share of the frame's width and height is the frame.
FULL_COVERAGE = 0.97

#: Video seconds between two checks of a cached area (the mask rarely changes: a scope swap).
RECHECK_INTERVAL_S = 5.0
#: After a check found a different area, the confirming check comes this much later.
CONFIRM_INTERVAL_S = 1.0
#: Two areas whose crop boxes overlap by at least this IoU are the same area.
SAME_AREA_IOU = 0.90

SHAPES = ("circle", "rect", "full")


@dataclass(frozen=True)
class ContentArea:
    """The crop box of the content area in full-frame pixels, and the mask shape found.

    ``circle`` is ``(cx, cy, radius)`` in full-frame pixels for ``shape == "circle"``
    (the disc may extend past the frame edge), else ``None``.

    >>> a = ContentArea.full(640, 480)
    >>> (a.shape, a.w, a.h)
    ('full', 640, 480)
    """

    x: int
    y: int
    w: int
    h: int
    shape: str
    frame_w: int
    frame_h: int
    circle: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, not {self.shape!r}")
        if not (0 <= self.x and 0 <= self.y and self.w > 0 and self.h > 0
                and self.x + self.w <= self.frame_w and self.y + self.h <= self.frame_h):
            raise ValueError(f"crop box {self.box} does not fit a "
                             f"{self.frame_w}x{self.frame_h} frame")

    @classmethod
    def full(cls, frame_w: int, frame_h: int) -> ContentArea:
        """The whole frame (no border found, or nothing to find it on)."""
        return cls(0, 0, int(frame_w), int(frame_h), "full", int(frame_w), int(frame_h))

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x, y, w, h)``."""
        return (self.x, self.y, self.w, self.h)

    def crop(self, image: np.ndarray) -> np.ndarray:
        """A view of ``image`` (the full frame this area was found on) inside the box."""
        h, w = image.shape[:2]
        if (w, h) != (self.frame_w, self.frame_h):
            raise ValueError(f"image is {w}x{h} but the content area was found on a "
                             f"{self.frame_w}x{self.frame_h} frame; detect it again")
        return image[self.y:self.y + self.h, self.x:self.x + self.w]

    def iou(self, other: ContentArea) -> float:
        """Intersection over union of the two crop boxes (0 for different frame sizes)."""
        if (self.frame_w, self.frame_h) != (other.frame_w, other.frame_h):
            return 0.0
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        return inter / float(self.w * self.h + other.w * other.h - inter)

    def to_json(self) -> dict:
        """Plain dict for logs and result files."""
        d = {"x": self.x, "y": self.y, "w": self.w, "h": self.h, "shape": self.shape,
             "frame_w": self.frame_w, "frame_h": self.frame_h}
        if self.circle is not None:
            d["circle"] = [round(float(v), 1) for v in self.circle]
        return d


def _analysis_grey(image: np.ndarray) -> np.ndarray:
    """Small grey copy (brightest channel) about ANALYSIS_WIDTH wide."""
    h, w = image.shape[:2]
    # Cheap strided decimation first: aliasing does not matter for a mask edge, and the
    # INTER_AREA step after it then touches at most ~4x the output pixels. Start half a
    # step in, so sample j stands for the block centred on (j + 0.5) * step.
    step = max(1, w // (2 * ANALYSIS_WIDTH))
    sub = image[step // 2::step, step // 2::step]
    if sub.ndim == 3:
        sub = sub[..., 0] if sub.shape[2] == 1 else sub[..., :3]
    sub = np.ascontiguousarray(sub)
    gh, gw = sub.shape[:2]
    if gw > ANALYSIS_WIDTH:
        sh = max(1, round(gh * ANALYSIS_WIDTH / gw))
        sub = cv2.resize(sub, (ANALYSIS_WIDTH, sh), interpolation=cv2.INTER_AREA)
    # Brightest channel after averaging: dark-red tissue counts as content, and sensor
    # noise is averaged out before the max (which would otherwise pick its peaks).
    return sub if sub.ndim == 2 else sub.max(axis=2)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
            image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or min(image.shape[:2]) < 1:
        raise ValueError(f"expected a uint8 grey or RGB image, got {image.dtype} {image.shape}")
    return image


def detect_content_area(image: np.ndarray) -> ContentArea | None:
    """The content area of one frame, or ``None`` when the frame says nothing about it.

    ``None`` means all black, blank or too dim to tell (a fade, the scope outside the body
    in a dark room): callers keep what they had. :func:`find_content_area` turns it into
    the full frame.

    >>> detect_content_area(np.zeros((48, 64, 3), np.uint8)) is None
    True
    """
    image = _check_image(image)
    frame_h, frame_w = image.shape[:2]
    grey = _analysis_grey(image)
    sh, sw = grey.shape
    # Levels come from a blurred copy (noise, JPEG blocks); the mask from the unblurred one,
    # whose edge is where the mask edge is (blurring would move it out by a pixel).
    small = cv2.GaussianBlur(grey, (5, 5), 0) if min(sh, sw) >= 9 else grey
    dark, bright = np.percentile(small, (DARK_PERCENTILE, BRIGHT_PERCENTILE))
    contrast = float(bright - dark)
    if contrast < MIN_CONTRAST:
        return None
    if dark > MAX_BORDER_LEVEL:
        return ContentArea.full(frame_w, frame_h)
    margin = min(max(THRESHOLD_FRACTION * contrast, MIN_THRESHOLD_MARGIN), MAX_THRESHOLD_MARGIN)
    mask = (grey > dark + margin).astype(np.uint8)
    if min(sh, sw) >= 9:
        # Close bridges dark specks and thin dark lines inside the content (instrument
        # shadows, a calibration grid) so the region stays one piece.
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE,
                                cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))

    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    largest = max(contours, key=cv2.contourArea)
    if cv2.contourArea(largest) < MIN_REGION_FRACTION * sh * sw:
        # A small bright spot in a dark frame: not enough to tell a mask from a dim scene.
        return None
    # Work with the convex hull: masks are convex, and dim tissue at the mask edge (dark
    # folds, vignetting) dents the thresholded region but not its hull.
    hull = cv2.convexHull(largest)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, [hull], -1, 1, thickness=-1)
    region = int(filled.sum())
    outside = sh * sw - region
    if outside > 0:
        stray = np.count_nonzero(mask & (filled == 0)) / outside
        # Judge flatness away from the hull's soft edge (blur, compression ringing).
        far = cv2.dilate(filled, np.ones((5, 5), np.uint8)) == 0
        spread = float(np.percentile(small[far], 90) - dark) if far.any() else 0.0
        log.debug("content area: dark %.0f contrast %.0f stray %.3f spread %.1f",
                  dark, contrast, stray, spread)
        if stray > MAX_STRAY_FRACTION or spread > MAX_BORDER_SPREAD:
            return ContentArea.full(frame_w, frame_h)

    sx, sy = frame_w / sw, frame_h / sh
    bx, by, bw, bh = cv2.boundingRect(hull)
    (cx, cy), r = cv2.minEnclosingCircle(hull)
    disc = np.zeros_like(mask)
    cv2.circle(disc, (int(round(cx * 16)), int(round(cy * 16))), int(round(r * 16)), 1, -1,
               lineType=cv2.LINE_8, shift=4)
    circle_fill = region / max(1, int(disc.sum()))
    rect_fill = region / float(bw * bh)

    if circle_fill >= CIRCLE_FILL and circle_fill >= rect_fill - 0.02:
        fcx, fcy = (cx + 0.5) * sx, (cy + 0.5) * sy
        fr = r * (sx + sy) / 2.0
        x0, x1 = fcx - fr, fcx + fr
        y0, y1 = fcy - fr, fcy + fr
        shape, circle = "circle", (fcx, fcy, fr)
    else:
        x0, x1, y0, y1 = bx * sx, (bx + bw) * sx, by * sy, (by + bh) * sy
        shape, circle = "rect", None
    x0, y0 = max(0, int(np.floor(x0 + 1e-6))), max(0, int(np.floor(y0 + 1e-6)))
    x1, y1 = min(frame_w, int(np.ceil(x1 - 1e-6))), min(frame_h, int(np.ceil(y1 - 1e-6)))
    if x1 - x0 >= FULL_COVERAGE * frame_w and y1 - y0 >= FULL_COVERAGE * frame_h:
        return ContentArea.full(frame_w, frame_h)
    return ContentArea(x0, y0, x1 - x0, y1 - y0, shape, frame_w, frame_h, circle)


def find_content_area(image: np.ndarray) -> ContentArea:
    """The content area of one RGB or grey uint8 frame; the full frame if none is found.

    >>> find_content_area(np.zeros((48, 64), np.uint8)).shape
    'full'
    """
    found = detect_content_area(image)
    if found is None:
        h, w = np.asarray(image).shape[:2]
        return ContentArea.full(w, h)
    return found


def preprocess(image_rgb: np.ndarray, area: ContentArea,
               size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """Crop ``image_rgb`` to ``area`` and resize to ``[size, size, 3]`` contiguous uint8.

    The crop is stretched to a square (no padding): the same mask always maps to the same
    geometry, which is all the model needs, and it keeps every content pixel.

    Resizing is a box prefilter of about the scale factor (``cv2.blur``) followed by
    ``INTER_LINEAR`` sampling. That is area averaging done the cheap way: plain
    ``INTER_LINEAR`` aliases on 3-6x downscales (mean abs difference to ``INTER_AREA``
    1.4-2.0 grey levels on real frames, 55-64 on a zone plate), while ``INTER_AREA``
    itself costs 2.8-3.8 ms for a 720p crop and 8.3 ms for 1080p on one Zen 3 core
    (OpenCV 5.0). The prefilter+linear path measured 1.1-1.4 ms (720p crop) and 3.8-4.2
    ms (1080p full) with a mean difference to ``INTER_AREA`` of 0.13-0.57 on real frames
    and 1.0-1.4 on zone plates. Grey ``[H, W]`` / ``[H, W, 1]`` input is expanded to RGB.

    >>> img = np.full((720, 1280, 3), 90, np.uint8)
    >>> out = preprocess(img, ContentArea.full(1280, 720))
    >>> out.shape, out.dtype, out.flags.c_contiguous, int(out[0, 0, 0])
    ((224, 224, 3), dtype('uint8'), True, 90)
    """
    crop = area.crop(np.asarray(image_rgb))
    if crop.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {crop.dtype}")
    if crop.ndim == 2 or crop.shape[2] == 1:
        crop = cv2.cvtColor(np.ascontiguousarray(crop.reshape(crop.shape[:2])), cv2.COLOR_GRAY2RGB)
    elif crop.shape[2] != 3:
        raise ValueError(f"expected an RGB image, got {crop.shape[2]} channels")
    h, w = crop.shape[:2]
    kx, ky = max(1, round(w / size)), max(1, round(h / size))
    if kx * ky == 2:
        # OpenCV 5.0.0's box filter is wrong for 1x2 / 2x1 kernels (255+255 wraps to 0).
        # Only crops under ~2.5x the output size get here, where area averaging is cheap.
        out = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(out)
    if kx > 1 or ky > 1:
        # ISOLATED: a numpy view knows its parent buffer, and OpenCV would otherwise read
        # pixels outside the crop for the filter border.
        crop = cv2.blur(crop, (kx, ky), borderType=cv2.BORDER_REPLICATE | cv2.BORDER_ISOLATED)
    out = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(out)


class ContentCropper:
    """Per-source cache of the content area; call it on each frame to get the model input.

    The first frame that shows anything sets the area (until then the full frame is used
    and every frame is tried). The area is checked again :data:`CONFIRM_INTERVAL_S` later,
    then every :data:`RECHECK_INTERVAL_S` of video time. A check that finds a clearly
    different area (box IoU below :data:`SAME_AREA_IOU`) only proposes it; the next check
    must agree before it is used. Frames that say nothing (black) never count as a check
    result. A new frame size, or time going backwards (a seek), starts over.

    >>> import numpy as np
    >>> cropper = ContentCropper()
    >>> cropper(np.zeros((120, 160, 3), np.uint8), 0.0).shape   # black: full frame for now
    (224, 224, 3)
    >>> cropper.area.shape
    'full'
    """

    def __init__(
        self,
        *,
        size: int = MODEL_INPUT_SIZE,
        recheck_interval_s: float = RECHECK_INTERVAL_S,
        confirm_interval_s: float = CONFIRM_INTERVAL_S,
        detect: Callable[[np.ndarray], ContentArea | None] = detect_content_area,
    ):
        self.size = size
        self.recheck_interval_s = recheck_interval_s
        self.confirm_interval_s = confirm_interval_s
        self._detect = detect
        self.checks = 0  #: detections run so far
        self.changes = 0  #: accepted area changes after the first area
        self.reset()

    def reset(self) -> None:
        """Forget the cached area (e.g. the source was switched)."""
        self._area: ContentArea | None = None
        self._candidate: ContentArea | None = None
        self._next_check_s = float("-inf")
        self._last_pts_s = float("-inf")
        self._current: ContentArea | None = None

    @property
    def area(self) -> ContentArea | None:
        """The area used for the last frame (``None`` before the first frame)."""
        return self._current

    @property
    def found(self) -> bool:
        """Whether a real area was found yet (else the full frame is a stand-in)."""
        return self._area is not None

    def update(self, image: np.ndarray, pts_s: float) -> ContentArea:
        """Run a check if one is due and return the area to use for this frame."""
        h, w = image.shape[:2]
        if self._area is not None and (self._area.frame_w, self._area.frame_h) != (w, h):
            log.info("frame size changed to %dx%d; detecting the content area again", w, h)
            self.reset()
        if pts_s < self._last_pts_s:
            self._next_check_s = pts_s  # a seek: look now
        self._last_pts_s = pts_s
        if self._area is None or pts_s >= self._next_check_s:
            self._check(image, pts_s)
        self._current = self._area if self._area is not None else ContentArea.full(w, h)
        return self._current

    def _check(self, image: np.ndarray, pts_s: float) -> None:
        found = self._detect(image)
        self.checks += 1
        if self._area is None:
            if found is not None:
                self._area = found
                self._next_check_s = pts_s + self.confirm_interval_s
                log.debug("content area %s at %.2f s", found.to_json(), pts_s)
            return  # nothing yet: try again on the next frame
        if found is None:
            # Uninformative frame: not a vote either way; look again soon if a change is pending.
            self._next_check_s = pts_s + (self.confirm_interval_s if self._candidate
                                          else self.recheck_interval_s)
        elif found.iou(self._area) >= SAME_AREA_IOU:
            self._candidate = None
            self._next_check_s = pts_s + self.recheck_interval_s
        elif self._candidate is not None and found.iou(self._candidate) >= SAME_AREA_IOU:
            log.info("content area changed at %.2f s: %s -> %s", pts_s,
                     self._area.to_json(), found.to_json())
            self._area, self._candidate = found, None
            self.changes += 1
            self._next_check_s = pts_s + self.recheck_interval_s
        else:
            self._candidate = found
            self._next_check_s = pts_s + self.confirm_interval_s

    def __call__(self, image_rgb: np.ndarray, pts_s: float) -> np.ndarray:
        """The model input for this frame: ``preprocess(image_rgb, area, size)``."""
        return preprocess(image_rgb, self.update(image_rgb, pts_s), self.size)
