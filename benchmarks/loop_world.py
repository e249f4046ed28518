"""One seed's world for the correction-loop benchmark, and the steps a reviewer takes in it.

Everything runs through the commands a user runs (``endostream.cli.main``): ``segment``
(with ``--csv``, so ``next`` can rank), ``next``, ``dataset``, ``train`` and ``export``. The
reviewer's "corrected" sections are the truth of generated procedures
(:mod:`endostream.synth`), saved as the report's edit mode saves them.

A world holds, for one seed: ``pool`` training procedures the reviewer may correct, ``tests``
procedures never trained on, all seen through the clinic's scope (:data:`CLINIC_SCOPE`),
and each starting model's old data: the weak model's (still frames through other scopes,
each organ through its own, so it learns the scope for the organ) and data drawn as the
bundled model's was (``synth --dataset``: every organ through random fields of view in
true colours). The clinic's scope is not the one either model knew.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from endostream.cli import main as cli
from endostream.corrections.rules import reviewed_document
from endostream.evaluation.sections import evaluate_sections, pool
from endostream.output.document import read_sections
from endostream.output.sections_file import write_document
from endostream.segmentation.section import UNUSABLE
from endostream.synth import ProcedureSpec, render_dataset, render_procedure
from endostream.synth.dataset import parse_scopes
from endostream.synth.spec import Burst, Segment

#: The clinic's scope, through which every procedure of the world is seen: a full-frame
#: video endoscope with a warm light. The bundled model's augmentation covers fields of
#: view and mild colour casts; through this one it labels about 90 % of the time right
#: (against 99.6 % through a round field in true colours), which leaves the loop
#: something to teach it (docs/performance.md, "The correction loop").
CLINIC_SCOPE = "full:warm"
#: The weak model's scopes: none is the clinic's.
WEAK_SCOPES = "ear=full:cool,nose=rounded:warm,vocal_folds=full:grey"
ORGANS = ("ear", "nose", "vocal_folds")
#: Unusable stretches between organs: (look, seconds).
UNUSABLE_STRETCHES = (("blur", 2.0), ("dark", 2.0), ("black", 2.5))
SIZE = (320, 240)
VIDEO_FPS = 10.0


def procedure_spec(rng: np.random.Generator) -> ProcedureSpec:
    """Three to four organ stretches of 7–11 s, most separated by an unusable one."""
    organs = list(rng.permutation(ORGANS))
    if rng.random() < 0.5:
        organs.append(organs[int(rng.integers(0, 2))])
    segments: list[Segment] = []
    for k, organ in enumerate(organs):
        if k and (rng.random() < 0.7 or organ == organs[k - 1]):
            look, seconds = UNUSABLE_STRETCHES[int(rng.integers(len(UNUSABLE_STRETCHES)))]
            segments.append(Segment(UNUSABLE, seconds, look=look))
        duration = float(rng.uniform(7.0, 11.0))
        bursts = (Burst(float(rng.uniform(2.0, duration - 2.0)), 0.5, "blur"),) \
            if rng.random() < 0.5 else ()
        segments.append(Segment(str(organ), duration, bursts=bursts))
    return ProcedureSpec(tuple(segments))


def run_cli(argv: Sequence[Any]) -> None:
    code = cli([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"benchmark step failed (exit {code}): endostream "
                         f"{' '.join(map(str, argv))}")


@dataclass(frozen=True)
class Budget:
    """Fine-tuning steps in proportion to the data: ``passes`` over its training images,
    at least ``min_steps``, so more corrections never mean fewer passes over each of them;
    ``lr`` the learning rate (from random weights a model needs about 1e-3; the bundled
    model, fine-tuned, 1e-4: at 1e-3 twenty steps undo what it knew)."""

    passes: float
    min_steps: int
    batch: int
    lr: float = 1e-4

    def steps(self, images: int) -> int:
        return max(self.min_steps, math.ceil(self.passes * images / self.batch))


@dataclass
class World:
    work: Path
    seed: int
    pool: list[tuple[Path, Any]]  #: (video, truth) the reviewer may correct
    tests: list[tuple[Path, Any]]  #: (video, truth) never trained on
    old_data: Path  #: the weak model's training set (labels.csv inside)
    bundled_data: Path  #: data drawn as the bundled model's was (labels.csv inside)

    def old(self, start: str) -> Path:
        """The old data of a starting model (``weak`` or ``bundled``): its control."""
        return self.old_data if start == "weak" else self.bundled_data


def make_world(work: Path, *, seed: int, pool_size: int, tests: int,
               scope: str = CLINIC_SCOPE) -> World:
    """``scope``: SHAPE:PALETTE of the procedures (``synth --fov``, ``--palette``)."""
    fov, _, palette = scope.partition(":")
    rng = np.random.default_rng(seed)
    videos = []
    for k in range(pool_size + tests):
        video = work / f"{'train' if k < pool_size else 'test'}{k}.mp4"
        truth = render_procedure(video, procedure_spec(rng), width=SIZE[0], height=SIZE[1],
                                 fps=VIDEO_FPS, seed=seed * 100 + k, fov=fov,
                                 palette=palette or "none")
        videos.append((video, truth))
    old = work / "old_data"
    render_dataset(old, per_class=24, size=SIZE, seed=seed, recordings=3, bad_fraction=0.3,
                   image_format="jpg", scopes=parse_scopes(WEAK_SCOPES))
    bundled = work / "bundled_data"
    render_dataset(bundled, per_class=24, size=SIZE, seed=seed, recordings=3,
                   image_format="jpg")
    return World(work, seed, videos[:pool_size], videos[pool_size:], old, bundled)


def frames_of(labels_csv: Path) -> int:
    """Training images a labels CSV gives: one per still-image row, and for a row that
    points into a video (``start_s``, ``end_s``, ``fps``, as ``dataset`` writes) its
    frames in that stretch."""
    import csv

    total = 0
    with open(labels_csv, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row.get("fps") and row.get("start_s") not in (None, ""):
                span = float(row["end_s"]) - float(row["start_s"])
                total += max(int(span * float(row["fps"])), 1)
            else:
                total += 1
    return total


def train(data: Path, out: Path, *, budget: Budget, seed: int, threads: int,
          init: Path | None = None) -> tuple[int, float]:
    """Fine-tune (or, without ``init``, train from random weights); (steps, seconds)."""
    labels = data if data.suffix == ".csv" else data / "labels.csv"
    steps = budget.steps(frames_of(labels))
    started = time.perf_counter()
    run_cli(["train", data, "--task", "both", "--out", out, "--lr", budget.lr, "--batch",
             budget.batch, "--max-steps", steps, "--epochs", 1000, "--patience", 0, "--keep",
             "last", "--val-fraction", 0, "--no-calibrate", "--seed", seed, "--threads",
             threads, "--device", "cpu", "--overwrite", *(["--init", init] if init else [])])
    return steps, time.perf_counter() - started


def export(checkpoint: Path, out: Path) -> Path:
    run_cli(["export", "--shared", checkpoint, "--out", out, "--parity-frames", 2,
             "--overwrite"])
    return out


def segment(model: Path, video: Path, out: Path, *, csv: Path | None = None) -> Path:
    run_cli(["segment", video, "--models", model, "--device", "cpu", "--out", out, "--quiet",
             "--overwrite", *(["--csv", csv] if csv else [])])
    return out


def correct(predicted: Path, truth_sections: Sequence[Any], out: Path) -> int:
    """The reviewer: the model's file with every section replaced by the truth, saved as
    the report's edit mode saves it; returns how many predicted sections were wrong."""
    original = read_sections(predicted)
    wrong = evaluate_sections(original.sections, truth_sections)["unmatched_pred"]
    write_document(out, reviewed_document(original, truth_sections,
                                          tool="benchmarks.correction_loop"))
    return int(wrong)


def score(model: Path, tests: Sequence[tuple[Path, Any]], work: Path, name: str
          ) -> dict[str, Any]:
    """Segment F1, boundary errors and time labelled right, pooled over ``tests``."""
    results = []
    for k, (video, truth) in enumerate(tests):
        out = segment(model, video, work / f"{name}-test{k}.sections.json")
        results.append(evaluate_sections(read_sections(out).sections, truth.sections))
    pooled = pool(results)
    return {k: v for k, v in pooled.items() if not k.endswith("errors_s")}


def segment_pool(model: Path, world: World, work: Path) -> list[tuple[Path, Path]]:
    """The model's sections and per-frame CSV of every procedure of the pool."""
    found = []
    for k, (video, _) in enumerate(world.pool):
        csv = work / f"pool{k}.frames.csv"
        found.append((segment(model, video, work / f"pool{k}.sections.json", csv=csv), csv))
    return found


def review_order(found: Sequence[tuple[Path, Path]], *, pick: str, seed: int,
                 work: Path) -> list[int]:
    """The order in which the reviewer takes the pool's procedures (``found``: sections
    and CSV of each): ``next``'s (the procedure of each ranked stretch, first appearance
    first; those never listed after, in pool order) or ``random`` (seeded)."""
    if pick == "random":
        rng = np.random.default_rng(seed + 7919)
        return [int(k) for k in rng.permutation(len(found))]
    sections = [s for s, _ in found]
    csvs = [c for _, c in found]
    out = work / "next"
    run_cli(["next", *sections, *[a for c in csvs for a in ("--csv", c)], "--out-dir", out,
             "--count", 50, "--no-thumbnails", "--overwrite"])
    listed = json.loads((out / "next.json").read_text(encoding="utf-8"))["stretches"]
    index = {str(s): k for k, s in enumerate(sections)}
    order: list[int] = []
    for stretch in listed:
        k = index.get(stretch["sections"])
        if k is not None and k not in order:
            order.append(k)
    return order + [k for k in range(len(found)) if k not in order]
