"""The model contract: the one place that says what an endostream ONNX file looks like.

The exporter (:mod:`endostream.export`) writes these names and the loader
(:mod:`endostream.inference.classifier`) checks them; both import them from here, so the
two sides cannot drift apart. docs/model-contract.md explains each rule.

- input :data:`INPUT_NAME`: ``uint8 [N, 224, 224, 3]``, RGB, ``N`` dynamic; scaling and
  ImageNet normalisation happen inside the graph;
- one output per head (:data:`HEADS`), ``float32 [N, C]`` softmax probabilities; the
  quality head must have the :data:`GOOD_LABEL` class;
- ``metadata_props``: :data:`META_SCHEMA` = :data:`SCHEMA_VERSION`, :data:`META_HEADS`
  (JSON head → ordered labels: labels always come from the file), :data:`META_PRECISION`
  (:data:`PRECISIONS`),
  and provenance (:data:`META_SOURCE_SHA256`, :data:`META_EXPORTED_AT`,
  :data:`META_EXPORTER`, :data:`META_VERSIONS`).

>>> INPUT_SHAPE
(224, 224, 3)
>>> DEFAULT_LABELS["organ"]
('ear', 'nose', 'vocal_folds')
"""

from __future__ import annotations

from endostream.frames import MODEL_INPUT_SIZE

#: Contract version (metadata ``endostream.schema``) this runtime reads and export writes.
SCHEMA_VERSION = "1"

META_SCHEMA = "endostream.schema"
META_HEADS = "endostream.heads"
META_PRECISION = "endostream.precision"
META_SOURCE_SHA256 = "endostream.source_sha256"
META_EXPORTED_AT = "endostream.exported_at"
META_EXPORTER = "endostream.exporter"
META_VERSIONS = "endostream.versions"
#: Temperature per head (JSON head → float) that was folded into the softmax at export;
#: informational, the graph's outputs are already calibrated.
META_TEMPERATURE = "endostream.temperature"

#: Head names, in output order; a file needs at least one.
HEADS = ("quality", "organ")

#: The quality label that marks a usable image: the segmenter gates organ evidence on it.
GOOD_LABEL = "good"

#: Labels a head gets when nobody names others (the thesis' classes, in training order).
DEFAULT_LABELS = {"quality": ("bad", "good"), "organ": ("ear", "nose", "vocal_folds")}

#: Name and per-image shape of the one input.
INPUT_NAME = "frames"
INPUT_SHAPE = (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3)

#: How an int8 file was quantised (JSON: format, calibration, the fp32 file's sha256);
#: informational.
META_QUANTIZATION = "endostream.quantization"

#: Precisions a file may declare; fp16 is for GPUs only, int8 (static QDQ) for the CPU only.
PRECISIONS = ("fp32", "fp16", "int8")
