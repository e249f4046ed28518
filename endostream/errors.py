"""Domain exceptions and the process exit codes they map to.

Every error a user can cause (a bad video, a model that breaks the contract, an output
path that cannot be written) is an :class:`EndostreamError` whose message is one line that
says what is wrong and what to do next. The CLI prints ``str(error)`` and exits with
``error.exit_code``; it never shows a traceback for these.

>>> try:
...     raise VideoError("cannot decode 'x.mp4': not a video; re-export it as MP4/H.264")
... except EndostreamError as e:
...     (e.exit_code, str(e))
(3, "cannot decode 'x.mp4': not a video; re-export it as MP4/H.264")
"""

from __future__ import annotations

# Exit codes, one place. Shell scripts over an archive can branch on them.
EXIT_OK = 0
EXIT_INTERNAL = 1  #: a bug: unexpected exception (the traceback goes to the log)
EXIT_USAGE = 2  #: bad command-line arguments (argparse uses 2 as well)
EXIT_VIDEO = 3  #: the input video is missing, unreadable or not a video
EXIT_MODEL = 4  #: the model file is missing or breaks the model contract
EXIT_OUTPUT = 5  #: an output file could not be written
EXIT_PARTIAL = 6  #: decoding failed part way; a partial result (complete: false) was written
EXIT_SOURCE = 7  #: a live source (camera) could not be opened or was lost for good
#: an archive run finished, but some videos failed or are partial (see archive.json)
EXIT_ARCHIVE_FAILURES = 8
#: a corrections file is refused (broken schema, sections that overlap or leave gaps,
#: another video, labels the model does not know); nothing was written
EXIT_CORRECTIONS = 9
#: a server the user named did not do its part: the DICOM archive (--send) did not store
#: every file, or Label Studio (labelstudio push/pull) could not be reached, refused the
#: token or has no such project
EXIT_SEND = 10
EXIT_INTERRUPTED = 130  #: Ctrl+C / SIGTERM; a partial result was written where possible


class EndostreamError(Exception):
    """Base class: a problem the user can fix; ``str()`` is a one-line message."""

    exit_code = EXIT_INTERNAL


class UsageError(EndostreamError):
    """An argument or option that makes no sense (e.g. ``--batch 0``)."""

    exit_code = EXIT_USAGE


class VideoError(EndostreamError):
    """The video cannot be opened or holds no decodable video stream."""

    exit_code = EXIT_VIDEO


class DecodeError(EndostreamError):
    """Decoding failed part way through; frames before ``frame_index`` were fine."""

    exit_code = EXIT_PARTIAL

    def __init__(self, message: str, frame_index: int | None = None):
        super().__init__(message)
        self.frame_index = frame_index


class ModelError(EndostreamError):
    """A model file is missing, not ONNX, or does not meet the model contract."""

    exit_code = EXIT_MODEL


class OutputError(EndostreamError):
    """An output file or directory cannot be written."""

    exit_code = EXIT_OUTPUT


class SourceError(EndostreamError):
    """A live source (camera, stream URL) cannot be opened or was lost."""

    exit_code = EXIT_SOURCE


class CorrectionsError(EndostreamError):
    """A reviewer's corrections break the sections file's invariants or do not belong to
    the video and model they claim to correct."""

    exit_code = EXIT_CORRECTIONS


class SendError(EndostreamError):
    """The DICOM archive could not be reached, refused the association, or did not store
    every file; the files stay in the output folder."""

    exit_code = EXIT_SEND


class LabelStudioError(EndostreamError):
    """The Label Studio server could not be reached, refused the token, has no such
    project or refused a request; nothing was written here."""

    exit_code = EXIT_SEND


class Interrupted(EndostreamError):
    """The run was stopped by Ctrl+C or SIGTERM."""

    exit_code = EXIT_INTERRUPTED
