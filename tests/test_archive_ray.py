"""The archive on a real local Ray cluster: the same results as the local engine, resume,
and a worker process killed mid-video that is restarted with nothing lost.

One Ray cluster (``ray.init(num_cpus=2)``) serves the whole module; the engine joins the
session that is already running instead of starting its own. Skipped where Ray (the
``cluster`` extra) is not installed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest

ray = pytest.importorskip("ray")

from endostream.archive import summary as archive_summary  # noqa: E402
from endostream.archive.inputs import discover  # noqa: E402
from endostream.archive.local import ModelSpec  # noqa: E402
from endostream.archive.ray_engine import RayEngine  # noqa: E402
from endostream.archive.run import ArchiveConfig, run_archive  # noqa: E402
from endostream.cli import main  # noqa: E402
from endostream.errors import EXIT_ARCHIVE_FAILURES, EXIT_INTERRUPTED  # noqa: E402
from endostream.pipeline.offline import SegmentOptions  # noqa: E402
from helpers.archive import BROKEN, GOOD, archive_model, make_archive  # noqa: E402

pytestmark = pytest.mark.slow

#: Seconds the killer thread waits for a worker to be part way through a video.
KILL_WAIT_S = 60.0


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return make_archive(tmp_path_factory.mktemp("in") / "archive")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return archive_model(tmp_path_factory.mktemp("model") / "color.onnx")


def summary(out: Path) -> dict:
    doc = json.loads((out / "archive.json").read_text())
    jsonschema.validate(doc, archive_summary.schema())
    return doc


def results(out: Path) -> dict[str, str]:
    """Every sections file and CSV under ``out``, by relative path."""
    return {p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*"))
            if p.name.endswith((".sections.json", ".frames.csv"))}


def test_ray_writes_what_local_writes_and_resumes(archive, model, tmp_path, capsys):
    args = ["segment", str(archive), "--models", str(model), "--csv", "--quiet"]
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert main([*args, "--out-dir", str(local)]) == EXIT_ARCHIVE_FAILURES
    capsys.readouterr()
    assert main([*args[:-1], "--out-dir", str(on_ray), "--engine", "ray"]) == \
        EXIT_ARCHIVE_FAILURES
    started = capsys.readouterr().err.split("\n[1/")[0]
    # the cluster's and workers' start (seconds) is said before the first video finishes
    assert re.search(r"ray: \d+ workers? ready, 1 CPU each, after \d+\.\d s", started), started
    assert results(on_ray) == results(local)
    assert len(results(on_ray)) == 2 * len(GOOD)
    a, b = summary(local), summary(on_ray)
    assert b["engine"] == "ray"
    fields = ("name", "output", "status", "error", "duration_s", "frames_analysed", "sections",
              "seconds_per_label", "unusable_share", "exit_code")
    assert [{k: v[k] for k in fields} for v in b["videos"]] == \
        [{k: v[k] for k in fields} for v in a["videos"]]
    assert {k: v for k, v in b["totals"].items() if k != "run"} == \
        {k: v for k, v in a["totals"].items() if k != "run"}
    assert all(v["worker"].startswith("ray:") for v in b["videos"])
    assert {v["name"] for v in b["videos"] if v["status"] == "failed"} == set(BROKEN)
    capsys.readouterr()
    # A rerun on Ray skips everything and starts no worker.
    assert main([*args[:-1], "--out-dir", str(on_ray), "--engine", "ray"]) == \
        EXIT_ARCHIVE_FAILURES
    assert {v["status"] for v in summary(on_ray)["videos"]} == {"skipped", "failed"}
    assert "0 to analyse" in capsys.readouterr().err


def test_a_worker_killed_mid_video_is_restarted_and_nothing_is_lost(model, tmp_path):
    src = make_archive(tmp_path / "archive", fps=25.0, broken=False,
                       good={f"v{i}.mp4": "nose:6,ear:6" for i in range(3)})
    out = tmp_path / "results"
    options = SegmentOptions(sample_fps=None, batch_size=2)
    config = ArchiveConfig(out, ModelSpec((model,), device="cpu", threads=1), options,
                           quiet=True, engine="ray")
    engine = RayEngine(config.model, options, workers=1)
    jobs = discover([src], out_dir=out)
    engine.start(len(jobs))
    killed: dict = {}

    def kill_mid_video() -> None:
        deadline = time.monotonic() + KILL_WAIT_S
        while time.monotonic() < deadline:
            state = ray.get(engine.actors[0].status.remote())
            if state["video"] and state["analysed"] > 0:
                os.kill(state["pid"], signal.SIGKILL)
                killed.update(state)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_mid_video, name="killer")
    killer.start()
    try:
        rc = run_archive(jobs, config, engine_factory=lambda c: engine)
    finally:
        killer.join()
    assert killed, "no worker was caught part way through a video"
    assert rc == 0
    doc = summary(out)
    assert {v["name"]: v["status"] for v in doc["videos"]} == {f"v{i}.mp4": "done"
                                                               for i in range(3)}
    victim = next(v for v in doc["videos"] if v["name"] == killed["video"])
    assert victim["worker"].endswith("(restarted)")
    assert f":{killed['pid']}" not in victim["worker"]
    # The retried video is whole and equal to what the local engine makes of it.
    local = tmp_path / "local"
    assert main(["segment", str(src), "--out-dir", str(local), "--models", str(model),
                 "--sample-fps", "all", "--quiet"]) == 0
    assert results(out) == results(local)


def test_sigint_on_ray_keeps_finished_videos_and_the_one_in_flight(model, tmp_path):
    """A real driver process with its own local cluster (two 1-CPU workers) gets SIGINT
    once the first video is done; the rerun does only the rest."""
    src = make_archive(tmp_path / "archive", fps=25.0, broken=False,
                       good={f"v{i}.mp4": "nose:4,ear:4" for i in range(4)})
    out = tmp_path / "results"
    args = ["segment", str(src), "--out-dir", str(out), "--models", str(model),
            "--sample-fps", "all", "--batch", "2", "--threads", "1", "--engine", "ray"]
    proc = subprocess.Popen([sys.executable, "-m", "endostream", *args],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        line = ""
        while not line.startswith("[1/4]") and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "segment ended early"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err
    before = {v["name"]: v["status"] for v in summary(out)["videos"]}
    assert "done" in before.values() and set(before.values()) - {"done"}
    assert set(before.values()) <= {"done", "interrupted", "pending"}
    for name, status in before.items():
        path = out / f"{name}.sections.json"
        if status == "pending":
            assert not path.exists()
        else:
            assert json.loads(path.read_text())["complete"] is (status == "done")
    assert main([*args, "--quiet"]) == 0
    after = {v["name"]: v["status"] for v in summary(out)["videos"]}
    assert after == {k: "skipped" if v == "done" else "done" for k, v in before.items()}


def test_archive_benchmark_reports_every_ratio(model, tmp_path, monkeypatch):
    """``python -m benchmarks.archive`` end to end on two tiny videos (no timings checked)."""
    from benchmarks import archive as bench
    from benchmarks import inputs

    monkeypatch.setattr(inputs, "CACHE_DIR", tmp_path / "cache")
    out = tmp_path / "bench.json"
    assert bench.main(["--videos", "2", "--seconds", "6", "--models", str(model),
                       "--cpus-per-worker", "1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == bench.SCHEMA and doc["same_results"] is True
    assert doc["ray"]["workers"] == 2 and len(doc["ray"]["round_trips"]) == 2
    assert all(isinstance(v, float) and v > 0 for v in doc["ratios"].values()), doc["ratios"]
    # Hours of recording per CPU-hour, before (dense) and after (coarse to fine).
    assert doc["local"]["video_h_per_cpu_h"] > 0 and doc["local_dense"]["video_h_per_cpu_h"] > 0
