"""Label a live endoscope feed: camera (or a file played as one) → overlay and timeline.

Opens the live window (PyQt5) showing the video at its full frame rate with the current
organ, its probability and an image-quality badge, and a timeline of sections that grows
as the procedure goes on. With --headless (towers without a screen) it prints a status
line every second on stderr instead and writes --out when it ends: Ctrl+C, SIGTERM,
--duration, or the end of a --file. Inference that falls behind drops the oldest frames
(counted), so the label never lags more than a couple of batches.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from endostream.commands.common import (
    ModelChoice,
    add_model_arguments,
    add_segmenter_arguments,
    segmenter_config,
)
from endostream.errors import EXIT_INTERRUPTED, EndostreamError, UsageError, VideoError
from endostream.inference.defaults import LIVE_BATCH
from endostream.output.guard import add_overwrite_option, check_outputs, is_stdout
from endostream.output.table import count, format_clock, format_sections_table
from endostream.pipeline.live import LiveSession
from endostream.pipeline.stats import LiveStats
from endostream.sources.base import FrameSource
from endostream.sources.camera import parse_device
from endostream.sources.live import open_live_source

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  endostream live --camera 0
  endostream live --camera /dev/video2 --headless --out sections.json --give-up 60
  endostream live --file procedure.mp4 --realtime --headless --out sections.json

--out is checked when the session starts, not when it ends: it may not be the --file
or a model, and its folder must take new files. Ctrl+C (or SIGTERM) ends a headless
session normally: the sections table is printed and --out written.

exit codes: 0 done (a camera session stopped by the user is complete; so is closing the
window), 2 bad arguments, 3 video unreadable, 4 model problem, 5 output not writable,
6 decode error part way, 7 camera cannot be opened or lost for good (partial result
written), 130 --headless with a --file stopped by Ctrl+C/SIGTERM before its end
(partial result written)
"""

#: Seconds between two headless status lines.
STATUS_INTERVAL_S = 1.0


#: ``--help`` groups and the options it leaves to ``--help-all`` (endostream.cli).
HELP_GROUPS = {
    "source": ["--camera", "--file", "--realtime", "--give-up"],
    "outputs": ["--headless", "--out", "--overwrite", "--duration"],
    "analysis": ["--models", "--device", "--threads", "--batch", "--min-section"],
}
RARE_OPTIONS = ["--threads", "--batch"]


def configure_parser(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", default=None, metavar="DEVICE",
                     help="camera index (0, 1, ...), device path (/dev/video0) or stream URL "
                          "(rtsp://...); default: 0")
    src.add_argument("--file", type=Path, default=None, metavar="VIDEO",
                     help="analyse a recorded video instead of a camera (default: none)")
    p.add_argument("--realtime", action="store_true",
                   help="with --file: play it at its native rate, as if it were a camera "
                        "(frames are dropped when inference is slower); without it every "
                        "frame is analysed as fast as possible (default: off)")
    add_model_arguments(p)
    p.add_argument("--headless", action="store_true",
                   help="no window: a status line every second, sections written on exit "
                        "(default: the window)")
    p.add_argument("--out", type=Path, default=None, metavar="sections.json",
                   help="where to write the sections when the session ends "
                        "(required with --headless; in the window: the default save path; "
                        "default: none)")
    add_overwrite_option(p)
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop by itself after this many seconds (default: run until stopped)")
    p.add_argument("--batch", type=int, default=LIVE_BATCH, metavar="N",
                   help="frames per inference batch; small keeps latency low "
                        "(default: %(default)s)")
    add_segmenter_arguments(p)
    p.add_argument("--give-up", type=float, default=None, metavar="SECONDS",
                   help="end the session when the camera stays lost this long "
                        "(default: keep reconnecting until stopped)")


def check_args(args: argparse.Namespace) -> None:
    """Argument checks that need no model and no device, so mistakes show at once."""
    if args.realtime and args.file is None:
        raise UsageError("--realtime plays a --file as a camera; add --file VIDEO, or drop it")
    if args.headless and args.out is None:
        raise UsageError("--headless needs --out sections.json (where to write the sections)")
    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration must be positive, got {args.duration}")
    if args.give_up is not None and not args.give_up > 0:
        raise UsageError(f"--give-up must be positive, got {args.give_up}")
    if args.file is not None and not args.file.exists():
        raise VideoError(f"video not found: '{args.file}'; check the path")
    if is_stdout(args.out):
        raise UsageError("live writes --out when the session ends, to a file; give a path "
                         "such as sections.json")
    # Now, not when the session ends an hour later.
    check_outputs({"--out": args.out},
                  {"--file": args.file, "--models": ModelChoice.from_args(args).input_paths()},
                  overwrite=args.overwrite)


def open_source(args: argparse.Namespace, *, keep_display: bool) -> FrameSource:
    """The source named by --camera / --file / --realtime."""
    return open_live_source(camera=args.camera, file=args.file, realtime=args.realtime,
                            keep_display=keep_display, give_up_s=args.give_up)


def status_line(stats: LiveStats, session: LiveSession) -> str:
    """``'  12 s · nose 0.99 · good · input 30.0 fps · ...'`` for the headless log."""
    latest = session.latest
    if latest is None:
        label = "waiting for the first label"
    else:
        now = latest.current
        quality = "good" if now.quality_good else "poor image"
        label = f"{now.label} {now.prob:.2f} · {quality}"
    return f"{format_clock(stats.elapsed_s):>7} · {label} · {stats.line()}"


def run(args: argparse.Namespace) -> int:
    check_args(args)
    if not args.headless:
        return _run_window(args)
    classifier = ModelChoice.from_args(args).load()
    try:
        source = open_source(args, keep_display=False)
        try:
            session = LiveSession(source, classifier, batch_size=args.batch,
                                  config=segmenter_config(args))
        except BaseException:
            source.close()  # the session would have owned it
            raise
        return _run_headless(args, session)
    finally:
        classifier.close()


def _run_headless(args: argparse.Namespace, session: LiveSession) -> int:
    interrupted = False
    error: EndostreamError | None = None
    session.start()
    log.info("live: %s", session.source.info.path)
    try:
        while not session.wait(STATUS_INTERVAL_S):
            stats = session.stats()
            print(status_line(stats, session), file=sys.stderr, flush=True)
            if args.duration is not None and stats.elapsed_s >= args.duration:
                break
    except KeyboardInterrupt:  # Ctrl+C, and SIGTERM (the CLI turns it into this)
        interrupted = True
    finally:
        try:
            session.stop()
        except EndostreamError as e:
            error = e  # sections so far are still written below
        finally:
            # Written even when a thread failed with a bug: what was seen is kept.
            session.write(args.out)
    stats = session.stats()
    sections = session.sections()
    # The table on stdout, like segment's; a Ctrl+C stop is the normal end of a session.
    print(format_sections_table(sections))
    print(f"{stats.analysed} frames analysed of {stats.captured} captured "
          f"({stats.dropped} dropped), {count(len(sections), 'section')}", file=sys.stderr)
    print(f"wrote {args.out}" + ("" if session.complete else " (complete: false)"),
          file=sys.stderr)
    if error is not None:
        raise error
    if interrupted:
        if session.complete:
            print("endostream: stopped (Ctrl+C or SIGTERM); the session is complete",
                  file=sys.stderr)
            return 0
        # A --file cut short: a stop, not an error, but the exit code says it is partial.
        print(f"endostream: stopped (Ctrl+C or SIGTERM) before the end of '{args.file}'; the "
              "sections found so far were written with complete: false", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _run_window(args: argparse.Namespace) -> int:
    try:
        from endostream.gui.app import DEMO_BADGE, run_gui
        from endostream.gui.controls import SourceChoice
    except ImportError:
        raise UsageError("the live window needs PyQt5 (pip install 'endostream[gui]'); "
                         "or run without a window: --headless --out sections.json") from None
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if sys.platform.startswith("linux") and not platform and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("no screen found (DISPLAY is not set); run with --headless --out "
                         "sections.json, or start it from the tower's desktop")
    if args.file is not None:
        choice = SourceChoice(file=args.file, realtime=bool(args.realtime))
    else:
        choice = SourceChoice(camera=parse_device(args.camera) if args.camera is not None else 0)
    classifier = ModelChoice.from_args(args).load()
    try:
        return run_gui(classifier, source=choice, config=segmenter_config(args),
                       batch_size=args.batch, out=args.out, give_up_s=args.give_up,
                       duration_s=args.duration, notice=None if args.models else DEMO_BADGE)
    finally:
        classifier.close()
