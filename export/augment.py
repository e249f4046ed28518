"""Training augmentation for endoscopy: random fields of view, geometry, colour, optics.

A model should learn the organ, not the scope. Each scope has its own field-of-view mask,
optics and colour, and in a clinic each organ tends to be seen through its own scope, so
every cue that comes from the scope is a shortcut to the label. Every training image, of
every class, is therefore shown (after the runtime's crop, in this order):

1. **geometry** — rotated by any angle (the scope turns), flipped, zoomed in within the
   field (factor in :data:`ZOOM_RANGE`); the corners a rotation uncovers are filled by
   reflection, so the rotation draws no mask of its own;
2. **colour** — per-channel gains (white balance), brightness, contrast and saturation
   jitter (light sources and sensors differ);
3. **grey** — with :data:`GREY_P`, the image turns grey (high-speed and older cameras
   record grey: a model must not learn "grey means vocal folds");
4. **blur** and **noise** — mild: they must not turn a good frame into a bad one (the
   quality task's synthetic bad frames blur with sigma 2-6 and scale brightness by 0.2-0.5
   or 1.7-2.6; the ranges here stay well inside that);
5. **specular** highlights — a few small saturated spots, as wet mucosa reflects the light;
6. **fov** — a field-of-view mask drawn by :meth:`endostream.fov.FovMask.random`,
   independent of the label, outside painted near-black (as the runtime leaves it).

Each part can be switched off (:class:`AugmentConfig`, ``endostream train --no-augment
PART,...``); validation images are never augmented. Everything is drawn from the item's own
seed (:mod:`.sampling`), so runs stay deterministic, also across a resume. numpy and OpenCV
only, like :mod:`.sampling`.

>>> aug = Augmenter(AugmentConfig())
>>> img = np.full((224, 224, 3), 120, np.uint8)
>>> a, b = aug(img, 7), aug(img, 7)
>>> bool((a == b).all()), a.shape
(True, (224, 224, 3))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import cv2
import numpy as np

from endostream.errors import UsageError
from endostream.fov import FovMask

#: The switchable parts, in the order they are applied.
PARTS = ("geometry", "colour", "grey", "blur", "noise", "specular", "fov")

#: Zoom into the field of view (1 = none): the scope moves closer or further.
ZOOM_RANGE = (1.0, 1.25)
#: Per-channel gain range (white balance) and brightness / contrast / saturation factors.
CHANNEL_GAIN_RANGE = (0.85, 1.15)
BRIGHTNESS_RANGE = (0.75, 1.25)
CONTRAST_RANGE = (0.75, 1.25)
SATURATION_RANGE = (0.6, 1.4)
#: Probability of a grey image.
GREY_P = 0.2
#: Probability and sigma range (pixels of the 224 input) of a mild Gaussian blur.
BLUR_P = 0.3
BLUR_SIGMA_RANGE = (0.3, 1.0)
#: Probability and standard-deviation range (grey levels) of Gaussian sensor noise.
NOISE_P = 0.5
NOISE_SIGMA_RANGE = (1.0, 6.0)
#: Probability of specular highlights, and how many spots then (inclusive range).
SPECULAR_P = 0.4
SPECULAR_SPOTS = (1, 4)


@dataclass(frozen=True)
class AugmentConfig:
    """Which parts of the augmentation run; all on by default.

    >>> AugmentConfig.without(["grey", "fov"]).enabled()
    ('geometry', 'colour', 'blur', 'noise', 'specular')
    """

    geometry: bool = True
    colour: bool = True
    grey: bool = True
    blur: bool = True
    noise: bool = True
    specular: bool = True
    fov: bool = True

    @classmethod
    def without(cls, parts: Iterable[str]) -> AugmentConfig:
        """All parts except ``parts`` (``"all"`` switches every part off)."""
        parts = [p.strip() for p in parts if p.strip()]
        if "all" in parts:
            return cls(**{p: False for p in PARTS})
        unknown = [p for p in parts if p not in PARTS]
        if unknown:
            raise UsageError(f"--no-augment {unknown[0]!r}: use 'all' or any of "
                             f"{','.join(PARTS)}")
        return cls(**{p: p not in parts for p in PARTS})

    def enabled(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if getattr(self, f.name))


class Augmenter:
    """``augmenter(image, seed) -> image``: the enabled parts, all drawn from ``seed``.

    Each part has its own random stream (``default_rng([seed, k])``), so switching one
    part off leaves the draws of the others unchanged.
    """

    def __init__(self, config: AugmentConfig):
        self.config = config

    def fov_mask(self, seed: int) -> FovMask | None:
        """The field of view drawn for ``seed`` (None when the part is off)."""
        if not self.config.fov:
            return None
        return FovMask.random(_rng(seed, PARTS.index("fov")))

    def __call__(self, image: np.ndarray, seed: int) -> np.ndarray:
        c = self.config
        out = image
        if c.geometry:
            out = _geometry(out, _rng(seed, 0))
        if c.colour:
            out = _colour(out, _rng(seed, 1))
        if c.grey and _rng(seed, 2).random() < GREY_P:
            out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        if c.blur:
            rng = _rng(seed, 3)
            if rng.random() < BLUR_P:
                sigma = float(rng.uniform(*BLUR_SIGMA_RANGE))
                out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma,
                                       borderType=cv2.BORDER_REFLECT101)
        if c.noise:
            rng = _rng(seed, 4)
            if rng.random() < NOISE_P:
                sigma = float(rng.uniform(*NOISE_SIGMA_RANGE))
                noisy = out + sigma * rng.standard_normal(out.shape, dtype=np.float32)
                out = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        if c.specular:
            out = _specular(out, _rng(seed, 5))
        mask = self.fov_mask(seed)
        if mask is not None:
            out = mask.apply(out, _rng(seed, 7))
        return np.ascontiguousarray(out) if out is not image else image.copy()


def _rng(seed: int, part: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 0xA06, part])


def _geometry(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    angle = float(rng.uniform(0.0, 360.0))
    zoom = float(rng.uniform(*ZOOM_RANGE))
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, zoom)
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT101)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.5:
        out = out[::-1]
    return np.ascontiguousarray(out)


def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = image.astype(np.float32)
    x *= rng.uniform(*CHANNEL_GAIN_RANGE, size=3).astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + float(rng.uniform(*SATURATION_RANGE)) * (x - grey)
    mean = float(x.mean())
    x = mean + float(rng.uniform(*CONTRAST_RANGE)) * (x - mean)
    x *= float(rng.uniform(*BRIGHTNESS_RANGE))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _specular(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if rng.random() >= SPECULAR_P:
        return image
    h, w = image.shape[:2]
    alpha = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(SPECULAR_SPOTS[0], SPECULAR_SPOTS[1] + 1))):
        centre = (int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h))
        axes = (int(rng.uniform(2, 10)), int(rng.uniform(1, 6)))
        cv2.ellipse(alpha, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigmaX=1.5)[..., None]
    out = image.astype(np.float32) * (1 - alpha) + 255.0 * alpha
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
