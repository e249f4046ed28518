"""The archive driver: plan, hand the work to an engine, write results as they arrive.

:func:`run_archive` checks the output directory, decides per video whether its result is
up to date (:mod:`.resume`), hands the rest to an engine (``local`` or ``ray``), and for
each outcome that comes back writes its ``sections.json`` (and CSV) and refreshes
``archive.json`` / ``archive.csv``. It is the only writer: engines only compute. A broken
video is a line in the summary, not the end of the run; Ctrl+C keeps every finished video
and the one in flight (``complete: false``) and exits 130.

Exit codes: 0 every video done or up to date; :data:`~endostream.errors.EXIT_ARCHIVE_FAILURES`
(8) the run finished but some videos failed or are partial (see ``archive.json``);
130 interrupted; 2, 4, 5 as for ``segment`` when the run cannot start at all.

>>> code = run_archive(discover(["archive/"], out_dir=Path("results")),  # doctest: +SKIP
...                    ArchiveConfig(Path("results"), ModelSpec((Path("m.onnx"),))))
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from endostream.archive.inputs import SUMMARY_JSON, ArchiveJob, root_of
from endostream.archive.local import LocalEngine, ModelSpec
from endostream.archive.outcome import INTERRUPTED, VideoOutcome, store
from endostream.archive.progress import ArchiveProgress, closing_line
from endostream.archive.resume import (
    AnalysisSettings,
    InputFingerprint,
    content_reason,
    read_existing,
    read_result,
)
from endostream.archive.summary import (
    FAILURE_STATUSES,
    SCHEMA_ID,
    VideoRecord,
    build_summary,
    write_summary,
)
from endostream.errors import (
    EXIT_ARCHIVE_FAILURES,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_VIDEO,
    Interrupted,
    ModelError,
    OutputError,
    UsageError,
)
from endostream.inference.classifier import sha256_file
from endostream.output.guard import prepare_output_folder
from endostream.output.table import count
from endostream.pipeline.offline import SegmentOptions
from endostream.segmentation.section import UNUSABLE

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


class Engine(Protocol):
    """What the driver needs of an engine: outcomes as they finish, and closing."""

    name: str

    def process(self, jobs: Sequence[ArchiveJob]) -> Iterator[VideoOutcome]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ArchiveConfig:
    """One archive run's settings (the command line's, once checked)."""

    out_dir: Path
    model: ModelSpec
    options: SegmentOptions = field(default_factory=SegmentOptions)
    csv: bool = False
    force: bool = False
    quiet: bool = False
    engine: str = "local"
    ray_address: str | None = None


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def make_engine(config: ArchiveConfig) -> Engine:
    """The engine ``config`` names; the Ray one is imported only when asked for."""
    if config.engine == "ray":
        try:
            from endostream.archive.ray_engine import RayEngine
        except ImportError as e:
            raise UsageError(f"--engine ray needs Ray ({e}); install the cluster extra: "
                             "pip install 'endostream[cluster]'") from None

        return RayEngine(config.model, config.options, address=config.ray_address,
                         keep_predictions=config.csv,
                         announce=None if config.quiet else _to_stderr)
    return LocalEngine(config.model, config.options, keep_predictions=config.csv,
                       video_progress=not config.quiet)


def run_archive(jobs: Sequence[ArchiveJob], config: ArchiveConfig, *,
                engine_factory: Callable[[ArchiveConfig], Engine] = make_engine,
                stream=None) -> int:
    """Segment ``jobs`` into ``config.out_dir``; returns the exit code (see the module
    docstring), or raises :class:`~endostream.errors.Interrupted` after Ctrl+C."""
    stream = stream if stream is not None else sys.stderr
    started_at, started = datetime.now(timezone.utc), time.monotonic()
    previous = _prepare_out_dir(config.out_dir, config.force)
    sha = _models_sha256(config.model.paths)
    settings = AnalysisSettings.of(sha, config.options.sample_fps, config.options.segmenter)
    unreadable = {} if config.force else _failed_before(previous)
    # Videos of earlier runs into this folder that this run was not given stay listed.
    records: dict[str, VideoRecord] = _earlier_records(previous, jobs)
    pending: list[ArchiveJob] = []
    for job in jobs:
        record = _existing_record(job, config, settings, unreadable.get(job.name))
        records[job.name] = record or _stamp(
            VideoRecord(job.name, _rel(job.output, config), "pending"), job)
        if record is None:
            pending.append(job)
    labels: list[str] = []

    root = str(root_of(jobs[0])) if jobs else None

    def refresh() -> None:
        doc = build_summary(sorted(records.values(), key=lambda r: r.name),
                            engine=config.engine, root=root,
                            models={"path": ",".join(map(str, config.model.paths)),
                                    "sha256": sha},
                            analysis={"sample_fps": settings.sample_fps,
                                      "segmenter": settings.segmenter},
                            started_at=started_at, wall_s=time.monotonic() - started)
        write_summary(config.out_dir, doc, sorted(records.values(), key=lambda r: r.name),
                      labels)

    refresh()  # the first write also proves the directory takes files
    kept = sum(r.status == "skipped" for r in records.values())
    if not config.quiet:
        print(f"archive: {count(len(jobs), 'video')}, {kept} up to date, "
              f"{sum(r.status == 'failed' for r in records.values())} failed before and "
              f"unchanged (or not ours to replace), {len(pending)} to analyse on the "
              f"{config.engine} engine", file=stream)
    interrupted = False
    if pending:
        progress = ArchiveProgress(len(pending), sum(j.size_bytes for j in pending),
                                   stream=stream, enabled=not config.quiet)
        engine = engine_factory(config)
        try:
            for outcome in engine.process(pending):
                store(outcome)
                if outcome.document is not None and not labels:
                    labels = [*outcome.document.heads.get("organ", ()), UNUSABLE]
                record = _record(outcome, config)
                records[outcome.job.name] = record
                interrupted |= outcome.status == INTERRUPTED
                refresh()
                progress.finished(record.name, record.status, size_bytes=outcome.job.size_bytes,
                                  duration_s=record.duration_s,
                                  note=record.error or _note(record))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            engine.close()
            refresh()
    # The exit code and closing line are about the videos this run was given.
    return _finish([records[j.name] for j in jobs], config, interrupted, stream,
                   wall_s=time.monotonic() - started)


def _note(record: VideoRecord) -> str:
    n = record.sections or 0
    return f"{n} section{'' if n == 1 else 's'}, {record.wall_s or 0.0:.1f} s"


def _finish(records: list[VideoRecord], config: ArchiveConfig, interrupted: bool,
            stream, *, wall_s: float) -> int:
    counts = {s: sum(r.status == s for r in records) for s in
              ("done", "skipped", "partial", "interrupted", "failed", "pending")}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    print(f"wrote {config.out_dir / SUMMARY_JSON}: {text}", file=stream)
    if not config.quiet:
        print(closing_line(records, wall_s), file=stream)
    if interrupted:
        raise Interrupted(f"archive run interrupted; finished videos were kept, run the same "
                          f"command again to do the {counts['pending'] + counts['interrupted']} "
                          "left")
    failures = sum(counts[s] for s in FAILURE_STATUSES)
    if failures:
        print(f"endostream: {failures} of {count(len(records), 'video')} failed or "
              f"{'is' if failures == 1 else 'are'} partial; "
              f"see {config.out_dir / SUMMARY_JSON}", file=stream)
        return EXIT_ARCHIVE_FAILURES
    return EXIT_OK


def _prepare_out_dir(out_dir: Path, force: bool) -> dict | None:
    """Create ``out_dir`` if needed and refuse one that cannot take files or holds a
    summary that is not ours — before any video is analysed. Returns the summary of the
    last run there, if any."""
    prepare_output_folder("--out-dir", out_dir)  # the one guard: created and probed
    summary = out_dir / SUMMARY_JSON
    if not summary.exists():
        return None
    try:
        last = read_existing(summary)
    except OutputError:
        last = None
    if isinstance(last, dict) and last.get("schema") == SCHEMA_ID:
        return last
    if not force:
        raise OutputError(f"'{summary}' exists and is not an endostream archive summary; "
                          "choose another --out-dir or pass --overwrite to replace it")
    return None


def _earlier_records(previous: dict | None,
                     jobs: Sequence[ArchiveJob]) -> dict[str, VideoRecord]:
    """The records of ``previous`` (the last summary) for videos not in ``jobs``, as they
    were, so a run over part of the archive does not shrink ``archive.json``."""
    given = {j.name for j in jobs}
    out = {}
    for d in (previous or {}).get("videos", []):
        if isinstance(d, dict) and isinstance(d.get("name"), str) and d["name"] not in given:
            try:
                out[d["name"]] = replace(VideoRecord.from_json(d), wall_s=None, worker=None)
            except TypeError:  # a record this version cannot read: left out
                continue
    return out


def _failed_before(previous: dict | None) -> dict[str, VideoRecord]:
    """Videos the last run found unreadable (exit 3) or damaged part way (``partial``,
    exit 6): one rule for both, they are not analysed again while their size and
    modification time stay the same, since the same bytes fail the same way
    (``--overwrite`` tries them anyway)."""
    out = {}
    for d in (previous or {}).get("videos", []):
        if not isinstance(d, dict):
            continue
        if (d.get("status"), d.get("exit_code")) in (("failed", EXIT_VIDEO),
                                                     ("partial", EXIT_PARTIAL)):
            out[d.get("name")] = VideoRecord.from_json(d)
    return out


def _models_sha256(paths: Sequence[Path]) -> str:
    """The models' hashes as ``sections.json`` writes them, without loading the models."""
    out = []
    for p in paths:
        try:
            out.append(sha256_file(p))
        except FileNotFoundError:
            raise ModelError(f"model '{p}' not found; pass the path of an .onnx file made by "
                             "`endostream export`") from None
        except OSError as e:
            raise ModelError(f"model '{p}' cannot be read ({e.strerror}); check its "
                             "permissions") from None
    return ",".join(out)


def _existing_record(job: ArchiveJob, config: ArchiveConfig, settings: AnalysisSettings,
                     unreadable: VideoRecord | None) -> VideoRecord | None:
    """The record of a video whose result is kept (``skipped``), must not be replaced or
    was unreadable and has not changed since (``failed``); ``None`` when it is to be
    analysed."""
    rel = _rel(job.output, config)
    try:
        doc = read_result(job.output)
    except OutputError as e:
        return None if config.force else _stamp(VideoRecord(job.name, rel, "failed",
                                                            error=str(e)), job)
    except UsageError as e:  # ours, but broken: redone
        log.info("redoing %s: %s", job.name, e)
        return None
    fingerprint = InputFingerprint(job.size_bytes, job.mtime_ns)
    unchanged = unreadable is not None and \
        (unreadable.size_bytes, unreadable.mtime_ns) == (job.size_bytes, job.mtime_ns)
    if unchanged and doc is None and unreadable.status == "failed":
        return replace(unreadable, wall_s=None, worker=None)
    if unchanged and doc is not None and unreadable.status == "partial" and \
            settings.stale_reason(doc, fingerprint, partial_ok=True) is None:
        return replace(unreadable, wall_s=None, worker=None)
    if doc is None or config.force:
        return None
    reason = settings.stale_reason(doc, fingerprint)
    if reason is None and job.csv is not None and not job.csv.exists():
        reason = "its per-frame CSV is missing"
    if reason is None:
        reason = content_reason(doc, job.video, job.csv)
    if reason is not None:
        log.info("redoing %s: %s", job.name, reason)
        return None
    return _stamp(VideoRecord.from_document(job.name, rel, "skipped", doc), job, 0)


def _record(outcome: VideoOutcome, config: ArchiveConfig) -> VideoRecord:
    job = outcome.job
    rel = _rel(job.output, config)
    if outcome.document is None:
        record = VideoRecord(job.name, rel, outcome.status, error=outcome.error,
                             wall_s=round(outcome.wall_s, 3), worker=outcome.worker)
    else:
        record = VideoRecord.from_document(job.name, rel, outcome.status, outcome.document,
                                           error=outcome.error, wall_s=outcome.wall_s,
                                           worker=outcome.worker)
    return _stamp(record, job, outcome.exit_code)


def _stamp(record: VideoRecord, job: ArchiveJob, exit_code: int | None = None) -> VideoRecord:
    """``record`` with the video's fingerprint (and exit code) as of this run."""
    return replace(record, size_bytes=job.size_bytes, mtime_ns=job.mtime_ns,
                   exit_code=exit_code if exit_code is not None else record.exit_code)


def _rel(path: Path, config: ArchiveConfig) -> str:
    """``path`` as the summary shows it: relative to the output directory."""
    return Path(os.path.relpath(path, os.path.abspath(config.out_dir))).as_posix()
