"""Content-area detection, the caching cropper and preprocess(): real footage and masks.

Real footage (``shared/data``) is the ground truth that matters: a laparoscope's clipped
disc, a rigid scope's disc, a small off-centre disc on an HD camera head, and a street
video with no border at all. Generated masks cover the shapes and the noise around them.
"""

from __future__ import annotations

import functools

import av
import cv2
import numpy as np
import pytest

from endostream.crop import (
    CONFIRM_INTERVAL_S,
    RECHECK_INTERVAL_S,
    ContentArea,
    ContentCropper,
    detect_content_area,
    find_content_area,
    preprocess,
)


def _rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _video_frames(path, indices) -> list[np.ndarray]:
    wanted, out = set(indices), []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out.append(frame.to_ndarray(format="rgb24"))
            if i >= max(wanted):
                break
    return out


def _contains(area: ContentArea, x: float, y: float) -> bool:
    return area.x <= x < area.x + area.w and area.y <= y < area.y + area.h


def _bright_centroid(image: np.ndarray, level: int = 60) -> tuple[float, float, np.ndarray]:
    """Independent disc estimate: centroid of the clearly bright pixels."""
    bright = image.max(axis=2) > level
    ys, xs = np.nonzero(bright)
    return xs.mean(), ys.mean(), bright


# --- generated frames --------------------------------------------------------------------

RNG_SEED = 1234


def _texture(h, w, level=150, seed=RNG_SEED) -> np.ndarray:
    """Tissue-like content: smooth colour blobs plus fine grain, never near black."""
    rng = np.random.default_rng(seed)
    low = cv2.resize(rng.uniform(0.6, 1.0, (6, 8, 3)).astype(np.float32), (w, h))
    grain = rng.normal(0, 8, (h, w, 3))
    tint = np.array([1.0, 0.7, 0.6])
    return np.clip(level * low * tint + grain, 40, 255).astype(np.uint8)


def disc_image(w, h, cx, cy, r, *, noise=0.0, jpeg=None, seed=RNG_SEED) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (cx, cy), r, 1, -1, lineType=cv2.LINE_8)
    img = _texture(h, w, seed=seed) * mask[..., None]
    return _degrade(img, noise, jpeg, seed)


def rounded_rect_image(w, h, x, y, rw, rh, radius, *, noise=0.0, jpeg=None) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    cv2.rectangle(mask, (x + radius, y), (x + rw - 1 - radius, y + rh - 1), 1, -1)
    cv2.rectangle(mask, (x, y + radius), (x + rw - 1, y + rh - 1 - radius), 1, -1)
    for cx, cy in [(x + radius, y + radius), (x + rw - 1 - radius, y + radius),
                   (x + radius, y + rh - 1 - radius), (x + rw - 1 - radius, y + rh - 1 - radius)]:
        cv2.circle(mask, (cx, cy), radius, 1, -1)
    return _degrade(_texture(h, w) * mask[..., None], noise, jpeg, RNG_SEED)


def _degrade(img, noise, jpeg, seed) -> np.ndarray:
    if noise:
        rng = np.random.default_rng(seed + 1)
        img = np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(img)


def _assert_box_close(area: ContentArea, expected, tol: float) -> None:
    x, y, w, h = expected
    size = max(w, h)
    got = np.array(area.box, float)
    assert np.all(np.abs(got - np.array(expected, float)) <= tol * size), (area.box, expected)


# --- real footage ------------------------------------------------------------------------

def test_laparoscopy_clip_is_a_circle_near_the_centre(shared_data):
    for img in _video_frames(shared_data / "laparoscopy_circular_fov.mp4", [0, 12, 24]):
        h, w = img.shape[:2]
        area = find_content_area(img)
        assert area.shape == "circle"
        cx, cy, r = area.circle
        assert abs(cx - w / 2) < 0.05 * w and abs(cy - h / 2) < 0.1 * h
        # The disc is clipped by the top and bottom edges, black at the sides.
        assert (area.y, area.h) == (0, h)
        assert 0.80 * w < area.w < 0.95 * w
        centroid_x, centroid_y, _ = _bright_centroid(img)
        assert _contains(area, centroid_x, centroid_y)


@pytest.mark.parametrize("name", ["frame_001.jpg", "frame_004.jpg", "frame_008.jpg"])
def test_rigid_endoscope_frames_are_circles(shared_data, name):
    img = _rgb(shared_data / "endoscope_frames" / name)
    area = find_content_area(img)
    assert area.shape == "circle"
    cx, cy, _ = _bright_centroid(img)
    assert _contains(area, cx, cy)
    # The disc nearly fills the 768x710 frame height; the black sides are cut off.
    assert 0.85 * img.shape[0] < area.h <= img.shape[0]
    assert area.w * area.h < 0.9 * img.shape[0] * img.shape[1]


@pytest.mark.parametrize("name", ["hd_frame_001.jpg", "hd_frame_006.jpg"])
def test_small_off_centre_disc_on_hd_frame(shared_data, name):
    img = _rgb(shared_data / "endoscope_frames" / name)
    area = find_content_area(img)
    assert area.shape == "circle"
    assert area.w * area.h < 0.35 * img.shape[0] * img.shape[1]
    cx, cy, bright = _bright_centroid(img)
    assert _contains(area, cx, cy)
    # The crop holds the disc: nearly all clearly bright pixels (a logo is the rest).
    inside = bright[area.y:area.y + area.h, area.x:area.x + area.w].sum()
    assert inside >= 0.97 * bright.sum()


def test_street_video_without_border_is_full_frame(shared_data):
    for img in _video_frames(shared_data / "city_cc0.mpg", [0, 60, 120, 180]):
        area = find_content_area(img)
        assert area.shape == "full"
        assert area.box == (0, 0, img.shape[1], img.shape[0])


# --- generated masks ---------------------------------------------------------------------

@pytest.mark.parametrize("w,h,cx,cy,r", [
    (640, 480, 320, 240, 200),
    (1280, 720, 640, 360, 330),
    (1920, 1080, 900, 500, 250),
    (200, 150, 100, 75, 60),
])
def test_disc_gives_its_bounding_square(w, h, cx, cy, r):
    area = find_content_area(disc_image(w, h, cx, cy, r))
    assert area.shape == "circle"
    _assert_box_close(area, (cx - r, cy - r, 2 * r + 1, 2 * r + 1), tol=0.03)
    fx, fy, fr = area.circle
    assert abs(fx - (cx + 0.5)) <= 0.02 * r and abs(fy - (cy + 0.5)) <= 0.02 * r
    assert abs(fr - r) <= 0.03 * r


def test_disc_clipped_by_the_frame_edge():
    # Laparoscope style: taller than the frame.
    area = find_content_area(disc_image(1280, 720, 640, 360, 560))
    assert area.shape == "circle" and (area.y, area.h) == (0, 720)
    _assert_box_close(area, (80, 0, 1121, 720), tol=0.02)
    # Off to one side, a third of it outside the frame.
    area = find_content_area(disc_image(640, 480, 100, 240, 200))
    assert area.shape == "circle"
    assert area.x == 0
    _assert_box_close(area, (0, 40, 301, 401), tol=0.03)
    assert area.circle[0] == pytest.approx(100.5, abs=5)


def test_rounded_rectangle_gives_its_bounding_box():
    area = find_content_area(rounded_rect_image(640, 480, 80, 40, 480, 400, 60))
    assert area.shape == "rect" and area.circle is None
    _assert_box_close(area, (80, 40, 480, 400), tol=0.01)
    # Full height, black pillars left and right (16:9 sensor, 4:3 scope image).
    area = find_content_area(rounded_rect_image(1280, 720, 160, 0, 960, 720, 100))
    assert area.shape == "rect"
    _assert_box_close(area, (160, 0, 960, 720), tol=0.01)


def test_rounded_rectangle_filling_the_frame_is_full():
    area = find_content_area(rounded_rect_image(640, 480, 0, 0, 640, 480, 40))
    assert area.shape == "full" and area.box == (0, 0, 640, 480)


def test_no_border_is_full_frame():
    img = _texture(480, 640)
    assert find_content_area(img) == ContentArea.full(640, 480)


@pytest.mark.parametrize("value", [0, 3, 128, 255])
def test_uniform_frame_says_nothing_and_falls_back_to_full(value):
    img = np.full((120, 160, 3), value, np.uint8)
    assert detect_content_area(img) is None
    assert find_content_area(img).shape == "full"


def test_dark_frame_with_a_small_spot_says_nothing():
    img = np.zeros((480, 640, 3), np.uint8)
    cv2.circle(img, (500, 100), 12, (200, 200, 200), -1)
    assert detect_content_area(img) is None


@pytest.mark.parametrize("noise,jpeg", [(12, None), (25, None), (0, 10), (8, 15)])
def test_noisy_and_compressed_borders(noise, jpeg):
    area = find_content_area(disc_image(640, 480, 320, 240, 200, noise=noise, jpeg=jpeg))
    assert area.shape == "circle"
    _assert_box_close(area, (120, 40, 401, 401), tol=0.05)
    area = find_content_area(rounded_rect_image(640, 480, 80, 40, 480, 400, 60,
                                                noise=noise, jpeg=jpeg))
    assert area.shape == "rect"
    _assert_box_close(area, (80, 40, 480, 400), tol=0.03)


def test_lifted_black_level_still_counts_as_border():
    # Some camera heads put black at ~17 instead of 0 (hd_frame_*.jpg do).
    img = disc_image(640, 480, 320, 240, 150)
    img[img.max(axis=2) == 0] = 17
    area = find_content_area(img)
    assert area.shape == "circle"
    _assert_box_close(area, (170, 90, 301, 301), tol=0.03)


def test_grey_and_tiny_inputs():
    grey = disc_image(640, 480, 320, 240, 200).max(axis=2)
    assert find_content_area(grey).shape == "circle"
    assert find_content_area(grey[..., None]).shape == "circle"
    tiny = disc_image(64, 48, 32, 24, 18)
    area = find_content_area(tiny)
    assert area.shape == "circle" and area.frame_w == 64
    with pytest.raises(ValueError):
        find_content_area(np.zeros((48, 64, 3), np.float32))


def test_content_area_crop_checks_the_frame_size():
    area = ContentArea(10, 20, 30, 40, "rect", 100, 80)
    img = np.arange(80 * 100 * 3, dtype=np.uint32).reshape(80, 100, 3).astype(np.uint8)
    view = area.crop(img)
    assert view.shape == (40, 30, 3) and np.shares_memory(view, img)
    with pytest.raises(ValueError, match="detect it again"):
        area.crop(np.zeros((81, 100, 3), np.uint8))
    with pytest.raises(ValueError):
        ContentArea(90, 0, 20, 10, "rect", 100, 80)  # sticks out of the frame
    assert area.iou(area) == 1.0 and area.iou(ContentArea.full(100, 80)) == pytest.approx(0.15)
    assert area.to_json()["shape"] == "rect"


# --- preprocess --------------------------------------------------------------------------

def test_preprocess_output_contract():
    img = disc_image(1280, 720, 640, 360, 330)
    area = find_content_area(img)
    for a in (area, ContentArea.full(1280, 720), ContentArea(5, 7, 97, 61, "rect", 1280, 720)):
        out = preprocess(img, a)
        assert out.shape == (224, 224, 3) and out.dtype == np.uint8
        assert out.flags.c_contiguous
    assert preprocess(img, area, size=96).shape == (96, 96, 3)
    grey = img.max(axis=2)
    out = preprocess(grey, area)
    assert out.shape == (224, 224, 3) and np.array_equal(out[..., 0], out[..., 2])


def test_preprocess_uses_only_the_crop():
    img = np.zeros((480, 640, 3), np.uint8)
    img[:, :320] = (255, 0, 0)
    img[:, 320:] = (0, 0, 255)
    out = preprocess(img, ContentArea(330, 10, 300, 460, "rect", 640, 480))
    assert np.all(out == (0, 0, 255))


@pytest.mark.parametrize("w,h", [(300, 460), (460, 300), (448, 448), (97, 61), (1120, 720)])
def test_preprocess_keeps_flat_colours_exact(w, h):
    # Guards the box-filter path against OpenCV 5.0.0's broken 1x2/2x1 kernels.
    for colour in [(0, 0, 255), (255, 255, 255), (255, 0, 0), (128, 64, 255)]:
        img = np.empty((h, w, 3), np.uint8)
        img[:] = colour
        out = preprocess(img, ContentArea.full(w, h))
        assert np.all(out == colour), (colour, np.unique(out.reshape(-1, 3), axis=0))


def test_preprocess_is_close_to_area_averaging_on_smooth_content():
    rng = np.random.default_rng(7)
    img = cv2.resize(rng.integers(0, 256, (90, 160, 3), np.uint8), (1280, 720),
                     interpolation=cv2.INTER_CUBIC)
    area = ContentArea(80, 0, 1120, 720, "rect", 1280, 720)
    ref = cv2.resize(area.crop(img), (224, 224), interpolation=cv2.INTER_AREA)
    diff = np.abs(preprocess(img, area).astype(np.int16) - ref)
    assert diff.mean() < 1.0


@pytest.mark.parametrize("w,h", [(1280, 720), (1920, 1080), (720, 405)])
def test_preprocess_does_not_alias_fine_stripes(w, h):
    # 1-pixel black/white stripes must average to grey; point sampling would keep
    # bands of black and white (the moire a model would learn per camera resolution).
    img = np.zeros((h, w, 3), np.uint8)
    img[:, ::2] = 255
    img[::2, :] = 255 - img[::2, :]  # checkerboard: both directions
    out = preprocess(img, ContentArea.full(w, h)).astype(float)
    assert abs(out.mean() - 127.5) < 4
    assert out.std() < 12
    plain = cv2.resize(img, (224, 224), interpolation=cv2.INTER_LINEAR).astype(float)
    assert plain.std() > 3 * out.std()  # the test pattern does alias without a prefilter


# --- ContentCropper ----------------------------------------------------------------------

DISC_A = (320, 240, 200)
DISC_B = (200, 200, 150)


@functools.cache
def _frame(disc=DISC_A, *, black=False):
    """Cached: the cropper tests feed the same few frames hundreds of times."""
    if black:
        return np.zeros((480, 640, 3), np.uint8)
    return disc_image(640, 480, *disc)


def test_cropper_retries_until_a_real_area_shows_up():
    cropper = ContentCropper()
    assert cropper.area is None
    for i in range(3):
        out = cropper(_frame(black=True), i * 0.2)
        assert out.shape == (224, 224, 3)
        assert cropper.area.shape == "full" and not cropper.found
    assert cropper.checks == 3  # tried on every black frame, nothing cached
    cropper(_frame(), 0.6)
    assert cropper.found and cropper.area.shape == "circle"


def test_cropper_checks_only_now_and_then():
    cropper = ContentCropper()
    frame = _frame()
    for i in range(100):  # 20 s at 5 fps
        cropper(frame, i * 0.2)
    # first, confirmation after CONFIRM_INTERVAL_S, then one per RECHECK_INTERVAL_S
    assert cropper.checks <= 2 + int(20 / RECHECK_INTERVAL_S)
    assert cropper.changes == 0


def test_cropper_follows_a_scope_change_after_two_agreeing_checks():
    cropper = ContentCropper()
    switch_s = 10.0
    a_area = find_content_area(_frame(DISC_A))
    b_area = find_content_area(_frame(DISC_B))
    changed_at = None
    for i in range(150):  # 30 s at 5 fps
        t = i * 0.2
        cropper(_frame(DISC_A if t < switch_s else DISC_B), t)
        if t < switch_s:
            assert cropper.area == a_area
        elif changed_at is None and cropper.area == b_area:
            changed_at = t
    assert changed_at is not None and cropper.changes == 1
    assert switch_s < changed_at <= switch_s + RECHECK_INTERVAL_S + CONFIRM_INTERVAL_S + 0.2
    assert cropper.area == b_area


def test_black_frames_and_one_odd_frame_do_not_move_the_crop():
    cropper = ContentCropper()
    a_area = find_content_area(_frame(DISC_A))
    for i in range(200):  # 40 s at 5 fps
        t = i * 0.2
        if 9.0 <= t < 13.0 or 20.0 <= t < 21.5:
            frame = _frame(black=True)  # scope pulled out / covered
        elif 25.0 <= t < 25.5:
            frame = _frame(DISC_B)  # a glimpse of something else, shorter than a confirm
        else:
            frame = _frame(DISC_A)
        cropper(frame, t)
        assert cropper.area == a_area, t
    assert cropper.changes == 0


def test_cropper_starts_over_on_a_new_frame_size_or_a_seek():
    cropper = ContentCropper()
    cropper(_frame(), 0.0)
    small = disc_image(320, 240, 160, 120, 100)
    cropper(small, 0.2)
    assert (cropper.area.frame_w, cropper.area.frame_h) == (320, 240)
    checks = cropper.checks
    cropper(small, 0.4)
    assert cropper.checks == checks
    cropper(small, 0.1)  # time went backwards: look again now
    assert cropper.checks == checks + 1


def test_cropper_output_matches_preprocess():
    cropper = ContentCropper(size=128)
    frame = _frame()
    out = cropper(frame, 0.0)
    assert np.array_equal(out, preprocess(frame, find_content_area(frame), 128))
