"""Partial labels for the shared-backbone model: one frame, a label per head or none.

The thesis' data give quality on every frame and an organ where it is known.
:func:`read_partial_set` reads both tasks of one dataset (the same layouts
as ``endostream train``: a labels CSV with ``quality`` and ``organ`` columns, or
``ROOT/quality/<class>/`` beside ``ROOT/organ/<class>/``) and joins them by frame into a
:class:`PartialSet`: ``targets[i] = (quality, organ)`` class indices, :data:`UNLABELLED`
(-1) where a head has no label. An organ label on a frame labelled bad is kept, as
``--task organ`` keeps it: the organ head then knows the organ through blur and darkness
too (the two-model pair's organ network learns from those frames, and parity with it is
measured on all frames). A synthetic bad twin teaches the quality head only.

**Sampling** (:func:`epoch_plan`): ``organ_share`` of each epoch (default
:data:`DEFAULT_ORGAN_SHARE`) is drawn class-balanced for the organ head among
organ-labelled frames, the rest class-balanced for the quality head (synthetic bad twins
of good frames included, :mod:`.sampling`), then shuffled. A drawn
item carries the head it was drawn for and teaches that head only, so each head sees
exactly balanced classes (most organ-labelled frames are good: their quality labels
would tip the quality head towards good).

>>> t = np.array([[1, 0], [1, 1], [0, -1], [1, -1]])
>>> plan = epoch_plan(t, (("bad", "good"), ("ear", "nose")), epoch=0, seed=0, length=8)
>>> sorted({item[3] for item in plan})  # drawn for the quality head (0) or the organ head (1)
[0, 1]

**Losses** (:func:`masked_loss`): cross-entropy per head over the frames labelled for it,
summed over heads. A head with no labelled frame in a batch does not enter the loss at all:
its parameters get no gradient (``None``), so Adam leaves them exactly as they were.

>>> import torch
>>> logits = {"quality": torch.zeros(2, 2, requires_grad=True),
...           "organ": torch.zeros(2, 3, requires_grad=True)}
>>> loss, per_head = masked_loss(logits, torch.tensor([[1, -1], [0, -1]]))
>>> sorted(per_head), round(float(loss.detach()), 4)
(['quality'], 0.6931)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from endostream.contract import HEADS
from endostream.errors import UsageError
from endostream.evaluation import datasets as D
from endostream.export import sampling as S

#: Target of a head that has no label for a frame.
UNLABELLED = -1

#: :data:`Item` head field of a validation item: every label of the frame counts.
ALL_HEADS = -1

#: One item: (sample index, synthetic bad frame?, augmentation seed, head it teaches or
#: :data:`ALL_HEADS`).
Item = tuple[int, bool, int, int]

#: Share of each epoch drawn for the organ head (``train --organ-share``): half. Three in
#: four, on a trained ``--task quality`` backbone, was worse over three seeds (docs/notes/
#: shared-backbone.md).
DEFAULT_ORGAN_SHARE = 0.5

#: Seed offset of the organ part of an epoch, so the two parts draw independently.
ORGAN_SEED_OFFSET = 7_919


@dataclass(frozen=True)
class PartialSet:
    """Frames with a label per head or none; quacks like :class:`~.datasets.LabelledSet`.

    ``samples[i].label`` is the quality index (or -1), so the recording split
    (:func:`~.datasets.split_by_recording`, stratified by quality) and the leak check take
    it as it is; ``organ[i]`` is the organ index or -1. ``labels`` is
    ``(quality labels, organ labels)``.
    """

    labels: tuple[tuple[str, ...], ...]
    samples: tuple[D.Sample, ...]
    organ: tuple[int, ...]
    source: Path
    recordings_known: bool = True
    task: str = "both"

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def heads(self) -> dict[str, tuple[str, ...]]:
        return dict(zip(HEADS, self.labels, strict=True))

    @property
    def targets(self) -> np.ndarray:
        """``[N, 2]`` int64: quality and organ class per frame, -1 where unlabelled."""
        t = np.array([[s.label, o] for s, o in zip(self.samples, self.organ, strict=True)],
                     dtype=np.int64)
        return t.reshape(len(self.samples), len(HEADS))

    def recordings(self) -> list[str]:
        return list(dict.fromkeys(s.recording for s in self.samples))

    def class_counts(self) -> dict[str, int]:
        t = self.targets
        out = {}
        for k, (head, labels) in enumerate(self.heads.items()):
            counts = Counter(int(v) for v in t[:, k])
            out.update({f"{head} {lb}": counts.get(i, 0) for i, lb in enumerate(labels)})
            out[f"{head} unlabelled"] = counts.get(UNLABELLED, 0)
        return out

    def subset(self, indices: Sequence[int]) -> PartialSet:
        indices = list(indices)
        return replace(self, samples=tuple(self.samples[i] for i in indices),
                       organ=tuple(self.organ[i] for i in indices))

    def load(self, index: int) -> np.ndarray:
        s = self.samples[index]
        return s.image if s.image is not None else D.load_image(s.path)

    def with_labels(self, labels: Sequence[Sequence[str]]) -> PartialSet:
        """The same frames indexed into ``labels`` (per head; e.g. the training set's)."""
        maps = []
        for head, mine, theirs in zip(HEADS, self.labels, labels, strict=True):
            t = self.targets[:, HEADS.index(head)]
            used = {mine[v] for v in t if v >= 0}
            missing = sorted(used - set(theirs))
            if missing:
                raise UsageError(f"{self.source}: {head} label(s) {', '.join(missing)} are not "
                                 f"among {', '.join(theirs)}; use the same classes in both sets")
            maps.append({i: list(theirs).index(lb) for i, lb in enumerate(mine)})
        q, o = maps
        return replace(self, labels=tuple(tuple(x) for x in labels),
                       samples=tuple(replace(s, label=q.get(s.label, UNLABELLED))
                                     for s in self.samples),
                       organ=tuple(o.get(v, UNLABELLED) for v in self.organ))


def read_partial_set(path: str | Path, *, video_fps: float = D.DEFAULT_VIDEO_FPS,
                     synth_bad: float = 0.0) -> PartialSet:
    """Both tasks of one dataset joined by frame (see the module docstring).

    With ``synth_bad > 0`` the quality labels include ``bad`` even if no frame is bad.
    """
    quality = D.read_dataset(path, "quality", video_fps=video_fps)
    try:
        organ = D.read_dataset(path, "organ", video_fps=video_fps)
    except UsageError:
        raise UsageError(f"'{path}' has no organ labels; --task both needs an organ column "
                         "(or ROOT/organ/<class>/ folders); train --task quality instead"
                         ) from None
    q_labels = quality.labels
    if synth_bad > 0 and D.BAD not in q_labels:
        quality = quality.with_labels(tuple(sorted(q_labels + (D.BAD,))))
        q_labels = quality.labels
    organ_of = {s.name: s.label for s in organ.samples}
    samples, organs = [], []
    for s in quality.samples:
        samples.append(s)
        organs.append(organ_of.pop(s.name, UNLABELLED))
    # Frames with an organ but no quality label: organ head only.
    for s in organ.samples:
        if s.name in organ_of:
            samples.append(replace(s, label=UNLABELLED))
            organs.append(s.label)
    if not any(o != UNLABELLED for o in organs):
        raise UsageError(f"'{path}' has no frame with an organ label; the organ head "
                         "needs some, or train --task quality")
    return PartialSet(labels=(q_labels, organ.labels), samples=tuple(samples),
                      organ=tuple(organs), source=Path(path),
                      recordings_known=quality.recordings_known and organ.recordings_known)


def epoch_plan(targets: np.ndarray, labels: Sequence[Sequence[str]], *, epoch: int, seed: int,
               synth_bad: float = 0.0, length: int | None = None,
               organ_share: float = DEFAULT_ORGAN_SHARE) -> list[Item]:
    """One epoch of :data:`Item`: ``organ_share`` of it balanced for the organ head, the
    rest balanced for the quality head, shuffled, seeded.

    >>> t = np.array([[1, 0], [0, 1], [1, 2], [0, -1]])
    >>> plan = epoch_plan(t, (("bad", "good"), ("ear", "nose", "vf")), epoch=0, seed=0,
    ...                   length=100, organ_share=0.75)
    >>> sum(item[3] == 1 for item in plan), sum(item[3] == 0 for item in plan)
    (75, 25)
    """
    if not 0.0 < organ_share < 1.0:
        raise UsageError(f"--organ-share out of range: {organ_share}; use a share between 0 "
                         "and 1 (each head needs some of the epoch)")
    n = len(targets) if length is None else int(length)
    q_idx = np.flatnonzero(targets[:, 0] >= 0)
    o_idx = np.flatnonzero(targets[:, 1] >= 0)
    n_organ = 0 if not o_idx.size else (n if not q_idx.size else round(n * organ_share))
    plan: list[Item] = []
    if n - n_organ > 0:
        part = S.epoch_plan(targets[q_idx, 0], labels[0], epoch=epoch, seed=seed,
                            length=n - n_organ, synth_bad=synth_bad)
        plan += [(int(q_idx[i]), synth, s, 0) for i, synth, s in part]
    if n_organ:
        part = S.epoch_plan(targets[o_idx, 1], labels[1], epoch=epoch,
                            seed=seed + ORGAN_SEED_OFFSET, length=n_organ)
        plan += [(int(o_idx[i]), synth, s, 1) for i, synth, s in part]
    order = np.random.default_rng([seed, epoch, len(HEADS)]).permutation(len(plan))
    return [plan[k] for k in order]


def validation_items(targets: np.ndarray, labels: Sequence[Sequence[str]], *, seed: int,
                     synth_bad: float = 0.0) -> list[Item]:
    """Every frame once, plus (``synth_bad > 0``) a fixed synthetic bad twin per good frame."""
    items = [(i, False, 0, ALL_HEADS) for i in range(len(targets))]
    q = targets[:, 0]
    twins = S.validation_items(np.where(q >= 0, q, 0), labels[0], seed=seed, synth_bad=synth_bad)
    items += [(i, True, s, 0) for i, synth, s in twins if synth and q[i] >= 0]
    return items


class ItemLoader:
    """``loader[item] -> (image, (quality, organ))``: the item's head's label, -1 for the
    other (both labels for :data:`ALL_HEADS`); a synthetic item is bad, organ -1.

    The image comes from :class:`.sampling.ItemLoader` (load, synthetic bad frames, and
    whatever augmentation single-task training gets there), so both kinds of run see the
    same pixels.
    """

    def __init__(self, ds: PartialSet, augment: Any = None):
        self.ds = ds
        # The same load, synthetic degradation and (training only) augmentation.
        self.images = S.ItemLoader(ds, augment=augment)  # type: ignore[arg-type]
        self.targets = ds.targets
        quality = ds.labels[0]
        self.bad = quality.index(D.BAD) if D.BAD in quality else UNLABELLED

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, item: Item) -> tuple[np.ndarray, tuple[int, int]]:
        index, synthetic, seed, head = item
        image, _ = self.images[(index, synthetic, seed)]
        if synthetic:
            return image, (self.bad, UNLABELLED)
        labels = [int(v) for v in self.targets[index]]
        if head != ALL_HEADS:
            labels = [v if k == head else UNLABELLED for k, v in enumerate(labels)]
        return image, (labels[0], labels[1])


def masked_loss(logits: Mapping[str, torch.Tensor], targets: torch.Tensor
                ) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    """``(sum over heads, {head: mean cross-entropy})`` over the labelled frames of each head.

    ``targets`` is ``[N, heads]`` in :data:`~endostream.contract.HEADS` order, -1 where
    unlabelled. A head without any labelled frame is left out (no gradient reaches it);
    the total is None when no head has a label in the batch.
    """
    per_head: dict[str, torch.Tensor] = {}
    for k, head in enumerate(HEADS):
        if head not in logits:
            continue
        y = targets[:, k]
        keep = y >= 0
        if bool(keep.any()):
            per_head[head] = nn.functional.cross_entropy(logits[head][keep], y[keep])
    total = None
    for loss in per_head.values():
        total = loss if total is None else total + loss
    return total, per_head


__all__ = ["PartialSet", "UNLABELLED", "ALL_HEADS", "DEFAULT_ORGAN_SHARE", "Item",
           "read_partial_set", "epoch_plan",
           "validation_items", "ItemLoader", "masked_loss"]
