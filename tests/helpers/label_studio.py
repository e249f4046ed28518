"""A real Label Studio for the tests, on 127.0.0.1, as the README tells users to start it.

Found as ``$ENDOSTREAM_LABEL_STUDIO`` or ``label-studio`` on PATH (installed in a venv of
its own: its dependencies clash with ours). :func:`running_label_studio` starts it on a
free port with a temporary data folder, a user whose legacy API token is :data:`TOKEN`
and local-files serving from ``documents`` (its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT;
Label Studio 1.23 serves only subfolders of it), waits for ``/health`` and stops the
server and its workers on the way out.

>>> USER
'reviewer@example.com'
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Seconds to wait for Label Studio to answer /health (about 45 s on an idle machine;
#: database migrations take longer on a loaded one).
LS_START_S = 600
USER, PASSWORD, TOKEN = "reviewer@example.com", "endostream-test", "endostream0test0token"


def label_studio_executable() -> str | None:
    found = os.environ.get("ENDOSTREAM_LABEL_STUDIO") or shutil.which("label-studio")
    return found if found and Path(found).is_file() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(base: str, method: str, path: str, body: Any = None, *, token: str = TOKEN,
         timeout: float = 60) -> Any:
    """The JSON answer of Label Studio's API to ``method path`` (``body`` as JSON)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={
        "Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        text = r.read().decode()
    return json.loads(text) if text else None


@dataclass
class Server:
    base: str
    documents: Path  #: LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT
    log: Path


@contextmanager
def running_label_studio(exe: str, folder: Path) -> Iterator[Server]:
    """Label Studio serving local files below ``folder/documents``; RuntimeError (with
    the log's place) when it exits or does not answer in :data:`LS_START_S`."""
    documents = folder / "documents"
    documents.mkdir(parents=True)
    port = free_port()
    env = {**os.environ, "LATEST_VERSION_CHECK": "false",
           "LABEL_STUDIO_LATEST_VERSION_CHECK": "false", "PYTHONWARNINGS": "ignore",
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(documents)}
    log_path = folder / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [exe, "start", "--no-browser", "--data-dir", str(folder / "data"),
         "--internal-host", "127.0.0.1", "--port", str(port), "--username", USER,
         "--password", PASSWORD, "--user-token", TOKEN, "--enable-legacy-api-token"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        cwd=folder, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + LS_START_S
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited ({proc.returncode}); see {log_path}")
            try:
                if http(base, "GET", "/health", timeout=5).get("status") == "UP":
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Label Studio did not answer in {LS_START_S} s; see "
                                   f"{log_path}")
            time.sleep(2)
        yield Server(base, documents, log_path)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its workers
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        log.close()
