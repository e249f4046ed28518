"""Export PyTorch EfficientNetB0 checkpoints (thesis format) to one ONNX model file.

Each checkpoint is ``torch.save(model.state_dict(), path)`` of torchvision's
efficientnet_b0 with the classifier replaced by ``Dropout(0.2) + Linear(1280, C)``; a
dict holding ``state_dict`` or ``model_state_dict`` works too. Give one head or both;
both go into one file that runs them in one call. Every export is checked against
PyTorch in onnxruntime before the file is written. Class names come from
``--quality-labels``/``--organ-labels``, else from the ``<checkpoint stem>.labels.json``
that ``endostream train`` writes beside its checkpoint, else the defaults. A temperature
in that sidecar (fitted on validation by train) is folded into the graph: softmax(logits
/ T), recorded in the metadata. The organ head also gets the shortcut check on the parity
frames (answers that change when only the field-of-view mask changes), with a warning when
it is flagged.

examples:
  endostream export --quality quality.pth --organ organ.pth --out endostream.onnx
  endostream export --organ organ.pth --organ-labels ear,nose,larynx --out organ.onnx
  endostream export --quality q.pth --organ o.pth --fp16 --out endostream-fp16.onnx
  endostream export --shared both.pth --out endostream.onnx   # train --task both
  endostream export --shared both.pth --int8 --out endostream-int8.onnx
  endostream export --from-onnx endostream.onnx --int8 --heldout held_out/ --out int8.onnx

``--int8`` writes a statically quantised CPU variant (:mod:`.quantize`): exported in fp32
first (parity-checked), then quantised and gated against that fp32 file.

This module imports no torch: the CLI builds ``--help`` from it on any machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

from endostream.errors import UsageError
from endostream.output.guard import add_overwrite_option, check_outputs

EXAMPLES = """\
examples:
  endostream export --quality quality.pth --organ organ.pth --out endostream.onnx
  endostream export --organ organ.pth --organ-labels ear,nose,larynx --out organ.onnx
  endostream export --quality q.pth --organ o.pth --fp16 --out endostream-fp16.onnx
  endostream export --shared both.pth --int8 --out endostream-int8.onnx
  endostream export --from-onnx endostream.onnx --int8 --heldout held_out/ --out int8.onnx

exit codes: 0 done, 2 bad arguments (or --out naming a checkpoint), 4 bad checkpoint or
parity check or int8 gate failed, 5 output not writable
"""

#: Modules of the ``export`` extra that :func:`run` needs.
REQUIRED_MODULES = ("torch", "torchvision", "onnx")

#: Kept in step with ``onnx_export`` (importing it here would import torch).
DEFAULT_LABELS = {"quality": "bad,good", "organ": "ear,nose,vocal_folds"}
DEFAULT_OPSET = 17


#: ``--help`` groups and the options it leaves to ``--help-all`` (endostream.cli).
HELP_GROUPS = {
    "checkpoints": ["--quality", "--organ", "--shared", "--quality-labels", "--organ-labels"],
    "output": ["--out", "--overwrite", "--fp16", "--int8", "--from-onnx", "--heldout"],
}
RARE_OPTIONS = ["--opset", "--exporter", "--parity-frames"]


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the ``export`` options to ``p``."""
    p.add_argument("--quality", metavar="PTH",
                   help="checkpoint of the quality classifier (default: no quality head)")
    p.add_argument("--organ", metavar="PTH",
                   help="checkpoint of the organ classifier (default: no organ head)")
    p.add_argument("--shared", metavar="PTH",
                   help="checkpoint of a shared-backbone model (endostream train --task both): "
                        "one backbone, both heads, half the inference of two networks "
                        "(default: none)")
    p.add_argument("--out", metavar="ONNX", required=True,
                   help="ONNX file to write (atomically, only after the parity check passed)")
    p.add_argument(
        "--quality-labels", metavar="LABEL", action="extend", nargs="+",
        help="quality classes in training order; must include 'good' (several: A B, A,B or "
        "repeated; default: the checkpoint's .labels.json from endostream train, else "
        f"{DEFAULT_LABELS['quality']})",
    )
    p.add_argument(
        "--organ-labels", metavar="LABEL", action="extend", nargs="+",
        help="organ classes in training order (several: A B, A,B or repeated; default: the "
        f"checkpoint's .labels.json from endostream train, else {DEFAULT_LABELS['organ']})",
    )
    p.add_argument(
        "--fp16", action="store_true",
        help="write the float16 GPU variant (input stays uint8, outputs float32); "
        "the runtime refuses it on the CPU (default: float32)",
    )
    p.add_argument(
        "--int8", action="store_true",
        help="write the statically quantised int8 CPU variant (QDQ, calibrated on frames "
        "through the runtime's crop and training masks), only if its argmax agrees with the "
        "fp32 model on >= 99%% of the calibration and parity frames and its held-out accuracy "
        "is within one point; the runtime refuses it on a GPU (default: float32)",
    )
    p.add_argument("--from-onnx", metavar="ONNX",
                   help="with --int8: quantise this fp32 file (from endostream export) instead "
                        "of exporting checkpoints (default: none)")
    p.add_argument("--heldout", metavar="DATASET",
                   help="with --int8: labelled frames for the accuracy gate, read as evaluate "
                        "reads them (default: 96 generated synthetic frames)")
    add_overwrite_option(p)
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help="ONNX opset (default: %(default)s)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch.onnx exporter (default: %(default)s, faster and smaller here)")
    p.add_argument("--parity-frames", type=int, default=None, metavar="N",
                   help="frames in the parity check that runs at every export (default: 16)")


def run(args: argparse.Namespace) -> int:
    """Export, print the parity figures and a one-line summary; return the exit code."""
    if args.from_onnx is not None or args.heldout is not None:
        if not args.int8:
            raise UsageError("--from-onnx and --heldout belong to --int8; add --int8")
    if args.int8 and args.fp16:
        raise UsageError("--int8 and --fp16 are two variants; export each on its own")
    if args.from_onnx is not None:
        if args.quality or args.organ or args.shared:
            raise UsageError("--from-onnx quantises a finished file; give it without "
                             "checkpoints (--quality/--organ/--shared)")
        return _run_int8(Path(args.from_onnx), args)
    missing = [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"the export command needs the export extra ({', '.join(missing)} missing): "
            "pip install 'endostream[export]'"
        )
    if args.shared is not None:
        if args.quality is not None or args.organ is not None:
            raise UsageError("--shared holds both heads; give it without --quality/--organ")
        args.quality = args.organ = args.shared
    if args.quality is None and args.organ is None:
        raise UsageError("nothing to export; give --quality and/or --organ checkpoints "
                         "(or --shared)")
    if args.parity_frames is not None and args.parity_frames < 1:
        raise UsageError(f"--parity-frames must be at least 1, got {args.parity_frames}")
    # Before torch is even imported: --out may not be a checkpoint or its labels file.
    check_outputs({"--out": args.out}, {
        f"--{head}": [Path(path), Path(path).with_name(Path(path).stem + ".labels.json")]
        for head, path in (("quality", args.quality), ("organ", args.organ)) if path},
        overwrite=args.overwrite)

    from endostream.export.onnx_export import export_onnx, head_spec  # imports torch: only here

    heads = [
        head_spec(name, path, _head_labels(getattr(args, f"{name}_labels"), name, path),
                  temperature=_head_temperature(path, name))
        for name, path in (("quality", args.quality), ("organ", args.organ))
        if path is not None
    ]
    if args.int8:
        # The fp32 file is the int8 file's reference; it lives only as long as this run.
        with tempfile.TemporaryDirectory(prefix="endostream-export-") as tmp:
            fp32 = Path(tmp) / "fp32.onnx"
            result = export_onnx(heads, fp32, opset=args.opset, exporter=args.exporter,
                                 parity_frames=args.parity_frames)
            print(result.parity.summary())
            if result.shortcut is not None:
                print(result.shortcut.summary())
            return _run_int8(fp32, args)
    result = export_onnx(
        heads, args.out, fp16=args.fp16, opset=args.opset, exporter=args.exporter,
        parity_frames=args.parity_frames, overwrite=args.overwrite,
    )
    heads_text = ", ".join(f"{h} [{','.join(labels)}]" for h, labels in result.heads.items())
    print(result.parity.summary())
    if result.shortcut is not None:
        print(result.shortcut.summary())
    for head in heads:
        if head.temperature != 1.0:
            print(f"{head.name}: temperature {head.temperature:.3f} from training folded into "
                  "the softmax")
    print(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, {result.precision}, "
        f"heads {heads_text}, in {result.export_s:.1f} s)", file=sys.stderr,
    )
    return 0


def _run_int8(fp32: Path, args: argparse.Namespace) -> int:
    """Quantise ``fp32`` into ``--out``, print the gate and a one-line summary."""
    if importlib.util.find_spec("onnx") is None:
        raise UsageError("--int8 needs the onnx package of the export extra: "
                         "pip install 'endostream[export]'")
    from endostream.export.quantize import quantize_model  # onnx and the quantiser: only here

    result = quantize_model(fp32, args.out, heldout=args.heldout, overwrite=args.overwrite)
    print(result.summary())
    print(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, int8, from "
          f"{result.source_size_bytes / 1e6:.1f} MB fp32, in {result.quantize_s:.1f} s)",
          file=sys.stderr)
    return 0


def _head_labels(given: list[str] | None, head: str, checkpoint: str) -> list[str]:
    """Labels from the option (its values joined: ``a b`` as ``a,b``), else the
    checkpoint's training sidecar, else the default."""
    if given is not None:
        return _labels(",".join(given), head)
    from endostream.export.train import read_labels_sidecar  # imports torch: only when exporting

    side = read_labels_sidecar(Path(checkpoint))
    if side is None:
        return _labels(DEFAULT_LABELS[head], head)
    task = side.get("task")
    if task == "both":  # a shared-backbone checkpoint: labels per head
        return [str(label) for label in side["heads"][head]]
    if task is not None and task != head:
        raise UsageError(f"'{checkpoint}' was trained as the {task} classifier (its "
                         f".labels.json says so); pass it as --{task}")
    return [str(label) for label in side["labels"]]


def _head_temperature(checkpoint: str, head: str) -> float:
    """The temperature ``endostream train`` fitted and stored in the sidecar, else 1 (a
    shared-backbone sidecar holds one per head)."""
    from endostream.export.train import read_labels_sidecar

    side = read_labels_sidecar(Path(checkpoint)) or {}
    value = side.get("temperature")
    if isinstance(value, dict):
        value = value.get(head)
    try:
        return float(value or 1.0)
    except (TypeError, ValueError):
        raise UsageError(f"'{checkpoint}': the temperature in its .labels.json is not a "
                         "number; train again or delete the sidecar") from None


def _labels(text: str, head: str) -> list[str]:
    labels = [part.strip() for part in text.split(",")]
    if any(not label for label in labels):
        raise UsageError(f"--{head}-labels {text!r} has an empty name; give names like a,b,c")
    return labels
