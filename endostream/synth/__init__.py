"""Synthetic stand-in ENT procedures with exact ground truth (not on the data path).

Tests, the README demo, the benchmarks and the bundled demo model need deterministic input
whose truth is known; nothing here is real anatomy. One module a concept:
:mod:`~endostream.synth.scenes` draws the stand-in scenes and fields of view,
:mod:`~endostream.synth.spec` scripts a procedure, :mod:`~endostream.synth.procedure`
turns a script into frames, a video and its truth, :mod:`~endostream.synth.dataset`
writes still-frame training sets. The names most callers need are re-exported here.

>>> from endostream.synth import ProcedureSpec, ground_truth, default_spec
>>> [s.label for s in ground_truth(default_spec(0.25), fps=10.0).sections][:2]
['nose', 'unusable']
"""

from endostream.synth.dataset import render_dataset
from endostream.synth.procedure import (
    TRUTH_SCHEMA_ID,
    FrameTruth,
    GroundTruth,
    SynthFrame,
    ground_truth,
    iter_frames,
    render_procedure,
)
from endostream.synth.scenes import ORGANS, SCENE_MEAN_RGB, FieldOfView
from endostream.synth.spec import MAX_BURST_S, Burst, ProcedureSpec, Segment, default_spec

__all__ = [
    "ORGANS",
    "SCENE_MEAN_RGB",
    "FieldOfView",
    "Burst",
    "Segment",
    "ProcedureSpec",
    "FrameTruth",
    "GroundTruth",
    "SynthFrame",
    "default_spec",
    "ground_truth",
    "iter_frames",
    "render_procedure",
    "render_dataset",
    "TRUTH_SCHEMA_ID",
    "MAX_BURST_S",
]
