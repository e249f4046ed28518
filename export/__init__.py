"""endostream.export: the PyTorch side — EfficientNetB0 checkpoints -> contract ONNX files.

Needs the ``export`` extra (``pip install 'endostream[export]'``: torch, torchvision,
onnx); the runtime (``endostream``) never imports this package or torch.

- :mod:`.model`: the thesis network, ``build_classifier(C)`` (EfficientNetB0 with a
  ``Dropout(0.2) + Linear(1280, C)`` head), and loading a checkpoint into it;
- :mod:`.checkpoint`: safe (tensors-only) checkpoint reading, key checks, ``C`` inference;
- :mod:`.graph`: the exported module, uint8 NHWC frames in, softmax per head out;
- :mod:`.onnx_export`: :func:`export_onnx`, metadata, ``onnx.checker``, fp16 variant;
- :mod:`.parity`: the onnxruntime-vs-PyTorch check every export runs;
- :mod:`.multitask`, :mod:`.partial_labels`, :mod:`.multitask_train`: one backbone with
  both heads (``train --task both``, ``export --shared``): partial labels, masked losses;
- :mod:`.command`: the ``endostream export`` subcommand.

Importing this package imports nothing heavy; the names below load on first use, so the
CLI can build ``endostream export --help`` on a machine without torch.

>>> from endostream import export
>>> sorted(export.__all__)
['build_classifier', 'export_onnx', 'head_spec']
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["build_classifier", "export_onnx", "head_spec"]

_LAZY = {
    "build_classifier": ".model",
    "export_onnx": ".onnx_export",
    "head_spec": ".onnx_export",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
