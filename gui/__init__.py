"""endostream.gui: the PyQt5 live overlay and timeline (``endostream live``).

Installed as ``endostream.gui`` (the folder is ``gui/`` in the repository). Needs the
``gui`` extra (PyQt5). The runtime in ``endostream`` never imports this package.

- :mod:`.window`: the main window (video, timeline, status line, controls, shortcuts);
- :mod:`.overlay`: the video with "Nose 0.99 · good" on it; :mod:`.timeline`: sections;
- :mod:`.controls`: the toolbar; :mod:`.palette`: colours shared by overlay and timeline;
- :mod:`.bridge`: queued signals from the session's threads to the GUI thread;
- :mod:`.app`: ``run_gui(args)`` for the CLI; :mod:`.screenshot`: a PNG for people to see.
"""
