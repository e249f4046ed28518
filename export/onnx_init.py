"""``train --init FILE.onnx``: a contract file's weights back in the torch network.

The model a clinic runs is an ONNX file (the bundled ``endostream-demo.onnx`` or one made
by ``endostream export``), often without the checkpoint it came from. Fine-tuning must
start from *that* model, not from a new one, so this module reads the weights out of the
graph and puts them into this project's own torch modules:
:class:`~.multitask.SharedBackbone` for a shared file (one backbone, both heads), or
:func:`~.model.build_classifier` per head for a two-network pair or a one-head file.

How (the file is read by :mod:`.onnx_weights`, by structure, since export folds every
BatchNorm into the convolution before it):

- a folded convolution goes back as the convolution plus a BatchNorm that computes the
  same function: with ``y`` the folded convolution's output and ``m``, ``v`` its
  per-channel mean and variance on real frames, the BatchNorm gets running statistics
  ``m``, ``v``, ``gamma = sqrt(v + eps)`` and ``beta = b + m``, so in eval mode it adds the
  bias ``b`` exactly (up to float rounding), and in training mode, where it normalises
  with a batch's own statistics, it still computes about the same as long as the batch
  looks like those frames. ``gamma = 1, mean = 0, var = 1`` would be exact in eval mode
  too, but not in training mode, and ``train --task both`` recomputes the statistics
  before each validation: measured on the bundled model, 32 parity frames in one batch
  with batch statistics, the unfolding here moves no probability by more than 1.4e-4,
  the identity one by up to 0.41, changing 16 % of the organ answers. The frames are the
  training run's own, drawn as its BatchNorm recalibration draws them, or the parity
  frames;
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

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from endostream.errors import ModelError
from endostream.export.graph import IMAGENET_MEAN, IMAGENET_STD, PIXEL_MAX, FrameClassifier
from endostream.export.model import build_classifier
from endostream.export.multitask import SharedBackbone, SharedFrameClassifier
from endostream.export.onnx_weights import (
    REEXPORT_HINT,
    ConvWeights,
    OnnxWeights,
    conv_pairs,
    is_onnx,
    read_onnx_weights,
)
from endostream.export.parity import ParityReport, check_parity, parity_frames

log = logging.getLogger(__name__)

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

def merged_labels(file_labels: Sequence[str] | None, data_labels: Sequence[str]
                  ) -> tuple[str, ...]:
    """A head's classes when it starts from a file: the file's, in its order, then any the
    data adds (sorted, as the data gives them). Without the head in the file: the data's.
    """
    if file_labels is None:
        return tuple(data_labels)
    return tuple(file_labels) + tuple(lb for lb in data_labels if lb not in file_labels)


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
                         f"; {REEXPORT_HINT}") from None


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


# -- into torch -----------------------------------------------------------------------


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
           "normalised_batches"]
