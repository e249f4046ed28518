"""Colours and label text of the overlay and the timeline, as Qt objects.

The colours themselves live in :mod:`endostream.output.palette`, shared with the report
and the annotated video; this module turns them into ``QColor`` and holds the window's
style sheet.

>>> display_label("vocal_folds")
'Vocal folds'
>>> label_color("nose", ["ear", "nose", "vocal_folds"]).name()
'#56b4e9'
"""

from __future__ import annotations

from collections.abc import Sequence

from PyQt5.QtGui import QColor

from endostream.output.palette import (  # noqa: F401 - re-exported for the widgets
    BACKGROUND,
    GOOD_COLOR,
    ORGAN_COLORS,
    PANEL_RGBA,
    POOR_COLOR,
    TEXT,
    TEXT_DIM,
    UNKNOWN_COLOR,
    UNUSABLE_COLOR,
    display_label,
    label_hex,
    text_hex_on,
)
from endostream.segmentation.section import UNUSABLE

#: Panel behind the overlay text (alpha keeps the image visible underneath).
PANEL = QColor(*PANEL_RGBA)


def label_color(label: str, organ_labels: Sequence[str]) -> QColor:
    """The colour of ``label``; organs not in ``organ_labels`` get one by hash (stable)."""
    return QColor(label_hex(label, organ_labels))


def text_color_on(background: QColor) -> QColor:
    """Black or white, whichever reads better on ``background`` (relative luminance)."""
    return QColor(text_hex_on(background.name()))


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
