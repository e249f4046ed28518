"""A tiny reviewed procedure for the review tests: a clip, its sections.json, its CSV.

The clip's frames are flat colours per section (plus the frame number in
:func:`~tests.helpers.clips.index_frame` cells), so a thumbnail or a cut can be checked
by colour and by index. Times are exact: 25 fps, 1/12800 time base.

>>> import tempfile, pathlib
>>> p = make_procedure(pathlib.Path(tempfile.mkdtemp()))
>>> [s["label"] for s in p.doc["sections"]]
['ear', 'unusable', 'nose', 'vocal_folds']
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from helpers.clips import index_frame

FPS = 25
WIDTH, HEIGHT = 160, 120
ORGANS = ["ear", "nose", "vocal_folds"]
#: (label, first frame, last frame) at 25 fps: 1.6 s, 0.8 s, 1.2 s, 1.6 s.
LAYOUT = [("ear", 0, 39), ("unusable", 40, 59), ("nose", 60, 89), ("vocal_folds", 90, 129)]
COLORS = {"ear": (200, 120, 40), "unusable": (20, 20, 20), "nose": (40, 160, 220),
          "vocal_folds": (60, 200, 90)}


@dataclass
class TinyProcedure:
    video: Path
    sections: Path
    csv: Path
    doc: dict[str, Any]


def frame_image(i: int) -> np.ndarray:
    label = next(name for name, a, b in LAYOUT if a <= i <= b)
    img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    img[:] = COLORS[label]
    img[: HEIGHT // 2, : WIDTH // 2] = index_frame(i, WIDTH // 2, HEIGHT // 2)
    return img


def encode(path: Path, *, audio: bool = False, gop: int = 10,
           metadata: dict[str, str] | None = None) -> Path:
    """The clip: H.264, a keyframe every ``gop`` frames, optional AAC audio and tags."""
    n = LAYOUT[-1][2] + 1
    with av.open(str(path), "w") as out:
        if metadata:
            out.metadata.update(metadata)
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        vs.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        as_ = out.add_stream("aac", rate=44100, layout="mono") if audio else None
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(frame_image(i), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for p in vs.encode(frame):
                out.mux(p)
        if as_ is not None:
            rate, chunk = 44100, 1024
            for k in range(int(n / FPS * rate / chunk) + 1):
                t = (np.arange(chunk) + k * chunk) / rate
                a = av.AudioFrame.from_ndarray(
                    (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                    format="fltp", layout="mono")
                a.sample_rate, a.pts = rate, k * chunk
                for p in as_.encode(a):
                    out.mux(p)
            for p in as_.encode():
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def make_procedure(directory: Path, *, name: str = "procedure.mp4", audio: bool = False,
                   labels: dict[str, str] | None = None,
                   metadata: dict[str, str] | None = None) -> TinyProcedure:
    """Clip + sections.json + frames.csv in ``directory``. ``labels`` renames labels (e.g.
    to put markup in one)."""
    directory.mkdir(parents=True, exist_ok=True)
    video = encode(directory / name, audio=audio, metadata=metadata)
    rename = labels or {}
    n = LAYOUT[-1][2] + 1
    organs = [rename.get(o, o) for o in ORGANS]
    sections = []
    for label, a, b in LAYOUT:
        sections.append({"label": rename.get(label, label), "start_s": a / FPS,
                         "end_s": (b + 1) / FPS, "start_frame": a, "end_frame": b,
                         "good_fraction": 0.0 if label == "unusable" else 0.8,
                         "confidence": 0.9})
    doc = {"schema": "endostream.sections/1", "complete": True,
           "source": {"path": str(video), "fps": float(FPS), "frames": n,
                      "duration_s": n / FPS, "width": WIDTH, "height": HEIGHT},
           "models": {"path": "tiny.onnx", "sha256": "0" * 64,
                      "heads": {"quality": ["bad", "good"], "organ": organs}},
           "analysis": {"frames_analysed": n // 5, "sample_fps": 5.0, "segmenter": {}},
           "sections": sections}
    sections_path = directory / "sections.json"
    sections_path.write_text(json.dumps(doc, indent=1))
    csv_path = directory / "frames.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame", "pts_s", "quality", "organ", "quality_bad", "quality_good"]
                   + [f"organ_{o}" for o in organs])
        for i in range(0, n, 5):
            label = next(name for name, a, b in LAYOUT if a <= i <= b)
            good = 0.1 if label == "unusable" else 0.9
            probs = [0.9 if o == label else 0.05 for o in ORGANS]
            if label == "unusable":
                probs = [1 / 3] * 3
            best = organs[int(np.argmax(probs))]
            w.writerow([i, f"{i / FPS:.4f}", "good" if good > 0.5 else "bad", best,
                        f"{1 - good:.4f}", f"{good:.4f}"] + [f"{p:.4f}" for p in probs])
    return TinyProcedure(video, sections_path, csv_path, doc)
