"""The coarse-to-fine plan: which frames the capture thread hands to inference, when.

Coarse frames go at once; the dense frames of a step wait, unconverted, for the decision
the caller makes from the two coarse answers around them (:meth:`CoarsePlan.receive`),
and predictions come back to the caller in frame order.
"""

from __future__ import annotations

import bisect
import collections
import heapq
import queue
import threading
from typing import Any

from endostream.errors import DecodeError
from endostream.frames import QUEUE_POLL_S, Frame, Prediction, SourceInfo
from endostream.segmentation.hmm import FrameModel
from endostream.segmentation.refine import CoarseAnswer, coarse_answer, needs_dense
from endostream.sources.base import QueuePolicy
from endostream.sources.skim import SkimSource, Tick

#: Coarse steps whose dense frames may wait for a decision at once. Two would make the
#: decoder wait for every coarse frame's round trip through inference; three keeps it
#: busy while a batch runs, and holds at most 3 x (n - 1) decoded frames.
MAX_WAITING_STEPS = 3


class CoarsePlan:
    """The capture thread's source in a coarse-to-fine run, and the caller's way back to it.

    The capture thread calls :meth:`read` (coarse frames as decoded, dense frames once
    their step is decided); the caller hands every prediction to :meth:`receive`, which
    decides the step a coarse answer closes. ``stop`` ends a wait for a decision. A
    DecodeError part way is raised once the frames decoded before it were handed out,
    the last of them as a coarse frame, as at a normal end.
    """

    policy = QueuePolicy.WAIT

    def __init__(self, skim: SkimSource, model: FrameModel, stop: threading.Event):
        self.skim = skim
        self.model = model
        self._stop = stop
        self.skipping = skim.skipping  # read here: the source forgets it when closed
        # capture thread
        self._open: list[Tick] = []
        self._waiting: collections.deque[tuple[int, list[Tick]]] = collections.deque()
        self._out: collections.deque[Frame] = collections.deque()
        self._decided: dict[int, bool] = {}
        self._next_coarse = 0
        self._eof = False
        self._error: DecodeError | None = None  # damage part way, raised after the rest
        # written by the capture thread before the coarse frame is queued, read by the caller:
        # coarse frame index -> (its number, dense ticks of the step it closes)
        self._coarse_number: dict[int, tuple[int, int]] = {}
        # caller
        self._decisions: queue.Queue[tuple[int, bool]] = queue.Queue()
        self._answers: dict[int, CoarseAnswer] = {}
        self._step_ends: list[int] = []  # coarse frame index by number
        self._dense_wanted: dict[int, int] = {}  # step -> dense predictions still to come
        self._held: list[tuple[int, Prediction]] = []  # heap by frame index
        self._settled = -1  # every step up to this number is complete
        self.coarse_frames = 0
        self.fine_frames = 0
        self.steps_refined = 0

    # -- what the capture thread sees ----------------------------------------------------

    @property
    def info(self) -> SourceInfo:
        return self.skim.info

    @property
    def decoded_frames(self) -> int:
        return self.skim.position

    def read(self) -> Frame | None:
        while True:
            if self._out:
                return self._out.popleft()
            self._take_decisions(block=False)
            if self._out:
                continue
            if self._eof or len(self._waiting) >= MAX_WAITING_STEPS:
                if not self._waiting:
                    if self._error is not None:
                        raise self._error
                    return None
                if not self._take_decisions(block=True):
                    return None  # stopped
                continue
            try:
                tick = self.skim.read_tick()
            except DecodeError as e:
                # Damaged part way: what was decoded before is good; look at it as at an
                # end (the last tick coarse, the waiting steps decided), then report.
                self._error, tick = e, None
            if tick is None:
                self._eof = True
                if self._open:  # the video's last tick is always looked at
                    self._coarse(self._open.pop())
            elif tick.coarse:
                self._coarse(tick)
            else:
                self._open.append(tick)

    def _coarse(self, tick: Tick) -> None:
        number = self._next_coarse
        self._next_coarse += 1
        if self._open:
            self._waiting.append((number, self._open))
        self._coarse_number[tick.index] = (number, len(self._open))
        self._open = []
        self.coarse_frames += 1
        self._out.append(self.skim.convert(tick))

    def _take_decisions(self, *, block: bool) -> bool:
        """Apply the decisions that came in (waiting for one with ``block``); False if
        stopped while waiting."""
        while True:
            try:
                number, dense = self._decisions.get(timeout=QUEUE_POLL_S) if block \
                    else self._decisions.get_nowait()
            except queue.Empty:
                if not block:
                    break
                if self._stop.is_set():
                    return False
                continue
            self._decided[number] = dense
            block = False
        while self._waiting and self._waiting[0][0] in self._decided:
            number, ticks = self._waiting.popleft()
            if self._decided.pop(number):
                self.fine_frames += len(ticks)
                self.steps_refined += 1
                self._out.extend(self.skim.convert(t) for t in ticks)
        return True

    # -- what the caller does ------------------------------------------------------------

    def receive(self, pred: Prediction) -> list[Prediction]:
        """Note ``pred`` (a coarse answer decides the step it closes) and return the
        predictions now settled, in frame order: every frame before them that will be
        analysed has been."""
        heapq.heappush(self._held, (pred.index, pred))
        coarse = self._coarse_number.get(pred.index)
        if coarse is None:  # a dense frame: of the step whose coarse frames enclose it
            step = bisect.bisect_left(self._step_ends, pred.index)
            self._dense_wanted[step] -= 1
        else:
            number, ticks = coarse
            self._step_ends.append(pred.index)
            answer = coarse_answer(self.model, pred.probs)
            self._answers[number] = answer
            before = self._answers.pop(number - 1, None)
            if before is not None:
                dense = needs_dense(before, answer)
                self._dense_wanted[number] = ticks if dense else 0
                self._decisions.put((number, dense))
            else:
                self._dense_wanted[number] = 0
        while self._dense_wanted.get(self._settled + 1) == 0:
            self._settled += 1
        return self._release(self._step_ends[self._settled] if self._settled >= 0 else -1)

    def flush(self) -> list[Prediction]:
        """Every prediction still held, in frame order (at the end of a run)."""
        return self._release(None)

    def _release(self, up_to: int | None) -> list[Prediction]:
        out = []
        while self._held and (up_to is None or self._held[0][0] <= up_to):
            out.append(heapq.heappop(self._held)[1])
        return out

    def describe(self) -> dict[str, Any]:
        """``analysis.coarse_to_fine`` for ``sections.json``."""
        return {"coarse_every": self.skim.coarse_every, "coarse_frames": self.coarse_frames,
                "fine_frames": self.fine_frames, "steps_refined": self.steps_refined,
                "skipped_non_reference_frames": self.skipping}
