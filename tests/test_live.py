"""Live: camera reconnection, real-time file playback, the drop policy, `endostream live`.

No camera exists on a test machine, so the camera tests give :class:`CameraSource` a fake
``VideoCapture`` (frames, then a vanishing device, then a device that comes back). Every
other part is real: clips encoded with PyAV, a small ONNX colour classifier, the real
threads. Checks are logical (counts, order, bounds with wide margins), never timings.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest

from endostream.errors import EXIT_INTERRUPTED, EndostreamError, SourceError
from endostream.inference.classifier import Classifier
from endostream.output.sections_file import schema
from endostream.pipeline.live import LiveSession
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.section import UNUSABLE
from endostream.sources.base import QueuePolicy
from endostream.sources.camera import STATE_LOST, STATE_STREAMING, CameraSource
from endostream.sources.realtime import RealtimeFileSource
from helpers.clips import encode_clip
from helpers.onnx_models import DEFAULT_ORGAN_COLORS, build_color_model

FPS = 25
#: The clip: (label, seconds); colours from the colour model, black is unusable.
SCRIPT = (("nose", 2.0), ("black", 2.4), ("ear", 2.0))
CONFIG = SegmenterConfig(min_section_s=1.0, unusable_min_s=1.0)
#: Frame time of the fake camera (about 100 fps: faster than the slow classifier below).
FAKE_FRAME_S = 0.01


def scene(label: str, index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """RGB frame: a textured disc of the organ's colour on black (black: all dark)."""
    img = np.zeros((height, width, 3), np.uint8)
    if label == "black":
        return img
    rng = np.random.default_rng(index)
    disc = np.zeros((height, width), np.uint8)
    cv2.circle(disc, (width // 2, height // 2), int(height * 0.46), 1, -1)
    colour = np.asarray(DEFAULT_ORGAN_COLORS[label], np.float32)
    noise = rng.uniform(-40, 40, (height, width, 1)).astype(np.float32)
    tex = np.clip(colour + noise, 0, 255).astype(np.uint8)
    img[disc > 0] = tex[disc > 0]
    return img


def script_frames() -> list[str]:
    return [label for label, seconds in SCRIPT for _ in range(round(seconds * FPS))]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    labels = script_frames()
    return encode_clip(tmp_path_factory.mktemp("live") / "procedure.mkv",
                       lambda i: scene(labels[i], i), n_frames=len(labels), fps=FPS,
                       codec="ffv1", pix_fmt="yuv420p")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return build_color_model(tmp_path_factory.mktemp("model") / "colour.onnx")


@pytest.fixture(scope="module")
def classifier(model_path):
    with Classifier.load(model_path, device="cpu", threads=1) as clf:
        yield clf


class SlowClassifier:
    """The real classifier, made slower than the source on purpose."""

    def __init__(self, inner: Classifier, delay_s: float):
        self.inner, self.delay_s = inner, delay_s
        self.heads = inner.heads

    def run(self, batch):
        time.sleep(self.delay_s)
        return self.inner.run(batch)

    def describe(self):
        return self.inner.describe()


class FakeCapture:
    """A ``cv2.VideoCapture`` stand-in: ``fail_after`` frames, then the device is gone."""

    def __init__(self, label: str = "nose", *, fail_after: int | None = None, opened: bool = True,
                 frame_s: float = FAKE_FRAME_S):
        self.bgr = cv2.cvtColor(scene(label, 0), cv2.COLOR_RGB2BGR)
        self.fail_after, self.opened, self.frame_s = fail_after, opened, frame_s
        self.reads = 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def read(self):
        if self.released or (self.fail_after is not None and self.reads >= self.fail_after):
            return False, None
        self.reads += 1
        if self.frame_s:
            time.sleep(self.frame_s)
        return True, self.bgr.copy()

    def get(self, prop: int) -> float:
        return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        self.released = True


class Script:
    """``open_fn`` that hands out the given captures in turn (then the last one again)."""

    def __init__(self, *captures: FakeCapture):
        self.captures = list(captures)
        self.calls = 0

    def __call__(self, device):
        cap = self.captures[min(self.calls, len(self.captures) - 1)]
        self.calls += 1
        return cap


def gone() -> FakeCapture:
    return FakeCapture(opened=False)


# -- camera ------------------------------------------------------------------------------


def test_camera_reconnects_when_the_device_vanishes(caplog):
    caplog.set_level(logging.WARNING, logger="endostream.sources.camera")
    first = FakeCapture(fail_after=20, frame_s=0)
    script = Script(first, gone(), gone(), FakeCapture("ear", frame_s=0))
    with CameraSource(0, open_fn=script, reconnect_initial_s=0.01, reconnect_max_s=0.02) as cam:
        assert cam.policy is QueuePolicy.DROP_OLDEST and cam.info.live
        assert (cam.info.width, cam.info.height, cam.info.fps) == (320, 240, 30.0)
        frames = [cam.read() for _ in range(40)]
        assert cam.reconnects == 1 and cam.reconnect_attempts == 3
        assert cam.state == STATE_STREAMING
    assert cam.state == "closed" and first.released
    # 20 reads, of which the first probed the device; then 21 from the second device.
    assert [f.index for f in frames] == list(range(40))
    pts = [f.pts_s for f in frames]
    assert pts == sorted(pts) and pts[0] == 0.0
    assert all(f.image.shape == (224, 224, 3) and f.display.shape == (240, 320, 3) for f in frames)
    assert frames[0].display[120, 160].tolist() != frames[-1].display[120, 160].tolist()
    messages = [r.getMessage() for r in caplog.records]
    assert any("lost" in m for m in messages) and any("is back" in m for m in messages)


def test_camera_that_cannot_be_opened_is_a_one_line_source_error():
    with pytest.raises(SourceError) as e:
        CameraSource(3, open_fn=Script(gone()))
    assert "camera:3" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SourceError, match="delivers no images"):
        CameraSource("/dev/video9", open_fn=Script(FakeCapture(fail_after=0)))


def test_camera_gives_up_after_give_up_s():
    cam = CameraSource(0, open_fn=Script(FakeCapture(fail_after=3, frame_s=0), gone()),
                       reconnect_initial_s=0.01, reconnect_max_s=0.02, give_up_s=0.05)
    with cam, pytest.raises(SourceError, match="did not come back"):
        while cam.read() is not None:
            pass
    assert cam.state in (STATE_LOST, "closed")


def test_interrupt_ends_a_reconnect_wait():
    cam = CameraSource(0, open_fn=Script(FakeCapture(fail_after=1, frame_s=0), gone()),
                       reconnect_initial_s=60.0)
    results: list = []
    reader = threading.Thread(target=lambda: results.extend([cam.read(), cam.read()]))
    reader.start()
    while cam.state != "reconnecting" and reader.is_alive():
        reader.join(0.01)
    cam.interrupt()
    reader.join(5.0)
    assert not reader.is_alive() and results[-1] is None
    cam.close()


def test_live_session_keeps_going_through_a_reconnect(classifier):
    script = Script(FakeCapture("nose", fail_after=30), gone(), FakeCapture("ear"))
    cam = CameraSource(0, open_fn=script, reconnect_initial_s=0.01, reconnect_max_s=0.02)
    after = threading.Event()
    seen = []
    back_at: list[float] = []

    def on_result(pred, snap):
        seen.append(snap.current_label)
        if cam.reconnects:
            back_at.append(pred.pts_s)
            if pred.pts_s - back_at[0] > 2.5:  # long enough for an ear section to stand
                after.set()

    session = LiveSession(cam, classifier, config=CONFIG, on_result=on_result)
    session.start()
    try:
        assert after.wait(30), f"no results after the reconnect (state {cam.state})"
    finally:
        sections = session.stop()
    stats = session.stats()
    assert stats.reconnects == 1 and stats.source_state == "closed"
    assert session.complete  # a camera stopped by the user covers all it saw
    assert "nose" in seen and seen[-1] == "ear"
    assert [s.label for s in sections][-1] == "ear"


# -- real-time file ----------------------------------------------------------------------


def test_realtime_file_is_paced_by_its_timestamps(clip):
    speed = 4.0
    with RealtimeFileSource(clip, speed=speed) as src:
        assert src.policy is QueuePolicy.DROP_OLDEST
        frames = []
        while (f := src.read()) is not None:
            frames.append(f)
    n = len(script_frames())
    assert [f.index for f in frames] == list(range(n))
    assert [f.pts_s for f in frames] == pytest.approx([i / FPS for i in range(n)], abs=1e-3)
    assert all(f.display is not None for f in frames)
    released = np.array([f.captured_ns for f in frames]) / 1e9
    # Never ahead of the video clock: frame k is released no earlier than pts_k / speed.
    lead = (released - released[0]) - np.array([f.pts_s for f in frames]) / speed
    assert lead.min() > -0.01
    assert released[-1] - released[0] >= 0.95 * (n - 1) / FPS / speed


def test_interrupt_stops_realtime_playback(clip):
    src = RealtimeFileSource(clip, speed=0.01)  # 100 x slower: would take minutes
    assert src.read() is not None
    got: list = []
    reader = threading.Thread(target=lambda: got.append(src.read()))
    reader.start()
    src.interrupt()
    reader.join(5.0)
    src.close()
    assert not reader.is_alive() and got == [None]


def test_session_on_a_realtime_file_finds_the_sections(clip, classifier):
    displayed = []
    session = LiveSession(RealtimeFileSource(clip, speed=3.0), classifier, config=CONFIG,
                          on_display=lambda f: displayed.append(f.index))
    session.start()
    assert session.wait(60), "the file did not end"
    sections = session.stop()
    assert session.complete
    assert [s.label for s in sections] == ["nose", UNUSABLE, "ear"]
    now = session.latest.current  # what the overlay shows: the classifier's confidence
    assert now.label == "ear" and now.prob > 0.9 and now.quality_good
    n = len(script_frames())
    assert displayed == list(range(n))  # the display path sees every frame
    assert sections[-1].end_frame == n - 1
    assert sections[-1].end_s == pytest.approx(n / FPS, abs=1e-6)
    assert sections[1].start_s == pytest.approx(2.0, abs=0.5)
    assert sections[2].start_s == pytest.approx(4.4, abs=0.5)


# -- drop policy ---------------------------------------------------------------------------


def test_slow_inference_drops_frames_and_latency_stays_bounded(classifier):
    delay_s = 0.1
    slow = SlowClassifier(classifier, delay_s)
    cam = CameraSource(0, open_fn=Script(FakeCapture("nose")))
    preds = []
    drops_at = {}
    done = threading.Event()
    session = None

    def on_result(pred, snap):
        preds.append(pred)
        if len(preds) in (12, 40):
            drops_at[len(preds)] = session.stats().dropped
        if len(preds) >= 40:
            done.set()

    session = LiveSession(cam, slow, batch_size=4, config=CONFIG, on_result=on_result)
    session.start()
    try:
        assert done.wait(60)
    finally:
        session.stop()
    stats = session.stats()
    assert 0 < drops_at[12] < drops_at[40] <= stats.dropped
    # Every captured frame was analysed or dropped, but for those in flight at the stop
    # (a queue and a batch at most, plus the one being read).
    assert 0 <= stats.captured - stats.analysed - stats.dropped <= 2 * 4 + 1
    # A frame waits for at most one batch in the queue, then its own batch: about
    # 2 x delay. Five times that is a generous bound that a growing backlog would break.
    bound_ms = 5 * 2 * delay_s * 1000
    late = [p.latency_ms for p in preds[len(preds) // 2:]]
    assert max(late) < bound_ms, late
    assert stats.latency_p99_ms is not None and stats.latency_p99_ms < bound_ms
    gaps = np.diff([p.index for p in preds])
    assert gaps.min() >= 1 and gaps.max() > 1  # analysed frames skip the dropped ones


def test_stop_joins_every_thread_and_raises_thread_errors(classifier):
    class Broken(SlowClassifier):
        def run(self, batch):
            raise RuntimeError("GPU fell off the bus")

    cam = CameraSource(0, open_fn=Script(FakeCapture("nose")))
    session = LiveSession(cam, Broken(classifier, 0), config=CONFIG)
    session.start()
    assert session.wait(10)
    with pytest.raises(RuntimeError, match="fell off"):
        session.stop()
    assert not session.complete
    assert not [t.name for t in threading.enumerate()
                if t.name.startswith("endostream-") and t.is_alive()]


# -- the command ---------------------------------------------------------------------------


def run_live(argv: list[str]) -> int:
    """``endostream live ARGV`` in-process (through cli.main once 'live' is registered)."""
    from endostream import cli

    if "live" in cli.COMMANDS:
        return cli.main(["live", *argv])
    from endostream.commands import live

    parser = argparse.ArgumentParser()
    live.configure_parser(parser)
    args = parser.parse_args(argv)
    args.verbose = 0
    try:
        return live.run(args)
    except EndostreamError as e:  # what cli.main does with it
        print(f"endostream: error: {e}", file=sys.stderr)
        return e.exit_code


def load(path: Path) -> dict:
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, schema())
    return doc


def test_headless_writes_schema_valid_sections(clip, model_path, tmp_path, capsys):
    out = tmp_path / "sections.json"
    code = run_live(["--file", str(clip), "--headless", "--out", str(out), "--models",
                     str(model_path), "--device", "cpu", "--min-section", "1"])
    assert code == 0
    doc = load(out)
    assert doc["complete"] is True
    assert [s["label"] for s in doc["sections"]] == ["nose", UNUSABLE, "ear"]
    assert doc["source"]["frames"] == len(script_frames())
    assert doc["analysis"]["frames_analysed"] == len(script_frames())  # a file waits: no drops
    assert doc["analysis"]["segmenter"]["mode"] == "live"
    assert "wrote" in capsys.readouterr().err
    from endostream.sources.fingerprint import recording_fingerprint
    assert doc["source"]["fingerprint"] == recording_fingerprint(clip)  # readers check it


def test_headless_realtime_status_lines_and_duration(clip, model_path, tmp_path, capsys):
    out = tmp_path / "sections.json"
    code = run_live(["--file", str(clip), "--realtime", "--headless", "--out", str(out),
                     "--models", str(model_path), "--device", "cpu", "--duration", "2.5"])
    assert code == 0
    err = capsys.readouterr().err
    status = [line for line in err.splitlines() if "analysed" in line and "latency" in line]
    assert status, err
    assert "dropped" in status[-1] and "fps" in status[-1]
    doc = load(out)
    assert doc["complete"] is False  # stopped before the end of the file
    assert 0 < doc["analysis"]["frames_analysed"] < len(script_frames())


@pytest.mark.parametrize("argv, fragment", [
    (["--headless"], "--out"),
    (["--realtime", "--headless", "--out", "x.json"], "--file"),
    (["--duration", "0", "--headless", "--out", "x.json"], "--duration"),
])
def test_bad_arguments_fail_with_one_line(clip, capsys, argv, fragment):
    assert run_live(["--file", str(clip), *argv] if "--realtime" not in argv else argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_a_headless_session_and_writes(clip, model_path, tmp_path, sig):
    out = tmp_path / "s.json"
    code = ("import sys; from endostream import cli; "
            "cli.COMMANDS.setdefault('live', ('endostream.commands.live', 'live')); "
            "sys.exit(cli.main(sys.argv[1:]))")
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "live", "--file", str(clip), "--realtime", "--headless",
         "--out", str(out), "--models", str(model_path), "--device", "cpu", "--threads", "1"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = ""
        while "latency" not in line:  # the first status line: the session is running
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "live ended before its first status line"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED, err  # a file stopped before its end
    assert "Traceback" not in err and "still running" not in err
    # A stop is reported as one, not as an error (issue 12).
    assert "endostream: error" not in err
    assert "stopped (Ctrl+C or SIGTERM) before the end" in err
    doc = load(out)
    assert doc["complete"] is False and doc["sections"][0]["label"] == "nose"


def test_window_without_a_screen_suggests_headless(clip, monkeypatch, capsys):
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    assert run_live(["--file", str(clip)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--headless" in err and len(err.splitlines()) == 1
