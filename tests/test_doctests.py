"""The examples in every module's docstrings run, so they cannot drift from the code.

Modules are found by walking the installed ``endostream`` package (``endostream.export``
and ``endostream.gui`` included) and ``benchmarks``; examples marked ``+SKIP`` (a camera,
a real model file) are left out by doctest itself.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil

import pytest

#: Packages whose modules need an extra that may not be installed.
NEEDS = {"endostream.export": "torch", "endostream.gui": "PyQt5",
         "endostream.archive.ray_engine": "ray",
         # The dicom extra: the most specific prefix first (the first match is used).
         "endostream.dicom.net": "pynetdicom", "endostream.dicom.document": "highdicom",
         "endostream.dicom.write": "highdicom", "endostream.dicom.": "pydicom"}


def module_names() -> list[str]:
    # export/ and gui/ are installed as endostream.export and endostream.gui from folders
    # of their own, so each package is walked from its own path.
    names = set()
    for name in ("endostream", "endostream.export", "endostream.gui", "benchmarks"):
        package = importlib.import_module(name)  # package __init__s import nothing heavy
        names.add(name)
        names.update(info.name for info in pkgutil.walk_packages(package.__path__, name + "."))
    return sorted(n for n in names if not n.endswith("__main__"))


def test_the_walk_finds_every_part():
    names = set(module_names())
    assert {"endostream.pipeline.offline", "endostream.export.sampling", "endostream.gui.timeline",
            "benchmarks.soak"} <= names


@pytest.mark.parametrize("name", module_names())
def test_module_examples(name):
    needed = next((dep for prefix, dep in NEEDS.items() if name.startswith(prefix)), None)
    if needed and importlib.util.find_spec(needed) is None:
        pytest.skip(f"{name} needs {needed}")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
