"""Suite-wide fixtures: leaked-thread check, real-footage location, headless Qt.

Every test fails if it leaves a thread running that it started (the pipeline promises
that every thread stops on its Event and is joined). Threads get a short grace period to
finish, synchronised by ``join`` rather than a sleep.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

#: Seconds a thread started by a test may take to finish after the test returns.
THREAD_GRACE_S = 2.0


def _shared_data_dir() -> Path:
    env = os.environ.get("ENDOSTREAM_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_configure(config) -> None:
    """Tests that send SIGINT to a real endostream process need it to act on SIGINT. A
    shell that starts a job in the background ignores SIGINT for it, every child inherits
    that, and Python then never raises KeyboardInterrupt: the process would run on (or a
    training test wait for 1000 epochs). Handling SIGINT here resets the children to the
    default, however the suite was launched."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real footage); skips the test where it is absent."""
    path = _shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real footage not found at {path} (set ENDOSTREAM_SHARED_DATA)")
    return path


@pytest.fixture(autouse=True)
def no_leaked_threads():
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    for t in leaked:
        t.join(THREAD_GRACE_S / max(len(leaked), 1))
    still = [t.name for t in leaked if t.is_alive()
             # Qt and onnxruntime keep internal pools that are not ours to stop.
             and not t.name.startswith(("QThread", "Dummy-"))]
    assert not still, f"test leaked running threads: {still}"
