"""Pipelines: sources, the inference worker and a segmenter wired into threads.

:mod:`~endostream.pipeline.offline` segments a recorded video
(:func:`~endostream.pipeline.offline.segment_video`), by default coarse to fine
(:mod:`~endostream.pipeline.coarse`), with :mod:`~endostream.pipeline.options` what it
takes and gives; :mod:`~endostream.pipeline.files` turns that into a video's files, in one
order for every caller (:func:`~endostream.pipeline.files.segment_to_files`);
:mod:`~endostream.pipeline.live`
runs a camera or a file in real time (:class:`~endostream.pipeline.live.LiveSession`);
:mod:`~endostream.pipeline.stats` measures a live session; :mod:`~endostream.pipeline.threads`
is the one way a group of threads is started, stopped, drained and joined.
"""
