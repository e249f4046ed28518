"""Outputs: everything endostream writes for people and programs.

:mod:`~endostream.output.atomic` is the one way files reach the disk (temp file, fsync,
rename, permissions kept); :mod:`~endostream.output.sections_file` builds and writes
``sections.json``; :mod:`~endostream.output.frames_csv` streams the per-frame CSV;
:mod:`~endostream.output.table` and :mod:`~endostream.output.progress` print for people.
"""
