"""Segment a whole archive of recorded videos in one run, resumably.

``endostream segment archive/ --out-dir results/`` finds every video under the inputs
(:mod:`.inputs`), skips the ones whose result is already there and up to date
(:mod:`.resume`), analyses the rest on an engine — in-process (:mod:`.local`) or on a Ray
cluster (:mod:`.ray_engine`) — and the driver (:mod:`.run`) writes each video's
``sections.json`` and the archive summary (:mod:`.summary`) as results arrive, with a
progress line over the whole archive (:mod:`.progress`). Both engines analyse a video with
the same function (:func:`.outcome.analyse_video`), and the driver writes its files with
:func:`.outcome.store`: the two halves of the one path from a video to its files
(:mod:`endostream.pipeline.files`), so they write the same sections as ``segment``.

This layer sits above :mod:`endostream.pipeline`; only :mod:`endostream.commands` imports it.
"""
