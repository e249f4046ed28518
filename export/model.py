"""The thesis classifier: torchvision EfficientNetB0 with a new ``Dropout + Linear`` head.

Both of endostream's classifiers (quality: bad / good, organ: ear / nose / vocal folds) are
the same network with a different number of classes ``C``. Nothing is ever downloaded:
the backbone is built with ``weights=None``; ImageNet weights for training come from a
local file given as ``init_weights``.

>>> net = build_classifier(3)
>>> net.classifier
Sequential(
  (0): Dropout(p=0.2, inplace=False)
  (1): Linear(in_features=1280, out_features=3, bias=True)
)
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn
from torchvision.models import efficientnet_b0

from endostream.errors import ModelError
from endostream.export.checkpoint import (
    Checkpoint,
    check_keys,
    describe_keys,
    load_state_dict_file,
    read_checkpoint,
)

log = logging.getLogger(__name__)

#: Width of EfficientNetB0's pooled feature vector, the input of the classifier head.
FEATURES = 1280

#: Dropout before the head, as in the thesis (and torchvision's own B0 head).
DEFAULT_DROPOUT = 0.2

#: State-dict prefix of the head; these keys depend on ``C`` and are never taken from
#: ImageNet weights.
HEAD_PREFIX = "classifier."
#: State-dict prefix of a shared-backbone checkpoint's heads (``train --task both``):
#: skipped as well, so such a checkpoint can start a new run (fine-tuning on corrections).
SHARED_HEADS_PREFIX = "heads."
#: State-dict prefix of the backbone, in both networks (torchvision's name); ``train
#: --backbone-lr`` applies to these parameters.
BACKBONE_PREFIX = "features."


def build_classifier(
    num_classes: int, dropout: float = DEFAULT_DROPOUT, init_weights: Path | None = None
) -> nn.Module:
    """EfficientNetB0 whose classifier is ``Sequential(Dropout(dropout), Linear(1280, C))``.

    ``init_weights`` is an optional local ImageNet state dict for the backbone (torchvision's
    ``efficientnet_b0_rwightman-*.pth`` or any file with the same keys). Its backbone keys
    must match exactly (a file for another network is refused, naming the keys); its
    ``classifier.*`` keys are skipped because the head is new.

    >>> build_classifier(2).classifier[1].out_features
    2
    """
    if num_classes < 1:
        raise ModelError(f"a classifier needs at least one class, got {num_classes}")
    net = efficientnet_b0(weights=None)
    # Not inplace, unlike torchvision's head: the thesis used plain Dropout(0.2), and an
    # inplace op on the pooled features gains nothing here.
    net.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(FEATURES, num_classes))
    if init_weights is not None:
        _load_backbone(net, Path(init_weights))
    return net


def _load_backbone(net: nn.Module, path: Path) -> None:
    """Copy the backbone of a local ImageNet state dict into ``net``; strict on keys."""
    state = load_state_dict_file(path)
    backbone = {k: v for k, v in state.items()
                if not k.startswith((HEAD_PREFIX, SHARED_HEADS_PREFIX))}
    expected = {k for k in net.state_dict() if not k.startswith(HEAD_PREFIX)}
    missing = sorted(expected - backbone.keys())
    unexpected = sorted(backbone.keys() - expected)
    if missing or unexpected:
        raise ModelError(
            f"{path} is not an EfficientNetB0 state dict: "
            f"{describe_keys(missing, unexpected)}; give torchvision's efficientnet_b0 weights"
        )
    # strict=False only because the head is left out on purpose; the keys were checked.
    _copy_weights(net, backbone, str(path), strict=False)
    log.info("initialised EfficientNetB0 backbone from %s (%d tensors)", path, len(backbone))


def classifier_from_checkpoint(path: str | Path) -> tuple[nn.Module, Checkpoint]:
    """Build the network for a thesis-format checkpoint and load it, in eval mode.

    ``C`` comes from the checkpoint's head; the keys must match the network exactly
    (missing ``num_batches_tracked`` counters excepted), otherwise a
    :class:`~endostream.errors.ModelError` names the missing and unexpected keys.

    >>> import torch, tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "q.pth")
    >>> torch.save(build_classifier(2).state_dict(), f)
    >>> net, ckpt = classifier_from_checkpoint(f)
    >>> ckpt.num_classes, net.training
    (2, False)
    """
    ckpt = read_checkpoint(path)
    net = build_classifier(ckpt.num_classes)
    check_keys(ckpt.state_dict, net.state_dict().keys(), str(ckpt.path))
    _copy_weights(net, ckpt.state_dict, str(ckpt.path), strict=False)
    return net.eval(), ckpt


def _copy_weights(net: nn.Module, state: dict, name: str, strict: bool) -> None:
    """``load_state_dict`` with shape mismatches turned into a one-line ModelError."""
    try:
        net.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        # torch lists one "size mismatch for KEY: ..." line per tensor; the first will do.
        lines = [ln.strip() for ln in str(e).splitlines() if "size mismatch" in ln]
        detail = lines[0].rstrip(".") if lines else str(e).strip().splitlines()[0]
        more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
        raise ModelError(
            f"checkpoint '{name}' does not fit EfficientNetB0: {detail}{more}; "
            "it was trained with another network"
        ) from None
