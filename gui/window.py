"""The live window: video with label overlay, timeline, status line and controls.

Controls: a source chooser (cameras 0–3, files opened with Ctrl+O, a camera or stream
given on the command line), "real time" for files, Start/Stop, Save. Shortcuts: Space
start/stop, Ctrl+S save (to --out when given, else asks), Ctrl+Shift+S save as,
Ctrl+O open a file, Q or Esc quit.

The GUI thread never waits on the pipeline: sources are opened on a short-lived thread
(a camera can take seconds to answer), frames and results arrive through
:class:`~.bridge.LiveBridge`'s queued signals, and Stop only asks the session to stop; the
session is joined when its ``ended`` signal arrives (its threads are done by then).
Closing the window stops every thread within a second and writes --out if given.

>>> w = LiveWindow(clf, source=SourceChoice(file=Path("a.mp4")))  # doctest: +SKIP
>>> w.show(); w.start()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QFileDialog, QLabel, QMainWindow, QVBoxLayout, QWidget

from endostream.errors import EndostreamError
from endostream.gui import palette
from endostream.gui.bridge import LiveBridge
from endostream.gui.controls import ControlBar, SourceChoice
from endostream.gui.overlay import VideoWidget
from endostream.gui.timeline import TimelineWidget
from endostream.inference.defaults import LIVE_BATCH
from endostream.output.progress import format_duration
from endostream.pipeline.live import LiveSession
from endostream.segmentation.config import SegmenterConfig
from endostream.sources.live import open_live_source

log = logging.getLogger(__name__)

#: Milliseconds between status-line and playhead updates.
STATUS_INTERVAL_MS = 250
#: Seconds closing the window waits for a source still being opened.
OPENER_JOIN_S = 1.0
VIDEO_FILTER = "Videos (*.mp4 *.mkv *.avi *.mov *.mpg *.mpeg *.ts *.webm);;All files (*)"


class LiveWindow(QMainWindow):
    """The main window. ``session`` is the current (or last) :class:`LiveSession`."""

    def __init__(self, classifier, *, config: SegmenterConfig | None = None,
                 batch_size: int = LIVE_BATCH, source: SourceChoice | None = None,
                 out: Path | None = None, give_up_s: float | None = None,
                 notice: str | None = None):
        super().__init__()
        self.classifier = classifier
        self.config = config or SegmenterConfig()
        self.batch_size = batch_size
        self.out = out
        self.give_up_s = give_up_s
        self.session: LiveSession | None = None
        self._opener: threading.Thread | None = None
        self._pending_session: LiveSession | None = None
        self._active = False  # from start() until the session's end has been handled
        self._closing = False
        self._now_s = 0.0
        organs = classifier.heads.get("organ", [])
        self.setWindowTitle("endostream live")
        self.bridge = LiveBridge(self)
        self.video = VideoWidget(organs)
        self.timeline = TimelineWidget(organs)
        self.setStyleSheet(palette.WINDOW_STYLE)
        self.status = QLabel("Ready")
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.statusBar().setSizeGripEnabled(False)
        self.statusBar().addWidget(self.status, 1)
        self.legend = QLabel(palette.legend_html(organs))
        self.statusBar().addPermanentWidget(self.legend)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.video, 1)
        layout.addWidget(self.timeline)
        self.setCentralWidget(central)
        self.controls = ControlBar(source, notice)
        self.addToolBar(Qt.TopToolBarArea, self.controls)
        self.start_button = self.controls.start_button
        self.source_combo = self.controls.source_combo
        self.controls.start_button.clicked.connect(lambda _=False: self.toggle())
        self.controls.open_button.clicked.connect(lambda _=False: self.open_file())
        self.controls.save_button.clicked.connect(lambda _=False: self.save())
        self._build_shortcuts()
        self.bridge.frame_ready.connect(self._on_frame)
        self.bridge.result_ready.connect(self._on_result, Qt.QueuedConnection)
        self.bridge.ended.connect(self._on_ended, Qt.QueuedConnection)
        self.bridge.opened.connect(self._on_opened, Qt.QueuedConnection)
        self.bridge.open_failed.connect(self._on_open_failed, Qt.QueuedConnection)
        self._timer = QTimer(self)
        self._timer.setInterval(STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self._tick)
        self.resize(1280, 860)
        screen = self.screen() if hasattr(self, "screen") else None
        if screen is not None and screen.refreshRate() > 0:
            self.bridge.set_refresh_hz(screen.refreshRate())

    # -- building -------------------------------------------------------------------------

    def _build_shortcuts(self) -> None:
        def action(keys, slot) -> QAction:
            a = QAction(self)
            a.setShortcuts([QKeySequence(k) for k in keys])
            a.setShortcutContext(Qt.WindowShortcut)
            a.triggered.connect(lambda _checked=False: slot())
            self.addAction(a)
            return a

        self.toggle_action = action([Qt.Key_Space], self.toggle)
        self.save_action = action([QKeySequence.Save], self.save)
        self.save_as_action = action(["Ctrl+Shift+S"], self.save_as)
        self.open_action = action([QKeySequence.Open], self.open_file)
        self.quit_action = action([Qt.Key_Q, Qt.Key_Escape], self.close)

    # -- actions --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """A session is opening, running or stopping (not yet joined and shown as ended)."""
        return self._active

    def toggle(self) -> None:
        self.stop() if self.running else self.start()

    def start(self) -> None:
        """Open the chosen source in the background and start a session on it."""
        if self.running:
            return
        choice = self.controls.choice()
        self._active = True
        self.bridge.reset()
        self.video.clear(f"Opening {choice.describe().lower()}…")
        self.timeline.clear()
        self._now_s = 0.0
        self._set_status(f"Opening {choice.describe()}…")
        self.controls.set_start("Opening…", enabled=False)
        self._opener = threading.Thread(target=self._open, args=(choice,),
                                        name="endostream-gui-open", daemon=True)
        self._opener.start()

    def stop(self) -> None:
        """Ask the session to stop; it is joined when its end arrives (never blocks)."""
        if self._active and self.session is not None and self._opener is None:
            self.session.request_stop()
            self.controls.set_start("Stopping…", enabled=False, running=True)

    def open_file(self, path: str | Path | None = None) -> None:
        """Add a video file to the sources and select it (asks for one when not given)."""
        if path is None:
            name, _ = QFileDialog.getOpenFileName(self, "Open a video", "", VIDEO_FILTER)
            if not name:
                return
            path = name
        self.controls.select(SourceChoice(file=Path(path)))

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write sections.json to ``path``, else --out, else a file chosen in a dialog."""
        target = Path(path) if path is not None else self.out
        if target is None:
            return self.save_as()
        return self._write(target)

    def save_as(self) -> Path | None:
        default = str(self.out or Path.cwd() / "sections.json")
        name, _ = QFileDialog.getSaveFileName(self, "Save sections", default,
                                              "sections.json (*.json)")
        return self._write(Path(name)) if name else None

    def _write(self, target: Path) -> Path | None:
        if self.session is None:
            self._set_status("Nothing to save yet: start a session first", error=True)
            return None
        try:
            self.session.write(target)
        except EndostreamError as e:
            self._set_status(str(e), error=True)
            return None
        n = len(self.session.sections())
        self._set_status(f"Saved {n} section{'s' if n != 1 else ''} to {target}")
        return target

    # -- session lifecycle (GUI thread) ---------------------------------------------------

    def _open(self, choice: SourceChoice) -> None:
        """Opener thread: the slow part of starting, off the GUI thread."""
        try:
            source = open_live_source(camera=choice.camera, file=choice.file,
                                      realtime=choice.realtime, keep_display=True,
                                      give_up_s=self.give_up_s)
            try:
                session = LiveSession(source, self.classifier, batch_size=self.batch_size,
                                      config=self.config, on_display=self.bridge.post_frame,
                                      on_result=self.bridge.post_result,
                                      on_end=self.bridge.post_end)
            except BaseException:
                source.close()
                raise
        except EndostreamError as e:
            self.bridge.open_failed.emit(str(e))
            return
        except Exception as e:  # noqa: BLE001 - shown to the user, with the traceback logged
            log.exception("opening the source failed")
            self.bridge.open_failed.emit(f"internal error: {type(e).__name__}: {e}")
            return
        self._pending_session = session  # for closeEvent, should the signal come too late
        self.bridge.opened.emit(session)

    def _on_opened(self, session: LiveSession) -> None:
        self._join_opener()
        if self._closing:
            return  # closeEvent stops it
        self._pending_session = None
        self.session = session
        session.start()
        self.controls.set_start("Stop", running=True)
        self.video.set_placeholder("Waiting for the first frame…")
        self._set_status(f"Live: {session.source.info.path}")
        self._timer.start()
        self.video.setFocus()

    def _on_open_failed(self, message: str) -> None:
        self._join_opener()
        self._active = False
        self.controls.set_start("Start")
        self.video.clear(message)
        self._set_status(message, error=True)

    def _join_opener(self) -> None:
        if self._opener is not None:
            self._opener.join(OPENER_JOIN_S)  # it has emitted its last signal: ends now
            self._opener = None

    def _on_ended(self, error: BaseException | None) -> None:
        session = self.session
        if session is None or self._closing:
            return
        self._finish(session)

    def _finish(self, session: LiveSession) -> None:
        """Join the session's threads and show the final sections (and any error)."""
        self._timer.stop()
        error = None
        try:
            final = session.stop()
        except BaseException as e:  # noqa: BLE001 - shown in the status line, never a crash
            error = e
            final = session.sections()
        self.timeline.set_sections(final, ())
        self._active = False
        self.controls.set_start("Start")
        saved = ""
        if self.out is not None:
            try:
                session.write(self.out)
                saved = f"; written to {self.out}"
            except EndostreamError as e:
                saved = f"; {e}"
        if error is not None:
            log.error("live session ended with an error: %s", error)
            self._set_status(f"Stopped: {error}{saved}", error=True)
        else:
            at_end = session.complete and not session.source.info.live
            ended = "Source ended" if at_end else "Stopped"
            self._set_status(f"{ended}: {len(final)} sections{saved}. "
                             "Ctrl+S saves them, Space starts again.")

    # -- updates --------------------------------------------------------------------------

    def _on_frame(self) -> None:
        frame = self.bridge.take_frame()
        if frame is None or frame.display is None:
            return
        self.video.show_frame(frame.display)
        self._now_s = frame.pts_s

    def _on_result(self) -> None:
        if not self.bridge.take_result() or self.session is None:
            return
        update = self.session.latest  # the snapshot with the overlay's label and probability
        if update is None:
            return
        now, snap = update.current, update.snapshot
        self.video.show_label(now.label, now.prob, now.quality_good)
        self.timeline.set_sections(snap.committed, snap.tentative)

    def _tick(self) -> None:
        session = self.session
        if session is None:
            return
        stats = session.stats()
        self.timeline.set_now(self._now_s)
        name = Path(session.source.info.path).name
        self.video.set_footer(f"{format_duration(self._now_s)} · {name}")
        self._set_status(stats.line(), error=stats.source_state not in (None, "streaming"))

    def _set_status(self, text: str, *, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("QLabel { color: #FF8A80; }" if error else "")

    # -- closing --------------------------------------------------------------------------

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Stop every thread (within a second) and write --out, then close."""
        self._closing = True
        self._timer.stop()
        if self._opener is not None:
            self._opener.join(OPENER_JOIN_S)
        pending = self._pending_session
        if pending is not None and pending is not self.session:
            try:  # opened while we were closing: its ``opened`` signal will never be handled
                pending.stop()
            except BaseException as e:  # noqa: BLE001 - it never ran; nothing to report
                log.debug("discarded session: %s", e)
        session = self.session
        if session is not None:
            try:
                session.stop()
            except BaseException as e:  # noqa: BLE001 - closing anyway; say why in the log
                log.error("live session ended with an error: %s", e)
            if self.out is not None:
                try:
                    session.write(self.out)
                    log.info("wrote %s", self.out)
                except EndostreamError as e:
                    log.error("%s", e)
        event.accept()
