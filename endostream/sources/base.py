"""What every frame source is, and the thread that moves its frames into a queue.

A source is a context manager whose :meth:`~FrameSource.read` returns the next analysed
:class:`~endostream.frames.Frame` or ``None`` at the end. Its :class:`QueuePolicy` says
what happens when the consumer falls behind: a file waits (every analysed frame is
classified, results are reproducible), a live camera drops the oldest waiting frame (the
overlay stays current).

:class:`CaptureThread` runs ``source.read()`` on its own thread. It never blocks without a
way out: every ``put`` has a timeout and looks at the stop Event in between, the end marker
:data:`END_OF_STREAM` goes into the queue in ``finally``, and an exception is kept in
``.error`` for the caller to raise.

>>> import queue, threading
>>> class Three:                       # any object with the FrameSource members will do
...     policy = QueuePolicy.WAIT
...     def __init__(self): self.n = 0
...     def read(self):
...         self.n += 1
...         return self.n if self.n <= 3 else None
>>> q, stop = queue.Queue(maxsize=2), threading.Event()
>>> t = CaptureThread(Three(), q, stop); t.start()
>>> items = [q.get(timeout=5) for _ in range(4)]
>>> t.join(5), items[:3], items[3] is END_OF_STREAM, t.error
(True, [1, 2, 3], True, None)
"""

from __future__ import annotations

import enum
import logging
import queue as queue_mod
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from endostream.frames import QUEUE_POLL_S, Frame, SourceInfo

log = logging.getLogger(__name__)

#: How long one ``put`` may block before the stop Event is looked at again (the one poll
#: interval of every pipeline thread, :data:`~endostream.frames.QUEUE_POLL_S`; kept under
#: this name for callers of the sources package).
POLL_INTERVAL_S = QUEUE_POLL_S

#: Name of the capture thread (shows up in thread dumps and leak checks).
CAPTURE_THREAD_NAME = "endostream-capture"


class QueuePolicy(enum.Enum):
    """What a producer does when the bounded queue to the consumer is full."""

    #: Wait until there is room (backpressure). Files: nothing is lost, results reproduce.
    WAIT = "wait"
    #: Take the oldest waiting frame out, count it as dropped, put the new one in. Live
    #: sources: the consumer always gets the freshest frames, latency stays bounded.
    DROP_OLDEST = "drop_oldest"


class _EndOfStream:
    """Type of :data:`END_OF_STREAM`; one instance, compared with ``is``."""

    _instance: _EndOfStream | None = None

    def __new__(cls) -> _EndOfStream:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "END_OF_STREAM"

    def __reduce__(self) -> str:
        return "END_OF_STREAM"


#: The end marker a producer thread puts into its queue last (also after an error).
#: Consumers test ``item is END_OF_STREAM`` and then look at the producer's ``.error``.
END_OF_STREAM = _EndOfStream()


@runtime_checkable
class FrameSource(Protocol):
    """A source of analysed frames: a video file, a camera.

    ``read()`` returns the next :class:`Frame` (``image`` already cropped and resized to
    the model input) or ``None`` at the end; errors are domain exceptions from
    :mod:`endostream.errors`. ``decoded_frames`` counts every frame decoded so far,
    analysed or not. ``close()`` may be called more than once.
    """

    info: SourceInfo
    policy: QueuePolicy

    @property
    def decoded_frames(self) -> int: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Interruptible(Protocol):
    """A live source whose blocking read can be cut short from another thread (a camera
    waiting for its next frame, a file paced to real time): :meth:`interrupt` makes the
    pending and every later ``read()`` return at once."""

    def interrupt(self) -> None: ...


@runtime_checkable
class Reconnecting(Protocol):
    """A live source that reopens itself when lost: ``state`` (``"live"``,
    ``"reconnecting"``, ...) and the number of ``reconnects`` so far, for status lines."""

    state: str
    reconnects: int


class CaptureThread:
    """Runs ``source.read()`` on a daemon thread and feeds ``queue`` per ``source.policy``.

    The caller owns the source (opens it, and closes it after :meth:`join` returned
    ``True``: a source is not thread-safe) and the stop Event. After the thread
    ends, :data:`END_OF_STREAM` is in the queue unless the stop Event was set while the
    queue was full (then nobody is reading any more). ``error`` holds what ``read()``
    raised (any ``BaseException``), for the caller to raise with its traceback;
    ``dropped`` counts frames dropped under :attr:`QueuePolicy.DROP_OLDEST`; ``frames``
    counts frames put into the queue.

    >>> import queue, threading
    >>> class Failing:
    ...     policy = QueuePolicy.DROP_OLDEST
    ...     def read(self): raise OSError("camera unplugged")
    >>> q = queue.Queue(maxsize=4)
    >>> t = CaptureThread(Failing(), q, threading.Event()); t.start()
    >>> t.join(5), q.get(timeout=5) is END_OF_STREAM, repr(t.error)
    (True, True, "OSError('camera unplugged')")
    """

    def __init__(self, source: FrameSource, queue: queue_mod.Queue, stop: threading.Event,
                 *, name: str = CAPTURE_THREAD_NAME):
        self.source = source
        self.queue = queue
        self.stop = stop
        self.policy: QueuePolicy = source.policy
        self.error: BaseException | None = None
        self.dropped = 0
        self.frames = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; ``True`` when it has ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                frame = self.source.read()
                if frame is None:
                    break
                if not self._put(frame):
                    break
                self.frames += 1
        except BaseException as e:  # noqa: BLE001 - handed to the caller, who re-raises it
            self.error = e
            log.debug("capture thread stopped by %r", e)
        finally:
            # The end marker must arrive even after an error, or the consumer would wait
            # forever; it only gives up when stopped with a full queue (nobody reads).
            self._put(END_OF_STREAM, always=True)

    def _put(self, item: object, *, always: bool = False) -> bool:
        """Put ``item`` per policy; ``False`` if the stop Event ended the wait first."""
        if self.policy is QueuePolicy.DROP_OLDEST:
            while True:
                try:
                    self.queue.put_nowait(item)
                    return True
                except queue_mod.Full:
                    pass
                try:
                    self.queue.get_nowait()  # only this thread puts, so this is a frame
                    self.dropped += 1
                except queue_mod.Empty:
                    pass  # the consumer took one meanwhile: room now
        while True:
            if self.stop.is_set():
                # Stopped: don't wait for room, but an end marker that fits still goes in.
                if always:
                    try:
                        self.queue.put_nowait(item)
                        return True
                    except queue_mod.Full:
                        pass
                return False
            try:
                self.queue.put(item, timeout=QUEUE_POLL_S)
                return True
            except queue_mod.Full:
                continue


class FrameTap:
    """A source as the capture thread sees it, showing each frame to ``on_frame`` first.

    This is the pipelines' frame hook (capture thread): the live overlay and the report's
    recorder see every analysed frame here, with its full-size picture in
    ``Frame.display`` when the source keeps it. ``keep_display=False`` takes the picture
    off before the frame goes on to inference, so the queue holds only model inputs.
    Only ``read``, ``policy``, ``info`` and ``decoded_frames`` are used through the tap;
    whoever opened the source closes it. ``ended``: the source itself said it had no more
    frames (not a stop).
    """

    def __init__(self, source: Any, on_frame: Callable[[Frame], None], stop: threading.Event,
                 *, keep_display: bool = True):
        self.inner = source
        self.policy = source.policy
        self._on_frame = on_frame
        self._stop = stop
        self._keep_display = keep_display
        self.ended = False

    @property
    def info(self) -> SourceInfo:
        return self.inner.info

    @property
    def decoded_frames(self) -> int:
        return self.inner.decoded_frames

    def read(self) -> Frame | None:
        if self._stop.is_set():
            return None
        frame = self.inner.read()
        if frame is None:
            self.ended = not self._stop.is_set()
            return None
        self._on_frame(frame)
        if not self._keep_display and frame.display is not None:
            frame = replace(frame, display=None)
        return frame
