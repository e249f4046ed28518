"""The segmenter's settings, shared by the offline and live segmenters.

This is the bottom of :mod:`endostream.segmentation`: the HMM, the run merging and both
segmenters read their settings from :class:`SegmenterConfig`, and it imports none of them.
The defaults here are the defaults of every command (``--min-section`` and friends).

>>> SegmenterConfig(min_section_s=5.0).to_json()["min_section_s"]
5.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from endostream.errors import UsageError


def validate_positive(name: str, value: float, *, upper: float | None = None) -> None:
    """Raise :class:`UsageError` unless ``0 < value`` (and ``< upper`` when given)."""
    ok = np.isfinite(value) and value > 0 and (upper is None or value < upper)
    if not ok:
        bound = f"between 0 and {upper:g} (exclusive)" if upper is not None else "above 0"
        raise UsageError(f"segmenter setting {name} must be {bound}, got {value!r}; "
                         "pass a value in range")


def is_good(p_good: float | np.ndarray, threshold: float) -> bool | np.ndarray:
    """The good-frame rule, the one place it is written: a frame is good when its
    probability of good quality reaches ``threshold``; a frame without a quality output
    (NaN) counts as good. Takes one value or an array.

    >>> is_good(0.5, 0.5), is_good(float("nan"), 0.5), is_good(np.array([0.2, 0.7]), 0.6).tolist()
    (True, True, [False, True])
    """
    if isinstance(p_good, float):  # the live segmenter's per-frame path: plain floats
        return p_good != p_good or p_good >= threshold
    p = np.asarray(p_good, dtype=np.float64)
    return np.isnan(p) | (p >= threshold)


@dataclass(frozen=True)
class SegmenterConfig:
    """Settings of both segmenters; defaults are what ``endostream segment`` uses.

    ``min_section_s``: shortest organ section kept (seconds); shorter runs merge into a
    neighbour. ``unusable_min_s``: shortest :data:`UNUSABLE` stretch that becomes its own
    section; shorter bad bursts are absorbed by the organ around them.
    ``good_threshold``: p(good) at which a frame counts as good (``good_fraction``,
    ``confidence``, the live quality flag) and where quality evidence is neutral.
    ``switch_cost_per_s``: Viterbi cost of a change, in log-evidence per second of the
    two states' mean minimum length: at 1.0 a new section needs about its minimum length
    of clear contrary evidence to appear (1.0 is the middle of the range that scored best
    in ``benchmarks.segmenter_quality``; lower finds short sections sooner and more
    spurious ones, higher misses short true sections).
    ``good_rate_organ`` / ``good_rate_unusable``: share of frames expected to be good
    inside an organ section / an unusable stretch. ``organ_floor``: mixing weight of a
    flat distribution into the organ evidence, which bounds what one confidently wrong
    frame costs.

    >>> SegmenterConfig(min_section_s=5.0).to_json()["min_section_s"]
    5.0
    """

    min_section_s: float = 3.0
    unusable_min_s: float = 2.0
    good_threshold: float = 0.5
    switch_cost_per_s: float = 1.0
    good_rate_organ: float = 0.85
    good_rate_unusable: float = 0.05
    organ_floor: float = 0.1

    def __post_init__(self) -> None:
        validate_positive("min_section_s", self.min_section_s)
        validate_positive("unusable_min_s", self.unusable_min_s)
        validate_positive("good_threshold", self.good_threshold, upper=1.0)
        validate_positive("switch_cost_per_s", self.switch_cost_per_s)
        validate_positive("good_rate_organ", self.good_rate_organ, upper=1.0)
        validate_positive("good_rate_unusable", self.good_rate_unusable, upper=1.0)
        validate_positive("organ_floor", self.organ_floor, upper=1.0)

    def is_good(self, p_good: float | np.ndarray) -> bool | np.ndarray:
        """:func:`is_good` at this configuration's ``good_threshold``."""
        return is_good(p_good, self.good_threshold)

    def to_json(self) -> dict[str, Any]:
        """The settings for ``sections.json`` ``analysis.segmenter``."""
        return {"method": "hmm-viterbi", **asdict(self)}
