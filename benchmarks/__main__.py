"""``python -m benchmarks``: stage ceilings, end-to-end speed, live latency, naive baseline.

Measures, in one run on one video and one model (see :mod:`benchmarks.inputs` for the
defaults: a generated 720p30 H.264 procedure and the real EfficientNetB0 pair):

1. decode alone; decode + RGB + crop + resize; inference alone (both heads) at batch
   1, 4, 8, 16, 32 (:mod:`benchmarks.stages`);
2. end-to-end :func:`~endostream.pipeline.offline.segment_video` at every frame and at the
   default sample rate;
3. live capture → label latency (p50, p90, p99, max) and drops at 30 and 60 fps
   (:mod:`benchmarks.live_latency`);
4. the naive baseline, an OpenCV + PyTorch eager loop (:mod:`benchmarks.naive`);
5. one backbone against two, fp32 against int8 (:mod:`benchmarks.shared_backbone`): the
   two-model graph, a shared-backbone model and its int8 variant side by side, inference,
   end to end (every frame, and decoded frames/s at the default rate over decoding
   alone) and live 30 fps;
6. dense against coarse to fine (:mod:`benchmarks.coarse`) on generated procedures with
   truth and one long recording: segment F1, boundary errors, inferences per video
   second, video frames/s over decode alone, real-time factor, side by side;

Parts 1 and 2 run in ``--repeat`` interleaved rounds and keep each figure's fastest
attempt (:mod:`benchmarks.rounds`); the CPU share other processes and the hypervisor took
during each kept figure is recorded, and a disturbed run says so. Then come the ratios
of figures from this run (end-to-end over the stage limit, speed-up over naive,
real-time factor, live p99 over one batch's inference) against the targets.
Prints Markdown on stdout; writes everything, with the machine, to a JSON file
(``--json``, default under ``~/.cache/endostream/bench/runs/``). ``--quick`` takes a few
minutes once the videos and model are cached.

examples:
  python -m benchmarks
  python -m benchmarks --quick --json bench.json
  python -m benchmarks --video procedure.mp4 --models endostream.onnx --skip-naive
  python -m benchmarks --write-docs          # and the figures into docs/performance.md
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endostream.errors import UsageError
from endostream.inference.classifier import Classifier
from endostream.inference.defaults import (
    CPU_BATCH,
    DEFAULT_DEVICE,
    DEVICES,
    GPU_BATCH,
    LIVE_BATCH,
    default_batch,
)
from endostream.sources import FileSource

from . import coarse, inputs, live_latency, naive, shared_backbone, stages
from . import doc as docs_page
from .entry import document_head, run_script
from .machine import busy_warning, describe_machine
from .report import check_targets, compute_ratios, markdown
from .rounds import attempt, measure_stages

log = logging.getLogger("benchmarks")

#: Version of the JSON document; bump when a key changes meaning.
SCHEMA = "endostream.bench/1"


@dataclass(frozen=True)
class Budget:
    """How long each part runs: the full run and ``--quick``."""

    infer_s: float  #: timed seconds per inference batch size (at least MIN_RUNS runs)
    live_s: float  #: seconds per live source rate
    naive_frames: int  #: frames the naive baseline classifies (after its warm-up)
    repeat: int  #: rounds of stage and end-to-end measurements; the fastest of each is kept


FULL = Budget(infer_s=2.0, live_s=20.0, naive_frames=150, repeat=2)
QUICK = Budget(infer_s=0.4, live_s=4.0, naive_frames=30, repeat=1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                epilog="examples:" + __doc__.split("examples:")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--video", type=Path, help="video to measure on (default: a generated "
                   "720p30 H.264 procedure, cached)")
    p.add_argument("--models", nargs="+", type=Path, metavar="PATH",
                   help="one combined ONNX file or two single-head files (default: the bundled "
                        "demo model, one backbone with two heads; without it a random-init "
                        "EfficientNetB0 pair exported once)")
    p.add_argument("--quick", action="store_true",
                   help="short run, a few minutes (3 procedures, no long recording)")
    p.add_argument("--json", type=Path, metavar="OUT", help="where to write the results "
                   "(default: ~/.cache/endostream/bench/runs/bench-<UTC time>.json)")
    p.add_argument("--skip-naive", action="store_true", help="leave out the naive baseline")
    p.add_argument("--shared-model", type=Path, metavar="PATH",
                   help="shared-backbone file (export --shared) to compare with the two-model "
                        "graph (default without --models: the bundled model, the pair then a "
                        "random-init export; else a random-init shared file exported once)")
    p.add_argument("--skip-shared", action="store_true",
                   help="leave out the one-backbone-vs-two comparison")
    p.add_argument("--int8-model", type=Path, metavar="PATH",
                   help="int8 file (export --int8) to compare beside the shared model "
                        "(default: the shared model quantised once and cached)")
    p.add_argument("--skip-int8", action="store_true",
                   help="leave the int8 variant out of the comparison")
    p.add_argument("--skip-coarse", action="store_true",
                   help="leave out the dense vs coarse-to-fine comparison on generated "
                        "procedures")
    p.add_argument("--procedures", type=int, default=None, metavar="N",
                   help=f"generated procedures in that comparison (default: "
                        f"{coarse.FULL_PROCEDURES}, --quick {coarse.QUICK_PROCEDURES})")
    p.add_argument("--long-minutes", type=float, default=None, metavar="M",
                   help=f"its long recording; 0 skips it (default: "
                        f"{coarse.FULL_LONG_MINUTES:g}, --quick {coarse.QUICK_LONG_MINUTES:g})")
    p.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE,
                   help="where the models run (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU inference threads (default: the runtime's default)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="end-to-end batch size, also the stage limit's (default: the "
                        f"pipeline's, {CPU_BATCH} on the CPU, {GPU_BATCH} on a GPU)")
    p.add_argument("--live-batch", type=int, default=LIVE_BATCH, metavar="N",
                   help="live batch size (default: %(default)s)")
    p.add_argument("--live-seconds", type=float, default=None, metavar="S",
                   help=f"seconds per live rate; 0 skips live (default: {FULL.live_s:g}, "
                        f"--quick {QUICK.live_s:g}); 600 checks memory over 10 minutes")
    p.add_argument("--comparison-live-seconds", type=float, default=None, metavar="S",
                   help="seconds of live per model and round in the pair / shared / int8 "
                        "comparison; 0 skips its live figures (default: --live-seconds, at "
                        f"most {FULL.live_s:g}, --quick {QUICK.live_s:g}: a 600 s soak "
                        "stays one soak)")
    p.add_argument("--naive-frames", type=int, default=None, metavar="N",
                   help=f"frames for the naive baseline (default: {FULL.naive_frames}, "
                        f"--quick {QUICK.naive_frames})")
    p.add_argument("--repeat", type=int, default=None, metavar="N",
                   help=f"rounds of stage and end-to-end measurements, the fastest kept "
                        f"(default: {FULL.repeat}, --quick {QUICK.repeat})")
    docs_page.add_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log each step")
    return p


def comparison_live_seconds(given: float | None, live_s: float, budget: Budget) -> float:
    """Seconds of live per model and round in the three-model comparison.

    ``--live-seconds 600`` is a memory soak of the main model; the comparison needs only
    p50/p99, so by default it runs no longer than the budget's live time (3 models x 2
    rounds x 10 min would otherwise add two hours).

    >>> comparison_live_seconds(None, 600.0, FULL), comparison_live_seconds(None, 1.5, QUICK)
    (20.0, 1.5)
    >>> comparison_live_seconds(None, 0.0, FULL), comparison_live_seconds(60.0, 600.0, FULL)
    (0.0, 60.0)
    """
    return min(live_s, budget.live_s) if given is None else given


def video_record(path: Path, origin: str) -> dict[str, Any]:
    with FileSource(path, sample_fps=None) as src:
        info = src.info
    return {"path": str(path), "origin": origin, "width": info.width, "height": info.height,
            "fps": info.fps, "frames": info.frames, "duration_s": info.duration_s}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure everything; return the result document (also written to JSON)."""
    budget = QUICK if args.quick else FULL
    live_s = budget.live_s if args.live_seconds is None else args.live_seconds
    comparison_live_s = comparison_live_seconds(args.comparison_live_seconds, live_s, budget)
    naive_frames = args.naive_frames or budget.naive_frames
    args.repeat = args.repeat or budget.repeat
    if min(args.batch or 1, args.live_batch, args.repeat) < 1:
        raise UsageError("--batch, --live-batch and --repeat must be at least 1")
    if min(live_s, comparison_live_s) < 0:
        raise UsageError("--live-seconds and --comparison-live-seconds must be 0 or more")
    started = time.perf_counter()
    machine = describe_machine()

    if args.video is not None:
        video, video_origin = args.video, "given"
    else:
        spec = inputs.default_video_spec(args.quick)
        video = inputs.generated_video(spec)
        video_origin = "generated 720p30 H.264 synthetic procedure"
    video_info = video_record(video, video_origin)
    choice = inputs.resolve_model(args.models)
    log.info("model: %s", choice.describe())
    classifier = Classifier.load(list(choice.paths), device=args.device, threads=args.threads)
    args.batch = args.batch or default_batch(classifier.provider)
    try:
        doc = _measure(args, budget, live_s, naive_frames, video, classifier,
                       lambda: Classifier.load(list(choice.paths), device=args.device,
                                               threads=args.threads))
    finally:
        classifier.close()
    if not args.skip_coarse:
        procedures, minutes = coarse.counts(args)
        with Classifier.load(list(choice.paths), device=args.device,
                             threads=args.threads) as c2f_classifier:
            doc["coarse"] = coarse.compare(c2f_classifier, procedures=procedures,
                                           long_minutes=minutes, batch=args.batch)
    doc["shared"] = _shared_part(args, budget, comparison_live_s, video, choice.paths,
                                 (doc.get("naive") or {}).get("fps"),
                                 doc["stages"]["decode"], classifier.provider)
    doc = {
        **document_head(SCHEMA, args, machine),
        "quick": bool(args.quick),
        "inputs": {
            "video": video_info,
            "model": {"path": ",".join(map(str, choice.paths)), "origin": choice.origin,
                      "sha256": classifier.sha256, "heads": classifier.heads,
                      "provider": classifier.provider,
                      "threads": args.threads or machine["cores_usable"]},
        },
        **doc,
    }
    doc["ratios"] = compute_ratios(doc)
    doc["targets"] = check_targets(doc["ratios"])
    warning = busy_warning(doc["noise"]["cpu_share_others"])
    doc["warnings"] = [warning] if warning else []
    doc["wall_s"] = round(time.perf_counter() - started, 1)
    return doc


def _measure(args: argparse.Namespace, budget: Budget, live_s: float, naive_frames: int,
             video: Path, classifier: Classifier,
             reopen: Callable[[], Classifier]) -> dict[str, Any]:
    batches = tuple(sorted(set(stages.inference_batches(classifier.provider))
                           | {args.batch, args.live_batch}))
    st = measure_stages(video, classifier, batches, budget.infer_s, args.batch, args.repeat)
    shares = dict(st.shares)
    at_batch = next(t for t in st.inference if t.batch == args.batch)
    shared = classifier.provider == "cpu"  # on a GPU the stages run on different hardware
    limit_fps = stages.stage_limit_fps(st.decode.ms_per_frame, st.preprocess_ms,
                                       at_batch.ms_per_frame, shared=shared)

    live: dict[str, Any] = {"rates": []}
    if live_s > 0:
        for rate in live_latency.LIVE_RATES:
            part = f"live_{rate:g}fps"
            # A session of its own, as `endostream live` has: the stage session's arena
            # holds the largest batch's activations (about 1 GB at 32), not live's.
            classifier.close()
            with reopen() as live_classifier:
                run_ = attempt(part, live_latency.measure_live, video, live_classifier, rate,
                               live_s, args.live_batch)
            live["rates"].append(run_.value)
            shares[part] = run_.share
        target = live["rates"][0]  # 30 fps: the rate the target is set for
        live.update(p99_ms=target["p99_ms"], batch_infer_ms=target["batch_infer_ms"],
                    dropped=target["dropped"], source_fps=target["source_fps"])
        alone = next(t for t in st.inference if t.batch == args.live_batch)
        live["batch_infer_alone_ms"] = round(alone.ms_median, 2)

    naive_result = None
    if not args.skip_naive:
        run_ = attempt("naive", naive.run_naive, video, naive_frames,
                       "cuda" if classifier.provider != "cpu" else "cpu")
        naive_result, shares["naive"] = run_.value, run_.share
    return {
        "stages": {
            "decode": st.decode.to_json(),
            "decode_preprocess": st.decode_preprocess.to_json(),
            "preprocess_ms_per_frame": round(st.preprocess_ms, 3),
            "inference": [t.to_json() for t in st.inference],
            "stage_limit_batch": args.batch,
            "stage_limit_model": "sum (shared CPU cores)" if shared else "max (GPU inference)",
            "stage_limit_ms_per_frame": round(1000.0 / limit_fps, 3) if limit_fps else None,
            "stage_limit_fps": round(limit_fps, 2),
        },
        "e2e": {"every_frame": st.every_frame.to_json(),
                "default_rate": st.default_rate.to_json(),
                "default_rate_dense": st.default_dense.to_json()},
        "live": live,
        "naive": naive_result,
        "noise": {
            "repeat": args.repeat,
            "attempts_fps": st.attempts_fps,
            "cpu_share_others": {k: v.others for k, v in shares.items()},
            "cpu_share_steal": {k: v.steal for k, v in shares.items()},
        },
    }


def _shared_part(args: argparse.Namespace, budget: Budget, live_s: float, video: Path,
                 pair: Sequence[Path], naive_fps: float | None,
                 decode: dict[str, Any], provider: str) -> dict[str, Any]:
    """The pair / shared / int8 comparison, or why it was skipped."""
    if args.skip_shared:
        return {"skipped": "--skip-shared"}
    if args.shared_model is None and args.models:
        return {"skipped": "--models given without --shared-model"}
    if len(pair) == 1 and inputs.is_shared_backbone(pair[0]):
        # the bundled model is the shared one: it is the shared column, and the pair the
        # shared model replaced is measured as a random-init export (same network, same speed)
        shared = args.shared_model or pair[0]
        pair = (inputs.random_model(),)
    else:
        shared = args.shared_model or inputs.random_shared_model()

    def opener(paths: Sequence[Path]) -> Callable[[], Classifier]:
        return lambda: Classifier.load(list(paths), device=args.device, threads=args.threads)

    models = {"pair": opener(pair), "shared": opener([shared])}
    paths = {"pair": ",".join(map(str, pair)), "shared": str(shared)}
    if not args.skip_int8 and provider != "cpu":
        log.info("int8 left out: the runtime runs int8 files on the CPU only")
    elif not args.skip_int8:
        int8 = args.int8_model or inputs.int8_variant(shared)
        models["int8"], paths["int8"] = opener([int8]), str(int8)
    part = shared_backbone.compare(
        video, models, batch=args.batch,
        live_batch=args.live_batch, infer_s=budget.infer_s, live_s=live_s, repeat=args.repeat)
    part["paths"] = paths
    part["ratios"] = shared_backbone.ratios(part["models"], naive_fps, decode["fps"],
                                            decode.get("cpu_ms_per_frame"))
    part["targets"] = shared_backbone.targets(part["ratios"])
    return part


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; Markdown on stdout, the JSON path on stderr. Returns the exit code."""
    return run_script("benchmarks", "bench", build_parser(), run, markdown, argv)


if __name__ == "__main__":
    sys.exit(main())
