"""A recorded procedure: a ``sections.json``, the recording it describes and its per-frame CSV.

The foundation that review, DICOM and corrections stand on (none of them imports another):

- :mod:`~endostream.procedure.load`: :class:`Procedure` (the checked document and where its
  video is) and :func:`load_procedure`;
- :mod:`~endostream.procedure.frame_table`: the per-frame CSV as arrays (:class:`FrameTable`),
  checked against the run that wrote the sections;
- :mod:`~endostream.procedure.video`: opening the recording, its time origin, frames at
  given times;
- :mod:`~endostream.procedure.thumbnails`: small pictures of sections and frames.

The recording is only ever read here.
"""

from endostream.procedure.frame_table import FrameTable, read_frames_csv
from endostream.procedure.load import Procedure, load_procedure

__all__ = ["FrameTable", "Procedure", "load_procedure", "read_frames_csv"]
