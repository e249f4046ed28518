"""The ``endostream`` command line: parse → options → run, nothing else.

Each subcommand lives in its own module with ``configure_parser(parser)`` and
``run(args) -> int``; this module wires them up and turns domain errors into one-line
messages and exit codes (see :mod:`endostream.errors`). Tests call :func:`main` in-process.

>>> main(["--version"])  # doctest: +SKIP
endostream 0.1.0
Python 3.11.7 (CPython) on Linux x86_64
...
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from endostream.commands.grammar import Parser, arrange, finish, settle
from endostream.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, EndostreamError

log = logging.getLogger("endostream")

#: Subcommand name → (module, one-line help). Modules are imported only to build their
#: parser; heavy imports (torch, Qt) happen inside their ``run``.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("endostream.commands.demo",
             "generate a synthetic procedure and segment it with the bundled demo model"),
    "segment": ("endostream.commands.segment",
                "find organ sections in a recorded video and write sections.json"),
    "live": ("endostream.commands.live",
             "live overlay (or headless run) on a camera or a file played in real time"),
    "synth": ("endostream.commands.synth",
              "generate a synthetic stand-in procedure video (or a training dataset)"),
    "dataset": ("endostream.commands.dataset",
                "turn reviewed sections files and their videos into a labels CSV for train"),
    "next": ("endostream.commands.next",
             "rank the stretches of analysed videos where the model is least sure"),
    "train": ("endostream.export.train_command",
              "fine-tune an EfficientNetB0 quality or organ classifier (thesis recipe)"),
    "evaluate": ("endostream.commands.evaluate",
                 "score a model on a labelled set, or sections against ground truth"),
    "chapters": ("endostream.commands.chapters",
                 "write sections as chapters (.vtt, .ffmeta) or into a copy (.mkv, .mp4)"),
    "report": ("endostream.commands.report",
               "draw the timeline (.png, .svg) or write a self-contained HTML report"),
    "clips": ("endostream.commands.clips",
              "cut each section (or some labels) into its own video file"),
    "labelstudio": ("endostream.commands.labelstudio",
                    "correct sections in Label Studio: export tasks, import the corrections"),
    "annotate": ("endostream.commands.annotate",
                 "re-encode the recording with the label overlay and timeline burned in"),
    "dicom": ("endostream.commands.dicom",
              "write key frames and sections as DICOM (optionally sent to a PACS)"),
    "export": ("endostream.export.command",
               "turn PyTorch EfficientNetB0 checkpoints into one contract-conforming ONNX file"),
    "doctor": ("endostream.commands.doctor",
               "print library versions, FFmpeg, onnxruntime providers and GPU (for bug reports)"),
    "help": ("endostream.commands.help",
             "a command's help with every option, or the CLI reference (docs/cli.md)"),
}


class _VersionAction(argparse.Action):
    """``--version``: endostream's version and the libraries it runs on (as ``doctor``)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the version of endostream and of the libraries that "
                              "matter (PyAV/FFmpeg, onnxruntime, OpenCV, numpy, torch, "
                              "PyQt5), then exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from endostream.commands.doctor import collect, format_report

        print(format_report(collect()))
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line, with the one grammar of :mod:`endostream.commands.grammar`
    applied to every command and sub-action. A command module may name its help groups
    (``HELP_GROUPS``: title → options) and its rarely used options (``RARE_OPTIONS``,
    left out of ``--help``, shown by ``--help-all``)."""
    parser = Parser(
        prog="endostream",
        description="Organ and image-quality sections for ENT endoscope video. "
                    "Run 'endostream COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        description = (module.__doc__ or help_text).split("\n\n")[0]
        p = sub.add_parser(name, help=help_text, description=description,
                           epilog=getattr(module, "EXAMPLES", None))
        module.configure_parser(p)
        arrange(p, getattr(module, "HELP_GROUPS", {}), getattr(module, "RARE_OPTIONS", ()))
        p.set_defaults(_run=module.run)
    finish(parser)
    sub.choices["help"].set_defaults(root_parser=parser)  # help reads the whole line
    return parser


def _raise_interrupt(signum: int, frame: object) -> None:
    # SIGTERM takes the same path as Ctrl+C: the pipelines catch KeyboardInterrupt, stop
    # their threads and keep what was analysed.
    raise KeyboardInterrupt


def _ffmpeg_logging(verbose: int) -> None:
    """FFmpeg's own log lines ("moov atom not found", "Invalid NAL unit size") would come
    before, and say less than, the tool's one-line error: silence them, whatever PyAV's
    default or another library set, except at -vv (debugging a decoder problem)."""
    try:
        import av.logging
    except ImportError:  # pragma: no cover - av is a core dependency
        return
    if verbose >= 2:
        av.logging.set_level(av.logging.VERBOSE)
        return
    try:
        av.logging.set_level(None)  # PyAV 13+: nothing is logged at all
    except TypeError:  # pragma: no cover - PyAV 12 takes only a level
        av.logging.set_level(av.logging.PANIC)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or argparse's own usage error (2)
        return int(e.code or 0) if not isinstance(e.code, str) else EXIT_USAGE
    verbose = settle(args).verbose
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="endostream: %(levelname)s: %(message)s")
    _ffmpeg_logging(verbose)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return int(args._run(args) or 0)
    except EndostreamError as e:
        print(f"endostream: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("endostream: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # a bug: say so in one line, keep the traceback for -vv
        log.debug("internal error", exc_info=True)
        print(f"endostream: internal error: {type(e).__name__}: {e} "
              "(run with -vv for the traceback and please report it)", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def console_main() -> None:  # pragma: no cover - thin wrapper for the console script
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    console_main()
