"""Stage ceilings and end-to-end throughput, measured through endostream's public API.

Each stage runs alone, on the same video and model, in the same process:

- **decode alone**: :class:`~endostream.sources.FileSource` with a sample rate so low that
  only the first frame is converted; every frame is still decoded, as the runtime does;
- **decode + crop + resize**: ``FileSource(sample_fps=None)``, every frame converted to
  RGB, cropped to the content area and resized to 224x224 (what a source thread does);
- **inference alone**: :meth:`Classifier.run` on batches of 1, 4, 8, 16, 32 frames (both
  heads of a combined file run in one call), the median of repeated runs;
- **end-to-end**: :func:`endostream.pipeline.offline.segment_video` at every frame and at the
  default sample rate.

The *stage limit* is what the stages allow together when they share the cores:
``1 / (decode + preprocess + inference)`` per frame, inference at the pipeline's batch
size. A pipeline that overlaps decoding and inference perfectly on two cores reaches it;
one that leaves cores idle (or lets threads fight) falls short. When inference runs on a
GPU the stages use different hardware, and the limit is the slowest stage instead:
``1 / max(decode + preprocess, inference)``.

>>> stage_limit_fps(2.0, 1.5, 21.5)
40.0
>>> stage_limit_fps(2.0, 1.5, 2.0, shared=False)
285.7142857142857
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from endostream.frames import MODEL_INPUT_SIZE
from endostream.inference.classifier import Classifier
from endostream.pipeline.offline import SegmentOptions, segment_video
from endostream.sources import FileSource
from endostream.sources.file import DEFAULT_SAMPLE_FPS

log = logging.getLogger(__name__)

#: Batch sizes of the inference sweep (a GPU adds :data:`GPU_EXTRA_BATCHES`).
BATCH_SIZES = (1, 4, 8, 16, 32)
#: Larger batches that only a GPU fills.
GPU_EXTRA_BATCHES = (64,)
#: A sample rate so low that only the first frame is ever selected: decode cost alone.
DECODE_ONLY_SAMPLE_FPS = 1e-6
#: Untimed runs per batch size first: the first run of a new shape allocates.
WARMUP_RUNS = 1
#: Timed runs per batch size at least, however long they take.
MIN_RUNS = 3
#: Seed of the random frames fed to the inference sweep (content does not change speed).
FRAMES_SEED = 0


@dataclass(frozen=True)
class Throughput:
    """Frames through one stage: how many, how long, and the rates that follow."""

    frames: int
    wall_s: float
    cpu_s: float | None = None  #: CPU time of this process (all threads) meanwhile

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 * self.wall_s / self.frames if self.frames else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"frames": self.frames, "wall_s": round(self.wall_s, 4),
                "fps": round(self.fps, 2), "ms_per_frame": round(self.ms_per_frame, 3),
                "cpu_ms_per_frame": _per_frame_ms(self.cpu_s, self.frames)}


@dataclass(frozen=True)
class BatchTiming:
    """Inference alone at one batch size: median and 90th percentile of timed runs."""

    batch: int
    runs: int
    ms_median: float
    ms_p90: float

    @property
    def fps(self) -> float:
        return 1000.0 * self.batch / self.ms_median if self.ms_median > 0 else 0.0

    @property
    def ms_per_frame(self) -> float:
        return self.ms_median / self.batch

    def to_json(self) -> dict[str, Any]:
        d = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}
        d.update(fps=round(self.fps, 2), ms_per_frame=round(self.ms_per_frame, 3))
        return d


@dataclass(frozen=True)
class EndToEnd:
    """One :func:`segment_video` run: frames analysed and decoded, wall time, video length."""

    sample_fps: float | None
    frames_analysed: int
    frames_decoded: int
    wall_s: float
    video_s: float | None
    worker: dict[str, Any]
    #: CPU time of this process (all threads): unlike wall time, other processes' load
    #: barely moves it, so on a shared machine it tells where the work goes.
    cpu_s: float | None = None
    #: ``analysis.mode`` of the run: "dense" or "coarse-to-fine" (the default's).
    mode: str = "dense"
    #: Frames of the video the run went through (decoded or skipped): coarse to fine
    #: decodes fewer than it covers.
    video_frames: int | None = None

    @property
    def video_fps(self) -> float:
        """Frames of video gone through per second of wall time."""
        n = self.video_frames or self.frames_decoded
        return n / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def inferences_per_video_s(self) -> float | None:
        return self.frames_analysed / self.video_s if self.video_s else None

    @property
    def analysed_fps(self) -> float:
        return self.frames_analysed / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def decoded_fps(self) -> float:
        return self.frames_decoded / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def realtime_factor(self) -> float | None:
        """Seconds of video per second of wall time."""
        return self.video_s / self.wall_s if self.video_s and self.wall_s > 0 else None

    def to_json(self) -> dict[str, Any]:
        keep = ("batch_size", "mean_batch_size", "infer_ms_median", "infer_s_total",
                "frames_per_s_inference")
        rtf = self.realtime_factor
        return {
            "sample_fps": self.sample_fps,
            "frames_analysed": self.frames_analysed,
            "frames_decoded": self.frames_decoded,
            "wall_s": round(self.wall_s, 3),
            "video_s": round(self.video_s, 3) if self.video_s else None,
            "analysed_fps": round(self.analysed_fps, 2),
            "decoded_fps": round(self.decoded_fps, 2),
            "realtime_factor": round(rtf, 3) if rtf else None,
            "cpu_ms_per_decoded_frame": _per_frame_ms(self.cpu_s, self.frames_decoded),
            "mode": self.mode,
            "video_frames": self.video_frames,
            "video_fps": round(self.video_fps, 2),
            "inferences_per_video_s": _round(self.inferences_per_video_s),
            "worker": {k: _round(self.worker.get(k)) for k in keep if k in self.worker},
        }


def stage_limit_fps(decode_ms: float, preprocess_ms: float, infer_ms: float,
                    *, shared: bool = True) -> float:
    """Frames/s the stages allow together: one over their summed per-frame cost when they
    share the CPU cores (``shared``), else one over the slowest (inference on a GPU)."""
    total = (decode_ms + preprocess_ms + infer_ms if shared
             else max(decode_ms + preprocess_ms, infer_ms))
    return 1000.0 / total if total > 0 else 0.0


def _per_frame_ms(cpu_s: float | None, frames: int) -> float | None:
    return round(1000.0 * cpu_s / frames, 3) if cpu_s is not None and frames else None


def measure_source(video: Path, sample_fps: float | None) -> Throughput:
    """Read ``video`` through a FileSource to its end; frames counted are *decoded* ones."""
    started, cpu0 = time.perf_counter(), time.process_time()
    with FileSource(video, sample_fps=sample_fps) as source:
        while source.read() is not None:
            pass
        decoded = source.decoded_frames
    return Throughput(decoded, time.perf_counter() - started, time.process_time() - cpu0)


def measure_decode(video: Path) -> Throughput:
    """Decode alone: every frame decoded, (almost) none converted."""
    return measure_source(video, DECODE_ONLY_SAMPLE_FPS)


def measure_decode_preprocess(video: Path) -> Throughput:
    """Decode, RGB conversion, content-area crop and resize of every frame."""
    return measure_source(video, None)


def measure_inference(classifier: Classifier, batches: tuple[int, ...],
                      budget_s: float) -> list[BatchTiming]:
    """:meth:`Classifier.run` timed per batch size: at least :data:`MIN_RUNS` runs and
    ``budget_s`` seconds each, after :data:`WARMUP_RUNS` untimed ones."""
    rng = np.random.default_rng(FRAMES_SEED)
    frames = rng.integers(0, 256, (max(batches), MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3),
                          dtype=np.uint8)
    timings = []
    for batch in batches:
        x = frames[:batch]
        for _ in range(WARMUP_RUNS):
            classifier.run(x)
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < MIN_RUNS or time.perf_counter() - started < budget_s:
            t0 = time.perf_counter()
            classifier.run(x)
            times.append(1000.0 * (time.perf_counter() - t0))
        ordered = sorted(times)
        timings.append(BatchTiming(batch, len(times), statistics.median(times),
                                   ordered[int(0.9 * (len(ordered) - 1))]))
        log.info("inference batch %d: %.1f ms median (%d runs)", batch,
                 timings[-1].ms_median, len(times))
    return timings


def measure_end_to_end(video: Path, classifier: Classifier, sample_fps: float | None,
                       batch_size: int, *, dense: bool = False) -> EndToEnd:
    """One full :func:`segment_video` run at ``sample_fps`` (``None``: every frame), coarse
    to fine where it applies (the default) unless ``dense``."""
    options = SegmentOptions(sample_fps=sample_fps, batch_size=batch_size,
                             **({"coarse_fps": None} if dense else {}))
    cpu0 = time.process_time()
    result = segment_video(video, classifier, options)
    cpu_s = time.process_time() - cpu0
    if result.error is not None:
        raise result.error
    return EndToEnd(sample_fps, result.frames_analysed, result.frames_decoded, result.wall_s,
                    result.source.duration_s, dict(result.worker_stats), cpu_s,
                    mode=str(result.document.analysis.extra.get("mode", "dense")),
                    video_frames=result.source.frames)


def inference_batches(provider: str) -> tuple[int, ...]:
    """The sweep for a provider: GPUs get larger batches too."""
    return BATCH_SIZES + (GPU_EXTRA_BATCHES if provider != "cpu" else ())


__all__ = [
    "DEFAULT_SAMPLE_FPS",
    "BatchTiming",
    "EndToEnd",
    "Throughput",
    "inference_batches",
    "measure_decode",
    "measure_decode_preprocess",
    "measure_end_to_end",
    "measure_inference",
    "measure_source",
    "stage_limit_fps",
]


def _round(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value
