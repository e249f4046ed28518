"""Frame sources: the protocol, the queue policy, the capture thread, and the file source.

>>> from endostream.sources import FileSource, CaptureThread, QueuePolicy, END_OF_STREAM
>>> FileSource.policy
<QueuePolicy.WAIT: 'wait'>
"""

from endostream.sources.base import (
    CAPTURE_THREAD_NAME,
    END_OF_STREAM,
    POLL_INTERVAL_S,
    CaptureThread,
    FrameSource,
    FrameTap,
    QueuePolicy,
)
from endostream.sources.file import DEFAULT_SAMPLE_FPS, FileSource

__all__ = [
    "CAPTURE_THREAD_NAME",
    "CaptureThread",
    "DEFAULT_SAMPLE_FPS",
    "END_OF_STREAM",
    "FileSource",
    "FrameSource",
    "FrameTap",
    "POLL_INTERVAL_S",
    "QueuePolicy",
]
