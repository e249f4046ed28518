"""What a benchmark runs on: a video (given or generated), a model (given, bundled, exported).

Defaults, chosen so that a bare ``python -m benchmarks`` measures what a user would run:

- video: a synthetic 720p30 H.264 procedure from :func:`endostream.synth.render_procedure`
  (39 s, or 7.8 s with ``--quick``), rendered once and cached under :data:`CACHE_DIR`,
  its file name keyed by every parameter that changes it;
- model: ``--models`` if given, else the bundled demo model (one EfficientNetB0 backbone
  with two heads), else a random-initialised pair exported on the fly through
  ``endostream.export`` (needs torch) and cached. Speed does not depend on the weights,
  so random weights measure the same network; the report says which file ran. The
  side-by-side comparison takes a two-backbone pair and a shared-backbone file from
  these (:func:`is_shared_backbone` tells them apart), exporting a random-init one of
  the kind that is missing.

>>> default_video_spec(quick=True).file_name()
'synth-1280x720-30fps-7.8s-seed0-x264-crf23-veryfast-v0.1.0.mp4'
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import endostream
from endostream.bundled import demo_model_path
from endostream.errors import UsageError
from endostream.output.atomic import AtomicFile

log = logging.getLogger(__name__)

#: Where generated videos and exported models are kept between runs.
CACHE_DIR = Path(os.environ.get("ENDOSTREAM_BENCH_CACHE", "~/.cache/endostream/bench")).expanduser()

#: Duration scale of :func:`endostream.synth.default_spec` (39 s at 1.0): the full run
#: sees every look of a procedure (organs, blur, dark, black) for long enough to be steady.
FULL_DURATION_SCALE = 1.0
#: ``--quick``: 7.8 s, enough frames for every stage, rendered in about 8 s.
QUICK_DURATION_SCALE = 0.2

#: Seed of the random-initialised EfficientNetB0 pair (weights do not change speed).
RANDOM_MODEL_SEED = 0
#: Parity frames of the on-the-fly export: its weights are random, so the parity check
#: only proves the graph runs; two frames keep the export at a few seconds.
RANDOM_MODEL_PARITY_FRAMES = 2


@dataclass(frozen=True)
class VideoSpec:
    """Parameters of a generated benchmark video; they key its cache file."""

    width: int = 1280
    height: int = 720
    fps: float = 30.0
    duration_scale: float = FULL_DURATION_SCALE
    seed: int = 0
    crf: int = 23
    preset: str = "veryfast"

    @property
    def duration_s(self) -> float:
        from endostream.synth import default_spec

        return default_spec(self.duration_scale).duration_s

    def file_name(self) -> str:
        return (f"synth-{self.width}x{self.height}-{self.fps:g}fps-{self.duration_s:g}s-"
                f"seed{self.seed}-x264-crf{self.crf}-{self.preset}-v{endostream.__version__}.mp4")


@dataclass(frozen=True)
class ModelChoice:
    """The model files a run uses and where they came from (``given``, ``bundled demo``,
    ``random-init export``)."""

    paths: tuple[Path, ...]
    origin: str

    def describe(self) -> str:
        return f"{', '.join(map(str, self.paths))} ({self.origin})"


def default_video_spec(quick: bool) -> VideoSpec:
    """The generated clip of a full or ``--quick`` run."""
    return VideoSpec(duration_scale=QUICK_DURATION_SCALE if quick else FULL_DURATION_SCALE)


def generated_video(spec: VideoSpec, cache_dir: Path = CACHE_DIR) -> Path:
    """The cached clip for ``spec``, rendered first if missing (written atomically)."""
    from endostream.synth import default_spec, render_procedure

    path = cache_dir / spec.file_name()
    if path.is_file():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("rendering the benchmark video %s (once; cached)", path)
    with AtomicFile(path, open_file=False, suffix=".tmp.mp4") as f:
        render_procedure(f.temp_path, default_spec(spec.duration_scale), width=spec.width,
                         height=spec.height, fps=spec.fps, seed=spec.seed, crf=spec.crf,
                         preset=spec.preset)
    return path


def resolve_model(models: list[Path] | None, cache_dir: Path = CACHE_DIR) -> ModelChoice:
    """``--models`` as given, else the bundled demo model, else a cached random-init export."""
    if models:
        if len(models) > 2:
            raise UsageError("--models takes one combined file or two single-head files")
        return ModelChoice(tuple(Path(p) for p in models), "given")
    bundled = demo_model_path()
    if bundled.is_file():
        return ModelChoice((bundled,), "bundled demo model")
    return ModelChoice((random_model(cache_dir),), "random-init EfficientNetB0 pair, exported")


def is_shared_backbone(model: Path) -> bool:
    """Whether ``model`` is one backbone with two heads (``export --shared``): its metadata
    names one source checkpoint for every head, where a pair names one per head."""
    import json

    import onnxruntime as ort

    from endostream.contract import META_SOURCE_SHA256
    from endostream.inference.providers import session_options

    session = ort.InferenceSession(str(model), session_options(1),
                                   providers=["CPUExecutionProvider"])
    shas = json.loads(session.get_modelmeta().custom_metadata_map.get(META_SOURCE_SHA256, "{}"))
    return len(shas) > 1 and len(set(shas.values())) == 1


def random_model(cache_dir: Path = CACHE_DIR) -> Path:
    """A combined quality+organ EfficientNetB0 file with random weights, exported once.

    Uses the export package (torch, torchvision, onnx); without them, says to pass
    ``--models``.
    """
    def checkpoints(tmp: Path) -> list:
        import torch

        from endostream.export import build_classifier, head_spec

        specs = []
        for head, classes in (("quality", 2), ("organ", 3)):
            ckpt = tmp / f"{head}.pth"
            torch.save(build_classifier(classes).state_dict(), ckpt)
            specs.append(head_spec(head, ckpt))
        return specs

    return _export_random_once(
        cache_dir / f"effnetb0-pair-random-seed{RANDOM_MODEL_SEED}-v{endostream.__version__}.onnx",
        "EfficientNetB0 pair", checkpoints,
        missing="no --models given, no bundled demo model, and the export extra is missing "
                "({}); pass --models FILE.onnx or install 'endostream[export]'")


def random_shared_model(cache_dir: Path = CACHE_DIR) -> Path:
    """A shared-backbone EfficientNetB0 (one backbone, quality and organ heads) with random
    weights, exported once through ``endostream export``'s path and cached.

    The counterpart of :func:`random_model` for the side-by-side comparison; without the
    export extra it says to pass ``--shared-model``.
    """
    def checkpoints(tmp: Path) -> list:
        import torch

        from endostream.export import head_spec
        from endostream.export.multitask import SharedBackbone

        ckpt = tmp / "shared.pth"
        torch.save(SharedBackbone({"quality": 2, "organ": 3}).state_dict(), ckpt)
        return [head_spec("quality", ckpt), head_spec("organ", ckpt)]

    return _export_random_once(
        cache_dir / f"effnetb0-shared-random-seed{RANDOM_MODEL_SEED}-v{endostream.__version__}"
                    ".onnx",
        "shared-backbone EfficientNetB0", checkpoints,
        missing="no --shared-model given and the export extra is missing ({}); pass "
                "--shared-model FILE.onnx, --skip-shared, or install 'endostream[export]'")


def int8_variant(shared: Path, cache_dir: Path = CACHE_DIR) -> Path:
    """``shared`` quantised once (``export --int8``'s path) and cached under its sha256.

    The gate's figures are logged, not enforced: the default shared model has random
    weights, and int8 speed does not depend on them.
    """
    from endostream.inference.classifier import sha256_file

    digest = sha256_file(shared)[:12]
    path = cache_dir / f"{shared.stem}-int8-{digest}-v{endostream.__version__}.onnx"
    if path.is_file():
        return path
    try:
        from endostream.export.quantize import quantize_model
    except ImportError as e:
        raise UsageError(f"the int8 comparison needs the export extra ({e.name} missing): "
                         "pass --int8-model FILE.onnx, --skip-int8, or install "
                         "'endostream[export]'") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("quantising %s to %s (once; cached)", shared, path)
    result = quantize_model(shared, path, enforce_gate=False)
    log.info("%s", result.summary())
    return path


def _export_random_once(path: Path, what: str, checkpoints, *, missing: str) -> Path:
    """``path``, exported once from the random-init checkpoints that ``checkpoints(tmp)``
    writes into a temporary folder (seeded); ``missing`` says what to do without torch."""
    if path.is_file():
        return path
    try:
        import torch

        from endostream.export import export_onnx
    except ImportError as e:
        raise UsageError(missing.format(e.name)) from e
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting a random-init %s to %s (once; cached)", what, path)
    torch.manual_seed(RANDOM_MODEL_SEED)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        export_onnx(checkpoints(Path(tmp)), path, parity_frames=RANDOM_MODEL_PARITY_FRAMES)
    return path
