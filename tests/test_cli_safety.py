"""No command destroys a user's file, outputs are checked before the work, and the CLI's
rough edges (issue 12), all through the real CLI: ``main(argv)`` in-process, or a real
process where stdout, FFmpeg's logging or ``-v`` parsing of the console need one.

Each refusal is checked for its exit code, its one line on stderr, and the input left
byte-identical; "before the work" is proven by spies on the real decoder and model
loader (they call through, and record that they were called).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from endostream.cli import COMMANDS, build_parser, main
from endostream.commands.grammar import settle
from endostream.errors import EXIT_OUTPUT, EXIT_USAGE, EXIT_VIDEO
from endostream.inference.classifier import Classifier
from endostream.output.sections_file import schema
from endostream.sources.file import FileSource
from helpers.clips import encode_clip, index_frame
from helpers.onnx_models import build_color_model

#: Frames of the test clip (25 fps): enough for a run, cheap to decode.
CLIP_FRAMES = 10
#: A refused run must end in well under this (no model load, no decoding).
FAST_S = 1.0


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_color_model(tmp_path_factory.mktemp("model") / "color.onnx")


@pytest.fixture(scope="module")
def clip_source(tmp_path_factory) -> Path:
    return encode_clip(tmp_path_factory.mktemp("clip") / "clip.mp4",
                       lambda i: index_frame(i, 160, 120), n_frames=CLIP_FRAMES, fps=25)


@pytest.fixture
def video(clip_source, tmp_path) -> Path:
    """A fresh copy per test, so a test that destroyed it could not hide it from the next."""
    path = tmp_path / "v.mp4"
    path.write_bytes(clip_source.read_bytes())
    return path


@pytest.fixture
def spies(monkeypatch) -> dict[str, int]:
    """Count real decoder opens and model loads (each still does its real work)."""
    calls = {"decode": 0, "model": 0}
    real_open, real_load = FileSource._open, Classifier.load.__func__

    def spy_open(self):
        calls["decode"] += 1
        return real_open(self)

    def spy_load(cls, *a, **kw):
        calls["model"] += 1
        return real_load(cls, *a, **kw)

    monkeypatch.setattr(FileSource, "_open", spy_open)
    monkeypatch.setattr(Classifier, "load", classmethod(spy_load))
    return calls


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line]
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("endostream: error: "), err
    return lines[0]


def segment(video: Path, model: Path, *argv: str) -> int:
    return main(["segment", str(video), "--models", str(model), "--device", "cpu",
                 "--threads", "1", *argv])


# --- 1. no output may replace an input ---------------------------------------------------


def _alias(video: Path, how: str) -> Path:
    d = video.parent
    if how == "same path":
        return video
    if how == "symlink":
        (d / "link.json").symlink_to(video)
        return d / "link.json"
    if how == "dotdot":
        (d / "sub").mkdir()
        return d / "sub" / ".." / video.name
    os.link(video, d / "hard.json")
    return d / "hard.json"


@pytest.mark.parametrize("option", ["--out", "--csv"])
@pytest.mark.parametrize("how", ["same path", "symlink", "dotdot", "hard link"])
def test_segment_refuses_to_write_over_its_video(video, model, option, how, capsys, spies):
    before = digest(video)
    target = _alias(video, how)
    argv = [option, str(target)] + (["--out", str(video.parent / "s.json")]
                                    if option == "--csv" else [])
    assert segment(video, model, *argv) == EXIT_USAGE
    line = one_error(capsys)
    assert f"{option} '{target}' is the same file as VIDEO" in line and "choose another" in line
    assert digest(video) == before and spies == {"decode": 0, "model": 0}
    assert not (video.parent / "s.json").exists()


@pytest.mark.parametrize("option", ["--out", "--csv"])
def test_segment_refuses_to_write_over_its_model(video, model, tmp_path, option, capsys):
    own = tmp_path / "m.onnx"
    own.write_bytes(model.read_bytes())
    before = digest(own)
    argv = [option, str(own)] + (["--out", str(tmp_path / "s.json")] if option == "--csv" else [])
    assert segment(video, own, *argv) == EXIT_USAGE
    assert "is the same file as --models" in one_error(capsys)
    assert digest(own) == before


def test_segment_refuses_out_and_csv_on_one_file(video, model, tmp_path, capsys):
    assert segment(video, model, "--out", str(tmp_path / "x"), "--csv",
                   str(tmp_path / "x")) == EXIT_USAGE
    assert "--csv" in one_error(capsys) and not (tmp_path / "x").exists()


# --- 2. outputs checked before the work ----------------------------------------------------


# A missing folder is created (docs/cli.md), unless it cannot be: under /proc.
@pytest.mark.parametrize("place", ["/proc/endostream.json", "/sys/endostream.json",
                                   "/proc/no-such-folder/s.json"])
def test_unwritable_output_fails_before_any_frame_is_decoded(video, model, place, capsys,
                                                             spies):
    started = time.monotonic()
    assert segment(video, model, "--out", place) == EXIT_OUTPUT
    assert time.monotonic() - started < FAST_S
    assert spies == {"decode": 0, "model": 0}  # neither decoded nor even loaded a model
    line = one_error(capsys)
    assert "--out" in line and "cannot create" in line


def test_unwritable_csv_fails_before_the_work(video, model, tmp_path, capsys, spies):
    assert segment(video, model, "--out", str(tmp_path / "s.json"), "--csv",
                   "/proc/frames.csv") == EXIT_OUTPUT
    assert "--csv" in one_error(capsys) and spies["decode"] == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 555 folder anyway")
def test_chmod_read_only_folder_fails_before_the_work(video, model, tmp_path, capsys, spies):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert segment(video, model, "--out", str(ro / "s.json")) == EXIT_OUTPUT
    finally:
        ro.chmod(0o755)
    assert spies["decode"] == 0


def test_read_only_output_needs_overwrite_and_keeps_its_mode(video, model, tmp_path, capsys):
    out = tmp_path / "s.json"
    out.write_text("{}")
    out.chmod(0o444)
    assert segment(video, model, "--out", str(out), "--quiet") == EXIT_USAGE
    line = one_error(capsys)
    assert "read-only" in line and "--overwrite" in line and out.read_text() == "{}"
    assert segment(video, model, "--out", str(out), "--quiet", "--overwrite") == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o444
    assert json.loads(out.read_text())["complete"] is True


def test_replaced_output_keeps_its_permissions(video, model, tmp_path, capsys):
    out = tmp_path / "s.json"
    out.write_text("{}")
    out.chmod(0o600)
    # A writable file named by --out is replaced only when asked, as every output is.
    assert segment(video, model, "--out", str(out), "--quiet") == EXIT_USAGE
    assert "exists; add --overwrite" in one_error(capsys) and out.read_text() == "{}"
    assert segment(video, model, "--out", str(out), "--quiet", "--overwrite") == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


# --- 3. --out - and the default output ---------------------------------------------------


def test_out_dash_writes_only_the_json_to_stdout(video, model, capsys):
    assert segment(video, model, "--out", "-") == 0  # table and progress not --quiet
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # the whole of stdout is the one document
    jsonschema.validate(doc, schema())
    assert doc["analysis"]["frames_analysed"] > 0
    assert "label" in captured.err and "wrote the sections to stdout" in captured.err
    assert sorted(p.name for p in video.parent.iterdir()) == ["v.mp4"]


def test_without_out_the_sections_go_beside_the_video_never_over_a_file(video, model,
                                                                        capsys):
    beside = video.with_name("v.sections.json")
    assert segment(video, model, "--quiet") == 0
    jsonschema.validate(json.loads(beside.read_text()), schema())
    capsys.readouterr()
    beside.write_text("mine")
    assert segment(video, model, "--quiet") == EXIT_USAGE
    line = one_error(capsys)
    assert "already exists" in line and "--overwrite" in line and "--out" in line
    assert beside.read_text() == "mine"
    assert segment(video, model, "--quiet", "--overwrite") == 0
    assert beside.read_text() != "mine"


def test_help_says_where_segment_writes_without_out(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["segment", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "stem.sections.json beside the video" in text and "'-': stdout" in text


# --- 4. arguments that mean something else -------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-2", "inf"])
def test_sample_fps_zero_or_negative_is_refused(video, model, value, capsys):
    assert segment(video, model, "--sample-fps", value) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "argument --sample-fps: must be a number of frames per second above 0" in err
    assert "'all'" in err


def test_sample_fps_above_the_frame_rate_records_every_frame(video, model, tmp_path, caplog):
    out = tmp_path / "s.json"
    assert segment(video, model, "--out", str(out), "--sample-fps", "100", "--quiet") == 0
    assert "above the video's frame rate (25 fps): every frame is analysed" in caplog.text
    doc = json.loads(out.read_text())
    assert doc["analysis"]["sample_fps"] is None
    assert doc["analysis"]["frames_analysed"] == doc["source"]["frames"] == CLIP_FRAMES


def test_sample_fps_too_low_for_min_section_warns(video, model, tmp_path, caplog):
    assert segment(video, model, "--out", str(tmp_path / "s.json"), "--sample-fps", "0.5",
                   "--quiet") == 0
    err = caplog.text
    assert "--sample-fps 0.5 analyses one frame every 2 s" in err and "--min-section 3" in err


@pytest.mark.parametrize("command", ["segment", "live"])
def test_min_section_zero_names_the_option(video, model, command, capsys):
    argv = [command, str(video)] if command == "segment" else [command, "--file", str(video)]
    assert main([*argv, "--min-section", "0"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "argument --min-section: must be a number of seconds above 0" in err
    assert "min_section_s" not in err


def test_a_url_is_refused_by_segment_verbatim(model, capsys, spies):
    url = "rtsp://camera.local//stream1"
    assert main(["segment", url, "--models", str(model)]) == EXIT_USAGE
    line = one_error(capsys)
    assert f"'{url}' is a URL; segment reads video files only" in line
    assert f"endostream live --camera '{url}'" in line and spies["model"] == 0


def test_a_directory_says_how_to_segment_a_folder(tmp_path, model, capsys):
    # Without --out a folder asks for the archive mode; with --out it is not a video.
    assert main(["segment", str(tmp_path), "--models", str(model)]) == EXIT_USAGE
    assert "--out-dir DIR" in one_error(capsys)
    out = tmp_path / "s.json"
    assert main(["segment", str(tmp_path), "--models", str(model), "--out", str(out)]) \
        == EXIT_VIDEO
    assert "use --out-dir DIR to segment a folder" in one_error(capsys)


def test_two_videos_without_out_dir_say_what_to_do(video, model, capsys):
    assert main(["segment", str(video), str(video), "--models", str(model)]) == EXIT_USAGE
    assert "several videos need --out-dir DIR" in one_error(capsys)


@pytest.mark.parametrize("argv", [["-vv", "segment", "V"], ["segment", "V", "-vv"],
                                  ["-v", "segment", "V", "-v"], ["segment", "V", "--verbose"]])
def test_verbose_before_or_after_the_command(argv):
    args = settle(build_parser().parse_args(argv))
    assert args.verbose == (1 if argv[-1] == "--verbose" else 2)


def test_verbose_after_the_command_logs_in_a_real_process(video, model):
    out = subprocess.run([sys.executable, "-m", "endostream", "segment", str(video),
                          "--models", str(model), "--device", "cpu", "--out", "-", "--quiet",
                          "-v"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "endostream: INFO: models:" in out.stderr
    json.loads(out.stdout)


def test_ffmpeg_log_lines_never_come_before_the_error(tmp_path, model):
    """Even when something switched FFmpeg's logging on, the tool's error is all there is."""
    bad = tmp_path / "random.mp4"
    # Seeded: some unseeded draws probe as a container without a video stream.
    bad.write_bytes(random.Random(0).randbytes(20000))
    code = ("import sys, av.logging; av.logging.set_level(av.logging.VERBOSE); "
            "from endostream.cli import main; sys.exit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "segment", str(bad), "--models",
                          str(model), "--out", str(tmp_path / "s.json")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == EXIT_VIDEO
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("endostream: error: cannot open"), \
        out.stderr


# --- every other command that writes -------------------------------------------------------


def test_live_refuses_out_over_its_file_before_loading_a_model(video, model, capsys, spies):
    before = digest(video)
    assert main(["live", "--file", str(video), "--headless", "--out", str(video),
                 "--models", str(model)]) == EXIT_USAGE
    assert "--out" in one_error(capsys) and digest(video) == before
    assert spies == {"decode": 0, "model": 0}


def test_live_unwritable_out_fails_at_the_start(video, model, capsys, spies):
    assert main(["live", "--file", str(video), "--headless", "--out", "/proc/s.json",
                 "--models", str(model)]) == EXIT_OUTPUT
    assert "cannot create files in '/proc'" in one_error(capsys)
    assert spies == {"decode": 0, "model": 0}


def test_demo_checks_its_folder_and_model_before_rendering(tmp_path, model, capsys):
    started = time.monotonic()
    assert main(["demo", "--out-dir", "/proc/demo"]) == EXIT_OUTPUT
    assert "--out-dir" in one_error(capsys) and time.monotonic() - started < FAST_S
    out = tmp_path / "demo"
    out.mkdir()
    own = out / "sections.json"
    own.write_bytes(model.read_bytes())
    assert main(["demo", "--out-dir", str(out), "--models", str(own)]) == EXIT_USAGE
    assert "is the same file as --models" in one_error(capsys)
    assert digest(own) == digest(model) and sorted(p.name for p in out.iterdir()) == [
        "sections.json"]


def test_synth_never_replaces_a_video_unless_asked(video, capsys):
    before = digest(video)
    assert main(["synth", str(video), "--procedure", "nose:1", "--size", "32x32"]) == EXIT_USAGE
    assert "already exists; add --overwrite" in one_error(capsys) and digest(video) == before


def test_synth_truth_checked_before_rendering(tmp_path, capsys):
    video = tmp_path / "s.mp4"
    started = time.monotonic()
    blocker = tmp_path / "a-file"  # a folder that cannot be created
    blocker.write_text("")
    assert main(["synth", str(video), "--truth", str(blocker / "missing" / "t.json"),
                 "--procedure", "nose:30"]) == EXIT_OUTPUT
    assert "--truth" in one_error(capsys) and time.monotonic() - started < FAST_S
    assert not video.exists()  # not rendered, so no video left without its truth
    assert main(["synth", str(video), "--truth", str(video), "--procedure", "nose:1"]) \
        == EXIT_USAGE
    assert "--truth" in one_error(capsys) and not video.exists()


@pytest.mark.parametrize("spec", ["unusable:2", "spleen:2", "clear:2"])
def test_synth_procedure_names_what_it_accepts(tmp_path, spec, capsys):
    assert main(["synth", str(tmp_path / "s.mp4"), "--procedure", spec]) == EXIT_USAGE
    line = one_error(capsys)
    assert "ear, nose, vocal_folds" in line and "blur, dark, black, out_of_body" in line
    assert "must look 'clear'" not in line and "or 'unusable'" not in line


def _sections_file(path: Path, sections: list[tuple[str, float, float]]) -> Path:
    path.write_text(json.dumps({"sections": [
        {"label": label, "start_s": a, "end_s": b} for label, a, b in sections]}))
    return path


def test_evaluate_without_out_dir_prints_the_score(tmp_path, capsys):
    truth = _sections_file(tmp_path / "t.json", [("nose", 0, 5), ("ear", 5, 10)])
    pred = _sections_file(tmp_path / "p.json", [("nose", 0, 5), ("ear", 5, 10)])
    assert main(["evaluate", "--truth", str(truth), "--sections", str(pred)]) == 0
    captured = capsys.readouterr()
    assert "F1 1.000" in captured.out and "wrote" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json", "t.json"]


def test_evaluate_refuses_an_output_that_is_its_truth(tmp_path, capsys):
    truth = _sections_file(tmp_path / "video_metrics.json", [("nose", 0, 10)])
    pred = _sections_file(tmp_path / "p.json", [("nose", 0, 10)])
    before = digest(truth)
    assert main(["evaluate", "--truth", str(truth), "--sections", str(pred), "--out-dir",
                 str(tmp_path)]) == EXIT_USAGE
    assert "is the same file as --truth" in one_error(capsys) and digest(truth) == before


def test_evaluate_warns_when_truth_is_of_another_video(tmp_path, caplog):
    truth = _sections_file(tmp_path / "t.json", [("nose", 0, 5), ("ear", 5, 3725)])
    pred = _sections_file(tmp_path / "p.json", [("nose", 0, 5), ("ear", 5, 40)])
    assert main(["evaluate", "--truth", str(truth), "--sections", str(pred), "--quiet",
                 "--out-dir", str(tmp_path / "e")]) == 0
    err = caplog.text
    assert "the sections cover 0:40.0 but the truth" in err and "covers 1:02:05.0" in err


def test_export_refuses_out_over_a_checkpoint_before_torch(tmp_path, capsys):
    pytest.importorskip("torch")
    ckpt = tmp_path / "q.pth"
    ckpt.write_bytes(b"weights")
    assert main(["export", "--quality", str(ckpt), "--out", str(ckpt)]) == EXIT_USAGE
    assert "is the same file as --quality" in one_error(capsys)
    assert ckpt.read_bytes() == b"weights"


@pytest.mark.parametrize("victim", ["--init", "DATASET"])
def test_train_refuses_out_over_its_inputs(tmp_path, victim, capsys):
    pytest.importorskip("torchvision")
    data = tmp_path / "labels.csv"
    data.write_text("path,organ,quality,recording\n")
    init = tmp_path / "imagenet.pth"
    init.write_bytes(b"weights")
    target = init if victim == "--init" else data
    before = digest(target)
    assert main(["train", str(data), "--task", "organ", "--init", str(init), "--out",
                 str(target)]) == EXIT_USAGE
    assert f"is the same file as {victim}" in one_error(capsys) and digest(target) == before


# --- 6. --help teaches ------------------------------------------------------------------------


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_ends_with_examples(name):
    text = _subparsers()[name].format_help()
    tail = text[text.index("examples:"):]
    assert sum(line.startswith(f"  endostream {name}") for line in tail.splitlines()) >= 2


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_states_every_default(name):
    missing = []
    for action in _subparsers()[name]._actions:
        if not action.option_strings or action.help in (None, argparse.SUPPRESS):
            continue
        if isinstance(action, (argparse._HelpAction, argparse._CountAction)):
            continue
        if action.required or "required" in action.help:
            continue
        if "default" not in action.help:
            missing.append(action.option_strings[-1])
    assert not missing, f"{name}: no default stated for {missing}"


def test_live_out_dash_is_refused_with_what_to_give(video, capsys):
    assert main(["live", "--file", str(video), "--headless", "--out", "-"]) == EXIT_USAGE
    assert "give a path such as sections.json" in one_error(capsys)


def test_synth_dataset_in_an_unwritable_place_fails_before_rendering(capsys):
    started = time.monotonic()
    assert main(["synth", "--dataset", "/proc/dataset"]) == EXIT_OUTPUT
    assert "--dataset" in one_error(capsys) and time.monotonic() - started < FAST_S


def test_evaluate_quiet_without_out_dir_is_refused(tmp_path, capsys):
    truth = _sections_file(tmp_path / "t.json", [("nose", 0, 5)])
    assert main(["evaluate", "--truth", str(truth), "--sections", str(truth), "--quiet"]) \
        == EXIT_USAGE
    assert "--out-dir" in one_error(capsys)


@pytest.mark.parametrize("name", ["segment", "live", "demo", "synth", "evaluate", "train",
                                  "export", "chapters", "report", "clips", "annotate"])
def test_every_command_that_writes_takes_overwrite(name):
    options = {o for a in _subparsers()[name]._actions for o in a.option_strings}
    assert {"--overwrite", "--force"} <= options


def test_evaluate_read_only_output_needs_overwrite(tmp_path, capsys):
    truth = _sections_file(tmp_path / "t.json", [("nose", 0, 5)])
    out = tmp_path / "e"
    out.mkdir()
    (out / "video_metrics.json").write_text("{}")
    (out / "video_metrics.json").chmod(0o444)
    argv = ["evaluate", "--truth", str(truth), "--sections", str(truth), "--out-dir", str(out)]
    assert main(argv) == EXIT_USAGE
    assert "(read-only); add --overwrite" in one_error(capsys)
    assert main([*argv, "--overwrite"]) == 0
    assert json.loads((out / "video_metrics.json").read_text())["metrics"]["f1"] == 1.0
    assert stat.S_IMODE((out / "video_metrics.json").stat().st_mode) == 0o444


def _readme_exit_codes() -> dict[int, str]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.*) \|$", table,
                                                              re.M)}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_commands_exit_codes_are_the_readmes(name):
    """The README's table is the one truth: a command's --help names only its codes, and
    an output that is an input is exit 2 wherever it is mentioned."""
    readme = _readme_exit_codes()
    assert "replace an input" in readme[2] and "input" not in readme[5]
    text = _subparsers()[name].format_help()
    codes_text = " ".join(text.rsplit("exit codes:", 1)[1].split())
    clauses = re.split(r"(?:^|, )(?=\d{1,3} [a-z(])", codes_text.strip())
    codes = {int(c.split()[0]): c for c in clauses if c}
    assert set(codes) <= set(readme), (name, sorted(set(codes) - set(readme)))
    for code, clause in codes.items():
        if "replace an input" in clause or "would replace" in clause:
            assert code == 2, (name, clause)
    if name == "segment":
        assert 8 in codes  # archive runs
