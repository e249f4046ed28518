"""Corrections: a reviewer's fixes to the model's sections, and the way back to training.

Everything that touches a corrected ``sections.json`` lives here, beside review and DICOM
on the floor of :mod:`endostream.procedure` (none of the three imports another):

- :mod:`~endostream.corrections.rules`: the one rule set of a corrections file (schema,
  boundaries on frame times, no gaps or overlaps, labels the model knows), read and written;
- :mod:`~endostream.corrections.editor`: the report page's edit mode (its template, style
  and script under ``templates/``), handed to the report by the commands that write one;
- :mod:`~endostream.corrections.labelstudio`: sections as Label Studio tasks, and its
  export back as corrections;
- :mod:`~endostream.corrections.dataset`: reviewed sections files and their videos → the
  rows of the labels CSV that ``endostream train`` reads (``endostream dataset``);
- :mod:`~endostream.corrections.uncertainty` and :mod:`~endostream.corrections.picks`:
  where the model doubts, ranked, as the reviewer's work list (``endostream next``).

Nothing here imports torch: training stays in :mod:`endostream.export`.
"""
