"""Security basics, checked on the source itself: nothing listens, nothing runs a shell.

A tool that runs next to a patient and over an archive of recordings must not open a
network port (the exceptions: ``endostream dicom --send``/``--worklist`` talk to the
archive the user names, from the modules of ``endostream/dicom/net/``, as a client, and
listen only with ``--commit-port``, for the archive's commitment report; ``labelstudio
push`` / ``pull`` talk to the Label Studio the user names, from one module, as a client
only; see NETWORK_ALLOWED), must not hand
user paths to a shell, and must not unpickle what a checkpoint file says (the runtime
test of that is in test_export.py: a pickled payload is refused and never run). These
tests read every module of the product with :mod:`ast`, so a future change that adds
such a call fails here with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Every directory whose modules ship or run on a user's machine.
PRODUCT_DIRS = ("endostream", "export", "gui", "benchmarks")

#: Modules that open or serve network connections; none belongs in this product.
NETWORK_MODULES = {"socket", "socketserver", "http", "xmlrpc", "asyncio", "ssl", "ftplib",
                   "smtplib", "telnetlib", "urllib", "requests", "aiohttp", "QtNetwork",
                   "pynetdicom"}
#: The narrow exceptions, module by module, each with its reason. A PACS receives images
#: (and a RIS gives its worklist) only over DICOM's network protocol, so that needs
#: pynetdicom; it lives in these files, imported only when ``--send`` or ``--worklist`` is
#: given. They act as a client (SCU), except that Storage Commitment (commit.py) listens,
#: with ``--commit-port`` only and while it waits, for the report the archive sends back.
#: Any other networking import there still fails.
#: Label Studio is driven through its HTTP API (``labelstudio push`` / ``pull``): one
#: client module, imported only by those two actions, talks to the --url the user gave
#: with urllib (no proxy, no redirect to another server, a timeout on every call); it
#: listens on nothing. socket, http and the rest stay refused there too.
NETWORK_ALLOWED = {**{f"endostream/dicom/net/{name}.py": {"pynetdicom"}
                      for name in ("association", "store", "commit", "worklist")},
                   "endostream/corrections/labelstudio_api.py": {"urllib"}}
#: Calls that run a command line through a shell.
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
               ("subprocess", "getstatusoutput")}


def product_modules(root: Path = ROOT) -> list[Path]:
    return sorted(p for d in PRODUCT_DIRS for p in (root / d).rglob("*.py"))


def parsed(root: Path = ROOT) -> list[tuple[Path, ast.Module]]:
    return [(p.relative_to(root), ast.parse(p.read_text(encoding="utf-8"), filename=str(p)))
            for p in product_modules(root)]


def network_imports(root: Path = ROOT) -> list[str]:
    """``file:line imports module`` for every import of a networking module."""
    found = []
    for path, tree in parsed(root):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            parts = {part for name in names for part in name.split(".")}
            allowed = NETWORK_ALLOWED.get(path.as_posix(), set())
            found += [f"{path}:{node.lineno} imports {m}"
                      for m in sorted((parts & NETWORK_MODULES) - allowed)]
    return found


def shell_calls(root: Path = ROOT) -> list[str]:
    """``file:line ...`` for every call that would start a shell."""
    found = []
    for path, tree in parsed(root):
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and \
                    (f.value.id, f.attr) in SHELL_CALLS:
                found.append(f"{path}:{node.lineno} calls {f.value.id}.{f.attr}")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                              and kw.value.value is False):
                    found.append(f"{path}:{node.lineno} passes shell=")
    return found


def test_the_scan_sees_the_product():
    names = {p.relative_to(ROOT).as_posix() for p in product_modules()}
    assert {"endostream/cli.py", "export/checkpoint.py", "gui/window.py",
            "benchmarks/naive.py"} <= names


def test_no_module_imports_networking():
    assert network_imports() == []


def test_only_the_dicom_sender_imports_pynetdicom(tmp_path):
    """The exception is one file wide: pynetdicom elsewhere, or socket in that file, fails."""
    send = ROOT / "endostream" / "dicom" / "net" / "store.py"
    assert "pynetdicom" in send.read_text(encoding="utf-8")
    for rel, text in (("endostream/dicom/net/store.py", "import pynetdicom\nimport socket\n"),
                      ("endostream/dicom/write.py", "from pynetdicom import AE\n")):
        bad = tmp_path / rel
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_text(text)
    assert network_imports(tmp_path) == ["endostream/dicom/net/store.py:2 imports socket",
                                         "endostream/dicom/write.py:1 imports pynetdicom"]


def test_only_the_label_studio_client_imports_urllib(tmp_path):
    """That exception is one file and one module wide too."""
    client = ROOT / "endostream" / "corrections" / "labelstudio_api.py"
    assert "import urllib.request" in client.read_text(encoding="utf-8")
    for rel, text in (("endostream/corrections/labelstudio_api.py",
                       "import urllib.request\nfrom http import client\n"),
                      ("endostream/corrections/labelstudio.py", "import urllib.request\n")):
        bad = tmp_path / rel
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_text(text)
    assert network_imports(tmp_path) == [
        "endostream/corrections/labelstudio.py:1 imports urllib",
        "endostream/corrections/labelstudio_api.py:2 imports http"]


def test_no_shell_is_ever_started():
    assert shell_calls() == []


def test_every_torch_load_is_weights_only():
    calls = []
    for path, tree in parsed():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "load" and isinstance(node.func.value, ast.Name) and \
                    node.func.value.id == "torch":
                ok = any(kw.arg == "weights_only" and isinstance(kw.value, ast.Constant)
                         and kw.value.value is True for kw in node.keywords)
                calls.append((f"{path}:{node.lineno}", ok))
    assert calls, "no torch.load found: the scan no longer sees export/"
    assert [c for c, ok in calls if not ok] == []


@pytest.mark.parametrize("snippet, rule", [
    ("import socket", "bad.py:1 imports socket"),
    ("from http.server import HTTPServer", "bad.py:1 imports http"),
    ("import subprocess\nsubprocess.run(cmd, shell=True)", "bad.py:2 passes shell="),
    ("import os\nos.system('ls ' + path)", "bad.py:2 calls os.system"),
    ("from PyQt5 import QtNetwork", "bad.py:1 imports QtNetwork"),
])
def test_the_scan_catches_what_it_looks_for(tmp_path, snippet, rule):
    bad = tmp_path / "endostream" / "bad.py"
    bad.parent.mkdir()
    bad.write_text(snippet + "\n")
    found = network_imports(tmp_path) + shell_calls(tmp_path)
    assert found == [f"endostream/{rule}"]
