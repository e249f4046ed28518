"""Running one corpus case through the real CLI, and checking the run against the case.

:func:`run_case` runs ``python -m endostream segment VIDEO --out --csv --quiet`` in a
subprocess with a hard timeout and collects what it left (:class:`RunResult`);
:func:`problems` lists every way that differs from the case's expectation (empty: as
expected). The cases themselves live in :mod:`.corpus`.

>>> r = RunResult(3, 0.5, "endostream: error: video not found: 'm.mp4'; check the path",
...               out=Path("s.json"), csv=Path("f.csv"))
>>> r.summary
"endostream: error: video not found: 'm.mp4'; check the path"
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the cases import this module
    from .corpus import Case

#: What a case expects: the run succeeds, fails with one error line, or fails part way and
#: keeps what it analysed.
PROCESSED, ERROR, PARTIAL = "processed", "error", "partial"
#: Hard limit for one ``endostream segment`` run; the longest case takes ~1.5 s on 2 cores.
RUN_TIMEOUT_S = 60.0
#: Prefix of every error line of the CLI.
ERROR_PREFIX = "endostream: error: "



@dataclass
class RunResult:
    """One ``endostream segment`` run on a case's input."""

    exit_code: int | None  #: None: killed at the timeout
    seconds: float
    stderr: str
    out: Path  #: the --out path (in a directory of its own)
    csv: Path  #: the --csv path (same directory)
    doc: dict | None = None  #: sections.json, if written and parseable
    csv_rows: list[dict] | None = None
    leftovers: list[str] = field(default_factory=list)  #: other files in the output dir

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def summary(self) -> str:
        """The first stderr line that is not the 'wrote' report, or a short outcome."""
        if self.exit_code is None:
            return "timed out"
        for line in self.stderr_lines:
            if not line.startswith("wrote "):
                return line
        if self.doc is not None:
            labels = ", ".join(f"{s['label']} {s['start_s']:g}-{s['end_s']:g} s"
                               for s in self.doc["sections"])
            return f"complete: {str(self.doc['complete']).lower()}; {labels or 'no sections'}"
        return ""


def run_case(video: Path, models: Sequence[Path], out_dir: Path, *,
             timeout_s: float = RUN_TIMEOUT_S) -> RunResult:
    """Run ``python -m endostream segment VIDEO`` with ``--out``/``--csv`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out, csv_path = out_dir / "sections.json", out_dir / "frames.csv"
    cmd = [sys.executable, "-m", "endostream", "segment", str(video),
           "--models", *map(str, models), "--out", str(out), "--csv", str(csv_path),
           "--quiet", "--threads", "1"]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _, err = proc.communicate(timeout=timeout_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        code = None
    result = RunResult(code, time.monotonic() - started, err, out, csv_path)
    if out.exists():
        try:
            result.doc = json.loads(out.read_text(encoding="utf-8"))
        except ValueError:
            result.doc = None
    if csv_path.exists():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            result.csv_rows = list(csv.DictReader(fh))
    result.leftovers = sorted(p.name for p in out_dir.iterdir()
                              if p not in (out, csv_path))
    return result


def problems(case: Case, r: RunResult) -> list[str]:
    """Every way ``r`` differs from what ``case`` expects; empty when it is as expected."""
    found: list[str] = []
    if r.exit_code is None:
        return [f"no result within {RUN_TIMEOUT_S:g} s"]
    if r.exit_code != case.exit_code:
        found.append(f"exit code {r.exit_code}, expected {case.exit_code}")
    if "Traceback" in r.stderr:
        found.append("stderr has a traceback")
    if "internal error" in r.stderr:
        found.append("stderr reports an internal error")
    if r.leftovers:
        found.append(f"stray files next to the outputs: {r.leftovers}")
    lines = r.stderr_lines
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    if case.expect == ERROR:
        if len(lines) != 1 or len(errors) != 1:
            found.append(f"stderr is not exactly one error line: {lines}")
        elif case.message not in errors[0]:
            found.append(f"error line lacks {case.message!r}: {errors[0]}")
        if r.out.exists() or r.csv.exists():
            found.append("an output was written for a failed run")
        return found
    if case.expect == PARTIAL:
        if not lines or not lines[-1].startswith(ERROR_PREFIX) or len(errors) != 1:
            found.append(f"stderr does not end in one error line: {lines}")
        elif case.message not in lines[-1]:
            found.append(f"error line lacks {case.message!r}: {lines[-1]}")
    elif errors:
        found.append(f"error on stderr: {errors}")
    found += _document_problems(case, r)
    if not found and case.check is not None:
        try:
            case.check(r)
        except AssertionError as e:
            found.append(f"check failed: {e}")
    return found


def _document_problems(case: Case, r: RunResult) -> list[str]:
    import jsonschema

    from endostream.output.sections_file import schema

    if r.doc is None:
        return ["no readable sections.json"]
    try:
        jsonschema.validate(r.doc, schema())
    except jsonschema.ValidationError as e:
        return [f"sections.json breaks the schema: {e.message}"]
    found = []
    complete = case.expect == PROCESSED
    if r.doc["complete"] is not complete:
        found.append(f"complete is {r.doc['complete']}, expected {complete}")
    analysed = r.doc["analysis"]["frames_analysed"]
    if analysed < 1:
        found.append("no frame analysed")
    secs = r.doc["sections"]
    if not secs:
        found.append("no sections")
    else:
        if secs[0]["start_frame"] != 0 or secs[0]["start_s"] != 0:
            found.append(f"first section starts at frame {secs[0]['start_frame']}")
        if any(a["end_frame"] + 1 != b["start_frame"] or a["end_s"] != b["start_s"]
               for a, b in zip(secs, secs[1:], strict=False)):
            found.append("sections leave gaps or overlap")
        frames = r.doc["source"]["frames"]
        if complete and secs[-1]["end_frame"] != frames - 1:
            found.append(f"last section ends at frame {secs[-1]['end_frame']} of {frames}")
        if complete and abs(secs[-1]["end_s"] - r.doc["source"]["duration_s"]) > 1e-3:
            found.append(f"last section ends at {secs[-1]['end_s']} s, the video at "
                         f"{r.doc['source']['duration_s']} s")
    if r.csv_rows is None:
        found.append("no frames.csv")
    elif len(r.csv_rows) != analysed:
        found.append(f"frames.csv has {len(r.csv_rows)} rows for {analysed} analysed frames")
    elif not complete and secs and r.csv_rows and \
            secs[-1]["end_frame"] != int(r.csv_rows[-1]["frame"]):
        found.append(f"partial sections end at frame {secs[-1]['end_frame']}, not at the last "
                     f"analysed frame {r.csv_rows[-1]['frame']}")
    return found


def outcome(case: Case, r: RunResult) -> str:
    """``ok: <summary>`` or ``UNEXPECTED: <problems>``, for the Markdown table."""
    found = problems(case, r)
    text = r.summary.replace("|", "\\|")
    return f"ok: {text}" if not found else "UNEXPECTED: " + "; ".join(found).replace("|", "\\|")
