"""From the session's threads to the GUI thread: latest-value slots and queued signals.

The capture and results threads must never wait for the GUI, and the GUI thread must
never wait for them. :class:`LiveBridge` keeps one *latest* display frame and a flag that
a result is waiting (the window then reads the session's latest update itself); a thread
that posts replaces what is there and emits a queued signal only if none is pending yet.
So at most one signal per kind is ever in the GUI thread's event queue, a frame the
screen could not show in time is dropped (counted in ``stale_frames``), and nothing piles
up however slow painting gets.

Display frames are taken no faster than the screen refreshes (:meth:`LiveBridge.
set_refresh_hz`): a frame that arrives sooner waits in the slot, replaced by newer
ones, until a timer takes the newest.

>>> bridge = LiveBridge()  # doctest: +SKIP
>>> bridge.frame_ready.connect(lambda: video.show_frame(bridge.take_frame()))  # doctest: +SKIP
>>> session = LiveSession(source, clf, on_display=bridge.post_frame,  # doctest: +SKIP
...                       on_result=bridge.post_result, on_end=bridge.post_end)
"""

from __future__ import annotations

import threading
import time
from typing import Any

from PyQt5.QtCore import QObject, Qt, QTimer, pyqtSignal

#: Display rate cap when the screen's refresh rate is unknown (offscreen, Xvfb).
DEFAULT_REFRESH_HZ = 60.0


class LiveBridge(QObject):
    """Thread-safe hand-over of display frames, results and the end of a session.

    ``frame_ready`` / ``result_ready`` say "take the newest value now"
    (:meth:`take_frame`, :meth:`take_result`); ``ended(error)`` carries the session's
    exception or ``None``; ``opened(session)`` / ``open_failed(message)`` report a source
    opened in the background. All are delivered in the thread that owns the bridge.
    """

    frame_ready = pyqtSignal()
    result_ready = pyqtSignal()
    ended = pyqtSignal(object)
    opened = pyqtSignal(object)
    open_failed = pyqtSignal(str)
    _frame_posted = pyqtSignal()

    def __init__(self, parent: QObject | None = None, *, refresh_hz: float = DEFAULT_REFRESH_HZ):
        super().__init__(parent)
        self._lock = threading.Lock()
        self._frame: Any = None
        self._frame_signalled = False
        self._result_signalled = False
        self.posted_frames = 0  #: frames handed over by the capture thread
        self.shown_frames = 0  #: frames taken by the GUI
        self.stale_frames = 0  #: frames replaced by a newer one before the GUI took them
        self._last_emit = 0.0
        self._min_interval_s = 1.0 / refresh_hz
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._emit_frame)
        # Queued explicitly: the posting thread is never the GUI thread.
        self._frame_posted.connect(self._on_frame_posted, Qt.QueuedConnection)

    def set_refresh_hz(self, hz: float) -> None:
        """Cap the display rate at the screen's refresh rate."""
        if hz > 0:
            self._min_interval_s = 1.0 / hz

    # -- any thread ---------------------------------------------------------------------

    def post_frame(self, frame: Any) -> None:
        """Offer the newest display frame (the session's ``on_display``)."""
        with self._lock:
            if self._frame is not None:
                self.stale_frames += 1
            self._frame = frame
            self.posted_frames += 1
            signal = not self._frame_signalled
            self._frame_signalled = True
        if signal:
            self._frame_posted.emit()

    def post_result(self, prediction: Any, snapshot: Any) -> None:
        """Say that a newer result is there (the session's ``on_result``; the window reads
        ``session.latest``, so the values themselves are not kept)."""
        with self._lock:
            signal = not self._result_signalled
            self._result_signalled = True
        if signal:
            self.result_ready.emit()

    def post_end(self, error: BaseException | None) -> None:
        """The session's results have ended (the session's ``on_end``)."""
        self.ended.emit(error)

    # -- GUI thread ---------------------------------------------------------------------

    def take_frame(self) -> Any:
        """The newest display frame, or ``None``; the next post signals again."""
        with self._lock:
            frame, self._frame = self._frame, None
            self._frame_signalled = False
        if frame is not None:
            self.shown_frames += 1
        return frame

    def take_result(self) -> bool:
        """Whether a result was posted since the last call; the next post signals again."""
        with self._lock:
            posted, self._result_signalled = self._result_signalled, False
        return posted

    def reset(self) -> None:
        """Forget what is waiting (a new session starts)."""
        with self._lock:
            self._frame = None
            self._frame_signalled = self._result_signalled = False

    def _on_frame_posted(self) -> None:
        wait_s = self._last_emit + self._min_interval_s - time.monotonic()
        if wait_s > 0:
            if not self._timer.isActive():
                self._timer.start(max(1, int(wait_s * 1000)))
            return
        self._emit_frame()

    def _emit_frame(self) -> None:
        self._last_emit = time.monotonic()
        self.frame_ready.emit()
