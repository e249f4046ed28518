"""A corpus of bad and odd inputs for ``endostream segment``, made here from a seed.

No binaries are committed: every input is written by :func:`write_corpus` in a few
seconds (tiny clips, 160x120, 1-9 s; the 4K clip has 3 frames). Each :class:`Case` says
how its input is made and what ``endostream segment`` must do with it:

- ``processed``: exit 0, ``sections.json`` valid and ``complete: true``, sections that
  cover the decoded frames, one ``--csv`` row per analysed frame, plus the case's checks;
- ``error``: the exit code from :mod:`endostream.errors`, stderr exactly one line
  ``endostream: error: ...`` naming the problem (no traceback), and nothing written;
- ``partial``: exit 6, ``sections.json`` valid with ``complete: false`` and the analysed
  frames kept (sections and CSV rows), stderr ending in one ``endostream: error:`` line.

:mod:`.corpus_run` runs the real CLI on a case in a subprocess with a hard timeout and
lists every way the run differs from the expectation; tests/test_corpus.py asserts
there are none, per case. As a script this module writes the corpus and, with ``--run``,
runs each case and prints a Markdown table::

    python -m tests.helpers.corpus OUTDIR [--run] [--models M.onnx] [--only NAME ...]

(without ``--models`` the small colour model of :mod:`tests.helpers.onnx_models` is
built into ``OUTDIR``). What FFmpeg does with damaged MP4s, measured here:

- a normal MP4 (``moov`` index at the end) cut at 10, 50 or 90 % has no index at all, so
  nothing can be decoded: exit 3 ("without a usable index"), however much was kept;
- ``+faststart`` (``moov`` at the front) is what makes partial decoding possible: the cut
  copies open and give every frame before the cut, then the decoder fails on the missing
  data (a DecodeError; were it silent, the shortfall against the duration in the header
  would raise one): exit 6 with the frames before the cut kept. Cut at 10 % only the
  first frame survives (the index and one noisy I-frame fill that much).
- a 3000-byte random stretch in the middle of an MP4 (index at the end, intact) makes
  the decoder fail there: exit 6 with the frames before it.

>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> paths = write_corpus(d, names=["zero-bytes", "single-frame"])
>>> sorted(p.name for p in paths.values())
['single_frame.mp4', 'zero_bytes.mp4']
>>> CASES["zero-bytes"].expect, CASES["zero-bytes"].exit_code
('error', 3)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from endostream.errors import EXIT_OK, EXIT_PARTIAL, EXIT_VIDEO

from .clips import (
    FORMATS,
    damaged_copy,
    display_matrix_unsupported,
    encode_audio_only,
    encode_clip,
    truncated_copy,
)
from .corpus_run import ERROR, PARTIAL, PROCESSED, RunResult, outcome, problems, run_case
from .onnx_models import DEFAULT_ORGAN_COLORS

#: Size and rate of the ordinary corpus clips: small enough that encoding and a run take
#: well under a second of work each.
WIDTH, HEIGHT, FPS = 160, 120, 25
#: Seed of every random input (noise texture, random bytes, damage).
SEED = 7
#: Seconds of black at the start of the black-start clip, and of content after it.
BLACK_S, CONTENT_S = 5.0, 4.0
#: What the privacy case hides in its container and stream metadata.
PATIENT_TAGS = {"title": "Patient Jane Doe 1970-01-01",
                "comment": "Patient Jane Doe, DOB 1970-01-01, MRN 123456",
                "creation_time": "2019-05-04T10:20:30.000000Z",  # the day of the procedure
                "artist": "Dr. Jane Doe"}
#: Strings that must not appear in anything endostream writes for the privacy case.
PATIENT_STRINGS = ("Jane", "Doe", "1970-01-01", "123456", "Patient", "2019-05-04")
#: Organ colour of the content frames (the colour model calls it "nose").
CONTENT_RGB = DEFAULT_ORGAN_COLORS["nose"]
CONTENT_LABEL = "nose"


# --- frames ------------------------------------------------------------------------------


def scope_frame(i: int, width: int = WIDTH, height: int = HEIGHT, *, border: bool = True,
                rgb: Sequence[int] = CONTENT_RGB, noise: int = 40) -> np.ndarray:
    """An endoscope-like RGB frame: a textured disc of ``rgb`` in black (``border``), or
    the textured colour filling the whole frame. Seeded by ``i``.

    The texture is drawn at most 480 px wide and scaled up, so a 4K frame costs ~50 ms;
    the colour model calls it sharp and bright, i.e. a good frame of its organ.
    """
    rng = np.random.default_rng((SEED, i))
    tw, th = min(width, 480), min(height, 270)
    tex = rng.integers(-noise, noise + 1, (th, tw, 3), dtype=np.int16)
    if (tw, th) != (width, height):
        tex = cv2.resize(tex.astype(np.float32), (width, height),
                         interpolation=cv2.INTER_NEAREST).astype(np.int16)
    img = np.clip(tex + np.asarray(rgb, np.int16), 0, 255).astype(np.uint8)
    if border:
        mask = np.zeros((height, width), np.uint8)
        cv2.circle(mask, (width // 2, height // 2), int(min(width, height) * 0.45), 255, -1)
        img[mask == 0] = 0
    return img


def black_frame(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    return np.zeros((height, width, 3), np.uint8)


# --- makers: each writes one input into a directory and returns the path to pass --------


def _clip(name: str, n: int, **kwargs) -> Callable[[Path], Path]:
    """A maker for an MP4/H.264 clip of ``n`` scope frames (``encode_clip`` keywords)."""
    border = kwargs.pop("border", True)
    size = kwargs.pop("size", (WIDTH, HEIGHT))

    def make(d: Path) -> Path:
        return encode_clip(d / name, lambda i: scope_frame(i, *size, border=border),
                           n_frames=n, fps=FPS, **kwargs)
    return make


def _zero_bytes(d: Path) -> Path:
    path = d / "zero_bytes.mp4"
    path.write_bytes(b"")
    return path


def _random_bytes(d: Path) -> Path:
    path = d / "random_bytes.mp4"
    path.write_bytes(np.random.default_rng(SEED).integers(0, 256, 64_000, np.uint8).tobytes())
    return path


def _base_clip(d: Path, recipe: str) -> Path:
    """A 2 s 160x120 clip (``mp4`` or ``faststart``) that the cut and damaged cases copy."""
    path = d / f".base_{recipe}.mp4"
    if not path.exists():
        fmt = FORMATS[recipe]
        encode_clip(path, lambda i: scope_frame(i), n_frames=2 * FPS, fps=FPS, codec=fmt.codec,
                    pix_fmt=fmt.pix_fmt, options=fmt.options,
                    container_options=fmt.container_options)
    return path


def _truncated(recipe: str, fraction: float) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        name = f"{'faststart_' if recipe == 'faststart' else ''}cut_{round(fraction * 100)}.mp4"
        return truncated_copy(_base_clip(d, recipe), d / name, fraction)
    return make


def _corrupt_middle(d: Path) -> Path:
    return damaged_copy(_base_clip(d, "mp4"), d / "corrupt_middle.mp4", at=0.5, nbytes=3000,
                        seed=SEED)


def _audio_only(d: Path) -> Path:
    return encode_audio_only(d / "audio_only.mp4", seconds=1.0)


def _black_start(d: Path) -> Path:
    n_black = int(BLACK_S * FPS)
    return encode_clip(d / "black_start.mp4",
                       lambda i: black_frame() if i < n_black else scope_frame(i),
                       n_frames=int((BLACK_S + CONTENT_S) * FPS), fps=FPS)


#: Timestamps (ms) of the variable-frame-rate clip: 25 fps, a 10 fps stretch, a 0.7 s gap
#: (a dropped stretch), then 50 fps; 3.2 s in all.
VFR_PTS_MS = ([40 * i for i in range(25)]                    # 0.00-0.96 s at 25 fps
              + [1000 + 100 * i for i in range(10)]          # 1.00-1.90 s at 10 fps
              + [2600 + 20 * i for i in range(30)])          # 2.60-3.18 s at 50 fps
#: The times analysed at 5 fps: the first frame at or after each 0.2 s tick; the gap skips
#: the ticks at 2.0, 2.2 and 2.4 s and the next tick after 2.6 s is 2.8 s.
VFR_ANALYSED_S = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.6, 2.8, 3.0]


def _vfr(d: Path) -> Path:
    return encode_clip(d / "vfr.mp4", lambda i: scope_frame(i), n_frames=len(VFR_PTS_MS),
                       pts=VFR_PTS_MS)


def _directory(d: Path) -> Path:
    path = d / "a_directory.mp4"
    path.mkdir(exist_ok=True)
    return path


def _unreadable(d: Path) -> Path:
    path = _clip("unreadable.mp4", FPS)(d)
    path.chmod(0)
    return path


def _patient_metadata(d: Path) -> Path:
    """A clip whose container and stream carry patient-identifying tags (remuxed)."""
    src = _clip(".plain.mp4", 2 * FPS)(d)
    dst = d / "patient_metadata.mp4"
    # The mp4 muxer writes only the tags it knows (title, comment, artist, creation_time).
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        out.metadata.update(PATIENT_TAGS)
        ist = inp.streams.video[0]
        ost = out.add_stream_from_template(ist)
        ost.metadata.update({"title": PATIENT_TAGS["title"], "handler_name": PATIENT_TAGS["title"]})
        for packet in inp.demux(ist):
            if packet.dts is None:
                continue
            packet.stream = ost
            out.mux(packet)
    src.unlink()
    with av.open(str(dst)) as c:  # the tags really are in the file, or the case proves nothing
        tags = {**c.metadata, **c.streams.video[0].metadata}
    if not all(k in tags for k in PATIENT_TAGS) or "Jane Doe" not in tags["title"]:
        raise RuntimeError(f"the muxer dropped the patient tags: {tags}")
    return dst


def unreadable_skip() -> str | None:
    """Why the unreadable-file case cannot be made here, or None."""
    if os.name != "posix":
        return "file permissions are POSIX-only"
    if os.geteuid() == 0:
        return "root reads files whatever their permissions (chmod 000 has no effect)"
    return None


# --- the checks -------------------------------------------------------------------------


Check = Callable[[RunResult], None]


@dataclass(frozen=True)
class Case:
    """One corpus input and what ``endostream segment`` must do with it."""

    name: str
    how: str  #: how the input is made, one line
    expect: str  #: PROCESSED, ERROR or PARTIAL
    make: Callable[[Path], Path] = field(repr=False)
    exit_code: int = EXIT_OK
    message: str = ""  #: a fragment of the error line (ERROR and PARTIAL)
    check: Check | None = field(default=None, repr=False)  #: more checks (AssertionError)
    skip: Callable[[], str | None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        want = {PROCESSED: EXIT_OK, PARTIAL: EXIT_PARTIAL}.get(self.expect)
        if self.expect not in (PROCESSED, ERROR, PARTIAL) or \
                (want is not None and self.exit_code != want) or \
                (self.expect == ERROR and self.exit_code == EXIT_OK):
            raise ValueError(f"case {self.name}: inconsistent expectation "
                             f"{self.expect}/{self.exit_code}")


def _size(width: int, height: int) -> Check:
    def check(r: RunResult) -> None:
        src = r.doc["source"]
        assert (src["width"], src["height"]) == (width, height), \
            f"source size {src['width']}x{src['height']}, expected {width}x{height}"
    return check


def _labels(*labels: str) -> Check:
    def check(r: RunResult) -> None:
        got = [s["label"] for s in r.doc["sections"]]
        assert got == list(labels), f"sections {got}, expected {list(labels)}"
    return check


def _all(*checks: Check) -> Check:
    def check(r: RunResult) -> None:
        for c in checks:
            c(r)
    return check


def _frames(n: int, duration_s: float) -> Check:
    def check(r: RunResult) -> None:
        src = r.doc["source"]
        assert src["frames"] == n, f"source.frames {src['frames']}, expected {n}"
        assert abs(src["duration_s"] - duration_s) < 1e-3, \
            f"source.duration_s {src['duration_s']}, expected {duration_s}"
    return check


def _check_black_start(r: RunResult) -> None:
    # 5 s of black is one unusable section; the organ starts where the content does
    # (the boundary lies halfway between the last black and the first content sample).
    secs = r.doc["sections"]
    assert [s["label"] for s in secs] == ["unusable", CONTENT_LABEL], secs
    assert abs(secs[1]["start_s"] - BLACK_S) <= 0.2, f"content starts at {secs[1]['start_s']}"
    assert secs[0]["good_fraction"] == 0.0 and secs[1]["good_fraction"] == 1.0, secs


def _check_vfr(r: RunResult) -> None:
    # Times are the container's own, sampled by time, not by frame count.
    times = [round(float(row["pts_s"]), 3) for row in r.csv_rows]
    frames = [int(row["frame"]) for row in r.csv_rows]
    assert [VFR_PTS_MS[i] / 1000 for i in frames] == times, (frames, times)  # frame-exact
    if r.doc["analysis"].get("mode") != "coarse-to-fine":
        assert times == VFR_ANALYSED_S, f"analysed at {times}, expected {VFR_ANALYSED_S}"
    else:
        # A frame a second (one scene: nothing to refine) and the last tick; skipping
        # non-reference frames, a tick takes the first decoded frame at or after it, at
        # most two frames later.
        assert times[0] == 0.0 and len(times) >= 4, times
        pts = [ms / 1000 for ms in VFR_PTS_MS]
        for t in times:
            tick = max(g for g in VFR_ANALYSED_S if g <= t + 1e-9)
            assert sum(tick <= p < t - 1e-9 for p in pts) <= 2, (t, tick)
    assert r.doc["source"]["frames"] == len(VFR_PTS_MS)
    assert abs(r.doc["sections"][-1]["end_s"] - r.doc["source"]["duration_s"]) < 1e-3


def _check_private(r: RunResult) -> None:
    texts = {"sections.json": r.out.read_text(encoding="utf-8"),
             "frames.csv": r.csv.read_text(encoding="utf-8")}
    for name, text in texts.items():
        for s in PATIENT_STRINGS:
            assert s not in text, f"{name} contains {s!r} from the container metadata"
    for s in PATIENT_STRINGS:
        assert s not in r.stderr, f"stderr contains {s!r} from the container metadata"


def _check_partial_kept(min_frames: int, max_frames: int) -> Check:
    """``min_frames..max_frames`` analysed frames kept (the dense grid's count); coarse to
    fine keeps at least a frame a second of that (one in five at the default rates)."""
    def check(r: RunResult) -> None:
        n = r.doc["analysis"]["frames_analysed"]
        low = min_frames
        if r.doc["analysis"].get("mode") == "coarse-to-fine":
            low = max(1, min_frames // 5)
        assert low <= n <= max_frames, f"{n} frames analysed, expected {low}..{max_frames}"
    return check


# --- the corpus ----------------------------------------------------------------------------

_CUT_MESSAGE = "without a usable index"
_SHORT_MESSAGE = "cut short"

CASE_LIST: list[Case] = [
    Case("zero-bytes", "an empty file named .mp4", ERROR, _zero_bytes, EXIT_VIDEO,
         "is empty (0 bytes)"),
    Case("random-bytes", f"64 kB of random bytes (seed {SEED}) named .mp4", ERROR,
         _random_bytes, EXIT_VIDEO, "cannot open"),
    *[Case(f"mp4-cut-{p}", f"2 s H.264 MP4, moov at the end, first {p} % of the bytes",
           ERROR, _truncated("mp4", p / 100), EXIT_VIDEO, _CUT_MESSAGE) for p in (10, 50, 90)],
    Case("faststart-cut-10", "2 s H.264 MP4 +faststart, first 10 % of the bytes", PARTIAL,
         _truncated("faststart", 0.10), EXIT_PARTIAL, _SHORT_MESSAGE,
         _check_partial_kept(1, 10)),
    Case("faststart-cut-50", "2 s H.264 MP4 +faststart, first 50 % of the bytes", PARTIAL,
         _truncated("faststart", 0.50), EXIT_PARTIAL, _SHORT_MESSAGE,
         _check_partial_kept(3, 7)),
    Case("faststart-cut-90", "2 s H.264 MP4 +faststart, first 90 % of the bytes", PARTIAL,
         _truncated("faststart", 0.90), EXIT_PARTIAL, _SHORT_MESSAGE,
         _check_partial_kept(7, 10)),
    Case("corrupt-middle", "2 s H.264 MP4, 3000 random bytes written at half its length",
         PARTIAL, _corrupt_middle, EXIT_PARTIAL, "damaged", _check_partial_kept(2, 9)),
    Case("audio-only", "1 s of AAC in an .mp4, no video stream", ERROR, _audio_only,
         EXIT_VIDEO, "no video stream"),
    # One pixel has no texture, so the quality head calls every frame bad: unusable.
    Case("1x1", "1x1 px, 10 frames, H.264 yuv444p (x264 refuses 1x1 in yuv420p)", PROCESSED,
         _clip("one_pixel.mp4", 10, size=(1, 1), border=False, pix_fmt="yuv444p"),
         check=_all(_size(1, 1), _frames(10, 0.4), _labels("unusable"))),
    Case("4k", "3840x2160, 3 frames, H.264 ultrafast", PROCESSED,
         _clip("uhd_4k.mp4", 3, size=(3840, 2160), options={"preset": "ultrafast"}),
         check=_all(_size(3840, 2160), _frames(3, 0.12), _labels(CONTENT_LABEL))),
    Case("gray", "2 s FFV1 gray (decodes as gray) in .mkv", PROCESSED,
         _clip("gray.mkv", 2 * FPS, codec="ffv1", pix_fmt="gray"),
         check=_all(_size(WIDTH, HEIGHT), _frames(2 * FPS, 2.0))),
    Case("10bit", "2 s H.264 High 10 (yuv420p10le)", PROCESSED,
         _clip("ten_bit.mp4", 2 * FPS, pix_fmt="yuv420p10le"),
         check=_all(_size(WIDTH, HEIGHT), _labels(CONTENT_LABEL))),
    Case("rotated", "2 s 160x120 H.264 with a 90 degree display matrix", PROCESSED,
         _clip("rotated.mp4", 2 * FPS, rotation=90),
         check=_all(_size(HEIGHT, WIDTH), _labels(CONTENT_LABEL)),
         skip=display_matrix_unsupported),
    Case("vfr", "H.264 MP4 at 25, then 10 fps, a 0.7 s gap, then 50 fps (65 frames, 3.2 s)",
         PROCESSED, _vfr, check=_all(_check_vfr, _labels(CONTENT_LABEL))),
    Case("black-start", f"{BLACK_S:g} s of black, then {CONTENT_S:g} s of scope content",
         PROCESSED, _black_start, check=_check_black_start),
    Case("no-border", "2 s of content filling the whole frame (no black mask)", PROCESSED,
         _clip("no_border.mp4", 2 * FPS, border=False),
         check=_all(_labels(CONTENT_LABEL), _frames(2 * FPS, 2.0))),
    Case("single-frame", "an H.264 MP4 of one frame", PROCESSED,
         _clip("single_frame.mp4", 1), check=_all(_frames(1, 0.04), _labels(CONTENT_LABEL))),
    Case("patient-metadata", "2 s clip whose title/comment/artist/creation_time name a patient",
         PROCESSED, _patient_metadata, check=_check_private),
    Case("unreadable", "a valid clip with permissions 000", ERROR, _unreadable, EXIT_VIDEO,
         "Permission denied", skip=unreadable_skip),
    Case("directory", "a directory named .mp4", ERROR, _directory, EXIT_VIDEO,
         "is a directory"),
    Case("missing", "a path that does not exist", ERROR, lambda d: d / "missing.mp4",
         EXIT_VIDEO, "not found"),
]

#: The cases by name, in table order.
CASES: dict[str, Case] = {c.name: c for c in CASE_LIST}
assert len(CASES) == len(CASE_LIST), "case names must be unique"


def write_corpus(directory: str | os.PathLike, names: Sequence[str] | None = None
                 ) -> dict[str, Path]:
    """Write the inputs of ``names`` (default: every case that can be made here) into
    ``directory``; returns case name -> the path to pass to ``endostream segment``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in names or list(CASES):
        case = CASES[name]
        if case.skip is not None and case.skip():
            continue
        paths[name] = case.make(d)
    for base in d.glob(".base_*"):
        base.unlink()
    return paths


# --- script --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.helpers.corpus",
        description="Write the corpus of bad and odd inputs; with --run, run "
                    "`endostream segment` on each and print a Markdown table.")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--run", action="store_true", help="run endostream segment on each")
    parser.add_argument("--models", nargs="+", type=Path,
                        help="model file(s) (default: the small colour model, built here)")
    parser.add_argument("--only", nargs="+", choices=list(CASES), metavar="NAME",
                        help=f"only these cases ({', '.join(CASES)})")
    args = parser.parse_args(argv)
    inputs = args.outdir / "inputs"
    paths = write_corpus(inputs, args.only)
    skipped = {n: CASES[n].skip() for n in (args.only or CASES) if n not in paths}
    if not args.run:
        for name, path in paths.items():
            print(f"{name}\t{CASES[name].expect}\t{path}")
        for name, why in skipped.items():
            print(f"{name}\tskipped\t{why}")
        return 0
    models = args.models
    if not models:
        from .onnx_models import build_color_model
        models = [build_color_model(args.outdir / "models" / "color.onnx")]
    print("| case | input | expected | exit code | seconds | outcome / first stderr line |")
    print("|---|---|---|---:|---:|---|")
    failed = 0
    for name in args.only or CASES:
        case = CASES[name]
        expected = f"{case.expect} ({case.exit_code})"
        if name in skipped:
            print(f"| {name} | {case.how} | {expected} | | | skipped: {skipped[name]} |")
            continue
        r = run_case(paths[name], models, args.outdir / "runs" / name)
        failed += bool(problems(case, r))
        code = "timeout" if r.exit_code is None else r.exit_code
        print(f"| {name} | {case.how} | {expected} | {code} | {r.seconds:.1f} | "
              f"{outcome(case, r)} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
