"""Stage ceilings and end-to-end speed measured in rounds, the fastest attempt of each kept.

Noise on a shared or virtual machine (other processes, hypervisor steal) only ever slows a
measurement down, so the fastest of a few interleaved attempts is the best estimate of what
the machine can do; and because every figure is the best of its own attempts, a ratio of
two figures does not depend on which of them a disturbance happened to hit. Each round
runs every measurement once, so a disturbance lasting a few seconds spoils one attempt of
one figure, not all attempts of it.

>>> Attempt(1.0, CpuShare()).value
1.0
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from endostream.inference.classifier import Classifier
from endostream.sources.file import DEFAULT_SAMPLE_FPS

from . import stages
from .machine import CpuShare

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """One measurement and the share of the CPU that others took while it ran."""

    value: Any
    share: CpuShare


def attempt(part: str, fn: Callable[..., Any], *args: Any) -> Attempt:
    """Run ``fn(*args)`` once, watching what other processes take meanwhile."""
    log.info("%s ...", part)
    with CpuShare() as share:
        value = fn(*args)
    return Attempt(value, share)


@dataclass
class StageResults:
    """The kept (fastest) figures of every part, and the fps of every attempt."""

    decode: stages.Throughput
    decode_preprocess: stages.Throughput
    inference: list[stages.BatchTiming]
    every_frame: stages.EndToEnd
    default_rate: stages.EndToEnd
    default_dense: stages.EndToEnd
    shares: dict[str, CpuShare] = field(default_factory=dict)
    attempts_fps: dict[str, list[float]] = field(default_factory=dict)

    @property
    def preprocess_ms(self) -> float:
        """Per-frame cost of RGB conversion, crop and resize: the difference of two passes."""
        return max(0.0, self.decode_preprocess.ms_per_frame - self.decode.ms_per_frame)


def measure_stages(video: Path, classifier: Classifier, batches: tuple[int, ...],
                   infer_budget_s: float, batch: int, repeat: int) -> StageResults:
    """``repeat`` rounds of decode, decode + preprocess, inference sweep, end-to-end at
    every frame and at the default sample rate (coarse to fine, and dense beside it); the
    fastest attempt of each is kept."""
    rounds: list[dict[str, Attempt]] = []
    for _ in range(repeat):
        rounds.append({
            "decode": attempt("decode", stages.measure_decode, video),
            "decode_preprocess": attempt("decode_preprocess", stages.measure_decode_preprocess,
                                         video),
            "inference": attempt("inference", stages.measure_inference, classifier, batches,
                                 infer_budget_s),
            "e2e_every_frame": attempt("e2e_every_frame", stages.measure_end_to_end, video,
                                       classifier, None, batch),
            "e2e_default_rate": attempt("e2e_default_rate", stages.measure_end_to_end, video,
                                        classifier, DEFAULT_SAMPLE_FPS, batch),
            "e2e_default_dense": attempt("e2e_default_dense", _dense, video, classifier,
                                         DEFAULT_SAMPLE_FPS, batch),
        })

    def fastest(part: str, cost: Callable[[Any], float]) -> Attempt:
        return min((r[part] for r in rounds), key=lambda a: cost(a.value))

    kept = {
        "decode": fastest("decode", lambda t: t.ms_per_frame),
        "decode_preprocess": fastest("decode_preprocess", lambda t: t.ms_per_frame),
        "inference": fastest("inference", lambda ts: sum(t.ms_per_frame for t in ts)),
        "e2e_every_frame": fastest("e2e_every_frame", lambda e: e.wall_s),
        "e2e_default_rate": fastest("e2e_default_rate", lambda e: e.wall_s),
        "e2e_default_dense": fastest("e2e_default_dense", lambda e: e.wall_s),
    }
    # Per batch size the fastest round: the sweep is long, a disturbance hits part of it.
    inference = [min((r["inference"].value[i] for r in rounds), key=lambda t: t.ms_median)
                 for i in range(len(batches))]
    return StageResults(
        decode=kept["decode"].value,
        decode_preprocess=kept["decode_preprocess"].value,
        inference=inference,
        every_frame=kept["e2e_every_frame"].value,
        default_rate=kept["e2e_default_rate"].value,
        default_dense=kept["e2e_default_dense"].value,
        shares={part: a.share for part, a in kept.items()},
        attempts_fps={
            "decode": [round(r["decode"].value.fps, 2) for r in rounds],
            "decode_preprocess": [round(r["decode_preprocess"].value.fps, 2) for r in rounds],
            "e2e_every_frame": [round(r["e2e_every_frame"].value.analysed_fps, 2)
                                for r in rounds],
            "e2e_default_rate": [round(r["e2e_default_rate"].value.analysed_fps, 2)
                                 for r in rounds],
            "e2e_default_dense": [round(r["e2e_default_dense"].value.analysed_fps, 2)
                                  for r in rounds],
        },
    )


def _dense(video: Path, classifier: Classifier, sample_fps: float | None,
           batch: int) -> stages.EndToEnd:
    """The default sample rate analysed densely (``segment --dense``), beside the default."""
    return stages.measure_end_to_end(video, classifier, sample_fps, batch, dense=True)
