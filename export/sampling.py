"""Training epochs: balanced classes drawn with replacement, and synthetic bad frames.

**Balanced classes**: :func:`epoch_plan` draws each epoch's items with replacement so that
every class is drawn equally often (per-class weight ``1 / count``), the torch-free
equivalent of ``WeightedRandomSampler``; each item carries its own augmentation seed, so an
epoch is the same with any number of loader workers and after ``--resume``.

**Synthetic bad frames** (quality task, as the thesis did): :func:`degrade` blurs a good
frame with a Gaussian of random sigma, changes its brightness at random, or both, on the
cropped uint8 image; :func:`epoch_plan` makes ``synth_bad`` of the bad class out of such
frames (all of it when the set holds no real bad frames).

Like :mod:`.dataset`, this module needs numpy and OpenCV only.

>>> rng = np.random.default_rng(0)
>>> img = rng.integers(0, 255, (224, 224, 3), dtype=np.uint8)
>>> bool(degrade(img, rng, mode="blur").std() < img.std())
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from endostream.evaluation.datasets import BAD, GOOD, LabelledSet

#: Default share of the bad class drawn from synthesised frames when real bad ones exist.
DEFAULT_SYNTH_BAD = 0.5

#: How a synthetic bad frame is made, and how often: blur only, brightness only, both.
SYNTH_MODES = ("blur", "brightness", "both")
SYNTH_MODE_P = (1 / 3, 1 / 3, 1 / 3)
#: Gaussian blur sigma range in pixels of the 224x224 crop (uniform). 2 px already wipes
#: out the fine texture (vessels, hairs) a sharp frame shows; 6 px leaves only blobs.
BLUR_SIGMA_RANGE = (2.0, 6.0)
#: Brightness factor ranges (uniform): too dark or overexposed, with equal probability.
DARK_RANGE = (0.2, 0.5)
BRIGHT_RANGE = (1.7, 2.6)

#: One item of an epoch: (sample index, synthesise a bad frame from it?, augmentation seed).
Item = tuple[int, bool, int]


def epoch_plan(targets: Sequence[int], labels: Sequence[str], *, epoch: int, seed: int,
               length: int | None = None, synth_bad: float = 0.0) -> list[Item]:
    """The items of one training epoch, class-balanced, drawn with replacement.

    Every class present gets the same total probability (``1 / count`` per sample). With
    ``synth_bad > 0`` (quality task) the ``bad`` class also holds one synthetic twin per good
    sample; they make up ``synth_bad`` of the bad class, or all of it if there are no real
    bad samples. ``length`` defaults to the number of samples. The same ``(seed, epoch)``
    always gives the same plan.

    >>> plan = epoch_plan([0, 0, 0, 1], ["bad", "good"], epoch=0, seed=0, length=4000)
    >>> round(sum(1 for i, _, _ in plan if i == 3) / 4000, 1)   # the lone good sample: half
    0.5
    """
    t = np.asarray(targets, dtype=np.int64)
    n = t.size if length is None else int(length)
    idx = np.arange(t.size)
    synth = np.zeros(t.size, bool)
    classes = t.copy()
    use_synth = synth_bad > 0 and GOOD in labels and BAD in labels
    if use_synth:
        good, bad = labels.index(GOOD), labels.index(BAD)
        twins = np.flatnonzero(t == good)
        idx = np.r_[idx, twins]
        synth = np.r_[synth, np.ones(twins.size, bool)]
        classes = np.r_[classes, np.full(twins.size, bad)]
    weights = np.zeros(idx.size, np.float64)
    present = np.unique(classes)
    for c in present:
        members = classes == c
        if use_synth and c == bad:
            real, fake = members & ~synth, members & synth
            share = 1.0 if not real.any() else float(synth_bad)
            if real.any():
                weights[real] = (1.0 - share) / real.sum()
            if fake.any():
                weights[fake] = share / fake.sum()
            if not fake.any():
                weights[real] = 1.0 / real.sum()
        else:
            weights[members] = 1.0 / members.sum()
    weights /= weights.sum()
    rng = np.random.default_rng([seed, epoch])
    pick = rng.choice(idx.size, size=n, replace=True, p=weights)
    seeds = rng.integers(0, 2**62, size=n)
    return [(int(idx[k]), bool(synth[k]), int(s)) for k, s in zip(pick, seeds, strict=True)]


def validation_items(targets: Sequence[int], labels: Sequence[str], *, seed: int,
                     synth_bad: float = 0.0) -> list[Item]:
    """Every validation sample once, plus (quality, ``synth_bad > 0``) one fixed synthetic
    bad twin per good sample, so the bad class is scored even where no real bad frame is."""
    t = list(targets)
    items = [(i, False, 0) for i in range(len(t))]
    if synth_bad > 0 and GOOD in labels and BAD in labels:
        good = labels.index(GOOD)
        rng = np.random.default_rng([seed, 1_000_003])
        items += [(i, True, int(rng.integers(0, 2**62))) for i in range(len(t)) if t[i] == good]
    return items


def degrade(image: np.ndarray, rng: np.random.Generator, mode: str | None = None) -> np.ndarray:
    """A synthetic bad frame from a good one: blur, brightness change, or both (new array).

    ``mode`` picks one of :data:`SYNTH_MODES`; ``None`` draws it with :data:`SYNTH_MODE_P`.
    Blur is a Gaussian of sigma uniform in :data:`BLUR_SIGMA_RANGE`; the brightness factor
    is uniform in :data:`DARK_RANGE` or :data:`BRIGHT_RANGE` (even odds).

    >>> img = np.full((8, 8, 3), 100, np.uint8)
    >>> int(degrade(img, np.random.default_rng(1), mode="brightness")[0, 0, 0]) != 100
    True
    """
    if mode is None:
        mode = SYNTH_MODES[int(rng.choice(len(SYNTH_MODES), p=SYNTH_MODE_P))]
    if mode not in SYNTH_MODES:
        raise ValueError(f"mode must be one of {SYNTH_MODES}, got {mode!r}")
    out = image
    if mode in ("blur", "both"):
        sigma = float(rng.uniform(*BLUR_SIGMA_RANGE))
        out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma,
                               borderType=cv2.BORDER_REFLECT101)
    if mode in ("brightness", "both"):
        factor = float(rng.uniform(*(DARK_RANGE if rng.random() < 0.5 else BRIGHT_RANGE)))
        out = cv2.convertScaleAbs(out, alpha=factor)  # saturates at 255, like a real sensor
    return np.ascontiguousarray(out) if out is not image else image.copy()


class ItemLoader:
    """Map-style view for a torch ``DataLoader``: ``loader[item] -> (image, target)``.

    ``item`` is an :data:`Item` from :func:`epoch_plan` / :func:`validation_items`; a
    synthetic item is the sample degraded with its own seed and labelled ``bad``. With
    ``augment`` (training only), every image then goes through it with the item's seed.
    Plain numpy out; the training code converts batches to tensors.
    """

    def __init__(self, ds: LabelledSet, augment: Callable[[np.ndarray, int], np.ndarray]
                 | None = None):
        self.ds = ds
        self.bad = ds.labels.index(BAD) if BAD in ds.labels else -1
        self.augment = augment

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, item: Item) -> tuple[np.ndarray, int]:
        index, synthetic, seed = item
        image = self.ds.load(index)
        label = self.ds.samples[index].label
        if synthetic:
            image, label = degrade(image, np.random.default_rng(seed)), self.bad
        if self.augment is not None:
            image = self.augment(image, seed)
        return image, label
