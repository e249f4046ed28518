"""Which recordings a training run validates on, said out loud, and never all corrections.

``train`` splits by recording (:mod:`endostream.evaluation.datasets`): a separate set
(``--val-split``), the recordings named (``--val-recordings``), or ``--val-fraction`` of
them. In the correction loop the data set mixes old labels with a few corrected
recordings (rows that ``endostream dataset`` wrote carry the reviewed file in their
:data:`CORRECTION_COLUMN`), and a split by fraction could hold out exactly the corrected
recordings: training would then see none of them and the kept epoch would be chosen on
them. So:

- ``--val-fraction`` draws validation among the recordings that are *not* corrections
  whenever there are any; only a set of corrections alone is split among them;
- a split that would hold out every corrected recording is refused (exit 2) with the fix,
  unless asked for (``--hold-out-corrections``);
- the run prints which recordings it validates on and which corrections it trains on
  (:func:`describe_split`).

>>> from pathlib import Path
>>> from endostream.evaluation.datasets import LabelledSet, Sample
>>> s = [Sample(Path(f"{r}.png"), r % 2, f"r{r}") for r in range(6)]
>>> ds = LabelledSet("quality", ("bad", "good"), tuple(s), Path("."))
>>> train, val = split(ds, val_fraction=0.5, seed=0, corrected={"r0", "r1"})
>>> sorted({ds.samples[i].recording for i in val} & {"r0", "r1"})
[]
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from endostream.errors import UsageError
from endostream.evaluation import datasets as D
from endostream.export.grouping import recording_of

log = logging.getLogger(__name__)

#: The labels-CSV column that ``endostream dataset`` fills with the reviewed sections file
#: a row came from (``endostream.corrections.dataset.COLUMNS``; a test keeps them in
#: step): a recording with such a row is a corrected one.
CORRECTION_COLUMN = "sections"

#: Recordings named per line of the split's description before "+N more".
NAMES_SHOWN = 8

#: The option that lets validation hold out every corrected recording.
HOLD_OUT_OPTION = "--hold-out-corrections"


def corrected_recordings(dataset: Path, group_by: str | None = None) -> set[str]:
    """Recording ids of the rows of ``dataset``'s labels CSV that came from a review (empty
    for class folders or a CSV without :data:`CORRECTION_COLUMN`), as the reader names
    them (``group_by`` applied)."""
    path = Path(dataset)
    csv_path = path / D.LABELS_CSV if path.is_dir() else path
    if not csv_path.is_file() or csv_path.suffix.lower() != ".csv":
        return set()
    found = set()
    for row in D.label_rows(csv_path):
        if not row.get(CORRECTION_COLUMN):
            continue
        file = csv_path.parent / row["path"]
        if group_by is not None:
            found.add(recording_of(file, group_by))
        else:
            found.add(next((row[c] for c in D.RECORDING_COLUMNS if row.get(c)), file.name))
    return found


def split(ds: Any, *, val_fraction: float, seed: int, corrected: Collection[str] = (),
          val_recordings: Sequence[str] | None = None) -> tuple[list[int], list[int]]:
    """``(train, val)`` sample indices of ``ds`` (a labelled or partial set): the named
    recordings, else ``val_fraction`` drawn among the recordings that are not corrections
    (among all of them when every one is)."""
    if val_recordings is not None:  # named (a resumed run's may be none at all)
        return D.split_by_names(ds, val_recordings)
    corrected = set(corrected)
    old = [i for i, s in enumerate(ds.samples) if s.recording not in corrected]
    if not corrected or not old:
        return D.split_by_recording(ds, val_fraction, seed)
    tr, va = D.split_by_recording(ds.subset(old), val_fraction, seed)
    new = [i for i, s in enumerate(ds.samples) if s.recording in corrected]
    return sorted([old[i] for i in tr] + new), [old[i] for i in va]


def check_corrections_trained(val_set: Any, corrected: Collection[str], allowed: bool) -> None:
    """Refuse (UsageError, exit 2) a validation set that holds every corrected recording."""
    held = sorted(set(corrected) & set(val_set.recordings()))
    if not corrected or len(held) < len(set(corrected)) or allowed:
        return
    raise UsageError(
        f"validation would hold out every corrected recording ({_names(held)}): training "
        "would learn nothing from the corrections; validate on old data (endostream dataset "
        "--include old/labels.csv) or on other recordings (--val-recordings A,B), or pass "
        f"{HOLD_OUT_OPTION} to score on them without training on them")


@dataclass(frozen=True)
class Split:
    """A run's training and validation sets and the lines that say what they hold."""

    train: Any
    val: Any
    lines: tuple[str, ...]
    optimistic: bool = False  #: validation may share recordings it cannot see


def choose(full: Any, cfg: Any, *, val_set: Any = None,
           resumed: Sequence[str] | None = None) -> Split:
    """The split of ``full`` for a run's config (``TrainConfig``): ``val_set`` when given
    (``--val-split``, read by the caller), the recordings of a resumed run, the named
    recordings, or ``--val-fraction`` as :func:`split` draws it; refused when it would hold
    out every corrected recording of a new run (:func:`check_corrections_trained`)."""
    corrected = corrected_recordings(cfg.dataset, cfg.group_by)
    optimistic = False
    if val_set is not None:
        train, how = full, f"--val-split {cfg.val_split}"
    else:
        names = resumed if resumed is not None else cfg.val_recordings
        tr, va = split(full, val_fraction=cfg.val_fraction, seed=cfg.seed, corrected=corrected,
                       val_recordings=names)
        train, val_set = full.subset(tr), full.subset(va)
        optimistic = bool(va) and not full.recordings_known
        others = corrected and set(full.recordings()) - set(corrected)
        how = ("as when the run started" if resumed is not None else
               "--val-recordings" if names else f"--val-fraction {cfg.val_fraction:g}"
               + (" of the recordings that are not corrections" if others else ""))
    D.check_no_leak(train, val_set)
    if resumed is None:
        check_corrections_trained(val_set, corrected, cfg.hold_out_corrections)
    return Split(train, val_set, tuple(describe_split(train, val_set, corrected, how)),
                 optimistic)


def describe_split(train_set: Any, val_set: Any, corrected: Collection[str],
                   how: str) -> list[str]:
    """The lines ``train`` prints before its first epoch: validation recordings with their
    frame counts, the training set, and the corrections on each side."""
    val = Counter(s.recording for s in val_set.samples)
    tr = Counter(s.recording for s in train_set.samples)
    lines = [f"validation ({how}): " + (
        f"{_count(len(val), 'recording')}, {_count(val_set.__len__(), 'frame')}: "
        + _names(sorted(val), val) if val else "none")]
    lines.append(f"training: {_count(len(tr), 'recording')}, "
                 f"{_count(train_set.__len__(), 'frame')}")
    corrected = set(corrected)
    if corrected:
        trained = sorted(corrected & set(tr))
        held = sorted(corrected & set(val))
        lines.append("corrected recordings trained on: "
                     + (_names(trained, tr) if trained else "none")
                     + (f"; held out for validation: {_names(held, val)}" if held else ""))
    return lines


def _names(names: Sequence[str], frames: Counter | None = None) -> str:
    shown = [f"{n} ({frames[n]})" if frames is not None else n for n in names[:NAMES_SHOWN]]
    more = len(names) - NAMES_SHOWN
    return ", ".join(shown) + (f", +{more} more" if more > 0 else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


__all__ = ["CORRECTION_COLUMN", "HOLD_OUT_OPTION", "Split", "choose", "corrected_recordings",
           "split", "check_corrections_trained", "describe_split"]
