"""A section: one stretch of video with one label, the segmenter's output.

A :class:`Section` carries an organ label from the model's organ head, or
:data:`UNUSABLE` where no organ could be seen long enough to matter (or
:data:`QUALITY_ONLY_LABEL` / :data:`UNUSABLE` for a model without an organ head). The
``sections.json`` document that holds them is built in :mod:`endostream.output.sections_file`.

>>> s = Section("nose", 0.0, 41.3, 0, 1238, good_fraction=0.86, confidence=0.95)
>>> s.duration_s
41.3
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Reserved label for stretches where no organ can be seen (bad quality, out of body).
UNUSABLE = "unusable"

#: Share of good frames at which a section as a whole reads as good quality.
MOSTLY_GOOD_SHARE = 0.5

#: The one "organ" label of a model that has a quality head but no organ head: its
#: sections say where the video is usable, the rest is :data:`UNUSABLE`.
QUALITY_ONLY_LABEL = "usable"


@dataclass(frozen=True)
class Section:
    """One labelled stretch: ``[start_s, end_s)`` in container time, frames inclusive.

    ``good_fraction`` is the share of analysed frames in the section that the quality head
    called good; ``confidence`` the mean probability of ``label`` over the good frames
    (for ``unusable``: the mean probability of bad quality over all its frames).
    """

    label: str
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int
    good_fraction: float
    confidence: float

    @property
    def mostly_good(self) -> bool:
        """Whether at least half of the section's analysed frames were judged good (a
        share of frames, not a probability: the frames were judged at the run's own
        threshold)."""
        return self.good_fraction >= MOSTLY_GOOD_SHARE

    @property
    def duration_s(self) -> float:
        return round(self.end_s - self.start_s, 6)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Section:
        """The section of one ``sections[]`` object of ``sections.json`` (the inverse of
        :meth:`to_json`); ``KeyError``, ``TypeError`` or ``ValueError`` when it is not one.

        >>> Section.from_json({"label": "ear", "start_s": 0, "end_s": 2.5, "start_frame": 0,
        ...                    "end_frame": 62, "good_fraction": 1, "confidence": 0.9}).end_s
        2.5
        """
        return cls(str(d["label"]), float(d["start_s"]), float(d["end_s"]),
                   int(d["start_frame"]), int(d["end_frame"]), float(d["good_fraction"]),
                   float(d["confidence"]))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("start_s", "end_s"):
            d[k] = round(float(d[k]), 3)
        for k in ("good_fraction", "confidence"):
            d[k] = round(float(d[k]), 4)
        return d
