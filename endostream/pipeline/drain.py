"""The caller's side of a recorded video's analysis: take every prediction off the worker's
queue, on the caller's thread, until the video ends, the caller stops it or Ctrl+C.

Both analysis paths run it, the dense one (:func:`endostream.pipeline.offline.run_threads`)
and coarse to fine (:mod:`endostream.pipeline.coarse.run`): one loop, one way to stop and
join the threads (never abandoning a decoder that holds the container open), one wording
of what an early end kept. What each path does with a capture error stays with it.

>>> Drained(received=3, error=None, stopped_by_caller=True).early_end().exit_code
130
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from endostream.errors import EndostreamError, Interrupted
from endostream.frames import QUEUE_POLL_S, Prediction
from endostream.pipeline.options import JOIN_TIMEOUT_S
from endostream.pipeline.threads import ThreadGroup
from endostream.sources import END_OF_STREAM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drained:
    """How the drain ended: ``received`` predictions; ``error`` is the Ctrl+C one (set when
    the user interrupted); ``stopped_by_caller`` when the stop Event was set before the
    video ended (the caller's stop, or the owner of a nested run)."""

    received: int
    error: EndostreamError | None
    stopped_by_caller: bool

    def early_end(self) -> EndostreamError | None:
        """The error the run ends with before any capture error is weighed: Ctrl+C's, or
        for a stop the caller asked for, an :class:`Interrupted` that says what was kept."""
        if self.error is None and self.stopped_by_caller:
            return Interrupted(f"stopped after {self.received} analysed frames; the "
                               "sections found so far were kept")
        return self.error


def drain_predictions(threads: ThreadGroup, worker: threading.Thread, preds_q: queue.Queue,
                      stop: threading.Event, on_item: Callable[[Prediction, int], None]
                      ) -> Drained:
    """Start ``threads``, hand each prediction of ``preds_q`` with its running count to
    ``on_item`` until the end marker (or a worker that died without sending it), then stop
    and join the threads. The worker's own error (a model error) is raised here."""
    received = 0
    error: EndostreamError | None = None
    stopped_by_caller = False
    threads.start()
    try:
        while True:
            try:
                item = preds_q.get(timeout=QUEUE_POLL_S)
            except queue.Empty:
                if not worker.is_alive() and preds_q.empty():
                    break  # the worker died without its end marker reaching us
                continue
            if item is END_OF_STREAM:
                break
            received += 1
            on_item(item, received)
        # Looked at before the threads are stopped below (which sets the Event too): set
        # now, it was the caller's stop, and the video did not end.
        stopped_by_caller = stop.is_set()
    except KeyboardInterrupt:
        error = Interrupted(f"interrupted after {received} analysed frames; the sections "
                            "found so far were kept")
    finally:
        # Stop and join every thread before leaving: never abandon a decoder thread that
        # still holds the container open.
        late = threads.stop(JOIN_TIMEOUT_S)
        if late:
            log.warning("threads still running %.1f s after stop: %s", JOIN_TIMEOUT_S,
                        ", ".join(late))
    worker_error = getattr(worker, "error", None)
    if worker_error is not None:
        raise worker_error
    return Drained(received, error, stopped_by_caller)
