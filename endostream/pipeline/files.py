"""One video segmented to files, in one order of writes and errors for every caller.

:func:`segment_to_files` is how ``segment``, ``demo`` and ``evaluate`` turn a video into
its files: the sections document, the per-frame CSV, and the outputs made alongside from
the same run (chapters, report, DICOM). The archive engines use its two halves, because
their analysis may run on another machine and only the driver writes:
:func:`analyse` (writes nothing but a CSV it was asked to stream) on the worker,
:func:`write_files` on the driver. Paths are checked before (through
:mod:`endostream.output.guard`, with the caller's option names), so nothing here refuses
a path; what it fixes is the order:

1. the analysis (:func:`~endostream.pipeline.offline.segment_video`), feeding the CSV and
   the caller's hooks; an error that stops it (the video cannot be opened, the model
   fails) writes nothing, and a CSV begun is discarded;
2. the CSV is closed (or written from the kept predictions); a failure is kept, not
   raised: the optional CSV must not cost the sections;
3. the sections document, atomically (``-``: to stdout; ``None``: not written); a
   failure here is raised at once, since nothing else is worth writing without it;
4. each alongside output in the order given; each failure is kept and the next is tried;
5. the caller's ``on_written`` (its summary lines);
6. the first kept error is raised: the CSV's, then the alongside outputs' in order, then
   the analysis's own (interrupted: 130; decode error part way: 6), whose document was
   written with ``complete: false``.

The alongside outputs live in packages above this one (``review``, ``dicom``), so the
caller hands them in as :data:`AlongsideWriter` hooks, with the recorder they need as
``on_frame`` / ``on_prediction``.

>>> files = VideoFiles(sections=Path("procedure.sections.json"), csv=Path("frames.csv"))
>>> result = segment_to_files("procedure.mp4", classifier, SegmentOptions(),
...                           files)  # doctest: +SKIP
>>> result.complete  # doctest: +SKIP
True
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from endostream.errors import EndostreamError, OutputError
from endostream.frames import Prediction
from endostream.inference.classifier import Classifier
from endostream.output.document import SectionsDocument
from endostream.output.frames_csv import FrameCsvWriter
from endostream.output.guard import is_stdout
from endostream.output.progress import Progress
from endostream.output.sections_file import write_document
from endostream.pipeline.offline import (
    FrameFn,
    PredictionFn,
    ProgressFn,
    SegmentOptions,
    SegmentResult,
    segment_video,
)
from endostream.sources.fingerprint import file_sha256

#: An output written from the document just written, and from the path it was written
#: to (``-`` for stdout): chapters, the report, DICOM. It raises
#: :class:`~endostream.errors.EndostreamError` when it fails, and says on stderr what it
#: wrote.
AlongsideWriter = Callable[[SectionsDocument, Path], None]


@dataclass(frozen=True)
class VideoFiles:
    """Where one video's files go.

    ``sections``: the sections document (``-``: stdout; ``None``: not written, as
    ``evaluate`` without ``--out-dir``); ``csv``: the per-frame CSV (``None``: none);
    ``alongside``: the outputs made after the sections, in order; ``hint``: what a
    failure to write the sections tells the user to do.
    """

    sections: Path | None
    csv: Path | None = None
    alongside: tuple[AlongsideWriter, ...] = ()
    hint: str = "choose another --out"

    @property
    def to_stdout(self) -> bool:
        return self.sections is not None and is_stdout(self.sections)


@dataclass
class Analysed:
    """What :func:`analyse` hands to :func:`write_files`: the result, and the CSV's rows
    (a writer streaming them, or the predictions kept to be written elsewhere)."""

    result: SegmentResult
    csv_writer: FrameCsvWriter | None = None
    predictions: tuple[Prediction, ...] | None = None


@dataclass(frozen=True)
class Written:
    """What :func:`write_files` did: the sections path, the per-frame CSV written this run
    (``None``: none asked for, or it failed), and the errors it kept (the CSV's, then each
    alongside output's), to be raised after the caller's summary."""

    sections: Path | None
    errors: tuple[EndostreamError, ...] = ()
    csv: Path | None = None

    def raise_first(self) -> None:
        if self.errors:
            raise self.errors[0]


def analyse(video: str | Path, classifier: Classifier, options: SegmentOptions, *,
            csv: Path | None = None, keep_predictions: bool = False,
            on_frame: FrameFn | None = None, on_prediction: PredictionFn | None = None,
            on_progress: ProgressFn | None = None, progress: Progress | None = None,
            stop: threading.Event | None = None) -> Analysed:
    """Step 1: run the analysis, streaming the CSV to ``csv`` (a temporary file until
    :func:`write_files` closes it) or keeping the predictions (``keep_predictions``,
    for a CSV the driver writes). ``progress`` is drawn and closed when the analysis
    ends, before any file is written. An error that stops the analysis discards the CSV
    and is raised; the hooks are :func:`~endostream.pipeline.offline.segment_video`'s.
    """
    kept: list[Prediction] | None = [] if keep_predictions else None
    progress_hooks = [progress.update_frames] if progress is not None else []
    progress_hooks += [on_progress] if on_progress is not None else []
    writer: FrameCsvWriter | None = None
    try:
        writer = FrameCsvWriter(csv, classifier.heads) if csv is not None else None
        listeners = [writer.write] if writer is not None else []
        listeners += [kept.append] if kept is not None else []
        listeners += [on_prediction] if on_prediction is not None else []
        result = segment_video(video, classifier, options, on_frame=on_frame,
                               on_prediction=_fan_out(listeners),
                               on_progress=_fan_out(progress_hooks), stop=stop)
    except BaseException:
        # A run that raises writes no sections, so it leaves no CSV either.
        if writer is not None:
            writer.discard()
        raise
    finally:
        if progress is not None:
            progress.close()
    return Analysed(result, writer, tuple(kept) if kept is not None else None)


def write_files(document: SectionsDocument, files: VideoFiles, *,
                csv_writer: FrameCsvWriter | None = None,
                predictions: Sequence[Prediction] | None = None) -> Written:
    """Steps 2 to 4: the CSV, the sections document, the alongside outputs; the CSV's
    and the alongside outputs' errors are kept in :attr:`Written.errors`, the sections'
    are raised."""
    errors: list[EndostreamError] = []
    csv_error = _close_csv(document, files.csv, csv_writer, predictions)
    if csv_error is not None:
        errors.append(csv_error)
    csv_written = None
    if csv_error is None and files.csv is not None and (csv_writer is not None
                                                        or predictions is not None):
        # Written this run: the readers refuse a CSV of another run by this hash
        # (procedure.frame_table).
        csv_written = files.csv
        document = document.with_frames_csv(file_sha256(files.csv))
    if files.to_stdout:
        sys.stdout.write(document.dumps())
        sys.stdout.flush()
    elif files.sections is not None:
        write_document(files.sections, document, hint=files.hint)
    for writer in files.alongside:
        try:
            writer(document, files.sections)
        except EndostreamError as e:
            errors.append(e)
    return Written(files.sections, tuple(errors), csv_written)


def segment_to_files(video: str | Path, classifier: Classifier, options: SegmentOptions,
                     files: VideoFiles, *, on_frame: FrameFn | None = None,
                     on_prediction: PredictionFn | None = None,
                     progress: Progress | None = None,
                     on_written: Callable[[SegmentResult, Written], None] | None = None,
                     stop: threading.Event | None = None) -> SegmentResult:
    """Analyse ``video`` and write ``files`` in the module's order; returns the result
    when every file was written and the analysis was complete, else raises the first
    error (steps 1 to 6 above). ``on_written`` runs once the files are written, before
    any error is raised: the caller's summary of what it found.
    """
    analysed = analyse(video, classifier, options, csv=files.csv, on_frame=on_frame,
                       on_prediction=on_prediction, progress=progress, stop=stop)
    result = analysed.result
    written = write_files(result.document, files, csv_writer=analysed.csv_writer)
    if on_written is not None:
        on_written(result, written)
    written.raise_first()
    if result.error is not None:
        raise result.error
    return result


def _close_csv(document: SectionsDocument, path: Path | None,
               writer: FrameCsvWriter | None,
               predictions: Sequence[Prediction] | None) -> OutputError | None:
    """Step 2: move the streamed CSV into place, or write the kept predictions; the
    error is returned. A CSV that fails leaves no file behind."""
    if path is None:
        return None
    try:
        if writer is None:
            if predictions is None:
                return None
            writer = FrameCsvWriter(path, document.heads)
            try:
                for p in predictions:
                    writer.write(p)
            except BaseException:
                writer.discard()
                raise
        writer.close()
    except OutputError as e:
        return e
    return None


def _fan_out(listeners: list[Callable]) -> Callable | None:
    """One hook that calls each of ``listeners`` in order (``None`` when there are none)."""
    if not listeners:
        return None
    if len(listeners) == 1:
        return listeners[0]

    def each(*args) -> None:
        for listener in listeners:
            listener(*args)

    return each
