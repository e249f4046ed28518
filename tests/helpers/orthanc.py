"""A real Orthanc (Debian's ``orthanc`` package) for the DICOM tests, on 127.0.0.1.

:func:`start_orthanc` writes a configuration with free ports, a temporary storage folder,
no plugins (or Debian's Modality Worklist plugin on a folder of worklist files), no remote
access and a called AE title that Orthanc checks, starts
``/usr/sbin/Orthanc`` directly (no systemd) and waits for its REST API. Orthanc 1.10 has
no option to bind its DICOM port to one address; the port is free and random, and the
process lives only as long as the test.

>>> ORTHANC_AET
'ENDOTEST'
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORTHANC = "/usr/sbin/Orthanc"
ORTHANC_AET = "ENDOTEST"


def orthanc_available() -> bool:
    return shutil.which(ORTHANC) is not None or Path(ORTHANC).is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Orthanc:
    process: subprocess.Popen
    http_port: int
    dicom_port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str) -> Any:
        """The JSON answer of the REST API at ``path``."""
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return r.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


#: Debian's Modality Worklist plugin.
WORKLIST_PLUGIN = "/usr/share/orthanc/plugins/libModalityWorklists.so"


def worklist_plugin_available() -> bool:
    return orthanc_available() and Path(WORKLIST_PLUGIN).is_file()


def start_orthanc(folder: Path, *, timeout_s: float = 60.0, dicom_port: int | None = None,
                  lua: str | None = None, allow_find: bool = True,
                  worklists: Path | None = None,
                  modalities: dict[str, tuple[str, str, int] | dict] | None = None
                  ) -> Orthanc:
    """Orthanc with its storage under ``folder``, answering on free local ports (or on
    ``dicom_port``); ``lua``: a script Orthanc runs (e.g. a ``ReceivedInstanceFilter``);
    ``allow_find``: C-FIND for callers it does not know (Orthanc's default: no);
    ``worklists``: a folder of ``.wl`` files served by the Modality Worklist plugin;
    ``modalities``: the AEs Orthanc knows (name → AE title, host, port, or Orthanc's
    object form with its ``Allow*`` options), e.g. the one it sends Storage Commitment
    reports to."""
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), dicom_port or free_port()
    config = {
        "Name": "endostream-test", "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"), "Plugins": [],
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": ORTHANC_AET,
        "DicomCheckCalledAet": True, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": allow_find,
        "DicomServerEnabled": True, "HttpServerEnabled": True, "ConcurrentJobs": 1,
        "StorageCompression": False,
        # Orthanc's default (Latin1) drops what Latin-1 cannot hold from the names it
        # answers with; a hospital with names in any script runs it in UTF-8.
        "DefaultEncoding": "Utf8",
    }
    if worklists is not None:
        config["Plugins"] = [WORKLIST_PLUGIN]
        config["Worklists"] = {"Enable": True, "Database": str(worklists)}
    if modalities:
        config["DicomModalities"] = {name: v if isinstance(v, dict) else list(v)
                                     for name, v in modalities.items()}
    if lua is not None:
        (folder / "filter.lua").write_text(lua)
        config["LuaScripts"] = [str(folder / "filter.lua")]
    config_path = folder / "orthanc.json"
    config_path.write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "wb")
    process = subprocess.Popen([ORTHANC, str(config_path)], stdout=log, stderr=log,
                               cwd=folder)
    server = Orthanc(process, http_port, dicom_port, folder)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}: "
                               + (folder / "orthanc.log").read_text(errors="replace")[-2000:])
        try:
            server.get("/system")
            return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"Orthanc did not answer within {timeout_s:.0f} s")
