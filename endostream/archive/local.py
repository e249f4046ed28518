"""The local engine: in this process, one video after another, each using all cores.

The classifier is loaded once, when the first video that needs work comes up (a rerun
with nothing to do never loads it), and kept for the whole archive. A per-video progress
line (frames, ETA) is drawn as for a single ``segment``. Ctrl+C inside a video ends the
run with that video's partial result; the driver writes it.

>>> engine = LocalEngine(ModelSpec(("m.onnx",), "cpu"), SegmentOptions())  # doctest: +SKIP
>>> for outcome in engine.process(jobs):  # doctest: +SKIP
...     print(outcome.job.name, outcome.status)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from endostream.archive.inputs import ArchiveJob
from endostream.archive.outcome import INTERRUPTED, VideoOutcome, analyse_video
from endostream.inference.classifier import Classifier
from endostream.output.progress import Progress
from endostream.pipeline.offline import SegmentOptions


@dataclass(frozen=True)
class ModelSpec:
    """How every engine loads the model: absolute paths (every worker opens the same
    files), device and CPU threads (``None``: all cores the worker may use)."""

    paths: tuple[Path, ...]
    device: str = "auto"
    threads: int | None = None

    def load(self, threads: int | None = None) -> Classifier:
        return Classifier.load(list(self.paths), device=self.device,
                               threads=threads or self.threads)


class LocalEngine:
    """Runs jobs in this process; :meth:`process` yields one outcome per job, in order."""

    name = "local"

    def __init__(self, model: ModelSpec, options: SegmentOptions, *,
                 keep_predictions: bool = False, video_progress: bool = True):
        self.model = model
        self.options = options
        self.keep_predictions = keep_predictions
        self.video_progress = video_progress
        self._classifier: Classifier | None = None

    def process(self, jobs: Sequence[ArchiveJob]) -> Iterator[VideoOutcome]:
        """Analyse ``jobs`` in order; stops after a video that was interrupted."""
        for job in jobs:
            if self._classifier is None:
                self._classifier = self.model.load()
            outcome = self._analyse(job)
            yield outcome
            if outcome.status == INTERRUPTED:
                return

    def _analyse(self, job: ArchiveJob) -> VideoOutcome:
        # Started with the video, so its rates count from the video's start (made at the
        # first frame, its first rate was that frame's burst over a microsecond); a video
        # that cannot be opened draws nothing (see Progress.close).
        progress = Progress(None, enabled=self.video_progress)
        try:
            return analyse_video(job, self._classifier, self.options,
                                 keep_predictions=self.keep_predictions,
                                 on_progress=progress.update_frames)
        finally:
            progress.close()

    def close(self) -> None:
        if self._classifier is not None:
            self._classifier.close()
            self._classifier = None
