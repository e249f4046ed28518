"""Which model files a command runs: ``--models`` as given, else the bundled demo model.

Shared by the single-video commands and the archive run, so the demo notice and the
"one combined file or two single-head files" rule are said the same way everywhere.

>>> import argparse
>>> [p.name for p in resolve_model_paths(argparse.Namespace(models=["m.onnx"]))]
['m.onnx']
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from endostream.bundled import DEMO_NOTICE, demo_model_path, require_demo_model
from endostream.errors import UsageError

#: A combined file, or one file per head.
MAX_MODEL_FILES = 2


def model_paths(args: argparse.Namespace) -> list[Path]:
    """The model files a run reads (``--models``, else the bundled one, found or not):
    inputs that no output may replace, known before anything is loaded."""
    return [Path(p) for p in args.models] if args.models else [demo_model_path()]


def resolve_model_paths(args: argparse.Namespace, *, quiet: bool = False) -> list[Path]:
    """``--models``, else the bundled demo model (saying so on stderr unless ``quiet``);
    :class:`UsageError` for more than :data:`MAX_MODEL_FILES` files."""
    paths = [Path(p) for p in args.models] if args.models else []
    if not paths:
        paths = [require_demo_model()]
        if not quiet:
            print(f"endostream: {DEMO_NOTICE}", file=sys.stderr)
    if len(paths) > MAX_MODEL_FILES:
        raise UsageError("--models takes one combined file or two single-head files")
    return paths
