"""Recording ids by rule, for data sets that do not name their recordings.

Frames of one recording are near-copies of each other; when some sit in training and
others in validation, validation accuracy measures memory, not generalisation. A labels
CSV with a ``recording`` column, or file names ``REC__frame.jpg``, name the recordings;
without them every image counts as its own recording and validation is optimistic. A
grouping rule (``endostream train --group-by RULE``) recovers the recordings from paths:

- ``folder``: the name of the folder that holds the file (a labels CSV whose paths are
  ``patient07/0001.jpg`` -> ``patient07``; in a class-folder layout that is the class
  folder, which is not what you want there: use ``prefix``);
- ``prefix:SEP``: the file name up to the first ``SEP`` (``pat07-0001.jpg`` with ``prefix:-``
  -> ``pat07``; the same prefix in two class folders is one recording, as it should be for
  the quality task, whose recordings hold good and bad frames).

>>> from pathlib import Path
>>> recording_of(Path("ear/pat07-0001.jpg"), "prefix:-"), recording_of(Path("p3/1.jpg"), "folder")
('pat07', 'p3')
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from endostream.errors import UsageError
from endostream.evaluation.datasets import LabelledSet

RULES = ("folder", "prefix:SEP")


def check_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`RULES`, else a UsageError saying which are."""
    if rule == "folder" or (rule.startswith("prefix:") and len(rule) > len("prefix:")):
        return rule
    raise UsageError(f"--group-by {rule!r}: use 'folder' or 'prefix:SEP' (e.g. prefix:_)")


def recording_of(path: Path, rule: str) -> str:
    """The recording id that ``rule`` gives the file at ``path``."""
    check_rule(rule)
    if rule == "folder":
        return path.parent.name
    return path.stem.split(rule[len("prefix:"):], 1)[0]


def regroup(ds: LabelledSet, rule: str) -> LabelledSet:
    """``ds`` with every sample's recording id replaced by the rule's; marked as known."""
    samples = tuple(replace(s, recording=recording_of(Path(s.path), rule)) for s in ds.samples)
    return replace(ds, samples=samples, recordings_known=True)
