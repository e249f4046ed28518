"""Synthetic stand-in ENT procedure videos with ground truth, and a frame dataset mode.

Everything written here is SYNTHETIC: procedurally generated textures (see
:mod:`endostream.synth.scenes`) that mimic only the colour and coarse layout of ear canal,
nasal mucosa and vocal folds. They are not real anatomy and prove nothing clinically; they
exist so that tests, the README demo and the bundled demo models have deterministic input
with exact ground truth. The ground-truth JSON says so (``"synthetic": true``).

A procedure is a :class:`ProcedureSpec` (:mod:`endostream.synth.spec`): a list of
:class:`Segment` s, each an organ (``"ear"``, ``"nose"``,
``"vocal_folds"``) seen clearly, optionally with short bad :class:`Burst` s inside, or an
``"unusable"`` stretch with a look: ``"blur"`` (the scene
strongly blurred; between two organs it cross-fades from one to the next), ``"dark"`` (the
scene at 5–20 % brightness), ``"black"`` (light off / lens covered) or ``"out_of_body"``
(blurry theatre room). This module turns a spec into frames, a video and its truth;
:mod:`endostream.synth.scenes` draws the scenes; :mod:`endostream.synth.dataset` writes
still-frame training sets (:func:`~endostream.synth.dataset.render_dataset`).

Truth rules (what a segmenter is scored against):

- every frame of an ``unusable`` segment is labelled ``unusable``; consecutive unusable
  segments form one section (the default has a 3 s dark+black stretch and a 2 s blurred
  transition, both ``unusable``);
- bursts (at most :data:`MAX_BURST_S` long) are bad-quality frames *inside* an organ
  section and do not split it; write longer bad stretches as their own unusable segment;
- per frame, ``quality`` is ``"good"`` only for clear frames; ``organ`` is the scene in view
  (the dominant one in a cross-fade), ``None`` for black and out-of-body frames.

>>> truth = ground_truth(default_spec(0.25), fps=10.0)
>>> [s.label for s in truth.sections]
['nose', 'unusable', 'vocal_folds', 'unusable', 'ear']
>>> truth.sections[-1].end_frame == truth.n_frames - 1
True
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av
import cv2
import numpy as np

from endostream.errors import OutputError, UsageError
from endostream.output.atomic import write_json_atomic
from endostream.segmentation.section import Section
from endostream.synth.scenes import (
    ORGANS,
    PALETTES,
    SCENE_MEAN_RGB,
    FieldOfView,
    SceneRenderer,
    tint,
)
from endostream.synth.spec import (
    BLUR_SCALE_RANGE,
    DARK_GAIN_RANGE,
    SYNTHETIC_NOTE,
    ProcedureSpec,
    Segment,
    default_spec,
)

log = logging.getLogger(__name__)

#: Tolerance (s) when comparing frame times with segment and burst boundaries.
EPS = 1e-9

#: Schema identifier of the ground-truth JSON written by :meth:`GroundTruth.write`.
TRUTH_SCHEMA_ID = "endostream.synth-truth/1"
@dataclass(frozen=True)
class FrameTruth:
    """What is true about one generated frame. ``label`` is the section label (organ or
    ``unusable``), ``organ`` the scene in view (``None`` for black / out of body)."""

    index: int
    pts_s: float
    label: str
    organ: str | None
    quality: str
    look: str


class SynthFrame(NamedTuple):
    """One generated frame: unpacks as ``(index, pts_s, image, truth)``."""

    index: int
    pts_s: float
    image: np.ndarray
    truth: FrameTruth


@dataclass(frozen=True)
class _Plan:
    truth: FrameTruth
    scene: str | None
    blend: tuple[str, float] | None
    stretch: int  # id of the segment/burst the frame's degradation parameters come from


def _neighbour_organ(segments: Sequence[Segment], i: int, step: int) -> str | None:
    j = i + step
    while 0 <= j < len(segments):
        if segments[j].label in ORGANS:
            return segments[j].label
        j += step
    return None


def _plan_frames(spec: ProcedureSpec, fps: float) -> list[_Plan]:
    segs = spec.segments
    starts = np.concatenate([[0.0], np.cumsum([s.duration_s for s in segs])])
    n = max(1, round(spec.duration_s * fps))
    plans = []
    for i in range(n):
        t = i / fps
        # EPS: a frame time that equals a segment start up to float error belongs to it
        k = min(int(np.searchsorted(starts, t + EPS, side="right")) - 1, len(segs) - 1)
        seg, local = segs[k], t - starts[k]
        look, scene, blend, stretch = seg.look, seg.scene, None, 1000 * k
        if seg.label in ORGANS:
            scene = seg.label
            for j, b in enumerate(seg.bursts):
                if b.start_s - EPS <= local < b.start_s + b.duration_s - EPS:
                    look, stretch = b.look, 1000 * k + j + 1
        elif look in ("blur", "dark") and scene is None:
            prev, nxt = _neighbour_organ(segs, k, -1), _neighbour_organ(segs, k, +1)
            if prev is None and nxt is None:
                raise UsageError(
                    f"unusable '{look}' segment {k} has no organ segment around it; "
                    "give it a scene, e.g. Segment('unusable', 2, look='blur', scene='nose')"
                )
            scene = prev or nxt
            if prev and nxt and prev != nxt:  # a transition: cross-fade from one organ to the next
                w = local / seg.duration_s
                blend = (nxt, w * w * (3 - 2 * w))
        organ = None if look in ("black", "out_of_body") else scene
        if blend is not None and blend[1] >= 0.5:
            organ = blend[0]
        truth = FrameTruth(
            i, round(t, 6), seg.label, organ, "good" if look == "clear" else "bad", look
        )
        plans.append(_Plan(truth, scene, blend, stretch))
    return plans


def _sections(frames: Sequence[FrameTruth], fps: float) -> tuple[Section, ...]:
    out, start = [], 0
    for i in range(1, len(frames) + 1):
        if i == len(frames) or frames[i].label != frames[start].label:
            run = frames[start:i]
            good = sum(f.quality == "good" for f in run) / len(run)
            out.append(Section(run[0].label, start / fps, i / fps, start, i - 1, good, 1.0))
            start = i
    return tuple(out)


@dataclass(frozen=True)
class GroundTruth:
    """Exact truth of a generated procedure: sections (as in ``sections.json``, with
    ``confidence`` 1.0 and the true ``good_fraction``) and one :class:`FrameTruth` per frame.

    >>> gt = ground_truth(ProcedureSpec.parse("ear:2,black:1"), fps=5.0)
    >>> [(s.label, s.start_frame, s.end_frame) for s in gt.sections]
    [('ear', 0, 9), ('unusable', 10, 14)]
    """

    spec: ProcedureSpec
    fps: float
    width: int
    height: int
    seed: int
    fov: FieldOfView
    frames: tuple[FrameTruth, ...]
    sections: tuple[Section, ...]
    video_path: str | None = None
    #: The scope camera's colour cast (:data:`~endostream.synth.scenes.PALETTES`).
    palette: str = "none"

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def frame_at(self, t_s: float) -> FrameTruth:
        """The frame shown at video time ``t_s`` (clamped to the video)."""
        return self.frames[min(max(int(t_s * self.fps + 1e-9), 0), self.n_frames - 1)]

    def label_at(self, t_s: float) -> str:
        """Section label at video time ``t_s``."""
        return self.frame_at(t_s).label

    def to_json(self) -> dict[str, Any]:
        runs, start = [], 0
        key = lambda f: (f.label, f.organ, f.quality, f.look)  # noqa: E731
        for i in range(1, self.n_frames + 1):
            if i == self.n_frames or key(self.frames[i]) != key(self.frames[start]):
                f = self.frames[start]
                runs.append(
                    {
                        "start_frame": start,
                        "end_frame": i - 1,
                        "start_s": round(start / self.fps, 3),
                        "end_s": round(i / self.fps, 3),
                        "label": f.label,
                        "organ": f.organ,
                        "quality": f.quality,
                        "look": f.look,
                    }
                )
                start = i
        return {
            "schema": TRUTH_SCHEMA_ID,
            "synthetic": True,
            "note": SYNTHETIC_NOTE,
            "source": {
                "path": self.video_path or "",
                "fps": self.fps,
                "frames": self.n_frames,
                "duration_s": round(self.duration_s, 6),
                "width": self.width,
                "height": self.height,
            },
            "generator": {
                "seed": self.seed,
                "fov": self.fov.to_json(),
                "palette": self.palette,
                "spec": self.spec.to_json(),
                "scene_mean_rgb": {k: list(v) for k, v in SCENE_MEAN_RGB.items()},
            },
            "sections": [s.to_json() for s in self.sections],
            "runs": runs,
        }

    def write(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` atomically (raises :class:`OutputError`)."""
        write_json_atomic(path, self.to_json())

    @classmethod
    def from_json(cls, truth: dict[str, Any]) -> GroundTruth:
        if truth.get("schema") != TRUTH_SCHEMA_ID:
            raise UsageError("not a synthetic ground-truth file "
                             f"(schema {truth.get('schema')!r})")
        src, gen = truth["source"], truth["generator"]
        fps = float(src["fps"])
        frames = [
            FrameTruth(i, round(i / fps, 6), r["label"], r["organ"], r["quality"], r["look"])
            for r in truth["runs"]
            for i in range(r["start_frame"], r["end_frame"] + 1)
        ]
        return cls(
            ProcedureSpec.from_json(gen["spec"]),
            fps,
            src["width"],
            src["height"],
            gen["seed"],
            FieldOfView(**gen["fov"]),
            tuple(frames),
            _sections(frames, fps),
            src["path"] or None,
            gen.get("palette", "none"),
        )

    @classmethod
    def read(cls, path: str | os.PathLike) -> GroundTruth:
        """Load a file written by :meth:`write`."""
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


def _palette(palette: str) -> str:
    if palette not in PALETTES:
        raise UsageError(f"palette {palette!r}: use one of {', '.join(PALETTES)}")
    return palette


def _fov(fov: str | FieldOfView) -> FieldOfView:
    try:
        return fov if isinstance(fov, FieldOfView) else FieldOfView.named(fov)
    except ValueError as e:
        raise UsageError(str(e)) from None


def ground_truth(
    spec: ProcedureSpec | None = None,
    *,
    fps: float = 25.0,
    width: int = 1280,
    height: int = 720,
    seed: int = 0,
    fov: str | FieldOfView = "circle",
    palette: str = "none",
) -> GroundTruth:
    """The truth of a procedure without rendering it (cheap; for segmenter tests)."""
    spec = spec or default_spec()
    if not fps > 0:
        raise UsageError(f"fps {fps} must be positive")
    frames = tuple(p.truth for p in _plan_frames(spec, fps))
    return GroundTruth(spec, float(fps), width, height, seed, _fov(fov), frames,
                       _sections(frames, fps), palette=_palette(palette))


def iter_frames(
    spec: ProcedureSpec | None = None,
    width: int = 320,
    height: int = 240,
    fps: float = 25.0,
    seed: int = 0,
    *,
    fov: str | FieldOfView = "circle",
    palette: str = "none",
    loop: bool = False,
) -> Iterator[SynthFrame]:
    """Yield the frames of a procedure as RGB uint8 arrays, without encoding.

    ``palette`` gives the frames a scope camera's colour cast (``grey``: a monochrome
    camera). With ``loop=True`` the procedure repeats forever (indices and times keep counting) —
    a stand-in for a live camera.

    >>> f = next(iter_frames(ProcedureSpec.parse("nose:1"), 64, 48, fps=5.0))
    >>> f.index, f.image.shape, f.truth.label
    (0, (48, 64, 3), 'nose')
    """
    spec = spec or default_spec()
    plans = _plan_frames(spec, fps)
    palette = _palette(palette)
    try:
        renderer = SceneRenderer(width, height, fov=_fov(fov), seed=seed)
    except ValueError as e:
        raise UsageError(str(e)) from None
    params: dict[int, tuple[float, float]] = {}
    offset = 0
    while True:
        for p in plans:
            if p.stretch not in params:  # one dark gain / blur strength per stretch, from the seed
                r = np.random.default_rng([seed, 100, p.stretch])
                params[p.stretch] = (r.uniform(*DARK_GAIN_RANGE), r.uniform(*BLUR_SCALE_RANGE))
            gain, blur = params[p.stretch]
            index = offset + p.truth.index
            t = index / fps
            image = tint(renderer.render(
                t,
                p.scene,
                p.truth.look,
                blend=p.blend,
                dark_gain=gain,
                blur_scale=blur,
                noise_index=index,
            ), palette)
            yield SynthFrame(
                index, round(t, 6), image, replace(p.truth, index=index, pts_s=round(t, 6))
            )
        if not loop:
            return
        offset += len(plans)


def render_procedure(
    path: str | os.PathLike,
    spec: ProcedureSpec | None = None,
    *,
    width: int = 1280,
    height: int = 720,
    fps: float = 25.0,
    seed: int = 0,
    codec: str = "libx264",
    fov: str | FieldOfView = "circle",
    palette: str = "none",
    crf: int = 23,
    preset: str = "veryfast",
) -> GroundTruth:
    """Render a synthetic procedure to a video file (H.264 yuv420p by default).

    ``fov`` and ``palette`` are the scope: its field of view and its camera's colour cast.
    Returns the :class:`GroundTruth`; write it with ``truth.write("video.truth.json")``.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     spec = ProcedureSpec.parse("nose:1,ear:1")
    ...     gt = render_procedure(pathlib.Path(d) / "demo.mp4", spec, width=160, height=120, fps=10)
    >>> [s.label for s in gt.sections], gt.n_frames
    (['nose', 'ear'], 20)
    """
    spec = spec or default_spec()
    if width % 2 or height % 2:
        raise UsageError(f"video size {width}x{height}: width and height must be even for yuv420p")
    if codec not in av.codecs_available:
        raise UsageError(f"codec {codec!r} is not in this PyAV build; use 'libx264' or 'mpeg4'")
    truth = ground_truth(spec, fps=fps, width=width, height=height, seed=seed, fov=fov,
                         palette=palette)
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(
            f"cannot write '{path}': folder '{path.parent}' does not exist; create it"
        )
    rate = Fraction(fps).limit_denominator(1001)
    try:
        container = av.open(str(path), mode="w")
    except (OSError, av.FFmpegError) as e:
        raise OutputError(
            f"cannot write '{path}': {e}; check the folder exists and is writable"
        ) from e
    started = time.perf_counter()
    try:
        container.metadata["comment"] = SYNTHETIC_NOTE
        options = {"crf": str(crf), "preset": preset} if codec == "libx264" else {}
        stream = container.add_stream(codec, rate=rate, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / rate
        for f in iter_frames(spec, width, height, fps, seed, fov=fov, palette=palette):
            # cv2's I420 conversion matches swscale's (BT.601, limited range) at a third of the cost
            yuv = cv2.cvtColor(f.image, cv2.COLOR_RGB2YUV_I420)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = f.index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    except OSError as e:  # PyAV's file errors are OSErrors too: not the codec's fault
        raise OutputError(f"cannot write '{path}': {e}; check the folder is writable") from e
    except av.FFmpegError as e:
        raise OutputError(f"cannot encode '{path}' with {codec}: {e}; try codec='mpeg4'") from e
    finally:
        container.close()
    seconds = time.perf_counter() - started
    log.info(
        "synthetic procedure %s: %d frames %dx%d in %.1f s (%.1f frames/s incl. encoding)",
        path,
        truth.n_frames,
        width,
        height,
        seconds,
        truth.n_frames / max(seconds, 1e-9),
    )
    return replace(truth, video_path=path.name)
