"""The demo model shipped inside the package, used when ``--models`` is not given.

It was trained with ``endostream train`` on ``endostream synth`` output (synthetic
stand-in scenes, not real anatomy) and exported with ``endostream export``; its model
card (``endostream/data/MODEL_CARD.md``) says how, and what it can and cannot do. It is
for trying the tool out, never for clinical use: every run that uses it says so.

>>> demo_model_path().name
'endostream-demo.onnx'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from endostream.errors import ModelError

#: File name of the bundled model inside ``endostream/data``.
DEMO_MODEL_NAME = "endostream-demo.onnx"

#: The one-line notice printed whenever the bundled model is used.
DEMO_NOTICE = ("using the bundled DEMO model (trained on synthetic stand-in scenes, not on "
               "patients; not for clinical use) — pass --models for your own")


def demo_model_path() -> Path:
    """Where the bundled model lives (it may be missing in a source checkout)."""
    return Path(str(resources.files("endostream").joinpath("data", DEMO_MODEL_NAME)))


def require_demo_model() -> Path:
    """The bundled model's path, or :class:`ModelError` saying how to get a model."""
    path = demo_model_path()
    if not path.is_file():
        raise ModelError(f"no --models given and the bundled demo model is missing ({path}); "
                         "pass --models FILE.onnx, or reinstall endostream")
    return path
