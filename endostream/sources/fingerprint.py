"""What identifies a recording: its content, never its name, size or duration alone.

A sections file, its per-frame CSV, a corrected copy and the DICOM objects made from them
all describe one recording. Two recordings of one scope and one length differ in their
packets, so :func:`recording_fingerprint` hashes the stream's parameters with the first
video packets at a few places across the file (its start, quarters and end, reached by
seeking): a few dozen packets however long the recording, never the whole file. Packets,
not bytes: a recording re-muxed into another container without re-encoding keeps its
fingerprint, since its frames and their times are the same.

>>> import tempfile, pathlib
>>> recording_fingerprint(pathlib.Path(tempfile.mkdtemp()) / "none.mp4")
Traceback (most recent call last):
...
endostream.errors.VideoError: video file not found: '...none.mp4'; check the path
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import av

from endostream.errors import VideoError

#: Written before the hash, so a later way of computing it is never compared with this one.
FINGERPRINT_VERSION = "v1"
#: Places the packets are read from, as fractions of the stream's duration.
PROBE_POSITIONS = (0.0, 0.25, 0.5, 0.75, 0.98)
#: Video packets hashed at each place: enough to differ between any two recordings (their
#: first packets after a keyframe hold a whole picture), few enough to cost milliseconds.
PACKETS_PER_PROBE = 6


def recording_fingerprint(path: str | os.PathLike) -> str:
    """``"v1:"`` and a SHA-256 (hex) over the video stream's codec, size, rate, time base,
    stated duration and frame count, and :data:`PACKETS_PER_PROBE` packets (bytes and
    timestamps) at each of :data:`PROBE_POSITIONS`.

    Raises :class:`VideoError` when ``path`` is missing, not a video, or has no video stream.
    """
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"video file not found: '{p}'; check the path")
    digest = hashlib.sha256()
    try:
        with av.open(str(p), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise VideoError(f"'{p}' has no video stream (audio only?); pass the recording")
            stream = container.streams.video[0]
            ctx = stream.codec_context
            head = (ctx.name, ctx.width, ctx.height, stream.average_rate, stream.time_base,
                    stream.start_time, stream.duration, stream.frames)
            digest.update(repr(head).encode("utf-8"))
            for position in _positions(stream):
                digest.update(f"@{position}".encode("ascii"))
                digest.update(_probe(container, stream, position))
    except av.FFmpegError as e:
        raise VideoError(f"cannot open '{p}' as a video ({' '.join(str(e).split())}); check "
                         "that it plays in a media player") from e
    return f"{FINGERPRINT_VERSION}:{digest.hexdigest()}"


#: Fingerprints computed in this process: (real path, size, mtime in ns) → fingerprint.
_COMPUTED: dict[tuple[str, int, int], str] = {}


def fingerprint_once(path: str | os.PathLike) -> str:
    """:func:`recording_fingerprint` of ``path``, computed once per process for a file
    that did not change since (its real path, size and modification time are the key):
    the analysis, the archive's resume check and every reader share one computation.

    >>> import tempfile, pathlib
    >>> fingerprint_once(pathlib.Path(tempfile.mkdtemp()) / "none.mp4")
    Traceback (most recent call last):
    ...
    endostream.errors.VideoError: video file not found: '...none.mp4'; check the path
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return recording_fingerprint(p)  # raises the one message of a missing file
    key = (os.path.realpath(p), st.st_size, st.st_mtime_ns)
    if key not in _COMPUTED:
        _COMPUTED[key] = recording_fingerprint(p)
    return _COMPUTED[key]


def _positions(stream: av.stream.Stream) -> list[float]:
    """The probe places that exist: only the start where the duration is not stated."""
    if not stream.duration or not stream.time_base:
        return [0.0]
    return list(PROBE_POSITIONS)


def _probe(container: av.container.InputContainer, stream: av.stream.Stream,
           position: float) -> bytes:
    """Timestamps and bytes of the first packets at or after the keyframe before
    ``position``; a marker where the file cannot be read there (a damaged tail still has a
    fingerprint, the same one each time)."""
    out = bytearray()
    try:
        if position > 0.0:
            start = stream.start_time or 0
            container.seek(start + int(position * stream.duration), stream=stream,
                           backward=True, any_frame=False)
        taken = 0
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's flush packet at the end
                continue
            out += f"{packet.pts},{packet.dts},{packet.size};".encode("ascii")
            out += bytes(packet)
            taken += 1
            if taken == PACKETS_PER_PROBE:
                break
    except (av.FFmpegError, OSError):
        out += b"unreadable"
    return bytes(out)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a small file's bytes (the per-frame CSV: a few MB for an hour)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
