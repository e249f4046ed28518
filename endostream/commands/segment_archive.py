"""The archive side of ``endostream segment``: many videos into one output directory.

``segment`` takes this path when given ``--out-dir``, ``--from-list``, several paths, a
directory or a glob; ``segment VIDEO --out F`` is untouched. This module only turns the
command line into an :class:`~endostream.archive.run.ArchiveConfig`; the work is in
:mod:`endostream.archive`.

>>> main(["segment", "archive/", "--out-dir", "results/"])  # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from endostream.archive.inputs import discover, has_glob, read_list
from endostream.archive.local import ModelSpec
from endostream.archive.resume import archive_root
from endostream.archive.run import ENGINES, ArchiveConfig, run_archive
from endostream.commands.common import ModelChoice, segment_options
from endostream.errors import UsageError

#: ``--csv`` given without a path: each video's CSV goes beside its sections file.
CSV_BESIDE = True


def add_archive_arguments(p: argparse.ArgumentParser) -> None:
    """The options of an archive run (``segment PATH... --out-dir DIR``)."""
    g = p.add_argument_group("archives (several videos, a folder or a glob)")
    g.add_argument("--out-dir", type=Path, metavar="DIR",
                   help="archive run: every video's results here; a rerun skips finished "
                        "ones (default: none)")
    g.add_argument("--root", type=Path, metavar="DIR",
                   help="lay results out at each video's path relative to DIR (every video "
                        "must be under it) (default: the root recorded in DIR's archive.json "
                        "by an earlier run, else the inputs' common folder)")
    g.add_argument("--from-list", type=Path, metavar="FILE",
                   help="also take the paths in FILE, one per line (relative to FILE's folder) "
                        "(default: none)")
    g.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: this process, one video after another on every core; ray: "
                        "a Ray cluster, one worker per --threads CPUs (default 1) or per GPU "
                        "(pip install 'endostream[cluster]') (default: %(default)s)")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="the Ray cluster to join (e.g. ray://head:10001 or auto); default: "
                        "start a local one")


def wants_archive(args: argparse.Namespace) -> bool:
    """Whether the command line asks for an archive run rather than one video.

    One path with ``--out`` is always the single-video run, exactly as before (a folder
    there is refused as not a video)."""
    paths = [Path(p) for p in args.paths]
    if args.out_dir or args.from_list or len(paths) > 1:
        return True
    if not paths:
        raise UsageError("give the video to segment: segment VIDEO --out sections.json "
                         "(or folders, globs or --from-list with --out-dir DIR)")
    return args.out is None and (paths[0].is_dir()
                                 or (not paths[0].exists() and has_glob(str(paths[0]))))


def single_video(args: argparse.Namespace) -> str:
    """The one video of ``segment VIDEO [--out F]`` as typed, after refusing archive-only
    options."""
    if args.csv is CSV_BESIDE:
        raise UsageError("--csv needs a file name for one video: --csv frames.csv")
    for option, given in (("--engine", args.engine != "local"),
                          ("--ray-address", args.ray_address), ("--root", args.root)):
        if given:
            raise UsageError(f"{option} is for archive runs (--out-dir DIR); drop it, or "
                             "give --out-dir")
    return args.paths[0]


def run_archive_command(args: argparse.Namespace) -> int:
    if args.out_dir is None:
        raise UsageError("several videos need --out-dir DIR (one sections file per video)")
    if args.out is not None:
        raise UsageError("--out names one file; with several videos use --out-dir only")
    if args.csv is not None and args.csv is not CSV_BESIDE:
        raise UsageError("with --out-dir, give --csv without a file name: each video's CSV "
                         "goes beside its sections file")
    if args.ray_address and args.engine != "ray":
        raise UsageError("--ray-address needs --engine ray")
    if getattr(args, "dicom_out", None) is not None:  # one patient's files per export
        raise UsageError("--dicom-out is for one video; run 'endostream dicom SECTIONS "
                         "--out-dir DIR' for each sections file of the archive")
    paths = [Path(p) for p in args.paths]
    if args.from_list is not None:
        paths += read_list(args.from_list)
    models = ModelChoice.from_args(args).resolve(quiet=args.quiet)
    config = ArchiveConfig(
        out_dir=args.out_dir,
        model=ModelSpec(tuple(Path(os.path.abspath(m)) for m in models), device=args.device,
                        threads=args.threads),
        options=segment_options(args),
        csv=args.csv is CSV_BESIDE,
        force=args.overwrite,
        quiet=args.quiet,
        engine=args.engine,
        ray_address=args.ray_address,
    )
    jobs = discover(paths, out_dir=args.out_dir, csv=config.csv,
                    root=archive_root(args.root, args.out_dir))
    return run_archive(jobs, config)
