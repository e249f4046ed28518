"""Stand-in scenes for synthetic ENT procedure videos: textures, field of view, camera.

Nothing here is real anatomy. Each organ label gets a procedurally generated texture that
only mimics the coarse cues of real footage (colour, layout, folds, vessels), so that tests,
the README demo and the bundled demo models have something deterministic to work on:

- ``ear``: yellow-orange canal skin with a dark round opening, wax blobs and hairs;
- ``nose``: pink-red mucosa with turbinate folds (warped sinusoidal ridges) and vessels;
- ``vocal_folds``: pale grey-white V-shaped folds around a dark glottis on purple-red mucosa.

The textures themselves are painted in :mod:`endostream.synth.textures`. A
:class:`SceneRenderer` pre-renders one large canvas per scene (once, calibrated so the
mean colour inside the field of view is :data:`SCENE_MEAN_RGB`), then each frame is one
``warpAffine`` of that canvas along a smooth random camera path, plus moving specular
highlights, optional blur/darkening, vignetting, the field-of-view mask and sensor noise.

>>> r = SceneRenderer(160, 120, fov=FieldOfView(), seed=0)
>>> img = r.render(1.0, "nose")
>>> img.shape, img.dtype.name
((120, 160, 3), 'uint8')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from endostream.synth.textures import ORGAN_TEXTURES, room_texture

#: Organ labels of the stand-in scenes, in the order of the demo models' organ head.
ORGANS = ("ear", "nose", "vocal_folds")

#: Mean RGB inside the field of view of a clear (good-quality) frame of each scene,
#: vignetting and highlights included. Every canvas is calibrated to it (per seed, frame
#: size and field of view); single frames stay within about ±10 per channel of it while the
#: camera moves. Pairwise distances are >= 80 RGB units, so colour-distance classifiers in
#: tests can rely on it.
SCENE_MEAN_RGB: dict[str, tuple[int, int, int]] = {
    "ear": (185, 140, 55),
    "nose": (185, 65, 80),
    "vocal_folds": (120, 90, 130),
}

#: Camera pan range in scene units (1 unit = inscribed radius of the field of view).
PAN_MAX_U = 0.22
#: Zoom factor range: the view scale moves between 1/ZOOM_MAX and ZOOM_MAX.
ZOOM_MAX = 1.15
#: Camera roll range in degrees either side of upright.
ROT_MAX_DEG = 12.0
#: Frequencies of the sinusoids that make up the camera path (Hz): slow, hand-held sway.
CAMERA_FREQ_HZ = (0.03, 0.22)
#: Out-of-body views move this much faster than the camera inside the patient.
OUT_OF_BODY_SPEEDUP = 4.0
#: Light fall-off at the rim of the field of view (0 = none).
VIGNETTE_STRENGTH = 0.32
#: Gaussian blur sigma of a "blur" look as a fraction of the inscribed radius (strong).
BLUR_SIGMA_FRAC = 0.05
#: Sensor noise standard deviation in 8-bit units, added to every frame incl. the border.
NOISE_SIGMA = 1.5
#: Colour of specular highlights (saturated, slightly warm white).
HIGHLIGHT_RGB = np.array([255.0, 255.0, 248.0], np.float32)
#: Number of camera poses the mean-colour calibration averages over.
CALIBRATION_VIEWS = 12


#: Field-of-view shapes of the synthetic scope: a disc, a rounded rectangle, or no mask at all
#: (``full``: the image fills the frame, as with some video endoscopes).
FOV_SHAPES = ("circle", "rounded", "full")


#: Colour casts of a synthetic scope (per-channel RGB gains); ``grey`` records grey, as
#: high-speed and some older cameras do.
PALETTES = {"none": (1.0, 1.0, 1.0), "warm": (1.15, 0.95, 0.82), "cool": (0.85, 1.0, 1.15),
            "grey": None}


def tint(image: np.ndarray, palette: str) -> np.ndarray:
    """``image`` (RGB uint8) as a camera with ``palette``'s colour cast records it.

    >>> px = np.full((1, 1, 3), 100, np.uint8)
    >>> tint(px, "warm")[0, 0].tolist(), tint(px, "none") is px
    ([115, 95, 82], True)
    """
    gains = PALETTES[palette]
    if gains is None:
        return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    if palette == "none":
        return image
    return np.clip(image.astype(np.float32) * np.float32(gains), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FieldOfView:
    """Where the scope's image lies in the frame: a disc or a rounded rectangle.

    ``cx``/``cy`` place the centre as fractions of frame width/height (off-centre allowed,
    the shape may even be cut by the frame edge); ``height`` is the disc diameter or the
    rectangle height as a fraction of frame height; ``aspect`` (rounded only) the rectangle
    width/height; ``corner`` (rounded only) the corner radius as a fraction of its height.

    >>> FieldOfView.named("rounded").shape
    'rounded'
    >>> m = FieldOfView().mask(64, 48)
    >>> bool(m[24, 32]), bool(m[0, 0])
    (True, False)
    """

    shape: str = "circle"
    cx: float = 0.5
    cy: float = 0.5
    height: float = 0.92
    aspect: float = 1.4
    corner: float = 0.16

    def __post_init__(self) -> None:
        if self.shape not in FOV_SHAPES:
            raise ValueError(f"field of view shape {self.shape!r}: use one of {FOV_SHAPES}")
        if not 0.1 <= self.height <= 1.5:
            raise ValueError("field of view height must be a fraction of frame height (0.1..1.5)")

    @classmethod
    def named(cls, name: str) -> FieldOfView:
        """The preset for ``"circle"`` (centred disc) or ``"rounded"`` (rounded rectangle)."""
        if name == "circle":
            return cls()
        if name == "rounded":
            return cls(shape="rounded", height=0.9)
        if name == "full":
            return cls(shape="full")
        raise ValueError(f"field of view {name!r}: use one of {FOV_SHAPES}")

    @classmethod
    def random(cls, rng: np.random.Generator) -> FieldOfView:
        """A random placement like different scopes draw it (for dataset recordings)."""
        shape = "circle" if rng.random() < 0.6 else "rounded"
        return cls(
            shape=shape,
            cx=float(rng.uniform(0.42, 0.58)),
            cy=float(rng.uniform(0.46, 0.54)),
            height=float(rng.uniform(0.72, 0.96) if shape == "circle" else rng.uniform(0.7, 0.9)),
            aspect=float(rng.uniform(1.2, 1.45)),
            corner=float(rng.uniform(0.08, 0.22)),
        )

    def _half_size(self, width: int, height: int) -> tuple[float, float]:
        if self.shape == "full":
            return width / 2.0, height / 2.0
        hh = self.height * height / 2.0
        hw = hh if self.shape == "circle" else min(hh * self.aspect, width * 0.49)
        return hw, hh

    def coverage(self, width: int, height: int) -> np.ndarray:
        """Anti-aliased coverage in [0, 1], float32 ``[height, width]``."""
        if self.shape == "full":
            return np.ones((height, width), np.float32)
        hw, hh = self._half_size(width, height)
        x = np.arange(width, dtype=np.float32)[None, :] + 0.5 - self.cx * width
        y = np.arange(height, dtype=np.float32)[:, None] + 0.5 - self.cy * height
        if self.shape == "circle":
            sd = np.sqrt(x * x + y * y) - hh
        else:
            r = self.corner * 2.0 * hh
            qx = np.abs(x) - (hw - r)
            qy = np.abs(y) - (hh - r)
            outside = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
            sd = outside + np.minimum(np.maximum(qx, qy), 0) - r
        return np.clip(0.5 - sd, 0.0, 1.0).astype(np.float32)

    def mask(self, width: int, height: int, *, margin_px: int = 0) -> np.ndarray:
        """Boolean ``[height, width]``: True inside the field of view (shrunk by ``margin_px``)."""
        inside = (self.coverage(width, height) >= 0.5).astype(np.uint8)
        if margin_px > 0:
            inside = cv2.erode(inside, np.ones((2 * margin_px + 1,) * 2, np.uint8))
        return inside.astype(bool)

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in vars(self).items()}


def mean_rgb_in_fov(image: np.ndarray, fov: FieldOfView) -> np.ndarray:
    """Mean RGB (float64 ``[3]``) of ``image`` inside ``fov``, 2 px away from its rim."""
    h, w = image.shape[:2]
    return image[fov.mask(w, h, margin_px=2)].mean(axis=0)


class CameraPath:
    """Smooth random hand-held motion: ``pose(t_s) -> (dx_u, dy_u, zoom, angle_rad)``.

    Each parameter is a normalised sum of three sinusoids with random frequency and phase,
    so the pose is a pure, smooth function of time (any frame can be rendered on its own).
    """

    def __init__(self, rng: np.random.Generator):
        self._freq = rng.uniform(*CAMERA_FREQ_HZ, size=(4, 3))
        self._phase = rng.uniform(0, 2 * np.pi, size=(4, 3))
        self._amp = np.array([1.0, 0.6, 0.35])

    def pose(self, t_s: float) -> tuple[float, float, float, float]:
        s = (self._amp * np.sin(2 * np.pi * self._freq * t_s + self._phase)).sum(1)
        s /= self._amp.sum()
        zoom = ZOOM_MAX ** float(s[2])
        return (
            PAN_MAX_U * float(s[0]),
            PAN_MAX_U * float(s[1]),
            zoom,
            math.radians(ROT_MAX_DEG) * float(s[3]),
        )


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Strong Gaussian blur, done on a pyramid level: same look, a fraction of the cost."""
    h, w = img.shape[:2]
    small, f = img, 1
    while sigma / f >= 4 and min(small.shape[:2]) >= 16:  # pyrDown low-passes: no aliasing
        small, f = cv2.pyrDown(small), f * 2
    small = cv2.GaussianBlur(small, (0, 0), sigma / f)
    return small if f == 1 else cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _rgba(img: np.ndarray) -> np.ndarray:
    """uint8 RGBA: warpAffine's 4-channel path is about twice as fast as the 3-channel one."""
    return cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2RGBA)


class SceneRenderer:
    """Renders full frames (RGB uint8, black border) of the stand-in scenes at any time.

    Canvases are built lazily, once per scene, from ``seed`` alone (the same seed gives the
    same textures, camera path and highlights regardless of which frames are asked for).
    ``look`` is ``"clear"``, ``"blur"``, ``"dark"``, ``"black"`` or ``"out_of_body"``;
    ``blend=(other_scene, weight)`` cross-fades to another scene (transitions).
    """

    def __init__(self, width: int, height: int, *, fov: FieldOfView, seed: int = 0):
        if width < 16 or height < 16:
            raise ValueError(f"frame size {width}x{height} is too small; use at least 16x16")
        self.width, self.height, self.fov, self.seed = width, height, fov, seed
        cover = fov.coverage(width, height)
        ys, xs = np.nonzero(cover > 0)
        self._box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        x0, y0, x1, y1 = self._box
        hw, hh = fov._half_size(width, height)
        self._centre = (fov.cx * width - x0, fov.cy * height - y0)
        self.unit_px = min(hw, hh)  # scene unit = inscribed radius
        gx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - fov.cx * width) / hw
        gy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - fov.cy * height) / hh
        rho2 = np.minimum(gx[None, :] ** 2 + gy[:, None] ** 2, 2.0)
        weight = cover[y0:y1, x0:x1] * (1 - VIGNETTE_STRENGTH * rho2)
        self._weight = cv2.merge([np.round(weight * 255).astype(np.uint8)] * 3)
        self._inner = (cover[y0:y1, x0:x1] >= 1.0).astype(np.uint8)  # a cv2 mask
        fx, fy = self._centre
        extent = float(
            np.sqrt(((xs + 0.5 - fov.cx * width) ** 2 + (ys + 0.5 - fov.cy * height) ** 2).max())
        )
        self._canvas_px = int(
            2 * math.ceil(math.sqrt(2) * PAN_MAX_U * self.unit_px + extent * ZOOM_MAX + 4)
        )
        self.camera = CameraPath(self._rng(1))
        self._highlights = self._make_highlights(self._rng(2))
        noise_rng = self._rng(3)
        self._noise = []
        for _ in range(3):  # a small bank, cycled: fresh noise per frame costs more than the rest
            n = noise_rng.normal(0, NOISE_SIGMA, (height, width, 3))
            self._noise.append(
                (np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8))
            )
        self._canvases: dict[str, np.ndarray] = {}

    def _rng(self, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream])

    def _make_highlights(self, rng) -> list[tuple]:
        blobs = []
        for _ in range(int(rng.integers(3, 7))):
            sx = rng.uniform(0.008, 0.022) * self.unit_px + 0.6
            sy = sx * rng.uniform(1.0, 2.5)
            h = int(math.ceil(3 * sy))
            g = np.arange(-h, h + 1, dtype=np.float32)
            rot = cv2.getRotationMatrix2D((h, h), float(rng.uniform(0, 180)), 1.0)
            e = np.exp(-0.5 * ((g[None, :] / sx) ** 2 + (g[:, None] / sy) ** 2))
            alpha = np.clip(1.8 * cv2.warpAffine(e, rot, (2 * h + 1, 2 * h + 1)), 0, 1)[..., None]
            base = rng.uniform(-0.55, 0.55, 2)
            blobs.append((alpha, h, base, rng.uniform(0.05, 0.3, 2), rng.uniform(0, 2 * np.pi, 2)))
        return blobs

    def canvas(self, scene: str) -> np.ndarray:
        """The calibrated RGBA uint8 canvas of ``scene`` (built on first use)."""
        if scene not in self._canvases:
            if scene == "out_of_body":
                img = room_texture(self._rng(50), self._canvas_px, self.unit_px)
                self._canvases[scene] = _rgba(img)
            elif scene in ORGAN_TEXTURES:
                index = ORGANS.index(scene)
                img = ORGAN_TEXTURES[scene](self._rng(10 + index), self._canvas_px, self.unit_px)
                self._canvases[scene] = self._calibrate(img, SCENE_MEAN_RGB[scene])
            else:
                raise ValueError(f"unknown scene {scene!r}; use one of {', '.join(ORGANS)}")
        return self._canvases[scene]

    def _calibrate(self, img: np.ndarray, target) -> np.ndarray:
        """Scale channels until clear views average ``target`` inside the field of view."""
        times = 1.3 + 3.7 * np.arange(CALIBRATION_VIEWS)
        for _ in range(4):
            canvas = _rgba(img)
            means = np.mean([cv2.mean(self._content(canvas, t), self._inner)[:3] for t in times], 0)
            img = img * (np.float32(target) / np.maximum(means, 1.0)).astype(np.float32)
        return _rgba(img)

    def _warp(self, canvas: np.ndarray, t_s: float) -> np.ndarray:
        dx, dy, zoom, ang = self.camera.pose(t_s)
        c, s = math.cos(ang) * zoom, math.sin(ang) * zoom
        half = (canvas.shape[0] - 1) / 2
        ox, oy = half + dx * self.unit_px, half + dy * self.unit_px
        fx, fy = self._centre
        m = np.float32([[c, -s, ox - c * fx + s * fy], [s, c, oy - s * fx - c * fy]])
        x0, y0, x1, y1 = self._box
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        roi = cv2.warpAffine(
            canvas, m, (x1 - x0, y1 - y0), flags=flags, borderMode=cv2.BORDER_REFLECT
        )
        return cv2.cvtColor(roi, cv2.COLOR_RGBA2RGB)

    def _draw_highlights(self, roi: np.ndarray, t_s: float) -> None:
        rh, rw = roi.shape[:2]
        for alpha, h, base, freq, phase in self._highlights:
            p = base + 0.15 * np.sin(2 * np.pi * freq * t_s + phase)
            px = int(self._centre[0] + p[0] * self.unit_px) - h
            py = int(self._centre[1] + p[1] * self.unit_px) - h
            xa, ya, xb, yb = (
                max(px, 0),
                max(py, 0),
                min(px + 2 * h + 1, rw),
                min(py + 2 * h + 1, rh),
            )
            if xa >= xb or ya >= yb:
                continue
            sub = roi[ya:yb, xa:xb].astype(np.float32)
            a = alpha[ya - py : yb - py, xa - px : xb - px]
            roi[ya:yb, xa:xb] = np.rint(sub + a * (HIGHLIGHT_RGB - sub)).astype(np.uint8)

    def _content(self, canvas: np.ndarray, t_s: float, gain: float = 1.0) -> np.ndarray:
        roi = self._warp(canvas, t_s)
        self._draw_highlights(roi, t_s)
        return cv2.multiply(roi, self._weight, scale=gain / 255.0)

    def render(
        self,
        t_s: float,
        scene: str | None,
        look: str = "clear",
        *,
        blend: tuple[str, float] | None = None,
        dark_gain: float = 0.12,
        blur_scale: float = 1.0,
        noise_index: int = 0,
    ) -> np.ndarray:
        """One full frame (RGB uint8 ``[height, width, 3]``) at video time ``t_s``."""
        frame = np.zeros((self.height, self.width, 3), np.uint8)
        sigma = BLUR_SIGMA_FRAC * self.unit_px * blur_scale
        if look == "out_of_body":
            roi = _blur(
                self._warp(self.canvas("out_of_body"), OUT_OF_BODY_SPEEDUP * t_s), 2 * sigma
            )
            roi = cv2.multiply(roi, self._weight, scale=1 / 255.0)
        elif look in ("clear", "blur", "dark"):
            if scene is None:
                raise ValueError(f"look {look!r} needs a scene")
            roi = self._warp(self.canvas(scene), t_s)
            if blend is not None and blend[1] > 0:
                other = self._warp(self.canvas(blend[0]), t_s)
                roi = cv2.addWeighted(roi, 1.0 - blend[1], other, blend[1], 0.0)
            self._draw_highlights(roi, t_s)
            if look == "blur":  # before the mask: the field stop stays sharp, as in a scope
                roi = _blur(roi, sigma)
            roi = cv2.multiply(
                roi, self._weight, scale=(dark_gain if look == "dark" else 1.0) / 255.0
            )
        elif look == "black":
            roi = None
        else:
            raise ValueError(f"unknown look {look!r}")
        if roi is not None:
            x0, y0, x1, y1 = self._box
            frame[y0:y1, x0:x1] = roi
        plus, minus = self._noise[noise_index % len(self._noise)]
        cv2.add(frame, plus, dst=frame)
        cv2.subtract(frame, minus, dst=frame)
        return frame
