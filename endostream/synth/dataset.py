"""Labelled still frames for training the demo models: the dataset mode of ``endostream synth``.

Everything written is SYNTHETIC (see :mod:`endostream.synth`): procedural textures, not
real anatomy. The layout is the one ``endostream train`` reads: a folder per organ and a
``labels.csv`` with ``path, organ, quality, recording``, plus ``dataset.json`` that says
how it was made.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from endostream.errors import OutputError, UsageError
from endostream.output.atomic import write_json_atomic
from endostream.synth.scenes import (
    FOV_SHAPES,
    ORGANS,
    PALETTES,
    FieldOfView,
    SceneRenderer,
    tint,
)
from endostream.synth.spec import BLUR_SCALE_RANGE, DARK_GAIN_RANGE, SYNTHETIC_NOTE

log = logging.getLogger(__name__)

def parse_scopes(text: str) -> dict[str, tuple[str, str]]:
    """``ear=circle:warm,nose=full:grey`` -> ``{organ: (fov shape, palette)}``.

    Each organ is then seen through its own scope (field of view and colour), as in a
    clinic where each organ has its own instrument: a domain-shift test set swaps them.

    >>> parse_scopes("ear=circle:warm,nose=full")
    {'ear': ('circle', 'warm'), 'nose': ('full', 'none')}
    """
    out = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        organ, _, scope = part.partition("=")
        shape, _, palette = scope.partition(":")
        palette = palette or "none"
        if organ not in ORGANS or shape not in FOV_SHAPES or palette not in PALETTES:
            raise UsageError(f"scope {part!r}: use ORGAN=SHAPE[:PALETTE] with an organ of "
                             f"{', '.join(ORGANS)}, a shape of {', '.join(FOV_SHAPES)} and a "
                             f"palette of {', '.join(PALETTES)}")
        out[organ] = (shape, palette)
    return out


def render_dataset(
    out_dir: str | os.PathLike,
    *,
    per_class: int = 120,
    size: tuple[int, int] = (320, 240),
    seed: int = 0,
    recordings: int = 4,
    bad_fraction: float = 0.3,
    image_format: str = "jpg",
    no_organ: int = 0,
    scopes: dict[str, tuple[str, str]] | None = None,
) -> Path:
    """Write labelled still frames for training the demo models; returns the labels CSV.

    Each organ gets ``per_class`` full frames (black border included: training crops the
    content area itself), spread evenly over ``recordings`` independent recordings (own
    seed, textures, camera path and field-of-view placement, so splits by recording are
    possible); ``bad_fraction`` of them are blurred or dark. ``no_organ`` > 0 adds that many
    black/out-of-body frames per recording with an empty organ (quality ``bad``).
    ``scopes`` (see :func:`parse_scopes`) gives chosen organs their own field-of-view shape
    and colour in every recording (placement still varies per recording).
    CSV columns: ``path`` (relative to ``out_dir``), ``organ``, ``quality``, ``recording``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     csv_path = render_dataset(d, per_class=3, size=(64, 48), recordings=1)
    ...     len(csv_path.read_text().splitlines())  # header + 3 organs x 3 frames
    10
    """
    if image_format not in ("jpg", "png"):
        raise UsageError(f"image format {image_format!r}: use 'jpg' or 'png'")
    if per_class < 1 or recordings < 1 or not 0 <= bad_fraction <= 1:
        raise UsageError("per_class and recordings must be >= 1 and bad_fraction within 0..1")
    out = Path(out_dir)
    width, height = size
    rows: list[tuple[str, str, str, str]] = []
    try:
        for sub in (*ORGANS, *(("none",) if no_organ else ())):
            (out / sub).mkdir(parents=True, exist_ok=True)
        for r in range(recordings):
            rec = f"rec{r:02d}"
            rng = np.random.default_rng([seed, 200, r])
            fov = FieldOfView.random(rng)
            base = SceneRenderer(width, height, fov=fov, seed=int(rng.integers(2**31)))
            # One renderer per field-of-view shape of this recording: an organ without a
            # scope of its own (and the no-organ frames) keeps the recording's own field.
            renderers = {fov.shape: base}
            for organ in ORGANS:
                shape, palette = (scopes or {}).get(organ, (fov.shape, "none"))
                if shape not in renderers:
                    renderers[shape] = SceneRenderer(width, height, fov=replace(fov, shape=shape),
                                                     seed=base.seed)
                renderer = renderers[shape]
                count = per_class // recordings + (r < per_class % recordings)
                n_bad = round(count * bad_fraction)
                times = np.sort(rng.uniform(0, 120, count))
                for k, t in enumerate(times):
                    look = "clear" if k >= n_bad else ("blur", "dark")[k % 2]
                    image = tint(renderer.render(
                        float(t),
                        organ,
                        look,
                        dark_gain=rng.uniform(*DARK_GAIN_RANGE),
                        blur_scale=rng.uniform(*BLUR_SCALE_RANGE),
                        noise_index=k,
                    ), palette)
                    quality = "good" if look == "clear" else "bad"
                    rows.append(
                        _write_image(
                            out,
                            organ,
                            f"{rec}_{k:04d}_{quality}.{image_format}",
                            image,
                            organ,
                            quality,
                            rec,
                        )
                    )
            for k in range(no_organ):
                look = ("black", "out_of_body")[k % 2]
                image = base.render(float(rng.uniform(0, 120)), None, look, noise_index=k)
                rows.append(
                    _write_image(
                        out, "none", f"{rec}_{k:04d}_bad.{image_format}", image, "", "bad", rec
                    )
                )
        csv_path = out / "labels.csv"
        with open(csv_path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(("path", "organ", "quality", "recording"))
            writer.writerows(rows)
        write_json_atomic(
            out / "dataset.json",
            {
                "synthetic": True,
                "note": SYNTHETIC_NOTE,
                "seed": seed,
                "size": [width, height],
                "per_class": per_class,
                "recordings": recordings,
                "bad_fraction": bad_fraction,
                "no_organ": no_organ,
                "scopes": {k: ":".join(v) for k, v in (scopes or {}).items()},
                "labels": "labels.csv",
            },
        )
    except OSError as e:
        raise OutputError(
            f"cannot write the dataset in '{out}': {e.strerror or e}; choose another folder"
        ) from e
    log.info("synthetic dataset: %d images in %s", len(rows), out)
    return csv_path


def _write_image(
    out: Path, folder: str, name: str, image: np.ndarray, organ: str, quality: str, rec: str
) -> tuple[str, str, str, str]:
    rel = f"{folder}/{name}"
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if name.endswith(".jpg") else []
    if not cv2.imwrite(str(out / rel), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"cv2 could not write {rel}")
    return rel, organ, quality, rec
