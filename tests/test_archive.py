"""`endostream segment PATH... --out-dir DIR` on a generated archive, local engine.

The archive (``helpers.archive``): eight short synthetic procedures in nested folders, two
of them with the same stem (``a.mp4``, ``a.mkv``), a zero-byte and a random-bytes "video",
and a text file. The CLI runs in-process through ``main(argv)``, except for Ctrl+C, which
goes to a real process.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
import pytest

from endostream.archive import summary as archive_summary
from endostream.archive.inputs import discover, read_list
from endostream.cli import main
from endostream.errors import (
    EXIT_ARCHIVE_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_OUTPUT,
    EXIT_PARTIAL,
    EXIT_USAGE,
    EXIT_VIDEO,
    Interrupted,
)
from endostream.inference.classifier import Classifier
from endostream.output.sections_file import schema as sections_schema
from endostream.pipeline.offline import SegmentOptions, segment_video
from endostream.synth.scenes import SCENE_MEAN_RGB
from helpers.archive import BROKEN, GOOD, archive_model, make_archive
from helpers.clips import encode_format, index_frames, truncated_copy
from helpers.onnx_models import build_color_model


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return make_archive(tmp_path_factory.mktemp("in") / "archive")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return archive_model(tmp_path_factory.mktemp("model") / "color.onnx")


@pytest.fixture(scope="module")
def first_run(archive, model, tmp_path_factory) -> tuple[int, Path]:
    """One archive run shared by the tests that only read its results."""
    out = tmp_path_factory.mktemp("out") / "results"
    rc = main(["segment", str(archive), "--out-dir", str(out), "--models", str(model),
               "--csv", "--quiet"])
    return rc, out


@pytest.fixture
def load_count(monkeypatch) -> list[int]:
    """Counts real model loads (the real loader still runs)."""
    calls = [0]
    real = Classifier.load.__func__

    def counting(cls, *args, **kwargs):
        calls[0] += 1
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(Classifier, "load", classmethod(counting))
    return calls


def summary(out: Path) -> dict:
    doc = json.loads((out / "archive.json").read_text())
    jsonschema.validate(doc, archive_summary.schema())
    return doc


def statuses(out: Path) -> dict[str, str]:
    return {v["name"]: v["status"] for v in summary(out)["videos"]}


def copy_archive(archive: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "archive"
    shutil.copytree(archive, dst)  # copy2 keeps mtimes, so results stay up to date
    return dst


def test_archive_run_writes_every_result_and_the_summary(first_run, archive, model, tmp_path):
    rc, out = first_run
    assert rc == EXIT_ARCHIVE_FAILURES  # the two broken files
    doc = summary(out)
    assert statuses(out) == {**{k: "done" for k in GOOD}, **{k: "failed" for k in BROKEN}}
    assert doc["complete"] is True and doc["engine"] == "local"
    totals = doc["totals"]
    assert (totals["videos"], totals["done"], totals["failed"], totals["failures"]) == \
        (10, 8, 2, 2)
    by_name = {v["name"]: v for v in doc["videos"]}
    assert "is empty" in by_name["2023/broken/empty.mp4"]["error"]
    assert by_name["2024/q/noise.mkv"]["exit_code"] == EXIT_VIDEO
    durations = sum(by_name[k]["duration_s"] for k in GOOD)
    assert totals["hours_of_video"] == pytest.approx(durations / 3600, abs=1e-5)
    assert sum(totals["hours_per_label"].values()) == pytest.approx(durations / 3600, abs=1e-4)
    # Same stem, two outputs; every output is a valid sections file with its CSV beside it.
    for rel in GOOD:
        sections = out / f"{rel}.sections.json"
        s = json.loads(sections.read_text())
        jsonschema.validate(s, sections_schema())
        assert s["complete"] is True and s["source"]["path"] == str(archive / rel)
        assert s["analysis"]["input"]["size_bytes"] == (archive / rel).stat().st_size
        assert sum(b["end_s"] - b["start_s"] for b in s["sections"]) == \
            pytest.approx(by_name[rel]["duration_s"], abs=1e-3)
        rows = (out / f"{rel}.frames.csv").read_text().splitlines()
        assert len(rows) == 1 + s["analysis"]["frames_analysed"]
    assert not (out / "2023/broken/empty.mp4.sections.json").exists()
    with open(out / "archive.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == sorted(GOOD | BROKEN)
    assert {r["status"] for r in rows} == {"done", "failed"}
    assert "seconds_unusable" in rows[0]


def test_archive_sections_equal_a_single_segment_run(first_run, archive, model, tmp_path):
    """The archive writes what `segment VIDEO --out F` writes (the recording's content
    fingerprint included), plus its input fingerprint and its CSV's hash."""
    _, out = first_run
    rel = "2024/p03.mkv"
    single = tmp_path / "single.json"
    assert main(["segment", str(archive / rel), "--models", str(model), "--out", str(single),
                 "--quiet"]) == 0
    one = json.loads(single.read_text())
    many = json.loads((out / f"{rel}.sections.json").read_text())
    assert many["analysis"].pop("input")
    assert many["analysis"].pop("frames_csv_sha256")  # its --csv; the single run wrote none
    assert many == one


def test_rerun_skips_everything_and_loads_no_model(first_run, archive, model, load_count,
                                                   capsys):
    _, out = first_run
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.sections.json")}
    rc = main(["segment", str(archive), "--out-dir", str(out), "--models", str(model), "--csv"])
    assert rc == EXIT_ARCHIVE_FAILURES  # the broken two are still reported
    assert load_count[0] == 0  # no model loaded, so no inference ran
    assert statuses(out) == {**{k: "skipped" for k in GOOD}, **{k: "failed" for k in BROKEN}}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.sections.json")} == before
    doc = summary(out)
    assert doc["totals"]["hours_of_video"] > 0 and doc["totals"]["run"]["videos_analysed"] == 0
    assert "8 up to date" in capsys.readouterr().err


def test_touched_video_is_redone_and_force_redoes_all(archive, model, tmp_path, load_count):
    src = copy_archive(archive, tmp_path)
    out = tmp_path / "results"
    args = ["segment", str(src), "--out-dir", str(out), "--models", str(model), "--quiet"]
    assert main(args) == EXIT_ARCHIVE_FAILURES
    touched = src / "2024/p04.mp4"
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    (src / "2023/broken/empty.mp4").write_bytes(b"still not a video")  # changed: tried again
    assert main(args) == EXIT_ARCHIVE_FAILURES
    got = statuses(out)
    assert got["2024/p04.mp4"] == "done" and got["2023/broken/empty.mp4"] == "failed"
    assert [k for k, v in got.items() if v == "skipped"] == sorted(set(GOOD) - {"2024/p04.mp4"})
    assert load_count[0] == 2
    assert main([*args, "--force"]) == EXIT_ARCHIVE_FAILURES
    assert set(statuses(out).values()) == {"done", "failed"}


def test_changed_settings_or_model_redo_the_video(archive, model, tmp_path):
    src = tmp_path / "one"
    src.mkdir()
    shutil.copy2(archive / "2024/q/p05.mp4", src / "p05.mp4")
    out = tmp_path / "results"
    base = ["segment", str(src), "--out-dir", str(out), "--quiet", "--models"]
    assert main([*base, str(model)]) == 0
    assert main([*base, str(model)]) == 0 and statuses(out) == {"p05.mp4": "skipped"}
    assert main([*base, str(model), "--sample-fps", "2"]) == 0
    assert statuses(out) == {"p05.mp4": "done"}
    same = shutil.copy(model, tmp_path / "same.onnx")  # another path, the same bytes
    assert main([*base, str(same), "--sample-fps", "2"]) == 0
    assert statuses(out) == {"p05.mp4": "skipped"}
    other = build_color_model(tmp_path / "other.onnx", organ_colors=SCENE_MEAN_RGB)
    assert main([*base, str(other), "--sample-fps", "2"]) == 0
    assert statuses(out) == {"p05.mp4": "done"}


def test_a_rate_above_the_videos_is_kept_on_a_rerun(archive, model, tmp_path):
    """The clips are 10 fps: asked for 25, every frame is analysed and sections.json says
    sample_fps null; the rerun must still recognise the same settings and skip it."""
    src = tmp_path / "one"
    src.mkdir()
    shutil.copy2(archive / "2024/q/p05.mp4", src / "p05.mp4")
    out = tmp_path / "results"
    args = ["segment", str(src), "--out-dir", str(out), "--quiet", "--models", str(model),
            "--sample-fps", "25"]
    assert main(args) == 0
    doc = json.loads((out / "p05.mp4.sections.json").read_text())
    assert doc["analysis"]["sample_fps"] is None
    assert main(args) == 0 and statuses(out) == {"p05.mp4": "skipped"}
    assert main([*args[:-1], "5"]) == 0 and statuses(out) == {"p05.mp4": "done"}


def test_a_users_file_at_an_output_is_never_replaced(archive, model, tmp_path):
    src = tmp_path / "one"
    src.mkdir()
    shutil.copy2(archive / "2024/q/p05.mp4", src / "p05.mp4")
    shutil.copy2(archive / "2023/ent/deep/p02.mp4", src / "p02.mp4")
    out = tmp_path / "results"
    out.mkdir()
    mine = out / "p05.mp4.sections.json"
    mine.write_text("my notes\n")
    rc = main(["segment", str(src), "--out-dir", str(out), "--models", str(model), "--quiet"])
    assert rc == EXIT_ARCHIVE_FAILURES
    assert mine.read_text() == "my notes\n"
    got = {v["name"]: v for v in summary(out)["videos"]}
    assert got["p05.mp4"]["status"] == "failed" and "--overwrite" in got["p05.mp4"]["error"]
    assert got["p02.mp4"]["status"] == "done"


def test_a_video_cut_short_is_partial_and_kept_until_it_changes(archive, model, tmp_path,
                                                                 load_count):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy2(archive / "2024/q/p05.mp4", src / "good.mp4")
    whole = encode_format(tmp_path, "faststart", index_frames(50, 160, 120))
    truncated_copy(whole, src / "cut.mp4", 0.5)  # index in front: decodes up to the cut
    out = tmp_path / "results"
    args = ["segment", str(src), "--out-dir", str(out), "--models", str(model), "--quiet"]
    assert main(args) == EXIT_ARCHIVE_FAILURES
    got = {v["name"]: v for v in summary(out)["videos"]}
    assert got["cut.mp4"]["status"] == "partial" and got["cut.mp4"]["exit_code"] == EXIT_PARTIAL
    assert json.loads((out / "cut.mp4.sections.json").read_text())["complete"] is False
    assert summary(out)["totals"]["failures"] == 1
    loads = load_count[0]
    assert main(args) == EXIT_ARCHIVE_FAILURES  # still a failure, but not analysed again
    assert statuses(out) == {"cut.mp4": "partial", "good.mp4": "skipped"}
    assert load_count[0] == loads  # nothing to analyse: no model loaded
    assert summary(out)["totals"]["run"]["videos_analysed"] == 0
    st = (src / "cut.mp4").stat()
    os.utime(src / "cut.mp4", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # it changed
    assert main(args) == EXIT_ARCHIVE_FAILURES
    assert load_count[0] == loads + 1
    assert summary(out)["totals"]["run"]["videos_analysed"] == 1
    assert main([*args, "--force"]) == EXIT_ARCHIVE_FAILURES
    assert summary(out)["totals"]["run"]["videos_analysed"] == 2


def test_one_layout_whatever_the_inputs_and_the_summary_keeps_earlier_videos(
        archive, model, tmp_path, load_count, capsys):
    src = tmp_path / "arch"
    (src / "sub").mkdir(parents=True)
    shutil.copy2(archive / "2024/q/p05.mp4", src / "a.mp4")
    shutil.copy2(archive / "2024/q/p05.mp4", src / "sub/b.mp4")
    out = tmp_path / "out"
    base = ["--out-dir", str(out), "--models", str(model), "--quiet"]
    assert main(["segment", str(src), *base]) == 0
    assert statuses(out) == {"a.mp4": "done", "sub/b.mp4": "done"}
    loads = load_count[0]
    # one video of the archive, named on its own: the same place, up to date, and the
    # summary still lists both
    assert main(["segment", str(src / "sub/b.mp4"), *base]) == 0
    assert not (out / "b.mp4.sections.json").exists()
    assert load_count[0] == loads
    assert statuses(out) == {"a.mp4": "done", "sub/b.mp4": "skipped"}
    assert summary(out)["totals"]["videos"] == 2 and summary(out)["root"] == str(src)
    # a video outside the recorded root, or another --root: refused before any work
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy2(archive / "2024/q/p05.mp4", other / "c.mp4")
    assert main(["segment", str(other / "c.mp4"), *base]) == EXIT_USAGE
    assert main(["segment", str(src / "sub"), "--root", str(src / "sub"), *base]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("endostream: error:") == 2 and str(src) in err
    # an explicit --root lays out a first run the same way
    out2 = tmp_path / "out2"
    assert main(["segment", str(src / "sub/b.mp4"), "--root", str(src), "--out-dir", str(out2),
                 "--models", str(model), "--quiet"]) == 0
    assert (out2 / "sub/b.mp4.sections.json").is_file()


def test_progress_is_sane_from_the_first_line_and_ends_with_a_total(archive, model, tmp_path,
                                                                     capsys):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy2(archive / "2024/p03.mkv", src / "m.mkv")  # Matroska: no frame count
    shutil.copy2(archive / "2024/q/p05.mp4", src / "v.mp4")
    (src / "bad.mp4").write_bytes(b"")
    out = tmp_path / "results"
    assert main(["segment", str(src), "--out-dir", str(out), "--models", str(model)]) \
        == EXIT_ARCHIVE_FAILURES
    err = capsys.readouterr().err
    frame_lines = [line for line in err.splitlines() if " frames/s" in line]
    assert len(frame_lines) >= 2, err
    for line in frame_lines:
        assert "%)" in line and "ETA" in line, line  # the .mkv's total from its duration
        rate = re.search(r"(\S+) frames/s", line).group(1)
        assert rate == "?" or float(rate) < 10_000, line  # never a burst over a microsecond
    last = err.strip().splitlines()[-2:]
    assert re.match(r"archive: 3 videos in 0:\d\d:\d\d: \d+\.\d\d h of video analysed "
                    r"\(\d+\.\d video-h/wall-h\), 0 up to date, 1 failed or partial", last[0]), last
    assert "1 of 3 videos failed or is partial" in last[1]


def test_a_stop_event_ends_a_video_as_incomplete(archive, model):
    """What the Ray workers use after Ctrl+C: segment_video's stop keeps what was analysed
    and says the result is not complete."""
    stop = threading.Event()

    def progress(decoded: int, analysed: int, total: int | None) -> None:
        if analysed == 5:
            stop.set()

    with Classifier.load(model, device="cpu") as clf:
        result = segment_video(archive / "2024/p03.mkv", clf, SegmentOptions(), stop=stop,
                               on_progress=progress)
        whole = segment_video(archive / "2024/p03.mkv", clf, SegmentOptions())
    assert result.complete is False and isinstance(result.error, Interrupted)
    assert 5 <= result.frames_analysed < whole.frames_analysed and whole.complete


def test_inputs_from_globs_lists_and_files(archive, model, tmp_path):
    out = tmp_path / "results"
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two videos\n{archive / '2024/p03.mkv'}\n\n"
                       f"{os.path.relpath(archive / '2023/ent/a.mp4', tmp_path)}\n")
    jobs = discover([*read_list(listing), archive / "2023/ent/a.mkv",
                     str(archive / "2024/q/*.mp4")], out_dir=out)
    assert [j.name for j in jobs] == ["2023/ent/a.mkv", "2023/ent/a.mp4", "2024/p03.mkv",
                                      "2024/q/p05.mp4"]
    assert len({j.output for j in jobs}) == 4
    # --from-list alone is enough on the command line.
    assert main(["segment", "--from-list", str(listing), "--out-dir", str(out), "--models",
                 str(model), "--quiet"]) == 0
    assert statuses(out) == {"2023/ent/a.mp4": "done", "2024/p03.mkv": "done"}
    # The same file twice (a folder and a file inside it) is one job.
    assert len(discover([archive / "2024/q", archive / "2024/q/p05.mp4"], out_dir=out)) == 3


def test_an_out_dir_inside_the_archive_is_not_searched(archive, tmp_path):
    src = tmp_path / "a"
    src.mkdir()
    shutil.copy2(archive / "2024/q/p05.mp4", src / "p05.mp4")
    (src / "results" / "old").mkdir(parents=True)
    (src / "results" / "old" / "copy.mp4").write_bytes(b"")
    assert [j.name for j in discover([src], out_dir=src / "results")] == ["p05.mp4"]


@pytest.mark.parametrize("case", ["no_out_dir", "out_on_file", "out_replaces_input",
                                  "missing", "foreign_summary", "ray_address_local",
                                  "bad_model", "empty_glob"])
def test_bad_archive_arguments(case, archive, model, tmp_path, capsys):
    out = tmp_path / "results"
    extra: list[str] = ["--out-dir", str(out)]
    paths = [str(archive)]
    want = EXIT_USAGE
    if case == "no_out_dir":
        extra = []
    elif case == "out_on_file":
        (tmp_path / "f").write_text("x")
        extra = ["--out-dir", str(tmp_path / "f" / "sub")]
        want = EXIT_OUTPUT
    elif case == "out_replaces_input":
        # v.mp4's result would be v.mp4.sections.json: here that is an input too.
        for name in ("v.mp4", "v.mp4.sections.json"):
            shutil.copy2(archive / "2024/q/p05.mp4", tmp_path / name)
        paths = [str(tmp_path / "v.mp4"), str(tmp_path / "v.mp4.sections.json")]
        extra = ["--out-dir", str(tmp_path)]
    elif case == "missing":
        paths.append(str(tmp_path / "gone.mp4"))
        want = EXIT_VIDEO
    elif case == "foreign_summary":
        out.mkdir()
        (out / "archive.json").write_text("{}")
        want = EXIT_OUTPUT
    elif case == "ray_address_local":
        extra += ["--ray-address", "auto"]
    elif case == "bad_model":
        model = tmp_path / "bad.onnx"
        model.write_bytes(b"not onnx")
        want = EXIT_MODEL
    elif case == "empty_glob":
        paths = [str(archive / "*.nothing")]
    rc = main(["segment", *paths, *extra, "--models", str(model), "--quiet"])
    assert rc == want
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("endostream: error: ") and "Traceback" not in "\n".join(err)


def test_ray_engine_without_ray_says_how_to_install_it(archive, model, tmp_path, monkeypatch,
                                                       capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees
    monkeypatch.delitem(sys.modules, "endostream.archive.ray_engine", raising=False)
    rc = main(["segment", str(archive / "2024/q"), "--out-dir", str(tmp_path / "r"),
               "--models", str(model), "--engine", "ray", "--quiet"])
    assert rc == EXIT_USAGE
    assert "pip install 'endostream[cluster]'" in capsys.readouterr().err


def test_one_video_with_out_is_unchanged(archive, model, tmp_path, capsys):
    """`segment VIDEO --out F` stays the single-video command; archive options are refused."""
    out = tmp_path / "s.json"
    assert main(["segment", str(archive / "2024/q/p05.mp4"), "--models", str(model), "--out",
                 str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["complete"] is True
    assert not (tmp_path / "archive.json").exists()
    assert main(["segment", str(archive), "--out", str(out)]) == EXIT_VIDEO  # a folder
    assert main(["segment", str(archive / "2024/q/p05.mp4"), "--out", str(out),
                 "--engine", "ray"]) == EXIT_USAGE
    assert main(["segment", "--out", str(out)]) == EXIT_USAGE  # no video at all


@pytest.mark.slow
def test_sigint_keeps_finished_videos_and_the_next_run_does_the_rest(model, tmp_path):
    """A real process gets SIGINT while analysing its second video."""
    src = make_archive(tmp_path / "archive", fps=25.0, broken=False,
                       good={f"v{i}.mp4": "nose:4,ear:4" for i in range(4)})
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "endostream", "segment", str(src), "--out-dir", str(out),
         "--models", str(model), "--sample-fps", "all", "--batch", "2", "--threads", "1"],
        stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        seen_first = False
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "segment ended early"
            seen_first |= line.startswith("[1/4] done")
            if seen_first and "analysed" in line and not line.startswith("["):
                break  # the second video's first progress line: it is in flight
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err
    assert statuses(out) == {"v0.mp4": "done", "v1.mp4": "interrupted", "v2.mp4": "pending",
                             "v3.mp4": "pending"}
    assert summary(out)["complete"] is False
    partial = json.loads((out / "v1.mp4.sections.json").read_text())
    assert partial["complete"] is False and 0 < partial["analysis"]["frames_analysed"] < 200
    done_before = (out / "v0.mp4.sections.json").stat().st_mtime_ns
    assert main(["segment", str(src), "--out-dir", str(out), "--models", str(model),
                 "--sample-fps", "all", "--quiet"]) == 0
    assert statuses(out) == {"v0.mp4": "skipped", "v1.mp4": "done", "v2.mp4": "done",
                             "v3.mp4": "done"}
    assert (out / "v0.mp4.sections.json").stat().st_mtime_ns == done_before
    assert summary(out)["complete"] is True
