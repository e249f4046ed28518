"""One picture per section: the most confident good frame, small, as a data URI.

With the per-frame table (``segment --csv``) the thumbnail of an organ section is its
analysed frame judged good with the highest probability of the section's organ; without
it (or for an unusable stretch) the frame in the middle of the section. Frames are
fetched by seeking (:func:`~endostream.procedure.video.grab_frames`), a few decodes per
section, not a pass over the whole video.

>>> data_uri(np.zeros((10, 20, 3), np.uint8))[:23]
'data:image/jpeg;base64,'
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence

import cv2
import numpy as np

from endostream.procedure.frame_table import FrameTable
from endostream.procedure.video import grab_frames
from endostream.segmentation.config import is_good
from endostream.segmentation.section import UNUSABLE, Section

#: Thumbnail width in pixels (height keeps the aspect ratio); twice the 160 CSS pixels it
#: is shown at, for sharp pictures on phones.
THUMB_WIDTH = 320
#: JPEG quality of thumbnails (they are inlined in the HTML, so size matters).
JPEG_QUALITY = 80


def thumbnail_times(sections: Sequence[Section], frames: FrameTable | None,
                    good_threshold: float) -> list[float]:
    """The time of each section's thumbnail frame (see the module docstring); a frame is
    good at ``good_threshold``, the threshold the run recorded."""
    times = []
    for s in sections:
        t = (s.start_s + s.end_s) / 2
        if frames is not None and len(frames) and s.label != UNUSABLE \
                and s.label in frames.organ_labels:
            inside = (frames.frame >= s.start_frame) & (frames.frame <= s.end_frame)
            good = is_good(frames.good, good_threshold)
            candidates = np.flatnonzero(inside & good)
            if candidates.size:
                column = frames.organ[candidates, frames.organ_labels.index(s.label)]
                best = candidates[int(np.argmax(np.nan_to_num(column, nan=-1.0)))]
                t = float(frames.pts_s[best])
        times.append(t)
    return times


def shrink(rgb: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """``rgb`` scaled to ``width`` pixels wide (never enlarged)."""
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb
    return cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    """An RGB picture as JPEG at :data:`JPEG_QUALITY`."""
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 image
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes()


def data_uri(rgb: np.ndarray) -> str:
    """An RGB picture as an inline JPEG ``data:`` URI."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(rgb)).decode("ascii")


def section_thumbnails(video: str | os.PathLike, sections: Sequence[Section],
                       frames: FrameTable | None, good_threshold: float
                       ) -> list[np.ndarray | None]:
    """A small RGB thumbnail per section (``None`` where no frame could be decoded)."""
    grabbed = grab_frames(video, thumbnail_times(sections, frames, good_threshold))
    return [shrink(g) if g is not None else None for g in grabbed]
