"""A live camera or stream as a :class:`FrameSource` (OpenCV ``VideoCapture``).

:class:`CameraSource` opens a capture device by index (``0``), device path
(``/dev/video0``) or stream URL (``rtsp://…``). Its policy is
:attr:`QueuePolicy.DROP_OLDEST`: a live source never waits for inference; the capture
thread drops the oldest waiting frame instead, so latency never grows.

When the camera vanishes mid-stream (cable pulled, stream hiccup) the source does not
end: it releases the device, logs a warning and reopens it with exponential backoff
(:data:`RECONNECT_INITIAL_S` doubling up to :data:`RECONNECT_MAX_S`), counting
``reconnects`` and exposing ``state`` so a status line can say so. Timestamps come from
the monotonic clock: ``pts_s`` is seconds since the first frame, so a reconnection gap
shows up as a gap in time, never as a jump backwards.

It gives up only when ``give_up_s`` is set and the camera stays away longer than that
(default ``None``: never; at the tower the scope is often unplugged and plugged back in,
and the user ends the session). Opening fails at once, with a one-line
:class:`~endostream.errors.SourceError`, when the device cannot be opened at all.

>>> with CameraSource(0) as cam:  # doctest: +SKIP
...     frame = cam.read()
>>> frame.image.shape, frame.display.shape  # doctest: +SKIP
((224, 224, 3), (720, 1280, 3))
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from endostream.crop import ContentCropper
from endostream.errors import SourceError
from endostream.frames import Frame, SourceInfo
from endostream.sources.base import QueuePolicy

log = logging.getLogger(__name__)

#: Seconds before the first attempt to reopen a lost camera; doubled after every failed
#: attempt. Half a second lets a USB device re-enumerate without hammering the driver.
RECONNECT_INITIAL_S = 0.5
#: Longest wait between two reopen attempts: a replugged scope is back within 8 s.
RECONNECT_MAX_S = 8.0
#: Consecutive failed reads after which the camera counts as lost. One failed grab is a
#: common USB hiccup and not worth a (slow) reopen.
MAX_FAILED_READS = 5
#: Frames read while opening, to check the device really delivers images.
PROBE_READS = 10
#: Open and read timeouts (ms) for stream URLs (and the read timeout for devices, where the
#: backend supports it): a dead source must not hang the capture thread for long.
STREAM_OPEN_TIMEOUT_MS = 5000
STREAM_READ_TIMEOUT_MS = 1000

#: Values of :attr:`CameraSource.state`.
STATE_STREAMING = "streaming"
STATE_RECONNECTING = "reconnecting"
STATE_LOST = "lost"
STATE_CLOSED = "closed"

#: What :class:`CameraSource` needs from a capture object (``cv2.VideoCapture`` has it).
Capture = Any
OpenFn = Callable[["int | str"], Capture]


def parse_device(device: int | str) -> int | str:
    """``'0'`` → ``0`` (an index); paths and URLs stay strings.

    >>> parse_device("2"), parse_device("/dev/video0")
    (2, '/dev/video0')
    """
    if isinstance(device, str) and device.strip().isdigit():
        return int(device.strip())
    return device


def describe_device(device: int | str) -> str:
    """How a device is named in messages and in ``sections.json``: ``camera:0`` or the path."""
    return f"camera:{device}" if isinstance(device, int) else str(device)


def open_capture(device: int | str) -> Capture:
    """Open ``device`` with OpenCV; the default ``open_fn`` of :class:`CameraSource`."""
    # OpenCV warns on stderr about every failed open; our SourceError says it better, and
    # reconnect attempts would repeat the warning every few seconds.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return _open_capture(device)
    finally:
        cv2.utils.logging.setLogLevel(level)


def _open_capture(device: int | str) -> Capture:
    if isinstance(device, int):
        cap = cv2.VideoCapture(device)
        # A driver-side queue of old frames adds latency; keep one. A stalled device must
        # not hold a read (and so a stop) for long. Both are ignored where unsupported.
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_READ_TIMEOUT_MS)
        return cap
    if "://" in device:
        return cv2.VideoCapture(device, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_OPEN_TIMEOUT_MS,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_READ_TIMEOUT_MS,
        ])
    return cv2.VideoCapture(device)


def to_rgb(image: np.ndarray) -> np.ndarray:
    """An OpenCV frame (BGR, BGRA or grey) as contiguous RGB uint8."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class CameraSource:
    """A camera, capture card or stream URL, reconnecting when it is lost.

    ``read()`` is meant for one capture thread; :meth:`interrupt` may be called from any
    thread and makes a blocked ``read()`` (waiting to reconnect) return ``None`` at once.
    ``open_fn(device)`` returns a capture object with ``isOpened()``, ``read() ->
    (ok, bgr)``, ``get(prop)`` and ``release()``; tests pass a fake one.

    >>> cam = CameraSource("rtsp://tower.local/scope", give_up_s=60)  # doctest: +SKIP
    >>> cam.state, cam.reconnects  # doctest: +SKIP
    ('streaming', 0)
    """

    policy = QueuePolicy.DROP_OLDEST

    def __init__(
        self,
        device: int | str,
        *,
        cropper: ContentCropper | None = None,
        keep_display: bool = True,
        reconnect_initial_s: float = RECONNECT_INITIAL_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
        give_up_s: float | None = None,
        open_fn: OpenFn | None = None,
    ):
        self.device = parse_device(device)
        self.name = describe_device(self.device)
        self.keep_display = keep_display
        self.reconnect_initial_s = reconnect_initial_s
        self.reconnect_max_s = max(reconnect_max_s, reconnect_initial_s)
        self.give_up_s = give_up_s
        self._open_fn: OpenFn = open_fn or open_capture
        self._cropper = cropper if cropper is not None else ContentCropper()
        self._interrupted = threading.Event()
        # Held while the capture object is used, so close() never releases it mid-read.
        self._lock = threading.Lock()
        self._t0_ns: int | None = None
        self._failed_reads = 0
        self._lost_since: float | None = None
        self.decoded_frames = 0
        self.reconnects = 0
        self.reconnect_attempts = 0
        self.state = STATE_STREAMING
        self._cap = self._open_first()

    # -- FrameSource protocol -----------------------------------------------------------

    @property
    def info(self) -> SourceInfo:
        return self._info

    def read(self) -> Frame | None:
        """The next frame, waiting through reconnections; ``None`` once interrupted.

        Raises :class:`SourceError` when the camera stayed away longer than ``give_up_s``.
        """
        while not self._interrupted.is_set():
            if self._cap is None and not self._reconnect():
                return None
            with self._lock:
                if self._cap is None:  # closed from another thread
                    return None
                ok, bgr = self._cap.read()
            if ok and bgr is not None and bgr.size:
                self._failed_reads = 0
                return self._make_frame(bgr)
            self._failed_reads += 1
            if self._failed_reads >= MAX_FAILED_READS:
                self._mark_lost()
        return None

    def interrupt(self) -> None:
        """Make ``read()`` return ``None`` soon (called by the owner to stop a session)."""
        self._interrupted.set()

    def close(self) -> None:
        """Interrupt and release the device. Call after the capture thread has ended."""
        self.interrupt()
        # A capture thread stuck in a driver call must not block close(); the device is
        # then released by the thread's own exit path (read() sees _cap is None).
        if self._lock.acquire(timeout=1.0):
            try:
                if self._cap is not None:
                    self._cap.release()
                    self._cap = None
            finally:
                self._lock.release()
        self.state = STATE_CLOSED

    def __enter__(self) -> CameraSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening and reconnecting -------------------------------------------------------

    def _open_first(self) -> Capture:
        cap = self._try_open()
        if cap is None:
            if isinstance(self.device, str) and "://" in self.device:
                raise SourceError(f"cannot open stream {self.name}; check the address and that "
                                  "the stream is running")
            raise SourceError(f"cannot open {self.name}: no device answered; check that it is "
                              "connected and not used by another program, or choose another "
                              "with --camera")
        for _ in range(PROBE_READS):
            ok, bgr = cap.read()
            if ok and bgr is not None and bgr.size:
                self._set_info(cap, bgr)
                return cap
        cap.release()
        raise SourceError(f"{self.name} opened but delivers no images; check the video input "
                          "on the capture device, or choose another with --camera")

    def _try_open(self) -> Capture | None:
        try:
            cap = self._open_fn(self.device)
        except Exception as e:  # a driver raising is the same as a device that is not there
            log.debug("opening %s raised %s", self.name, e)
            return None
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            return None
        return cap

    def _set_info(self, cap: Capture, bgr: np.ndarray) -> None:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        # Cameras report 0 or nonsense (e.g. 1000) when they do not know.
        fps_known = 1.0 <= fps <= 480.0
        self._info = SourceInfo(path=self.name, fps=fps if fps_known else None, frames=None,
                                duration_s=None, width=int(bgr.shape[1]),
                                height=int(bgr.shape[0]), live=True)

    def _mark_lost(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
        self._failed_reads = 0
        self._lost_since = time.monotonic()
        self.state = STATE_RECONNECTING
        log.warning("%s lost after %d frames; reconnecting (waiting up to %.1f s between tries)",
                    self.name, self.decoded_frames, self.reconnect_max_s)

    def _reconnect(self) -> bool:
        """Reopen with backoff. False when interrupted; SourceError when giving up."""
        delay = self.reconnect_initial_s
        lost_since = self._lost_since if self._lost_since is not None else time.monotonic()
        while True:
            if self._interrupted.wait(delay):
                return False
            self.reconnect_attempts += 1
            cap = self._try_open()
            if cap is not None:
                with self._lock:
                    if self._interrupted.is_set():
                        cap.release()
                        return False
                    self._cap = cap
                self.reconnects += 1
                self.state = STATE_STREAMING
                log.warning("%s is back after %.1f s (reconnect %d)", self.name,
                            time.monotonic() - lost_since, self.reconnects)
                return True
            away = time.monotonic() - lost_since
            if self.give_up_s is not None and away >= self.give_up_s:
                self.state = STATE_LOST
                raise SourceError(f"{self.name} lost for {away:.0f} s and did not come back; "
                                  "check the cable or stream, then start again")
            delay = min(delay * 2.0, self.reconnect_max_s)
            log.warning("%s still away after %.1f s; next try in %.1f s", self.name, away, delay)

    # -- frames -------------------------------------------------------------------------

    def _make_frame(self, bgr: np.ndarray) -> Frame:
        captured_ns = time.monotonic_ns()
        if self._t0_ns is None:
            self._t0_ns = captured_ns
        pts_s = (captured_ns - self._t0_ns) / 1e9
        rgb = to_rgb(bgr)
        image = self._cropper(rgb, pts_s)
        index = self.decoded_frames
        self.decoded_frames += 1
        return Frame(index=index, pts_s=pts_s, image=image, captured_ns=captured_ns,
                     display=rgb if self.keep_display else None)
