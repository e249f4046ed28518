"""The README's quickstart works as written on a PEP 668 system (Debian 12, Ubuntu 24.04),
where ``pip install`` outside a virtual environment is refused.

The fast tests hold the README and ``.ci/run`` to the rule (every ``pip`` runs inside the
``.venv`` the command made; CI runs the README's test command verbatim). The real proof
runs the README's first command, character for character, with Debian's own
``/usr/bin/python3`` in a fresh copy of the clone: it installs packages (a minute with a
local package index, longer from PyPI), so it runs only when asked:
``ENDOSTREAM_QUICKSTART=1 python -m pytest -q tests/test_quickstart.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Debian's / Ubuntu's own interpreter and the marker of PEP 668.
SYSTEM_PYTHON = Path("/usr/bin/python3")


def quickstart_commands() -> list[str]:
    """The ``sh`` blocks of the README's Quickstart section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Quickstart"):]
    section = section[:section.index("\n## ", 3)]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.S)]


def test_quickstart_runs_pip_only_inside_its_venv():
    commands = quickstart_commands()
    assert len(commands) == 2
    for command in commands:
        steps = [s.strip() for s in command.split("&&")]
        assert re.fullmatch(r"python3 -m venv( --system-site-packages)? \.venv", steps[0])
        assert steps[1] == ". .venv/bin/activate"  # POSIX sh, not bash's `source`
        assert steps[2].startswith("pip install -e ")
    assert commands[0].endswith("endostream demo")
    assert commands[1].endswith("python -m pytest -q")


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert quickstart_commands()[1] in ci.splitlines()


def _externally_managed() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    out = subprocess.run([str(SYSTEM_PYTHON), "-c",
                          "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                         capture_output=True, text=True, timeout=30)
    return (Path(out.stdout.strip()) / "EXTERNALLY-MANAGED").exists()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("ENDOSTREAM_QUICKSTART") != "1",
                    reason="installs packages into a fresh venv; set ENDOSTREAM_QUICKSTART=1")
def test_first_command_works_with_the_system_python(tmp_path):
    if not _externally_managed():
        pytest.skip(f"{SYSTEM_PYTHON} is not a PEP 668 (externally managed) Python")
    clone = tmp_path / "clone"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    # What a user of that machine has: the system's python3 first on PATH, no venv active.
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    plain = subprocess.run(["sh", "-c", "pip install -e ."], cwd=clone, env=env,
                           capture_output=True, text=True, timeout=120)
    assert plain.returncode != 0 and "externally-managed-environment" in plain.stderr
    done = subprocess.run(["sh", "-c", quickstart_commands()[0]], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "segment F1" in done.stdout
    assert (clone / "endostream-demo" / "sections.json").is_file()
