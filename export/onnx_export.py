"""Checkpoints -> one ONNX file that meets the model contract, checked before it is written.

:func:`export_onnx` loads each head's checkpoint safely, wraps the networks in
:class:`~.graph.FrameClassifier` (uint8 NHWC input ``frames``, one softmax output per
head, dynamic batch), exports the graph, writes the contract's metadata, runs
``onnx.checker`` and the parity check (:mod:`.parity`) on a temporary file beside the
target, and only then moves it into place: a failed export leaves nothing behind. A
shared-backbone checkpoint (``train --task both``) named for both heads becomes one graph
that computes the backbone once (:func:`.multitask.shared_modules`, ``export --shared``).

Exporter: the TorchScript exporter (``dynamo=False``), measured against the dynamo
exporter (torch 2.14 default) on the combined two-head graph, one run, 2 vCPU Zen 3:

- export alone: 2.2-2.7 s against 29 s (single head: 1.0-1.4 s against 17.5 s); the
  whole ``export_onnx`` with parity: 5.3 s against 31.5 s;
- file: 32.0 MB against 33.7 MB; both pass ``onnx.checker`` and load in onnxruntime 1.31;
- onnxruntime CPU, 2 threads, batch 16, both heads, median of 15 interleaved runs:
  37.9 against 36.9 frames/s (within this machine's noise), session load 107 against
  139 ms.

The dynamo graph spells ``flatten`` as ``Shape``/``Gather``/``Reshape`` index arithmetic
and average pooling as ``ReduceMean``; the TorchScript graph keeps ``GlobalAveragePool``
and ``Flatten``. Both fold BatchNorm into the convolutions. ``exporter="dynamo"`` stays
available for when torch drops the TorchScript exporter (it warns that it is deprecated).

Offline optimisation: none beyond the exporter's constant folding. onnxruntime's
provider-independent level (``ORT_ENABLE_BASIC``, saved with ``optimized_model_filepath``)
gave the same load time (110 against 107 ms) and speed (37.9 frames/s) and stamps
onnxruntime-only opset imports into the file; the higher levels (NCHWc layouts, fused
CPU kernels) are tied to the CPU provider and would break the file for CUDA/TensorRT.
onnxruntime applies them itself at load time.

>>> from pathlib import Path
>>> spec = HeadSpec("organ", Path("organ.pth"), ("ear", "nose", "vocal_folds"))
>>> spec.name, len(spec.labels)
('organ', 3)
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision

import endostream
from endostream.contract import (
    DEFAULT_LABELS,
    GOOD_LABEL,
    HEADS,
    INPUT_NAME,
    META_EXPORTED_AT,
    META_EXPORTER,
    META_HEADS,
    META_PRECISION,
    META_SCHEMA,
    META_SOURCE_SHA256,
    META_TEMPERATURE,
    META_VERSIONS,
    SCHEMA_VERSION,
)
from endostream.errors import ModelError, UsageError
from endostream.evaluation.shortcut import ShortcutReport, shortcut_check
from endostream.export.graph import FrameClassifier
from endostream.export.model import classifier_from_checkpoint
from endostream.export.multitask import shared_modules
from endostream.export.parity import ParityReport, check_parity
from endostream.export.parity import parity_frames as make_frames
from endostream.frames import MODEL_INPUT_SIZE
from endostream.output.atomic import AtomicFile
from endostream.output.guard import check_outputs

log = logging.getLogger(__name__)

#: Name of the dynamic batch axis in the graph.
BATCH_AXIS = "N"

#: ONNX opset. 17 is supported by onnxruntime 1.14 and later and has every op used here.
DEFAULT_OPSET = 17

#: Lowest opset accepted: 13 is where Softmax got its per-axis meaning.
MIN_OPSET = 13

#: Highest opset the TorchScript exporter writes (torch 2.x).
TORCHSCRIPT_MAX_OPSET = 20

#: ``"torchscript"`` (default, see the module docstring) or ``"dynamo"``.
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_EXPORTER = "torchscript"

#: Lowest opset the dynamo exporter implements.
DYNAMO_MIN_OPSET = 18

#: Batch of the example input used for tracing; not 1, so no op specialises on it.
TRACE_BATCH = 2

#: Precisions: ``fp32`` for every provider, ``fp16`` for GPU providers only.
PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class HeadSpec:
    """One head to export: its name, checkpoint file and ordered class labels."""

    name: str
    checkpoint: Path
    labels: tuple[str, ...]
    temperature: float = 1.0  #: fitted on validation by ``endostream train``; folded in


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote. ``source_sha256`` maps head -> checkpoint digest."""

    path: Path
    precision: str
    heads: dict[str, list[str]]
    source_sha256: dict[str, str]
    size_bytes: int
    export_s: float
    parity: ParityReport
    shortcut: ShortcutReport | None = None  #: the organ head's field-of-view shortcut check


def head_spec(name: str, checkpoint: str | Path, labels: Sequence[str] | None = None,
              temperature: float = 1.0) -> HeadSpec:
    """A :class:`HeadSpec` with the default labels for ``name`` when ``labels`` is None.

    >>> head_spec("quality", "q.pth").labels
    ('bad', 'good')
    """
    if name not in HEADS:
        raise UsageError(f"unknown head {name!r}; the model contract has: {', '.join(HEADS)}")
    chosen = tuple(DEFAULT_LABELS[name] if labels is None else labels)
    if not 0 < temperature < float("inf"):
        raise UsageError(f"{name} temperature must be a positive number, got {temperature}")
    return HeadSpec(name, Path(checkpoint), chosen, float(temperature))


def export_onnx(
    heads: Sequence[HeadSpec],
    out: str | Path,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    exporter: str = DEFAULT_EXPORTER,
    parity_frames: int | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Export ``heads`` (one or both of quality/organ) to ``out``; parity-checked.

    Raises :class:`ModelError` for a bad checkpoint or a failed parity check,
    :class:`UsageError` for bad heads or labels (or an ``out`` that is a checkpoint) and
    :class:`OutputError` when ``out`` cannot be written, or is read-only and ``overwrite``
    is false (:mod:`endostream.output.guard`). Nothing is written unless every check passed.

    ``parity_frames`` overrides the number of parity frames (default
    :data:`~.parity.PARITY_FRAMES`).
    """
    started = time.perf_counter()
    out = Path(out)
    specs = _validate_specs(heads)
    if exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter {exporter!r}; use one of: {', '.join(EXPORTERS)}")
    newest = TORCHSCRIPT_MAX_OPSET if exporter == "torchscript" else onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise UsageError(f"--opset {opset} is out of range; use {MIN_OPSET}..{newest}")
    _check_output(out, heads, overwrite)
    precision = "fp16" if fp16 else "fp32"
    if fp16 and not cpu_runs_half():
        raise UsageError(
            f"--fp16 traces the network in float16 on the CPU, which torch {torch.__version__} "
            "cannot do (no float16 convolution); upgrade torch, or export the fp32 file")

    # Folded into the graph (softmax(logits / T)) and recorded in the metadata.
    temperatures = {spec.name: spec.temperature for spec in specs}
    shared = shared_modules(specs, fp16, temperatures)
    if shared is not None:
        reference, target, shas = shared
    else:
        reference, target, shas = _thesis_modules(specs, fp16, temperatures)

    model = _to_onnx(target, opset, exporter)
    labels = {spec.name: list(spec.labels) for spec in specs}
    _write_metadata(model, labels, shas, precision, exporter, temperatures)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as e:
        raise ModelError(f"the exported graph fails onnx.checker: {_first_line(e)}") from None

    # Written beside ``out`` and checked there: only a file that passed parity is renamed
    # into place, so a failed export never replaces a model that worked.
    pending = AtomicFile(out, open_file=False, suffix=".partial.onnx", hint="choose another --out")
    try:
        onnx.save_model(model, str(pending.temp_path))
        kwargs = {} if parity_frames is None else {"frames": make_frames(parity_frames)}
        report = check_parity(reference, pending.temp_path, precision, **kwargs)
        shortcut = warn_shortcut(reference, labels, kwargs.get("frames"))
        pending.commit()
    finally:
        pending.discard()
    result = ExportResult(
        path=out,
        precision=precision,
        heads=labels,
        source_sha256=shas,
        size_bytes=out.stat().st_size,
        export_s=time.perf_counter() - started,
        parity=report,
        shortcut=shortcut,
    )
    log.info("wrote %s (%.1f MB, %s, %.1f s)", out, result.size_bytes / 1e6, precision,
             result.export_s)
    return result


def warn_shortcut(reference: FrameClassifier, labels: dict[str, list[str]],
                  frames: np.ndarray | None = None) -> ShortcutReport | None:
    """The shortcut check of the organ head on the parity frames, logged (a warning when
    flagged); None without an organ head. Runs the float32 reference, so an fp16 file that
    the CPU cannot run is checked too (parity already tied the file to the reference)."""
    if "organ" not in labels:
        return None
    frames = make_frames() if frames is None else frames

    def predict(x: np.ndarray) -> np.ndarray:
        return reference.predict(torch.from_numpy(np.ascontiguousarray(x)))["organ"].numpy()

    report = shortcut_check(frames, predict, labels["organ"])
    (log.warning if report.flagged else log.info)("%s", report.summary())
    return report


def cpu_runs_half() -> bool:
    """Whether this torch has a CPU float16 convolution (torch 2.1 has none)."""
    x = torch.zeros(1, 1, 3, 3, dtype=torch.float16)
    try:
        torch.nn.functional.conv2d(x, torch.zeros(1, 1, 1, 1, dtype=torch.float16))
    except RuntimeError:
        return False
    return True


def _thesis_modules(specs: list[HeadSpec], fp16: bool, temperatures: dict[str, float]):
    """(reference, module to export, sha per head) for one thesis checkpoint per head."""
    nets, shas = {}, {}
    for spec in specs:
        net, ckpt = classifier_from_checkpoint(spec.checkpoint)
        if ckpt.num_classes != len(spec.labels):
            raise UsageError(
                f"{spec.name} head: {len(spec.labels)} labels given ({', '.join(spec.labels)}) "
                f"but '{spec.checkpoint}' has {ckpt.num_classes} classes; give "
                f"{ckpt.num_classes} labels in training order (--{spec.name}-labels)"
            )
        nets[spec.name], shas[spec.name] = net, ckpt.sha256
    reference = FrameClassifier(nets, temperatures=temperatures)
    target = (FrameClassifier(copy.deepcopy(nets), half=True, temperatures=temperatures)
              if fp16 else reference)
    return reference, target, shas


def _validate_specs(heads: Sequence[HeadSpec]) -> list[HeadSpec]:
    if not heads:
        raise UsageError("nothing to export; give --quality and/or --organ checkpoints")
    names = [h.name for h in heads]
    unknown = [n for n in names if n not in HEADS]
    if unknown:
        raise UsageError(f"unknown head {unknown[0]!r}; the model contract has: {', '.join(HEADS)}")
    if len(set(names)) != len(names):
        raise UsageError(f"head given twice: {names}; give each head once")
    for h in heads:
        labels = list(h.labels)
        if not labels or any(not isinstance(x, str) or not x.strip() for x in labels):
            raise UsageError(f"{h.name} labels must be non-empty names, got {labels}")
        if len(set(labels)) != len(labels):
            raise UsageError(f"{h.name} labels repeat a name: {labels}; give each class once")
        if h.name == "quality" and GOOD_LABEL not in labels:
            raise UsageError(
                f"quality labels {labels} lack '{GOOD_LABEL}', which the runtime needs to "
                "tell usable frames; name the usable class 'good'"
            )
    # Output order is the contract's order, whatever order the caller gave.
    return sorted(heads, key=lambda h: HEADS.index(h.name))


def _check_output(out: Path, heads: Sequence[HeadSpec] = (), overwrite: bool = False) -> None:
    # The one set of output rules (endostream.output.guard): never a checkpoint, a
    # folder that takes new files, no directory or device in the way.
    inputs = {f"--{h.name}": [h.checkpoint, h.checkpoint.with_name(h.checkpoint.stem
                                                                    + ".labels.json")]
              for h in heads}
    check_outputs({"--out": out}, inputs, overwrite=overwrite)


def _to_onnx(module: FrameClassifier, opset: int, exporter: str) -> onnx.ModelProto:
    """Export ``module`` with a dynamic batch axis; returns the in-memory model."""
    example = torch.zeros(TRACE_BATCH, MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3, dtype=torch.uint8)
    outputs = list(module.head_names)
    if exporter == "dynamo":
        # The dynamo exporter has no opset below 18; asking for one makes it try a
        # down-conversion that fails noisily for this graph and keeps 18 anyway.
        if opset < DYNAMO_MIN_OPSET:
            log.info("the dynamo exporter writes opset %d at least", DYNAMO_MIN_OPSET)
        program = torch.onnx.export(
            module, (example,), None, dynamo=True, opset_version=max(opset, DYNAMO_MIN_OPSET),
            input_names=[INPUT_NAME], output_names=outputs,
            dynamic_shapes={INPUT_NAME: {0: torch.export.Dim(BATCH_AXIS)}},
        )
        return program.model_proto
    with tempfile.TemporaryDirectory() as tmpdir, warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (module docstring).
        warnings.filterwarnings("ignore", "You are using the legacy", DeprecationWarning)
        path = Path(tmpdir) / "graph.onnx"
        # torch < 2.5 has only the TorchScript exporter and no ``dynamo`` argument
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(
            torch.onnx.export).parameters else {}
        torch.onnx.export(
            module, (example,), str(path), **legacy, opset_version=opset,
            input_names=[INPUT_NAME], output_names=outputs, do_constant_folding=True,
            dynamic_axes={name: {0: BATCH_AXIS} for name in [INPUT_NAME, *outputs]},
        )
        return onnx.load_model(str(path))


def _write_metadata(
    model: onnx.ModelProto,
    labels: dict[str, list[str]],
    shas: dict[str, str],
    precision: str,
    exporter: str,
    temperatures: dict[str, float] | None = None,
) -> None:
    versions = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
        "torch.onnx": exporter,
    }
    props = {
        META_SCHEMA: SCHEMA_VERSION,
        META_HEADS: json.dumps(labels),
        META_PRECISION: precision,
        META_SOURCE_SHA256: json.dumps(shas),
        META_EXPORTED_AT: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        META_EXPORTER: f"endostream {endostream.__version__}",
        META_VERSIONS: json.dumps(versions),
    }
    if temperatures and any(t != 1.0 for t in temperatures.values()):
        props[META_TEMPERATURE] = json.dumps({h: round(t, 6) for h, t in temperatures.items()})
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, props)
    model.graph.name = "endostream"
    model.doc_string = (
        f"endostream classifier ({precision}): uint8 frames [N,224,224,3] RGB -> "
        + ", ".join(f"{h} {labels[h]}" for h in labels)
    )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
