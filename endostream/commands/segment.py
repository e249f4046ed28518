"""Find organ sections in a recorded video and write them to sections.json.

Decodes the video (any container/codec FFmpeg reads), analyses --sample-fps frames per
second with the quality and organ classifiers, merges the per-frame labels into sections
and writes sections.json atomically. Ctrl+C keeps what was analysed (complete: false).

exit codes: 0 done, 2 bad arguments, 3 video unreadable, 4 model problem,
5 output not writable, 6 decode error part way (partial result written),
8 archive run (--out-dir) finished but some videos failed (see archive.json),
130 interrupted (partial result written)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from endostream.bundled import DEMO_NOTICE, require_demo_model
from endostream.commands.segment_archive import (
    CSV_BESIDE,
    add_archive_arguments,
    run_archive_command,
    single_video,
    wants_archive,
)
from endostream.errors import OutputError, UsageError, VideoError
from endostream.inference.classifier import Classifier
from endostream.inference.defaults import DEFAULT_DEVICE, DEVICES, batch_help
from endostream.output.frames_csv import FrameCsvWriter
from endostream.output.progress import Progress
from endostream.output.sections_file import write_sections
from endostream.output.table import format_sections_table
from endostream.pipeline.offline import SegmentOptions, result_document_fields, segment_video
from endostream.segmentation.config import SegmenterConfig
from endostream.sources.file import DEFAULT_SAMPLE_FPS

log = logging.getLogger(__name__)


def parse_sample_fps(text: str) -> float | None:
    """``'5'`` → 5.0; ``'all'`` → None (every frame)."""
    if text.strip().lower() in ("all", "0", "every"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be positive (or 'all')")
    return value


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--models`` and ``--device``, shared by every command that runs the classifiers."""
    p.add_argument("--models", nargs="+", metavar="PATH", type=Path,
                   help="one combined ONNX file, or two single-head files (quality, organ); "
                        "default: the bundled demo model")
    p.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE,
                   help="where to run the models: auto picks CUDA when an NVIDIA GPU can "
                        "really be used, else the CPU; tensorrt builds an fp16 engine "
                        "(minutes on first use, cached) (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU inference threads (default: all cores)")


def load_classifier(args: argparse.Namespace) -> Classifier:
    """The classifier named by ``--models``/``--device``, or the bundled demo model."""
    paths = args.models
    if not paths:
        paths = [require_demo_model()]
        print(f"endostream: {DEMO_NOTICE}", file=sys.stderr)
    if len(paths) > 2:
        raise UsageError("--models takes one combined file or two single-head files")
    return Classifier.load(paths, device=args.device, threads=args.threads)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", type=Path, nargs="*", metavar="VIDEO",
                   help="the recorded video (mp4, mkv, avi, mpg, ...); several videos, "
                        "folders or globs make an archive run (--out-dir)")
    p.add_argument("--out", type=Path, metavar="sections.json",
                   help="where to write the sections (written atomically)")
    add_model_arguments(p)
    p.add_argument("--sample-fps", type=parse_sample_fps, default=DEFAULT_SAMPLE_FPS,
                   metavar="N|all",
                   help="frames analysed per second of video; 'all' analyses every frame "
                        f"(default: {DEFAULT_SAMPLE_FPS:g}, i.e. a {1 / DEFAULT_SAMPLE_FPS:.1f} s "
                        "grid: sections last tens of seconds)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help=batch_help())
    p.add_argument("--min-section", type=float, default=SegmenterConfig().min_section_s,
                   metavar="SECONDS",
                   help="shortest organ section kept; shorter ones merge into a neighbour "
                        "(default: %(default)s)")
    p.add_argument("--csv", type=Path, metavar="frames.csv", nargs="?", const=CSV_BESIDE,
                   help="also write per-frame labels and probabilities (with --out-dir: no "
                        "file name, each video's CSV goes beside its sections file)")
    p.add_argument("--quiet", action="store_true", help="no progress line and no table")
    add_archive_arguments(p)


def run(args: argparse.Namespace) -> int:
    if wants_archive(args):
        return run_archive_command(args)
    args.video = single_video(args)
    if not args.video.exists():
        # Checked here as well as in the source so the message comes before model loading.
        raise VideoError(f"video not found: '{args.video}'; check the path")
    out_dir = args.out.parent if str(args.out.parent) else Path(".")
    if not out_dir.is_dir():
        raise OutputError(f"output directory does not exist: '{out_dir}'; create it first")
    for option, path, name in (("--out", args.out, "sections.json"),
                               ("--csv", args.csv, "frames.csv")):
        # Checked now, not found out at the final rename after the whole video.
        if path is not None and path.is_dir():
            raise OutputError(f"{option} '{path}' is a directory; give a file path such as "
                              f"'{path / name}'")
    options = SegmentOptions(
        sample_fps=args.sample_fps,
        batch_size=args.batch,
        segmenter=SegmenterConfig(min_section_s=args.min_section),
    )
    classifier = load_classifier(args)
    log.info("models: %s on %s", ", ".join(map(str, classifier.paths)), classifier.provider)
    csv_writer = FrameCsvWriter(args.csv, classifier.heads) if args.csv else None
    progress = Progress(None, enabled=not args.quiet)
    try:
        result = segment_video(
            args.video, classifier, options,
            on_prediction=csv_writer.write if csv_writer else None,
            on_progress=progress.update_frames,
        )
    except BaseException:
        # A run that raises writes no sections.json, so it leaves no frames.csv either.
        if csv_writer is not None:
            csv_writer.discard()
        raise
    finally:
        progress.close()
        classifier.close()
    csv_error: OutputError | None = None
    if csv_writer is not None:
        try:
            csv_writer.close()
        except OutputError as e:
            csv_error = e  # the optional CSV failing must not cost the sections
    write_sections(args.out, **result_document_fields(result, classifier, options))
    if not args.quiet:
        print(format_sections_table(result.sections))
        print(f"{result.frames_analysed} frames analysed of {result.frames_decoded} decoded in "
              f"{result.wall_s:.1f} s: {result.analysed_fps:.1f} analysed frames/s, "
              f"{result.decoded_fps:.1f} decoded frames/s on {classifier.provider}",
              file=sys.stderr)
    print(f"wrote {args.out}" + ("" if result.complete else " (complete: false)"), file=sys.stderr)
    if csv_error is not None:
        raise csv_error
    if result.error is not None:
        raise result.error
    return 0
