"""The correction loop, measured: does training on a reviewer's corrections help?

Plays the reviewer on generated procedures whose truth is known (``endostream.synth``),
through the same commands a user runs (``endostream.cli.main``):

1. **a deliberately weak model**: ``train --task both`` from random weights for a few
   steps on still frames seen through other scopes (each organ its own field of view and
   colour cast, none of them the procedures'): the clinic's scope is not the one the model
   knew;
2. it ``segment`` s the training procedures; the reviewer's "corrected" sections are the
   truth, written into those sections files (what a reviewer fixing every section saves);
3. for each N: ``dataset`` on the first N corrected files → ``train --task both --init
   weak.pth`` (fine-tuning, the same small budget for every N) → ``export --shared`` →
   ``segment`` the test procedures, never used for training;
4. a control, N = 0: the same fine-tuning budget on the weak model's own data, which tells
   the gain of corrections from the gain of more steps;
5. segment F1 (same label, time IoU ≥ 0.5) and boundary errors pooled over the test
   procedures, per model.

Figures depend on the budget and the seed (one run, no spread); the machine and its load
are printed with them. Run it niced on a shared machine::

    nice -n 10 python -m benchmarks.correction_loop --json loop.json
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import describe_machine, load_average, machine_line, write_run_json
from endostream.cli import main as cli
from endostream.corrections.rules import reviewed_document
from endostream.evaluation.sections import evaluate_sections, pool
from endostream.output.document import read_sections
from endostream.output.sections_file import write_document
from endostream.segmentation.section import UNUSABLE
from endostream.synth import ProcedureSpec, render_dataset, render_procedure
from endostream.synth.spec import Burst, Segment

log = logging.getLogger(__name__)

#: The weak model's scopes: none is the procedures' (round field of view, true colours).
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


def run_cli(argv: Sequence[str]) -> None:
    code = cli([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"benchmark step failed (exit {code}): endostream {' '.join(argv)}")


def _segment(model: Path, video: Path, out: Path) -> Path:
    run_cli(["segment", video, "--models", model, "--device", "cpu", "--out", out, "--quiet",
             "--overwrite"])
    return out


def _correct(predicted: Path, truth_sections: Sequence[Any], out: Path) -> int:
    """The reviewer: the model's file with every section replaced by the truth, saved as
    the report's edit mode saves it (a review record beside the model's sections);
    returns how many predicted sections were wrong (not matched by a true one)."""
    original = read_sections(predicted)
    wrong = evaluate_sections(original.sections, truth_sections)["unmatched_pred"]
    write_document(out, reviewed_document(original, truth_sections,
                                          tool="benchmarks.correction_loop"))
    return int(wrong)


def _train(data: Path, out: Path, *, steps: int, batch: int, seed: int, threads: int,
           init: Path | None = None) -> float:
    started = time.perf_counter()
    run_cli(["train", data, "--task", "both", "--out", out, "--lr", "1e-3", "--batch", batch,
             "--max-steps", steps, "--epochs", 1000, "--patience", 0, "--keep", "last",
             "--val-fraction", 0, "--no-calibrate", "--seed", seed, "--threads", threads,
             "--device", "cpu", "--overwrite", *(["--init", init] if init else [])])
    return time.perf_counter() - started


def _export(checkpoint: Path, out: Path) -> None:
    run_cli(["export", "--shared", checkpoint, "--out", out, "--parity-frames", 2, "--overwrite"])


def _score(model: Path, tests: Sequence[tuple[Path, Any]], work: Path, name: str
           ) -> dict[str, Any]:
    results = []
    for k, (video, truth) in enumerate(tests):
        out = _segment(model, video, work / f"{name}-test{k}.sections.json")
        results.append(evaluate_sections(read_sections(out).sections, truth.sections))
    pooled = pool(results)
    return {k: v for k, v in pooled.items() if not k.endswith("errors_s")}


def run(work: Path, *, counts: Sequence[int], tests: int, weak_steps: int, steps: int,
        batch: int, seed: int, threads: int, fps: float, margin_s: float) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    n_train = max(counts)
    videos = []
    for k in range(n_train + tests):
        video = work / f"{'train' if k < n_train else 'test'}{k}.mp4"
        truth = render_procedure(video, procedure_spec(rng), width=SIZE[0], height=SIZE[1],
                                 fps=VIDEO_FPS, seed=seed * 100 + k)
        videos.append((video, truth))
    train_videos, test_videos = videos[:n_train], videos[n_train:]
    weak_data = work / "weak_data"
    render_dataset(weak_data, per_class=24, size=SIZE, seed=seed, recordings=3,
                   bad_fraction=0.3, image_format="jpg",
                   scopes=_scopes(WEAK_SCOPES))
    timings["render_s"] = time.perf_counter() - t0

    weak = work / "weak.pth"
    timings["train_weak_s"] = _train(weak_data, weak, steps=weak_steps, batch=batch,
                                     seed=seed, threads=threads)
    _export(weak, work / "weak.onnx")
    rows: dict[str, dict[str, Any]] = {"weak model (before)": _score(
        work / "weak.onnx", test_videos, work, "weak")}

    corrected, wrong = [], 0
    for k, (video, truth) in enumerate(train_videos):
        predicted = _segment(work / "weak.onnx", video, work / f"train{k}.sections.json")
        fixed = work / f"train{k}.reviewed.sections.json"
        wrong += _correct(predicted, truth.sections, fixed)
        corrected.append(fixed)

    control = work / "control.pth"
    timings["train_control_s"] = _train(weak_data, control, steps=steps, batch=batch,
                                        seed=seed, threads=threads, init=weak)
    _export(control, work / "control.onnx")
    rows[f"N = 0: +{steps} steps on its own data"] = _score(
        work / "control.onnx", test_videos, work, "control")

    for n in counts:
        labels = work / f"corrected{n}" / "labels.csv"
        labels.parent.mkdir(exist_ok=True)
        run_cli(["dataset", *corrected[:n], "--out", labels, "--fps", fps,
                 "--margin", margin_s, "--overwrite"])
        model = work / f"fine{n}.pth"
        timings[f"train_n{n}_s"] = _train(labels, model, steps=steps, batch=batch, seed=seed,
                                          threads=threads, init=weak)
        _export(model, work / f"fine{n}.onnx")
        rows[f"N = {n}: +{steps} steps on corrections"] = _score(
            work / f"fine{n}.onnx", test_videos, work, f"fine{n}")
    timings["total_s"] = time.perf_counter() - t0
    return {"rows": rows, "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "test_seconds": round(sum(t.duration_s for _, t in test_videos), 1),
            "train_seconds": [round(t.duration_s, 1) for _, t in train_videos],
            "wrong_sections_corrected": wrong}


def _scopes(text: str) -> dict[str, tuple[str, str]]:
    from endostream.synth.dataset import parse_scopes

    return parse_scopes(text)


def table(rows: dict[str, dict[str, Any]]) -> str:
    def fmt(v: float | None, spec: str = ".2f") -> str:
        return "–" if v is None else format(v, spec)

    lines = ["| model | segment F1 | median boundary error (s) | time labelled right | "
             "sections found / true |", "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {fmt(r['f1'], '.3f')} | {fmt(r['boundary_error_s'])} | "
                     f"{fmt(100 * r['time_accuracy'], '.1f')} % | {r['n_pred']} / "
                     f"{r['n_true']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.correction_loop",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default="1,2,4,8", metavar="N,...",
                    help="numbers of corrected procedures to train on (default: %(default)s)")
    ap.add_argument("--tests", type=int, default=2, metavar="K",
                    help="test procedures, never trained on (default: %(default)s)")
    ap.add_argument("--weak-steps", type=int, default=100,
                    help="training steps of the weak model (default: %(default)s)")
    # 15 steps showed nothing; 300, the budget that showed the corrections' gain
    # (docs/performance.md, "The correction loop"), take about 6 minutes per model on two cores.
    ap.add_argument("--steps", type=int, default=300,
                    help="fine-tuning steps per model (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=8, help="(default: %(default)s)")
    ap.add_argument("--fps", type=float, default=2.0,
                    help="dataset --fps: frames per second sampled in sections (default: "
                         "%(default)s)")
    ap.add_argument("--margin", type=float, default=0.5,
                    help="dataset --margin in seconds (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default: %(default)s)")
    ap.add_argument("--work", type=Path, metavar="DIR",
                    help="keep every file here (default: a temporary folder, removed)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    counts = sorted({int(c) for c in args.counts.split(",") if c.strip()})
    if not counts or counts[0] < 1:
        ap.error("--counts: positive numbers, e.g. 1,2,4")
    machine = describe_machine()
    with tempfile.TemporaryDirectory(prefix="endostream-loop-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = run(work, counts=counts, tests=args.tests, weak_steps=args.weak_steps,
                     steps=args.steps, batch=args.batch, seed=args.seed,
                     threads=args.threads, fps=args.fps, margin_s=args.margin)
    machine["loadavg_end"] = load_average()
    print(f"## Correction loop: seed {args.seed}, weak model {args.weak_steps} steps, "
          f"fine-tuning {args.steps} steps x batch {args.batch}, corrected procedures "
          f"{result['train_seconds']} s, {args.tests} test procedures "
          f"({result['test_seconds']} s)\n")
    print(table(result["rows"]))
    print(f"\nThe reviewer fixed {result['wrong_sections_corrected']} wrong sections. Timings "
          f"(s): {result['timings_s']}. {machine_line(machine)}.")
    if args.json is not None:
        write_run_json(args.json, result, machine, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
