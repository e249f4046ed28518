"""What identifying a recording by its content costs: time and bytes read, against its size.

Run: ``python -m benchmarks.fingerprint [--minutes 60] [--repeat 5] [--keep DIR]``.

Generates a long low-resolution H.264 clip with PyAV once (a moving gradient with a
frame counter, ``--size`` at 25 fps, a keyframe every ``--gop`` frames; an hour encodes
in about a minute), then times
:func:`~endostream.sources.fingerprint.recording_fingerprint` on it:

- **warm**: the file in the page cache, ``--repeat`` runs, median; bytes through
  ``read()`` from ``/proc/self/io``'s ``rchar`` (what the demuxer asked for);
- **cold**: the file's pages dropped first (``posix_fadvise(DONTNEED)`` on that one file,
  nothing else is touched), one run; bytes from the disk from ``read_bytes``;
- for scale, hashing the whole file (:func:`~endostream.sources.fingerprint.file_sha256`),
  which is what a fingerprint must never need.

The clip goes into a temporary folder removed at the end (``--keep DIR`` keeps it there
and reuses it next time). Prints Markdown; ``--json`` writes the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from endostream.sources.fingerprint import file_sha256, recording_fingerprint

from .entry import document_head, run_script
from .machine import describe_machine

SCHEMA = "endostream.bench.fingerprint/1"
FPS = 25


def io_counters() -> dict[str, int]:
    """This process's ``/proc/self/io`` counters (``rchar``, ``read_bytes``, ...); empty
    where the kernel does not offer them."""
    try:
        with open("/proc/self/io", encoding="ascii") as fh:
            return {k: int(v) for k, v in (line.split(":") for line in fh)}
    except OSError:
        return {}


def make_clip(path: Path, minutes: float, size: tuple[int, int], gop: int) -> Path:
    """A ``minutes``-long H.264 MP4 at ``size``: a gradient that moves every frame (so no
    two stretches encode alike) with the frame index in its first row."""
    width, height = size
    n = int(round(minutes * 60 * FPS))
    x = np.arange(width, dtype=np.int32)[None, :]
    y = np.arange(height, dtype=np.int32)[:, None]
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "g": str(gop), "crf": "30"}
        for i in range(n):
            img = np.empty((height, width, 3), np.uint8)
            img[..., 0] = (x + i) & 255
            img[..., 1] = (y + 2 * i) & 255
            img[..., 2] = (x + y + (i // FPS)) & 255
            img[0, :32] = ((np.arange(32) < (i % 32)) * 255)[:, None]  # a frame counter
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for p in vs.encode(frame):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    tmp.replace(path)
    return path


def drop_from_cache(path: Path) -> bool:
    """Ask the kernel to forget ``path``'s cached pages (this file only); whether it could."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def measure(fn: Callable[[], Any]) -> tuple[float, dict[str, int]]:
    """Seconds ``fn`` took and the change in this process's I/O counters."""
    before = io_counters()
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    after = io_counters()
    return wall, {k: after[k] - before.get(k, 0) for k in after}


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = args.keep or Path(tempfile.mkdtemp(prefix="endostream-fingerprint-"))
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / f"fingerprint-{args.minutes:g}min-{args.size[0]}x{args.size[1]}.mp4"
    try:
        encode_s = None
        if not clip.exists():
            print(f"encoding a {args.minutes:g}-minute {args.size[0]}x{args.size[1]} clip "
                  f"to {clip} ...", file=sys.stderr)
            t0 = time.perf_counter()
            make_clip(clip, args.minutes, args.size, args.gop)
            encode_s = time.perf_counter() - t0
        size = clip.stat().st_size
        with av.open(str(clip)) as c:
            stream = c.streams.video[0]
            frames = stream.frames
            duration_s = float(stream.duration * stream.time_base) if stream.duration else None
        fingerprint = recording_fingerprint(clip)  # also warms the cache
        warm = [measure(lambda: recording_fingerprint(clip)) for _ in range(args.repeat)]
        cold_dropped = drop_from_cache(clip)
        cold = measure(lambda: recording_fingerprint(clip))
        assert recording_fingerprint(clip) == fingerprint  # the same answer every time
        whole = measure(lambda: file_sha256(clip))
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    warm_s = [w for w, _ in warm]
    doc = document_head(SCHEMA, args, describe_machine())
    doc.update({
        "clip": {"minutes": args.minutes, "width": args.size[0], "height": args.size[1],
                 "fps": FPS, "gop": args.gop, "frames": frames, "duration_s": duration_s,
                 "size_bytes": size, "encode_s": encode_s},
        "fingerprint": fingerprint,
        "warm": {"runs": args.repeat, "median_ms": 1000 * statistics.median(warm_s),
                 "max_ms": 1000 * max(warm_s),
                 "read_calls_bytes": statistics.median(c.get("rchar", 0) for _, c in warm)},
        "cold": {"page_cache_dropped": cold_dropped, "ms": 1000 * cold[0],
                 "disk_bytes": cold[1].get("read_bytes", 0),
                 "read_calls_bytes": cold[1].get("rchar", 0)},
        "whole_file_sha256": {"ms": 1000 * whole[0],
                              "read_calls_bytes": whole[1].get("rchar", 0)},
    })
    return doc


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def markdown(doc: dict[str, Any]) -> str:
    clip, warm, cold, whole = doc["clip"], doc["warm"], doc["cold"], doc["whole_file_sha256"]
    size = clip["size_bytes"]
    rows = [
        ("fingerprint, file cached", f"{warm['median_ms']:.1f} ms (median of {warm['runs']}, "
         f"max {warm['max_ms']:.1f})", _mb(warm["read_calls_bytes"]),
         f"{100 * warm['read_calls_bytes'] / size:.2f} %"),
        ("fingerprint, file not cached" + ("" if cold["page_cache_dropped"] else
                                           " (could not drop the cache)"),
         f"{cold['ms']:.1f} ms", f"{_mb(cold['disk_bytes'])} from disk, "
         f"{_mb(cold['read_calls_bytes'])} read", f"{100 * cold['read_calls_bytes'] / size:.2f} %"),
        ("whole-file SHA-256, for scale", f"{whole['ms']:.1f} ms",
         _mb(whole["read_calls_bytes"]), f"{100 * whole['read_calls_bytes'] / size:.0f} %"),
    ]
    lines = [f"Recording fingerprint on a {clip['minutes']:g}-minute {clip['width']}x"
             f"{clip['height']} H.264 MP4 ({clip['frames']} frames, {_mb(size)}, keyframe "
             f"every {clip['gop']} frames)", "",
             "| what | time | bytes read | of the file |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines) + "\n"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fingerprint",
                                description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=60.0,
                   help="length of the generated clip (default: %(default)g)")
    p.add_argument("--size", type=_size, default=(160, 120), metavar="WxH",
                   help="its frame size (default: 160x120)")
    p.add_argument("--gop", type=int, default=250, metavar="N",
                   help="frames between keyframes (default: %(default)s, x264's)")
    p.add_argument("--repeat", type=int, default=5, metavar="N",
                   help="timed runs with the file cached (default: %(default)s)")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="keep the clip in DIR and reuse it (default: a temporary folder, "
                        "removed)")
    p.add_argument("--json", type=Path, metavar="OUT",
                   help="where to write the results (default: the bench cache's runs/)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    return run_script("benchmarks.fingerprint", "fingerprint", parser(), run, markdown, argv)


if __name__ == "__main__":
    sys.exit(main())
