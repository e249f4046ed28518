"""Progress over a whole archive: one line on stderr each time a video finishes.

The line says which video finished and how, then videos finished / failed / total, hours
of video analysed, video-hours per wall-hour and an ETA. The ETA weighs the videos still
to do by their size in bytes against the bytes analysed so far: archives mix two-minute
and one-hour recordings, and a count of videos would be far off. Skipped videos count as
finished but not towards the speed.

>>> import io
>>> clock = iter([0.0, 10.0]).__next__
>>> p = ArchiveProgress(total=3, total_bytes=300, stream=io.StringIO(), clock=clock)
>>> p.finished("a.mp4", "done", size_bytes=100, duration_s=60.0)
>>> p.stream.getvalue().split(" · ")[:2]
['[1/3] done a.mp4', '1 finished, 0 failed of 3']
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from endostream.archive.summary import FAILURE_STATUSES, VideoRecord
from endostream.output.progress import format_duration
from endostream.output.table import count


def closing_line(records: Sequence[VideoRecord], wall_s: float) -> str:
    """The run's last line: videos, wall time, hours of video analysed and their rate,
    and how many failed.

    >>> r = [VideoRecord("a.mp4", "a.json", "done", duration_s=1800.0, wall_s=60.0),
    ...      VideoRecord("b.mp4", "b.json", "failed", wall_s=1.0),
    ...      VideoRecord("c.mp4", "c.json", "skipped", duration_s=600.0)]
    >>> print(closing_line(r, 90.0).replace(", ", ",\\n"))
    archive: 3 videos in 0:01:30: 0.50 h of video analysed (20.0 video-h/wall-h),
    1 up to date,
    1 failed or partial
    """
    analysed_h = sum(r.duration_s or 0.0 for r in records
                     if r.wall_s is not None and r.status in ("done", "partial",
                                                              "interrupted")) / 3600
    up_to_date = sum(r.status == "skipped" for r in records)
    failed = sum(r.status in FAILURE_STATUSES for r in records)
    wall = format_duration(wall_s)
    wall = wall if wall.count(":") == 2 else "0:" + wall.zfill(5)
    rate = f"{analysed_h * 3600 / wall_s:.1f}" if wall_s > 0 else "?"
    return (f"archive: {count(len(records), 'video')} in {wall}: {analysed_h:.2f} h of video "
            f"analysed ({rate} video-h/wall-h), {up_to_date} up to date, {failed} failed or "
            "partial")


class ArchiveProgress:
    """Counts finished videos and prints the archive line (nothing when disabled)."""

    def __init__(self, total: int, total_bytes: int, *, stream: TextIO | None = None,
                 enabled: bool = True, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._clock = clock
        self._start = clock()
        self._left_bytes = max(total_bytes, 0)
        self._done_bytes = 0
        self.finished_count = 0
        self.failed_count = 0
        self.hours = 0.0

    def finished(self, name: str, status: str, *, size_bytes: int,
                 duration_s: float | None, analysed: bool = True, note: str = "") -> None:
        """Record one video (``analysed``: this run did the work) and print the line."""
        self.finished_count += 1
        self.failed_count += status in ("failed", "partial")
        size = max(size_bytes, 0)
        self._left_bytes = max(self._left_bytes - size, 0)
        if analysed:
            self._done_bytes += size
            self.hours += (duration_s or 0.0) / 3600
        if self.enabled:
            print(self.line(name, status, note), file=self.stream, flush=True)

    def line(self, name: str, status: str, note: str = "") -> str:
        elapsed = max(self._clock() - self._start, 1e-9)
        rate = self.hours * 3600 / elapsed
        eta = (elapsed * self._left_bytes / self._done_bytes) if self._done_bytes else None
        if self.finished_count >= self.total:
            eta = 0.0
        head = f"[{self.finished_count}/{self.total}] {status} {name}" + (
            f" ({note})" if note else "")
        return (f"{head} · {self.finished_count} finished, {self.failed_count} failed of "
                f"{self.total} · {self.hours:.2f} h of video · {rate:.1f} video-h/wall-h · "
                f"ETA {format_duration(eta)}")
