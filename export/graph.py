"""The module that becomes the ONNX graph: uint8 NHWC frames in, softmax per head out.

The model contract (:mod:`endostream.contract`, docs/model-contract.md) puts scaling and
ImageNet normalisation inside the graph,
so the runtime sends uint8 ``[N, 224, 224, 3]`` frames, 4x fewer bytes than float, and
does no float math per pixel. Both classifiers hang off that one input, so a combined
file runs both heads in one onnxruntime call.

Order of operations, chosen for the exported graph:

1. ``Transpose`` NHWC -> NCHW while the data is still uint8 (a quarter of the bytes to
   move compared with transposing floats);
2. ``Cast`` to float32 and one fused affine ``x * (1 / (255 * std)) - mean / std``: the same
   values as ``(x / 255 - mean) / std`` up to float32 rounding (~1e-7), one op fewer;
3. each backbone (float32, or float16 for the GPU variant: the cast happens *after*
   normalisation, so the 0..255 range never meets float16's 11-bit mantissa);
4. logits cast back to float32 before ``Softmax``, so outputs are float32 in both variants;
5. a head with a fitted temperature ``T`` (:mod:`.calibration`) gets ``logits * (1 / T)``
   before its ``Softmax``: one ``Mul`` by a constant, none when ``T`` is 1.

>>> import torch
>>> from torch import nn
>>> tiny = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
>>> net = FrameClassifier({"quality": tiny})
>>> probs = net.predict(torch.zeros(1, 224, 224, 3, dtype=torch.uint8))["quality"]
>>> tuple(probs.shape), round(float(probs.sum()), 5)
((1, 2), 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

#: ImageNet channel means (RGB, 0..1 scale) used in training, torchvision's values.
IMAGENET_MEAN = (0.485, 0.456, 0.406)

#: ImageNet channel standard deviations (RGB, 0..1 scale), torchvision's values.
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Largest value of a uint8 pixel: scales 0..255 to 0..1.
PIXEL_MAX = 255.0


class FrameClassifier(nn.Module):
    """One or more classifiers behind one uint8 NHWC input, one softmax output per head.

    ``heads`` maps head name to network (logits out); its order is the output order.
    ``half=True`` makes the GPU variant: backbones in float16, input still uint8, outputs
    still float32. Call ``.eval()`` (done here) before exporting; dropout and stochastic
    depth must be off.
    """

    def __init__(self, heads: Mapping[str, nn.Module], half: bool = False,
                 temperatures: Mapping[str, float] | None = None):
        super().__init__()
        if not heads:
            raise ValueError("FrameClassifier needs at least one head")
        self.head_names = tuple(heads)
        self.nets = nn.ModuleDict(heads)
        self.compute_dtype = torch.float16 if half else torch.float32
        # Calibration: softmax(logits / T) per head; heads at T == 1 get no extra op.
        self.inverse_t = {h: 1.0 / float(t) for h, t in (temperatures or {}).items()
                          if float(t) != 1.0}
        if half:
            self.nets.half()
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
        # Buffers, so they follow .to(device) and land in the graph as initializers.
        self.register_buffer("scale", 1.0 / (PIXEL_MAX * std), persistent=False)
        self.register_buffer("shift", -mean / std, persistent=False)
        self.eval()

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``frames``: uint8 ``[N, H, W, 3]`` RGB -> float32 ``[N, C]`` probabilities per head."""
        x = self.normalise(frames)
        return tuple(
            torch.softmax(self._logits(name, x), dim=1) for name in self.head_names
        )

    def _logits(self, name: str, x: torch.Tensor) -> torch.Tensor:
        logits = self.nets[name](x).to(torch.float32)
        return logits * self.inverse_t[name] if name in self.inverse_t else logits

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC frames -> normalised NCHW in the compute dtype (steps 1-3 above)."""
        x = frames.permute(0, 3, 1, 2).to(torch.float32)
        return (x * self.scale + self.shift).to(self.compute_dtype)

    def predict(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Eager inference without autograd: ``{head: probs}``, the parity reference."""
        with torch.inference_mode():
            return dict(zip(self.head_names, self(frames), strict=True))
