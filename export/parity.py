"""Parity check run at every export: onnxruntime on the new file against PyTorch eager.

The frames are real-looking: synthetic endoscope views (:mod:`endostream.synth.scenes`,
three organ scenes, clear / blurred / dark looks, disc and rounded-rectangle masks in
black borders) taken through the runtime's own :func:`endostream.crop.find_content_area`
and :func:`endostream.crop.preprocess`, so the check sees the pixels the runtime sends.
Every :data:`TRAINING_MASK_EVERY`-th frame then goes through a field-of-view mask as
training draws them (:meth:`endostream.fov.FovMask.random`, outside painted near-black), so
the outside-the-field treatment that training and the runtime share is checked too.

Both sides get the same uint8 frames. The reference is always the float32 PyTorch module
(the checkpoints as trained); the candidate is the exported file in onnxruntime, run once
on the whole batch and once at batch 1, so the dynamic batch axis is exercised too. The
measure is the largest absolute difference of any probability, per head.

Bounds (probabilities lie in [0, 1]):

- float32, :data:`FP32_PARITY_BOUND` = 1e-4. Measured 2e-6 to 3e-5 on the test suite's
  networks, which are far more sensitive than trained ones (below); the rest is
  onnxruntime's fused CPU kernels (with optimisations off the difference is 6e-6, the
  same as PyTorch float32 against float64).
- float16, :data:`FP16_PARITY_BOUND` = 5e-2. float16 keeps 11 significant bits. The
  test suite's random-init networks (BatchNorm recalibrated, head scaled so the answers
  vary) amplify rounding about 2x per stage: their float16 files differ from float32 by
  6e-3 to 6.6e-2 (2.5e-3 to 1.9e-2 with a less confident head). They are pathologically
  sensitive: +-2 grey levels of noise move their probabilities by 0.03-0.55, where a
  trained classifier barely moves, so trained networks should sit well inside the bound
  (not measured here: no trained weights on this machine). An export bug is far outside
  it: swapped RGB/BGR moves the same networks' probabilities by 0.68-0.98. A model that
  strays past the bound fails the export with advice to keep the fp32 file.
  The float16 file runs on CUDA when a GPU is usable. On a CPU-only machine onnxruntime
  runs it by inserting casts around float16 nodes (float32 arithmetic on float16 weights
  and float16 intermediate tensors): that checks the file's weights and graph, not the
  GPU's own float16 kernels. The report names the provider that ran.

>>> frames = parity_frames(4)
>>> frames.shape, frames.dtype.name
((4, 224, 224, 3), 'uint8')
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from endostream.crop import find_content_area, preprocess
from endostream.errors import ModelError
from endostream.export.graph import FrameClassifier
from endostream.fov import FovMask
from endostream.inference.providers import probe_gpu, quiet_ort_logging
from endostream.synth.scenes import ORGANS, FieldOfView, SceneRenderer

log = logging.getLogger(__name__)

#: Largest allowed |onnxruntime - PyTorch| of any probability for a float32 file.
FP32_PARITY_BOUND = 1e-4

#: Largest allowed |onnxruntime(float16 file) - PyTorch(float32)| of any probability.
FP16_PARITY_BOUND = 5e-2

#: Frames in the parity batch: every scene x look x mask combination once or more, and
#: small enough that the PyTorch reference takes about a second per head on two cores.
PARITY_FRAMES = 16

#: Seed of the synthetic scenes; fixed, so every export is checked on the same frames.
PARITY_SEED = 20240

#: Size of the rendered full frames before crop and resize: big enough that the crop
#: downscales (as with real video), small enough to render the scenes in about a second.
RENDER_SIZE = (400, 300)

#: Every how many parity frames one goes through a training-style field-of-view mask.
TRAINING_MASK_EVERY = 4

#: Looks of the parity frames: usable, blurred and dark views all reach the model.
LOOKS = ("clear", "blur", "dark")

#: Bound per precision.
BOUNDS = {"fp32": FP32_PARITY_BOUND, "fp16": FP16_PARITY_BOUND}

_CPU = "CPUExecutionProvider"
_CUDA = "CUDAExecutionProvider"


@dataclass(frozen=True)
class ParityReport:
    """Outcome of one parity check; ``max_abs_diff`` maps head -> largest difference."""

    precision: str
    provider: str
    frames: int
    batch_sizes: tuple[int, ...]
    max_abs_diff: dict[str, float]
    bound: float
    #: Largest per-class range of the reference probabilities over the frames; near 0
    #: means the model says the same for every frame and the check proves little.
    spread: float

    @property
    def passed(self) -> bool:
        return all(d <= self.bound for d in self.max_abs_diff.values())

    def summary(self) -> str:
        """One line, e.g. ``parity fp32 on cpu, 16 frames at batch 16 and 1: ...``."""
        diffs = ", ".join(f"{h} {d:.2e}" for h, d in self.max_abs_diff.items())
        batches = " and ".join(str(b) for b in self.batch_sizes)
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"parity {self.precision} on {self.provider}, {self.frames} frames at batch "
            f"{batches}: max |onnxruntime - torch| {diffs} (bound {self.bound:.0e}) {verdict}"
        )


@functools.lru_cache(maxsize=4)
def _cached_frames(count: int, seed: int) -> np.ndarray:
    width, height = RENDER_SIZE
    renderers = [
        SceneRenderer(width, height, fov=FieldOfView.named(name), seed=seed + i)
        for i, name in enumerate(("circle", "rounded"))
    ]
    frames = np.empty((count, 224, 224, 3), np.uint8)
    for i in range(count):
        renderer = renderers[i % len(renderers)]
        scene, look = _scene_and_look(i)
        image = renderer.render(0.37 * i, scene, look, noise_index=i)
        frames[i] = preprocess(image, find_content_area(image))
        if i % TRAINING_MASK_EVERY == TRAINING_MASK_EVERY - 1:
            rng = np.random.default_rng([seed, i])
            frames[i] = FovMask.random(rng).apply(frames[i], rng)
    frames.flags.writeable = False
    return frames


def parity_labels(count: int = PARITY_FRAMES) -> dict[str, list[str]]:
    """What each of ``parity_frames(count)`` shows, per head: ``organ`` (the scene) and
    ``quality`` (``good`` for the clear look, else ``bad``). The same for every seed.

    >>> parity_labels(4)["organ"], parity_labels(4)["quality"]
    (['ear', 'nose', 'vocal_folds', 'ear'], ['good', 'good', 'good', 'bad'])
    """
    shown = [_scene_and_look(i) for i in range(count)]
    return {"quality": ["good" if look == "clear" else "bad" for _, look in shown],
            "organ": [scene for scene, _ in shown]}


def _scene_and_look(index: int) -> tuple[str, str]:
    """Scene and look of parity frame ``index``: every combination in turn."""
    return ORGANS[index % len(ORGANS)], LOOKS[(index // len(ORGANS)) % len(LOOKS)]


def parity_frames(count: int = PARITY_FRAMES, seed: int = PARITY_SEED) -> np.ndarray:
    """uint8 ``[count, 224, 224, 3]`` model inputs: synthetic scopes, cropped as at run time.

    Rendered once per ``(count, seed)`` and process, then reused (read-only array).
    """
    if count < 1:
        raise ValueError(f"parity needs at least one frame, got {count}")
    return _cached_frames(count, seed)


def check_parity(
    reference: FrameClassifier,
    model_path: Path,
    precision: str,
    frames: np.ndarray | None = None,
) -> ParityReport:
    """Compare the exported file with ``reference``; raise ModelError past the bound.

    ``reference`` is the float32 module the file was exported from (for an fp16 file,
    the float32 module before ``half()``). Returns the report when within the bound.
    """
    if precision not in BOUNDS:
        raise ValueError(f"precision must be one of {sorted(BOUNDS)}, got {precision!r}")
    if frames is None:
        frames = parity_frames()
    predicted = reference.predict(torch.from_numpy(np.array(frames)))
    expected = {head: probs.numpy() for head, probs in predicted.items()}
    session, provider = _session(model_path, precision)
    names = [o.name for o in session.get_outputs()]
    full = dict(zip(names, session.run(None, {"frames": frames}), strict=True))
    single = dict(zip(names, session.run(None, {"frames": frames[:1]}), strict=True))
    diffs = {}
    for head in reference.head_names:
        d_full = np.abs(full[head].astype(np.float64) - expected[head])
        d_one = np.abs(single[head].astype(np.float64) - expected[head][:1])
        # NaN (float16 overflow) must fail the check, and max() of NaN would hide it.
        worst = max(float(d_full.max()), float(d_one.max()))
        diffs[head] = worst if np.isfinite(worst) else float("inf")
    spread = max(float(np.ptp(p, axis=0).max()) for p in expected.values())
    report = ParityReport(
        precision=precision,
        provider=provider,
        frames=len(frames),
        batch_sizes=(len(frames), 1) if len(frames) > 1 else (1,),
        max_abs_diff=diffs,
        bound=BOUNDS[precision],
        spread=spread,
    )
    log.info("%s", report.summary())
    if spread < 1e-3:
        log.warning(
            "the model gives almost the same probabilities for every parity frame "
            "(spread %.1e): is the checkpoint trained?", spread
        )
    if not report.passed:
        if precision == "fp16":
            advice = ("this model loses too much in float16; use the fp32 file, which runs "
                      "on the GPU too")
        else:
            advice = "report this with the torch, onnx and onnxruntime versions"
        raise ModelError(f"export failed the {report.summary()}; nothing was written; {advice}")
    return report


def _session(path: Path, precision: str) -> tuple[ort.InferenceSession, str]:
    """A session for the check: CPU for float32, CUDA for float16 when a GPU is usable."""
    quiet_ort_logging()
    options = ort.SessionOptions()
    if precision == "fp16" and probe_gpu().usable:
        session = ort.InferenceSession(str(path), options, providers=[_CUDA, _CPU])
        if session.get_providers()[0] == _CUDA:
            return session, "cuda"
        log.warning("the CUDA provider did not start; checking the float16 file on the CPU")
    session = ort.InferenceSession(str(path), options, providers=[_CPU])
    return session, "cpu (float16 emulated)" if precision == "fp16" else "cpu"
