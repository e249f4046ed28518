"""The colours and label text every picture of a procedure shares.

The live window (``endostream.gui``), the report's timeline and the annotated video all
draw sections in these colours, so a reviewer sees the same orange "Ear" everywhere.
Organ colours come from the Okabe–Ito palette, which stays distinguishable with the
common colour-vision deficiencies; they are assigned in the order of the model's organ
labels, so a model with other organs still gets stable, distinct colours. Unusable
stretches are neutral grey (and hatched), never a colour an organ could have.

Plain hex strings, no GUI toolkit: the runtime may not import Qt.

>>> display_label("vocal_folds")
'Vocal folds'
>>> label_hex("nose", ["ear", "nose", "vocal_folds"])
'#56B4E9'
>>> hex_to_rgb("#56B4E9")
(86, 180, 233)
"""

from __future__ import annotations

from collections.abc import Sequence

from endostream.segmentation.section import UNUSABLE

#: Okabe–Ito colours (without black), in assignment order: orange, sky blue, bluish green,
#: yellow, blue, vermillion, reddish purple.
ORGAN_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
#: Unusable stretches: mid grey, light enough to show its hatching on a dark timeline.
UNUSABLE_COLOR = "#7A7F87"
#: Background of the timeline and the letterbox around the video.
BACKGROUND = "#101214"
#: Empty timeline bar (no section yet).
BAR_EMPTY = "#1C1F23"
#: Hatching over unusable stretches.
HATCH = "#2A2D31"
#: Panel behind overlay text, RGBA (alpha keeps the image visible underneath).
PANEL_RGBA = (8, 10, 12, 190)
#: Quality badge colours: good (green), poor (amber), unknown (grey).
GOOD_COLOR = "#2E9E5B"
POOR_COLOR = "#F2A900"
UNKNOWN_COLOR = "#5C6168"
#: Text on dark panels.
TEXT = "#F4F6F8"
TEXT_DIM = "#A9B0B8"
#: Text on light colours.
TEXT_ON_LIGHT = "#111111"


def display_label(label: str) -> str:
    """A model label as people read it: ``vocal_folds`` → ``Vocal folds``."""
    text = label.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else label


def label_hex(label: str, organ_labels: Sequence[str]) -> str:
    """The colour of ``label`` as ``#RRGGBB``; organs not in ``organ_labels`` get one by
    hash (stable across runs)."""
    if label == UNUSABLE:
        return UNUSABLE_COLOR
    labels = list(organ_labels)
    index = labels.index(label) if label in labels else sum(map(ord, label))
    return ORGAN_COLORS[index % len(ORGAN_COLORS)]


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """``'#56B4E9'`` → ``(86, 180, 233)``."""
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def text_hex_on(background: str) -> str:
    """Black or white text, whichever reads better on ``background`` (relative luminance).

    >>> text_hex_on("#F0E442"), text_hex_on("#0072B2")
    ('#111111', '#F4F6F8')
    """
    r, g, b = (c / 255 for c in hex_to_rgb(background))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return TEXT_ON_LIGHT if luminance > 0.5 else TEXT
