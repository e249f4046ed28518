"""FileSource on clips encoded here (every container/codec/pixel format we promise), its
errors, damaged files, real footage, and the CaptureThread that drives a source.

Frames carry their number in big cells (helpers.clips.index_frame), so a decoded frame says
which source frame it is, whatever the codec did to it.
"""

from __future__ import annotations

import os
import pickle
import queue
import threading

import cv2
import numpy as np
import pytest

from endostream.crop import ContentCropper
from endostream.errors import DecodeError, UsageError, VideoError
from endostream.frames import Frame, SourceInfo
from endostream.sources import (
    CAPTURE_THREAD_NAME,
    DEFAULT_SAMPLE_FPS,
    END_OF_STREAM,
    CaptureThread,
    FileSource,
    FrameSource,
    QueuePolicy,
)
from helpers.clips import (
    damaged_copy,
    display_matrix_unsupported,
    encode_audio_only,
    encode_clip,
    encode_format,
    index_frame,
    index_frames,
    read_index,
    trimmed_copy,
    truncated_copy,
)

#: Generous bound for a thread to finish after it was told to (a liveness check, not a
#: timing assertion: a healthy thread ends within one POLL_INTERVAL_S).
JOIN_S = 10.0


def read_all(source) -> list[Frame]:
    out = []
    while (frame := source.read()) is not None:
        out.append(frame)
    return out


def noise_frames(n, w=128, h=96):
    """Incompressible frames: bytes spread evenly over the file, so cuts land mid-video."""
    return [np.random.default_rng(i).integers(0, 256, (h, w, 3), np.uint8) for i in range(n)]


# --- decoding and sampling ---------------------------------------------------------------

def test_every_frame_of_a_cfr_clip(tmp_path):
    path = encode_format(tmp_path, "mp4", index_frames(30))
    with FileSource(path, sample_fps=None, keep_display=True) as src:
        assert src.info == SourceInfo(path=str(path), fps=25.0, frames=30, duration_s=1.2,
                                      width=64, height=48)
        frames = read_all(src)
        assert src.decoded_frames == src.converted_frames == src.analysed_frames == 30
        assert src.last_pts_s == pytest.approx(29 / 25)
    assert [f.index for f in frames] == list(range(30))
    assert [read_index(f.display) for f in frames] == list(range(30))
    assert [f.pts_s for f in frames] == pytest.approx([i / 25 for i in range(30)], abs=1e-6)
    for f in frames:
        assert f.image.shape == (224, 224, 3) and f.image.dtype == np.uint8
        assert f.display.shape == (48, 64, 3)
        assert f.captured_ns > 0
    assert all(a.captured_ns <= b.captured_ns for a, b in zip(frames, frames[1:], strict=False))


def test_sampling_picks_frames_by_time_and_converts_only_those(tmp_path):
    path = encode_format(tmp_path, "mp4", index_frames(50))  # 2 s at 25 fps
    with FileSource(path, sample_fps=5.0, keep_display=True) as src:
        frames = read_all(src)
        assert src.decoded_frames == 50
        # Only analysed frames are converted to RGB; the rest are only decoded.
        assert src.converted_frames == src.analysed_frames == 10
    assert [f.index for f in frames] == list(range(0, 50, 5))
    assert [read_index(f.display) for f in frames] == list(range(0, 50, 5))
    assert [f.pts_s for f in frames] == pytest.approx([k * 0.2 for k in range(10)], abs=1e-6)


def test_sampling_at_a_rate_that_does_not_divide_the_frame_rate(tmp_path):
    path = encode_format(tmp_path, "mkv", index_frames(50))
    with FileSource(path, sample_fps=7.0) as src:
        frames = read_all(src)
    # The first frame at or after each tick k/7 s.
    expected = [next(i for i in range(50) if i / 25 >= k / 7 - 1e-9) for k in range(14)]
    assert [f.index for f in frames] == expected


def test_default_sample_rate():
    assert DEFAULT_SAMPLE_FPS == 5.0


@pytest.mark.parametrize("recipe", ["mkv", "mp4"])
def test_variable_frame_rate_timestamps_are_exact(tmp_path, recipe):
    pts_ms = [0, 40, 100, 110, 200, 1000, 1033]
    path = encode_format(tmp_path, recipe, index_frames(len(pts_ms)), pts=pts_ms)
    with FileSource(path, sample_fps=None, keep_display=True) as src:
        frames = read_all(src)
    assert [f.pts_s for f in frames] == pytest.approx([p / 1000 for p in pts_ms], abs=1e-6)
    assert [read_index(f.display) for f in frames] == list(range(len(pts_ms)))
    # Sampling at 10 fps follows time, not frame count: ticks 0, .1, .2, then the gap.
    with FileSource(path, sample_fps=10.0) as src:
        assert [f.index for f in read_all(src)] == [0, 2, 4, 5]


@pytest.mark.parametrize("recipe,size", [
    ("mp4", (64, 48)), ("mkv", (64, 48)), ("avi", (97, 61)), ("mpg", (64, 48)),
    ("gif", (64, 48)), ("gray", (97, 61)), ("10bit", (64, 48)), ("hevc10", (64, 48)),
    ("odd", (97, 61)), ("webm", (64, 48)),
])
def test_containers_codecs_and_pixel_formats_give_rgb(tmp_path, recipe, size):
    w, h = size
    path = encode_format(tmp_path, recipe, index_frames(12, w, h))
    with FileSource(path, sample_fps=None, keep_display=True) as src:
        assert (src.info.width, src.info.height) == (w, h)
        assert src.info.fps == pytest.approx(25.0)
        frames = read_all(src)
    assert [read_index(f.display) for f in frames] == list(range(12))
    for f in frames:
        assert f.display.shape == (h, w, 3) and f.display.dtype == np.uint8
        assert f.image.shape == (224, 224, 3) and f.image.dtype == np.uint8
        assert f.image.flags.c_contiguous
    # Times start at 0 even where the stream does not (MPEG-PS starts at 0.54 s).
    assert frames[0].pts_s == 0.0
    assert frames[-1].pts_s == pytest.approx(11 / 25, abs=0.011)


def test_grey_clip_decodes_as_grey_rgb(tmp_path):
    path = encode_format(tmp_path, "gray", index_frames(3, 97, 61))
    with FileSource(path, sample_fps=None, keep_display=True) as src:
        frame = src.read()
    d = frame.display.astype(int)
    assert np.array_equal(d[..., 0], d[..., 1]) and np.array_equal(d[..., 1], d[..., 2])


def test_ten_bit_clip_keeps_its_levels(tmp_path):
    path = encode_format(tmp_path, "10bit", [np.full((48, 64, 3), 128, np.uint8)] * 3)
    with FileSource(path, sample_fps=None, keep_display=True) as src:
        frame = src.read()
    assert abs(frame.display.astype(int) - 128).max() <= 2


def test_rotation_metadata_is_applied_like_opencv_does(tmp_path):
    if display_matrix_unsupported():
        pytest.skip(display_matrix_unsupported())
    img = index_frame(0b1011_0010, 64, 48)
    img[:8, :8] = (255, 0, 0)  # a marker in the top-left corner
    path = encode_clip(tmp_path / "rot.mp4", [img] * 3, rotation=90, pix_fmt="yuv444p")
    with FileSource(path, sample_fps=None, keep_display=True) as src:
        assert src.rotation_deg == 90
        assert (src.info.width, src.info.height) == (48, 64)
        frame = src.read()
    assert frame.display.shape == (64, 48, 3)
    # Independent reference: OpenCV's FFmpeg backend rotates by the display matrix too.
    cap = cv2.VideoCapture(str(path))
    ok, ref_bgr = cap.read()
    cap.release()
    assert ok and ref_bgr.shape == (64, 48, 3)
    diff = np.abs(ref_bgr[..., ::-1].astype(int) - frame.display)
    assert diff.mean() < 2.0
    # 90 degrees counter-clockwise: the top-left marker ends up bottom-left.
    assert frame.display[-4, 3, 0] > 200 and frame.display[3, 3, 0] < 100


def test_frames_are_cropped_to_the_content_area(tmp_path):
    def disc(i):
        img = np.zeros((120, 160, 3), np.uint8)
        cv2.circle(img, (100, 60), 40, (200, 150, 120), -1)
        return img

    path = encode_format(tmp_path, "mkv", disc, n_frames=10)
    cropper = ContentCropper()
    with FileSource(path, cropper=cropper) as src:
        frames = read_all(src)
        assert src.cropper is cropper
    assert cropper.area.shape == "circle"
    x, y, w, h = cropper.area.box
    assert abs(x - 60) <= 3 and abs(y - 20) <= 3 and abs(w - 81) <= 4 and abs(h - 81) <= 4
    # The disc fills the model input: bright in the middle of every edge, dark corners.
    img = frames[0].image.astype(int)
    assert img[112, 10].sum() > 300 and img[10, 112].sum() > 300 and img[2, 2].sum() < 60
    assert frames[0].display is None  # keep_display=False


def test_close_is_idempotent_and_read_after_close_ends(tmp_path):
    path = encode_format(tmp_path, "mp4", index_frames(5))
    src = FileSource(path)
    assert isinstance(src, FrameSource)
    assert src.policy is QueuePolicy.WAIT
    src.close()
    src.close()
    assert src.read() is None
    with FileSource(path, sample_fps=None) as src:
        assert len(read_all(src)) == 5
        assert src.read() is None  # stays at the end


# --- errors ------------------------------------------------------------------------------

def _video_error(path, match=None) -> VideoError:
    with pytest.raises(VideoError, match=match) as info:
        FileSource(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert ";" in message  # says what to do next
    return info.value


def test_missing_file(tmp_path):
    _video_error(tmp_path / "nope.mp4", "not found")


def test_directory(tmp_path):
    _video_error(tmp_path, "directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    _video_error(path, "empty")


@pytest.mark.parametrize("name,content", [
    ("random.mp4", np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes()),
    ("notes.avi", b"just some text, not a video\n" * 200),
])
def test_not_a_video(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    _video_error(path, "cannot open")


def test_audio_only_file(tmp_path):
    path = encode_audio_only(tmp_path / "sound.m4a")
    _video_error(path, "no video stream")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="permissions are not enforced for root")
def test_unreadable_file(tmp_path):
    path = encode_format(tmp_path, "mp4", index_frames(3))
    path.chmod(0)
    try:
        _video_error(path, "permission")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("bad", [0, -5.0, float("nan"), float("inf")])
def test_bad_sample_rate(tmp_path, bad):
    with pytest.raises(UsageError):
        FileSource(tmp_path / "whatever.mp4", sample_fps=bad)


def test_mp4_cut_before_its_index_cannot_be_opened(tmp_path):
    path = encode_format(tmp_path, "mp4", noise_frames(40))  # moov at the end
    cut = truncated_copy(path, tmp_path / "cut.mp4", 0.6)
    _video_error(cut, "cut short")


def test_faststart_mp4_cut_short_gives_its_frames_then_decode_error(tmp_path):
    path = encode_format(tmp_path, "faststart", noise_frames(40))
    cut = truncated_copy(path, tmp_path / "cut.mp4", 0.5)
    with FileSource(cut, sample_fps=None) as src:
        frames = []
        with pytest.raises(DecodeError) as info:
            while (frame := src.read()) is not None:
                frames.append(frame)
        assert src.read() is None  # the error is reported once, then the source is done
    assert 5 < len(frames) < 40
    assert [f.index for f in frames] == list(range(len(frames)))
    assert info.value.frame_index == len(frames) == src.decoded_frames
    assert "\n" not in str(info.value) and "cut short" in str(info.value)


def test_mkv_cut_short_is_noticed_from_its_duration(tmp_path):
    path = encode_format(tmp_path, "mkv", noise_frames(50))  # 2 s
    cut = truncated_copy(path, tmp_path / "cut.mkv", 0.4)
    with FileSource(cut, sample_fps=None) as src:
        with pytest.raises(DecodeError) as info:
            read_all(src)
    assert 0 < info.value.frame_index < 50


@pytest.mark.parametrize("recipe", ["faststart", "mkv"])
def test_garbage_in_the_middle_gives_frames_then_decode_error(tmp_path, recipe):
    # 3000 random bytes half way: the demuxer loses the rest of the stream (MKV) or the
    # decoder fails (MP4); either way the frames before come out in order, then the error.
    path = encode_format(tmp_path, recipe, noise_frames(40))
    bad = damaged_copy(path, tmp_path / f"bad{path.suffix}", at=0.5, nbytes=3000)
    frames = []
    with FileSource(bad, sample_fps=None) as src:
        with pytest.raises(DecodeError) as info:
            while (frame := src.read()) is not None:
                frames.append(frame)
    assert 0 < len(frames) < 40 and info.value.frame_index == len(frames)
    assert [f.index for f in frames] == list(range(len(frames)))


def test_small_damage_is_concealed_and_counted(tmp_path):
    path = encode_format(tmp_path, "mp4", noise_frames(40))
    # at 0.8: a spot that breaks a frame with both old (PyAV 15) and new libx264 output
    bad = damaged_copy(path, tmp_path / "bad.mp4", at=0.8, nbytes=500)
    with FileSource(bad, sample_fps=None) as src:
        assert len(read_all(src)) == 40
        assert src.corrupt_frames >= 1


def test_trimmed_mp4_with_an_edit_list_is_not_damaged(tmp_path):
    path = encode_format(tmp_path, "mp4", index_frames(100))
    trimmed = trimmed_copy(path, tmp_path / "trimmed.mp4", skip_s=1.2)  # hides 30 frames
    with FileSource(trimmed, sample_fps=None, keep_display=True) as src:
        assert src.info.frames == 100  # what the sample table says
        frames = read_all(src)  # no DecodeError: the edit list is not damage
        assert src.decoded_frames == 70
    assert frames[0].pts_s == 0.0 and read_index(frames[0].display) == 30
    assert frames[-1].pts_s == pytest.approx(69 / 25)


def test_mpeg_ps_cut_short_just_ends(tmp_path):
    # Documented limitation: MPEG-PS does not record its length, so a cut is not noticed.
    path = encode_format(tmp_path, "mpg", noise_frames(40))
    cut = truncated_copy(path, tmp_path / "cut.mpg", 0.5)
    with FileSource(cut, sample_fps=None) as src:
        frames = read_all(src)
    assert 0 < len(frames) < 40


# --- real footage ------------------------------------------------------------------------

def test_real_laparoscopy_clip(shared_data):
    with FileSource(shared_data / "laparoscopy_circular_fov.mp4") as src:
        assert (src.info.width, src.info.height, src.info.fps) == (1280, 720, 25.0)
        assert src.info.frames == 250 and src.info.duration_s == pytest.approx(10.0)
        frames = read_all(src)
        assert src.decoded_frames == 250 and src.converted_frames == 50
        assert src.cropper.area.shape == "circle"
    assert [f.index for f in frames] == list(range(0, 250, 5))
    assert frames[-1].pts_s == pytest.approx(9.8)


def test_real_mpeg2_clip_starts_at_zero(shared_data):
    with FileSource(shared_data / "city_cc0.mpg", sample_fps=None) as src:
        first = src.read()
        assert first.index == 0 and first.pts_s == 0.0
        rest = read_all(src)
        assert src.decoded_frames == 190
        assert src.cropper.area.shape == "full"
    assert rest[-1].pts_s == pytest.approx(189 / 25)


# --- CaptureThread -----------------------------------------------------------------------

class ListSource:
    """A minimal live-style FrameSource for thread tests: yields prepared frames."""

    def __init__(self, n, policy=QueuePolicy.DROP_OLDEST, fail_after=None, endless=False):
        self.policy = policy
        self.info = SourceInfo("test", 25.0, None, None, 8, 8, live=True)
        self.decoded_frames = 0
        self.n, self.fail_after, self.endless = n, fail_after, endless

    def read(self):
        i = self.decoded_frames
        if self.fail_after is not None and i == self.fail_after:
            raise RuntimeError("camera unplugged")
        if i >= self.n and not self.endless:
            return None
        self.decoded_frames += 1
        return Frame(index=i, pts_s=i / 25, image=np.zeros((8, 8, 3), np.uint8),
                     captured_ns=i)

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def drain(q) -> list:
    items = []
    while True:
        item = q.get(timeout=JOIN_S)
        items.append(item)
        if item is END_OF_STREAM:
            return items


def test_capture_thread_wait_policy_loses_nothing(tmp_path):
    path = encode_format(tmp_path, "mp4", index_frames(40))
    q, stop = queue.Queue(maxsize=2), threading.Event()
    with FileSource(path, sample_fps=None, keep_display=True) as src:
        thread = CaptureThread(src, q, stop)
        thread.start()
        items = drain(q)
        assert thread.join(JOIN_S)
    assert items[-1] is END_OF_STREAM
    frames = items[:-1]
    assert [f.index for f in frames] == list(range(40))
    assert [read_index(f.display) for f in frames] == list(range(40))
    assert thread.error is None and thread.dropped == 0 and thread.frames == 40


def test_capture_thread_drop_oldest_keeps_the_latest():
    q, stop = queue.Queue(maxsize=3), threading.Event()
    thread = CaptureThread(ListSource(10), q, stop)
    thread.start()
    assert thread.join(JOIN_S)  # the consumer is "slow": it reads only after the end
    items = drain(q)
    # Frames 0..9 through a queue of 3, then the end marker (which drops one more).
    assert [f.index for f in items[:-1]] == [8, 9] and items[-1] is END_OF_STREAM
    assert thread.frames == 10 and thread.dropped == 8 and thread.error is None


def test_capture_thread_hands_over_the_error_and_still_ends_the_stream(tmp_path):
    q, stop = queue.Queue(maxsize=4), threading.Event()
    thread = CaptureThread(ListSource(10, QueuePolicy.WAIT, fail_after=3), q, stop)
    thread.start()
    items = drain(q)
    assert thread.join(JOIN_S)
    assert [f.index for f in items[:-1]] == [0, 1, 2]
    assert isinstance(thread.error, RuntimeError)


def test_capture_thread_with_a_damaged_file(tmp_path):
    path = encode_format(tmp_path, "faststart", noise_frames(40))
    cut = truncated_copy(path, tmp_path / "cut.mp4", 0.5)
    q, stop = queue.Queue(maxsize=2), threading.Event()
    with FileSource(cut, sample_fps=None) as src:
        thread = CaptureThread(src, q, stop)
        thread.start()
        items = drain(q)
        assert thread.join(JOIN_S)
    assert isinstance(thread.error, DecodeError)
    assert thread.error.frame_index == len(items) - 1


@pytest.mark.parametrize("policy", list(QueuePolicy))
def test_stop_event_ends_a_blocked_or_endless_capture(policy):
    q, stop = queue.Queue(maxsize=1), threading.Event()
    thread = CaptureThread(ListSource(0, policy, endless=True), q, stop)
    thread.start()
    q.get(timeout=JOIN_S)  # it is running (and, for WAIT, soon blocked on a full queue)
    stop.set()
    assert thread.join(JOIN_S)
    assert thread.error is None


def test_capture_thread_identity():
    thread = CaptureThread(ListSource(0), queue.Queue(maxsize=2), threading.Event())
    assert thread._thread.name == CAPTURE_THREAD_NAME and thread._thread.daemon
    assert repr(END_OF_STREAM) == "END_OF_STREAM"
    assert pickle.loads(pickle.dumps(END_OF_STREAM)) is END_OF_STREAM
    assert not thread.is_alive()
