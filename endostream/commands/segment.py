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
import sys
from dataclasses import dataclass
from pathlib import Path

from endostream.commands.common import (
    ModelChoice,
    add_model_arguments,
    add_path_in_report_option,
    add_segmenter_arguments,
    parse_sample_fps,
    segment_options,
    video_argument,
)
from endostream.commands.dicom_options import DicomOut, add_identity_arguments, say_written
from endostream.commands.segment_archive import (
    CSV_BESIDE,
    add_archive_arguments,
    run_archive_command,
    single_video,
    wants_archive,
)
from endostream.corrections.editor import editor_html
from endostream.errors import UsageError
from endostream.inference.classifier import Classifier
from endostream.inference.defaults import batch_help
from endostream.output.document import SectionsDocument
from endostream.output.guard import add_overwrite_option, check_outputs, is_stdout, say_wrote
from endostream.output.progress import Progress
from endostream.output.sections_file import DEFAULT_SECTIONS_SUFFIX
from endostream.output.table import format_sections_table
from endostream.pipeline.files import AlongsideWriter, VideoFiles, Written, segment_to_files
from endostream.pipeline.offline import SegmentOptions, SegmentResult
from endostream.procedure import Procedure
from endostream.review.alongside import check_alongside, wants_thumbnails, write_alongside
from endostream.review.recorder import AnalysisRecorder
from endostream.sources.file import DEFAULT_SAMPLE_FPS

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  endostream segment procedure.mp4                     # writes procedure.sections.json
  endostream segment procedure.mp4 --models endostream.onnx --out sections.json --csv frames.csv

exit codes: 0 done, 2 bad arguments or outputs, 3 video unreadable, 4 model problem,
5 output not writable, 6 decode error part way and 130 interrupted (partial result
written), 8 an archive run finished but some videos failed (see archive.json)
"""

#: Suffix of the default output beside the video: ``procedure.mp4`` →
#: ``procedure.sections.json``.
DEFAULT_OUT_SUFFIX = DEFAULT_SECTIONS_SUFFIX

#: Fewer analysed frames than this inside the shortest section (--min-section) and the
#: sample grid, not the video, decides where sections begin and end: warn.
MIN_FRAMES_PER_SECTION = 3

def default_out(video: Path) -> Path:
    """``dir/procedure.mp4`` → ``dir/procedure.sections.json``."""
    return video.parent / (video.stem + DEFAULT_OUT_SUFFIX)


def warn_sparse_sampling(sample_fps: float | None, min_section_s: float) -> None:
    """Warn when fewer than :data:`MIN_FRAMES_PER_SECTION` analysed frames fit in the
    shortest section: boundaries then fall on the sample grid."""
    if sample_fps is not None and sample_fps * min_section_s < MIN_FRAMES_PER_SECTION:
        log.warning("--sample-fps %g analyses one frame every %.3g s, too few for sections of "
                    "--min-section %g s (fewer than %d frames each); boundaries fall on that "
                    "grid: raise --sample-fps to at least %.3g", sample_fps, 1 / sample_fps,
                    min_section_s, MIN_FRAMES_PER_SECTION, MIN_FRAMES_PER_SECTION / min_section_s)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="VIDEO",
                   help="the recording (mp4, mkv, avi, ...); several, a folder or a glob "
                        "make an archive run (--out-dir)")
    p.add_argument("--out", type=Path, default=None, metavar="sections.json",
                   help="where the sections go; '-': stdout (default: VIDEO-stem"
                        f"{DEFAULT_OUT_SUFFIX} beside the video)")
    add_overwrite_option(p, also="; archive runs redo finished videos")
    add_model_arguments(p)
    p.add_argument("--sample-fps", type=parse_sample_fps, default=DEFAULT_SAMPLE_FPS,
                   metavar="N|all",
                   help="frames per second analysed where the answer can change, or 'all' "
                        f"(default: {DEFAULT_SAMPLE_FPS:g})")
    p.add_argument("--dense", action="store_true",
                   help="every --sample-fps frame (default: coarse to fine, 1/s first)")
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help=batch_help())
    add_segmenter_arguments(p)
    p.add_argument("--csv", type=Path, metavar="frames.csv", nargs="?", const=CSV_BESIDE,
                   help="also write per-frame labels (--out-dir: no name, beside each "
                        "sections file) (default: none)")
    p.add_argument("--chapters", type=Path, metavar="FILE",
                   help="also write chapters: .vtt, .ffmeta, or a chaptered copy .mkv/.mp4 "
                        "(default: none)")
    p.add_argument("--report", type=Path, metavar="FILE",
                   help="also write the report .html or the timeline .png/.svg "
                        "(default: none)")
    add_path_in_report_option(p, has_no_player=False)
    p.add_argument("--dicom-out", type=Path, metavar="DIR",
                   help="also write the key frames and sections as DICOM into DIR, with the "
                        "identity options below; see 'endostream dicom' (default: none)")
    add_identity_arguments(p)
    add_archive_arguments(p)


#: ``--help`` groups (endostream.commands.grammar.arrange); the rest stay under "options".
HELP_GROUPS = {
    "outputs": ["--out", "--out-dir", "--overwrite", "--csv", "--chapters", "--report",
                "--dicom-out"],
    "analysis": ["--models", "--device", "--threads", "--sample-fps", "--dense", "--batch",
                 "--min-section"],
}
#: Left out of ``--help``, shown by ``--help-all`` and in docs/cli.md.
RARE_OPTIONS = ["--threads", "--batch", "--path-in-report", "--dicom-out", "--patient-id",
                "--patient-name", "--study-uid", "--accession", "--like", "--root",
                "--from-list", "--engine", "--ray-address"]


@dataclass(frozen=True)
class OneVideo:
    """``segment VIDEO``, parsed once from the command line: what to read, what to write,
    how to analyse."""

    video: Path
    out: Path
    csv: Path | None
    chapters: Path | None
    report: Path | None
    path_in_report: str
    overwrite: bool
    quiet: bool
    model: ModelChoice
    options: SegmentOptions
    dicom: DicomOut | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OneVideo:
        """Parse, resolve VIDEO and the default --out, and refuse what cannot work (the
        --dicom-out folder and identity included)."""
        video = video_argument(single_video(args))
        out = args.out
        if out is None:
            out = default_out(video)
            if out.exists() and not args.overwrite:
                raise UsageError(f"'{out}' already exists (the default --out beside the "
                                 "video); add --overwrite to replace it, or give --out PATH")
        for option in ("csv", "chapters", "report"):
            if is_stdout(getattr(args, option)):
                raise UsageError(f"--{option} writes a file; only --out can be '-' (stdout)")
        return cls(video=video, out=out, csv=args.csv, chapters=args.chapters,
                   report=args.report, path_in_report=args.path_in_report,
                   overwrite=args.overwrite, quiet=args.quiet,
                   model=ModelChoice.from_args(args), options=segment_options(args),
                   dicom=DicomOut.from_args(args))

    def check_outputs(self) -> None:
        """Every output against the inputs, before any model is loaded or frame decoded."""
        check_outputs({"--out": self.out, "--csv": self.csv, "--chapters": self.chapters,
                       "--report": self.report},
                      {"VIDEO": self.video, "--models": self.model.input_paths()},
                      overwrite=self.overwrite)
        check_alongside(chapters=self.chapters, report=self.report)


def run(args: argparse.Namespace) -> int:
    if wants_archive(args):
        return run_archive_command(args)
    job = OneVideo.from_args(args)
    job.check_outputs()
    warn_sparse_sampling(job.options.sample_fps, job.options.segmenter.min_section_s)
    with job.model.load() as classifier:
        log.info("models: %s on %s", ", ".join(map(str, classifier.paths)), classifier.provider)
        return _segment_one(job, classifier)


def _segment_one(job: OneVideo, classifier: Classifier) -> int:
    # The recorder keeps the probabilities: the report's panels, and each section's most
    # confident good frame for --dicom-out.
    recorder = AnalysisRecorder(classifier.heads, job.options.segmenter.good_threshold) \
        if job.report or job.dicom else None
    alongside = []
    if job.chapters or job.report:
        alongside.append(_review_writer(job, recorder))
    if job.dicom is not None:
        alongside.append(_dicom_writer(job, recorder))

    def summary(result: SegmentResult, written: Written) -> None:
        to_stdout = is_stdout(job.out)
        if not job.quiet:  # the table is the finding: stdout, unless the document went there
            print(format_sections_table(result.sections), file=sys.stderr if to_stdout else None)
            print(f"{result.frames_analysed} frames analysed of {result.frames_decoded} decoded "
                  f"in {result.wall_s:.1f} s: {result.analysed_fps:.1f} analysed frames/s, "
                  f"{result.decoded_fps:.1f} decoded frames/s on {classifier.provider}",
                  file=sys.stderr)
        say_wrote("the sections to stdout" if to_stdout else job.out,
                  "" if result.complete else "complete: false")
        if written.csv is not None:
            say_wrote(written.csv)

    segment_to_files(
        job.video, classifier, job.options,
        VideoFiles(sections=job.out, csv=job.csv, alongside=tuple(alongside)),
        on_prediction=recorder.on_prediction if recorder else None,
        # Thumbnails are kept only for an HTML report (the pictures need none).
        on_frame=recorder.on_frame if recorder and wants_thumbnails(job.report) else None,
        progress=Progress(None, enabled=not job.quiet),
        on_written=summary)
    return 0


def _review_writer(job: OneVideo, recorder: AnalysisRecorder | None) -> AlongsideWriter:
    """--chapters and --report, with the corrections editor in the report's page."""
    def write(doc: SectionsDocument, sections: Path) -> None:
        error = write_alongside(doc, sections_path=sections, video=job.video,
                                chapters=job.chapters, report=job.report, recorder=recorder,
                                path_mode=job.path_in_report, editor=editor_html)
        if error is not None:
            raise error
    return write


def _dicom_writer(job: OneVideo, recorder: AnalysisRecorder | None) -> AlongsideWriter:
    """--dicom-out DIR, after the sections are safe."""
    dicom = job.dicom

    def write(doc: SectionsDocument, sections: Path) -> None:
        from endostream.dicom.write import write_procedure
        written = write_procedure(Procedure(sections, doc, job.video),
                                  recorder.frame_table() if recorder else None,
                                  dicom.identity, dicom.folder)
        say_written(written, dicom.identity, dicom.folder)
    return write
