"""Labelled frames for training and evaluation: reading them, splitting by recording.

Two layouts are read (``read_dataset``), both giving a :class:`LabelledSet` whose images go
through the runtime's content-area crop (:func:`endostream.crop.find_content_area` on the
full image, then :func:`endostream.crop.preprocess` to 224x224), so a model is trained and
scored on exactly the pixels it will see at run time:

**Class folders** — ``ROOT/<class>/*.jpg|jpeg|png|bmp|tif|tiff`` (``ROOT/<task>/<class>/``
also works, for a root that holds both tasks). The folder name is the label, unless ROOT
holds a ``labels.csv`` with a column named after the task: then that CSV is the dataset
(the layout ``endostream synth --dataset`` writes). The recording
(patient, procedure) of each image, which the split needs, comes from, in order:

1. a ``labels.csv`` in ROOT with ``path`` and ``recording`` columns (paths relative to it);
2. the file name: ``<recording>__<anything>.<ext>`` (two underscores), e.g.
   ``pat07_scope2__000153.jpg`` is recording ``pat07_scope2``;
3. nothing: each image is its own recording. A warning says that the split is then by
   image, and frames of one recording may sit on both sides without anyone noticing.

**Labels CSV** — a ``.csv`` file (or a ROOT whose ``labels.csv`` has the task's column) with
columns ``path``, ``organ``, ``quality``, ``recording`` (``patient`` / ``patient_id`` /
``recording_id`` are accepted as the recording column). Paths are relative to the CSV. A
row whose task column is empty is skipped (e.g. no organ label on a bad frame). ``path``
may be an image or a video (by extension, :data:`VIDEO_EXTENSIONS`); for a video:

- column ``frame`` set: that one decoder frame index (0-based);
- else ``start_s`` / ``end_s`` (either may be empty): the stretch is sampled at
  ``video_fps`` frames per second (default :data:`DEFAULT_VIDEO_FPS`), or at the row's own
  ``fps`` column where it has one (``endostream dataset`` writes it, so the rate chosen
  there travels with the file);
- neither: the whole video at ``video_fps`` (or the row's ``fps``).

Video frames are decoded once when the set is read, through
:class:`endostream.sources.FileSource` with the runtime's :class:`ContentCropper`, and kept
in memory as 224x224 crops (147 KB a frame: 10 000 frames are 1.5 GB). A video row without
a recording id belongs to a recording named after the video file.

**Splits** are made by recording, never by frame: :func:`split_by_recording` (seeded,
stratified by each recording's majority class), an explicit list of validation recordings,
or a separate validation set checked by :func:`check_no_leak`, which refuses a split with a
recording (or an image file) on both sides.

**Balanced epochs and synthetic bad frames** for training are in :mod:`.sampling`.

This module needs numpy and OpenCV only, so ``endostream evaluate`` reads datasets without
torch.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from endostream.contract import GOOD_LABEL
from endostream.crop import find_content_area, preprocess
from endostream.errors import UsageError

log = logging.getLogger(__name__)

TASKS = ("quality", "organ")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".mpg", ".mpeg", ".webm", ".m4v", ".ts")

#: File name of the labels CSV looked for inside a dataset folder.
LABELS_CSV = "labels.csv"
#: Separator between recording id and the rest of an image file name.
RECORDING_SEPARATOR = "__"
#: Names accepted for the recording column, first match wins.
RECORDING_COLUMNS = ("recording", "patient", "patient_id", "recording_id")

#: Frames per second sampled from a video row without a ``frame`` column. Neighbouring
#: frames of a video are near duplicates; one or two a second carry nearly all there is.
DEFAULT_VIDEO_FPS = 1.0
#: Default share of recordings held out for validation.
DEFAULT_VAL_FRACTION = 0.2
#: Label names of the quality task: synthetic frames are made from GOOD and labelled BAD.
GOOD, BAD = GOOD_LABEL, "bad"


@dataclass(frozen=True)
class Sample:
    """One labelled frame: an image file, or one frame of a video (decoded in ``image``)."""

    path: Path
    label: int  #: index into :attr:`LabelledSet.labels`
    recording: str
    frame: int | None = None  #: decoder frame index (video samples)
    pts_s: float | None = None  #: presentation time (video samples)
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return str(self.path) if self.frame is None else f"{self.path}#{self.frame}"


@dataclass(frozen=True)
class LabelledSet:
    """Labelled frames of one task. ``recordings_known`` is False when ids were invented."""

    task: str
    labels: tuple[str, ...]
    samples: tuple[Sample, ...]
    source: Path
    recordings_known: bool = True

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def targets(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    def recordings(self) -> list[str]:
        """Recording ids in order of first appearance."""
        return list(dict.fromkeys(s.recording for s in self.samples))

    def class_counts(self) -> dict[str, int]:
        counts = Counter(s.label for s in self.samples)
        return {label: counts.get(k, 0) for k, label in enumerate(self.labels)}

    def subset(self, indices: Iterable[int]) -> LabelledSet:
        return replace(self, samples=tuple(self.samples[i] for i in indices))

    def load(self, index: int) -> np.ndarray:
        """The model input of sample ``index``: uint8 RGB ``[224, 224, 3]``, runtime crop."""
        s = self.samples[index]
        if s.image is not None:
            return s.image
        return load_image(s.path)

    def with_labels(self, labels: Sequence[str]) -> LabelledSet:
        """The same samples indexed into ``labels`` (a superset, e.g. the training set's)."""
        missing = [lb for lb in self.labels if lb not in labels and self.class_counts()[lb]]
        if missing:
            raise UsageError(f"{self.source}: label(s) {', '.join(missing)} are not among "
                             f"{', '.join(labels)}; use the same classes in both sets")
        index = {lb: k for k, lb in enumerate(labels)}
        return replace(self, labels=tuple(labels), samples=tuple(
            replace(s, label=index[self.labels[s.label]]) for s in self.samples))


def load_image(path: Path) -> np.ndarray:
    """Read an image file and apply the runtime crop: uint8 RGB ``[224, 224, 3]``."""
    data = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if data is None:
        raise UsageError(f"cannot read image '{path}'; replace it or remove it from the dataset")
    rgb = cv2.cvtColor(data, cv2.COLOR_BGR2RGB)
    return preprocess(rgb, find_content_area(rgb))


def read_dataset(path: str | Path, task: str, *, video_fps: float = DEFAULT_VIDEO_FPS
                 ) -> LabelledSet:
    """Read class folders or a labels CSV (see the module docstring) for ``task``.

    Raises :class:`UsageError` with a one-line message for a missing path, an empty set, a
    CSV without the needed columns, or a quality set without ``good`` frames.
    """
    if task not in TASKS:
        raise UsageError(f"unknown task '{task}'; choose one of {', '.join(TASKS)}")
    path = Path(path)
    if not path.exists():
        raise UsageError(f"dataset not found: '{path}'; give a folder of class folders or a CSV")
    if path.is_file() and path.suffix.lower() == ".json":
        # Most likely a (reviewed) sections.json: it becomes training data through a CSV.
        raise UsageError(f"'{path}' is not a data set; turn reviewed sections files into "
                         f"one with 'endostream dataset {path.name} --out DIR/labels.csv' "
                         "and train on that CSV")
    if path.is_file():
        ds = _read_csv(path, task, video_fps)
    else:
        root = path / task if _class_folders(path / task) else path
        csv_path = path / LABELS_CSV
        header = _csv_header(csv_path) if csv_path.is_file() else []
        if task in header:  # the CSV names the labels: it wins over folder names
            ds = _read_csv(csv_path, task, video_fps)
        elif _class_folders(root):
            ds = _read_folders(root, task, csv_path if "path" in header else None)
        else:
            raise UsageError(f"'{path}' holds no class folders with images and no {LABELS_CSV} "
                             f"with a '{task}' column; see 'endostream train --help'")
    if not ds.samples:
        raise UsageError(f"'{path}' holds no labelled frames for the {task} task")
    if task == "quality" and GOOD not in ds.labels:
        raise UsageError(f"'{path}': the quality task needs frames labelled '{GOOD}'; "
                         f"found {', '.join(ds.labels)}")
    if not ds.recordings_known:
        log.warning("%s: recording ids unknown (no '%s' column, no '<recording>%s' file "
                    "names): splits are by image and cannot be checked for leaks", path,
                    RECORDING_COLUMNS[0], RECORDING_SEPARATOR)
    return ds


def _class_folders(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                  and any(_is_image(f) for f in d.iterdir()))


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS


def _csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return [h.strip().lower() for h in next(csv.reader(fh), [])]


def _read_folders(root: Path, task: str, csv_path: Path | None) -> LabelledSet:
    known: dict[Path, str] = {}
    if csv_path is not None:
        for row in _csv_rows(csv_path):
            rec = _recording_of(row)
            if rec:
                known[(csv_path.parent / row["path"]).resolve()] = rec
    labels = tuple(d.name for d in _class_folders(root))
    samples, invented = [], 0
    for k, d in enumerate(_class_folders(root)):
        for f in sorted(p for p in d.iterdir() if _is_image(p)):
            rec = known.get(f.resolve())
            if rec is None and RECORDING_SEPARATOR in f.stem:
                rec = f.stem.split(RECORDING_SEPARATOR, 1)[0]
            if not rec:
                rec, invented = f"{d.name}/{f.name}", invented + 1
            samples.append(Sample(path=f, label=k, recording=rec))
    if 0 < invented < len(samples):
        log.warning("%s: %d of %d images have no recording id; each counts as its own "
                    "recording", root, invented, len(samples))
    return LabelledSet(task, labels, tuple(samples), root, recordings_known=invented == 0)


def label_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a labels CSV as dicts (lower-case column names, values stripped), for
    tools that copy or merge labels CSVs; :class:`UsageError` when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"labels CSV not found: '{path}'; give a labels CSV (or a folder "
                         f"holding {LABELS_CSV})")
    return _csv_rows(path)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
            rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items()}
                    for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UsageError(f"cannot read labels CSV '{path}': {e}") from None
    if "path" not in header:
        raise UsageError(f"labels CSV '{path}' has no 'path' column; expected columns "
                         "path, organ, quality, recording")
    return rows


def _recording_of(row: dict[str, str]) -> str:
    for col in RECORDING_COLUMNS:
        if row.get(col):
            return row[col]
    return ""


def _read_csv(path: Path, task: str, video_fps: float) -> LabelledSet:
    rows = _csv_rows(path)
    if task not in _csv_header(path):
        raise UsageError(f"labels CSV '{path}' has no '{task}' column; add it or choose "
                         "the other --task")
    rows = [r for r in rows if r.get(task)]
    labels = tuple(sorted({r[task] for r in rows}))
    index = {lb: k for k, lb in enumerate(labels)}
    samples: list[Sample] = []
    videos: dict[Path, list[tuple[dict[str, str], int, str]]] = defaultdict(list)
    invented = 0
    for line, row in enumerate(rows, start=2):
        file = (path.parent / row["path"])
        if not file.is_file():
            raise UsageError(f"{path}:{line}: file not found: '{row['path']}' "
                             "(paths are relative to the CSV)")
        rec = _recording_of(row)
        if file.suffix.lower() in VIDEO_EXTENSIONS:
            videos[file].append((row, index[row[task]], rec or file.name))
            continue
        if not rec and RECORDING_SEPARATOR in file.stem:
            rec = file.stem.split(RECORDING_SEPARATOR, 1)[0]
        if not rec:
            rec, invented = row["path"], invented + 1
        samples.append(Sample(path=file, label=index[row[task]], recording=rec))
    for file, requests in videos.items():
        samples.extend(_video_samples(file, requests, video_fps, path))
    return LabelledSet(task, labels, tuple(samples), path, recordings_known=invented == 0)


def _float_or_none(row: dict[str, str], key: str, where: str) -> float | None:
    text = row.get(key, "")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"{where}: '{key}' must be a number, got '{text}'") from None


def _video_samples(file: Path, requests: list[tuple[dict[str, str], int, str]],
                   video_fps: float, csv_path: Path) -> list[Sample]:
    """Decode the requested frames of one video once, through the runtime's source+crop."""
    from endostream.crop import ContentCropper
    from endostream.sources.file import FileSource

    where = f"{csv_path} ({file.name})"
    by_frame: dict[int, list[tuple[int, str]]] = defaultdict(list)
    ranges: list[tuple[float, float, int, str, float]] = []
    for row, label, rec in requests:
        if row.get("frame"):
            try:
                by_frame[int(row["frame"])].append((label, rec))
            except ValueError:
                raise UsageError(f"{where}: 'frame' must be an integer, got '{row['frame']}'"
                                 ) from None
        else:
            start = _float_or_none(row, "start_s", where) or 0.0
            end = _float_or_none(row, "end_s", where)
            fps = _float_or_none(row, "fps", where) or video_fps
            if not fps > 0:
                raise UsageError(f"{where}: 'fps' must be positive, got '{row['fps']}'")
            ranges.append((start, float("inf") if end is None else end, label, rec, fps))
    # Frame indices need every frame decoded; time ranges only the sampled ones (at the
    # highest rate any row asks for; each range is thinned to its own below).
    sample_fps = None if by_frame else max((r[4] for r in ranges), default=video_fps)
    last_frame = max(by_frame, default=-1)
    last_s = max((r[1] for r in ranges), default=-1.0)
    next_tick: list[float] = [r[0] for r in ranges]
    out: list[Sample] = []
    with FileSource(file, sample_fps=sample_fps, cropper=ContentCropper()) as source:
        while True:
            frame = source.read()
            if frame is None or (frame.index > last_frame and frame.pts_s > last_s):
                break
            for label, rec in by_frame.get(frame.index, ()):
                out.append(Sample(file, label, rec, frame.index, frame.pts_s, frame.image))
            for k, (start, end, label, rec, fps) in enumerate(ranges):
                # Thin each range to its own rate (every frame may have been decoded).
                if start <= frame.pts_s < end and frame.pts_s >= next_tick[k] - 1e-6:
                    out.append(Sample(file, label, rec, frame.index, frame.pts_s, frame.image))
                    next_tick[k] = max(next_tick[k] + 1.0 / fps, frame.pts_s)
    found = {s.frame for s in out}
    lost = sorted(set(by_frame) - found)
    if lost:
        raise UsageError(f"{where}: frame {lost[0]} is past the end of the video")
    log.info("%s: %d frames decoded for the dataset", file, len(out))
    return out


# --- splits -------------------------------------------------------------------------


def split_by_recording(ds: LabelledSet, val_fraction: float = DEFAULT_VAL_FRACTION,
                       seed: int = 0) -> tuple[list[int], list[int]]:
    """Sample indices ``(train, val)`` with whole recordings on one side, seeded.

    Recordings are grouped by their most frequent class; from each group
    ``round(val_fraction * n)`` recordings go to validation (at least one where the group
    has two or more, never all of them), so every class tends to be on both sides.

    >>> s = [Sample(Path(f"{r}_{i}.png"), r % 2, f"r{r}") for r in range(10) for i in range(3)]
    >>> ds = LabelledSet("quality", ("bad", "good"), tuple(s), Path("."))
    >>> train, val = split_by_recording(ds, 0.2, seed=1)
    >>> len(train), len(val), sorted({ds.samples[i].recording for i in val})
    (24, 6, ['r7', 'r8'])
    """
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    recs = ds.recordings()
    per_rec: dict[str, Counter] = defaultdict(Counter)
    for s in ds.samples:
        per_rec[s.recording][s.label] += 1
    rng = np.random.default_rng(seed)
    order = [recs[i] for i in rng.permutation(len(recs))]
    groups: dict[int, list[str]] = defaultdict(list)
    for r in order:
        groups[per_rec[r].most_common(1)[0][0]].append(r)
    val_recs: set[str] = set()
    if val_fraction > 0:
        for label in sorted(groups):
            g = groups[label]
            k = int(round(val_fraction * len(g)))
            if len(g) >= 2:
                k = min(max(k, 1), len(g) - 1)
            val_recs.update(g[:k])
    if val_fraction > 0 and not val_recs:
        log.warning("%s: only %d recording(s): no validation set", ds.source, len(recs))
    train = [i for i, s in enumerate(ds.samples) if s.recording not in val_recs]
    val = [i for i, s in enumerate(ds.samples) if s.recording in val_recs]
    return train, val


def split_by_names(ds: LabelledSet, val_recordings: Sequence[str]) -> tuple[list[int], list[int]]:
    """``(train, val)`` with the named recordings as validation; unknown names refused."""
    known = set(ds.recordings())
    unknown = [r for r in val_recordings if r not in known]
    if unknown:
        shown = ", ".join(sorted(known)[:6]) + (", ..." if len(known) > 6 else "")
        raise UsageError(f"--val-recordings: no recording named {', '.join(unknown)} in the "
                         f"dataset (recordings: {shown})")
    names = set(val_recordings)
    train = [i for i, s in enumerate(ds.samples) if s.recording not in names]
    val = [i for i, s in enumerate(ds.samples) if s.recording in names]
    return train, val


def check_no_leak(train: LabelledSet, val: LabelledSet) -> None:
    """Refuse a split with a recording or an image file on both sides (one-line UsageError).

    >>> a = LabelledSet("organ", ("ear",), (Sample(Path("a.png"), 0, "p1"),), Path("t"))
    >>> b = LabelledSet("organ", ("ear",), (Sample(Path("b.png"), 0, "p1"),), Path("v"))
    >>> check_no_leak(a, b)
    Traceback (most recent call last):
    ...
    endostream.errors.UsageError: the split leaks: recording p1 is in both the training \
and the validation set, which inflates validation accuracy; keep each recording on one side
    """
    shared = [r for r in val.recordings() if r in set(train.recordings())]
    if not shared:
        files = {s.name for s in train.samples}
        shared = [s.name for s in val.samples if s.name in files]
        what = "image"
    else:
        what = "recording"
    if shared:
        more = f" (+{len(shared) - 5} more)" if len(shared) > 5 else ""
        plural = "s" if len(shared) > 1 else ""
        verb = "are" if len(shared) > 1 else "is"
        raise UsageError(
            f"the split leaks: {what}{plural} {', '.join(shared[:5])}{more} {verb} in both the "
            "training and the validation set, which inflates validation accuracy; "
            f"keep each {what} on one side")
