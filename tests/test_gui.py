"""The live window, driven for real (pytest-qt, QT_QPA_PLATFORM=offscreen).

A generated clip is played as a camera (real time, drop-oldest policy) through the real
widgets, classifier and threads: labels appear on the video, the timeline grows, Stop and
Start work from the keyboard and the buttons, Ctrl+S writes a schema-valid
sections.json, and the painted pixels carry the section colours.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import jsonschema
import numpy as np
import pytest

pytest.importorskip("PyQt5")
pytest.importorskip("pytestqt")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtGui import QColor, QImage  # noqa: E402

from endostream.gui import palette  # noqa: E402
from endostream.gui.bridge import LiveBridge  # noqa: E402
from endostream.gui.controls import SourceChoice  # noqa: E402
from endostream.gui.overlay import VideoWidget  # noqa: E402
from endostream.gui.timeline import TimelineWidget  # noqa: E402
from endostream.gui.window import LiveWindow  # noqa: E402
from endostream.inference.classifier import Classifier  # noqa: E402
from endostream.output.sections_file import schema  # noqa: E402
from endostream.segmentation.config import SegmenterConfig  # noqa: E402
from endostream.segmentation.section import UNUSABLE, Section  # noqa: E402
from helpers.clips import encode_clip  # noqa: E402
from helpers.onnx_models import DEFAULT_ORGAN_COLORS, build_color_model  # noqa: E402

pytestmark = pytest.mark.gui

ORGANS = list(DEFAULT_ORGAN_COLORS)
FPS = 25
SCRIPT = (("nose", 2.0), ("black", 1.6), ("ear", 2.0))
CONFIG = SegmenterConfig(min_section_s=1.0, unusable_min_s=1.0)
#: Milliseconds the tests wait for something that takes a few seconds of video.
WAIT_MS = 30_000


def scene(label: str, index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A textured disc of the organ's colour on black; ``black`` is all dark."""
    import cv2

    img = np.zeros((height, width, 3), np.uint8)
    if label == "black":
        return img
    rng = np.random.default_rng(index)
    disc = np.zeros((height, width), np.uint8)
    cv2.circle(disc, (width // 2, height // 2), int(height * 0.46), 1, -1)
    noise = rng.uniform(-40, 40, (height, width, 1)).astype(np.float32)
    tex = np.clip(np.float32(DEFAULT_ORGAN_COLORS[label]) + noise, 0, 255).astype(np.uint8)
    img[disc > 0] = tex[disc > 0]
    return img


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    labels = [label for label, s in SCRIPT for _ in range(round(s * FPS))]
    return encode_clip(tmp_path_factory.mktemp("gui") / "procedure.mkv",
                       lambda i: scene(labels[i], i), n_frames=len(labels), fps=FPS,
                       codec="ffv1", pix_fmt="yuv420p")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    path = build_color_model(tmp_path_factory.mktemp("model") / "colour.onnx")
    with Classifier.load(path, device="cpu", threads=1) as clf:
        yield clf


@pytest.fixture
def window(qtbot, classifier, clip, tmp_path):
    w = LiveWindow(classifier, config=CONFIG, source=SourceChoice(file=clip, realtime=True),
                   out=tmp_path / "sections.json")
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()  # stops the session's threads (the suite fails tests that leak threads)


def colour_at(image: QImage, x: float, y: float) -> tuple[int, int, int]:
    c = QColor(image.pixel(int(x), int(y)))
    return c.red(), c.green(), c.blue()


def near(rgb: tuple[int, int, int], hex_colour: str, tol: int = 12) -> bool:
    ref = QColor(hex_colour)
    expected = (ref.red(), ref.green(), ref.blue())
    return all(abs(a - b) <= tol for a, b in zip(rgb, expected, strict=True))


def load(path: Path) -> dict:
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, schema())
    return doc


def test_clip_played_as_camera_labels_timeline_and_save(qtbot, window, tmp_path):
    window.start()
    qtbot.waitUntil(lambda: window.video.overlay_text().startswith("Nose"), timeout=WAIT_MS)
    assert window.video.overlay_text().endswith("· good")
    assert window.video.frames_painted > 0
    qtbot.waitUntil(lambda: window.timeline.now_s > 1.0, timeout=WAIT_MS)
    first_end = window.timeline.tentative[-1].end_s
    qtbot.waitUntil(lambda: window.timeline.tentative and
                    window.timeline.tentative[-1].end_s > first_end + 0.5, timeout=WAIT_MS)
    assert "latency" in window.status.text()  # the status line is live

    # The clip ends by itself: final sections, written to --out on the way.
    qtbot.waitUntil(lambda: not window.running, timeout=WAIT_MS)
    labels = [s.label for s in window.timeline.committed]
    assert labels == ["nose", UNUSABLE, "ear"]
    assert load(tmp_path / "sections.json")["complete"] is True
    assert window.start_button.text() == "Start"

    # Ctrl+S writes the same sections (to --out).
    (tmp_path / "sections.json").unlink()
    qtbot.keyClick(window, Qt.Key_S, Qt.ControlModifier)
    doc = load(tmp_path / "sections.json")
    assert [s["label"] for s in doc["sections"]] == labels

    # The timeline shows them in their colours; unusable is grey and hatched.
    tl = window.timeline
    image = tl.grab().toImage()
    y = tl.height() * 0.30
    nose, unusable, ear = tl.committed
    assert near(colour_at(image, tl.x_of((nose.start_s + nose.end_s) / 2), y), "#56B4E9")
    assert near(colour_at(image, tl.x_of((ear.start_s + ear.end_s) / 2), y), "#E69F00")
    xs = np.linspace(tl.x_of(unusable.start_s) + 3, tl.x_of(unusable.end_s) - 3, 12)
    greys = {colour_at(image, x, y) for x in xs}
    assert any(near(c, palette.UNUSABLE_COLOR) for c in greys) and len(greys) > 1


def test_stop_and_start_again_from_keyboard_and_button(qtbot, window, tmp_path):
    qtbot.keyClick(window, Qt.Key_Space)  # start
    qtbot.waitUntil(lambda: window.video.overlay_text() != "", timeout=WAIT_MS)
    first = window.session
    qtbot.keyClick(window, Qt.Key_Space)  # stop
    assert window.running  # stopping: the session ends on its own thread, then is joined
    qtbot.waitUntil(lambda: not window.running, timeout=WAIT_MS)
    assert window.status.text().startswith("Stopped")
    assert not first.complete  # a file stopped before its end
    doc = load(tmp_path / "sections.json")  # written when the session stopped
    assert doc["complete"] is False and doc["sections"][0]["label"] == "nose"

    qtbot.mouseClick(window.start_button, Qt.LeftButton)  # start again
    qtbot.waitUntil(lambda: window.session is not first and window.running, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.video.overlay_text().startswith("Nose"), timeout=WAIT_MS)
    window.close()  # closing stops every thread and writes --out
    assert not window.session.running
    assert not [t.name for t in threading.enumerate()
                if t.name.startswith("endostream-") and t.is_alive()]
    assert load(tmp_path / "sections.json")["sections"]


def test_a_camera_that_cannot_open_says_so(qtbot, window):
    window.controls.select(SourceChoice(camera="/nonexistent/video99"))
    window.start()
    qtbot.waitUntil(lambda: window.start_button.text() == "Start", timeout=WAIT_MS)
    assert "cannot open" in window.status.text() and window.session is None


def test_timeline_paints_committed_tentative_and_unusable(qtbot):
    tl = TimelineWidget(ORGANS)
    qtbot.addWidget(tl)
    tl.resize(800, tl.height())
    committed = [Section("nose", 0.0, 20.0, 0, 499, 0.9, 0.95),
                 Section(UNUSABLE, 20.0, 30.0, 500, 749, 0.1, 0.9)]
    tentative = [Section("vocal_folds", 30.0, 50.0, 750, 1249, 0.8, 0.9)]
    tl.set_sections(committed, tentative)
    image = tl.grab().toImage()
    y = tl.height() * 0.30
    assert near(colour_at(image, tl.x_of(10), y), "#56B4E9")
    tentative_px = colour_at(image, tl.x_of(40), y)
    assert not near(tentative_px, "#009E73") and tentative_px[1] > tentative_px[0]  # lighter
    assert len({colour_at(image, tl.x_of(20.5 + k * 0.3), y) for k in range(20)}) > 1  # hatch
    assert near(colour_at(image, tl.x_of(55), y), "#1C1F23")  # not yet seen
    tl.set_now(90.0)  # past the minimum span: the axis compresses
    assert tl.x_of(50) < tl.width() * 0.6


def test_overlay_shows_label_probability_and_quality(qtbot):
    video = VideoWidget(ORGANS)
    qtbot.addWidget(video)
    video.resize(640, 360)
    video.show_frame(scene("nose", 0, 640, 360))
    video.show_label("nose", 0.987, True)
    assert video.overlay_text() == "Nose 0.99 · good"
    image = video.grab().toImage()
    pixels = {colour_at(image, x, y) for x in range(0, 320, 2) for y in range(0, 60, 2)}
    assert any(near(p, palette.GOOD_COLOR, 6) for p in pixels)  # the badge
    assert any(near(p, "#56B4E9", 6) for p in pixels)  # the organ's chip
    video.show_label("vocal_folds", 0.61, False)
    assert video.overlay_text() == "Vocal folds 0.61 · poor image"


def test_bridge_keeps_only_the_newest_frame(qtbot):
    bridge = LiveBridge()
    signals = []
    bridge.frame_ready.connect(lambda: signals.append(bridge.take_frame()))
    poster = threading.Thread(target=lambda: [bridge.post_frame(i) for i in range(200)])
    poster.start()
    poster.join()
    qtbot.waitUntil(lambda: bool(signals), timeout=5000)
    assert signals[-1] == 199  # the newest frame always arrives
    assert len(signals) < 200 and bridge.stale_frames == 200 - len(signals)


def test_live_command_opens_the_window_and_writes_on_close(qapp, clip, tmp_path):
    """`endostream live --file ... --realtime --duration 2` with a window (offscreen)."""
    from endostream.commands import live

    model = build_color_model(tmp_path / "colour.onnx")
    out = tmp_path / "sections.json"
    parser = argparse.ArgumentParser()
    live.configure_parser(parser)
    args = parser.parse_args(["--file", str(clip), "--realtime", "--models", str(model),
                              "--device", "cpu", "--duration", "2", "--out", str(out),
                              "--min-section", "1"])
    assert live.run(args) == 0
    doc = load(out)
    assert doc["complete"] is False and doc["sections"][0]["label"] == "nose"
