"""The house's lint rules (``pyproject.toml``, ``[tool.ruff]``) hold on every source file.

Pyflakes, pycodestyle, isort order, bugbear and pyupgrade, as ruff checks them: an unused
import, a loop variable captured late, a silently truncating ``zip`` or a 140-character
docstring line fails here with its file and line. ruff is pinned in the ``test`` extra:
its rules change between releases, and a new one must not turn the suite red by itself.
Skips where ruff is not installed (the product does not need it).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: What is checked: the product, its training/export and GUI parts, benchmarks, tests.
CHECKED = ("endostream", "export", "gui", "benchmarks", "tests")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ruff") is None,
                                reason="needs ruff (pip install -e '.[test]')")


def test_ruff_finds_nothing():
    paths = [str(ROOT / p) for p in CHECKED if (ROOT / p).is_dir()]
    assert paths, f"none of {CHECKED} under {ROOT}"
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache",
                          "--output-format", "concise", *paths],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
