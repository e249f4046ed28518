"""Find organ sections in a recorded video and write them to sections.json.

Decodes the video (any container/codec FFmpeg reads), analyses --sample-fps frames per
second with the quality and organ classifiers, merges the per-frame labels into sections
and writes sections.json atomically. Ctrl+C keeps what was analysed (complete: false).

Without --out the sections go beside the video as VIDEO-stem.sections.json (an existing
one is never replaced unless --overwrite is given); --out - writes the JSON to stdout
(progress and the table stay on stderr). Every output is checked before any frame is
decoded: it may not be the video, a model file or another output, and its folder must
take new files.

--chapters and --report write chapters and the report in the same run (the thumbnails are
kept during analysis, the video is not decoded twice); --dicom-out DIR writes the key
frames and sections as DICOM in the same run (see 'endostream dicom', which also sends).

Several videos, a folder, a glob or --from-list with --out-dir DIR make an archive run
(endostream.archive): one sections file per video, resumable, with archive.json/csv.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable
from pathlib import Path

from endostream.commands.models import model_paths, resolve_model_paths
from endostream.commands.dicom import (
    add_identity_arguments,
    identity_of,
    require_dicom_extra,
    say_written,
)
from endostream.commands.report import add_path_in_report_option
from endostream.commands.segment_archive import (
    CSV_BESIDE,
    add_archive_arguments,
    run_archive_command,
    single_video,
    wants_archive,
)
from endostream.errors import EndostreamError, OutputError, UsageError, VideoError
from endostream.frames import Prediction
from endostream.inference.classifier import Classifier
from endostream.inference.defaults import DEFAULT_DEVICE, DEVICES, batch_help
from endostream.output.frames_csv import FrameCsvWriter
from endostream.output.guard import add_overwrite_option, check_outputs, is_stdout
from endostream.output.progress import Progress
from endostream.output.sections_file import (
    DEFAULT_SECTIONS_SUFFIX,
    build_document,
    write_sections,
)
from endostream.output.table import format_sections_table
from endostream.pipeline.offline import SegmentOptions, result_document_fields, segment_video
from endostream.review.alongside import check_alongside, wants_thumbnails, write_alongside
from endostream.review.outputs import check_output_dir
from endostream.review.procedure import Procedure
from endostream.review.recorder import AnalysisRecorder
from endostream.segmentation.config import SegmenterConfig
from endostream.sources.file import DEFAULT_SAMPLE_FPS

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  endostream segment procedure.mp4                     # writes procedure.sections.json
  endostream segment procedure.mp4 --models endostream.onnx --out sections.json --csv frames.csv
  endostream segment procedure.mp4 --out - --quiet | jq '.sections[].label'

exit codes: 0 done, 2 bad arguments (or an output that would replace an input),
3 video unreadable, 4 model problem, 5 output not writable, 6 decode error part way
(partial result written), 8 an archive run (--out-dir) finished but some videos failed
or are partial (see archive.json), 130 interrupted (partial result written)
"""

#: Suffix of the default output beside the video: ``procedure.mp4`` →
#: ``procedure.sections.json``.
DEFAULT_OUT_SUFFIX = DEFAULT_SECTIONS_SUFFIX

#: Fewer analysed frames than this inside the shortest section (--min-section) and the
#: sample grid, not the video, decides where sections begin and end: warn.
MIN_FRAMES_PER_SECTION = 3

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def parse_sample_fps(text: str) -> float | None:
    """``'5'`` → 5.0; ``'all'`` → None (every frame). Zero, negative and non-finite rates
    are refused (0 once meant "every frame" without saying so).

    >>> parse_sample_fps("2.5"), parse_sample_fps("all")
    (2.5, None)
    """
    if text.strip().lower() in ("all", "every"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(
            f"must be a number of frames per second above 0, got {text!r}; "
            "use 'all' to analyse every frame")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type for durations such as ``--min-section``: a finite number above 0,
    so argparse's message names the option.

    >>> positive_seconds("3")
    3.0
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text!r}")
    return value


def default_out(video: Path) -> Path:
    """``dir/procedure.mp4`` → ``dir/procedure.sections.json``."""
    return video.parent / (video.stem + DEFAULT_OUT_SUFFIX)


def video_argument(text: str, command: str = "segment") -> Path:
    """The VIDEO positional as a path; a URL is refused with what to use instead (the text
    is kept as typed: ``Path`` would collapse ``rtsp://`` into ``rtsp:/``)."""
    if _URL.match(text):
        raise UsageError(f"'{text}' is a URL; {command} reads video files only. For a live "
                         f"stream run: endostream live --camera '{text}' --headless --out "
                         "sections.json; for a recording, download it first")
    path = Path(text)
    if path.is_dir():
        raise VideoError(f"'{path}' is a directory, not a video file; pass one video, or use "
                         "--out-dir DIR to segment a folder")
    if not path.exists():
        raise VideoError(f"video not found: '{path}'; check the path")
    return path


def warn_sparse_sampling(sample_fps: float | None, min_section_s: float) -> None:
    """Warn when fewer than :data:`MIN_FRAMES_PER_SECTION` analysed frames fit in the
    shortest section: boundaries then fall on the sample grid."""
    if sample_fps is not None and sample_fps * min_section_s < MIN_FRAMES_PER_SECTION:
        log.warning("--sample-fps %g analyses one frame every %.3g s, too few for sections of "
                    "--min-section %g s (fewer than %d frames each); boundaries fall on that "
                    "grid: raise --sample-fps to at least %.3g", sample_fps, 1 / sample_fps,
                    min_section_s, MIN_FRAMES_PER_SECTION, MIN_FRAMES_PER_SECTION / min_section_s)


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
    return Classifier.load(resolve_model_paths(args), device=args.device, threads=args.threads)


def _fan_out(listeners: list[Callable[[Prediction], None]]
             ) -> Callable[[Prediction], None] | None:
    if not listeners:
        return None
    if len(listeners) == 1:
        return listeners[0]

    def each(pred: Prediction) -> None:
        for listener in listeners:
            listener(pred)

    return each


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="VIDEO",
                   help="the recorded video (mp4, mkv, avi, mpg, ...); several videos, "
                        "folders or globs make an archive run (--out-dir)")
    p.add_argument("--out", type=Path, default=None, metavar="sections.json",
                   help="where to write the sections (atomically); '-' writes them to stdout "
                        f"(default: VIDEO-stem{DEFAULT_OUT_SUFFIX} beside the video, never "
                        "replacing an existing one unless --overwrite)")
    add_overwrite_option(p, also="an existing default output, or, in an archive run, redo "
                                 "every video even where an up-to-date result exists; also ")
    add_model_arguments(p)
    p.add_argument("--sample-fps", type=parse_sample_fps, default=DEFAULT_SAMPLE_FPS,
                   metavar="N|all",
                   help="frames analysed per second of video; 'all' analyses every frame "
                        f"(default: {DEFAULT_SAMPLE_FPS:g}, i.e. a {1 / DEFAULT_SAMPLE_FPS:.1f} s "
                        "grid: sections last tens of seconds)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help=batch_help())
    p.add_argument("--min-section", type=positive_seconds,
                   default=SegmenterConfig().min_section_s,
                   metavar="SECONDS",
                   help="shortest organ section kept; shorter ones merge into a neighbour "
                        "(default: %(default)s)")
    p.add_argument("--csv", type=Path, metavar="frames.csv", nargs="?", const=CSV_BESIDE,
                   help="also write per-frame labels and probabilities (with --out-dir: no "
                        "file name, each video's CSV goes beside its sections file) "
                        "(default: none)")
    p.add_argument("--chapters", type=Path, metavar="FILE",
                   help="also write the sections as chapters: .vtt, .ffmeta, or a chaptered "
                        "copy of the video (.mkv/.mp4, stream copy); see 'endostream chapters' "
                        "(default: none)")
    p.add_argument("--report", type=Path, metavar="FILE",
                   help="also write the report (.html) or the timeline (.png/.svg), with the "
                        "thumbnails kept during this run; see 'endostream report' "
                        "(default: none)")
    add_path_in_report_option(p)
    p.add_argument("--dicom-out", type=Path, metavar="DIR",
                   help="also write the key frames and sections as DICOM into DIR, with the "
                        "identity options below; see 'endostream dicom' (default: none)")
    add_identity_arguments(p)
    p.add_argument("--quiet", action="store_true",
                   help="no progress line and no table (default: both, on stderr)")
    add_archive_arguments(p)


def check_segment_outputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """Resolve VIDEO and --out and check every output against the inputs, before any model
    is loaded or frame decoded; return ``(video, out)``."""
    video = video_argument(args.video)
    out = args.out
    if out is None:
        out = default_out(video)
        if out.exists() and not args.overwrite:
            raise UsageError(f"'{out}' already exists (the default --out beside the video); "
                             "add --overwrite to replace it, or give --out PATH")
    for option in ("csv", "chapters", "report"):
        if is_stdout(getattr(args, option)):
            raise UsageError(f"--{option} writes a file; only --out can be '-' (stdout)")
    check_outputs({"--out": out, "--csv": args.csv, "--chapters": args.chapters,
                   "--report": args.report},
                  {"VIDEO": video, "--models": model_paths(args)}, overwrite=args.overwrite)
    check_alongside(chapters=args.chapters, report=args.report)
    check_dicom_out(args)
    return video, out


def write_dicom_alongside(doc, out: Path, video: Path, args: argparse.Namespace,
                          recorder: AnalysisRecorder | None) -> EndostreamError | None:
    """--dicom-out after the sections are safe; the error is returned, not raised."""
    from endostream.dicom.write import write_procedure
    folder = Path(args.dicom_out)
    try:
        written = write_procedure(Procedure(out, doc, video),
                                  recorder.frame_table() if recorder else None,
                                  args.dicom_identity, folder)
    except EndostreamError as e:
        return e
    say_written(written, args.dicom_identity, folder)
    return None


IDENTITY_OPTIONS = ("patient_id", "patient_name", "study_uid", "accession", "like")


def check_dicom_out(args: argparse.Namespace) -> None:
    """--dicom-out: the extra, the identity and the folder, before any analysis; the
    identity is kept in ``args.dicom_identity``."""
    args.dicom_identity = None
    if args.dicom_out is None:
        given = [o for o in IDENTITY_OPTIONS if getattr(args, o) is not None]
        if given:
            raise UsageError(f"--{given[0].replace('_', '-')} is only used with --dicom-out "
                             "DIR (or 'endostream dicom')")
        return
    require_dicom_extra()
    args.dicom_identity = identity_of(args)
    folder = check_output_dir(args.dicom_out, option="--dicom-out")
    if any(folder.glob("*.dcm")) and not args.overwrite:
        raise OutputError(f"--dicom-out '{folder}' holds DICOM files already; pass "
                          "--overwrite to replace them or choose another folder")


def run(args: argparse.Namespace) -> int:
    if wants_archive(args):
        return run_archive_command(args)
    args.video = single_video(args)
    video, out = check_segment_outputs(args)
    warn_sparse_sampling(args.sample_fps, args.min_section)
    options = SegmentOptions(
        sample_fps=args.sample_fps,
        batch_size=args.batch,
        segmenter=SegmenterConfig(min_section_s=args.min_section),
    )
    classifier = load_classifier(args)
    log.info("models: %s on %s", ", ".join(map(str, classifier.paths)), classifier.provider)
    csv_writer = FrameCsvWriter(args.csv, classifier.heads) if args.csv else None
    # The recorder keeps the probabilities: the report's panels, and each section's most
    # confident good frame for --dicom-out.
    recorder = AnalysisRecorder(classifier.heads) if args.report or args.dicom_out else None
    listeners = [f for f in (csv_writer and csv_writer.write,
                             recorder and recorder.on_prediction) if f]
    progress = Progress(None, enabled=not args.quiet)
    try:
        result = segment_video(
            video, classifier, options,
            on_prediction=_fan_out(listeners),
            on_progress=progress.update_frames,
            # Thumbnails are kept only for an HTML report (the pictures need none).
            cropper=recorder.cropper if recorder and wants_thumbnails(args.report) else None,
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
    fields = result_document_fields(result, classifier, options)
    to_stdout = is_stdout(out)
    if to_stdout:
        doc = build_document(**fields)
        sys.stdout.write(doc.dumps())
        sys.stdout.flush()
    else:
        doc = write_sections(out, **fields)
    review_error = write_alongside(doc, sections_path=out, video=video,
                                   chapters=args.chapters, report=args.report,
                                   recorder=recorder, path_mode=args.path_in_report)
    dicom_error = None
    if args.dicom_out is not None:
        dicom_error = write_dicom_alongside(doc, out, video, args, recorder)
    if not args.quiet:
        print(format_sections_table(result.sections), file=sys.stderr if to_stdout else None)
        print(f"{result.frames_analysed} frames analysed of {result.frames_decoded} decoded in "
              f"{result.wall_s:.1f} s: {result.analysed_fps:.1f} analysed frames/s, "
              f"{result.decoded_fps:.1f} decoded frames/s on {classifier.provider}",
              file=sys.stderr)
    where = "the sections to stdout" if to_stdout else out
    print(f"wrote {where}" + ("" if result.complete else " (complete: false)"), file=sys.stderr)
    if csv_error is not None:
        raise csv_error
    if review_error is not None:
        raise review_error
    if dicom_error is not None:
        raise dicom_error
    if result.error is not None:
        raise result.error
    return 0
