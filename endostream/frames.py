"""The values that cross threads: :class:`Frame`, :class:`Prediction`, :class:`SourceInfo`.

All are frozen dataclasses; units are in field names. A producer never mutates an array
after it has put it in a Frame or Prediction.

>>> import numpy as np
>>> f = Frame(index=0, pts_s=0.0, image=np.zeros((224, 224, 3), np.uint8), captured_ns=0)
>>> f.image.shape
(224, 224, 3)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

#: Side of the square model input, fixed by the model contract (:mod:`endostream.contract`).
MODEL_INPUT_SIZE = 224

#: How long one blocking queue ``put``/``get`` between pipeline threads may wait before
#: the stop Event is looked at again: a stop is noticed within a tenth of a second, and
#: nothing spins. Every thread in sources, inference and pipeline uses this one value
#: (the live session's results loop halves it to keep its stop under its 1 s promise).
QUEUE_POLL_S = 0.1


@dataclass(frozen=True)
class SourceInfo:
    """What a source knows about itself; written to ``sections.json`` as ``source``.

    ``frames`` and ``duration_s`` are ``None`` for live sources and for containers that do
    not say; the pipeline fills them from what was actually decoded. ``fingerprint`` is
    the recording's content fingerprint
    (:func:`~endostream.sources.fingerprint.recording_fingerprint`), which the pipeline
    adds for a file and readers compare; ``None`` for a camera and in files written before.
    """

    path: str
    fps: float | None
    frames: int | None
    duration_s: float | None
    width: int
    height: int
    live: bool = False
    fingerprint: str | None = None

    @property
    def expected_frames(self) -> int | None:
        """The frame count, or where the container states none (Matroska, MPEG-PS) the
        one its duration and frame rate imply: enough for a percentage and an ETA.

        >>> SourceInfo("a.mkv", 25.0, None, 39.0, 64, 48).expected_frames
        975
        """
        if self.frames:
            return self.frames
        if self.duration_s and self.fps:
            return max(int(round(self.duration_s * self.fps)), 1)
        return None


@dataclass(frozen=True)
class Frame:
    """One analysed frame on its way from a source to the inference worker.

    ``image`` is the model input: uint8 RGB ``[224, 224, 3]``, content-area cropped and
    resized. ``index`` is the decoder's frame index (0-based, counting every decoded frame,
    analysed or not); ``pts_s`` the presentation time from the container (or the monotonic
    capture clock for a camera, relative to the first frame). ``captured_ns`` is
    ``time.monotonic_ns()`` when the frame left the decoder/camera: latency is measured
    from it. ``display`` optionally carries the full-size RGB frame for an overlay.
    """

    index: int
    pts_s: float
    image: np.ndarray
    captured_ns: int
    display: np.ndarray | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Prediction:
    """The classifiers' output for one :class:`Frame`.

    ``probs`` maps head name (``"quality"``, ``"organ"``) to a float32 vector of class
    probabilities in the order of the model's label list for that head. The worker runs
    every head the model has on every frame; a head the model lacks is missing from
    ``probs``, and consumers treat a missing organ head as "no organ evidence".
    """

    index: int
    pts_s: float
    probs: Mapping[str, np.ndarray]
    captured_ns: int
    labelled_ns: int

    @property
    def latency_ms(self) -> float:
        """Capture → label latency of this frame in milliseconds."""
        return (self.labelled_ns - self.captured_ns) / 1e6
