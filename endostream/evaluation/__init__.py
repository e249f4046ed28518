"""Evaluation: scoring classifiers and sections against labelled truth.

:mod:`~endostream.evaluation.metrics` (accuracy, P/R/F1, confusion, ROC/AUC),
:mod:`~endostream.evaluation.sections` (sections against ground-truth sections),
:mod:`~endostream.evaluation.truth` (the reader of truth and sections files),
:mod:`~endostream.evaluation.plots` (their pictures) and
:mod:`~endostream.evaluation.datasets` (the torch-free reader of labelled image and video
sets, shared with training in :mod:`endostream.export`).
"""
