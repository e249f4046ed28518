"""``endostream live`` with a window: the QApplication, signals, and the exit code.

Ctrl+C and SIGTERM close the window like the close button does (every thread stops within
a second, --out is written): Qt's event loop does not let Python run signal handlers by
itself, so a short timer hands control back to Python a few times a second.

>>> run_gui(parse(["live", "--camera", "0", "--out", "sections.json"]))  # doctest: +SKIP
0
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication

from endostream.commands.live import segmenter_config
from endostream.commands.segment import load_classifier
from endostream.sources.camera import parse_device

from .controls import SourceChoice
from .window import LiveWindow

log = logging.getLogger(__name__)

#: Milliseconds between the wake-ups that let Python handle Ctrl+C/SIGTERM in Qt's loop.
SIGNAL_POLL_MS = 200
#: Shown in the toolbar when the bundled demo model is in use.
DEMO_BADGE = "DEMO model · synthetic training data · not for clinical use"


def source_choice(args: argparse.Namespace) -> SourceChoice:
    """The window's initial source from --camera / --file / --realtime."""
    if args.file is not None:
        return SourceChoice(file=args.file, realtime=bool(args.realtime))
    return SourceChoice(camera=parse_device(args.camera) if args.camera is not None else 0)


def make_window(args: argparse.Namespace, classifier) -> LiveWindow:
    return LiveWindow(classifier, config=segmenter_config(args), batch_size=args.batch,
                      source=source_choice(args), out=args.out, give_up_s=args.give_up,
                      notice=None if args.models else DEMO_BADGE)


def run_gui(args: argparse.Namespace) -> int:
    """Show the live window, start the chosen source, run until the window closes."""
    classifier = load_classifier(args)
    app = QApplication.instance() or QApplication([sys.argv[0] or "endostream"])
    window = make_window(args, classifier)
    previous = _install_signal_handlers(window)
    wake = QTimer()
    wake.timeout.connect(lambda: None)
    wake.start(SIGNAL_POLL_MS)
    if args.duration is not None:
        QTimer.singleShot(int(args.duration * 1000), window.close)
    try:
        window.show()
        window.start()
        app.exec_()
    finally:
        wake.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        classifier.close()
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
