"""Colours and label text shared by the overlay and the timeline.

Organ colours come from the Okabe–Ito palette, which stays distinguishable with the
common colour-vision deficiencies; they are assigned in the order of the model's organ
labels, so a model with other organs still gets stable, distinct colours. Unusable
stretches are neutral grey (and hatched on the timeline), never a colour an organ could
have.

>>> display_label("vocal_folds")
'Vocal folds'
>>> label_color("nose", ["ear", "nose", "vocal_folds"]).name()
'#56b4e9'
"""

from __future__ import annotations

from collections.abc import Sequence

from PyQt5.QtGui import QColor

from endostream.segmentation.section import UNUSABLE

#: Okabe–Ito colours (without black), in assignment order: orange, sky blue, bluish green,
#: yellow, blue, vermillion, reddish purple.
ORGAN_COLORS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")
#: Unusable stretches: mid grey, light enough to show its hatching on the dark timeline.
UNUSABLE_COLOR = "#7A7F87"
#: Background of the timeline and the letterbox around the video.
BACKGROUND = "#101214"
#: Panel behind the overlay text (alpha keeps the image visible underneath).
PANEL = QColor(8, 10, 12, 190)
#: Quality badge colours: good (green), poor (amber), unknown (grey).
GOOD_COLOR = "#2E9E5B"
POOR_COLOR = "#F2A900"
UNKNOWN_COLOR = "#5C6168"
#: Text on dark panels.
TEXT = "#F4F6F8"
TEXT_DIM = "#A9B0B8"


def display_label(label: str) -> str:
    """A model label as people read it: ``vocal_folds`` → ``Vocal folds``."""
    text = label.replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else label


def label_color(label: str, organ_labels: Sequence[str]) -> QColor:
    """The colour of ``label``; organs not in ``organ_labels`` get one by hash (stable)."""
    if label == UNUSABLE:
        return QColor(UNUSABLE_COLOR)
    labels = list(organ_labels)
    index = labels.index(label) if label in labels else sum(map(ord, label))
    return QColor(ORGAN_COLORS[index % len(ORGAN_COLORS)])


def text_color_on(background: QColor) -> QColor:
    """Black or white, whichever reads better on ``background`` (relative luminance)."""
    r, g, b = background.redF(), background.greenF(), background.blueF()
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return QColor("#111111") if luminance > 0.5 else QColor(TEXT)


#: Qt style sheet of the live window: dark, low-glare surroundings (the video is the bright
#: thing on screen, as on an endoscopy tower), high-contrast text, large hit targets.
WINDOW_STYLE = f"""
QMainWindow, QWidget {{ background: {BACKGROUND}; color: {TEXT}; }}
QToolBar {{ background: #181B1F; border: none; border-bottom: 1px solid #2A2E33;
            padding: 4px; spacing: 6px; }}
QLabel {{ color: {TEXT}; background: transparent; }}
QPushButton, QComboBox {{ background: #262A30; color: {TEXT}; border: 1px solid #3A3F46;
                          border-radius: 4px; padding: 4px 12px; min-height: 22px; }}
QPushButton:hover, QComboBox:hover {{ border-color: #5A6270; }}
QPushButton:disabled {{ color: #6B727B; }}
QPushButton#primary {{ background: #1F6FB2; border-color: #2B82CC; font-weight: 600; }}
QPushButton#primary[running="true"] {{ background: #A3342B; border-color: #C0463C; }}
QComboBox QAbstractItemView {{ background: #262A30; color: {TEXT};
                               selection-background-color: #1F6FB2; }}
QCheckBox {{ color: {TEXT}; spacing: 6px; }}
QStatusBar {{ background: #16191C; border-top: 1px solid #2A2E33; }}
QStatusBar QLabel {{ color: #D8DDE3; padding: 2px 6px; }}
"""


def legend_html(organ_labels: Sequence[str]) -> str:
    """Rich text of the colour legend: one chip per organ, then unusable."""
    items = [(display_label(label), label_color(label, organ_labels).name())
             for label in organ_labels]
    items.append((display_label(UNUSABLE), UNUSABLE_COLOR))
    return "&nbsp;&nbsp;".join(f"<span style='color:{color}'>&#9632;</span>&nbsp;{name}"
                               for name, color in items)
