"""Coarse-to-fine analysis of a recorded video: a sparse grid first, densely where it matters.

The default of ``segment`` (and of everything that calls
:func:`~endostream.pipeline.offline.segment_video`) for a recorded video. The dense grid is
the one a dense run analyses (``--sample-fps``, default 5/s); every n-th tick of it is a
coarse tick (n = ``sample_fps / coarse_fps``, default 5). Coarse frames are analysed as they
are decoded; the dense frames between two coarse frames wait, still in the decoder's own
format (never converted), until both coarse answers are in, and are analysed only where
:func:`~endostream.segmentation.refine.needs_dense` says the answer can change there. The
segmenter then decodes all analysed frames together, exactly as after a dense run::

    SkimSource ─CoarsePlan (capture thread)─▶ frames ─InferenceWorker─▶ predictions ─▶ caller
    (decode, skip       coarse ticks at once;            (batches, ORT)                (answers back
     non-reference)     dense ones once decided ◀──────────── decisions ──────────────  to the plan)

At most :data:`MAX_WAITING_STEPS` coarse steps of dense frames wait for their decision, so
memory stays bounded (about ``MAX_WAITING_STEPS x n`` decoded frames). Predictions arrive
out of frame order (a coarse frame before the dense ones behind it) and are sorted before
the segmenter, the CSV hook and the result see them: each is handed on once every frame
before it that will be analysed has been (:meth:`CoarsePlan.receive`).

:mod:`.plan` holds :class:`~endostream.pipeline.coarse.plan.CoarsePlan` (the capture
thread's side and the decisions); :mod:`.run` the wiring (:func:`run_coarse`), which
:func:`~endostream.pipeline.offline.segment_video` runs and assembles as it does a dense run.

>>> result = segment_video("procedure.mp4", clf, SegmentOptions())  # doctest: +SKIP
>>> result.document.analysis.extra["mode"]  # doctest: +SKIP
'coarse-to-fine'
"""

from endostream.pipeline.coarse.plan import MAX_WAITING_STEPS, CoarsePlan
from endostream.pipeline.coarse.run import (
    MODE_COARSE,
    MODE_DENSE,
    CoarseRun,
    applies,
    run_coarse,
)

__all__ = ["MAX_WAITING_STEPS", "MODE_COARSE", "MODE_DENSE", "CoarsePlan", "CoarseRun",
           "applies", "run_coarse"]
