"""A small convolutional colour classifier that meets the model contract, for int8 tests.

:func:`build_conv_color_model` does what the colour model of :mod:`.onnx_models` does
(organ: nearest reference colour; quality: "good" where textured) with the ops a
quantiser turns into int8 kernels: 8x8 stride-8 ``Conv`` (block means of R, G, B; a
horizontal gradient), ``Relu``, ``GlobalAveragePool`` and one ``Gemm`` per head, then
``Softmax``. Built with ``onnx.helper`` in the session, milliseconds to run.

With :func:`scene_colors` as ``organ_colors`` (and ``organ_temperature`` about 10) the
organ head tells the synthetic scenes apart, which the int8 gate checks on.
``outlier`` adds a colour channel that is that constant on every frame and that no head
reads: per-tensor int8 scales then spend their 256 steps on it (10000: steps of 39 grey
levels for the colour means; 1e6: every colour rounds to 0), the real failure of one
channel with a huge range, and the model that int8 must not pass.

>>> import tempfile, pathlib
>>> from tests.helpers.onnx_models import color_image
>>> from endostream.inference.classifier import Classifier
>>> path = build_conv_color_model(pathlib.Path(tempfile.mkdtemp()) / "c.onnx")
>>> with Classifier.load(path, device="cpu") as clf:
...     p = clf.run(np.stack([color_image(DEFAULT_ORGAN_COLORS["nose"]),
...                           color_image((200, 200, 200), noise=0)]))
>>> clf.heads["organ"][int(p["organ"][0].argmax())], [round(float(q)) for q in p["quality"][:, 1]]
('nose', [1, 0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from tests.helpers.onnx_models import (
    DEFAULT_ORGAN_COLORS,
    QUALITY_LABELS,
    SIZE,
    _save,
    contract_metadata,
)

#: Side of the convolution's square kernel and its stride.
BLOCK = 8


def scene_colors(count: int = 48, seed: int = 5) -> dict[str, tuple[float, float, float]]:
    """Mean RGB of each organ's synthetic scopes as the runtime crops them (parity frames
    of ``seed``, black border included, as the model's block means see it): reference
    colours that make the organ head a nearest-mean classifier of those scenes."""
    from endostream.export.parity import parity_frames, parity_labels  # imports torch

    frames = np.asarray(parity_frames(count, seed), np.float32)
    organs = np.array(parity_labels(count)["organ"])
    return {str(organ): tuple(float(v) for v in frames[organs == organ].mean(axis=(0, 1, 2)))
            for organ in dict.fromkeys(organs)}


def build_conv_color_model(
    path: str | Path,
    *,
    organ_colors: Mapping[str, Sequence[int]] = DEFAULT_ORGAN_COLORS,
    organ_temperature: float = 300.0,
    texture_threshold: float = 4.95,
    outlier: float = 0.0,
    precision: str | None = None,
) -> Path:
    """Write the conv colour classifier (quality and organ heads) to ``path``."""
    path = Path(path)
    # Two convolutions with their own activation ranges (int8 scales are per tensor, and a
    # texture of a few grey levels beside colour means of 200 would be lost in one):
    # colour: the block mean of R, G, B; texture: the horizontal difference of the
    # block's first two pixels (mean of the colours) and its negative, so Relu of both is
    # that difference's size, about 9 for color_image's default noise, 0 on a flat image
    # and 0.6-6.6 on synth scenes (a mean over more pixels would average the noise away).
    colour_w = np.zeros((4, 3, BLOCK, BLOCK), np.float32)  # R, G, B means; the outlier
    for c in range(3):
        colour_w[c, c] = 1.0 / BLOCK ** 2
    texture_w = np.zeros((2, 3, BLOCK, BLOCK), np.float32)
    texture_w[0, :, 0, 1] = 1.0 / 3
    texture_w[0, :, 0, 0] = -1.0 / 3
    texture_w[1] = -texture_w[0]
    refs = np.array([list(c) for c in organ_colors.values()], np.float32)  # [K, 3]
    # -|c - r|^2 / T = (2 r.c - |r|^2) / T - |c|^2 / T; the last term is the same for
    # every class, so one Gemm gives the logits.
    organ_w = np.vstack([2 * refs.T / organ_temperature, np.zeros((1, len(refs)))])
    organ_b = -(refs ** 2).sum(1) / organ_temperature
    # quality: "good" when the texture exceeds the threshold; "bad" gets the negative.
    # The default sits in a gap of the synth scenes' textures (4.85 / 5.14 on the int8
    # calibration frames) and below the range those frames calibrate (up to 6.6): int8
    # clips a texture above that, so a threshold above it would make every frame "bad".
    quality_w = np.array([[-1.0, 1.0], [-1.0, 1.0]], np.float32)
    quality_b = np.array([texture_threshold, -texture_threshold], np.float32)
    inits = [numpy_helper.from_array(np.asarray(a, np.float32), n) for a, n in (
        (colour_w, "colour_w"), (np.array([0, 0, 0, outlier]), "colour_b"),
        (texture_w, "texture_w"), (np.zeros(2), "texture_b"), (organ_w, "organ_w"),
        (organ_b, "organ_b"), (quality_w, "quality_w"), (quality_b, "quality_b"))]
    nodes = [
        helper.make_node("Cast", ["frames"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["x"], ["nchw"], perm=[0, 3, 1, 2]),
    ]
    for branch in ("colour", "texture"):
        nodes += [
            helper.make_node("Conv", ["nchw", f"{branch}_w", f"{branch}_b"], [f"{branch}_blocks"],
                             kernel_shape=[BLOCK, BLOCK], strides=[BLOCK, BLOCK]),
            helper.make_node("Relu", [f"{branch}_blocks"], [f"{branch}_act"]),
            helper.make_node("GlobalAveragePool", [f"{branch}_act"], [f"{branch}_pooled"]),
            helper.make_node("Flatten", [f"{branch}_pooled"], [branch]),
        ]
    nodes += [
        helper.make_node("Gemm", ["texture", "quality_w", "quality_b"], ["quality_logits"]),
        helper.make_node("Softmax", ["quality_logits"], ["quality"], axis=1),
        helper.make_node("Gemm", ["colour", "organ_w", "organ_b"], ["organ_logits"]),
        helper.make_node("Softmax", ["organ_logits"], ["organ"], axis=1),
    ]
    heads = {"quality": list(QUALITY_LABELS), "organ": list(organ_colors)}
    outputs = [helper.make_tensor_value_info(h, TensorProto.FLOAT, ["N", len(v)])
               for h, v in heads.items()]
    frames = helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", SIZE, SIZE, 3])
    graph = helper.make_graph(nodes, "endostream_conv_color", [frames], outputs, inits)
    meta = contract_metadata(heads)
    if precision is not None:
        meta["endostream.precision"] = precision
    return _save(graph, meta, path)
