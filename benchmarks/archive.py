"""Archive throughput: the local engine against a local Ray cluster, and Ray's overhead.

Run: ``python -m benchmarks.archive [--videos N] [--seconds S] [--models PATH]``.

Both engines segment the same generated archive (``--videos`` synthetic procedures of
``--seconds`` each, 640x360 25 fps H.264, rendered once and cached) with the same model
on the CPU at the default sample rate, with the same cores: the local engine in this
process with every core, Ray with one worker per ``--cpus-per-worker`` CPUs. Measured in
one run, so the ratios compare like with like:

- archive wall time, local vs Ray (Ray's including its cluster start, and without it);
- Ray's fixed costs: cluster start, worker start + model load;
- Ray's per-video cost: the driver's round trip for one video minus the worker's own
  processing time (scheduling, shipping the job, shipping the sections back), timed on
  the first videos one at a time before the archive run;
- those costs as a share of a 10-minute video's processing time (per-second processing
  cost measured here, times 600);
- hours of recording per CPU-hour of the local engine, before (``segment --dense``) and
  after (coarse to fine, the default), from this process's CPU time in the same run.

examples:
  python -m benchmarks.archive                      # 4 videos of 30 s, about 2 minutes
  python -m benchmarks.archive --videos 8 --seconds 60 --json archive.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from endostream.archive.inputs import discover
from endostream.archive.local import ModelSpec
from endostream.archive.run import ArchiveConfig, run_archive
from endostream.errors import UsageError
from endostream.output.atomic import AtomicFile
from endostream.pipeline.offline import SegmentOptions
from endostream.synth import ProcedureSpec, render_procedure

from . import doc as docs_page
from . import inputs
from .entry import Doc, document_head, run_script
from .machine import describe_machine

log = logging.getLogger("benchmarks.archive")

SCHEMA = "endostream.bench.archive/1"
#: The video whose processing time the overhead is compared with.
REFERENCE_VIDEO_S = 600.0
#: Videos sent one at a time to time Ray's per-video round trip (the run closes the
#: workers, so these go first; the archive run's wall time does not include them).
ROUND_TRIP_VIDEOS = 3
#: Organs the generated procedures cycle through, with a blurred stretch between.
_ORGANS = ("nose", "ear", "vocal_folds")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.archive",
                                description=__doc__.split("\n\n")[0],
                                epilog="examples:" + __doc__.split("examples:")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=4, help="videos in the archive (default: 4)")
    p.add_argument("--seconds", type=float, default=30.0,
                   help="length of each video in seconds (default: 30)")
    p.add_argument("--models", nargs="+", type=Path, metavar="PATH",
                   help="model file(s) (default: the bundled demo model)")
    p.add_argument("--cpus-per-worker", type=int, default=None, metavar="N",
                   help="CPUs (and inference threads) per Ray worker (default: the engine's)")
    p.add_argument("--json", type=Path, metavar="OUT", help="where to write the results")
    docs_page.add_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log each step")
    return p


def generated_archive(videos: int, seconds: float) -> Path:
    """``videos`` procedures of ``seconds`` each under the benchmark cache (kept)."""
    root = inputs.CACHE_DIR / f"archive-{videos}x{seconds:g}s-640x360"
    for i in range(videos):
        path = root / f"p{i // 4:02d}" / f"video{i:03d}.mp4"
        if path.is_file():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        part = max(seconds / 3 - 1, 1.0)
        spec = ",".join(f"{_ORGANS[(i + k) % 3]}:{part:g},blur:{(seconds - 3 * part) / 3:g}"
                        for k in range(3))
        log.info("rendering %s", path)
        with AtomicFile(path, open_file=False, suffix=".tmp.mp4") as f:
            render_procedure(f.temp_path, ProcedureSpec.parse(spec), width=640, height=360,
                             fps=25.0, seed=i)
    return root


def _timed_archive(jobs, config: ArchiveConfig, engine_factory=None) -> float:
    started = time.perf_counter()
    kwargs = {"engine_factory": engine_factory} if engine_factory else {}
    code = run_archive(jobs, config, **kwargs)
    if code != 0:
        raise UsageError(f"the {config.engine} run ended with exit code {code}; see "
                         f"{config.out_dir / 'archive.json'}")
    return time.perf_counter() - started


def run(args: argparse.Namespace) -> Doc:
    if args.videos < 1 or args.seconds < 6:
        raise UsageError("--videos must be at least 1 and --seconds at least 6")
    try:
        import ray

        from endostream.archive.ray_engine import RayEngine
    except ImportError:
        raise UsageError("this benchmark needs Ray: pip install 'endostream[cluster]'") from None
    machine = describe_machine()
    model = inputs.resolve_model(args.models)
    root = generated_archive(args.videos, args.seconds)
    options = SegmentOptions()
    spec = ModelSpec(tuple(p.absolute() for p in model.paths), device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        dense = ArchiveConfig(out / "dense", spec, replace(options, coarse_fps=None),
                              quiet=True)
        cpu0 = time.process_time()
        dense_s = _timed_archive(discover([root], out_dir=dense.out_dir), dense)
        dense_cpu_s = time.process_time() - cpu0
        local = ArchiveConfig(out / "local", spec, options, quiet=True)
        jobs = discover([root], out_dir=local.out_dir)
        cpu0 = time.process_time()
        local_s = _timed_archive(jobs, local)
        local_cpu_s = time.process_time() - cpu0
        local_doc = _summary(local.out_dir)

        # A Ray session this process already has (a test's) is used, not timed or stopped.
        own = not ray.is_initialized()
        cluster_started = time.perf_counter()
        if own:
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        engine = None
        try:
            cluster_s = time.perf_counter() - cluster_started if own else 0.0
            on_ray = replace(local, out_dir=out / "ray", engine="ray")
            engine = RayEngine(spec, options, cpus_per_worker=args.cpus_per_worker)
            started = time.perf_counter()
            engine.start(len(jobs))
            workers_s = time.perf_counter() - started
            workers = len(engine.actors)
            trips = _round_trips(engine, jobs[:ROUND_TRIP_VIDEOS], options)
            ray_jobs = discover([root], out_dir=on_ray.out_dir)
            ray_s = _timed_archive(ray_jobs, on_ray, lambda c: engine) + workers_s
            ray_doc = _summary(on_ray.out_dir)
            same = _sections(on_ray.out_dir) == _sections(local.out_dir)
        finally:
            if engine is not None:
                engine.close()
            if own:
                ray.shutdown()
    video_s = local_doc["totals"]["hours_of_video"] * 3600
    local_proc = sum(v["wall_s"] for v in local_doc["videos"])
    per_video_s = statistics.median(t["overhead_s"] for t in trips)
    proc_per_video_s = local_proc / video_s  # seconds of processing per second of video
    reference = proc_per_video_s * REFERENCE_VIDEO_S
    doc = document_head(SCHEMA, args, machine)
    doc.update({
        "inputs": {"videos": len(jobs), "seconds_each": args.seconds, "video_s": video_s,
                   "resolution": "640x360", "fps": 25.0, "model": model.describe(),
                   "sample_fps": options.sample_fps},
        "local": {"wall_s": round(local_s, 3), "processing_s": round(local_proc, 3),
                  "video_h_per_wall_h": round(video_s / local_s, 2),
                  "cpu_s": round(local_cpu_s, 3),
                  "video_h_per_cpu_h": round(video_s / local_cpu_s, 2)},
        "local_dense": {"wall_s": round(dense_s, 3), "cpu_s": round(dense_cpu_s, 3),
                        "video_h_per_wall_h": round(video_s / dense_s, 2),
                        "video_h_per_cpu_h": round(video_s / dense_cpu_s, 2)},
        "ray": {"workers": workers, "cpus_per_worker": engine.cpus_per_worker,
                "cluster_start_s": round(cluster_s, 3),
                "worker_start_and_model_load_s": round(workers_s, 3),
                "wall_s": round(ray_s, 3), "wall_with_cluster_start_s": round(ray_s + cluster_s, 3),
                "video_h_per_wall_h": round(video_s / ray_s, 2),
                "per_video_overhead_s": round(per_video_s, 4),
                "round_trips": trips},
        "same_results": same and [v["sections"] for v in ray_doc["videos"]] ==
        [v["sections"] for v in local_doc["videos"]],
        "ratios": {
            "ray_wall_over_local": round(ray_s / local_s, 3),
            "ray_wall_with_cluster_start_over_local": round((ray_s + cluster_s) / local_s, 3),
            "per_video_overhead_share_of_10min_video": round(per_video_s / reference, 5),
            "worker_start_share_of_10min_video": round(workers_s / reference, 4),
            "processing_s_per_video_s": round(proc_per_video_s, 4),
        },
    })
    return doc


def _round_trips(engine, jobs, options: SegmentOptions) -> list[dict[str, float]]:
    """One video at a time on the first worker: driver round trip vs the worker's time."""
    import ray

    actor = engine.actors[0]
    trips = []
    for job in jobs:
        started = time.perf_counter()
        outcome = ray.get(actor.analyse.remote(job, options, False))
        trip = time.perf_counter() - started
        trips.append({"round_trip_s": round(trip, 4), "processing_s": round(outcome.wall_s, 4),
                      "overhead_s": round(trip - outcome.wall_s, 4)})
    return trips


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "archive.json").read_text())


def _sections(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): p.read_text()
            for p in sorted(out.rglob("*.sections.json"))}


def markdown(doc: Doc) -> str:
    r, loc, ray_, inp = doc["ratios"], doc["local"], doc["ray"], doc["inputs"]
    lines = [
        f"archive: {inp['videos']} videos x {inp['seconds_each']:g} s ({inp['resolution']}, "
        f"{inp['fps']:g} fps), sample {inp['sample_fps']} fps, {inp['model']}",
        "",
        "| engine | wall s | video-h / wall-h | video-h / CPU-h |",
        "|---|---:|---:|---:|",
        f"| local, before: `--dense` | {doc['local_dense']['wall_s']:.1f} | "
        f"{doc['local_dense']['video_h_per_wall_h']:.1f} | "
        f"{doc['local_dense']['video_h_per_cpu_h']:.1f} |",
        f"| local (in-process, all cores), coarse to fine | {loc['wall_s']:.1f} | "
        f"{loc['video_h_per_wall_h']:.1f} | {loc['video_h_per_cpu_h']:.1f} |",
        f"| ray ({ray_['workers']} worker x {ray_['cpus_per_worker']} CPU), without / with "
        f"cluster start | {ray_['wall_s']:.1f} / {ray_['wall_with_cluster_start_s']:.1f} | "
        f"{ray_['video_h_per_wall_h']:.1f} | |",
        "",
        "| Ray cost | s | share of a 10-min video's processing |",
        "|---|---:|---:|",
        f"| cluster start (once per run) | {ray_['cluster_start_s']:.1f} | |",
        f"| worker start + model load (once per worker) | "
        f"{ray_['worker_start_and_model_load_s']:.2f} | "
        f"{100 * r['worker_start_share_of_10min_video']:.2f} % |",
        f"| per video: scheduling + job and result transfer (median) | "
        f"{ray_['per_video_overhead_s']:.3f} | "
        f"{100 * r['per_video_overhead_share_of_10min_video']:.3f} % |",
        "",
        f"ratios: Ray / local wall {r['ray_wall_over_local']:.3f} (with cluster start "
        f"{r['ray_wall_with_cluster_start_over_local']:.3f}); processing "
        f"{r['processing_s_per_video_s']:.4f} s per s of video; same sections: "
        f"{doc['same_results']}",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return run_script("benchmarks.archive", "archive", build_parser(), run, markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
