"""The correction loop as a new user runs it: the README's own commands, in its order.

Reads the command lines of the README's "The correction loop" block and runs each through
the real command line (:func:`endostream.cli.main`), globs expanded as a shell does, in a
folder holding the video the ``segment`` line names, a generated procedure seen through
the clinic's scope (a full-frame one with a warm light,
:data:`benchmarks.loop_world.CLINIC_SCOPE`), and the video the ``evaluate`` line names,
another one, corrected earlier (its ``--truth``: the truth, saved as the report saves
it). Before ``dataset`` a reviewer corrects the first video and leaves the file the report
would save in the folder: here the truth saved under the page's name; the walk's tests do
it in the report itself, in headless chromium (``tests/test_new_user_loop.py``), and in a
real Label Studio through ``labelstudio push``/``pull`` (``tests/test_labelstudio_api.py``).

Then it scores the model before (the bundled one) and after (``tuned.onnx``): segment F1
and time labelled right against the correction on the corrected video, and against the
truth on the held-out one, which was never trained on::

    python -m benchmarks.readme_loop            # the README's arguments: minutes
    python -m benchmarks.readme_loop --quick    # a small dataset, 2 steps: proves the walk

Nothing of the README's lines is changed but what ``--quick`` makes smaller (``synth
--per-class``/``--recordings``, ``train --max-steps``) and ``--threads``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import doc
from benchmarks import loop_world as lw
from benchmarks.machine import describe_machine, load_average, machine_line, write_run_json
from endostream.bundled import require_demo_model
from endostream.cli import main as cli
from endostream.corrections.editor import saved_name
from endostream.corrections.rules import reviewed_document
from endostream.evaluation.sections import evaluate_sections
from endostream.output.document import read_sections
from endostream.output.sections_file import write_document
from endostream.procedure import load_procedure
from endostream.synth import GroundTruth, render_procedure

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## The correction loop"
#: The procedures' seeds. Through the clinic's scope the bundled model labels most
#: generated procedures right; these are ones it does not, so the reviewer has work to do
#: and the kept-out one room to get better: the procedure's (seed 5: a quarter of its time
#: wrong, segment F1 0.5; 1 of seeds 1-6) and the kept-out one's (seed 17: F1 0.67; 2 of
#: seeds 5-26 below 1).
DEFAULT_SEED = 5
DEFAULT_KEPT_SEED = 17
#: What ``--quick`` changes, per command: option → value (added where the line lacks it).
QUICK = {"synth": {"--per-class": "8", "--recordings": "2"},
         "train": {"--max-steps": "2", "--batch": "4"}}

#: A reviewer: given the work folder and the truth of the procedure, leaves its corrected
#: sections file (``*.corrected.sections.json``) in the folder.
Reviewer = Callable[[Path, GroundTruth], None]


def readme_commands(readme: Path = README) -> list[list[str]]:
    """The ``endostream`` lines of the first ``sh`` block under :data:`SECTION`, each as
    its arguments (without ``endostream``)."""
    text = readme.read_text(encoding="utf-8")
    if SECTION not in text:
        raise SystemExit(f"{readme} has no '{SECTION}' section")
    block = text.split(SECTION, 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    lines = [shlex.split(line) for line in block.splitlines() if line.startswith("endostream ")]
    if not lines:
        raise SystemExit(f"{readme}: no endostream command under '{SECTION}'")
    return [line[1:] for line in lines]


def option(argv: Sequence[str], name: str) -> str:
    """The value of option ``name`` in ``argv``."""
    return argv[list(argv).index(name) + 1]


def expand(argv: Sequence[str], folder: Path) -> list[str]:
    """``argv`` with each glob replaced by the files it matches in ``folder``, sorted, as
    bash does (a glob that matches nothing stays as it is).

    >>> expand(["dataset", "*.json", "--out", "x"], Path("/nonexistent"))
    ['dataset', '*.json', '--out', 'x']
    """
    out: list[str] = []
    for arg in argv:
        found = sorted(str(p.relative_to(folder)) for p in folder.glob(arg)) \
            if any(c in arg for c in "*?[") else []
        out += found or [arg]
    return out


def with_options(argv: Sequence[str], options: dict[str, str]) -> list[str]:
    """``argv`` with each option's value replaced, or the option added.

    >>> with_options(["train", "x", "--epochs", "5"], {"--epochs": "1", "--seed": "3"})
    ['train', 'x', '--epochs', '1', '--seed', '3']
    """
    out = list(argv)
    for name, value in options.items():
        if name in out:
            out[out.index(name) + 1] = value
        else:
            out += [name, value]
    return out


@contextlib.contextmanager
def working_in(folder: Path) -> Iterator[None]:
    """The README's lines name files relative to where the user stands."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def file_reviewer(work: Path, truth: GroundTruth) -> None:
    """The reviewer as the benchmark plays it: every section replaced by the truth, saved
    as the report's edit mode saves it, under the name the page gives it (the browser
    test shows the page saves the same)."""
    (sections,) = work.glob("*.sections.json")
    original = read_sections(sections)
    name = saved_name(load_procedure(sections), video_shown=False)
    write_document(work / name, reviewed_document(original, truth.sections,
                                                  tool="benchmarks.readme_loop"))


@dataclass
class Walk:
    """What the walk ran and found."""

    commands: list[list[str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    corrected: Path | None = None  #: the reviewer's file


@dataclass(frozen=True)
class Files:
    """The files the README's lines name."""

    video: Path  #: the procedure the user segments and corrects
    kept: Path  #: the corrected recording kept out of training
    kept_truth: Path  #: its corrected sections file
    model: Path  #: what export writes

    @classmethod
    def named_by(cls, lines: Sequence[Sequence[str]]) -> Files:
        first = {line[0]: line for line in reversed(lines)}
        try:
            return cls(Path(first["segment"][1]), Path(option(first["evaluate"], "--video")),
                       Path(option(first["evaluate"], "--truth")),
                       Path(option(first["export"], "--out")))
        except (KeyError, ValueError, IndexError) as e:
            raise SystemExit(f"the README's loop lacks a segment, export or evaluate line "
                             f"naming its files ({e})") from None


def prepare(work: Path, files: Files, *, seed: int, kept_seed: int
            ) -> tuple[GroundTruth, GroundTruth]:
    """The procedure and the kept recording (the clinic's scope), and the kept one's
    correction; returns both truths. Each video is the ``k``-th procedure of its seed's
    world (:mod:`benchmarks.loop_world`): the first of ``seed``'s, the second of
    ``kept_seed``'s."""
    fov, _, palette = lw.CLINIC_SCOPE.partition(":")
    truths = []
    for k, (video, world_seed) in enumerate(((files.video, seed), (files.kept, kept_seed))):
        rng = np.random.default_rng(world_seed)
        specs = [lw.procedure_spec(rng) for _ in range(k + 1)]
        (work / video).parent.mkdir(parents=True, exist_ok=True)
        truths.append(render_procedure(work / video, specs[k], width=lw.SIZE[0],
                                       height=lw.SIZE[1], fps=lw.VIDEO_FPS,
                                       seed=world_seed * 100 + k, fov=fov, palette=palette))
    held = lw.segment(require_demo_model(), work / files.kept,
                      work / files.kept.with_suffix(".sections.json"))
    write_document(work / files.kept_truth,
                   reviewed_document(read_sections(held), truths[1].sections,
                                     tool="benchmarks.readme_loop"))
    return truths[0], truths[1]


def _score(found: Path, truth: Sequence[Any]) -> dict[str, float]:
    r = evaluate_sections(read_sections(found).sections, truth)
    return {"f1": float(r["f1"]), "time_accuracy": float(r["time_accuracy"])}


def walk(work: Path, *, reviewer: Reviewer = file_reviewer, quick: bool = False,
         threads: int = 2, seed: int = DEFAULT_SEED, kept_seed: int = DEFAULT_KEPT_SEED,
         readme: Path = README, score: bool = True) -> Walk:
    """Run the README's loop in ``work`` (made if missing), then (``score``) the models
    before and after on both videos; raises :class:`SystemExit` naming a line that
    failed."""
    work.mkdir(parents=True, exist_ok=True)
    result = Walk()
    lines = readme_commands(readme)
    files = Files.named_by(lines)
    t0 = time.perf_counter()
    truth, held_truth = prepare(work, files, seed=seed, kept_seed=kept_seed)
    result.seconds["prepare"] = time.perf_counter() - t0
    reviewed = False
    with working_in(work):
        for argv in lines:
            command = argv[0]
            if command == "dataset" and not reviewed:
                t0 = time.perf_counter()
                reviewer(work, truth)
                result.seconds["review"] = time.perf_counter() - t0
                reviewed = True
            argv = expand(argv, work)
            if quick:
                argv = with_options(argv, QUICK.get(command, {}))
            if command == "train":
                argv = with_options(argv, {"--threads": str(threads)})
            result.commands.append(argv)
            print(f"$ endostream {shlex.join(argv)}", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            code = cli(argv)
            result.seconds[command] = result.seconds.get(command, 0.0) + \
                time.perf_counter() - t0
            if code != 0:
                raise SystemExit(f"README line failed (exit {code}): endostream "
                                 f"{shlex.join(argv)}")
        if not score:
            return result
        (saved,) = work.glob("*.corrected.sections.json")
        result.corrected = saved
        corrected = read_sections(saved).sections
        bundled = require_demo_model()
        for model, name in ((bundled, "before"), (work / files.model, "after")):
            on_it = work / "scored" / f"{name}.procedure.sections.json"
            on_held = work / "scored" / f"{name}.kept.sections.json"
            on_it.parent.mkdir(exist_ok=True)
            lw.segment(model, work / files.video, on_it)
            lw.segment(model, work / files.kept, on_held)
            result.scores[f"corrected video, {name}"] = _score(on_it, corrected)
            result.scores[f"kept-out video, {name}"] = _score(on_held, held_truth.sections)
    return result


def table(result: Walk) -> str:
    lines = ["| video | model | segment F1 | time labelled right (%) |", "|---|---|---:|---:|"]
    for key, s in result.scores.items():
        video, model = key.split(", ")
        name = "bundled" if model == "before" else "tuned.onnx"
        lines.append(f"| {video} | {name} | {s['f1']:.3f} | {100 * s['time_accuracy']:.1f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.readme_loop",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="a small synth dataset and 2 training steps: proves the walk, "
                         "measures nothing")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help="the procedures' (default: %(default)s, a procedure the bundled model "
                         "gets wrong for a quarter of its time)")
    ap.add_argument("--kept-seed", type=int, default=DEFAULT_KEPT_SEED,
                    help="the kept-out recording's (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch threads for train (default: %(default)s)")
    ap.add_argument("--work", type=Path, metavar="DIR",
                    help="the user's folder, kept (default: a temporary one, removed)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    doc.add_arguments(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    machine = describe_machine()

    with tempfile.TemporaryDirectory(prefix="endostream-readme-loop-") as tmp:
        result = walk(args.work or Path(tmp), quick=args.quick, threads=args.threads,
                      seed=args.seed, kept_seed=args.kept_seed)
    machine["loadavg_end"] = load_average()
    train_s = result.seconds.get("train", 0.0)
    markdown = "\n".join([
        "## The README's correction loop, walked",
        "",
        table(result),
        "",
        f"One corrected procedure; `train` took {train_s / 60:.1f} min "
        f"(whole walk {sum(result.seconds.values()) / 60:.1f} min).",
    ])
    print(markdown)
    print(f"\n{machine_line(machine)}.")
    if args.json is not None:
        write_run_json(args.json, {"scores": result.scores, "seconds": result.seconds,
                                   "commands": result.commands}, machine, args)
    if args.write_docs is not None:
        doc.write_docs(args.docs_file, "readme_loop" if args.write_docs == "-" else
                       args.write_docs, markdown,
                       doc.command_line("benchmarks.readme_loop", args.argv), machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
