"""One video's analysis as every engine does it, and what it hands back to the driver.

:func:`analyse_video` runs :func:`~endostream.pipeline.files.analyse` (the first half of
the one path from a video to its files, :mod:`endostream.pipeline.files`) on a job with a
loaded classifier and returns a :class:`VideoOutcome`: the finished ``sections.json``
document (the analysis path's, plus the input fingerprint), the predictions when a CSV
was asked for, or the one-line error of a video that failed. It writes nothing: engines
may run it on other machines, and only the driver writes files (:func:`store`, the
second half), so outputs and summary never race. Both engines call this same function,
which is why they write the same sections.

>>> from endostream.inference.classifier import Classifier  # doctest: +SKIP
>>> out = analyse_video(job, Classifier.load("m.onnx"), SegmentOptions())  # doctest: +SKIP
>>> out.status, len(out.document.sections)  # doctest: +SKIP
('done', 3)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from endostream.archive.inputs import ArchiveJob
from endostream.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EndostreamError,
)
from endostream.frames import Prediction
from endostream.inference.classifier import Classifier
from endostream.output.document import SectionsDocument
from endostream.pipeline.files import VideoFiles, analyse, write_files
from endostream.pipeline.offline import SegmentOptions

#: Status of a video whose result is complete (written this run).
DONE = "done"
#: Written with complete: false (decoding failed part way, or the run was interrupted).
PARTIAL = "partial"
INTERRUPTED = "interrupted"
#: Nothing written: the video could not be analysed at all.
FAILED = "failed"


@dataclass(frozen=True)
class VideoOutcome:
    """What an engine hands back for one job. ``document`` is ``None`` only for a failure.

    ``exit_code`` is the code a single-video ``segment`` would have exited with (0 when
    complete); ``worker`` says where it ran (``local``, or a Ray node and process).
    """

    job: ArchiveJob
    document: SectionsDocument | None
    predictions: tuple[Prediction, ...] | None
    error: str | None
    exit_code: int
    wall_s: float
    worker: str = "local"

    @property
    def status(self) -> str:
        if self.document is None:
            return FAILED
        if self.document.complete:
            return DONE
        return INTERRUPTED if self.exit_code == EXIT_INTERRUPTED else PARTIAL


def analyse_video(job: ArchiveJob, classifier: Classifier, options: SegmentOptions, *,
                  keep_predictions: bool = False, stop: threading.Event | None = None,
                  on_progress: Callable[[int, int, int | None], None] | None = None,
                  worker: str = "local") -> VideoOutcome:
    """Analyse one video; every error of the video (not of the run) ends up in the outcome.

    Ctrl+C inside the video (or ``stop``) gives a partial document with the
    ``interrupted`` status; the caller then ends the run.
    """
    started = time.monotonic()
    try:
        # Step 1 of the one path to files; the driver does the rest (store).
        analysed = analyse(job.video, classifier, options, keep_predictions=keep_predictions,
                           on_progress=on_progress, stop=stop)
    except EndostreamError as e:
        return VideoOutcome(job, None, None, str(e), e.exit_code, time.monotonic() - started,
                            worker)
    except Exception as e:  # noqa: BLE001 - one video's bug must not end an archive run
        return VideoOutcome(job, None, None, f"internal error: {type(e).__name__}: {e}",
                            EXIT_INTERNAL, time.monotonic() - started, worker)
    result = analysed.result
    error = result.error
    document = result.document.with_analysis_facts(
        input={"size_bytes": job.size_bytes, "mtime_ns": job.mtime_ns})
    return VideoOutcome(job, document, analysed.predictions,
                        str(error) if error is not None else None,
                        error.exit_code if error is not None else 0,
                        result.wall_s, worker)


def store(outcome: VideoOutcome) -> None:
    """Write an outcome's CSV and sections file atomically; the driver alone calls this.

    Steps 2 and 3 of :mod:`endostream.pipeline.files`, as for one video: the CSV is
    written first, so a sections file that says ``complete: true`` (which the resume
    check trusts) never sits beside a CSV still to come; a CSV that fails leaves no file
    (the resume check then redoes the video) and its error is raised after the sections
    are written. A failure writes nothing. The video's own error (partial, interrupted)
    is the outcome's, for the summary; it is not raised here.
    """
    doc = outcome.document
    if doc is None:
        return
    job = outcome.job
    job.output.parent.mkdir(parents=True, exist_ok=True)
    written = write_files(doc, VideoFiles(sections=job.output, csv=job.csv,
                                          hint="choose another --out-dir"),
                          predictions=outcome.predictions)
    written.raise_first()
