"""Benchmarks of endostream, runnable as modules (``python -m benchmarks.segmenter_quality``)."""
