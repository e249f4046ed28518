"""``endostream live`` with a window: the QApplication, signals, and the exit code.

Ctrl+C and SIGTERM close the window like the close button does (every thread stops within
a second, --out is written): Qt's event loop does not let Python run signal handlers by
itself, so a short timer hands control back to Python a few times a second.

>>> run_gui(clf, source=SourceChoice(camera=0), config=SegmenterConfig(),  # doctest: +SKIP
...         batch_size=1, out=Path("sections.json"))
0
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication

from endostream.gui.controls import SourceChoice
from endostream.gui.window import LiveWindow
from endostream.inference.classifier import Classifier
from endostream.segmentation.config import SegmenterConfig

log = logging.getLogger(__name__)

#: Milliseconds between the wake-ups that let Python handle Ctrl+C/SIGTERM in Qt's loop.
SIGNAL_POLL_MS = 200
#: Shown in the toolbar when the bundled demo model is in use.
DEMO_BADGE = "DEMO model · synthetic training data · not for clinical use"


def run_gui(classifier: Classifier, *, source: SourceChoice, config: SegmenterConfig,
            batch_size: int, out: Path | None, give_up_s: float | None = None,
            duration_s: float | None = None, notice: str | None = None) -> int:
    """Show the live window on ``source``, run until it closes; returns the exit code.

    The caller owns ``classifier`` (loads and closes it); ``out`` is written when the
    window closes; ``notice`` is a badge for the toolbar (the demo model's warning).
    """
    app = QApplication.instance() or QApplication([sys.argv[0] or "endostream"])
    window = LiveWindow(classifier, config=config, batch_size=batch_size, source=source,
                        out=out, give_up_s=give_up_s, notice=notice)
    previous = _install_signal_handlers(window)
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(SIGNAL_POLL_MS)
    if duration_s is not None:
        QTimer.singleShot(int(duration_s * 1000), window.close)
    try:
        window.show()
        window.start()
        app.exec_()
    finally:
        wake.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    session = window.session
    if session is not None and session.error is not None:
        raise session.error  # the sections so far were written by the window
    return 0


def _install_signal_handlers(window: LiveWindow) -> dict[int, object]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: window.close())
    return previous
