"""Is the shared-backbone model at parity with the bundled pair? Over seeds, on held-out
frames and on generated procedures.

The data and settings are the bundled model card's (``endostream/data/MODEL_CARD.md``):
``synth --dataset --per-class 240 --recordings 6`` (seed 0, 320x240), random
initialisation, lr 1e-3, batch 8, ``--val-fraction 0.17``. The recipe (``--recipe
from-quality``): a ``--task quality`` network for ``--quality-steps`` steps (the pair's
150), then ``train --task both --init`` it for ``--steps`` steps with the backbone at
:data:`BACKBONE_LR`, the organ head on :data:`ORGAN_SHARE` of each epoch and the last
epoch kept (``--recipe joint``: both heads from random weights, the earlier recipe), once
per seed, and is exported with ``export --shared``, through the same commands a user
runs (``endostream.cli.main``). Beside it, on the same seed, the pair's own recipe: the
same quality network and a ``--task organ`` network of as many steps, exported together
(the first release's bundled model was one such pair, seed 0). Each model, the bundled
model and ``--pair`` (if given) are scored on

- the card's held-out frames (``synth --dataset --seed 99 --recordings 2 --per-class
  60``, 180 frames): quality accuracy, organ accuracy on all frames and on good frames;
- the ``endostream demo`` video (default procedure, seed 7, 640x360, 25 fps) and
  ``--procedures`` other generated ones (the correction-loop benchmark's varied scripts,
  seeds 11, 12, ..., alternating fields of view): segment F1 (same label, time IoU >=
  0.5), through :func:`~endostream.pipeline.offline.segment_video` at the default rate;
- the quality head on every truly unusable analysed frame of those videos: mean p(good)
  and the share called good, by look (blur, dark, black), which says why a stretch is
  missed.

The parity verdict is the issue's, against ``--pair`` if given, else against the pair
recipe's mean over the same seeds: quality and organ accuracy (all and good frames) no
more than one point below for every seed, and segment F1 not below on any video for any
seed (a higher F1 is not a failure). Figures are one run's; the machine and its load are printed
with them. Run it niced on a shared machine::

    nice -n 5 python -m benchmarks.shared_parity --seeds 3 --steps 600 --json parity.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.loop_world import procedure_spec, run_cli
from benchmarks.machine import describe_machine, load_average, machine_line, write_run_json
from endostream.bundled import demo_model_path
from endostream.commands.synth import parse_size
from endostream.contract import GOOD_LABEL
from endostream.evaluation.datasets import read_dataset
from endostream.evaluation.sections import evaluate_sections
from endostream.inference.classifier import Classifier
from endostream.pipeline.offline import SegmentOptions, segment_video
from endostream.segmentation.config import SegmenterConfig
from endostream.synth import GroundTruth, default_spec, render_dataset, render_procedure
from endostream.synth.scenes import FOV_SHAPES

#: The model card's training set (``synth --dataset``): frames per organ, recordings, seed.
TRAIN_SET = {"per_class": 240, "recordings": 6, "seed": 0}
#: The model card's held-out set.
HELDOUT_SET = {"per_class": 60, "recordings": 2, "seed": 99}
#: ``endostream demo``'s procedure seed; the other procedures take seeds from 11 on.
DEMO_SEED = 7
FIRST_PROCEDURE_SEED = 11
#: Largest accuracy shortfall against the pair that still counts as parity (one point).
ACCURACY_TOLERANCE = 0.01
ACCURACIES = ("quality_acc", "organ_acc_all", "organ_acc_good")
#: Rows scored as they are, not trained: (table name, JSON key).
FIXED_ROWS = (("bundled model", "bundled_model"), ("given pair", "given_pair"))
#: The card's recipe (``--recipe from-quality``): the quality network's steps (the pair's
#: quality network had as many), and the backbone's learning rate while the shared model
#: then trains both heads on it (a third of the heads' 1e-3: the quality features stay,
#: the organ head still moves the backbone; docs/notes/shared-backbone.md).
QUALITY_STEPS = 150
BACKBONE_LR = 3e-4
#: ... and how ``train --task both`` runs: the organ head's share of each epoch, the
#: rate schedule, and which epoch is kept. Cosine decay with the last epoch kept: at a
#: constant 1e-3 and batch 8 the heads' validation accuracy jumps by up to 27 points
#: between neighbouring epochs, so the epoch a run happens to end on, or the one with the
#: lowest summed validation loss, decides the figures (docs/notes/shared-backbone.md). A three in
#: four organ share was tried and was worse (one seed of three collapsed).
ORGAN_SHARE = 0.5
LR_SCHEDULE = "cosine"
KEEP = "last"
RECIPES = ("from-quality", "joint")


@dataclass(frozen=True)
class Inputs:
    """What every model is trained on and scored on."""

    train_csv: Path
    heldout: Path
    videos: tuple[tuple[str, Path, GroundTruth], ...]  #: (name, video, truth)


def build_inputs(work: Path, *, per_class: int, heldout_per_class: int, procedures: int,
                 image_size: tuple[int, int], video_size: tuple[int, int],
                 video_fps: float) -> Inputs:
    """Render the training set, the held-out set, the demo video and the procedures."""
    train_csv = render_dataset(work / "train", per_class=per_class, size=image_size,
                               seed=TRAIN_SET["seed"], recordings=TRAIN_SET["recordings"])
    heldout = render_dataset(work / "heldout", per_class=heldout_per_class, size=image_size,
                             seed=HELDOUT_SET["seed"], recordings=HELDOUT_SET["recordings"])
    width, height = video_size
    videos = [("demo", work / "demo.mp4", render_procedure(
        work / "demo.mp4", default_spec(), width=width, height=height, fps=video_fps,
        seed=DEMO_SEED))]
    for k in range(procedures):
        seed = FIRST_PROCEDURE_SEED + k
        path = work / f"procedure{seed}.mp4"
        videos.append((f"seed {seed}", path, render_procedure(
            path, procedure_spec(np.random.default_rng(seed)), width=width, height=height,
            fps=video_fps, seed=seed, fov=FOV_SHAPES[k % len(FOV_SHAPES)])))
    return Inputs(train_csv, heldout, tuple(videos))


def _common(seed: int, threads: int) -> list[Any]:
    """The card's settings (lr 1e-3, batch 8, ``--val-fraction 0.17``) for ``train``."""
    return ["--lr", "1e-3", "--batch", 8, "--epochs", 1000, "--val-fraction", 0.17,
            "--seed", seed, "--threads", threads, "--device", "cpu", "--overwrite"]


def train_shared(train_csv: Path, out: Path, *, steps: int, seed: int, threads: int,
                 recipe: str = "from-quality", quality_steps: int = QUALITY_STEPS,
                 organ_share: float = ORGAN_SHARE, keep: str = KEEP,
                 lr_schedule: str = LR_SCHEDULE) -> Path:
    """The shared model with the card's settings, then ``export --shared``; the ONNX path.

    ``from-quality`` (the card's recipe): ``train --task quality`` for ``quality_steps``
    steps, then ``train --task both --init`` that network for
    ``steps`` steps, new heads at lr 1e-3 and the backbone at :data:`BACKBONE_LR`.
    ``joint``: ``train --task both`` from random weights for ``steps`` steps, the recipe
    whose quality head stayed unsure (docs/notes/shared-backbone.md).
    ``organ_share``, ``keep`` and ``lr_schedule`` go to ``train --task both`` in either
    recipe; the quality network is trained exactly as the pair's.
    """
    common = _common(seed, threads)
    init: list[Any] = []
    if recipe == "from-quality":
        quality = out.with_name(out.stem + "-quality.pth")
        run_cli(["train", train_csv, "--task", "quality", "--out", quality,
                 "--max-steps", quality_steps, *common])
        init = ["--init", quality, "--backbone-lr", BACKBONE_LR]
    run_cli(["train", train_csv, "--task", "both", "--out", out, "--max-steps", steps,
             "--organ-share", organ_share, "--keep", keep, "--lr-schedule", lr_schedule,
             *init, *common])
    onnx = out.with_suffix(".onnx")
    run_cli(["export", "--shared", out, "--out", onnx, "--overwrite"])
    return onnx


def train_pair(train_csv: Path, quality: Path, out: Path, *, seed: int, threads: int,
               steps: int = QUALITY_STEPS) -> Path:
    """The card's pair for one seed: an organ network of ``steps`` steps beside the quality
    network of the from-quality recipe (trained the card's way), exported together."""
    organ = out.with_name(out.stem + "-organ.pth")
    run_cli(["train", train_csv, "--task", "organ", "--out", organ, "--max-steps", steps,
             *_common(seed, threads)])
    onnx = out.with_suffix(".onnx")
    run_cli(["export", "--quality", quality, "--organ", organ, "--out", onnx, "--overwrite"])
    return onnx


def score_frames(classifier: Classifier, heldout: Path) -> dict[str, float]:
    """Accuracy of both heads on the held-out frames; organ also on good frames only, and
    the quality head's recall of each class."""
    quality = read_dataset(heldout, "quality").with_labels(classifier.heads["quality"])
    organ = read_dataset(heldout, "organ").with_labels(classifier.heads["organ"])
    good = classifier.heads["quality"].index(GOOD_LABEL)
    probs: dict[str, list[np.ndarray]] = defaultdict(list)
    for start in range(0, len(quality), 16):
        batch = np.stack([quality.load(i) for i in range(start, min(start + 16, len(quality)))])
        for head, p in classifier.run(batch).items():
            probs[head].append(p)
    index = {s.path: k for k, s in enumerate(quality.samples)}
    rows = np.array([index[s.path] for s in organ.samples])
    quality_pred = np.concatenate(probs["quality"]).argmax(axis=1)
    organ_right = np.concatenate(probs["organ"]).argmax(axis=1)[rows] == organ.targets
    is_good = quality.targets[rows] == good
    quality_right = quality_pred == quality.targets
    return {"quality_acc": float(np.mean(quality_right)),
            "organ_acc_all": float(np.mean(organ_right)),
            "organ_acc_good": float(np.mean(organ_right[is_good])),
            "quality_recall_good": float(np.mean(quality_right[quality.targets == good])),
            "quality_recall_bad": float(np.mean(quality_right[quality.targets != good]))}


def score_video(classifier: Classifier, video: Path, truth: GroundTruth
                ) -> tuple[dict[str, Any], list[tuple[float, str, float]]]:
    """Segment F1 and boundary error on one video, and (pts_s, look, p(good)) of every
    analysed frame the truth calls bad."""
    good = classifier.heads["quality"].index(GOOD_LABEL)
    bad_frames: list[tuple[float, str, float]] = []

    def collect(prediction: Any) -> None:
        frame = truth.frame_at(prediction.pts_s)
        if frame.quality != GOOD_LABEL:
            bad_frames.append((prediction.pts_s, frame.look,
                               float(prediction.probs["quality"][good])))

    result = segment_video(video, classifier, SegmentOptions(), on_prediction=collect)
    if result.error is not None:
        raise result.error
    metrics = evaluate_sections(result.sections, truth.sections)
    return ({"f1": metrics["f1"], "boundary_error_s": metrics["boundary_error_s"],
             "sections": [(s.label, round(s.start_s, 1), round(s.end_s, 1))
                          for s in result.sections]}, bad_frames)


def score_model(model: Path, inputs: Inputs, threads: int) -> dict[str, Any]:
    """Every figure of one model (see the module's docstring)."""
    with Classifier.load(model, device="cpu", threads=threads) as classifier:
        row: dict[str, Any] = score_frames(classifier, inputs.heldout)
        row["videos"], by_look = {}, defaultdict(list)
        row["demo_bad_frames"] = []
        for name, video, truth in inputs.videos:
            row["videos"][name], bad = score_video(classifier, video, truth)
            for _, look, p_good in bad:
                by_look[look].append(p_good)
            if name == "demo":
                row["demo_bad_frames"] = [(round(t, 2), look, round(p, 3)) for t, look, p in bad]
    row["bad_frames_by_look"] = {
        look: {"frames": len(p), "mean_p_good": round(float(np.mean(p)), 3),
               "called_good": round(float(np.mean(SegmenterConfig().is_good(np.array(p)))), 3)}
        for look, p in sorted(by_look.items())}
    return row


def parity(pair: dict[str, Any], shared: Sequence[dict[str, Any]]) -> dict[str, bool]:
    """The issue's criteria, each over every seed.

    >>> pair = {"quality_acc": .95, "organ_acc_all": .96, "organ_acc_good": 1.0,
    ...         "videos": {"demo": {"f1": 1.0}}}
    >>> seed = {"quality_acc": .97, "organ_acc_all": .88, "organ_acc_good": 1.0,
    ...         "videos": {"demo": {"f1": 0.89}}}
    >>> parity(pair, [seed])
    {'quality_acc': True, 'organ_acc_all': False, 'organ_acc_good': True, 'video demo': False}
    """
    verdict = {k: all(s[k] >= pair[k] - ACCURACY_TOLERANCE for s in shared) for k in ACCURACIES}
    for name, figures in pair["videos"].items():
        verdict[f"video {name}"] = all(s["videos"][name]["f1"] >= figures["f1"] - 1e-9
                                       for s in shared)
    return verdict


def mean_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The figures the verdict reads, averaged over seeds.

    >>> mean_row([{"quality_acc": .8, "organ_acc_all": .9, "organ_acc_good": 1.0,
    ...            "videos": {"demo": {"f1": 0.5}}},
    ...           {"quality_acc": 1.0, "organ_acc_all": .7, "organ_acc_good": 1.0,
    ...            "videos": {"demo": {"f1": 1.0}}}])["videos"]
    {'demo': {'f1': 0.75}}
    """
    row: dict[str, Any] = {k: statistics.fmean(r[k] for r in rows) for k in ACCURACIES}
    row["videos"] = {name: {"f1": statistics.fmean(r["videos"][name]["f1"] for r in rows)}
                     for name in rows[0]["videos"]}
    return row


def _spread(values: Sequence[float]) -> str:
    """Mean ± standard deviation (min–max) of one figure over seeds.

    >>> _spread([0.9, 1.0])
    '0.950 ± 0.071 (0.900–1.000)'
    """
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f} ({min(values):.3f}–{max(values):.3f})"


def table(fixed: Sequence[tuple[str, dict[str, Any]]], shared: Sequence[dict[str, Any]],
          steps: str, pairs: Sequence[dict[str, Any]] = (), pair_steps: str = "") -> str:
    """Markdown: the ``fixed`` (name, figures) rows (bundled model, given pair), each seed
    of the pair's recipe and of the shared model, and mean ± sd (min–max) of each."""
    videos = list(shared[0]["videos"])
    lines = ["| model | quality acc | organ acc, all | organ acc, good | "
             + " | ".join(f"F1 {v}" for v in videos) + " |",
             "|---|" + "---:|" * (3 + len(videos))]

    def row(name: str, r: dict[str, Any]) -> str:
        return (f"| {name} | " + " | ".join(f"{r[k]:.3f}" for k in ACCURACIES) + " | "
                + " | ".join(f"{r['videos'][v]['f1']:.2f}" for v in videos) + " |")

    for name, r in fixed:
        lines.append(row(name, r))
    for name, rows, budget in (("pair recipe", pairs, pair_steps), ("shared", shared, steps)):
        for r in rows:
            lines.append(row(f"{name}, seed {r['seed']}, {budget}", r))
        if len(rows) > 1:
            lines.append(f"| {name}, mean ± sd (min–max) | "
                         + " | ".join(_spread([r[k] for r in rows]) for k in ACCURACIES)
                         + " | " + " | ".join(_spread([r["videos"][v]["f1"] for r in rows])
                                              for v in videos) + " |")
    return "\n".join(lines)


def run(work: Path, *, seeds: Sequence[int], steps: int, recipe: str, quality_steps: int,
        organ_share: float, keep: str, lr_schedule: str, procedures: int, threads: int,
        per_class: int, heldout_per_class: int, image_size: tuple[int, int],
        video_size: tuple[int, int], video_fps: float, pair: Path | None) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    inputs = build_inputs(work, per_class=per_class, heldout_per_class=heldout_per_class,
                          procedures=procedures, image_size=image_size,
                          video_size=video_size, video_fps=video_fps)
    timings["render_s"] = time.perf_counter() - t0
    t = time.perf_counter()
    fixed: dict[str, dict[str, Any]] = {}  # by JSON key (FIXED_ROWS)
    if demo_model_path().is_file():
        fixed["bundled_model"] = score_model(demo_model_path(), inputs, threads)
    if pair is not None:
        fixed["given_pair"] = score_model(pair, inputs, threads)
    timings["score_fixed_s"] = time.perf_counter() - t
    shared: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    for seed in seeds:
        t = time.perf_counter()
        model = train_shared(inputs.train_csv, work / f"shared{seed}.pth", steps=steps,
                             seed=seed, threads=threads, recipe=recipe,
                             quality_steps=quality_steps, organ_share=organ_share, keep=keep,
                             lr_schedule=lr_schedule)
        timings[f"train_seed{seed}_s"] = time.perf_counter() - t
        t = time.perf_counter()
        shared.append({"seed": seed, **score_model(model, inputs, threads)})
        timings[f"score_seed{seed}_s"] = time.perf_counter() - t
        print(f"seed {seed} done: {json.dumps({k: shared[-1][k] for k in ACCURACIES})}",
              file=sys.stderr)
        t = time.perf_counter()  # the pair's recipe on the same seed: its spread, the verdict's
        quality = work / f"shared{seed}-quality.pth"
        if recipe != "from-quality":  # train_shared made none: train the pair's own
            run_cli(["train", inputs.train_csv, "--task", "quality", "--out", quality,
                     "--max-steps", quality_steps, *_common(seed, threads)])
        model = train_pair(inputs.train_csv, quality, work / f"pair{seed}.pth", seed=seed,
                           threads=threads, steps=quality_steps)
        pairs.append({"seed": seed, **score_model(model, inputs, threads)})
        timings[f"pair_seed{seed}_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    reference = fixed.get("given_pair") or mean_row(pairs)
    return {**fixed, "shared": shared,
            "pair_seeds": pairs, "reference": "given pair" if pair else "pair recipe mean",
            "parity": parity(reference, shared),
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "video_seconds": {n: round(t.duration_s, 1) for n, _, t in inputs.videos}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.shared_parity",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, metavar="N",
                    help="training seeds 0..N-1 (default: %(default)s)")
    ap.add_argument("--steps", type=int, default=600,
                    help="optimiser steps of each shared model (default: %(default)s; with "
                         "the quality network's 150, 2.5 times the pair's 2 x 150)")
    ap.add_argument("--recipe", choices=RECIPES, default=RECIPES[0],
                    help="from-quality: a quality network first, then both heads on its "
                         "backbone (--quality-steps, then --steps); joint: both heads "
                         "from random weights (default: %(default)s)")
    ap.add_argument("--quality-steps", type=int, default=QUALITY_STEPS, metavar="N",
                    help="from-quality: steps of the quality network (default: %(default)s)")
    ap.add_argument("--organ-share", type=float, default=ORGAN_SHARE, metavar="FRACTION",
                    help="train --task both --organ-share (default: %(default)s)")
    ap.add_argument("--keep", choices=("best", "last"), default=KEEP,
                    help="train --task both --keep (default: %(default)s)")
    ap.add_argument("--lr-schedule", choices=("constant", "cosine"), default=LR_SCHEDULE,
                    help="train --task both --lr-schedule (default: %(default)s)")
    ap.add_argument("--procedures", type=int, default=5, metavar="K",
                    help="generated procedures besides the demo video (default: %(default)s)")
    ap.add_argument("--per-class", type=int, default=TRAIN_SET["per_class"],
                    help="training frames per organ (default: %(default)s, the card's)")
    ap.add_argument("--heldout-per-class", type=int, default=HELDOUT_SET["per_class"],
                    help="held-out frames per organ (default: %(default)s, the card's)")
    ap.add_argument("--image-size", type=parse_size, default=(320, 240), metavar="WxH",
                    help="still-frame size (default: 320x240)")
    ap.add_argument("--video-size", type=parse_size, default=(640, 360), metavar="WxH",
                    help="video frame size (default: 640x360, the demo's)")
    ap.add_argument("--video-fps", type=float, default=25.0, help="(default: %(default)s)")
    ap.add_argument("--pair", type=Path, metavar="MODEL",
                    help="a pair to judge parity against, e.g. the first release's model "
                         "(default: the pair recipe's mean over the same seeds)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch and onnxruntime threads (default: %(default)s)")
    ap.add_argument("--work", type=Path, metavar="DIR",
                    help="keep every file here (default: a temporary folder, removed)")
    ap.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    if min(args.seeds, args.steps, args.quality_steps) < 1 or args.procedures < 0:
        ap.error("--seeds, --steps and --quality-steps must be at least 1, --procedures at "
                 "least 0")
    machine = describe_machine()
    with tempfile.TemporaryDirectory(prefix="endostream-parity-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        result = run(work, seeds=range(args.seeds), steps=args.steps, recipe=args.recipe,
                     quality_steps=args.quality_steps, organ_share=args.organ_share,
                     keep=args.keep, lr_schedule=args.lr_schedule,
                     procedures=args.procedures, threads=args.threads,
                     per_class=args.per_class, heldout_per_class=args.heldout_per_class,
                     image_size=args.image_size, video_size=args.video_size,
                     video_fps=args.video_fps, pair=args.pair)
    machine["loadavg_end"] = load_average()
    steps = (f"{args.quality_steps} + {args.steps} steps" if args.recipe == "from-quality"
             else f"{args.steps} steps")
    print(f"## Shared model against the pair: {args.seeds} seed(s), recipe {args.recipe}, "
          f"{steps} x batch 8, organ share {args.organ_share:g}, lr {args.lr_schedule}, "
          f"keep {args.keep}, "
          f"videos {result['video_seconds']} s\n")
    fixed = [(name, result[key]) for name, key in FIXED_ROWS if key in result]
    print(table(fixed, result["shared"], steps, result["pair_seeds"],
                f"2 x {args.quality_steps} steps"))
    print("\nQuality head: held-out recall of good and bad frames; truly unusable analysed "
          "frames of the videos by look (mean p(good), share called good):")
    for name, row in (*fixed,
                      *((f"pair recipe, seed {r['seed']}", r) for r in result["pair_seeds"]),
                      *((f"shared, seed {r['seed']}", r) for r in result["shared"])):
        print(f"- {name}: recall good {row['quality_recall_good']:.2f}, bad "
              f"{row['quality_recall_bad']:.2f}; " + "; ".join(
            f"{look} {v['mean_p_good']:.2f}, {100 * v['called_good']:.0f} % of {v['frames']}"
            for look, v in row["bad_frames_by_look"].items()))
    failed = [k for k, ok in result["parity"].items() if not ok]
    print(f"\nParity against the {result['reference']} ({ACCURACY_TOLERANCE:g} accuracy, "
          "F1 not lower, every seed): "
          + ("holds" if not failed else "fails on " + ", ".join(failed)))
    print(f"Timings (s): {result['timings_s']}. {machine_line(machine)}.")
    if args.json is not None:
        write_run_json(args.json, result, machine, args)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
