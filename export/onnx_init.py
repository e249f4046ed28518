"""``train --init FILE.onnx``: a contract file's weights back in the torch network.

The model a clinic runs is an ONNX file (the bundled ``endostream-demo.onnx`` or one made
by ``endostream export``), often without the checkpoint it came from. Fine-tuning must
start from *that* model, not from a new one, so this module reads the weights out of the
graph and puts them into this project's own torch modules:
:class:`~.multitask.SharedBackbone` for a shared file (one backbone, both heads), or
:func:`~.model.build_classifier` per head for a two-network pair or a one-head file.

How the file's tensors map to the modules (measured on the files ``export`` writes):

- the exporter folds every BatchNorm into the convolution before it (``Conv`` weights
  ``W * gamma / sqrt(var + eps)`` with a bias, renamed ``onnx::Conv_668``...), so names do
  not match ``state_dict`` keys. The mapping is by structure instead: the ``Conv`` nodes
  a head's output depends on, in graph order, are the backbone's ``nn.Conv2d`` modules in
  their order (execution order for EfficientNetB0, both for TorchScript and dynamo
  graphs), each shape checked; a head is the ``Gemm`` its output depends on;
- a folded convolution goes back as the convolution plus a BatchNorm that computes the
  same function: with ``y`` the folded convolution's output and ``m``, ``v`` its
  per-channel mean and variance on real frames, the BatchNorm gets running statistics
  ``m``, ``v``, ``gamma = sqrt(v + eps)`` and ``beta = b + m``, so in eval mode it adds the
  bias ``b`` exactly (up to float rounding), and in training mode, where it normalises
  with a batch's own statistics, it still computes about the same as long as the batch
  looks like those frames. (``gamma = 1, mean = 0, var = 1`` would also be exact in eval
  mode, but a training step would then rescale every channel to unit variance and the
  first steps would undo the model; ``train --task both`` also recomputes the statistics
  before each validation, which would do the same.) The frames are the training run's
  own, drawn as its BatchNorm recalibration draws them, or the parity frames;
- each head's temperature (``endostream.temperature`` in the metadata, folded into the
  graph as a ``Mul``) comes back as the temperature of the reference module;
- labels come from the file's metadata: the heads keep the file's classes in its order,
  and classes the training data adds get new rows (:func:`merged_labels`).

:func:`load_onnx_model` gives the eval-mode reference module of a file; the proof that
nothing was lost is :func:`check_loaded`, the export's own parity check (onnxruntime
against torch on the same frames, bound 1e-4 for float32), which every ``--init FILE.onnx``
runs on the loaded weights before training. A file that breaks the contract, is not
float32, or is not an EfficientNetB0 made by ``export`` is refused
(:class:`~endostream.errors.ModelError`, exit 4).

>>> merged_labels(("ear", "nose", "vocal_folds"), ("ear", "larynx", "nose"))
('ear', 'nose', 'vocal_folds', 'larynx')
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torchvision.models import efficientnet_b0

from endostream.contract import HEADS, META_PRECISION, META_TEMPERATURE
from endostream.errors import ModelError
from endostream.export.graph import IMAGENET_MEAN, IMAGENET_STD, PIXEL_MAX, FrameClassifier
from endostream.export.model import build_classifier
from endostream.export.multitask import SharedBackbone, SharedFrameClassifier
from endostream.export.parity import ParityReport, check_parity, parity_frames

log = logging.getLogger(__name__)

#: Suffix by which ``--init`` tells a contract file from a state dict.
ONNX_SUFFIX = ".onnx"

#: Frames of the parity check after loading: enough to see every head's classes move,
#: few enough for a CPU (the full EfficientNetB0 at 224x224, torch and onnxruntime).
LOAD_PARITY_FRAMES = 8

#: Training frames the unfolded BatchNorm statistics are measured on (fewer when the
#: training set is smaller): as many as ``train --task both`` recalibrates on.
STATISTICS_FRAMES = 256
#: Frames per batch when the BatchNorm statistics are measured.
STATISTICS_BATCH = 32
#: The epoch number whose plan those frames are drawn from: one no run reaches, so they
#: are a fixed draw per run seed.
STATISTICS_EPOCH = 2_000_029

_REEXPORT = "--init takes an fp32 file made by endostream export (or the bundled model)"

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


def merged_labels(file_labels: Sequence[str] | None, data_labels: Sequence[str]
                  ) -> tuple[str, ...]:
    """A head's classes when it starts from a file: the file's, in its order, then any the
    data adds (sorted, as the data gives them). Without the head in the file: the data's.
    """
    if file_labels is None:
        return tuple(data_labels)
    return tuple(file_labels) + tuple(lb for lb in data_labels if lb not in file_labels)


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
        raise ModelError(f"'{path}' is a {precision} file; {_REEXPORT}")
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


def shared_from_onnx(weights: OnnxWeights, labels: Mapping[str, Sequence[str]], *,
                     batches: Iterable[torch.Tensor] | None = None,
                     dropout: float | None = None) -> SharedBackbone:
    """A :class:`SharedBackbone` with the file's backbone and, per head in ``labels``
    (head -> classes, e.g. from :func:`merged_labels`), the file's rows for the classes it
    knows; a head or class the file lacks starts from random weights. ``batches``
    (normalised NCHW frames) set the BatchNorm statistics (module docstring); default:
    the parity frames. Returned in eval mode."""
    if not weights.shared:
        raise ModelError(f"'{weights.path}' holds one network per head (a two-network pair); "
                         "--task both trains one backbone: fine-tune each network with "
                         "--task quality and --task organ, or give a shared file")
    kwargs = {} if dropout is None else {"dropout": dropout}
    net = SharedBackbone({h: len(c) for h, c in labels.items()}, **kwargs)
    _load_backbone(net.features, weights.networks[0], batches)
    for head, classes in labels.items():
        _load_head(net.heads[head][1], weights, head, classes)
    return net.eval()


def classifier_from_onnx(weights: OnnxWeights, head: str, labels: Sequence[str], *,
                         batches: Iterable[torch.Tensor] | None = None,
                         dropout: float | None = None) -> nn.Module:
    """The thesis network (:func:`~.model.build_classifier`) for ``head`` with ``labels``:
    the backbone of that head's network in the file (of its only one if it lacks the
    head), the file's head rows where it has them. In eval mode."""
    kwargs = {} if dropout is None else {"dropout": dropout}
    net = build_classifier(len(labels), **kwargs)
    _load_backbone(net.features, weights.networks[weights.network_for(head)], batches)
    _load_head(net.classifier[1], weights, head, labels)
    return net.eval()


def load_onnx_model(path: str | Path, *, batches: Iterable[torch.Tensor] | None = None
                    ) -> FrameClassifier:
    """The eval-mode torch module of a contract file: uint8 NHWC frames in, the file's heads
    (softmax, its temperatures) out, as :func:`~.onnx_export.export_onnx` would export it.

    Use :meth:`~.graph.FrameClassifier.predict` for probabilities; :func:`check_loaded`
    compares them with onnxruntime.
    """
    weights = read_onnx_weights(path)
    batches = list(batches) if batches is not None else None
    if weights.shared:
        net = shared_from_onnx(weights, weights.heads, batches=batches)
        return SharedFrameClassifier(net, list(weights.heads), temperatures=weights.temperatures)
    nets = {head: classifier_from_onnx(weights, head, labels, batches=batches)
            for head, labels in weights.heads.items()}
    return FrameClassifier(nets, temperatures=weights.temperatures)


def check_loaded(weights: OnnxWeights, module: FrameClassifier,
                 frames: np.ndarray | None = None) -> ParityReport:
    """The export's parity check between the file (onnxruntime) and ``module`` loaded from
    it; ModelError (exit 4) past the float32 bound."""
    frames = parity_frames(LOAD_PARITY_FRAMES) if frames is None else frames
    try:
        return check_parity(module, weights.path, "fp32", frames=frames)
    except ModelError as e:
        raise ModelError(f"the weights read from '{weights.path}' do not compute what the file "
                         f"computes ({str(e).split('; ')[0].removeprefix('export failed the ')})"
                         f"; {_REEXPORT}") from None


def reference_of(weights: OnnxWeights, model: nn.Module, head_labels: Mapping[str, Sequence[str]]
                 ) -> FrameClassifier:
    """The exported module of a freshly loaded training ``model`` restricted to the file's
    heads and classes, with the file's temperatures: what :func:`check_loaded` compares.
    ``head_labels`` maps the model's heads to their (merged) classes."""
    if isinstance(model, SharedBackbone):
        module: FrameClassifier = SharedFrameClassifier(model, [h for h in weights.heads
                                                                if h in head_labels],
                                                        temperatures=weights.temperatures)
    else:
        ((head, _),) = head_labels.items()
        module = FrameClassifier({head: model}, temperatures=weights.temperatures)
    return _KnownClasses(module, weights, head_labels)


class _KnownClasses(FrameClassifier):
    """A reference whose outputs keep only the classes the file has, in its order (a
    training model may add classes; the file cannot show them)."""

    def __init__(self, inner: FrameClassifier, weights: OnnxWeights,
                 head_labels: Mapping[str, Sequence[str]]):
        nn.Module.__init__(self)
        self.inner = inner
        self.head_names = tuple(h for h in inner.head_names if h in weights.heads)
        self.columns = {h: [list(head_labels[h]).index(lb) for lb in weights.heads[h]]
                        for h in self.head_names}

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = dict(zip(self.inner.head_names, self.inner(frames), strict=True))
        # Softmax over the file's classes only: the same as the file when no class was added.
        picked = []
        for h in self.head_names:
            p = out[h][:, self.columns[h]]
            picked.append(p / p.sum(dim=1, keepdim=True))
        return tuple(picked)


def normalised_batches(frames: np.ndarray, batch: int = STATISTICS_BATCH
                       ) -> list[torch.Tensor]:
    """uint8 NHWC frames -> normalised NCHW float32 batches, as training feeds the network."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
    x = torch.from_numpy(np.array(frames)).permute(0, 3, 1, 2).to(torch.float32)
    x = x * (1.0 / (PIXEL_MAX * std)) + (-mean / std)
    return [x[i:i + batch] for i in range(0, len(x), batch)]


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
                             f"fold; {_REEXPORT}")

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
                             f"head ({len(gemms)} Gemm, {len(convs)} Conv); {_REEXPORT}")
        return gemms[0], convs

    def tensor(self, name: str) -> np.ndarray:
        # The exporter stores equal tensors once (random-init biases of zeros, say) and
        # hands the others out through Identity nodes.
        while name not in self.tensors and getattr(self.producer.get(name), "op_type",
                                                   None) == "Identity":
            name = self.producer[name].input[0]
        if name not in self.tensors:
            raise ModelError(f"'{self.path}': {name!r} is computed, not stored; {_REEXPORT}")
        return numpy_helper.to_array(self.tensors[name]).astype(np.float32)

    def conv_weights(self, node: onnx.NodeProto) -> ConvWeights:
        bias = self.tensor(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        return self.tensor(node.input[1]), bias

    def gemm_weights(self, node: onnx.NodeProto, classes: int) -> tuple[np.ndarray, np.ndarray]:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or attrs.get("transA"):
            raise ModelError(f"'{self.path}': a head's Gemm is scaled or transposed; {_REEXPORT}")
        weight = self.tensor(node.input[1])
        if not attrs.get("transB", 0):
            weight = weight.T
        bias = (self.tensor(node.input[2]) if len(node.input) > 2 and node.input[2]
                else np.zeros(weight.shape[0], np.float32))
        if weight.shape[0] != classes or bias.shape != (classes,):
            raise ModelError(f"'{self.path}': a head has {weight.shape[0]} outputs for "
                             f"{classes} labels; {_REEXPORT}")
        return np.ascontiguousarray(weight), bias


def _temperatures(path: Path, raw: str | None, heads: Mapping[str, Sequence[str]]
                  ) -> dict[str, float]:
    found = {}
    if raw:
        try:
            found = {h: float(t) for h, t in json.loads(raw).items()}
        except (ValueError, AttributeError, TypeError):
            raise ModelError(f"'{path}': {META_TEMPERATURE} is not a head -> number map; "
                             f"{_REEXPORT}") from None
    return {h: found.get(h, 1.0) for h in HEADS if h in heads}


# -- into torch -----------------------------------------------------------------------


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
                         f"has {len(expected)}; {_REEXPORT}")
    for k, ((weight, _), shape) in enumerate(zip(convs, expected, strict=True)):
        if tuple(weight.shape) != shape:
            raise ModelError(f"'{path}': convolution {k} is {list(weight.shape)}, EfficientNetB0's "
                             f"is {list(shape)}; {_REEXPORT}")


@torch.no_grad()
def _load_backbone(features: nn.Module, convs: Sequence[ConvWeights],
                   batches: Iterable[torch.Tensor] | None) -> None:
    """Copy the folded convolutions in, then unfold each BatchNorm on ``batches``."""
    pairs = conv_pairs(features)
    for (conv, norm), (weight, bias) in zip(pairs, convs, strict=True):
        conv.weight.copy_(torch.from_numpy(weight))
        b = torch.zeros(weight.shape[0]) if bias is None else torch.from_numpy(bias)
        if norm is None:
            conv.bias.copy_(b)
            continue
        # An exact identity plus the folded bias first: the statistics below are measured
        # on the function the file computes.
        norm.weight.fill_(1.0)
        norm.bias.copy_(b)
        norm.running_mean.zero_()
        norm.running_var.fill_(1.0 - norm.eps)
    if batches is None:
        batches = normalised_batches(parity_frames())
    _unfold(features, pairs, batches)


@torch.no_grad()
def _unfold(features: nn.Module, pairs: Sequence[tuple[nn.Conv2d, nn.BatchNorm2d | None]],
            batches: Iterable[torch.Tensor]) -> None:
    """Give each BatchNorm the statistics of its convolution's output on ``batches`` (the
    average of batch means and of unbiased batch variances, as
    :func:`~.multitask.recalibrate_batchnorm` keeps them), keeping the eval function."""
    sums: dict[int, list[torch.Tensor]] = {}
    count = 0

    def hook(k: int):
        def record(_module, _inputs, output):
            y = output.detach().float().transpose(0, 1).flatten(1)
            mean, var = y.mean(dim=1), y.var(dim=1, unbiased=y.shape[1] > 1)
            if k in sums:
                sums[k][0] += mean
                sums[k][1] += var
            else:
                sums[k] = [mean, var]
        return record

    handles = [conv.register_forward_hook(hook(k))
               for k, (conv, norm) in enumerate(pairs) if norm is not None]
    was_training = features.training
    features.eval()
    try:
        for x in batches:
            features(x)
            count += 1
    finally:
        for h in handles:
            h.remove()
        features.train(was_training)
    if count == 0:
        raise ModelError("no frames to set the BatchNorm statistics on")
    for k, (_, norm) in enumerate(pairs):
        if norm is None:
            continue
        mean, var = sums[k][0] / count, sums[k][1] / count
        folded_bias = norm.bias.clone()
        norm.running_mean.copy_(mean)
        norm.running_var.copy_(var)
        norm.weight.copy_(torch.sqrt(var + norm.eps))
        norm.bias.copy_(folded_bias + mean)


@torch.no_grad()
def _load_head(linear: nn.Linear, weights: OnnxWeights, head: str, classes: Sequence[str]) -> None:
    """The file's rows for the classes it knows; the rest keep their random start."""
    if head not in weights.linear:
        log.warning("%s has no %s head: that head starts from random weights",
                    weights.path, head)
        return
    weight, bias = weights.linear[head]
    known = weights.heads[head]
    for k, label in enumerate(classes):
        if label in known:
            row = known.index(label)
            linear.weight[k].copy_(torch.from_numpy(weight[row]))
            linear.bias[k] = float(bias[row])
    new = [lb for lb in classes if lb not in known]
    if new:
        log.warning("%s head: %s new (not in %s); %s from random weights", head,
                    ", ".join(new), weights.path, "it starts" if len(new) == 1 else "they start")


__all__ = ["OnnxWeights", "is_onnx", "merged_labels", "read_onnx_weights", "shared_from_onnx",
           "classifier_from_onnx", "load_onnx_model", "check_loaded", "reference_of",
           "normalised_batches", "conv_pairs"]
