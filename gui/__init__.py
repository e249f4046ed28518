"""endostream.gui: the PyQt5 live overlay and timeline (``endostream live``).

Installed as ``endostream.gui`` (the folder is ``gui/`` in the repository). Needs the
``gui`` extra (PyQt5). The runtime in ``endostream`` never imports this package.
"""
