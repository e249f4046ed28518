"""One EfficientNetB0 backbone, two heads: the shared-backbone network and its ONNX graph.

The thesis trains two full EfficientNetB0 networks on the same 224x224 frame; at run time
both compute the same kind of features twice. :class:`SharedBackbone` computes them once
and hangs a ``Dropout + Linear(1280, C)`` head per task off the pooled features, so a frame
costs one backbone instead of two. The exported file meets the same model contract (one
``frames`` input, a ``quality`` and an ``organ`` output, labels in the metadata), so the
runtime runs it unchanged.

Checkpoint format (``endostream train --task both`` writes it, ``endostream export
--shared`` reads it): ``torch.save(model.state_dict())`` of :class:`SharedBackbone`, keys
``features.*`` (torchvision's EfficientNetB0 backbone, the same names as its ImageNet
weights) and ``heads.<head>.1.weight`` / ``.bias`` per head. :func:`is_shared_state` tells
it from a thesis-format (``classifier.*``) checkpoint.

>>> net = SharedBackbone({"quality": 2, "organ": 3})
>>> sorted(k for k in net.state_dict() if k.startswith("heads."))[:2]
['heads.organ.1.bias', 'heads.organ.1.weight']
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models import efficientnet_b0

from endostream.contract import HEADS
from endostream.errors import ModelError, UsageError
from endostream.export.checkpoint import (
    OPTIONAL_KEY_SUFFIX,
    describe_keys,
    state_dict_from_bytes,
)
from endostream.export.graph import FrameClassifier
from endostream.export.model import DEFAULT_DROPOUT, FEATURES, build_classifier

log = logging.getLogger(__name__)

#: State-dict prefix of the heads; ``heads.<head>.1.weight`` is the head's ``Linear``.
HEADS_PREFIX = "heads."


class SharedBackbone(nn.Module):
    """EfficientNetB0 features and pooling once, then one ``Dropout + Linear`` per head.

    ``heads`` maps head name to number of classes, in output order. ``init_weights`` is an
    optional local ImageNet state dict, checked and loaded as for the thesis network.

    >>> logits = SharedBackbone({"quality": 2}).eval()(torch.zeros(1, 3, 224, 224))
    >>> tuple(logits["quality"].shape)
    (1, 2)
    """

    def __init__(self, heads: Mapping[str, int], dropout: float = DEFAULT_DROPOUT,
                 init_weights: Path | None = None):
        super().__init__()
        if not heads or any(c < 1 for c in heads.values()):
            raise ModelError(f"a shared model needs heads with one class or more, got {heads}")
        # Built through the thesis network so --init weights get the same strict key check.
        net = (build_classifier(1, init_weights=init_weights) if init_weights is not None
               else efficientnet_b0(weights=None))
        self.features = net.features
        self.avgpool = net.avgpool
        self.heads = nn.ModuleDict({
            name: nn.Sequential(nn.Dropout(p=dropout), nn.Linear(FEATURES, classes))
            for name, classes in heads.items()})

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised NCHW images -> pooled features ``[N, 1280]``, computed once per frame."""
        return torch.flatten(self.avgpool(self.features(x)), 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.embed(x)
        return {name: head(features) for name, head in self.heads.items()}


class SharedFrameClassifier(FrameClassifier):
    """The exported module for a shared model: uint8 NHWC in, one backbone, softmax per head.

    The same normalisation and output order as :class:`~.graph.FrameClassifier` (so parity
    and the contract work unchanged); only the backbone runs once for all heads.
    """

    def __init__(self, model: SharedBackbone, heads: Sequence[str], half: bool = False,
                 temperatures: Mapping[str, float] | None = None):
        super().__init__({name: model.heads[name] for name in heads}, half=half,
                         temperatures=temperatures)
        self.features = model.features
        self.avgpool = model.avgpool
        if half:
            self.features.half()
        self.eval()

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.normalise(frames)
        features = torch.flatten(self.avgpool(self.features(x)), 1)
        # _logits applies the head's temperature, as for the two-network graph.
        return tuple(torch.softmax(self._logits(name, features), dim=1)
                     for name in self.head_names)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Recompute every BatchNorm's running statistics as the plain average over ``batches``
    (normalised NCHW images); the rest of the network stays in eval mode (no dropout, no
    stochastic depth, no random numbers drawn). Returns the number of images seen.

    Why: the statistics a training run gathers follow its batches, and ``--task both``
    batches mix real frames with synthetic blurred or darkened ones; measured on the model
    card's data, eval-mode accuracy was near chance while the same weights with batch
    statistics were right, and statistics from real frames fixed most of it
    (docs/notes/shared-backbone.md).

    >>> net = SharedBackbone({"quality": 2}).eval()
    >>> recalibrate_batchnorm(net, [torch.randn(4, 3, 32, 32)]), net.training
    (4, False)
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    seen = 0
    try:
        for x in batches:
            model(x)
            seen += int(x.shape[0])
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    return seen


def is_shared_state(state: Mapping[str, object]) -> bool:
    """True for a :class:`SharedBackbone` state dict (it has ``heads.*`` keys).

    >>> is_shared_state({"heads.quality.1.weight": None}), is_shared_state({"classifier.1.w": 0})
    (True, False)
    """
    return any(k.startswith(HEADS_PREFIX) for k in state)


def head_classes(state: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Number of classes per head of a shared state dict, in the contract's order."""
    found = {}
    for name in HEADS:
        weight = state.get(f"{HEADS_PREFIX}{name}.1.weight")
        if weight is not None:
            found[name] = int(weight.shape[0])
    return found


def read_shared(path: str | Path) -> tuple[dict[str, torch.Tensor], str] | None:
    """``(state dict, sha256)`` of a shared-backbone checkpoint, or None for another format
    (or no readable file: the thesis loader then says what is wrong with it)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    state = state_dict_from_bytes(data, str(path))
    if not is_shared_state(state):
        return None
    return state, hashlib.sha256(data).hexdigest()


def load_shared(state: Mapping[str, torch.Tensor], name: str) -> SharedBackbone:
    """Build the network for a shared state dict and load it (strict keys), in eval mode."""
    classes = head_classes(state)
    if not classes:
        raise ModelError(f"checkpoint '{name}' has heads but none of {', '.join(HEADS)}; "
                         "train it with endostream train --task both")
    net = SharedBackbone(classes)
    expected = set(net.state_dict())
    missing = sorted(k for k in expected - state.keys() if not k.endswith(OPTIONAL_KEY_SUFFIX))
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise ModelError(f"checkpoint '{name}' does not match the shared EfficientNetB0: "
                         f"{describe_keys(missing, unexpected)}; export a checkpoint of "
                         "endostream train --task both")
    net.load_state_dict(state, strict=False)
    return net.eval()


def shared_reference(path: Path, state: Mapping[str, torch.Tensor],
                     labels: Mapping[str, Sequence[str]], fp16: bool,
                     temperatures: Mapping[str, float] | None = None,
                     ) -> tuple[SharedFrameClassifier, SharedFrameClassifier]:
    """``(float32 reference, module to export)`` for the heads named in ``labels``.

    The number of labels per head must match the checkpoint's classes (one-line UsageError
    naming the option otherwise).
    """
    net = load_shared(state, str(path))
    classes = head_classes(state)
    for head, names in labels.items():
        if head not in classes:
            raise UsageError(f"'{path}' has no {head} head (it has {', '.join(classes)}); "
                             f"leave out the {head} head")
        if classes[head] != len(names):
            raise UsageError(f"{head} head: {len(names)} labels given ({', '.join(names)}) but "
                             f"'{path}' has {classes[head]} classes; give {classes[head]} labels "
                             f"in training order (--{head}-labels)")
    heads = list(labels)
    reference = SharedFrameClassifier(net, heads, temperatures=temperatures)
    target = (SharedFrameClassifier(copy.deepcopy(net), heads, half=True,
                                    temperatures=temperatures) if fp16 else reference)
    return reference, target


def shared_modules(specs: Sequence, fp16: bool, temperatures: Mapping[str, float] | None = None,
                   ) -> tuple[SharedFrameClassifier, SharedFrameClassifier, dict[str, str]] | None:
    """``(reference, module to export, sha per head)`` when the heads name one shared file.

    ``specs`` are :class:`~.onnx_export.HeadSpec` (name, checkpoint, labels). None when
    every checkpoint is thesis-format; a shared file mixed with another checkpoint is
    refused, since it holds both heads already. ``temperatures`` (head → T) are folded
    into the softmax as in the two-network graph.
    """
    paths = {Path(spec.checkpoint) for spec in specs}
    found = {path: read_shared(path) for path in paths}
    if all(v is None for v in found.values()):
        return None
    if len(paths) > 1:
        raise UsageError("a shared-backbone checkpoint (train --task both) holds both heads; "
                         "export it alone with --shared")
    ((path, (state, sha)),) = found.items()
    labels = {spec.name: list(spec.labels) for spec in specs}
    reference, target = shared_reference(path, state, labels, fp16=fp16,
                                         temperatures=temperatures)
    return reference, target, {spec.name: sha for spec in specs}


__all__ = ["SharedBackbone", "SharedFrameClassifier", "recalibrate_batchnorm", "is_shared_state",
           "head_classes", "read_shared", "load_shared", "shared_reference", "shared_modules"]
