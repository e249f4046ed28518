"""Looking at what was found: chapters, a report with pictures, clips, an annotated video.

Everything here starts from a ``sections.json`` (and, where given, the per-frame CSV) and
the recording it describes (:mod:`endostream.procedure`):

- :mod:`~endostream.review.chapters`: WebVTT, FFmpeg metadata, or a stream-copied
  ``.mkv``/``.mp4`` with the chapters muxed in;
- :mod:`~endostream.review.timeline_plot`: the timeline as PNG/SVG (matplotlib);
- :mod:`~endostream.review.report`: one self-contained HTML page;
- :mod:`~endostream.review.clips`: one file per section;
- :mod:`~endostream.review.annotate`: the recording re-encoded with the overlay burned in.

The original recording is only ever read. Container metadata that may name a patient
(title, comment, artist, creation tags) is never read into any of these outputs, and the
muxed copy and clips carry none unless asked to (``--keep-metadata``).
"""
