"""Segmentation: per-frame probabilities in, few stable sections out.

Pure logic, no threads and no I/O. :mod:`~endostream.segmentation.config` (the settings)
is the bottom; :mod:`~endostream.segmentation.section` the output type;
:mod:`~endostream.segmentation.hmm` the per-frame evidence and the Viterbi model;
:mod:`~endostream.segmentation.runs` turns a decoded path into merged runs and sections;
:mod:`~endostream.segmentation.offline` decodes a whole video at once and
:mod:`~endostream.segmentation.live` commits causally with a bounded lag;
:mod:`~endostream.segmentation.refine` is the coarse-to-fine rule (where, between two
coarse answers, the sections can change).
"""
