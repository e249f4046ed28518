"""The layering of the package, checked on the source: data flows one way.

docs/architecture.md ("Layout") says what each folder may import. This test reads every
module with :mod:`ast` (imports inside functions included) and fails with file, line and
rule when an import crosses a boundary, when imports form a cycle (imports inside
functions count: a cycle hidden in a function is still two modules that need each other),
when one command module imports another (commands share helpers through
``commands.common``), or when a package folder does not ship in the wheel.

Runtime stages, bottom to top: the shared core (``errors``, ``frames``, ``contract``,
``crop``, ``fov``, ``bundled``) → ``sources`` → ``inference`` → ``segmentation`` →
``output`` → ``pipeline`` → ``evaluation`` / ``synth`` / ``archive`` → ``procedure`` →
``review`` / ``corrections`` / ``dicom`` (side by side) → ``commands`` → ``cli``.
``export`` (torch) and ``gui`` (Qt) sit beside the top and use the runtime, never
``commands`` or ``cli``; the runtime never imports torch, Qt or ``export``, except that
``commands.live`` starts the window from inside a function; only ``archive`` imports Ray;
only ``dicom`` imports pydicom, highdicom and pynetdicom.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Folder → installed package prefix (setup.cfg's package_dir).
FOLDERS = {"endostream": "endostream", "export": "endostream.export", "gui": "endostream.gui"}

CORE = {"endostream", "endostream.errors", "endostream.frames", "endostream.contract",
        "endostream.anatomy", "endostream.crop", "endostream.fov", "endostream.bundled"}
#: Layer → the endostream layers it may import (its own always allowed).
ALLOWED = {
    "core": {"core"},
    "sources": {"core"},
    "inference": {"core", "sources"},
    "segmentation": {"core"},
    "output": {"core", "segmentation"},
    "pipeline": {"core", "sources", "inference", "segmentation", "output"},
    "evaluation": {"core", "sources", "inference", "segmentation", "output", "pipeline"},
    "synth": {"core", "segmentation", "output"},
    "archive": {"core", "sources", "inference", "segmentation", "output", "pipeline"},
    # A recorded procedure (sections, recording, per-frame table): the floor that review,
    # corrections and dicom stand on side by side; none of the three imports another.
    "procedure": {"core", "sources", "segmentation", "output"},
    "review": {"core", "sources", "segmentation", "output", "evaluation", "procedure"},
    "corrections": {"core", "sources", "segmentation", "output", "evaluation", "procedure"},
    "dicom": {"core", "sources", "segmentation", "output", "procedure"},
    "commands": {"core", "sources", "inference", "segmentation", "output", "pipeline",
                 "evaluation", "synth", "archive", "procedure", "review", "corrections",
                 "dicom"},
    "cli": {"core", "commands"},
    "export": {"core", "sources", "inference", "segmentation", "output", "evaluation",
               "synth"},
    "gui": {"core", "sources", "inference", "segmentation", "output", "pipeline", "synth"},
}
#: Third-party packages only export (torch), gui (Qt) and archive (Ray) may use.
HEAVY = {"torch": {"export"}, "torchvision": {"export"}, "onnx": {"export"},
         "PyQt5": {"gui"}, "ray": {"archive"},
         # Plotting and templates, behind the review extra: only where pictures are made.
         "matplotlib": {"review", "evaluation"}, "jinja2": {"review", "corrections"},
         # DICOM, behind the dicom extra (commands.dicom imports the layer in its run).
         "pydicom": {"dicom"}, "highdicom": {"dicom"}, "pynetdicom": {"dicom"}}
#: Imports that are allowed although they cross a rule, each with its reason; only inside
#: a function (never at module level).
LAZY_EXCEPTIONS = {("commands", "gui"): "endostream live opens the window it was asked for"}


def layer_of(module: str) -> str:
    if module in CORE:
        return "core"
    parts = module.split(".")
    if module in ("endostream.cli", "endostream.__main__"):
        return "cli"
    return parts[1]


def modules() -> dict[str, Path]:
    found = {}
    for folder, prefix in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            found[".".join([prefix, *parts])] = path
    return found


def imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(n) for n in tree.body} | {
        id(c) for n in tree.body if isinstance(n, ast.If) for c in n.body}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(pkg + ([node.module] if node.module else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            out.append((name, node.lineno, id(node) in top_level))
    return out


def violations() -> list[str]:
    mods = modules()
    found = []
    for module, path in mods.items():
        layer = layer_of(module)
        where = path.relative_to(ROOT)
        for name, line, top in imports(module, path):
            root = name.split(".")[0]
            if root in HEAVY and layer not in HEAVY[root]:
                found.append(f"{where}:{line}: {layer} imports {root}")
            if root != "endostream" or name not in mods:
                continue
            target = layer_of(name)
            if target == layer or target in ALLOWED[layer]:
                continue
            if (layer, target) in LAZY_EXCEPTIONS and not top:
                continue
            found.append(f"{where}:{line}: {layer} imports {name} ({target})")
    return sorted(set(found))


def cycles() -> list[list[str]]:
    """Cycles among imports, at module level or inside functions (a package's
    ``__init__`` counts as importing what it names)."""
    mods = modules()
    graph = {m: sorted({n for n, _, _ in imports(m, p) if n in mods and n != m})
             for m, p in mods.items()}
    found, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])
    # A package importing its own submodule is not a cycle when the submodule does not
    # import the package back (only then would the graph above show it).
    return found


def command_modules() -> set[str]:
    """The modules ``endostream.cli`` runs as commands (read from its table, not
    imported)."""
    tree = ast.parse((ROOT / "endostream" / "cli.py").read_text(encoding="utf-8"))
    table = next(n for n in ast.walk(tree) if isinstance(n, ast.AnnAssign)
                 and getattr(n.target, "id", "") == "COMMANDS")
    return {v.elts[0].value for v in table.value.values}


def command_crossings() -> list[str]:
    """Imports of one command module by another, anywhere in the file."""
    commands, mods, found = command_modules(), modules(), []
    for module in commands & set(mods):
        for name, line, _ in imports(module, mods[module]):
            if name in commands and name != module:
                found.append(f"{mods[module].relative_to(ROOT)}:{line}: command {module} "
                             f"imports command {name}")
    return sorted(found)


def test_no_import_crosses_a_layer():
    assert violations() == []


def test_commands_share_helpers_through_a_module_that_is_not_a_command():
    assert command_crossings() == []


def test_imports_have_no_cycles():
    assert cycles() == []


def test_the_checks_catch_a_crossing(tmp_path, monkeypatch):
    """The rules are live: a planted upward import and a planted cycle are both found."""
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "endostream" / "sources").mkdir()
    (tmp_path / "endostream" / "sources" / "__init__.py").write_text("")
    (tmp_path / "endostream" / "sources" / "bad.py").write_text(
        "import torch\nfrom endostream.commands import segment\n")
    (tmp_path / "endostream" / "commands").mkdir()
    (tmp_path / "endostream" / "commands" / "__init__.py").write_text("")
    (tmp_path / "endostream" / "commands" / "segment.py").write_text(
        "from endostream.commands import other\n")
    (tmp_path / "endostream" / "commands" / "other.py").write_text(
        "from endostream.commands import segment\n")
    (tmp_path / "gui" / "app.py").write_text("from endostream.commands import segment\n")
    # A cycle made only of imports inside functions is a cycle too.
    (tmp_path / "export" / "a.py").write_text(
        "def f():\n    from endostream.export import b\n")
    (tmp_path / "export" / "b.py").write_text(
        "def g():\n    import endostream.export.a\n")
    (tmp_path / "endostream" / "cli.py").write_text(
        'COMMANDS: dict = {"segment": ("endostream.commands.segment", ""),\n'
        '                  "other": ("endostream.commands.other", "")}\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = violations()
    assert "endostream/sources/bad.py:1: sources imports torch" in found
    assert any("sources imports endostream.commands" in f for f in found)
    assert any(f.startswith("gui/app.py:1: gui imports endostream.commands") for f in found)
    assert any("endostream.commands.other" in c and "endostream.commands.segment" in c
               for c in cycles())
    assert any("endostream.export.a" in c and "endostream.export.b" in c for c in cycles())
    assert any("command endostream.commands.segment imports command "
               "endostream.commands.other" in f for f in command_crossings())


@pytest.mark.slow
def test_every_package_folder_ships_in_the_wheel(tmp_path):
    """setup.cfg lists the packages by hand (the folders are mapped): build the wheel and
    check that every folder with an ``__init__.py`` is in it, with the data files."""
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                          "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    wheel = next(tmp_path.glob("endostream-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {m.replace(".", "/") + "/__init__.py" for m, p in modules().items()
                if p.name == "__init__.py"}
    assert expected - names == set()
    assert "endostream/schema/sections.schema.json" in names
    assert "endostream/schema/archive.schema.json" in names
    assert "endostream/data/endostream-demo.onnx" in names
    assert "endostream/review/templates/report.html.j2" in names
