"""What the commands share: argument types, shared options, and typed options from them.

Not a command itself (``endostream.cli`` lists the commands): commands import from here,
never from one another. Each command parses its ``argparse.Namespace`` once into typed
values (:class:`ModelChoice`, :class:`~endostream.pipeline.offline.SegmentOptions`) and
passes those on; the Namespace itself goes no further than its command's ``run``.

>>> import argparse
>>> choice = ModelChoice.from_args(argparse.Namespace(models=["m.onnx"], device="cpu",
...                                                   threads=None))
>>> [p.name for p in choice.resolve()]
['m.onnx']
>>> parse_sample_fps("2.5"), parse_sample_fps("all")
(2.5, None)
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from endostream.bundled import DEMO_NOTICE, demo_model_path, require_demo_model
from endostream.errors import UsageError, VideoError
from endostream.inference.classifier import Classifier, check_model_count
from endostream.inference.defaults import DEFAULT_DEVICE, DEVICES
from endostream.pipeline.offline import SegmentOptions
from endostream.review.report import DEFAULT_PATH_MODE, PATH_MODES
from endostream.segmentation.config import SegmenterConfig

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


# --- argument types ----------------------------------------------------------------------


def parse_sample_fps(text: str) -> float | None:
    """``'5'`` → 5.0; ``'all'`` → None (every frame). Zero, negative and non-finite rates
    are refused (0 once meant "every frame" without saying so).

    >>> parse_sample_fps("all") is None
    True
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


# --- shared options ------------------------------------------------------------------------


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--models``, ``--device`` and ``--threads``, shared by every command that runs the
    classifiers (read back with :meth:`ModelChoice.from_args`)."""
    p.add_argument("--models", action="extend", nargs="+", metavar="PATH", type=Path,
                   help="one combined ONNX file, or two single-head files (quality, organ); "
                        "default: the bundled demo model")
    p.add_argument("--device", choices=DEVICES, default=DEFAULT_DEVICE, metavar="DEVICE",
                   help="auto (CUDA if a GPU works, else CPU), cpu, cuda, tensorrt (fp16 "
                        "engine) (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU inference threads (default: all cores)")


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    """SECTIONS and ``--video``, shared by the review commands."""
    p.add_argument("sections", type=Path, metavar="SECTIONS",
                   help="the sections.json written by 'endostream segment'")
    p.add_argument("--video", type=Path, metavar="PATH",
                   help="the recording (default: source.path of SECTIONS, as written or "
                        "next to SECTIONS)")


def add_path_in_report_option(p: argparse.ArgumentParser, *, has_no_player: bool = True) -> None:
    """``--path-in-report``, shared by ``report`` and ``segment --report``; its advice names
    ``--no-player`` only where the command has it (``report``)."""
    share = ("use --no-player for a report to share" if has_no_player else
             "for a report to share, write it with 'endostream report SECTIONS --out "
             "report.html --no-player'")
    p.add_argument("--path-in-report", choices=PATH_MODES, default=DEFAULT_PATH_MODE,
                   help="how much of the video's path the HTML report shows: the full "
                        "path, the file name only, or nothing (folder and file names often "
                        "name the patient; default: %(default)s). A player still links the "
                        f"video relative to the report: {share}")


def add_segmenter_arguments(p: argparse.ArgumentParser) -> None:
    """``--min-section``, shared by ``segment`` and ``live`` (read back with
    :func:`segmenter_config`)."""
    p.add_argument("--min-section", type=positive_seconds,
                   default=SegmenterConfig().min_section_s,
                   metavar="SEC",
                   help="shortest organ section kept; shorter ones merge into a neighbour "
                        "(default: %(default)s)")


def segmenter_config(args: argparse.Namespace) -> SegmenterConfig:
    """The segmenter settings of :func:`add_segmenter_arguments`."""
    return SegmenterConfig(min_section_s=args.min_section)


def segment_options(args: argparse.Namespace) -> SegmentOptions:
    """``--sample-fps``, ``--batch``, ``--min-section`` and ``--dense`` (where the command
    has it) as typed options."""
    return SegmentOptions(sample_fps=args.sample_fps, batch_size=args.batch,
                          segmenter=segmenter_config(args),
                          coarse_fps=None if getattr(args, "dense", False)
                          else SegmentOptions.coarse_fps)


@dataclass(frozen=True)
class ModelChoice:
    """The models a command runs: ``--models`` as given (empty: the bundled demo model),
    ``--device`` and ``--threads``."""

    given: tuple[Path, ...]
    device: str = DEFAULT_DEVICE
    threads: int | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ModelChoice:
        return cls(tuple(Path(p) for p in args.models or ()), args.device, args.threads)

    def input_paths(self) -> list[Path]:
        """The model files a run reads (the bundled one, found or not, when none is
        given): inputs that no output may replace, known before anything is loaded."""
        return list(self.given) if self.given else [demo_model_path()]

    def resolve(self, *, quiet: bool = False) -> list[Path]:
        """``--models``, else the bundled demo model (saying so on stderr unless
        ``quiet``); :class:`UsageError` for more files than a model has
        (:func:`~endostream.inference.classifier.check_model_count`)."""
        if self.given:
            check_model_count(self.given)
            return list(self.given)
        if not quiet:
            print(f"endostream: {DEMO_NOTICE}", file=sys.stderr)
        return [require_demo_model()]

    def load(self, *, quiet: bool = False) -> Classifier:
        """The classifier (a context manager: ``with choice.load() as classifier``)."""
        return Classifier.load(self.resolve(quiet=quiet), device=self.device,
                               threads=self.threads)
