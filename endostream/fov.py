"""Field-of-view masks on model inputs: the shapes training draws and the shortcut check uses.

Every scope draws its own field of view (a disc, an ellipse, a rounded rectangle, an
octagon, or the full frame) and, in a clinic, each organ tends to be seen through its own
scope. A classifier that may see the mask learns it instead of the anatomy. Training
therefore shows every image, of every class, through a randomly drawn mask
(:meth:`FovMask.random`), and :mod:`endostream.evaluation.shortcut` checks a model by
showing it the same images through :data:`CHECK_MASKS`.

Outside the field, pixels are left **black**, in training and at run time alike. The
runtime crops each frame to the bounding box of its field of view
(:func:`endostream.crop.preprocess`) and leaves the corners of a round scope as the scope
delivered them: near-black, with a little sensor noise. It keeps only the box (and the
circle for round scopes), not the exact outline of every scope, so filling the outside
with a constant would need a per-frame outline the runtime does not have; and a constant
that matched no real scope would itself be a cue. Training paints the outside the same
near-black (:data:`FILL_LEVEL_RANGE` plus noise of :data:`FILL_NOISE_MAX` at most), and the
export's parity frames go through these masks too.

Masks work on the square ``[S, S, 3]`` model input, after the runtime's crop. Geometry is
in fractions of ``S``: centre ``(cx, cy)``, half-axes ``(rx, ry)``; a mask may be cut by
the image edge, as a large disc is by a frame edge.

>>> import numpy as np
>>> img = np.full((224, 224, 3), 200, np.uint8)
>>> out = FovMask.named("round").apply(img)
>>> int(out[112, 112, 0]), int(out[0, 0, 0])
(200, 0)
>>> FovMask.named("full").apply(img) is img
True
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

#: Shapes a field of view takes, drawn with equal probability in training.
SHAPES = ("circle", "ellipse", "rounded", "octagon", "full")

#: The masks of the shortcut check: a centred disc, a wide ellipse, the full frame.
CHECK_MASKS = ("round", "elliptical", "full")

#: Grey level (0..255) of the painted outside, uniform per image: real borders are not 0.
FILL_LEVEL_RANGE = (0, 12)
#: Largest standard deviation (grey levels) of the noise on the painted outside.
FILL_NOISE_MAX = 3.0

#: Radius of a random disc, fraction of the side: 0.5 touches the edges, more is cut by them.
CIRCLE_R_RANGE = (0.40, 0.60)
#: Half-axes of a random ellipse; one axis is drawn in this range, the other at
#: :data:`ELLIPSE_RATIO_RANGE` of it. The runtime stretches a field's bounding box to the
#: square input, so an elliptical scope arrives nearly round; what varies is how well the
#: box was found and where the frame edge cuts the field.
ELLIPSE_R_RANGE = (0.44, 0.60)
ELLIPSE_RATIO_RANGE = (0.75, 0.95)
#: Half-sizes of a random rounded rectangle and its corner radius (fraction of the half-size).
RECT_R_RANGE = (0.38, 0.50)
CORNER_RANGE = (0.15, 0.6)
#: Half-size of a random octagon and the share of each side's half that the cut corners take.
OCTAGON_CUT_RANGE = (0.25, 0.6)
#: Largest offset of a random mask's centre from the image centre (fraction of the side).
CENTRE_JITTER = 0.05


@dataclass(frozen=True)
class FovMask:
    """One field of view on a square model input; :meth:`apply` paints outside it black.

    >>> FovMask.named("elliptical").shape
    'ellipse'
    """

    shape: str = "circle"
    cx: float = 0.5
    cy: float = 0.5
    rx: float = 0.5
    ry: float = 0.5
    corner: float = 0.3  #: rounded: corner radius; octagon: cut size (fractions of min(rx, ry))
    angle: float = 0.0  #: ellipse: rotation in degrees

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"field of view shape {self.shape!r}: use one of {SHAPES}")

    @classmethod
    def named(cls, name: str) -> FovMask:
        """The shortcut check's masks (:data:`CHECK_MASKS`): ``round``, ``elliptical``, ``full``."""
        if name == "round":
            return cls("circle", rx=0.5, ry=0.5)
        if name == "elliptical":
            return cls("ellipse", rx=0.5, ry=0.38)
        if name == "full":
            return cls("full")
        raise ValueError(f"mask {name!r}: use one of {CHECK_MASKS}")

    @classmethod
    def random(cls, rng: np.random.Generator) -> FovMask:
        """A field of view as some scope might draw it; every shape equally likely.

        >>> {FovMask.random(np.random.default_rng(s)).shape for s in range(40)} == set(SHAPES)
        True
        """
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        cx, cy = 0.5 + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, size=2)
        if shape == "circle":
            r = float(rng.uniform(*CIRCLE_R_RANGE))
            return cls(shape, float(cx), float(cy), r, r)
        if shape == "ellipse":
            a = float(rng.uniform(*ELLIPSE_R_RANGE))
            b = a * float(rng.uniform(*ELLIPSE_RATIO_RANGE))
            rx, ry = (a, b) if rng.random() < 0.5 else (b, a)
            return cls(shape, float(cx), float(cy), rx, ry, angle=float(rng.uniform(-20, 20)))
        if shape == "rounded":
            rx, ry = rng.uniform(*RECT_R_RANGE, size=2)
            return cls(shape, float(cx), float(cy), float(rx), float(ry),
                       corner=float(rng.uniform(*CORNER_RANGE)))
        if shape == "octagon":
            r = float(rng.uniform(*RECT_R_RANGE))
            return cls(shape, float(cx), float(cy), r, r,
                       corner=float(rng.uniform(*OCTAGON_CUT_RANGE)))
        return cls("full")

    def coverage(self, size: int) -> np.ndarray:
        """Anti-aliased coverage in [0, 1], float32 ``[size, size]`` (1 inside)."""
        return _coverage_of(self, size).copy()

    def apply(self, image: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """``image`` with the outside painted near-black; the same array for ``full``.

        Without ``rng`` the outside is exactly 0; with it, a level from
        :data:`FILL_LEVEL_RANGE` and noise up to :data:`FILL_NOISE_MAX` (training).
        """
        if self.shape == "full":
            return image
        h, w = image.shape[:2]
        if h != w:
            raise ValueError(f"field-of-view masks work on square model inputs, got {w}x{h}")
        cover = _coverage_of(self, h)[..., None]
        if rng is None:
            fill = np.zeros_like(image, dtype=np.float32)
        else:
            level = float(rng.uniform(*FILL_LEVEL_RANGE))
            sigma = float(rng.uniform(0.0, FILL_NOISE_MAX))
            fill = level + sigma * rng.standard_normal((h, w, 1), dtype=np.float32)
        out = image.astype(np.float32) * cover + fill * (1.0 - cover)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _coverage_of(mask: FovMask, size: int) -> np.ndarray:
    """Read-only coverage; the named masks' cached (the shortcut check reuses them on many
    images), a training draw computed afresh (it is new every time: caching it would only
    push the named ones out)."""
    if mask in _NAMED:
        return _cached_coverage(mask, size)
    return _coverage(mask, size)


@functools.lru_cache(maxsize=16)
def _cached_coverage(mask: FovMask, size: int) -> np.ndarray:
    return _coverage(mask, size)


def _coverage(mask: FovMask, size: int) -> np.ndarray:
    if mask.shape == "full":
        out = np.ones((size, size), np.float32)
        out.flags.writeable = False
        return out
    s = float(size)
    x = (np.arange(size, dtype=np.float32)[None, :] + 0.5) - mask.cx * s
    y = (np.arange(size, dtype=np.float32)[:, None] + 0.5) - mask.cy * s
    rx, ry = mask.rx * s, mask.ry * s
    if mask.shape == "circle":
        sd = np.sqrt(x * x + y * y) - rx
    elif mask.shape == "ellipse":
        t = math.radians(mask.angle)
        u, v = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
        k = np.sqrt((u / rx) ** 2 + (v / ry) ** 2)
        sd = (k - 1.0) * min(rx, ry)  # distance-like near the rim, enough for anti-aliasing
    elif mask.shape == "rounded":
        r = mask.corner * min(rx, ry)
        qx, qy = np.abs(x) - (rx - r), np.abs(y) - (ry - r)
        sd = (np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
              + np.minimum(np.maximum(qx, qy), 0) - r)
    else:  # octagon: a square with its corners cut at 45 degrees
        cut = mask.corner * rx
        diag = (np.abs(x) + np.abs(y) - (2 * rx - cut)) / math.sqrt(2.0)
        sd = np.maximum(np.maximum(np.abs(x) - rx, np.abs(y) - ry), diag)
    out = np.clip(0.5 - sd, 0.0, 1.0).astype(np.float32)
    out.flags.writeable = False
    return out


#: The shortcut check's masks, whose coverage is cached.
_NAMED = frozenset(FovMask.named(n) for n in CHECK_MASKS)
