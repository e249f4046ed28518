"""The naive baseline: the loop a first prototype would be, to measure the speed-up against.

An OpenCV read loop; per frame a BGR→RGB conversion, a resize to 224x224 (no content-area
crop), float normalisation in numpy, and two PyTorch eager EfficientNetB0 models (quality:
2 classes, organ: 3) at batch 1 with softmax. No threads, no batching, no ONNX. Weights
are random (speed does not depend on them); torch picks its own thread count.

It runs in a child process (:func:`run_naive`), so that torch's thread pools and memory
never touch the other measurements, and the other measurements' pools never touch it.
Run it alone with ``python -m benchmarks.naive VIDEO --frames 60``.

>>> NAIVE_MEAN.shape
(3,)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

#: ImageNet normalisation, as every EfficientNet prototype copies it.
NAIVE_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
NAIVE_STD = np.array([0.229, 0.224, 0.225], np.float32)
#: Frames processed and not timed first (torch's first call allocates and picks kernels).
NAIVE_WARMUP_FRAMES = 2
#: Longest the child may take before it is given up on (seconds).
NAIVE_TIMEOUT_S = 900.0


def naive_loop(video: Path, frames: int, device: str = "cpu") -> dict[str, Any]:
    """Classify the first ``frames`` frames the naive way; returns frames, wall time, fps."""
    import torch
    from torchvision.models import efficientnet_b0

    dev = torch.device("cuda" if device == "cuda" and torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    models = [efficientnet_b0(weights=None, num_classes=c).eval().to(dev) for c in (2, 3)]
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"naive baseline: OpenCV cannot open '{video}'")
    done = 0
    started = None
    try:
        with torch.no_grad():
            while done < frames + NAIVE_WARMUP_FRAMES:
                ok, bgr = cap.read()
                if not ok:
                    break
                if done == NAIVE_WARMUP_FRAMES:
                    started = time.perf_counter()
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                small = cv2.resize(rgb, (224, 224))
                x = (small.astype(np.float32) / 255.0 - NAIVE_MEAN) / NAIVE_STD
                t = torch.from_numpy(x.transpose(2, 0, 1).copy()).unsqueeze(0).to(dev)
                probs = [torch.softmax(m(t), dim=1).cpu().numpy() for m in models]
                assert all(p.shape[0] == 1 for p in probs)
                done += 1
    finally:
        cap.release()
    timed = done - NAIVE_WARMUP_FRAMES
    wall = time.perf_counter() - started if started is not None and timed > 0 else 0.0
    return {
        "frames": max(timed, 0),
        "wall_s": round(wall, 4),
        "fps": round(timed / wall, 3) if wall > 0 else 0.0,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def run_naive(video: Path, frames: int, device: str = "cpu") -> dict[str, Any] | None:
    """:func:`naive_loop` in a child process; ``None`` (with a logged reason) if it cannot run."""
    package_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "benchmarks.naive", str(video), "--frames", str(frames),
           "--device", device]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=NAIVE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        log.warning("naive baseline took over %.0f s; skipped", NAIVE_TIMEOUT_S)
        return None
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        log.warning("naive baseline failed (%s); skipped", reason)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.naive",
                                description=__doc__.split("\n")[0])
    p.add_argument("video", type=Path)
    p.add_argument("--frames", type=int, default=60, help="frames to time (default: %(default)s)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = p.parse_args(argv)
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as e:
        print(f"naive baseline needs torch and torchvision ({e.name} missing)", file=sys.stderr)
        return 2
    print(json.dumps(naive_loop(args.video, args.frames, args.device)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
