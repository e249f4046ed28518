"""The command-line frame every benchmark script shares: parse, run, write JSON, print.

``python -m benchmarks`` and ``python -m benchmarks.soak`` differ in what they measure,
not in how they start and end: arguments parsed without raising, logging set up, the
result document written atomically (to ``--json`` or a timestamped file in the cache),
Markdown on stdout, the JSON path on stderr, the figures written into the documentation
where ``--write-docs`` asks (:mod:`benchmarks.doc`), and one line with an exit code for an
endostream error or a Ctrl+C that came before there was anything to report.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from endostream.errors import EndostreamError
from endostream.output.atomic import write_json_atomic

from . import doc as docs_page
from . import inputs
from .machine import load_average

Doc = dict[str, Any]


def default_json_path(stem: str) -> Path:
    """``<cache>/runs/<stem>-<UTC time>.json``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return inputs.CACHE_DIR / "runs" / f"{stem}-{stamp}.json"


def document_head(schema: str, args: argparse.Namespace, machine: Doc) -> Doc:
    """The keys every result document starts with; stamps the machine's closing load."""
    machine["loadavg_end"] = load_average()
    return {"schema": schema,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "argv": list(args.argv), "machine": machine}


def run_script(prog: str, stem: str, parser: argparse.ArgumentParser,
               run: Callable[[argparse.Namespace], Doc], markdown: Callable[[Doc], str],
               argv: Sequence[str] | None, exit_code: Callable[[Doc], int] = lambda d: 0
               ) -> int:
    """Run one benchmark script; returns its exit code (``exit_code(doc)`` on success)."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format=f"{prog}: %(message)s")
    try:
        doc = run(args)
        out = args.json or default_json_path(stem)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out, doc)
    except EndostreamError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted before there was anything to report", file=sys.stderr)
        return 130
    text = markdown(doc)
    sys.stdout.write(text)
    print(f"{prog}: results written to {out}", file=sys.stderr)
    try:
        page = docs_page.after_run(prog, stem, args, doc, text)
    except EndostreamError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return e.exit_code
    if page is not None:
        print(f"{prog}: figures written into {page}", file=sys.stderr)
    return exit_code(doc)
