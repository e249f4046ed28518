"""The recording re-encoded with the overlay burned in, for players that show nothing else.

Each frame gets what the live window shows: in the top-left corner a panel with the
organ's colour chip, its name and probability and a quality badge (``Nose 0.97 · good``);
along the bottom the procedure's timeline in the live palette with a white playhead at the
frame's time. The label is the section the frame lies in; probability and quality come
from the nearest analysed frame at or before it in the per-frame table when one is given,
else from the section's confidence and share of good frames.

Every frame keeps its timestamp (variable frame rate included), so the annotated video has
the source's frame count and duration; audio is copied packet for packet. Drawing is
OpenCV (the runtime never imports Qt), text in its Hershey font, laid out by the ink it
draws (:mod:`endostream.review.text`), so OpenCV 4 and 5 give the same layout.

>>> painter = OverlayPainter(procedure, frames, width=1280, height=720)  # doctest: +SKIP
>>> painter.paint(rgb, index=120, t_s=4.0)  # draws in place  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from endostream.errors import OutputError, UsageError
from endostream.output.atomic import AtomicFile
from endostream.output.palette import (
    BACKGROUND,
    BAR_EMPTY,
    GOOD_COLOR,
    HATCH,
    PANEL_RGBA,
    POOR_COLOR,
    TEXT,
    TEXT_DIM,
    UNKNOWN_COLOR,
    display_label,
    hex_to_rgb,
    label_hex,
    text_hex_on,
)
from endostream.procedure import FrameTable, Procedure
from endostream.procedure.video import frame_time_s, open_video, origin_s
from endostream.review.text import TextStamp, blend_stamp, text_stamp
from endostream.segmentation.config import is_good
from endostream.segmentation.section import UNUSABLE, Section
from endostream.sources.file import upright

#: Containers the annotated video may be written in.
ANNOTATE_KINDS = (".mp4", ".mkv", ".mov")
#: Encoder and quality (x264 CRF 20: the burned-in text stays crisp).
CODEC = "libx264"
CODEC_OPTIONS = {"crf": "20", "preset": "fast"}
#: Label text height as a fraction of the picture height (as in the live overlay).
LABEL_SIZE_FRACTION = 0.045
MIN_LABEL_PX = 12.0
#: Timeline strip height as a fraction of the picture height, and its opacity.
STRIP_FRACTION = 0.05
MIN_STRIP_PX = 8
STRIP_ALPHA = 0.85
#: Cap height of the label text as a fraction of the label size, and the badge's text
#: relative to it.
CAP_FRACTION = 0.75
BADGE_TEXT_FRACTION = 0.62


def _bgr(color: str) -> tuple[int, int, int]:
    r, g, b = hex_to_rgb(color)
    return (r, g, b)  # frames are RGB: the tuple is in the frame's channel order


class OverlayPainter:
    """Draws the label panel and the timeline strip onto RGB frames of one size."""

    def __init__(self, procedure: Procedure, frames: FrameTable | None, *, width: int,
                 height: int):
        self.procedure = procedure
        self.frames = frames if frames is not None and len(frames) else None
        self.width, self.height = width, height
        self.duration_s = max(procedure.document.duration_s, 1e-3)
        self.strip_h = max(MIN_STRIP_PX, int(round(height * STRIP_FRACTION)))
        self.strip = self._draw_strip()
        self._starts = np.array([s.start_frame for s in procedure.sections], np.int64)

    # -- what to show ----------------------------------------------------------------------

    def section_at(self, index: int) -> Section | None:
        """The section holding decoder frame ``index`` (None before the first)."""
        if not len(self._starts):
            return None
        k = int(np.searchsorted(self._starts, index, side="right")) - 1
        return self.procedure.sections[k] if k >= 0 else None

    def state_at(self, index: int) -> tuple[str | None, float, bool | None]:
        """(label, probability, quality good) for decoder frame ``index``."""
        section = self.section_at(index)
        if section is None:
            return None, 0.0, None
        if self.frames is not None:
            k = int(np.searchsorted(self.frames.frame, index, side="right")) - 1
            if k >= 0:
                good = self.frames.good[k]
                good_flag = None if np.isnan(good) else bool(
                    is_good(float(good), self.procedure.document.analysis.good_threshold))
                if section.label == UNUSABLE:
                    prob = 1.0 - good if not np.isnan(good) else section.confidence
                elif section.label in self.frames.organ_labels:
                    prob = self.frames.organ[k, self.frames.organ_labels.index(section.label)]
                    prob = section.confidence if np.isnan(prob) else prob
                else:
                    prob = section.confidence
                return section.label, float(prob), good_flag
        return section.label, float(section.confidence), section.mostly_good

    # -- drawing ---------------------------------------------------------------------------

    def x_of(self, t_s: float) -> int:
        return int(round((self.width - 1) * min(max(t_s, 0.0), self.duration_s)
                         / self.duration_s))

    def _draw_strip(self) -> np.ndarray:
        strip = np.empty((self.strip_h, self.width, 3), np.uint8)
        strip[:] = _bgr(BAR_EMPTY)
        for s in self.procedure.sections:
            x0, x1 = self.x_of(s.start_s), max(self.x_of(s.end_s), self.x_of(s.start_s) + 1)
            strip[:, x0:x1] = _bgr(label_hex(s.label, self.procedure.document.organ_labels))
            if s.label == UNUSABLE:  # hatched, as on the live timeline
                yy, xx = np.mgrid[0:self.strip_h, x0:x1]
                strip[:, x0:x1][((xx + yy) % 6) < 2] = _bgr(HATCH)
            strip[:, x0] = _bgr(BACKGROUND)
        return strip

    def paint(self, rgb: np.ndarray, *, index: int, t_s: float) -> np.ndarray:
        """Draw the overlay onto ``rgb`` (uint8 ``[H, W, 3]``, this painter's size)."""
        h = self.strip_h
        bottom = rgb[self.height - h:]
        cv2.addWeighted(self.strip, STRIP_ALPHA, bottom, 1 - STRIP_ALPHA, 0, dst=bottom)
        x = self.x_of(t_s)
        cv2.line(rgb, (x, self.height - h - max(2, h // 3)), (x, self.height - 1),
                 (255, 255, 255), max(1, h // 6))
        label, prob, good = self.state_at(index)
        if label is not None:
            self._panel(rgb, label, prob, good)
        return rgb

    def panel_layout(self, label: str, prob: float, good: bool | None) -> PanelLayout:
        """Where the label panel and its parts go for this state (pixels of the frame).

        Sizes come from the ink the text really takes (:mod:`endostream.review.text`), so
        the panel fits its text under OpenCV 4 and 5 alike.
        """
        px = max(MIN_LABEL_PX, self.height * LABEL_SIZE_FRACTION)
        cap = int(round(px * CAP_FRACTION))
        name = text_stamp(display_label(label), height_px=cap)
        prob_s = text_stamp(f"{prob:.2f}", height_px=cap)
        badge = text_stamp({True: "good", False: "poor image", None: "quality ?"}[good],
                           height_px=max(7, int(round(cap * BADGE_TEXT_FRACTION))))
        pad, chip, gap = int(px * 0.55), int(px * 0.6), int(px * 0.4)
        # tall enough for the text's ink, descenders included, and for the badge pill
        ink_h = max(name.height, prob_s.height, cap)
        pill_h = max(int(px * 0.95), badge.height + 2 * max(2, int(px * 0.12)))
        panel_h = max(ink_h, pill_h) + 2 * int(pad * 0.6)
        badge_w = badge.width + int(px * 0.8)
        width = pad + chip + gap + name.width + gap + prob_s.width + gap + badge_w + pad
        x0 = y0 = int(px * 0.6)
        box = (x0, y0, min(self.width - 1, x0 + width), min(self.height - 1, y0 + panel_h))
        return PanelLayout(box=box, cap_px=cap, pad_px=pad, chip_px=chip, gap_px=gap,
                           pill_h_px=pill_h, badge_w_px=badge_w, name=name, prob=prob_s,
                           badge=badge)

    def _panel(self, rgb: np.ndarray, label: str, prob: float, good: bool | None) -> None:
        lay = self.panel_layout(label, prob, good)
        x0, y0, x1, y1 = lay.box
        region = rgb[y0:y1, x0:x1]
        alpha = PANEL_RGBA[3] / 255
        region[:] = (region * (1 - alpha) + np.array(PANEL_RGBA[:3]) * alpha).astype(np.uint8)
        cy = (y0 + y1) // 2
        baseline = cy + lay.cap_px // 2  # capitals centred on the panel's middle
        x = x0 + lay.pad_px
        chip = lay.chip_px
        color = _bgr(label_hex(label, self.procedure.document.organ_labels))
        if label == UNUSABLE:
            cv2.circle(rgb, (x + chip // 2, cy), chip // 2, color, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(rgb, (x, cy - chip // 2), (x + chip, cy + chip // 2), color, -1)
        x += chip + lay.gap_px
        blend_stamp(rgb, lay.name, x, baseline, _bgr(TEXT))
        x += lay.name.width + lay.gap_px
        blend_stamp(rgb, lay.prob, x, baseline, _bgr(TEXT_DIM))
        x += lay.prob.width + lay.gap_px
        bg = {True: GOOD_COLOR, False: POOR_COLOR, None: UNKNOWN_COLOR}[good]
        r = lay.pill_h_px // 2
        bx0, bx1 = x + r, min(self.width - 1, x + lay.badge_w_px - r)
        cv2.rectangle(rgb, (bx0, cy - r), (bx1, cy + r), _bgr(bg), -1)
        cv2.circle(rgb, (bx0, cy), r, _bgr(bg), -1, cv2.LINE_AA)
        cv2.circle(rgb, (bx1, cy), r, _bgr(bg), -1, cv2.LINE_AA)
        badge = lay.badge
        # the badge's ink (descenders included) centred in the pill
        blend_stamp(rgb, badge, x + (lay.badge_w_px - badge.width) // 2,
                    cy - badge.height // 2 + badge.top_px, _bgr(text_hex_on(bg)))


@dataclass(frozen=True)
class PanelLayout:
    """The label panel's box ``(x0, y0, x1, y1)`` (end-exclusive) and its parts' sizes."""

    box: tuple[int, int, int, int]
    cap_px: int
    pad_px: int
    chip_px: int
    gap_px: int
    pill_h_px: int
    badge_w_px: int
    name: TextStamp
    prob: TextStamp
    badge: TextStamp


ProgressFn = Callable[[int, int, "int | None"], None]


def annotate_video(procedure: Procedure, out: str | os.PathLike, *,
                   frames: FrameTable | None = None, keep_metadata: bool = False,
                   on_progress: ProgressFn | None = None) -> Path:
    """Write ``out``: the procedure's video, every frame with the overlay, audio copied.

    ``on_progress(done, done, total)`` after each frame (the shape of
    :meth:`~endostream.output.progress.Progress.update_frames`).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in ANNOTATE_KINDS:
        raise UsageError(f"cannot write an annotated video to '{out.name}'; end --out with "
                         ".mp4, .mkv or .mov")
    video = procedure.require_video()
    with open_video(video) as inp, AtomicFile(out, open_file=False, suffix=".tmp" + suffix,
                                              hint="choose another --out") as target:
        try:
            with av.open(str(target.temp_path), "w") as dst:
                if keep_metadata:
                    dst.metadata.update(inp.metadata)
                _annotate(inp, dst, procedure, frames, keep_metadata, on_progress)
        except av.FFmpegError as e:
            raise OutputError(f"cannot write '{out.name}' ({' '.join(str(e).split())}); "
                              "try --out with .mkv") from e
    return out


def _annotate(inp, dst, procedure, frames, keep_metadata, on_progress) -> None:
    vs = inp.streams.video[0]
    vs.thread_type = "AUTO"
    audio = list(inp.streams.audio)
    origin = origin_s(vs)
    ovs = None
    painter = None
    oas = {}
    for a in audio:
        oas[a.index] = dst.add_stream_from_template(a)
        if keep_metadata:
            oas[a.index].metadata.update(a.metadata)
    total = procedure.document.source.frames or vs.frames or None
    index = 0
    pending_audio = []  # audio before the video encoder's first packet keeps the order
    for packet in inp.demux(vs, *audio):
        if packet.stream.type == "audio":
            if packet.size == 0 or packet.dts is None:
                continue
            packet.stream = oas[packet.stream.index]
            if ovs is None:
                pending_audio.append(packet)
            else:
                dst.mux(packet)
            continue
        for frame in packet.decode():
            rgb = upright(frame.to_ndarray(format="rgb24"),
                          int(getattr(frame, "rotation", 0) or 0))
            if ovs is None:
                ovs, painter = _open_encoder(dst, vs, rgb, procedure, frames, keep_metadata)
                for p in pending_audio:
                    dst.mux(p)
                pending_audio = []
            h, w = painter.height, painter.width
            rgb = np.ascontiguousarray(rgb[:h, :w])
            t = frame_time_s(frame, origin)
            painter.paint(rgb, index=index, t_s=t if t is not None else index / 25)
            new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            new.pts, new.time_base = frame.pts, frame.time_base
            for p in ovs.encode(new):
                dst.mux(p)
            index += 1
            if on_progress is not None:
                on_progress(index, index, total)
    if ovs is None:
        raise UsageError(f"'{procedure.video}' holds no decodable video frames")
    for p in ovs.encode():
        dst.mux(p)


def _open_encoder(dst, vs, rgb, procedure, frames, keep_metadata):
    height, width = rgb.shape[:2]
    width, height = width - width % 2, height - height % 2  # 4:2:0 needs even sizes
    rate = vs.average_rate or vs.guessed_rate or Fraction(25)
    ovs = dst.add_stream(CODEC, rate=rate)
    ovs.width, ovs.height, ovs.pix_fmt = width, height, "yuv420p"
    ovs.options = dict(CODEC_OPTIONS)
    # The source's time base: every frame keeps its own timestamp (VFR too).
    ovs.codec_context.time_base = vs.time_base
    ovs.time_base = vs.time_base
    if keep_metadata:
        ovs.metadata.update(vs.metadata)
    return ovs, OverlayPainter(procedure, frames, width=width, height=height)
