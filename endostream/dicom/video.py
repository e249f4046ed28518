"""The whole recording as one DICOM Video Endoscopic Image (``dicom --with-video``).

The transfer syntax is MPEG-4 AVC/H.264 High Profile / Level 4.1 (PS3.5 8.2.7): the
pixel data is the H.264 elementary stream (Annex B byte stream, start codes) in one
fragment with an empty offset table; Photometric Interpretation ``YBR_PARTIAL_420``,
8 bits. A recording whose video already qualifies (H.264 in High, Main or Constrained
Baseline profile, which a High Profile decoder plays, at level 4.1 or below, 8-bit 4:2:0,
at most 1920x1080) is copied packet for packet: the pixels stay the examination's own
(Image Type ``ORIGINAL``). Anything else is re-encoded once with x264 to High Profile,
level 4.1 (``DERIVED``, and the reason is printed). Audio is left out: the transfer
syntax carries video only. An ORIGINAL video must name its Anatomic Region (PS3.3
C.8.12.1, type 1C): "Head and Neck" (SCT 774007, Body Part Examined ``HEADNECK``), the
region endostream is made for (ENT endoscopy: ear, nose, larynx). That is the tool's
scope, not a finding; the key frames carry the organ of their section. Its Content Date
and Time (type 1C for an ORIGINAL video) are the recording's start (``content``, see
:func:`~endostream.dicom.write.write_procedure` for where a start not known comes from).
The whole stream is held in memory, so recordings over :data:`MAX_STREAM_BYTES` are
refused with the advice to cut them (``endostream clips``).
"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import MPEG4HP41

from endostream.dicom.identity import Identity
from endostream.dicom.images import HEAD_AND_NECK, Series, new_instance, region_item
from endostream.errors import UsageError, VideoError
from endostream.procedure.video import open_video

VIDEO_ENDOSCOPIC_IMAGE = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
#: Profiles a High Profile decoder plays (subsets of High).
QUALIFYING_PROFILES = {"High", "Main", "Constrained Baseline"}
MAX_LEVEL = 41
MAX_SIZE = (1920, 1080)
#: One fragment holds at most 2^32 - 2 bytes; stay well below and say so.
MAX_STREAM_BYTES = 2 ** 31
#: x264 settings of a re-encode: the transfer syntax's profile and level, near-transparent.
ENCODE_OPTIONS = {"profile": "high", "level": "4.1", "crf": "18", "preset": "fast"}


def h264_level(cc) -> int | None:
    """``level_idc`` (41 for 4.1) of an H.264 stream: PyAV's own field where it has one
    (18.1 and later), else :func:`level_from_extradata`."""
    level = getattr(cc, "level", None)
    if level is not None and level >= 0:
        return int(level)
    return level_from_extradata(bytes(cc.extradata or b""))


def level_from_extradata(data: bytes) -> int | None:
    """``level_idc`` from H.264 extradata: an avcC record (MP4, MKV: its byte 3) or Annex B
    start codes before a sequence parameter set (the byte after profile and flags)."""
    if len(data) >= 4 and data[0] == 1:
        return data[3]
    for start in (b"\x00\x00\x00\x01", b"\x00\x00\x01"):
        at = data.find(start)
        while at >= 0:
            nal = at + len(start)
            if nal + 3 < len(data) and data[nal] & 0x1F == 7:  # an SPS
                return data[nal + 3]
            at = data.find(start, nal)
    return None


def why_not_qualifying(stream: av.video.stream.VideoStream) -> str | None:
    """Why the recording's video cannot be copied as it is (``None``: it can)."""
    cc = stream.codec_context
    if cc.name != "h264":
        return f"its codec is {cc.name}, not H.264"
    if cc.profile not in QUALIFYING_PROFILES:
        return f"its H.264 profile is {cc.profile}, not High or below"
    level = h264_level(cc)
    if level is None:
        return "its H.264 level cannot be read"
    if level > MAX_LEVEL:
        return f"its H.264 level is {level / 10:.1f}, above 4.1"
    if cc.pix_fmt not in ("yuv420p", "yuvj420p"):
        return f"its pixels are {cc.pix_fmt}, not 8-bit 4:2:0"
    if cc.width > MAX_SIZE[0] or cc.height > MAX_SIZE[1]:
        return f"it is {cc.width}x{cc.height}, larger than 1920x1080"
    return None


def _copy(container, stream) -> tuple[bytes, int]:
    buf = io.BytesIO()
    with av.open(buf, "w", format="h264") as out:  # the muxer writes Annex B start codes
        ovs = out.add_stream_from_template(stream)
        frames = 0
        for packet in container.demux(stream):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.stream = ovs
            out.mux(packet)
            frames += 1
    return buf.getvalue(), frames


def _encode(container, stream) -> tuple[bytes, int]:
    cc = stream.codec_context
    if cc.width > MAX_SIZE[0] or cc.height > MAX_SIZE[1]:
        raise UsageError(f"the recording is {cc.width}x{cc.height}; DICOM's H.264 Level 4.1 "
                         "video holds at most 1920x1080: leave out --with-video")
    rate = stream.average_rate or Fraction(25)
    buf = io.BytesIO()
    frames = 0
    with av.open(buf, "w", format="h264") as out:
        ovs = out.add_stream("libx264", rate=rate)
        ovs.width, ovs.height = cc.width - cc.width % 2, cc.height - cc.height % 2  # 4:2:0
        ovs.pix_fmt = "yuv420p"
        ovs.options = dict(ENCODE_OPTIONS)
        for frame in container.decode(stream):
            frame = frame.reformat(width=ovs.width, height=ovs.height, format="yuv420p")
            frame.pts, frame.time_base = frames, 1 / rate
            for packet in ovs.encode(frame):
                out.mux(packet)
            frames += 1
        for packet in ovs.encode():
            out.mux(packet)
    return buf.getvalue(), frames


def recording_video(video: Path, *, identity: Identity, series: Series, sop_uid: str,
                    recorded: datetime | None,
                    content: datetime) -> tuple[Dataset, str | None]:
    """The recording as a Video Endoscopic Image, and why it was re-encoded (``None``:
    copied as it is)."""
    with open_video(video) as container:
        stream = container.streams.video[0]
        reason = why_not_qualifying(stream)
        try:
            data, frames = _copy(container, stream) if reason is None else \
                _encode(container, stream)
        except av.FFmpegError as e:
            raise VideoError(f"cannot read the recording '{video}' for --with-video "
                             f"({' '.join(str(e).split())})") from e
        cc = stream.codec_context
        width, height = (cc.width, cc.height) if reason is None else \
            (cc.width - cc.width % 2, cc.height - cc.height % 2)
        rate = float(stream.average_rate or 25)
    if len(data) > MAX_STREAM_BYTES or frames == 0:
        raise UsageError(f"the recording's video is {len(data) / 2**30:.1f} GiB with "
                         f"{frames} frames; cut it with 'endostream clips' and leave out "
                         "--with-video")
    series = replace(series, regions=(HEAD_AND_NECK,))  # not paired: no Laterality
    ds = new_instance(VIDEO_ENDOSCOPIC_IMAGE, MPEG4HP41, sop_uid, identity, series, recorded,
                      content)
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL" if reason is None else "DERIVED", "PRIMARY"]
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionMethod = "ISO_14496_10"
    ds.AcquisitionContextSequence = []
    ds.AnatomicRegionSequence = [region_item(HEAD_AND_NECK)]
    ds.NumberOfFrames = frames
    ds.FrameIncrementPointer = 0x00181063  # Frame Time
    ds.FrameTime = round(1000.0 / rate, 4)
    ds.CineRate = round(rate)
    ds.RecommendedDisplayFrameRate = round(rate)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = height, width
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([data], has_bot=False)
    ds["PixelData"].VR = "OB"
    return ds, reason
