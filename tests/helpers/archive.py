"""A small generated archive: short procedures in nested folders, two broken files and two
videos with the same stem, as a hospital's recordings folder looks in miniature.

>>> import tempfile
>>> root = make_archive(Path(tempfile.mkdtemp()) / "archive")  # doctest: +SKIP
>>> sorted(p.relative_to(root).as_posix() for p in root.rglob("*.m*"))[:2]  # doctest: +SKIP
['2023/ent/a.mkv', '2023/ent/a.mp4']
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from endostream.synth import ProcedureSpec, render_procedure
from endostream.synth.scenes import SCENE_MEAN_RGB
from helpers.onnx_models import build_color_model

#: Relative path → procedure of the good videos (10 fps, 160x120: ~0.1 s to render each).
GOOD = {
    "2023/ent/a.mp4": "nose:4,blur:1,ear:4",
    "2023/ent/a.mkv": "ear:3,dark:2,vocal_folds:4",
    "2023/ent/p01.mp4": "vocal_folds:5,nose:4",
    "2023/ent/deep/p02.mp4": "nose:6",
    "2024/p03.mkv": "ear:4,black:3,ear:3",
    "2024/p04.mp4": "nose:3,vocal_folds:3,ear:3",
    "2024/q/p05.mp4": "ear:5",
    "2024/q/p06.mkv": "vocal_folds:6,blur:2",
}
#: Relative path → how it is broken.
BROKEN = {"2023/broken/empty.mp4": "zero bytes", "2024/q/noise.mkv": "random bytes"}
#: Fine-detail ratio of the colour model's quality head for 160x120 synth scenes.
SHARPNESS_RATIO = 0.151


def make_archive(root: Path, *, fps: float = 10.0, width: int = 160, height: int = 120,
                 good: dict[str, str] | None = None, broken: bool = True) -> Path:
    """Render the archive under ``root`` (plus a ``notes.txt`` that is no video)."""
    for i, (rel, spec) in enumerate((good or GOOD).items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        render_procedure(path, ProcedureSpec.parse(spec), width=width, height=height, fps=fps,
                         seed=i)
    if broken:
        (root / "2023/broken").mkdir(parents=True, exist_ok=True)
        (root / "2023/broken/empty.mp4").write_bytes(b"")
        noise = np.random.default_rng(1).integers(0, 256, 20_000, np.uint8).tobytes()
        (root / "2024/q/noise.mkv").write_bytes(noise)
    (root / "notes.txt").write_text("not a video\n")
    return root


def archive_model(path: Path) -> Path:
    """The colour model that tells the synth scenes apart."""
    return build_color_model(path, organ_colors=SCENE_MEAN_RGB, sharpness="ratio",
                             sharpness_threshold=SHARPNESS_RATIO)
