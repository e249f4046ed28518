"""Dense against coarse to fine, side by side: generated procedures with truth, one long one.

Run: ``python -m benchmarks.coarse [--quick] [--procedures N] [--long-minutes M]``;
``python -m benchmarks`` runs it as one of its parts (``--skip-coarse`` leaves it out).

Every video is analysed twice in one run, at the default sample rate: densely
(``segment --dense``) and coarse to fine (the default), one right after the other, with
decoding alone measured on the same video just before, so the two columns share the
machine's state. Measured per mode:

- segment F1 and boundary errors against the truth the generator wrote (median of each
  video's median, pooled median, worst), and the spread of F1 and of the per-video median
  error over the procedures: coarse to fine counts as equal where its mean lies within the
  dense run's spread (one standard deviation);
- inferences per second of video, video frames gone through per second over decoding
  alone, the real-time factor (seconds of video per second of wall time) and seconds of
  video per second of this process's CPU time (which other processes' load barely moves);
- the same on one long recording (``--long-minutes``, 30 by default, none with ``--quick``).

The procedures are random (seeded): 3-5 organ sections of 6-25 s, an unusable stretch of
3-6 s (blur, dark, black, out of body) between some of them, about a minute each, 640x360
30 fps H.264, rendered once and cached with their truth. The model is the bundled demo
model unless ``--models``.

examples:
  python -m benchmarks.coarse --quick            # 3 procedures, no long recording
  python -m benchmarks.coarse --procedures 20 --long-minutes 30 --json coarse.json
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import endostream
from endostream.evaluation.sections import evaluate_sections, pool
from endostream.inference.classifier import Classifier
from endostream.inference.defaults import default_batch
from endostream.output.atomic import AtomicFile
from endostream.pipeline.offline import SegmentOptions, segment_video
from endostream.synth import GroundTruth, ProcedureSpec, render_procedure
from endostream.synth.scenes import ORGANS
from endostream.synth.spec import UNUSABLE_LOOKS

from . import inputs, stages
from .entry import Doc, document_head, run_script
from .machine import describe_machine, machine_line

log = logging.getLogger("benchmarks.coarse")

SCHEMA = "endostream.bench.coarse/1"
#: Procedures and long-recording minutes of a full run and of ``--quick``.
FULL_PROCEDURES, QUICK_PROCEDURES = 20, 3
FULL_LONG_MINUTES, QUICK_LONG_MINUTES = 30.0, 0.0
#: Size and rate of the generated videos (the archive benchmark's size, at 30 fps).
WIDTH, HEIGHT, FPS = 640, 360, 30.0
SEED = 32
MODES = ("dense", "coarse")


def random_spec(rng: np.random.Generator, min_s: float = 0.0, scale: float = 1.0) -> str:
    """A procedure in :meth:`ProcedureSpec.parse` form (at least ``min_s`` long), every
    duration times ``scale``.

    >>> random_spec(np.random.default_rng(0)).count(":") >= 3
    True
    """
    parts, total, prev = [], 0.0, None
    n = int(rng.integers(3, 6))
    while len([p for p in parts if p.split(":")[0] in ORGANS]) < n or total < min_s:
        organ = str(rng.choice([o for o in ORGANS if o != prev]))
        seconds = float(rng.uniform(6, 25)) * scale
        parts.append(f"{organ}:{seconds:.1f}")
        total += seconds
        prev = organ
        if rng.random() < 0.4:
            look, seconds = str(rng.choice(UNUSABLE_LOOKS)), float(rng.uniform(3, 6)) * scale
            parts.append(f"{look}:{seconds:.1f}")
            total += seconds
            prev = None
    return ",".join(parts)


def _rendered(path: Path, spec: str, seed: int, size: tuple[int, int]
              ) -> tuple[Path, GroundTruth]:
    truth_path = path.with_suffix(".truth.json")
    if not (path.is_file() and truth_path.is_file()):
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("rendering %s (once; cached)", path)
        with AtomicFile(path, open_file=False, suffix=".tmp.mp4") as f:
            truth = render_procedure(f.temp_path, ProcedureSpec.parse(spec), width=size[0],
                                     height=size[1], fps=FPS, seed=seed)
        truth.write(truth_path)
    return path, GroundTruth.read(truth_path)


def _cache_root(seed: int, size: tuple[int, int], scale: float) -> Path:
    return inputs.CACHE_DIR / (f"coarse-{size[0]}x{size[1]}-{FPS:g}fps-seed{seed}-x{scale:g}-"
                               f"v{endostream.__version__}")


def procedure_videos(n: int, seed: int = SEED, size: tuple[int, int] = (WIDTH, HEIGHT),
                     scale: float = 1.0) -> list[tuple[Path, GroundTruth]]:
    """``n`` random procedures with their truth, rendered once under the benchmark cache."""
    rng = np.random.default_rng(seed)
    root = _cache_root(seed, size, scale)
    return [_rendered(root / f"procedure{i:02d}.mp4", random_spec(rng, scale=scale), seed + i,
                      size) for i in range(n)]


def long_video(minutes: float, seed: int = SEED, size: tuple[int, int] = (WIDTH, HEIGHT)
               ) -> tuple[Path, GroundTruth]:
    """One procedure at least ``minutes`` long, rendered once and cached."""
    spec = random_spec(np.random.default_rng(seed + 1000), min_s=60 * minutes)
    return _rendered(_cache_root(seed, size, 1.0) / f"long-{minutes:g}min.mp4", spec,
                     seed + 1000, size)


def measure_video(video: Path, truth: GroundTruth, classifier: Classifier,
                  batch: int) -> dict[str, Any]:
    """Decoding alone, then dense, then coarse to fine, on one video."""
    decode = stages.measure_decode(video)
    row: dict[str, Any] = {"video": str(video), "video_s": round(truth.duration_s, 2),
                           "decode_fps": round(decode.fps, 2)}
    for mode in MODES:
        options = SegmentOptions(batch_size=batch,
                                 **({"coarse_fps": None} if mode == "dense" else {}))
        cpu0 = time.process_time()
        result = segment_video(video, classifier, options)
        cpu_s = time.process_time() - cpu0
        if result.error is not None:
            raise result.error
        video_s = result.source.duration_s or truth.duration_s
        frames = result.source.frames or result.frames_decoded
        row[mode] = {
            "wall_s": round(result.wall_s, 3),
            "cpu_s": round(cpu_s, 3),
            "frames_analysed": result.frames_analysed,
            "frames_decoded": result.frames_decoded,
            "inferences_per_video_s": round(result.frames_analysed / video_s, 3),
            "realtime_factor": round(video_s / result.wall_s, 2),
            "video_fps_over_decode": round(frames / result.wall_s / decode.fps, 3),
            "metrics": evaluate_sections(result.sections, truth.sections),
        }
    return row


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: pooled metrics, the spread over videos, speed; and whether coarse to fine
    equals dense within the dense spread."""
    out: dict[str, Any] = {}
    video_s = sum(r["video_s"] for r in rows)
    for mode in MODES:
        ms = [r[mode] for r in rows]
        f1 = [m["metrics"]["f1"] for m in ms]
        medians = [m["metrics"]["median_boundary_error_s"] for m in ms
                   if m["metrics"]["median_boundary_error_s"] is not None]
        errors = [e for m in ms for e in m["metrics"]["boundary_errors_s"]]
        pooled = pool([m["metrics"] for m in ms])
        out[mode] = {
            "f1_pooled": round(pooled["f1"], 4),
            "f1_mean": round(statistics.fmean(f1), 4),
            "f1_sd": round(statistics.pstdev(f1), 4),
            "median_error_s_mean": round(statistics.fmean(medians), 3) if medians else None,
            "median_error_s_sd": round(statistics.pstdev(medians), 3) if medians else None,
            "boundary_error_s_median": round(float(np.median(errors)), 3) if errors else None,
            "boundary_error_s_worst": round(max(errors), 3) if errors else None,
            "inferences_per_video_s": round(sum(m["frames_analysed"] for m in ms) / video_s, 3),
            "realtime_factor": round(video_s / sum(m["wall_s"] for m in ms), 2),
            "video_s_per_cpu_s": round(video_s / sum(m["cpu_s"] for m in ms), 2),
            "video_fps_over_decode": round(statistics.fmean(
                m["video_fps_over_decode"] for m in ms), 3),
        }
    d, c = out["dense"], out["coarse"]
    if len(rows) < 2:  # one video has no spread to be within
        out["equal_within_spread"] = {"f1": None, "median_error": None}
        out["videos"], out["video_s"] = len(rows), round(video_s, 1)
        return out
    out["equal_within_spread"] = {
        "f1": abs(c["f1_mean"] - d["f1_mean"]) <= d["f1_sd"],
        "median_error": (d["median_error_s_mean"] is not None
                         and c["median_error_s_mean"] is not None
                         and abs(c["median_error_s_mean"] - d["median_error_s_mean"])
                         <= d["median_error_s_sd"]),
    }
    out["videos"], out["video_s"] = len(rows), round(video_s, 1)
    return out


def compare(classifier: Classifier, *, procedures: int, long_minutes: float, batch: int,
            seed: int = SEED, size: tuple[int, int] = (WIDTH, HEIGHT), scale: float = 1.0
            ) -> dict[str, Any]:
    """The part ``python -m benchmarks`` and this script report (``size`` and ``scale``,
    the procedures' durations, make a test's run small)."""
    rows = [measure_video(v, t, classifier, batch)
            for v, t in procedure_videos(procedures, seed, size, scale)]
    part: dict[str, Any] = {"procedures": summarise(rows) if rows else None, "rows": rows,
                            "size": f"{size[0]}x{size[1]}", "fps": FPS, "batch": batch}
    if long_minutes > 0:
        video, truth = long_video(long_minutes, seed, size)
        part["long"] = summarise([measure_video(video, truth, classifier, batch)])
        part["long_minutes"] = round(truth.duration_s / 60, 1)
    return part


def markdown(part: dict[str, Any]) -> list[str]:
    """The report's dense vs coarse-to-fine table."""
    lines = ["", f"| dense vs coarse to fine ({part['size']}, {part['fps']:g} fps, batch "
             f"{part['batch']}) | segment F1 pooled (mean ± sd) | median boundary error s "
             "(per-video median, mean ± sd) | worst boundary error s | inferences per video s "
             "| video frames/s / decode alone | real time x | video s per CPU s |",
             "|---" + "|---:" * 7 + "|"]

    def f(v: Any, digits: int = 2) -> str:
        return "–" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

    for key, name in (("procedures", "procedures"), ("long", "long recording")):
        s = part.get(key)
        if not s:
            continue
        what = (f"{s['videos']} {name}, {s['video_s'] / 60:.1f} min" if key == "procedures"
                else f"{name}, {part['long_minutes']:g} min")
        for mode, label in (("dense", "`--dense`"), ("coarse", "**coarse to fine**")):
            m = s[mode]
            lines.append(f"| {what}: {label} | {f(m['f1_pooled'], 3)} ({f(m['f1_mean'], 3)} ± "
                         f"{f(m['f1_sd'], 3)}) | {f(m['median_error_s_mean'])} ± "
                         f"{f(m['median_error_s_sd'])} | {f(m['boundary_error_s_worst'])} | "
                         f"{f(m['inferences_per_video_s'])} | {f(m['video_fps_over_decode'])} | "
                         f"{f(m['realtime_factor'], 1)} | {f(m['video_s_per_cpu_s'], 1)} |")
        eq = s["equal_within_spread"]
        said = {True: "yes", False: "**no**", None: "– (one video)"}
        lines.append(f"| {what}: equal within the dense spread | F1 {said[eq['f1']]} | "
                     f"median error {said[eq['median_error']]} | | | | | |")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.coarse",
                                description=__doc__.split("\n\n")[0],
                                epilog="examples:" + __doc__.split("examples:")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK_PROCEDURES} procedures and no long recording")
    p.add_argument("--procedures", type=int, default=None, metavar="N",
                   help=f"generated procedures (default: {FULL_PROCEDURES}, --quick "
                        f"{QUICK_PROCEDURES})")
    p.add_argument("--long-minutes", type=float, default=None, metavar="M",
                   help=f"length of the long recording; 0 skips it (default: "
                        f"{FULL_LONG_MINUTES:g}, --quick {QUICK_LONG_MINUTES:g})")
    p.add_argument("--models", nargs="+", type=Path, metavar="PATH",
                   help="model file(s) (default: the bundled demo model)")
    p.add_argument("--size", type=_size, default=(WIDTH, HEIGHT), metavar="WxH",
                   help=f"size of the generated videos (default: {WIDTH}x{HEIGHT})")
    p.add_argument("--duration-scale", type=float, default=1.0, metavar="X",
                   help="every section's duration times X (default: 1)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="inference batch (default: the pipeline's)")
    p.add_argument("--json", type=Path, metavar="OUT", help="where to write the results")
    p.add_argument("-v", "--verbose", action="store_true", help="log each step")
    return p


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.lower().partition("x")
    try:
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: give WIDTHxHEIGHT, e.g. 640x360"
                                         ) from None


def counts(args: argparse.Namespace) -> tuple[int, float]:
    """Procedures and long-recording minutes of ``args`` (``--quick`` or full defaults)."""
    procedures = args.procedures if args.procedures is not None else (
        QUICK_PROCEDURES if args.quick else FULL_PROCEDURES)
    minutes = args.long_minutes if args.long_minutes is not None else (
        QUICK_LONG_MINUTES if args.quick else FULL_LONG_MINUTES)
    return max(procedures, 0), max(minutes, 0.0)


def run(args: argparse.Namespace) -> Doc:
    machine = describe_machine()
    choice = inputs.resolve_model(args.models)
    procedures, minutes = counts(args)
    with Classifier.load(list(choice.paths), device="cpu") as classifier:
        batch = args.batch or default_batch(classifier.provider)
        part = compare(classifier, procedures=procedures, long_minutes=minutes, batch=batch,
                       size=args.size, scale=args.duration_scale)
    doc = document_head(SCHEMA, args, machine)
    doc.update({"model": choice.describe(), "coarse": part})
    return doc


def report(doc: Doc) -> str:
    return "\n".join([f"## dense vs coarse to fine; model {doc['model']}",
                      *markdown(doc["coarse"]), "", f"machine: {machine_line(doc['machine'])}",
                      ""])


def main(argv: Sequence[str] | None = None) -> int:
    return run_script("benchmarks.coarse", "coarse", build_parser(), run, report, argv)


if __name__ == "__main__":
    raise SystemExit(main())
