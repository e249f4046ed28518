"""Inference: the model contract's classifiers on onnxruntime, and the batching worker.

:mod:`~endostream.inference.providers` chooses CUDA / TensorRT / CPU and builds sessions,
:mod:`~endostream.inference.classifier` loads and checks one combined or two single-head
files, :mod:`~endostream.inference.worker` is the thread that forms batches, and
:mod:`~endostream.inference.defaults` holds the batch sizes every command uses.
"""
