"""Reading a contract file's weights: :func:`read_onnx_weights` -> :class:`OnnxWeights`.

``endostream export`` writes EfficientNetB0 graphs whose BatchNorms are folded into the
convolutions before them and whose tensors are renamed (``onnx::Conv_668``; equal tensors
stored once and handed out through ``Identity`` nodes), so the file's names do not match a
``state_dict``. The weights are found by structure instead: for each head, the ``Gemm``
its output depends on and the ``Conv`` nodes it depends on, in graph order, which are
EfficientNetB0's ``nn.Conv2d`` modules in their order (:func:`conv_pairs`), shapes
checked. Heads on the same convolutions share a backbone (a shared file); a pair has one
per head. :mod:`.onnx_init` puts them into torch modules.

>>> is_onnx("model.onnx"), is_onnx("both.pth"), is_onnx(None)
(True, False, False)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from torch import nn
from torchvision.models import efficientnet_b0

from endostream.contract import HEADS, META_PRECISION, META_TEMPERATURE
from endostream.errors import ModelError

#: Suffix by which ``--init`` tells a contract file from a state dict.
ONNX_SUFFIX = ".onnx"

REEXPORT_HINT = "--init takes an fp32 file made by endostream export (or the bundled model)"

#: A convolution's weight and bias (None where the file has none).
ConvWeights = tuple[np.ndarray, "np.ndarray | None"]


@dataclass(frozen=True)
class OnnxWeights:
    """The torch-relevant content of one contract file.

    ``networks`` holds one list of convolutions per backbone in the file (one for a
    shared or one-head file, two for a pair); ``network_of`` says which one each head
    sits on; ``linear`` holds each head's ``(weight [C, 1280], bias [C])``.
    """

    path: Path
    heads: dict[str, tuple[str, ...]]
    temperatures: dict[str, float]
    networks: tuple[tuple[ConvWeights, ...], ...]
    network_of: dict[str, int]
    linear: dict[str, tuple[np.ndarray, np.ndarray]]

    @property
    def shared(self) -> bool:
        """One backbone for every head in the file."""
        return len(self.networks) == 1

    def network_for(self, head: str) -> int:
        """The backbone a ``head`` network starts from: that head's own, or the file's
        only one when the file lacks the head."""
        if head in self.network_of:
            return self.network_of[head]
        return 0


def is_onnx(init: str | Path | None) -> bool:
    """Whether ``--init`` names a contract file (by its suffix).

    >>> is_onnx("model.onnx"), is_onnx("both.pth"), is_onnx(None)
    (True, False, False)
    """
    return init is not None and Path(init).suffix.lower() == ONNX_SUFFIX


def read_onnx_weights(path: str | Path) -> OnnxWeights:
    """Check ``path`` against the contract and read its backbones and heads (ModelError,
    exit 4, for anything else)."""
    from endostream.inference.classifier import Classifier

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"--init '{path}' not found; give the .onnx file (or 'bundled')")
    with Classifier.load(path, device="cpu", threads=1) as clf:  # the runtime's own checks
        heads = {h: tuple(labels) for h, labels in clf.heads.items()}
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    precision = meta.get(META_PRECISION, "fp32")
    if precision != "fp32":
        raise ModelError(f"'{path}' is a {precision} file; {REEXPORT_HINT}")
    temperatures = _temperatures(path, meta.get(META_TEMPERATURE), heads)
    graph = _Graph(model.graph, path)
    networks: list[tuple[ConvWeights, ...]] = []
    keys: list[tuple[str, ...]] = []
    network_of, linear = {}, {}
    for head in heads:
        gemm, convs = graph.head_path(head)
        key = tuple(node.output[0] for node in convs)
        if key not in keys:
            keys.append(key)
            networks.append(tuple(graph.conv_weights(node) for node in convs))
        network_of[head] = keys.index(key)
        linear[head] = graph.gemm_weights(gemm, len(heads[head]))
    for weights in networks:
        _check_backbone(path, weights)
    return OnnxWeights(path, heads, temperatures, tuple(networks), network_of, linear)


# -- the graph ------------------------------------------------------------------------


class _Graph:
    """Lookup of an ONNX graph's producers and constant tensors."""

    def __init__(self, graph: onnx.GraphProto, path: Path):
        self.path = path
        self.nodes = list(graph.node)
        self.order = {id(n): k for k, n in enumerate(self.nodes)}
        self.producer = {out: n for n in self.nodes for out in n.output}
        self.tensors = {t.name: t for t in graph.initializer}
        for n in self.nodes:
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.tensors[n.output[0]] = a.t
        norms = [n for n in self.nodes if n.op_type == "BatchNormalization"]
        if norms:
            raise ModelError(f"'{path}' has BatchNormalization nodes that its export did not "
                             f"fold; {REEXPORT_HINT}")

    def head_path(self, head: str) -> tuple[onnx.NodeProto, list[onnx.NodeProto]]:
        """The ``Gemm`` of ``head`` and the ``Conv`` nodes it depends on, in graph order."""
        seen: dict[int, onnx.NodeProto] = {}
        stack = [head]
        while stack:
            node = self.producer.get(stack.pop())
            if node is None or id(node) in seen:
                continue
            seen[id(node)] = node
            stack.extend(i for i in node.input if i)
        ancestors = sorted(seen.values(), key=lambda n: self.order[id(n)])
        gemms = [n for n in ancestors if n.op_type == "Gemm"]
        convs = [n for n in ancestors if n.op_type == "Conv"]
        if len(gemms) != 1 or not convs:
            raise ModelError(f"'{self.path}': output {head!r} is not a backbone and one linear "
                             f"head ({len(gemms)} Gemm, {len(convs)} Conv); {REEXPORT_HINT}")
        return gemms[0], convs

    def tensor(self, name: str) -> np.ndarray:
        # The exporter stores equal tensors once (random-init biases of zeros, say) and
        # hands the others out through Identity nodes.
        while name not in self.tensors and getattr(self.producer.get(name), "op_type",
                                                   None) == "Identity":
            name = self.producer[name].input[0]
        if name not in self.tensors:
            raise ModelError(f"'{self.path}': {name!r} is computed, not stored; {REEXPORT_HINT}")
        return numpy_helper.to_array(self.tensors[name]).astype(np.float32)

    def conv_weights(self, node: onnx.NodeProto) -> ConvWeights:
        bias = self.tensor(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        return self.tensor(node.input[1]), bias

    def gemm_weights(self, node: onnx.NodeProto, classes: int) -> tuple[np.ndarray, np.ndarray]:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA"):
            raise ModelError(f"'{self.path}': a head's Gemm is scaled or transposed; "
                             f"{REEXPORT_HINT}")
        weight = self.tensor(node.input[1])
        if not attrs.get("transB", 0):
            weight = weight.T
        bias = (self.tensor(node.input[2]) if len(node.input) > 2 and node.input[2]
                else np.zeros(weight.shape[0], np.float32))
        if weight.shape[0] != classes or bias.shape != (classes,):
            raise ModelError(f"'{self.path}': a head has {weight.shape[0]} outputs for "
                             f"{classes} labels; {REEXPORT_HINT}")
        return np.ascontiguousarray(weight), bias


def _temperatures(path: Path, raw: str | None, heads: Mapping[str, Sequence[str]]
                  ) -> dict[str, float]:
    found = {}
    if raw:
        try:
            found = {h: float(t) for h, t in json.loads(raw).items()}
        except (ValueError, AttributeError, TypeError):
            raise ModelError(f"'{path}': {META_TEMPERATURE} is not a head -> number map; "
                             f"{REEXPORT_HINT}") from None
    return {h: found.get(h, 1.0) for h in HEADS if h in heads}


# -- EfficientNetB0 -----------------------------------------------------------------


def conv_pairs(features: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Every convolution of ``features`` in order, with the BatchNorm right after it (None
    for the squeeze-and-excitation convolutions, which have a bias instead)."""
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d | None]] = []
    last: nn.Module | None = None
    for module in features.modules():
        if next(module.children(), None) is not None:
            continue  # containers: only leaves run
        if isinstance(module, nn.BatchNorm2d) and isinstance(last, nn.Conv2d):
            pairs[-1] = (pairs[-1][0], module)
        elif isinstance(module, nn.Conv2d):
            pairs.append((module, None))
        last = module
    return pairs


def _check_backbone(path: Path, convs: Sequence[ConvWeights]) -> None:
    expected = [tuple(conv.weight.shape) for conv, _ in conv_pairs(efficientnet_b0().features)]
    if len(convs) != len(expected):
        raise ModelError(f"'{path}' has {len(convs)} convolutions per network, EfficientNetB0 "
                         f"has {len(expected)}; {REEXPORT_HINT}")
    for k, ((weight, _), shape) in enumerate(zip(convs, expected, strict=True)):
        if tuple(weight.shape) != shape:
            raise ModelError(f"'{path}': convolution {k} is {list(weight.shape)}, EfficientNetB0's "
                             f"is {list(shape)}; {REEXPORT_HINT}")


__all__ = ["OnnxWeights", "ConvWeights", "is_onnx", "read_onnx_weights", "conv_pairs",
           "REEXPORT_HINT", "ONNX_SUFFIX"]
