"""fp32 model file -> statically quantised int8 file for the CPU, gated before it is written.

:func:`quantize_model` takes a contract-conforming fp32 file (``endostream export``'s
output) and writes an int8 variant that meets the same contract (uint8 ``frames`` in,
float32 probabilities out, labels in the metadata) with ``endostream.precision = "int8"``
and ``endostream.quantization`` saying how it was made:

- **format**: onnxruntime's static QDQ quantisation (QuantizeLinear/DequantizeLinear
  pairs around each quantised op, which the CPU provider fuses into int8 kernels):
  weights int8 per output channel, activations uint8 per tensor, MinMax calibration.
  The graph's input (uint8), its casts and its float32 outputs are unchanged.
- **calibration**: :data:`CALIBRATION_FRAMES` frames rendered as the parity frames are
  (:func:`.parity.parity_frames`: synthetic scopes through the runtime's own content-area
  crop and resize, every fourth through a training field-of-view mask), with their own
  seed, so the activation ranges are the ones the runtime's pixels produce.
- **gate** (nothing is written unless it passes), both heads against the fp32 file in
  onnxruntime on the CPU: argmax agreement of at least :data:`MIN_AGREEMENT` on the
  calibration and parity frames, and accuracy no more than :data:`MAX_ACCURACY_DROP`
  below the fp32 file's on a held-out set: a labelled data set (``heldout``, read as
  ``endostream evaluate`` reads it) or, without one, :data:`HELDOUT_FRAMES` generated
  frames of a third seed whose scene and look are known (:func:`.parity.parity_labels`).
  Generated frames say nothing about a model trained on real footage: pass its own
  held-out recordings there.

The runtime refuses an int8 file on GPU providers (:mod:`endostream.inference.classifier`):
the CUDA provider would run the QDQ graph in float32 with extra steps.

Measured 2026-12-03 (2 shared vCPU, AMD EPYC with AVX-512 VNNI, onnxruntime 1.31.1,
under heavy load from other jobs; docs/notes/int8.md): the shared model's int8 file
is 1.1-1.7x faster than fp32 in CPU time, not the 1.5x hoped for (EfficientNet's element-wise
SiLU, squeeze-excitation and residual ops become slow ``QLinear*`` kernels); the bundled
pair's int8 file fails the gate (quality head 94.6 % agreement).

>>> QDQ_SETTINGS["per_channel"], QDQ_SETTINGS["weights"]
(True, 'int8')
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx

import endostream
from endostream.contract import (
    META_EXPORTED_AT,
    META_EXPORTER,
    META_PRECISION,
    META_QUANTIZATION,
)
from endostream.errors import ModelError, UsageError
from endostream.evaluation.datasets import read_dataset
from endostream.export.parity import PARITY_FRAMES, parity_frames, parity_labels
from endostream.inference.classifier import Classifier, sha256_file
from endostream.output.atomic import AtomicFile
from endostream.output.guard import check_outputs

log = logging.getLogger(__name__)

#: Calibration frames: every scene x look x mask combination of the parity frames several
#: times over.
CALIBRATION_FRAMES = 96
#: Seed of the calibration frames (the parity frames use :data:`.parity.PARITY_SEED`).
CALIBRATION_SEED = 31
#: Generated held-out frames when no labelled set is given, and their seed.
HELDOUT_FRAMES = 96
HELDOUT_SEED = 47
#: Frames per calibration / comparison batch.
BATCH = 16

#: Least share of frames, per head, on which int8 and fp32 pick the same class.
MIN_AGREEMENT = 0.99
#: Largest accuracy loss (absolute) of int8 against fp32 on the held-out frames, per head.
MAX_ACCURACY_DROP = 0.01

#: Ops left in float32 (see :func:`_quantize`).
FLOAT_OPS = ("Gemm", "Softmax")

#: What is recorded in ``endostream.quantization`` besides the calibration.
#: ``reduce_range``: weights in 7 bits. On an x86 CPU without VNNI, onnxruntime's int8
#: kernels multiply uint8 activations by int8 weights in pairs summed into int16
#: (``vpmaddubsw``), which saturates for large products: 255 x 127 x 2 overflows, 255 x 63 x 2
#: does not. With 8-bit weights the shared model's quality head agreed with fp32 on 97.3 %
#: of the gate frames on an AVX2-only EPYC (and passed on one with AVX-512 VNNI); 7-bit
#: weights make the file give the same answers on both kinds of CPU, whichever made it
#: (onnxruntime's quantisation docs recommend it for non-VNNI machines).
QDQ_SETTINGS = {"format": "QDQ", "weights": "int8", "per_channel": True,
                "reduce_range": True, "activations": "uint8", "calibration": "MinMax"}


@dataclass(frozen=True)
class HeadGate:
    """One head's gate figures: agreement on the gate frames, accuracy on held-out."""

    agreement: float
    accuracy_fp32: float | None
    accuracy_int8: float | None
    heldout_frames: int

    @property
    def passed(self) -> bool:
        if self.agreement < MIN_AGREEMENT:
            return False
        if self.accuracy_fp32 is None or self.accuracy_int8 is None:
            return True
        return self.accuracy_int8 >= self.accuracy_fp32 - MAX_ACCURACY_DROP - 1e-12


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize_model` wrote (or would have: ``passed`` False raises)."""

    path: Path
    size_bytes: int
    source_size_bytes: int
    gate_frames: int
    heldout: str  #: where the held-out frames came from
    heads: dict[str, HeadGate] = field(default_factory=dict)
    quantize_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.heads.values())

    def summary(self) -> str:
        """One line per head and a verdict, e.g. for the export command's output."""
        lines = []
        for head, g in self.heads.items():
            acc = ("no held-out labels" if g.accuracy_fp32 is None else
                   f"accuracy {g.accuracy_int8:.3f} int8 / {g.accuracy_fp32:.3f} fp32 on "
                   f"{g.heldout_frames} held-out frames")
            lines.append(f"int8 gate {head}: argmax agrees with fp32 on {g.agreement:.1%} of "
                         f"{self.gate_frames} calibration and parity frames (>= "
                         f"{MIN_AGREEMENT:.0%}), {acc} (drop <= {MAX_ACCURACY_DROP:.2f}) "
                         f"{'ok' if g.passed else 'FAILED'}")
        lines.append(f"held-out frames: {self.heldout}")
        return "\n".join(lines)


def quantize_model(source: str | Path, out: str | Path, *, heldout: str | Path | None = None,
                   calibration_frames: int = CALIBRATION_FRAMES,
                   heldout_frames: int = HELDOUT_FRAMES, overwrite: bool = False,
                   enforce_gate: bool = True) -> QuantizeResult:
    """Quantise the fp32 file ``source`` into ``out`` (int8, QDQ); gated, atomic.

    Raises :class:`ModelError` when ``source`` is no fp32 contract file or the gate fails
    (nothing is written then), :class:`UsageError` for a bad ``heldout`` set and
    :class:`OutputError` when ``out`` cannot be written. ``enforce_gate=False`` (the
    benchmarks' random-weight models, whose speed does not depend on the weights; never
    offered on the command line) writes the file whatever the gate says and only logs it.
    """
    started = time.perf_counter()
    source, out = Path(source), Path(out)
    if calibration_frames < 1 or heldout_frames < 1:
        raise UsageError("calibration and held-out frame counts must be at least 1")
    check_outputs({"--out": out}, {"--from-onnx": [source]}, overwrite=overwrite)
    with Classifier.load(source, device="cpu") as reference:
        precision = _precision(source)
        if precision != "fp32":
            raise ModelError(f"model '{source}' is {precision}; int8 is made from the fp32 "
                             "file that `endostream export` writes without --fp16")
        calibration = np.array(parity_frames(calibration_frames, CALIBRATION_SEED))
        gate_frames = np.concatenate([calibration, parity_frames(PARITY_FRAMES)])
        held_images, held_labels, held_text = _heldout(heldout, heldout_frames, reference.heads)
        expected = _run(reference, gate_frames)
        expected_held = _run(reference, held_images)

        pending = AtomicFile(out, open_file=False, suffix=".partial.onnx",
                             hint="choose another --out")
        try:
            _quantize(source, pending.temp_path, calibration)
            _write_metadata(pending.temp_path, source, calibration_frames)
            with Classifier.load(pending.temp_path, device="cpu") as candidate:
                got = _run(candidate, gate_frames)
                got_held = _run(candidate, held_images)
            heads = {
                head: HeadGate(
                    agreement=float(np.mean(got[head].argmax(1) == expected[head].argmax(1))),
                    accuracy_fp32=_accuracy(expected_held[head], held_labels.get(head)),
                    accuracy_int8=_accuracy(got_held[head], held_labels.get(head)),
                    heldout_frames=int(np.sum(held_labels.get(head, np.array([])) >= 0)),
                )
                for head in reference.heads
            }
            result = QuantizeResult(
                path=out, size_bytes=pending.temp_path.stat().st_size,
                source_size_bytes=source.stat().st_size, gate_frames=len(gate_frames),
                heldout=held_text, heads=heads, quantize_s=time.perf_counter() - started)
            if not result.passed and not enforce_gate:
                log.warning("int8 gate failed, file written anyway (enforce_gate=False): %s",
                            result.summary().replace("\n", "; "))
            elif not result.passed:
                raise ModelError("the int8 file failed its gate, nothing was written: "
                                 + result.summary().replace("\n", "; ")
                                 + "; keep the fp32 file")
            pending.commit()
        finally:
            pending.discard()
    log.info("wrote %s (%.1f MB int8, from %.1f MB fp32) in %.1f s", out,
             result.size_bytes / 1e6, result.source_size_bytes / 1e6, result.quantize_s)
    return result


def _precision(path: Path) -> str:
    model = onnx.load_model(str(path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    return meta.get(META_PRECISION, "fp32")


def _quantize(source: Path, target: Path, calibration: np.ndarray) -> None:
    """onnxruntime's shape inference and graph clean-up, then static QDQ quantisation."""
    from onnxruntime.quantization import (  # noqa: PLC0415 - heavy, only when quantising
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process  # noqa: PLC0415

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = _batches(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {"frames": batch}

    with tempfile.TemporaryDirectory(prefix="endostream-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Symbolic shape inference is for transformer graphs; onnx's own inference is enough.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        # The heads stay float: a quantised Gemm clips logits to the range calibration saw,
        # so a frame beyond it (a stronger colour, another scope) gets tied probabilities
        # instead of a confident answer; a quantised Softmax gives rows that sum to 1 only
        # within 1/255. Both are a negligible share of the compute.
        ops = sorted({n.op_type for n in onnx.load_model(str(prepared)).graph.node}
                     - set(FLOAT_OPS))
        try:
            quantize_static(
                str(prepared), str(target), Frames(), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=ops,
                per_channel=QDQ_SETTINGS["per_channel"],
                reduce_range=QDQ_SETTINGS["reduce_range"], activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
            )
        except Exception as e:  # noqa: BLE001 - the quantiser raises plain exceptions
            raise ModelError(f"onnxruntime could not quantise '{source}' ({e}); keep the fp32 "
                             "file") from e


def _write_metadata(path: Path, source: Path, calibration_frames: int) -> None:
    """The source's contract metadata with precision int8 and how it was quantised."""
    meta = {p.key: p.value
            for p in onnx.load_model(str(source), load_external_data=False).metadata_props}
    meta.update({
        META_PRECISION: "int8",
        META_EXPORTED_AT: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        META_EXPORTER: f"endostream {endostream.__version__}",
        META_QUANTIZATION: json.dumps({
            **QDQ_SETTINGS,
            "calibration_frames": f"{calibration_frames} synthetic scopes, runtime crop, "
                                  f"training masks, seed {CALIBRATION_SEED}",
            "fp32_sha256": sha256_file(source),
        }),
    })
    model = onnx.load_model(str(path))
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, meta)
    onnx.save_model(model, str(path))


def _heldout(dataset: str | Path | None, count: int, heads: Mapping[str, list[str]]
             ) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """Held-out images and, per head, label indices into the model's labels (-1: none)."""
    if dataset is None:
        images = np.array(parity_frames(count, HELDOUT_SEED))
        named = parity_labels(count)
        labels = {h: np.array([heads[h].index(x) if x in heads[h] else -1 for x in named[h]])
                  for h in heads}
        return images, labels, f"{count} generated frames (seed {HELDOUT_SEED}; pass " \
                               "--heldout DATASET to check on your own recordings)"
    if not Path(dataset).exists():
        raise UsageError(f"--heldout {dataset} not found; give a labelled set as for evaluate")
    per_head = {}
    for head, model_labels in heads.items():
        try:
            ds = read_dataset(dataset, head)
        except UsageError:
            log.info("%s: no %s labels; the int8 gate checks that head by agreement only",
                     dataset, head)
            continue
        unknown = sorted(set(ds.labels) - set(model_labels))
        if unknown:
            raise UsageError(f"--heldout {dataset}: {head} label(s) {', '.join(unknown)} are "
                             f"not the model's ({', '.join(model_labels)})")
        per_head[head] = ds
    if not per_head:
        raise UsageError(f"--heldout {dataset} has no labels for the model's heads "
                         f"({', '.join(heads)}); give a labelled set as for evaluate")
    # One image list: the union of each head's samples, by name.
    order: dict[str, np.ndarray] = {}
    for ds in per_head.values():
        for i, s in enumerate(ds.samples):
            order.setdefault(s.name, ds.load(i))
    names = list(order)
    images = np.stack([order[n] for n in names])
    labels = {}
    for head, ds in per_head.items():
        index = {s.name: heads[head].index(ds.labels[s.label]) for s in ds.samples}
        labels[head] = np.array([index.get(n, -1) for n in names])
    return images, labels, f"{len(names)} frames of {dataset}"


def _run(clf: Classifier, images: np.ndarray) -> dict[str, np.ndarray]:
    outs = [clf.run(batch) for batch in _batches(images)]
    return {h: np.concatenate([o[h] for o in outs]) for h in clf.heads}


def _batches(images: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(images), BATCH):
        yield np.ascontiguousarray(images[start:start + BATCH])


def _accuracy(probs: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    known = labels >= 0
    if not known.any():
        return None
    return float(np.mean(probs[known].argmax(1) == labels[known]))
