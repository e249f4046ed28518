"""The README's commands work as written: the quickstart on a PEP 668 system (Debian 12,
Ubuntu 24.04, where ``pip install`` outside a virtual environment is refused), and every
``endostream ...`` line of the manual (README.md, docs/) against the real parser.

The fast tests hold the README and ``.ci/run`` to the rule (every ``pip`` runs inside the
``.venv`` the command made; CI runs the README's test command verbatim) and parse each
documented command with :func:`endostream.cli.build_parser`, in-process, without running
it: an option renamed or dropped fails here before a reader types it. The real proof
runs the README's first command, character for character, with Debian's own
``/usr/bin/python3`` in a fresh copy of the clone: it installs packages (a minute with a
local package index, longer from PyPI), so it runs only when asked:
``ENDOSTREAM_QUICKSTART=1 python -m pytest -q tests/test_quickstart.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
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


#: The manual: the README and every page under docs/ (notes included), but the CLI
#: reference, which is the parsers' own help text (tests/test_cli_grammar.py keeps it equal
#: to what they print; its wrapped lines are prose, not commands).
MANUAL = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md")
                                      if p != ROOT / "docs" / "cli.md")]
#: Where one shell command ends and the next begins.
SEPARATORS = {"&&", "||", ";", "|"}


def documented_commands(path: Path) -> list[tuple[str, list[str]]]:
    """Every ``endostream ...`` command in the fenced code blocks of ``path``: (the line
    as written, its arguments), with continuation lines joined and comments dropped."""
    text = path.read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            if "endostream" not in line:
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError:  # not shell (a JSON or diagram line naming endostream)
                continue
            command: list[str] = []
            for word in [*words, "&&"]:
                if word not in SEPARATORS:
                    command.append(word)
                    continue
                if command[:1] == ["endostream"]:
                    found.append((line.strip(), command[1:]))
                command = []
    return found


def test_the_manual_has_commands_to_check():
    readme = [argv for _, argv in documented_commands(ROOT / "README.md")]
    assert len(readme) >= 20
    assert readme[0] == ["demo"]  # the quickstart's, after its `&&`s
    assert ["segment", "procedure.mp4", "--report", "report.html", "--csv", "frames.csv"] in readme
    joined = [argv for _, argv in documented_commands(ROOT / "docs" / "dicom.md")]
    assert any("--send" in argv and "--called-aet" in argv for argv in joined)  # `\` lines


@pytest.mark.parametrize("page", MANUAL, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documented_command_parses(page):
    """Each ``endostream ...`` line of a fenced block goes through the real parser; an
    option or command it does not know is a failure naming the line and argparse's words."""
    from endostream.cli import build_parser

    parser = build_parser()
    for line, argv in documented_commands(page):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                args = parser.parse_args(argv)
            except SystemExit as e:
                assert e.code == 0, f"{page.name}: {line}\n{err.getvalue().strip()}"
                continue
        assert getattr(args, "_run", None) is not None, f"{page.name}: no command in: {line}"


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
