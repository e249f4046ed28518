"""UIDs that a second run derives again, so a retry never duplicates a study or a series.

Every UID of an export is ``2.25.`` and a name-based UUID (version 5, RFC 4122; PS3.5
B.2's UUID-derived form) of what the object *is*:

- the recording's fingerprint (:func:`~endostream.sources.fingerprint.recording_fingerprint`:
  its content, never its name) and the study: the video object, the key frame series, the
  study itself when no worklist, ``--like`` or ``--study-uid`` names one;
- a key frame additionally by its frame number and label: the same frame of the same
  section is the same object in any run;
- the document by the sections' content (labels, frames, numbers, the model's sha256):
  the same sections give the same SR; a corrected sections file gives a new SR in a new
  series, which names the one it replaces (Predecessor Documents Sequence).

So a send interrupted and run again, or a whole export run again with ``--overwrite``,
stores the same instances: the archive keeps one study with one series of each kind.

>>> ids = ExportUids("v1:abc", sections_sha256="0" * 64)
>>> ids.study == ExportUids("v1:abc", sections_sha256="1" * 64).study
True
>>> ids.document_series != ExportUids("v1:abc", sections_sha256="1" * 64).document_series
True
>>> ids.key_frame(75, "nose") == ids.key_frame(75, "nose") != ids.key_frame(75, "ear")
True
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass

from endostream.output.document import SectionsDocument

#: Bumped if the way UIDs are derived ever changes (so old and new never collide).
SCHEME = "endostream.uids/1"
#: The UUID namespace of every name below.
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:endostream:" + SCHEME)


def sections_sha256(doc: SectionsDocument) -> str:
    """SHA-256 of what the document says about the recording: its sections (labels,
    frames, times, numbers), completeness and the model's sha256; not when or how fast it
    was written."""
    content = {"sections": [asdict(s) for s in doc.sections],
               "complete": doc.complete, "model": doc.models.sha256}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ExportUids:
    """The UIDs of one export: ``fingerprint`` (the recording), ``sections_sha256`` (see
    :func:`sections_sha256`) and ``study_uid`` (``None``: derived from the recording)."""

    fingerprint: str
    sections_sha256: str
    study_uid: str | None = None

    def _uid(self, *parts: object) -> str:
        name = json.dumps([self.fingerprint, *map(str, parts)])
        return f"2.25.{uuid.uuid5(NAMESPACE, name).int}"

    @property
    def study(self) -> str:
        return self.study_uid or self._uid("study")

    def _in_study(self, *parts: object) -> str:
        return self._uid(self.study, *parts)

    @property
    def key_frame_series(self) -> str:
        return self._in_study("key frames")

    def key_frame(self, frame: int, label: str) -> str:
        return self._in_study("key frame", frame, label)

    @property
    def document_series(self) -> str:
        return self._in_study("document series", self.sections_sha256)

    @property
    def document(self) -> str:
        return self._in_study("document", self.sections_sha256)

    @property
    def video_series(self) -> str:
        return self._in_study("recording series")

    @property
    def video(self) -> str:
        return self._in_study("recording")

    def anonymous_patient_id(self) -> str:
        """``ANON-`` and 12 hex digits of the recording: one anonymous patient per
        recording in every run (a random one would file a retry under another patient)."""
        return "ANON-" + hashlib.sha256(f"{SCHEME} patient {self.fingerprint}".encode()
                                        ).hexdigest()[:12].upper()
