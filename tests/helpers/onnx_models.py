"""Small ONNX models that meet (or deliberately break) the endostream model contract.

Built with ``onnx.helper`` in the test session: no torch, no downloads, milliseconds to
build and to run. Everyone's tests use them.

:func:`build_color_model` is a real classifier for synthetic frames: the organ head says
which reference colour the image's mean colour is nearest to, the quality head says
"good" when the image is bright enough *and* textured (flat or dark images are "bad").
:func:`color_image` makes matching test images.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> path = build_color_model(d / "m.onnx")
>>> from endostream.inference.classifier import Classifier
>>> with Classifier.load(path, device="cpu") as clf:
...     probs = clf.run(np.stack([color_image(DEFAULT_ORGAN_COLORS["nose"])]))
>>> clf.heads["organ"][int(probs["organ"][0].argmax())]
'nose'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Opset and IR version every builder writes: old enough for any onnxruntime >= 1.17
#: (onnx 1.23 would otherwise stamp an IR version that older runtimes refuse).
OPSET = 17
IR_VERSION = 9

#: Reference colours (RGB) of the default organ head, far apart so that noisy images of
#: each colour are classified without doubt.
DEFAULT_ORGAN_COLORS: dict[str, tuple[int, int, int]] = {
    "ear": (200, 70, 40),
    "nose": (230, 150, 180),
    "vocal_folds": (90, 200, 220),
}
QUALITY_LABELS = ("bad", "good")
SIZE = 224

_NP_TO_ONNX = {
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float16): TensorProto.FLOAT16,
}


def color_image(rgb: Sequence[int], *, noise: float = 24.0, seed: int = 0,
                size: int = SIZE) -> np.ndarray:
    """A ``[size, size, 3]`` uint8 image of colour ``rgb`` with uniform noise of ±``noise``.

    The noise is the texture the colour model's quality head calls sharp (mean absolute
    difference of neighbours ~ 0.67 * noise); ``noise=0`` gives a flat ("bad") image.
    """
    rng = np.random.default_rng(seed)
    img = np.empty((size, size, 3), np.float32)
    img[:] = np.asarray(rgb, np.float32)
    if noise:
        img += rng.uniform(-noise, noise, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def contract_metadata(heads: Mapping[str, Sequence[str]], **extra: str) -> dict[str, str]:
    """The metadata_props a conforming file carries, plus ``extra`` (dots as ``__``)."""
    meta = {
        "endostream.schema": "1",
        "endostream.heads": json.dumps({h: list(v) for h, v in heads.items()}),
        "endostream.exporter": "tests.helpers.onnx_models",
        "endostream.exported_at": "2024-01-01T00:00:00Z",
    }
    meta.update({k.replace("__", "."): v for k, v in extra.items()})
    return meta


def build_color_model(
    path: str | Path,
    *,
    organ_colors: Mapping[str, Sequence[int]] | None = DEFAULT_ORGAN_COLORS,
    quality: bool = True,
    quality_labels: Sequence[str] = QUALITY_LABELS,
    organ_temperature: float = 300.0,
    brightness_threshold: float = 40.0,
    sharpness_threshold: float = 3.0,
    dark_threshold: float = 20.0,
    sharpness: str = "gradient",
    precision: str | None = None,
    fp16_outputs: bool = False,
    metadata_overrides: Mapping[str, str | None] | None = None,
) -> Path:
    """Write a contract-conforming colour classifier to ``path`` and return the path.

    - ``organ``: softmax over ``-|mean colour - reference|^2 / organ_temperature``; the
      mean colour ignores pixels with luminance <= ``dark_threshold`` (black borders).
      ``organ_colors=None`` leaves the organ head out.
    - ``quality``: "good" with probability sigmoid(min((brightness - brightness_threshold)
      / 5, (sharpness - sharpness_threshold) / 1)), where brightness is the mean
      luminance and sharpness the mean absolute difference of horizontal neighbours
      (``sharpness="gradient"``) or, scale-free, that difference divided by (1 + the mean
      absolute difference of pixels 8 apart) (``sharpness="ratio"``: blur removes fine
      detail first, so it separates blurred from smooth-but-sharp scenes; use a threshold
      near 0.17 on :mod:`endostream.synth` scenes); every other label shares the rest.
      ``quality=False`` leaves the head out.
    - ``precision`` writes ``endostream.precision``; ``fp16_outputs`` casts outputs to
      float16 (the fp16 variant); ``metadata_overrides`` sets keys, ``None`` deletes one.
    """
    path = Path(path)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    outputs: list[onnx.ValueInfoProto] = []
    heads: dict[str, list[str]] = {}

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def head_output(name: str, probs: str, labels: Sequence[str]) -> None:
        dtype = TensorProto.FLOAT16 if fp16_outputs else TensorProto.FLOAT
        if fp16_outputs:
            node("Cast", [probs], name, to=TensorProto.FLOAT16)
        else:
            node("Identity", [probs], name)
        outputs.append(helper.make_tensor_value_info(name, dtype, ["N", len(labels)]))
        heads[name] = list(labels)

    x = node("Cast", ["frames"], "x", to=TensorProto.FLOAT)
    lum_w = const("lum_w", np.array([0.299, 0.587, 0.114], np.float32))
    mean_rgb = node("ReduceMean", [x], "mean_rgb", axes=[1, 2], keepdims=0)  # [N,3]
    ax1 = const("ax1", np.array([1]))
    if organ_colors is not None:
        refs = np.array([list(c) for c in organ_colors.values()], np.float32)  # [K,3]
        pix_lum = node("ReduceSum", [node("Mul", [x, lum_w], "xw"), const("ax3", np.array([3]))],
                       "pix_lum", keepdims=1)  # [N,H,W,1]
        mask = node("Cast", [node("Greater", [pix_lum, const("dark", np.float32(dark_threshold))],
                                  "bright_px")], "mask", to=TensorProto.FLOAT)
        ax12 = const("ax12", np.array([1, 2]))
        csum = node("ReduceSum", [node("Mul", [x, mask], "xm"), ax12], "csum", keepdims=0)
        count = node("ReduceSum", [mask, ax12], "count", keepdims=0)  # [N,1]
        mean_c = node("Div", [csum, node("Add", [count, const("one", np.float32(1))], "cnt1")],
                      "mean_c")  # [N,3]
        diff = node("Sub", [node("Unsqueeze", [mean_c, ax1], "mc3"),
                            const("refs", refs)], "diff")  # [N,K,3]
        d2 = node("ReduceSum", [node("Mul", [diff, diff], "sq"), const("ax2", np.array([2]))],
                  "d2", keepdims=0)
        logits = node("Mul", [d2, const("neg_inv_t", np.float32(-1.0 / organ_temperature))],
                      "organ_logits")
        head_output("organ", node("Softmax", [logits], "organ_probs", axis=1), list(organ_colors))
    if quality:
        labels = list(quality_labels)
        onehot = np.zeros(len(labels), np.float32)
        if "good" in labels:
            onehot[labels.index("good")] = 1.0
        bright = node("MatMul", [mean_rgb, const("lum_col", np.array([[0.299], [0.587], [0.114]],
                                                                     np.float32))], "bright")
        right = node("Slice", [x, const("s1", np.array([1])), const("e1", np.array([SIZE])),
                               const("a2", np.array([2]))], "right")
        left = node("Slice", [x, const("s0", np.array([0])), const("e0", np.array([SIZE - 1])),
                              "a2"], "left")
        grad = node("Abs", [node("Sub", [right, left], "dx")], "adx")
        sharp = node("Unsqueeze", [node("ReduceMean", [grad], "sharp0", axes=[1, 2, 3],
                                        keepdims=0), ax1], "sharp")  # [N,1]
        if sharpness == "ratio":
            right8 = node("Slice", [x, const("s8", np.array([8])), "e1", "a2"], "right8")
            left8 = node("Slice", [x, "s0", const("e8", np.array([SIZE - 8])), "a2"], "left8")
            grad8 = node("Abs", [node("Sub", [right8, left8], "dx8")], "adx8")
            coarse = node("Unsqueeze", [node("ReduceMean", [grad8], "coarse0", axes=[1, 2, 3],
                                             keepdims=0), ax1], "coarse")
            sharp = node("Div", [sharp, node("Add", [coarse, "one_q"], "coarse1")], "sharp_ratio")
            inits.append(numpy_helper.from_array(np.float32(1.0), "one_q"))
        elif sharpness != "gradient":
            raise ValueError(f"sharpness must be 'gradient' or 'ratio', got {sharpness!r}")
        b0 = node("Sub", [bright, const("bt", np.float32(brightness_threshold))], "b0")
        zb = node("Div", [b0, const("bs", np.float32(5.0))], "zb")
        zs = node("Sub", [sharp, const("st", np.float32(sharpness_threshold))], "zs")
        if sharpness == "ratio":  # the ratio lives on a ~100x smaller scale than gradients
            zs = node("Mul", [zs, const("sgain", np.float32(200.0))], "zs_scaled")
        z = node("Min", [zb, zs], "z")  # [N,1]
        qlogits = node("Mul", [z, const("onehot", onehot)], "quality_logits")
        head_output("quality", node("Softmax", [qlogits], "quality_probs", axis=1), labels)

    # Quality first, as in the design's examples; graph outputs in the same order.
    order = [h for h in ("quality", "organ") if h in heads]
    heads = {h: heads[h] for h in order}
    outputs.sort(key=lambda o: order.index(o.name))
    meta = contract_metadata(heads)
    if precision is not None:
        meta["endostream.precision"] = precision
    _apply_overrides(meta, metadata_overrides)
    frames = helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", SIZE, SIZE, 3])
    graph = helper.make_graph(nodes, "endostream_color", [frames], outputs, inits)
    return _save(graph, meta, path)


def build_stub_model(
    path: str | Path,
    *,
    heads: Mapping[str, Sequence[str]] | None = None,
    output_widths: Mapping[str, int] | None = None,
    input_name: str = "frames",
    input_dtype: type | np.dtype = np.uint8,
    input_shape: Sequence[int | str] = ("N", SIZE, SIZE, 3),
    output_dtype: type | np.dtype = np.float32,
    static_output_shape: bool = True,
    softmax: bool = True,
    metadata: Mapping[str, str] | None = None,
    metadata_overrides: Mapping[str, str | None] | None = None,
) -> Path:
    """A minimal model of any signature, for contract tests: mean pixel -> linear -> softmax.

    ``heads`` (default: quality + the default organs) goes into the metadata;
    ``output_widths`` (default: one output per head, as wide as its label list) decides the
    graph's outputs, so the two can disagree on purpose. ``metadata=None`` writes the
    conforming metadata for ``heads``; pass ``{}`` for none at all.
    """
    path = Path(path)
    if heads is None:
        heads = {"quality": list(QUALITY_LABELS), "organ": list(DEFAULT_ORGAN_COLORS)}
    if output_widths is None:
        output_widths = {h: len(v) for h, v in heads.items()}
    in_type = _NP_TO_ONNX[np.dtype(input_dtype)]
    out_type = _NP_TO_ONNX[np.dtype(output_dtype)]
    rank = len(input_shape)
    nodes = [
        helper.make_node("Cast", [input_name], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["m"], axes=list(range(1, rank)), keepdims=0),
        helper.make_node("Unsqueeze", ["m", "ax1"], ["m1"]),  # [N,1]
    ]
    inits = [numpy_helper.from_array(np.array([1]), "ax1"),
             numpy_helper.from_array(np.array([-1]), "minus1")]
    outputs = []
    for i, (name, width) in enumerate(output_widths.items()):
        w = np.linspace(-1, 1, width, dtype=np.float32)[None, :] * (0.01 * (i + 1))
        inits.append(numpy_helper.from_array(w, f"{name}_w"))
        nodes.append(helper.make_node("MatMul", ["m1", f"{name}_w"], [f"{name}_logits"]))
        last = f"{name}_logits"
        if softmax:
            nodes.append(helper.make_node("Softmax", [last], [f"{name}_probs"], axis=1))
            last = f"{name}_probs"
        if not static_output_shape:
            # Reshape to a runtime-computed [N, -1] hides the width from shape inference.
            nodes += [
                helper.make_node("Shape", ["m1"], [f"{name}_n"], start=0, end=1),
                helper.make_node("Concat", [f"{name}_n", "minus1"], [f"{name}_shape"], axis=0),
                helper.make_node("Reshape", [last, f"{name}_shape"], [f"{name}_flat"]),
            ]
            last = f"{name}_flat"
        nodes.append(helper.make_node("Cast", [last], [name], to=out_type))
        dims = ["N", width] if static_output_shape else ["N", f"C_{name}"]
        outputs.append(helper.make_tensor_value_info(name, out_type, dims))
    meta = dict(contract_metadata(heads) if metadata is None else metadata)
    _apply_overrides(meta, metadata_overrides)
    frames = helper.make_tensor_value_info(input_name, in_type, list(input_shape))
    graph = helper.make_graph(nodes, "endostream_stub", [frames], outputs, inits)
    return _save(graph, meta, path)


# --- deliberately broken or special variants ------------------------------------------


def build_float_nchw_model(path: str | Path) -> Path:
    """float32 ``[N,3,224,224]`` input, as a model exported straight from torchvision."""
    return build_stub_model(path, input_dtype=np.float32, input_shape=("N", 3, SIZE, SIZE),
                            metadata={})


def build_wrong_shape_model(path: str | Path,
                            shape: Sequence[int | str] = ("N", 256, 256, 3)) -> Path:
    """uint8 input of the wrong size (default 256x256)."""
    return build_stub_model(path, input_shape=shape)


def build_no_metadata_model(path: str | Path) -> Path:
    """A conforming graph without any endostream metadata."""
    return build_stub_model(path, metadata={})


def build_label_mismatch_model(path: str | Path, *, static_output_shape: bool = True) -> Path:
    """Metadata lists 3 organs, the organ output has 4 columns (static or symbolic width)."""
    return build_stub_model(path, output_widths={"quality": 2, "organ": 4},
                            static_output_shape=static_output_shape)


def build_missing_output_model(path: str | Path) -> Path:
    """Metadata names quality and organ heads, the graph has only a quality output."""
    return build_stub_model(path, output_widths={"quality": 2})


def build_fp16_model(path: str | Path, *, fp16_outputs: bool = True) -> Path:
    """The fp16 variant of the colour model (``endostream.precision`` = ``fp16``)."""
    return build_color_model(path, precision="fp16", fp16_outputs=fp16_outputs)


def build_split_models(directory: str | Path, **kwargs) -> tuple[Path, Path]:
    """Two single-head colour models, ``quality.onnx`` and ``organ.onnx``, in ``directory``."""
    directory = Path(directory)
    organ_colors = kwargs.pop("organ_colors", DEFAULT_ORGAN_COLORS)
    q = build_color_model(directory / "quality.onnx", organ_colors=None, quality=True, **kwargs)
    o = build_color_model(directory / "organ.onnx", organ_colors=organ_colors, quality=False,
                          **kwargs)
    return q, o


def truncate_file(src: str | Path, dst: str | Path | None = None,
                  keep_fraction: float = 0.5) -> Path:
    """Copy the first ``keep_fraction`` of ``src`` to ``dst`` (default: ``src`` in place)."""
    src = Path(src)
    data = src.read_bytes()
    dst = Path(dst) if dst is not None else src
    dst.write_bytes(data[: int(len(data) * keep_fraction)])
    return dst


def _apply_overrides(meta: dict[str, str], overrides: Mapping[str, str | None] | None) -> None:
    for key, value in (overrides or {}).items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value


def _save(graph: onnx.GraphProto, meta: Mapping[str, str], path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="endostream-tests")
    model.ir_version = IR_VERSION
    helper.set_model_props(model, dict(meta))
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
