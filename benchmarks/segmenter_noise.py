"""Segmenter settings against noisier classifiers: switching cost and organ floor.

Run: ``python -m benchmarks.segmenter_noise [--sequences K] [--seed N]``.

The procedures are :mod:`benchmarks.segmenter_quality`'s (same generator, same truth).
On top of its noise model, the organ probabilities of usable frames are re-drawn for two
weaker classifiers, as a model trained on other scopes behaves:

- ``mediocre``: right 55–65 % of the time (per procedure), winning probability 0.40–0.60;
- ``weak``: right 45–55 % of the time, winning probability 0.36–0.50.

For each classifier and each ``(switch_cost_per_s, organ_floor)`` it prints the mean
segment F1 and share of time labelled right of the offline segmenter over the procedures
(each row starts from the same seed, so rows see the same procedures). docs/performance.md
("Segmenter") keeps the figures.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np

from benchmarks.segmenter_quality import (
    ORGANS,
    QUALITY,
    GeneratedVideo,
    _organ_vector,
    generate_video,
)
from endostream.evaluation.sections import evaluate_sections
from endostream.segmentation.config import SegmenterConfig
from endostream.segmentation.offline import OfflineSegmenter
from endostream.segmentation.section import UNUSABLE

#: Classifier → (accuracy range, winning-probability range); None keeps the benchmark's.
CLASSIFIERS = {
    "benchmark noise": None,
    "mediocre": ((0.55, 0.65), (0.40, 0.60)),
    "weak": ((0.45, 0.55), (0.36, 0.50)),
}
#: (switch_cost_per_s, organ_floor) pairs tried; (1.0, 0.1) are the defaults.
SETTINGS = ((0.25, 0.1), (0.5, 0.1), (1.0, 0.1), (2.0, 0.1), (1.0, 0.02), (1.0, 0.3),
            (0.5, 0.02), (0.5, 0.3))


def weaker(video: GeneratedVideo, rng: np.random.Generator, accuracy: tuple[float, float],
           peak: tuple[float, float]) -> GeneratedVideo:
    """``video`` with the organ head of usable frames inside organs re-drawn."""
    acc = rng.uniform(*accuracy)
    preds = []
    for p in video.predictions:
        label = next(s.label for s in video.truth if s.start_s <= p.pts_s < s.end_s + 1e-9)
        if label == UNUSABLE or p.probs["quality"][1] < 0.5:
            preds.append(p)
            continue
        true = ORGANS.index(label)
        cls = true if rng.random() < acc else int(rng.choice([c for c in range(3) if c != true]))
        organ = _organ_vector(rng, 3, cls, rng.uniform(*peak))
        preds.append(replace(p, probs={**p.probs, "organ": organ}))
    return replace(video, predictions=preds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.segmenter_noise",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7, help="random seed (default: %(default)s)")
    ap.add_argument("--sequences", type=int, default=10, metavar="K",
                    help="generated procedures per row (default: %(default)s)")
    args = ap.parse_args(argv)
    print("| classifier | switch cost per s | organ floor | segment F1 | time accuracy |")
    print("|---|---|---|---|---|")
    for name, noise in CLASSIFIERS.items():
        for cost, floor in SETTINGS:
            rng = np.random.default_rng(args.seed)
            config = SegmenterConfig(switch_cost_per_s=cost, organ_floor=floor)
            f1, right = [], []
            for _ in range(args.sequences):
                video = generate_video(rng)
                if noise is not None:
                    video = weaker(video, rng, *noise)
                seg = OfflineSegmenter(ORGANS, QUALITY, config)
                for p in video.predictions:
                    seg.update(p)
                m = evaluate_sections(seg.finish(video.end_s, video.end_frame), video.truth)
                f1.append(m["f1"])
                right.append(m["time_accuracy"])
            print(f"| {name} | {cost:g} | {floor:g} | {np.mean(f1):.3f} | {np.mean(right):.3f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
