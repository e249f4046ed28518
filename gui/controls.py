"""The live window's toolbar: source chooser, real-time switch, Start/Stop, Save.

None of its widgets takes keyboard focus: Space is the window's start/stop shortcut and
must never "press the focused button" or open the source list instead.

>>> bar = ControlBar(SourceChoice(file=Path("clip.mp4")), notice=None)  # doctest: +SKIP
>>> bar.choice()  # doctest: +SKIP
SourceChoice(camera=None, file=PosixPath('clip.mp4'), realtime=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QPushButton,
    QSizePolicy,
    QToolBar,
    QWidget,
)

#: Camera indices offered in the source chooser.
CAMERA_CHOICES = (0, 1, 2, 3)
#: Shown on the notice label (e.g. the demo model's warning).
NOTICE_STYLE = ("QLabel { background: #5A4500; color: #FFE08A; border-radius: 3px; "
                "padding: 2px 8px; }")


@dataclass(frozen=True)
class SourceChoice:
    """A camera (index, device path or URL) or a file; ``realtime`` applies to files."""

    camera: int | str | None = None
    file: Path | None = None
    realtime: bool = True

    def describe(self) -> str:
        if self.file is not None:
            return f"File: {self.file.name}"
        return f"Camera {self.camera if self.camera is not None else 0}"


class ControlBar(QToolBar):
    """Widgets only; the window connects ``start_button``, ``open_button``, ``save_button``."""

    def __init__(self, source: SourceChoice | None, notice: str | None,
                 parent: QWidget | None = None):
        super().__init__("Controls", parent)
        self.setMovable(False)
        self.source_combo = QComboBox()
        self.source_combo.setFocusPolicy(Qt.NoFocus)
        self.source_combo.setMinimumContentsLength(18)
        for index in CAMERA_CHOICES:
            self.source_combo.addItem(f"Camera {index}", SourceChoice(camera=index))
        if source is not None:
            self.select(source)
        self.open_button = self._button("Open file…")
        self.realtime_box = QCheckBox("Real time")
        self.realtime_box.setFocusPolicy(Qt.NoFocus)
        self.realtime_box.setToolTip("play files at their own rate, as a camera would "
                                     "(frames are dropped when analysis is slower)")
        self.realtime_box.setChecked(source.realtime if source is not None else True)
        self.start_button = self._button("Start")
        self.start_button.setObjectName("primary")
        self.start_button.setMinimumWidth(100)
        self.save_button = self._button("Save sections")
        for w in (QLabel(" Source "), self.source_combo, self.open_button, self.realtime_box,
                  self.start_button, self.save_button):
            self.addWidget(w)
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.addWidget(spacer)
        if notice:
            label = QLabel(notice)
            label.setStyleSheet(NOTICE_STYLE)
            self.addWidget(label)

    def _button(self, text: str) -> QPushButton:
        b = QPushButton(text)
        b.setFocusPolicy(Qt.NoFocus)
        return b

    def select(self, choice: SourceChoice) -> None:
        """Select ``choice``, adding it to the list first if it is new."""
        for i in range(self.source_combo.count()):
            if self.source_combo.itemData(i) == choice:
                self.source_combo.setCurrentIndex(i)
                return
        self.source_combo.addItem(choice.describe(), choice)
        self.source_combo.setCurrentIndex(self.source_combo.count() - 1)

    def choice(self) -> SourceChoice:
        """The selected source, with the real-time switch applied."""
        c: SourceChoice = self.source_combo.currentData()
        return SourceChoice(camera=c.camera, file=c.file, realtime=self.realtime_box.isChecked())

    def set_start(self, text: str, *, enabled: bool = True, running: bool = False) -> None:
        """Label and colour of the Start/Stop button (red while a session runs)."""
        b = self.start_button
        b.setText(text)
        b.setEnabled(enabled)
        b.setProperty("running", running)
        b.style().unpolish(b)  # re-apply the style sheet for the new property
        b.style().polish(b)
