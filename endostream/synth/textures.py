"""The stand-in scenes' textures: procedurally painted canvases, one per organ label.

Nothing here is real anatomy; each painter mimics only the coarse cues of real footage
(colour, layout, folds, vessels): ``ear`` is yellow-orange canal skin with a dark round
opening, wax blobs and hairs; ``nose`` pink-red mucosa with turbinate folds and vessels;
``vocal_folds`` pale V-shaped folds around a dark glottis on purple-red mucosa; the
out-of-body ``room`` blurry theatre lights, drapes and walls. A painter takes a seeded
generator, the canvas size and the scene unit in pixels, and returns a float32 RGB canvas;
:class:`~endostream.synth.scenes.SceneRenderer` films it through a field of view.

>>> import numpy as np
>>> canvas = ORGAN_TEXTURES["nose"](np.random.default_rng(0), 64, 20.0)
>>> canvas.shape, canvas.dtype.name
((64, 64, 3), 'float32')
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# --- helpers (float32 images, coordinates in scene units around the canvas centre)


def _smooth(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _fbm(rng: np.random.Generator, size: int, scales_px, weights) -> np.ndarray:
    """Zero-mean, unit-std noise summed over several scales (bicubic upsampled lattices)."""
    out = np.zeros((size, size), np.float32)
    for s, w in zip(scales_px, weights, strict=True):
        s = max(2.0, float(s))
        n = int(size / s) + 3
        lattice = rng.standard_normal((n, n)).astype(np.float32)
        big = cv2.resize(lattice, (int(n * s), int(n * s)), interpolation=cv2.INTER_CUBIC)
        out += w * big[:size, :size]
    out -= out.mean()
    return out / (out.std() + 1e-6)


def _paint(img: np.ndarray, alpha: np.ndarray, rgb) -> None:
    a = alpha[..., None]
    img *= 1.0 - a
    img += a * np.asarray(rgb, np.float32)


def _stamp(img: np.ndarray, centre, axes, angle: float, sigma: float, alpha: float, rgb) -> None:
    """Paint one soft-edged filled ellipse, working only on the patch it touches."""
    size = img.shape[0]
    reach = int(max(axes) + 3 * sigma + 2)
    cx, cy = int(centre[0]), int(centre[1])
    x0, y0 = max(cx - reach, 0), max(cy - reach, 0)
    x1, y1 = min(cx + reach + 1, size), min(cy + reach + 1, size)
    if x0 >= x1 or y0 >= y1:
        return
    m = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.ellipse(m, (cx - x0, cy - y0), axes, angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    _paint(img[y0:y1, x0:x1], cv2.GaussianBlur(m, (0, 0), sigma) * alpha, rgb)


def _vessels(rng, size: int, u: float, count: int, width_px: float, branch_p: float) -> np.ndarray:
    """Mask of wandering, branching vessel-like lines."""
    mask = np.zeros((size, size), np.float32)
    step = 0.03 * u
    todo = [(rng.uniform(0, size, 2), rng.uniform(0, 2 * np.pi), width_px) for _ in range(count)]
    while todo:
        p, ang, w = todo.pop()
        n = int(rng.integers(15, 45))
        angles = ang + np.cumsum(rng.normal(0, 0.3, n))
        pts = p + np.cumsum(step * np.stack([np.cos(angles), np.sin(angles)], 1), axis=0)
        pts = np.vstack([p, pts])
        if w > 1.2:
            for j in np.flatnonzero(rng.random(n) < branch_p):
                todo.append((pts[j + 1], angles[j] + rng.choice([-0.7, 0.7]), w * 0.65))
        poly = np.round(pts * 4).astype(np.int32)  # shift=2: quarter-pixel accuracy
        cv2.polylines(mask, [poly], False, 1.0, max(1, round(w)), cv2.LINE_AA, shift=2)
    return cv2.GaussianBlur(mask, (0, 0), 0.7)


def _grid(size: int, u: float) -> tuple[np.ndarray, np.ndarray]:
    ax = (np.arange(size, dtype=np.float32) - (size - 1) / 2) / u
    return ax[None, :], ax[:, None]


def _ear(rng, size: int, u: float) -> np.ndarray:
    x, y = _grid(size, u)
    ox, oy = rng.uniform(-0.06, 0.06, 2)
    r = np.sqrt((x - ox) ** 2 + (y - oy) ** 2)
    tex = _fbm(rng, size, (0.6 * u, 0.2 * u, 0.06 * u, 0.02 * u), (1, 0.6, 0.35, 0.2))
    tint = _fbm(rng, size, (0.4 * u,), (1,))
    img = np.empty((size, size, 3), np.float32)
    img[:] = (255, 200, 80)
    img *= (1 + 0.08 * tex)[..., None]
    img += tint[..., None] * np.float32([8, 8, 3])
    img *= (0.8 + 0.2 * _smooth(0.3, 1.1, r))[..., None]  # deeper canal is darker
    for _ in range(int(3.5 * (size / u) ** 2)):  # wax blobs: amber to brown
        c = rng.uniform(0, size, 2)
        if np.hypot(*(c / u - (size - 1) / 2 / u - (ox, oy))) < 0.4:
            continue
        ax = (rng.uniform(0.025, 0.09) * u, rng.uniform(0.02, 0.06) * u)
        angle, k = float(rng.uniform(0, 180)), rng.uniform()
        _stamp(
            img,
            c,
            (int(ax[0]) + 1, int(ax[1]) + 1),
            angle,
            0.15 * ax[0] + 0.5,
            0.9,
            (215 - 80 * k, 150 - 70 * k, 45 - 20 * k),
        )
    hairs = np.zeros((size, size), np.float32)
    for _ in range(int(10 * (size / u) ** 2)):
        c = rng.uniform(0, size, 2)
        d = (
            rng.uniform(0.04, 0.14)
            * u
            * np.array([math.cos(a := rng.uniform(0, np.pi)), math.sin(a)])
        )
        cv2.line(hairs, tuple(int(v) for v in c), tuple(int(v) for v in c + d), 1.0, 1, cv2.LINE_AA)
    _paint(img, hairs * 0.7 * _smooth(0.45, 0.6, r), (90, 60, 25))
    hole = _smooth(0.33, 0.25, r)  # the dark opening of the canal
    _paint(img, hole, (0, 0, 0))
    img += (hole * (1 - _smooth(0.0, 0.3, r)))[..., None] * np.float32([55, 32, 18])
    return img


def _nose(rng, size: int, u: float) -> np.ndarray:
    x, y = _grid(size, u)
    a = rng.uniform(-0.4, 0.4)
    period = rng.uniform(0.38, 0.48)
    v = -math.sin(a) * x + math.cos(a) * y + 0.35 * _fbm(rng, size, (1.2 * u,), (1,))
    phase = 2 * np.pi * v / period
    h = np.sin(phase)
    tex = _fbm(rng, size, (0.3 * u, 0.08 * u, 0.02 * u), (1, 0.5, 0.25))
    img = np.empty((size, size, 3), np.float32)
    img[:] = (245, 105, 120)
    lum = 0.62 + 0.38 * ((h + 1) / 2) ** 0.8 + 0.08 * np.cos(phase) + 0.07 * tex
    img *= lum[..., None]
    _paint(img, _smooth(-0.8, -0.97, h) * 0.85, (70, 15, 25))  # airway between turbinates
    _paint(
        img,
        _vessels(rng, size, u, int(2 * (size / u) ** 2), max(1.5, 0.022 * u), 0.08) * 0.55,
        (150, 25, 45),
    )
    _paint(img, _vessels(rng, size, u, int(4 * (size / u) ** 2), 1.0, 0.0) * 0.35, (190, 50, 70))
    return img


def _vocal_folds(rng, size: int, u: float) -> np.ndarray:
    x, y = _grid(size, u)
    img = np.empty((size, size, 3), np.float32)
    img[:] = (150, 85, 160)
    img *= (1 + 0.12 * _fbm(rng, size, (0.5 * u, 0.12 * u, 0.03 * u), (1, 0.5, 0.3)))[..., None]
    _paint(
        img,
        _vessels(rng, size, u, int(2 * (size / u) ** 2), max(1.5, 0.018 * u), 0.1) * 0.5,
        (120, 35, 75),
    )
    ay = -0.8 + rng.uniform(-0.05, 0.05)
    half = math.radians(rng.uniform(14, 20))
    length = 1.75
    ty = y - ay  # along the glottis axis, 0 at the anterior commissure
    # epiglottis: a pale pink arc above the apex
    er = np.sqrt(x * x + (y - ay + 0.6) ** 2)
    _paint(
        img,
        _smooth(0.07, 0.03, np.abs(er - 0.5))
        * _smooth(-0.2, 0.0, -(y - ay + 0.6) + 0.25)
        * (ty < 0),
        (225, 150, 160),
    )
    glot_w = ty * math.tan(half)
    for side in (-1.0, 1.0):
        dx, dy = side * math.sin(half), math.cos(half)
        t = np.clip(x * dx + ty * dy, 0, length)  # position along the arm
        d = np.sqrt((x - t * dx) ** 2 + (ty - t * dy) ** 2)
        w = 0.09 + 0.05 * t / length
        outer = (x * side) > (t * dx * side)
        ends = _smooth(length, length - 0.1, t) * _smooth(-0.02, 0.05, x * dx + ty * dy)
        false_fold = _smooth(w + 0.2, w + 0.15, d) * outer * ends
        shade = (0.75 + 0.25 * np.cos(np.clip((d - w) / 0.18, 0, 1) * np.pi / 2))[..., None]
        _paint(img, false_fold, (200, 100, 135))
        img *= 1 - (false_fold * 0.25 * (1 - shade[..., 0]))[..., None]
        _paint(img, _smooth(0.03, 0.0, np.abs(d - w - 0.02)) * outer * ends * 0.8, (110, 35, 65))
        fold = _smooth(w, w - 0.025, d) * ends
        _paint(img, fold, (238, 232, 228))
        img *= 1 - (fold * 0.12 * (d / w) ** 2)[..., None]
        bump = _smooth(
            0.2, 0.12, np.sqrt((x - (length + 0.05) * dx) ** 2 + (ty - (length + 0.05) * dy) ** 2)
        )
        _paint(img, bump, (205, 115, 145))
    inner = np.abs(x) < glot_w - (0.09 + 0.05 * ty / length)
    glottis = inner * _smooth(length * math.cos(half), length * math.cos(half) - 0.1, ty)
    glottis = cv2.GaussianBlur(glottis.astype(np.float32), (0, 0), 0.01 * u + 0.5)
    _paint(img, glottis, (22, 8, 14))
    return img


def room_texture(rng, size: int, u: float) -> np.ndarray:
    """Out-of-body view: blurry theatre lights, drapes and walls (no organ)."""
    base = _fbm(rng, size, (0.8 * u, 0.3 * u), (1, 0.4))
    img = np.empty((size, size, 3), np.float32)
    img[:] = (175, 178, 172)
    _paint(img, _smooth(0.2, 0.8, base), (70, 125, 135))  # green-blue drapes
    _paint(img, _smooth(-0.4, -1.2, base), (215, 200, 170))  # beige walls
    for _ in range(int(0.6 * (size / u) ** 2)):
        c = rng.uniform(0, size, 2).astype(int)
        r = int(rng.uniform(0.05, 0.15) * u)
        _stamp(img, c, (r, r), 0.0, 0.05 * u, 1.0, (252, 252, 246))
    return img


#: The painter of each organ's texture: ``painter(rng, size_px, unit_px)`` → float32 RGB.
ORGAN_TEXTURES = {"ear": _ear, "nose": _nose, "vocal_folds": _vocal_folds}
