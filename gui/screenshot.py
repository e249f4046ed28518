"""Render the live window on a generated clip and save a screenshot, for people to look at.

    python -m endostream.gui.screenshot --out shot.png [--file clip.mp4] [--models M.onnx]

Without a screen it starts ``Xvfb`` (Debian: ``apt-get install xvfb``) when it is
installed, else it renders with Qt's offscreen platform (same widgets, no window
manager). Without --file it renders a synthetic stand-in procedure (not real anatomy)
with :mod:`endostream.synth`; without --models it uses the bundled demo model, or in a
source checkout the tests' colour model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Screen size of the virtual X server.
XVFB_SCREEN = "1600x1000x24"
#: Seconds Xvfb may take to come up.
XVFB_START_S = 10.0
#: The synthetic procedure shown: every section kind, unusable stretches long enough to be
#: sections of their own (SegmenterConfig.unusable_min_s), ending in a tentative tail.
DEFAULT_PROCEDURE = "nose:7,blur:3,vocal_folds:7,dark:1,black:2.5,ear:8"
#: Seconds played before the shot: a few seconds into the last organ.
DEFAULT_SECONDS = 25.0


def start_xvfb() -> subprocess.Popen | None:
    """Start Xvfb on a free display and point DISPLAY at it; None when not installed."""
    exe = shutil.which("Xvfb")
    if exe is None:
        return None
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen([exe, "-displayfd", str(write_fd), "-screen", "0", XVFB_SCREEN,
                             "-nolisten", "tcp"], pass_fds=(write_fd,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        display = fh.readline().strip()  # Xvfb writes the display number when ready
    if not display:
        proc.kill()
        proc.wait(XVFB_START_S)
        return None
    os.environ["DISPLAY"] = f":{display}"
    return proc


def make_clip(directory: Path, procedure: str) -> Path:
    from endostream.synth import ProcedureSpec, render_procedure

    clip = directory / "synthetic-procedure.mp4"
    render_procedure(clip, ProcedureSpec.parse(procedure), width=1280, height=720, fps=25)
    return clip


def model_paths(args: argparse.Namespace, directory: Path) -> list[Path]:
    if args.models:
        return args.models
    from endostream.bundled import demo_model_path

    if demo_model_path().is_file():
        return [demo_model_path()]
    try:  # a source checkout: the tests' colour model, tuned to the synthetic scenes
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from endostream.synth.scenes import SCENE_MEAN_RGB
        from tests.helpers.onnx_models import build_color_model
    except ImportError:
        raise SystemExit("no model: pass --models FILE.onnx") from None
    # Ratio sharpness tells clear from blurred synthetic scenes at any size (the value is
    # the one tests/test_segment_cli.py measured).
    return [build_color_model(directory / "colour.onnx", organ_colors=SCENE_MEAN_RGB,
                              sharpness="ratio", sharpness_threshold=0.151)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m endostream.gui.screenshot",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    p.add_argument("--file", type=Path, help="video to play (default: a synthetic clip)")
    p.add_argument("--models", type=Path, nargs="+", help="ONNX model file(s)")
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS,
                   help="play this long, then shoot (default: %(default)s)")
    p.add_argument("--procedure", default=DEFAULT_PROCEDURE,
                   help="synthetic procedure to render (default: %(default)s)")
    args = p.parse_args(argv)

    xvfb = None
    if not os.environ.get("DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
        xvfb = start_xvfb()
        if xvfb is None:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
    try:
        with tempfile.TemporaryDirectory(prefix="endostream-shot-") as tmp:
            clip = args.file or make_clip(Path(tmp), args.procedure)
            return _shoot(args, clip, model_paths(args, Path(tmp)))
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(XVFB_START_S)


def _shoot(args: argparse.Namespace, clip: Path, models: list[Path]) -> int:
    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication

    from endostream.gui.controls import SourceChoice
    from endostream.gui.window import LiveWindow
    from endostream.inference.classifier import Classifier

    app = QApplication.instance() or QApplication(["endostream-screenshot"])
    with Classifier.load(models, device="cpu") as clf:
        window = LiveWindow(clf, source=SourceChoice(file=clip, realtime=True))
        window.resize(1280, 860)
        window.show()
        window.start()
        saved: list[bool] = []

        def shoot() -> None:
            saved.append(window.grab().save(str(args.out), "PNG"))
            window.close()

        QTimer.singleShot(int(args.seconds * 1000), shoot)
        app.exec_()
    if not saved or not saved[0]:
        print(f"could not write {args.out}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
