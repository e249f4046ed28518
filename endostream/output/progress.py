"""A progress line on stderr for long work: frames, frames/s, ETA.

On a terminal the line redraws in place a few times a second; in a log (not a TTY) it
prints a plain line every :data:`LOG_INTERVAL_S` seconds so CI logs stay short. Nothing is
printed when ``enabled`` is false (``--quiet``).

>>> import io
>>> p = Progress(total=100, stream=io.StringIO(), enabled=True)
>>> p.update(done=50, analysed=10)
>>> p.close()
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

#: Seconds between redraws on a terminal.
TTY_INTERVAL_S = 0.25
#: Seconds between lines when stderr is a file or pipe.
LOG_INTERVAL_S = 5.0
#: Rates and ETAs are shown only after this long: the first frames arrive in a burst
#: (a batch, a decoder's read-ahead) and would give rates of millions per second.
MIN_RATE_S = 1.0


def format_duration(seconds: float | None) -> str:
    """``83.4`` → ``'1:23'``; ``None`` → ``'?'``.

    >>> format_duration(3725)
    '1:02:05'
    """
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Throttled progress reporting of ``done`` out of ``total`` decoded frames."""

    def __init__(self, total: int | None, *, stream: TextIO | None = None,
                 enabled: bool = True, label: str = "frames", analysed: bool = True):
        """``analysed``: the line counts analysed frames too (not for clips or files)."""
        self.total = total if total and total > 0 else None
        self.show_analysed = analysed
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.label = label
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._start = time.monotonic()
        self._last_draw = 0.0
        self._done = 0
        self._analysed = 0
        self._drawn = False
        self._drawn_at: tuple[int, int] | None = None  # (done, analysed) last drawn

    def update(self, *, done: int, analysed: int, force: bool = False) -> None:
        """Record progress; redraw if the interval has passed (or ``force``)."""
        self._done, self._analysed = done, analysed
        if not self.enabled:
            return
        now = time.monotonic()
        interval = TTY_INTERVAL_S if self._tty else LOG_INTERVAL_S
        if force or now - self._last_draw >= interval:
            self._last_draw = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        """The current progress line (without terminal control characters)."""
        elapsed = max((now or time.monotonic()) - self._start, 1e-9)
        settled = elapsed >= MIN_RATE_S or self._done >= (self.total or float("inf"))
        rate = self._done / elapsed
        speed = f"{rate:6.1f} {self.label}/s" if settled else f"     ? {self.label}/s"
        if self.total:
            pct = min(100.0, 100.0 * self._done / self.total)
            eta = max(self.total - self._done, 0) / rate if rate > 0 and settled else None
            head = f"{self._done}/{self.total} {self.label} ({pct:3.0f}%)"
            tail = f"ETA {format_duration(eta)}"
        else:
            head = f"{self._done} {self.label}"
            tail = f"elapsed {format_duration(elapsed)}"
        if not self.show_analysed:
            return f"{head} · {speed} · {tail}"
        arate = f"{self._analysed / elapsed:.1f}/s" if settled else "?/s"
        return f"{head} · {speed} · {self._analysed} analysed ({arate}) · {tail}"

    def update_frames(self, done: int, analysed: int, total: int | None = None) -> None:
        """Callback form of :meth:`update` that also learns the total once it is known."""
        if total and not self.total:
            self.total = total
        self.update(done=done, analysed=analysed)

    def _draw(self, now: float) -> None:
        text = self.line(now)
        self._drawn_at = (self._done, self._analysed)
        if self._tty:
            self.stream.write("\r\x1b[2K" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Draw the final state and end the line; a run that ended before its first frame
        (a video that cannot be opened) draws nothing, so its error line stands alone."""
        if not self.enabled or (not self._drawn and self._done == 0):
            return
        # In a log, the last line already drawn is not repeated.
        if self._tty or self._drawn_at != (self._done, self._analysed):
            self._draw(time.monotonic())
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()
