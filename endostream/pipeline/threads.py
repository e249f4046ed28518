"""A group of pipeline threads: started together, stopped together, first error out.

Every pipeline (the offline run, the live session, the archive's per-video runs) has the
same shape: a capture thread, an inference worker and maybe a results thread, all watching
one stop Event and handing data on through bounded queues. Stopping them takes care: set
the Event, keep draining the queues so that a producer blocked on ``put`` sees the Event
and leaves, join each thread within one deadline (consumers before producers), and only
then touch what they owned. A decoder thread is never abandoned while it holds the
container open. The first exception any of them caught is handed to the owner, who raises
it: errors are never only logged.

>>> import threading
>>> stop = threading.Event()
>>> group = ThreadGroup(stop)
>>> t = threading.Thread(target=stop.wait)
>>> group.add("waiter", t)
>>> group.start()
>>> group.stop(timeout=1.0)
[]
>>> group.first_error() is None
True
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: How long one join waits before the queues are drained again while stopping.
JOIN_SLICE_S = 0.05


def drain(q: queue.Queue) -> None:
    """Empty ``q`` so a producer blocked on ``put`` can see the stop Event and leave."""
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass


@dataclass(frozen=True)
class _Member:
    name: str
    thread: threading.Thread
    error: Callable[[], BaseException | None]


class ThreadGroup:
    """Threads sharing one stop Event (``stop``).

    :meth:`add` them in the order they should be joined (consumers first), each with a way
    to read the exception it caught (its ``error`` attribute by default). ``drain`` lists
    queues emptied while stopping; ``on_stop`` runs when a stop is requested (to interrupt
    a source blocked in a read).
    """

    def __init__(self, stop: threading.Event, *, drain: Iterable[queue.Queue] = (),
                 on_stop: Callable[[], None] | None = None):
        self.stop_event = stop
        self._queues = list(drain)
        self._on_stop = on_stop
        self._members: list[_Member] = []
        self._started = False

    def add(self, name: str, thread: threading.Thread,
            error: Callable[[], BaseException | None] | None = None) -> None:
        """Add ``thread``; ``error()`` returns what it caught (default: ``thread.error``)."""
        if error is None:
            def error() -> BaseException | None:
                return getattr(thread, "error", None)
        self._members.append(_Member(name, thread, error))

    def start(self) -> None:
        """Start every thread, producers last, so nothing is produced before it is read."""
        if self._started:
            raise RuntimeError("a ThreadGroup starts once")
        self._started = True
        for m in self._members:
            m.thread.start()

    def request_stop(self) -> None:
        """Set the stop Event (and run ``on_stop``); returns at once."""
        self.stop_event.set()
        if self._on_stop is not None:
            self._on_stop()

    def stop(self, timeout: float) -> list[str]:
        """Request a stop and join every thread within ``timeout`` seconds in all,
        draining the queues meanwhile. Returns the names of threads still running."""
        self.request_stop()
        if not self._started:
            return []
        deadline = time.monotonic() + timeout
        for m in self._members:
            while m.thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for q in self._queues:
                    drain(q)
                m.thread.join(min(left, JOIN_SLICE_S))
        return [m.name for m in self._members if m.thread.is_alive()]

    def first_error(self) -> BaseException | None:
        """The caught exception nearest the source: threads are checked producers first
        (the reverse of the join order), because an upstream failure is the cause of what
        the threads after it then saw."""
        for m in reversed(self._members):
            err = m.error()
            if err is not None:
                return err
        return None
