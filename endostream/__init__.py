"""endostream: organ and image-quality sections for ENT endoscope video.

The runtime (this package) decodes a video or camera feed, crops each frame to the
endoscope's content area, runs the quality and organ classifiers (one ONNX file, see the
model contract in docs/model-contract.md) in batches through onnxruntime, and merges the per-frame
labels into sections. It never imports torch or Qt; those live in ``endostream.export``
and ``endostream.gui``, installed with the ``export`` and ``gui`` extras.

>>> import endostream
>>> endostream.__version__
'0.1.0'
"""

__version__ = "0.1.0"
