"""The classifiers behind the model contract: :class:`Classifier`.

A :class:`Classifier` is one combined ONNX file (quality and organ heads, one run per
batch) or two single-head files. Loading checks the contract (docs/model-contract.md,
:mod:`endostream.contract`) with onnxruntime alone, so the runtime needs no
``onnx`` package, and refuses
anything else with a one-line :class:`~endostream.errors.ModelError` that names the
problem and the fix. A warm-up run on a batch of two black images checks what the graph
declares cannot show: that the batch axis really is dynamic, that every head is as wide
as its label list and that it returns probabilities.

>>> clf = Classifier.load("endostream.onnx", device="cpu")  # doctest: +SKIP
>>> probs = clf.run(np.zeros((4, 224, 224, 3), np.uint8))  # doctest: +SKIP
>>> {head: p.shape for head, p in probs.items()}  # doctest: +SKIP
{'quality': (4, 2), 'organ': (4, 3)}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from endostream.contract import (
    GOOD_LABEL,
    HEADS,
    INPUT_NAME,
    INPUT_SHAPE,
    META_HEADS,
    META_PRECISION,
    META_SCHEMA,
    PRECISIONS,
    SCHEMA_VERSION,
)
from endostream.errors import EndostreamError, ModelError, UsageError
from endostream.inference.providers import (
    CPU_CHOICE,
    ORT_LOG_FATAL,
    IoBindingRunner,
    ProviderChoice,
    choose_providers,
    open_session,
    ort_error_text,
    session_options,
)

log = logging.getLogger(__name__)

#: A model is one combined file or one file per head: at most this many files.
MAX_MODEL_FILES = 2


def check_model_count(paths: Sequence[object]) -> None:
    """The one rule on how many model files a run takes (:data:`MAX_MODEL_FILES`)."""
    if not paths:
        raise UsageError("no model file given; pass one combined .onnx file "
                         "(or two single-head files)")
    if len(paths) > MAX_MODEL_FILES:
        raise UsageError(f"{len(paths)} model files given; pass one combined file "
                         "or two single-head files")


#: Warm-up batch: two images, so that a batch axis fixed to 1 inside the graph fails here
#: and not in the middle of a video.
WARMUP_BATCH = 2
#: How far a row of probabilities may sum from 1 (fp16 outputs get 10x more).
PROB_TOLERANCE = 1e-3
_HASH_CHUNK = 1 << 20
_REEXPORT = "re-export it with `endostream export`"


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class _ModelFile:
    """One loaded file: its session, the heads it carries and how to run it."""

    path: Path
    sha256: str
    heads: dict[str, list[str]]
    fp16: bool
    session: ort.InferenceSession
    runner: Callable[[np.ndarray], list[np.ndarray]]


class Classifier:
    """Quality and/or organ heads from one combined file or two single-head files.

    Build it with :meth:`load`. ``heads`` maps head name to its ordered labels (from the
    file's metadata), ``provider`` is ``"cpu"``, ``"cuda"`` or ``"tensorrt"``, ``sha256``
    the file hash (two comma-joined for two files). :meth:`run` is thread-safe.

    >>> with Classifier.load(["quality.onnx", "organ.onnx"]) as clf:  # doctest: +SKIP
    ...     clf.describe()["heads"]
    {'quality': ['bad', 'good'], 'organ': ['ear', 'nose', 'vocal_folds']}
    """

    def __init__(self, files: Sequence[_ModelFile], provider: str):
        self._files = list(files)
        self.provider = provider
        self.paths: tuple[Path, ...] = tuple(f.path for f in self._files)
        self.sha256 = ",".join(f.sha256 for f in self._files)
        merged = {h: labels for f in self._files for h, labels in f.heads.items()}
        self.heads: dict[str, list[str]] = {h: merged[h] for h in HEADS if h in merged}

    @classmethod
    def load(
        cls,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        device: str = "auto",
        threads: int | None = None,
    ) -> Classifier:
        """Load and validate one combined file or two single-head files.

        ``device`` is ``auto`` | ``cpu`` | ``cuda`` | ``tensorrt`` (see
        :mod:`endostream.inference.providers`); ``threads`` the CPU intra-op threads per session
        (default: all cores this process may use). Raises :class:`ModelError` for a
        missing file or a contract violation, :class:`UsageError` for a GPU device that
        cannot start.
        """
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        paths = [Path(p) for p in paths]
        check_model_count(paths)
        choice = choose_providers(device)
        options = session_options(threads)
        files: list[_ModelFile] = []
        for path in paths:
            # A later file follows the first one's provider: if auto fell back to the CPU
            # for the first, the second does not try the GPU again.
            file, choice = _load_file(path, choice, options)
            for other in files:
                shared = sorted(set(other.heads) & set(file.heads))
                if shared:
                    raise ModelError(
                        f"'{other.path}' and '{path}' both carry the {shared[0]!r} head; "
                        "pass one combined file, or one file per head"
                    )
            files.append(file)
        clf = cls(files, choice.name)
        log.info("loaded %s on %s: %s", ", ".join(map(str, clf.paths)), clf.provider,
                 "; ".join(f"{h}={len(v)} labels" for h, v in clf.heads.items()))
        return clf

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Classify ``batch`` (uint8 ``[N, 224, 224, 3]`` RGB): ``{head: float32 [N, C]}``.

        One onnxruntime run per file. A malformed batch is a programming error
        (:class:`ValueError`); a failing run raises :class:`ModelError`.
        """
        if not self._files:
            raise ValueError("this Classifier is closed")
        if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8:
            got = batch.dtype if isinstance(batch, np.ndarray) else type(batch).__name__
            raise ValueError(f"batch must be a uint8 numpy array [N, 224, 224, 3], got {got}")
        if batch.ndim != 4 or batch.shape[1:] != INPUT_SHAPE or batch.shape[0] < 1:
            raise ValueError("batch must have shape [N, 224, 224, 3] with N >= 1, "
                             f"got {list(batch.shape)}")
        batch = np.ascontiguousarray(batch)
        result: dict[str, np.ndarray] = {}
        for f in self._files:
            try:
                outputs = f.runner(batch)
            except Exception as e:  # noqa: BLE001 - onnxruntime errors have no common base
                raise ModelError(f"inference failed in '{f.path}' on a batch of {len(batch)} "
                                 f"frames ({ort_error_text(e)}); {_REEXPORT}, or try --batch 1 "
                                 "or --device cpu") from e
            for head, out in zip(f.heads, outputs, strict=True):
                result[head] = np.asarray(out, dtype=np.float32)
        return {h: result[h] for h in self.heads}

    def describe(self) -> dict[str, Any]:
        """The ``models`` entry of ``sections.json``: path(s), sha256 and heads."""
        return {
            "path": ",".join(str(p) for p in self.paths),
            "sha256": self.sha256,
            "heads": {h: list(v) for h, v in self.heads.items()},
        }

    def close(self) -> None:
        """Release the sessions (and their memory); :meth:`run` fails afterwards."""
        self._files = []

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Classifier({', '.join(map(str, self.paths))!r}, provider={self.provider!r})"


# --- loading ---------------------------------------------------------------------------


def _load_file(path: Path, choice: ProviderChoice,
               options: ort.SessionOptions) -> tuple[_ModelFile, ProviderChoice]:
    """Validate ``path`` on a CPU session, then open it on ``choice``; returns the choice
    that really started (``auto`` may fall back to the CPU)."""
    where = f"model '{path}'"
    if not path.exists():
        raise ModelError(f"{where} not found; pass the path of an .onnx file made by "
                         "`endostream export`")
    if not path.is_file():
        raise ModelError(f"{where} is not a file; pass the path of an .onnx file")
    try:
        digest = sha256_file(path)
    except OSError as e:
        raise ModelError(f"{where} cannot be read ({e.strerror}); check its permissions") from e
    if path.stat().st_size == 0:
        # said here: onnxruntime's own words for an empty file differ between releases
        raise ModelError(f"{where} is not an ONNX model, or is truncated (the file is empty); "
                         f"copy it again or {_REEXPORT}")
    # The contract is checked on a CPU session first: that is cheap, and a GPU provider
    # (TensorRT builds engines for minutes) is only started for a file that passes.
    session = _open(where, path, CPU_CHOICE, options)
    heads, precision = _check_contract(where, session)
    fp16 = precision == "fp16"
    if precision == "int8" and choice.on_gpu:
        # Before any GPU session starts. The CUDA provider runs QDQ graphs as float32 with
        # extra quantise/dequantise steps, and TensorRT's int8 path is not validated here.
        raise ModelError(
            f"{where} is an int8 variant: int8 variants are for the CPU and would be slower on "
            f"the {choice.name} provider: use --device cpu, or the fp32 file on the GPU"
        )
    if choice.on_gpu:
        session, choice = _open(where, path, choice, options, with_choice=True)
    if fp16 and not choice.on_gpu:
        raise ModelError(
            f"{where} is an fp16 variant: fp16 variants are for GPUs; on the CPU they are slower "
            "and less exact: use the fp32 file (or --device cuda on a machine with an NVIDIA GPU)"
        )
    names = list(heads)
    runner = IoBindingRunner(session, names) if choice.on_gpu else _plain_runner(session, names)
    file = _ModelFile(path, digest, heads, fp16, session, runner)
    _warm_up(where, file)
    return file, choice


def _open(where: str, path: Path, choice: ProviderChoice, options: ort.SessionOptions,
          with_choice: bool = False):
    """``open_session`` with onnxruntime's load errors turned into :class:`ModelError`."""
    try:
        session, started = open_session(path, choice, options)
    except EndostreamError:
        raise
    except (ort_state.InvalidProtobuf, ort_state.InvalidArgument) as e:
        raise ModelError(f"{where} is not an ONNX model, or is truncated ({ort_error_text(e)}); "
                         f"copy it again or {_REEXPORT}") from e
    except ort_state.InvalidGraph as e:
        raise ModelError(f"{where} is not a valid ONNX graph ({ort_error_text(e)}); "
                         f"{_REEXPORT}") from e
    except ort_state.NoSuchFile as e:
        raise ModelError(f"{where} not found; pass the path of an .onnx file") from e
    except Exception as e:  # noqa: BLE001 - Fail, NotImplemented, RuntimeException, ...
        raise ModelError(f"onnxruntime {ort.__version__} cannot load {where} "
                         f"({ort_error_text(e)}); {_REEXPORT}, or update onnxruntime") from e
    return (session, started) if with_choice else session


def _check_contract(where: str, session: ort.InferenceSession) -> tuple[dict[str, list[str]], str]:
    """Heads and precision of a file, or :class:`ModelError` for the first violation."""
    meta = session.get_modelmeta().custom_metadata_map
    schema = meta.get(META_SCHEMA)
    if schema is not None and schema != SCHEMA_VERSION:
        raise ModelError(f"{where} follows model contract version {schema!r}, this endostream "
                         f"reads version {SCHEMA_VERSION}; upgrade endostream or {_REEXPORT}")
    _check_input(where, session.get_inputs())
    if schema is None:
        missing = "no endostream metadata" if not any(k.startswith("endostream.") for k in meta) \
            else f"no {META_SCHEMA} in its metadata"
        raise ModelError(f"{where} has {missing}, so it was not made by `endostream export`; "
                         f"{_REEXPORT}")
    heads = _parse_heads(where, meta.get(META_HEADS))
    outputs = {o.name: o for o in session.get_outputs()}
    fp16 = False
    for head, labels in heads.items():
        out = outputs.get(head)
        if out is None:
            raise ModelError(f"{where} declares the {head!r} head but the graph has no output "
                             f"named {head!r} (outputs: {', '.join(outputs)}); {_REEXPORT}")
        if out.type not in ("tensor(float)", "tensor(float16)"):
            raise ModelError(f"{where}: output {head!r} is {out.type}; the contract wants float32 "
                             f"probabilities [N, {len(labels)}]; {_REEXPORT}")
        fp16 |= out.type == "tensor(float16)"
        if len(out.shape) != 2:
            raise ModelError(f"{where}: output {head!r} has shape {_fmt(out.shape)}; the contract "
                             f"wants [N, {len(labels)}]; {_REEXPORT}")
        if isinstance(out.shape[1], int):
            _check_width(where, head, labels, out.shape[1])
    extra = [name for name in outputs if name not in heads]
    if extra:
        log.debug("%s: ignoring outputs that are no head: %s", where, ", ".join(extra))
    precision = meta.get(META_PRECISION, "fp32")
    if precision not in PRECISIONS:
        raise ModelError(f"{where}: {META_PRECISION} is {precision!r}, expected one of "
                         f"{', '.join(PRECISIONS)}; {_REEXPORT}")
    return heads, "fp16" if fp16 else precision


def _check_input(where: str, inputs: Sequence[ort.NodeArg]) -> None:
    want = f"'{INPUT_NAME}' uint8 [N, 224, 224, 3]"
    if len(inputs) != 1:
        raise ModelError(f"{where} has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                         f"the contract has exactly one, {want}; {_REEXPORT}")
    inp = inputs[0]
    dtype = inp.type.removeprefix("tensor(").removesuffix(")")
    shape = inp.shape
    if dtype in ("float", "float16", "double"):
        layout = "NCHW " if len(shape) == 4 and shape[1] in (1, 3) else ""
        bits = {"float": "float32", "float16": "float16", "double": "float64"}[dtype]
        raise ModelError(
            f"{where} takes {bits} input {_fmt(shape)}, not {want}: this looks like a {bits} "
            f"{layout}model made elsewhere; re-export with `endostream export` so scaling and "
            "normalisation are inside the graph"
        )
    if dtype != "uint8":
        raise ModelError(f"{where} takes {dtype} input; the contract wants {want}; {_REEXPORT}")
    if len(shape) != 4 or any(isinstance(d, int) and d != w
                              for d, w in zip(shape[1:], INPUT_SHAPE, strict=True)):
        raise ModelError(f"{where} takes input of shape {_fmt(shape)}; the contract wants "
                         f"[N, 224, 224, 3] (RGB, channels last); {_REEXPORT}")
    if isinstance(shape[0], int):
        raise ModelError(f"{where} has a fixed batch size of {shape[0]}; the contract wants a "
                         f"dynamic batch axis N; {_REEXPORT}")
    if inp.name != INPUT_NAME:
        raise ModelError(f"{where}: its input is named {inp.name!r}; the contract names it "
                         f"{INPUT_NAME!r}; {_REEXPORT}")


def _parse_heads(where: str, raw: str | None) -> dict[str, list[str]]:
    example = '{"quality": ["bad", "good"], "organ": ["ear", "nose", "vocal_folds"]}'
    if raw is None:
        raise ModelError(f"{where} has no {META_HEADS} in its metadata (head -> labels, like "
                         f"{example}); {_REEXPORT}")
    try:
        heads = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ModelError(f"{where}: {META_HEADS} is not valid JSON ({e.msg} at character {e.pos}); "
                         f"it must look like {example}; {_REEXPORT}") from e
    if not isinstance(heads, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) and x for x in v)
        for k, v in heads.items()
    ):
        raise ModelError(f"{where}: {META_HEADS} must map each head to a list of label strings, "
                         f"like {example}; got {raw[:80]}; {_REEXPORT}")
    unknown = [h for h in heads if h not in HEADS]
    if unknown:
        raise ModelError(f"{where} has unknown head(s) {', '.join(map(repr, unknown))}; the "
                         f"contract knows 'quality' and 'organ': rename them in {META_HEADS} "
                         "and re-export")
    if not heads:
        raise ModelError(f"{where} declares no heads; it needs a 'quality' and/or an 'organ' "
                         f"head; {_REEXPORT}")
    for head, labels in heads.items():
        if len(labels) < 2:
            raise ModelError(f"{where}: head {head!r} has {len(labels)} label(s); a head needs "
                             f"two or more classes; {_REEXPORT}")
        if len(set(labels)) != len(labels):
            twice = next(x for x in labels if labels.count(x) > 1)
            raise ModelError(f"{where}: head {head!r} lists label {twice!r} twice; {_REEXPORT}")
    if "quality" in heads and GOOD_LABEL not in heads["quality"]:
        raise ModelError(f"{where}: quality labels {heads['quality']} have no {GOOD_LABEL!r}; "
                         f"name the usable-image class {GOOD_LABEL!r} and re-export")
    return heads


def _check_width(where: str, head: str, labels: list[str], width: int) -> None:
    if width != len(labels):
        raise ModelError(f"{where}: output {head!r} has {width} columns but {META_HEADS} lists "
                         f"{len(labels)} labels ({', '.join(labels)}); fix the label list or the "
                         f"last layer and re-export")


def _warm_up(where: str, file: _ModelFile) -> None:
    """One run on black images: checks batch handling, widths and probabilities."""
    batch = np.zeros((WARMUP_BATCH, *INPUT_SHAPE), np.uint8)
    try:
        outputs = file.runner(batch)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{where} loads but fails on a test batch of {WARMUP_BATCH} images "
                         f"({ort_error_text(e)}); {_REEXPORT}") from e
    tolerance = PROB_TOLERANCE * (10 if file.fp16 else 1)
    for (head, labels), out in zip(file.heads.items(), outputs, strict=True):
        out = np.asarray(out, np.float32)
        if out.ndim == 2 and out.shape[0] == WARMUP_BATCH:
            _check_width(where, head, labels, out.shape[1])
        else:
            raise ModelError(f"{where}: output {head!r} has shape {list(out.shape)} for a batch "
                             f"of {WARMUP_BATCH}; the contract wants [N, {len(labels)}] with a "
                             f"dynamic batch axis; {_REEXPORT}")
        sums = out.sum(axis=1)
        if not np.all(np.isfinite(out)) or out.min() < -tolerance or \
                np.abs(sums - 1).max() > tolerance:
            raise ModelError(f"{where}: output {head!r} does not hold probabilities (a row sums to "
                             f"{float(sums[0]):.4g}); the contract wants softmax inside the graph; "
                             f"{_REEXPORT}")


def _fmt(shape: Sequence[Any]) -> str:
    return "[" + ", ".join("N" if d is None else str(d) for d in shape) + "]"


# --- running ---------------------------------------------------------------------------


def _plain_runner(session: ort.InferenceSession, names: list[str]):
    # A failing run raises, and the caller reports that in one line; onnxruntime's own
    # error log of the same failure would be a second, coloured line on stderr.
    options = ort.RunOptions()
    options.log_severity_level = ORT_LOG_FATAL

    def run(batch: np.ndarray) -> list[np.ndarray]:
        return session.run(names, {INPUT_NAME: batch}, options)
    return run
