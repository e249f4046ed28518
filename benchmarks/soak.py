"""``python -m benchmarks.soak``: a long live run, sped up; memory and latency must stay flat.

A short generated procedure (640x360, 30 fps, 39 s; rendered once with
:mod:`endostream.synth` and cached like every benchmark input, see
:mod:`benchmarks.inputs`) is played in a loop as one live source, its frames released at
``--rate`` frames per second of wall time (300 by default: ten times the clip's own
30 fps). Frame indices and ``pts_s`` keep counting across loops, so the live segmenter
sees one long procedure (100 000 frames are 55 minutes of video). Every frame goes
through the real :class:`~endostream.pipeline.live.LiveSession`: capture and crop, the display
callback, the drop-oldest queue, the real classifier (the bundled demo model by default)
and the live segmenter. Inference cannot keep up with the rate, so most frames are
dropped before inference, as from a fast camera: the point is the capture, display,
queue and segmenter path over ``--frames`` frames, plus as many inferences as fit.

While it runs, resident memory and the session's statistics are sampled every
``--sample-interval`` seconds, with a progress line on stderr about every 10 s. The first
tenth of the frames is warm-up (sessions start, arenas and caches fill) and is left out;
the rest is cut into ten windows by frame number. Reported: memory at the start (after
warm-up), max and end, and its growth = median RSS of the last window - median RSS of
the first; capture -> label latency p50/p99 per window and the growth ratios last /
first; frames captured, analysed and dropped; sections produced; wall time.

Targets: memory growth < 50 MB (the issue's), latency growth ratio < 1.5 for p50 and
p99. A leak grows without bound, so over 100 000 frames it shows far beyond 1.5; this
machine's speed swings by about 25 % minute to minute, which 1.5 leaves room for.

Markdown on stdout; everything, with the machine, in a JSON file (``--json``, default
under ``~/.cache/endostream/bench/runs/``). Ctrl+C ends the run early and still reports
the figures so far (exit code 130).

examples:
  python -m benchmarks.soak
  python -m benchmarks.soak --frames 20000 --rate 600 --json soak.json
  python -m benchmarks.soak --video clip.mp4 --models endostream.onnx --frames 5000
"""

from __future__ import annotations

import argparse
import array
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from endostream.errors import UsageError
from endostream.frames import Frame, Prediction
from endostream.inference.classifier import Classifier
from endostream.inference.defaults import DEFAULT_DEVICE, DEVICES, LIVE_BATCH
from endostream.pipeline.live import LiveSession

from . import doc as docs_page
from . import inputs
from .entry import document_head, run_script
from .live_latency import LoopingRealtimeSource, percentiles, rss_mb
from .machine import CpuShare, busy_warning, describe_machine

log = logging.getLogger("benchmarks.soak")

#: Version of the JSON document; bump when a key changes meaning.
SCHEMA = "endostream.soak/1"
#: Frames a run captures by default (the issue asks for at least 100k).
DEFAULT_FRAMES = 100_000
#: Frames released per wall second by default: 10x the clip's 30 fps, so 100k frames take
#: about 6 minutes when capture keeps up.
DEFAULT_RATE_FPS = 300.0
#: The looped clip: small, so decoding and cropping 300 frames/s leave CPU for inference.
CLIP = inputs.VideoSpec(width=640, height=360, fps=30.0)
#: Share of the frames, from the start, left out as warm-up.
WARMUP_FRACTION = 0.1
#: Windows the measured frames are cut into (latency and memory per window).
WINDOWS = 10
#: Seconds between samples of RSS and session statistics.
SAMPLE_INTERVAL_S = 2.0
#: Seconds between progress lines on stderr.
PROGRESS_INTERVAL_S = 10.0
#: Targets: RSS growth (last window's median - first window's), and latency growth.
MAX_RSS_GROWTH_MB = 50.0
MAX_LATENCY_GROWTH = 1.5


class SoakSource(LoopingRealtimeSource):
    """The clip looped at ``rate_fps`` (pts and indices continuing) for ``max_frames`` frames.

    The looping and pacing are :class:`~benchmarks.live_latency.LoopingRealtimeSource`'s
    (itself :class:`~endostream.sources.realtime.RealtimeFileSource` over a FileSource,
    reopened each loop); this adds the end after ``max_frames``, so the session ends by
    itself and every frame is either analysed or counted as dropped.

    >>> src = SoakSource("clip.mp4", rate_fps=300.0, max_frames=1000)  # doctest: +SKIP
    """

    def __init__(self, path: Path, rate_fps: float, max_frames: int):
        super().__init__(path, rate_fps)
        self.max_frames = max_frames

    def read(self) -> Frame | None:
        if self.decoded_frames >= self.max_frames:
            return None
        return super().read()


@dataclass
class _Record:
    """What the callbacks collect (one writer each; read by the main thread after stop)."""

    index: array.array  # analysed frame's index
    latency_ms: array.array  # its capture -> label latency
    buffered: array.array  # the segmenter's buffered frames after it
    displayed: int = 0
    last_display_pts: float = -1.0
    pts_backwards: int = 0  # display frames whose pts did not increase (must stay 0)

    @classmethod
    def empty(cls) -> _Record:
        return cls(array.array("q"), array.array("d"), array.array("q"))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak",
                                description=__doc__.split("examples:")[0],
                                epilog="examples:" + __doc__.split("examples:")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=DEFAULT_FRAMES, metavar="N",
                   help="frames to capture (default: %(default)s)")
    p.add_argument("--rate", type=float, default=DEFAULT_RATE_FPS, metavar="FPS",
                   help="frames released per second of wall time (default: %(default)g)")
    p.add_argument("--video", type=Path, help="clip to loop (default: a generated "
                   f"{CLIP.width}x{CLIP.height} {CLIP.fps:g} fps procedure, cached)")
    p.add_argument("--models", nargs="+", type=Path, metavar="PATH",
                   help="one combined ONNX file or two single-head files (default: the "
                        "bundled demo model)")
    p.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE,
                   help="where the models run (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU inference threads (default: the runtime's default)")
    p.add_argument("--batch", type=int, default=LIVE_BATCH, metavar="N",
                   help="live batch size (default: %(default)s)")
    p.add_argument("--sample-interval", type=float, default=SAMPLE_INTERVAL_S, metavar="S",
                   help="seconds between memory samples (default: %(default)g)")
    p.add_argument("--json", type=Path, metavar="OUT", help="where to write the results "
                   "(default: ~/.cache/endostream/bench/runs/soak-<UTC time>.json)")
    docs_page.add_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true", help="log each step")
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Play the looped clip through a LiveSession; return the result document."""
    if args.frames < WINDOWS or not args.rate > 0 or not args.sample_interval > 0:
        raise UsageError(f"--frames must be at least {WINDOWS}, --rate and --sample-interval "
                         "positive")
    started = time.perf_counter()
    machine = describe_machine()
    video = args.video or inputs.generated_video(CLIP)
    choice = inputs.resolve_model(args.models)
    classifier = Classifier.load(list(choice.paths), device=args.device, threads=args.threads)
    try:
        rss_before = rss_mb()
        source = SoakSource(video, args.rate, args.frames)
        measured = _soak(args, source, classifier)
        model = {"path": ",".join(map(str, choice.paths)), "origin": choice.origin,
                 "sha256": classifier.sha256, "provider": classifier.provider}
    finally:
        classifier.close()
    doc = {
        **document_head(SCHEMA, args, machine),
        "inputs": {"video": {"path": str(video), "fps": round(source.rate_fps / source.speed, 3),
                             "width": source.info.width, "height": source.info.height},
                   "model": model},
        "settings": {"frames": args.frames, "rate_fps": args.rate, "batch_size": args.batch,
                     "warmup_fraction": WARMUP_FRACTION, "windows": WINDOWS,
                     "sample_interval_s": args.sample_interval},
        "rss_before_session_mb": round(rss_before, 1) if rss_before else None,
        **measured,
    }
    doc["targets"] = check_targets(doc)
    doc["wall_s"] = round(time.perf_counter() - started, 1)
    return doc


def _soak(args: argparse.Namespace, source: SoakSource, classifier: Classifier) -> dict[str, Any]:
    rec = _Record.empty()
    session: LiveSession

    def on_display(frame: Frame) -> None:  # capture thread: what an overlay would get
        if frame.pts_s <= rec.last_display_pts:
            rec.pts_backwards += 1
        rec.last_display_pts = frame.pts_s
        rec.displayed += 1

    def on_result(pred: Prediction, _snapshot: object) -> None:  # results thread
        rec.index.append(pred.index)
        rec.latency_ms.append(pred.latency_ms)
        rec.buffered.append(session.segmenter.buffered_frames)

    session = LiveSession(source, classifier, batch_size=args.batch, on_display=on_display,
                          on_result=on_result)
    samples: list[tuple[float, int, float | None]] = []  # (wall s, frames captured, RSS MB)
    interrupted = False
    t0 = time.monotonic()
    next_progress = t0 + PROGRESS_INTERVAL_S
    with CpuShare() as share:
        try:
            session.start()
            while True:
                samples.append((time.monotonic() - t0, source.decoded_frames, rss_mb()))
                if time.monotonic() >= next_progress:
                    next_progress += PROGRESS_INTERVAL_S
                    print(_progress(session, args.frames, samples[-1]), file=sys.stderr)
                if session.wait(args.sample_interval):
                    break
        except KeyboardInterrupt:
            interrupted = True
            print("soak: interrupted; reporting the figures so far", file=sys.stderr)
        finally:
            samples.append((time.monotonic() - t0, source.decoded_frames, rss_mb()))
            stats = session.stats()
            worker = session.worker_stats()
            sections = session.stop()
    wall_s = samples[-1][0]
    captured = source.decoded_frames
    doc = {
        "interrupted": interrupted,
        "run_s": round(wall_s, 1),
        "frames": {"captured": captured, "displayed": rec.displayed,
                   "analysed": stats.analysed, "dropped": stats.dropped,
                   "late": source.late_frames, "loops": source.loops,
                   "pts_backwards": rec.pts_backwards,
                   "capture_fps": round(captured / wall_s, 1) if wall_s > 0 else None,
                   "analysed_fps": round(stats.analysed / wall_s, 2) if wall_s > 0 else None,
                   "video_s": round(rec.last_display_pts, 1)},
        "sections": {"count": len(sections),
                     "forced_commits": session.segmenter.forced_commits,
                     "forced_merges": session.segmenter.forced_merges},
        "batch_infer_ms": round(float(worker.get("infer_ms_median", 0.0)), 2),
        "cpu_share_others": share.others,
    }
    doc.update(summarise(captured, samples, rec))
    warning = busy_warning({"soak": share.others})
    doc["warnings"] = [warning] if warning else []
    return doc


def summarise(captured: int, samples: Sequence[tuple[float, int, float | None]],
              rec: _Record) -> dict[str, Any]:
    """Memory and latency per window, and their growth, from what a run collected.

    Windows split the frames after warm-up into :data:`WINDOWS` equal ranges of frame
    numbers; an analysed frame falls into its index's window, a memory sample into the
    window of the frames captured by then.
    """
    warm = int(WARMUP_FRACTION * captured)
    edges = np.linspace(warm, captured, WINDOWS + 1)

    def window_of(frame: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(edges, frame, side="right") - 1, 0, WINDOWS - 1)

    t = np.array([s[0] for s in samples], np.float64)
    f = np.array([s[1] for s in samples], np.int64)
    m = np.array([np.nan if s[2] is None else s[2] for s in samples], np.float64)
    after = (f >= warm) & ~np.isnan(m)
    # Copies: a results thread that overstayed stop may still append.
    idx = np.array(rec.index, np.int64)
    lat = np.array(rec.latency_ms, np.float64)
    buf = np.array(rec.buffered, np.int64)
    kept = idx >= warm
    lat_w, buf_w = window_of(idx[kept]), buf[kept]
    mem_w = window_of(f[after])
    windows = []
    for k in range(WINDOWS):
        mine = lat[kept][lat_w == k]
        rss = m[after][mem_w == k]
        windows.append({
            "first_frame": int(np.ceil(edges[k])),
            "analysed": int(mine.size),
            **{key: v for key, v in percentiles(mine).items() if key in ("p50_ms", "p99_ms")},
            "rss_median_mb": round(float(np.median(rss)), 1) if rss.size else None,
            "segmenter_buffered_max": int(buf_w[lat_w == k].max()) if mine.size else None,
        })
    rss_after = m[after]
    first = next((w["rss_median_mb"] for w in windows if w["rss_median_mb"] is not None), None)
    last = next((w["rss_median_mb"] for w in reversed(windows)
                 if w["rss_median_mb"] is not None), None)
    memory = {
        "start_mb": round(float(rss_after[0]), 1) if rss_after.size else None,
        "max_mb": round(float(rss_after.max()), 1) if rss_after.size else None,
        "end_mb": round(float(rss_after[-1]), 1) if rss_after.size else None,
        "growth_mb": round(last - first, 1) if first is not None and last is not None else None,
        "samples": int(rss_after.size),
    }
    lat_all = percentiles(lat[kept])
    return {
        "memory": memory,
        "latency": {
            "p50_ms": lat_all["p50_ms"], "p99_ms": lat_all["p99_ms"],
            "max_ms": lat_all["max_ms"],
            "p50_growth": _growth(windows, "p50_ms"),
            "p99_growth": _growth(windows, "p99_ms"),
        },
        "windows": windows,
        "samples": {"t_s": np.round(t, 2).tolist(), "frames": f.tolist(),
                    "rss_mb": [None if np.isnan(x) else round(float(x), 1) for x in m]},
    }


def _growth(windows: list[dict[str, Any]], key: str) -> float | None:
    first, last = windows[0].get(key), windows[-1].get(key)
    return round(last / first, 3) if first and last else None


def check_targets(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target with its value and whether it was met (``None``: not measured)."""
    values = {"rss_growth_mb": (doc["memory"]["growth_mb"], MAX_RSS_GROWTH_MB),
              "latency_p50_growth": (doc["latency"]["p50_growth"], MAX_LATENCY_GROWTH),
              "latency_p99_growth": (doc["latency"]["p99_growth"], MAX_LATENCY_GROWTH)}
    return {key: {"value": v, "target": f"< {bound:g}", "met": None if v is None else v < bound}
            for key, (v, bound) in values.items()}


def _progress(session: LiveSession, frames: int, sample: tuple[float, int, float | None]) -> str:
    wall_s, done, rss = sample
    rate = done / wall_s if wall_s > 0 else 0.0
    eta = f", {(frames - done) / rate / 60:.1f} min left" if rate > 0 else ""
    rss_text = f" · RSS {rss:.0f} MB" if rss is not None else ""
    return (f"soak: {done}/{frames} frames ({100 * done / frames:.0f} %{eta}) · "
            f"{session.stats().line()}{rss_text} · sections {len(session.sections())}")


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _pct(share: float | None) -> str:
    return "–" if share is None else f"{100 * share:.0f}"


def markdown(doc: dict[str, Any]) -> str:
    """The stdout report: the run, memory, latency per window, targets."""
    fr, mem, lat, s = doc["frames"], doc["memory"], doc["latency"], doc["settings"]
    video, model = doc["inputs"]["video"], doc["inputs"]["model"]
    cpu = doc["machine"]
    state = "interrupted" if doc["interrupted"] else "complete"
    lines = [
        f"## Soak: {fr['captured']} frames at {s['rate_fps']:g} fps ({state})", "",
        f"{cpu['cpu_model']}, {cpu['cores_usable']} cores; model {Path(model['path']).name} "
        f"({model['origin']}, {model['provider']}); clip {Path(video['path']).name} "
        f"({video['width']}x{video['height']}, {_f(video['fps'], 0)} fps) looped "
        f"{fr['loops']} times; other processes took {_pct(doc['cpu_share_others'])} % "
        "of the CPU.", "",
        "| run | value |", "|---|---:|",
        f"| frames captured / displayed | {fr['captured']} / {fr['displayed']} |",
        f"| frames analysed / dropped before inference | {fr['analysed']} / {fr['dropped']} |",
        f"| capture fps / analysed fps | {_f(fr['capture_fps'])} / {_f(fr['analysed_fps'])} |",
        f"| frames released late (capture behind the rate) | {fr['late']} |",
        f"| video time covered (s) | {_f(fr['video_s'])} |",
        f"| sections produced | {doc['sections']['count']} |",
        f"| one batch's inference, median (ms) | {_f(doc['batch_infer_ms'])} |",
        f"| wall time (s), with setup | {_f(doc['run_s'])} ({_f(doc['wall_s'])}) |", "",
        "| memory (after warm-up) | MB |", "|---|---:|",
        f"| before the session | {_f(doc['rss_before_session_mb'])} |",
        f"| start / max / end | {_f(mem['start_mb'])} / {_f(mem['max_mb'])} / "
        f"{_f(mem['end_mb'])} |",
        f"| growth (median of last window - first) | {_f(mem['growth_mb'])} |", "",
        "| window | from frame | analysed | p50 ms | p99 ms | RSS MB (median) | "
        "segmenter frames (max) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, w in enumerate(doc["windows"], 1):
        lines.append(f"| {k} | {w['first_frame']} | {w['analysed']} | {_f(w['p50_ms'], 0)} | "
                     f"{_f(w['p99_ms'], 0)} | {_f(w['rss_median_mb'])} | "
                     f"{_f(w['segmenter_buffered_max'])} |")
    lines += ["", f"Latency after warm-up: p50 {_f(lat['p50_ms'], 0)} ms, p99 "
              f"{_f(lat['p99_ms'], 0)} ms, max {_f(lat['max_ms'], 0)} ms.", "",
              "| target | value | limit | met |", "|---|---:|---|---|"]
    names = {"rss_growth_mb": "memory growth (MB)",
             "latency_p50_growth": "latency p50, last window / first",
             "latency_p99_growth": "latency p99, last window / first"}
    for key, t in doc["targets"].items():
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        lines.append(f"| {names[key]} | {_f(t['value'], 2)} | {t['target']} | {met} |")
    lines += [f"\n> {w}" for w in doc["warnings"]]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; Markdown on stdout, the JSON path on stderr. Returns the exit code."""
    return run_script("benchmarks.soak", "soak", build_parser(), run, markdown, argv,
                      exit_code=lambda doc: 130 if doc["interrupted"] else 0)


if __name__ == "__main__":
    sys.exit(main())
