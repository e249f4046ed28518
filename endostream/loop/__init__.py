"""The reviewer's correction loop: from reviewed sections back to training data.

A reviewer who corrects a ``sections.json`` (in the report, or in another tool) knows where
each organ really is. This package turns that knowledge into work for the trainer and
tells the reviewer where to look first:

- :mod:`~endostream.loop.dataset`: reviewed sections files and their videos → the rows of
  the labels CSV that ``endostream train`` reads (``endostream dataset``);
- :mod:`~endostream.loop.uncertainty`: per-frame doubt of the model (organ-head margin on
  good frames, disagreement with the section) → ranked stretches, spaced apart;
- :mod:`~endostream.loop.picks`: those stretches as thumbnails, CSV and JSON for the
  reviewer (``endostream next``).

Nothing here imports torch: training stays in :mod:`endostream.export`.
"""
