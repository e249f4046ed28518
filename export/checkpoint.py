"""Reading PyTorch checkpoints safely: tensors only, never arbitrary pickled objects.

A ``.pth`` file is a pickle, and unpickling runs code chosen by whoever wrote the file.
Every read here goes through ``torch.load(..., weights_only=True)``, whose unpickler
accepts tensors, containers and plain numbers only; anything else (a whole pickled
model, a custom class, an ``os.system`` payload) is refused before it is built.

Accepted layouts, all as written by ``torch.save``:

- the thesis format, ``torch.save(model.state_dict(), path)``;
- a dict that holds the state dict under ``state_dict`` or ``model_state_dict`` (a
  training checkpoint with epoch, optimiser state and the like beside it);
- either of those with the ``module.`` prefix that ``nn.DataParallel`` adds to each key.

>>> import io, torch
>>> buf = io.BytesIO(); torch.save({"model_state_dict": {"w": torch.zeros(2)}}, buf)
>>> sorted(state_dict_from_bytes(buf.getvalue(), "demo.pth"))
['w']
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from endostream.errors import ModelError

log = logging.getLogger(__name__)

#: Keys under which training checkpoints commonly nest the model's state dict.
WRAPPER_KEYS = ("state_dict", "model_state_dict")

#: Prefix that ``nn.DataParallel`` / DDP put in front of every key.
PARALLEL_PREFIX = "module."

#: Weight of the thesis head's ``Linear(1280, C)``; its first dimension is ``C``.
HEAD_WEIGHT_KEY = "classifier.1.weight"

#: BatchNorm step counters. Unused in eval mode, and some training code drops them, so a
#: checkpoint without them is accepted (the model keeps its own zeros).
OPTIONAL_KEY_SUFFIX = "num_batches_tracked"

#: How many key names an error message lists before it says "+N more".
KEYS_SHOWN = 4

FIX_SAVE = "save the weights with torch.save(model.state_dict(), path)"


@dataclass(frozen=True)
class Checkpoint:
    """A classifier checkpoint that passed the file-level checks.

    ``sha256`` is the hex digest of the file's bytes (provenance in the ONNX metadata);
    ``num_classes`` is ``C``, read from the head's weight.
    """

    path: Path
    sha256: str
    num_classes: int
    state_dict: Mapping[str, torch.Tensor] = field(repr=False)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a thesis-format classifier checkpoint and infer its number of classes.

    Raises :class:`~endostream.errors.ModelError` (one line) for a missing, truncated or
    non-PyTorch file, a file holding pickled objects, or one without the thesis head.
    The keys are checked against the network in :func:`check_keys` by the caller, who
    knows ``C`` only after this.

    >>> read_checkpoint("missing.pth")
    Traceback (most recent call last):
    ...
    endostream.errors.ModelError: checkpoint 'missing.pth' not found; check the path
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"checkpoint '{path}' not found; check the path")
    if not path.is_file():
        raise ModelError(f"checkpoint '{path}' is not a file; give the .pth file itself")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelError(f"cannot read checkpoint '{path}': {e.strerror}") from None
    state = state_dict_from_bytes(data, str(path))
    return Checkpoint(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        num_classes=infer_num_classes(state, str(path)),
        state_dict=state,
    )


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Safely read any state dict file (e.g. ImageNet weights); no head is required.

    >>> load_state_dict_file("missing.pth")
    Traceback (most recent call last):
    ...
    endostream.errors.ModelError: checkpoint 'missing.pth' not found; check the path
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint '{path}' not found; check the path")
    return state_dict_from_bytes(path.read_bytes(), str(path))


def state_dict_from_bytes(data: bytes, name: str) -> dict[str, torch.Tensor]:
    """Unpickle ``data`` with the tensors-only unpickler and unwrap the state dict."""
    if not data:
        raise ModelError(f"checkpoint '{name}' is empty; copy it again")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ModelError(_refusal(name, str(e))) from None
    except RuntimeError as e:
        text = str(e)
        if "zip archive" in text or "central directory" in text:
            raise ModelError(
                f"checkpoint '{name}' is truncated or corrupt (incomplete zip archive); "
                "copy it again or re-save it"
            ) from None
        raise ModelError(f"cannot read checkpoint '{name}': {_first_line(text)}") from None
    except Exception as e:  # EOFError, KeyError, ...: whatever a non-torch file trips on
        raise ModelError(
            f"'{name}' is not a PyTorch checkpoint ({type(e).__name__}); {FIX_SAVE}"
        ) from None
    return _unwrap(obj, name)


def infer_num_classes(state: Mapping[str, torch.Tensor], name: str) -> int:
    """``C`` from the head's ``Linear(1280, C)`` weight, with a clear error if it is absent."""
    weight = state.get(HEAD_WEIGHT_KEY)
    if weight is None:
        heads = sorted(k for k in state if k.startswith("classifier.") or k.startswith("fc."))
        found = f"; its head keys are {', '.join(heads[:KEYS_SHOWN])}" if heads else ""
        raise ModelError(
            f"checkpoint '{name}' has no '{HEAD_WEIGHT_KEY}' (the Dropout+Linear head of the "
            f"thesis EfficientNetB0){found}; export a model built with build_classifier()"
        )
    if weight.ndim != 2 or weight.shape[0] < 1:
        raise ModelError(
            f"checkpoint '{name}': '{HEAD_WEIGHT_KEY}' has shape {tuple(weight.shape)}, "
            "expected [C, 1280]; it is not the thesis head"
        )
    return int(weight.shape[0])


def check_keys(state: Mapping[str, torch.Tensor], expected: Iterable[str], name: str) -> None:
    """Refuse a state dict whose keys differ from the network's, naming the differences.

    >>> check_keys({"a": None, "x": None}, ["a", "b"], "m.pth")
    Traceback (most recent call last):
    ...
    endostream.errors.ModelError: checkpoint 'm.pth' does not match EfficientNetB0 with \
the thesis head: missing 1 key (b); unexpected 1 key (x); export a checkpoint of that \
network
    """
    expected = set(expected)
    missing = sorted(k for k in expected - state.keys() if not k.endswith(OPTIONAL_KEY_SUFFIX))
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise ModelError(
            f"checkpoint '{name}' does not match EfficientNetB0 with the thesis head: "
            f"{describe_keys(missing, unexpected)}; export a checkpoint of that network"
        )


def describe_keys(missing: list[str], unexpected: list[str]) -> str:
    """``"missing 3 keys (a, b, c); unexpected 1 key (x)"``, shortened past KEYS_SHOWN.

    >>> describe_keys(["a"], [f"k{i}" for i in range(6)])
    'missing 1 key (a); unexpected 6 keys (k0, k1, k2, k3, +2 more)'
    """
    parts = []
    for what, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            shown = ", ".join(keys[:KEYS_SHOWN])
            more = f", +{len(keys) - KEYS_SHOWN} more" if len(keys) > KEYS_SHOWN else ""
            plural = "key" if len(keys) == 1 else "keys"
            parts.append(f"{what} {len(keys)} {plural} ({shown}{more})")
    return "; ".join(parts)


def _unwrap(obj: object, name: str) -> dict[str, torch.Tensor]:
    """The flat ``{key: tensor}`` state dict inside whatever ``torch.load`` returned."""
    if isinstance(obj, Mapping) and not _is_state_dict(obj):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                log.debug("%s: using the state dict under '%s'", name, key)
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ModelError(
            f"checkpoint '{name}' holds a {type(obj).__name__}, not a state dict "
            f"(nor one under {' or '.join(WRAPPER_KEYS)}); {FIX_SAVE}"
        )
    if not _is_state_dict(obj):
        bad = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
        raise ModelError(
            f"checkpoint '{name}' mixes tensors with other values "
            f"({', '.join(bad[:KEYS_SHOWN])}); {FIX_SAVE}"
        )
    state = dict(obj)
    if all(k.startswith(PARALLEL_PREFIX) for k in state):
        state = {k[len(PARALLEL_PREFIX) :]: v for k, v in state.items()}
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ModelError(
                f"checkpoint '{name}': '{key}' holds NaN or Inf (training diverged?); "
                "export an earlier checkpoint"
            )
    return state


def _is_state_dict(obj: Mapping) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _refusal(name: str, text: str) -> str:
    """One-line refusal for a file the tensors-only unpickler would not build."""
    # torch >= 2.4 says "GLOBAL pkg.Class"; older releases "Unsupported class pkg.Class"
    found = re.search(r"(?:GLOBAL|Unsupported class) ([\w.]+)", text)
    what = f" ({found.group(1)})" if found else ""
    return (
        f"refusing to load checkpoint '{name}': it holds pickled Python objects{what}, "
        f"not only tensors, and unpickling them could run code; {FIX_SAVE}"
    )


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"
