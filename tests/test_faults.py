"""Faults around a run of ``endostream segment``: bad model files, outputs that cannot be
written (before and during the run) and the permissions of those that are, and a model
that fails part way through a video.

Already covered elsewhere and not repeated here: the model contract violations one by one
at the Classifier level (test_model.py), a wrong input size and a model without metadata
through the CLI, and SIGINT/SIGTERM during ``segment`` (test_segment_cli.py) and during
``live --headless`` (test_live.py); an exception in the inference thread reaching
``worker.error`` with the end marker (test_worker.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from endostream.cli import main
from endostream.errors import EXIT_MODEL, EXIT_OUTPUT
from endostream.output.sections_file import schema
from helpers.clips import encode_clip, index_frame
from helpers.corpus import scope_frame
from helpers.onnx_models import (
    build_color_model,
    build_label_mismatch_model,
    build_missing_output_model,
    build_stub_model,
    truncate_file,
)

#: Bound for a subprocess run of the long clip (it takes ~3 s on 2 cores).
RUN_TIMEOUT_S = 60.0
#: Frames of the long clip: at every frame, batch 1, one thread, the run lasts ~2 s after
#: its first progress line, far longer than removing a directory takes.
LONG_FRAMES = 300


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_color_model(tmp_path_factory.mktemp("model") / "color.onnx")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """1 s of scope content: enough to load a model and get past the video checks."""
    return encode_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", scope_frame,
                       n_frames=25, fps=25)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """12 s of cheap frames (flat cells encode and decode fast)."""
    return encode_clip(tmp_path_factory.mktemp("long") / "long.mp4",
                       lambda i: index_frame(i % 256, 160, 120), n_frames=LONG_FRAMES, fps=25)


def _error_line(capfd) -> str:
    """The one stderr line of a failed in-process run (capfd: onnxruntime's C++ logging
    and FFmpeg's would show up there too)."""
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("endostream: error: "), err
    return lines[0]


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- bad model files through the CLI -------------------------------------------------------


def _text(path: Path) -> Path:
    path.write_text("not a model\n")
    return path


def _png(path: Path) -> Path:
    ok, data = cv2.imencode(".png", np.full((32, 32, 3), 200, np.uint8))
    assert ok
    path.write_bytes(data.tobytes())
    return path


#: name -> (make the file in a directory, fragment naming the problem, fragment naming the fix)
BAD_MODELS = {
    "float input": (lambda d: build_stub_model(d / "m.onnx", input_dtype=np.float32),
                    "takes float32 input [N, 224, 224, 3], not 'frames' uint8",
                    "re-export with `endostream export` so scaling and normalisation"),
    "missing head output": (lambda d: build_missing_output_model(d / "m.onnx"),
                            "declares the 'organ' head but the graph has no output named 'organ'",
                            "re-export it"),
    "labels != output width": (lambda d: build_label_mismatch_model(d / "m.onnx"),
                               "output 'organ' has 4 columns but endostream.heads lists 3 labels",
                               "fix the label list or the last layer and re-export"),
    "labels != width at run time": (
        lambda d: build_label_mismatch_model(d / "m.onnx", static_output_shape=False),
        "output 'organ' has 4 columns but endostream.heads lists 3 labels",
        "fix the label list or the last layer and re-export"),
    "text file": (lambda d: _text(d / "m.onnx"),
                  "is not an ONNX model, or is truncated", "copy it again or re-export it"),
    "PNG renamed .onnx": (lambda d: _png(d / "m.onnx"),
                          "is not an ONNX model, or is truncated", "copy it again or re-export it"),
    "truncated ONNX": (lambda d: truncate_file(build_color_model(d / "full.onnx"), d / "m.onnx"),
                       "is not an ONNX model, or is truncated", "copy it again or re-export it"),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_is_exit_4_with_one_line(case, clip, tmp_path, capfd):
    make, problem, fix = BAD_MODELS[case]
    models = tmp_path / "models"
    models.mkdir()
    bad = make(models)
    out = tmp_path / "out"
    out.mkdir()
    rc = main(["segment", str(clip), "--models", str(bad), "--out", str(out / "s.json"),
               "--csv", str(out / "f.csv")])
    assert rc == EXIT_MODEL
    line = _error_line(capfd)
    assert str(bad) in line and problem in line and fix in line, line
    assert _files(out) == []


# --- outputs that cannot be written ---------------------------------------------------------


@pytest.mark.parametrize("option", ["--out", "--csv"])
def test_output_that_is_a_directory_is_refused_before_the_run(option, clip, model, tmp_path,
                                                              capfd):
    taken = tmp_path / "taken"
    taken.mkdir()
    paths = {"--out": tmp_path / "s.json", "--csv": tmp_path / "f.csv", option: taken}
    rc = main(["segment", str(clip), "--models", str(model), "--out", str(paths["--out"]),
               "--csv", str(paths["--csv"])])
    assert rc == EXIT_OUTPUT
    line = _error_line(capfd)
    assert f"{option} '{taken}' is a directory" in line
    assert _files(tmp_path) == ["taken"] and _files(taken) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_outputs_get_the_umask_permissions_not_mkstemp_0600(clip, model, tmp_path):
    """Written atomically via mkstemp, yet readable like any new file (umask 027: 0640)."""
    out, csv_path = tmp_path / "s.json", tmp_path / "f.csv"
    previous = os.umask(0o027)
    try:
        rc = main(["segment", str(clip), "--models", str(model), "--out", str(out),
                   "--csv", str(csv_path), "--quiet"])
    finally:
        os.umask(previous)
    assert rc == 0
    assert (out.stat().st_mode & 0o777, csv_path.stat().st_mode & 0o777) == (0o640, 0o640)


def _run_and_remove(video: Path, model: Path, argv: list[str], doomed: Path
                    ) -> tuple[int, str]:
    """Run segment in a subprocess; remove ``doomed`` once it reports progress."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "endostream", "segment", str(video), "--models", str(model),
         "--sample-fps", "all", "--batch", "1", "--threads", "1", *argv],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        # The first progress line comes right after the first analysed frame; the run then
        # has ~LONG_FRAMES more frames to go.
        deadline = time.monotonic() + RUN_TIMEOUT_S
        seen = ""
        while "analysed" not in seen and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "segment ended before any progress"
            seen += line
        shutil.rmtree(doomed)
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, seen + err


def _last_error(err: str) -> str:
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("endostream: error: ")]
    assert errors == lines[-1:], err  # exactly one, and last
    return errors[0]


def test_output_directory_removed_mid_run(long_clip, model, tmp_path):
    """The USB stick pulled while a video is analysed: exit 5, one line, nothing left."""
    out_dir = tmp_path / "stick"
    out_dir.mkdir()
    out = out_dir / "sections.json"
    rc, err = _run_and_remove(long_clip, model, ["--out", str(out), "--csv",
                                                 str(out_dir / "frames.csv")], out_dir)
    assert rc == EXIT_OUTPUT, err
    line = _last_error(err)
    assert "cannot write" in line and "No such file or directory" in line and "choose another" \
        in line, line
    assert "wrote" not in err
    assert _files(tmp_path) == []  # no half-written file anywhere (temp files included)


def test_csv_directory_removed_mid_run_keeps_the_sections(long_clip, model, tmp_path):
    """Only the optional CSV is lost: sections.json is still written, then exit 5."""
    out = tmp_path / "sections.json"
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    rc, err = _run_and_remove(long_clip, model, ["--out", str(out), "--csv",
                                                 str(csv_dir / "frames.csv")], csv_dir)
    assert rc == EXIT_OUTPUT, err
    line = _last_error(err)
    assert f"cannot write '{csv_dir / 'frames.csv'}'" in line and "--csv" in line, line
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, schema())
    assert doc["complete"] is True and doc["analysis"]["frames_analysed"] == LONG_FRAMES
    assert _files(tmp_path) == ["sections.json"]


# --- a model that fails part way through a video ---------------------------------------------

#: Per-frame mean grey level above which the poisoned model fails: white frames (255) trip
#: it, the black warm-up batch and the scope content (mean < 150) do not.
POISON_LEVEL = 240.0


def build_poisoned_model(path: Path) -> Path:
    """The colour model, except that a batch holding a white frame fails inside onnxruntime.

    The organ output gets a tensor of zeros added whose width is 3, or 4 when some frame's
    mean is above :data:`POISON_LEVEL`: broadcasting [N, 3] with [1, 4] is a runtime error
    ("Attempting to broadcast an axis by a dimension other than 1"). Loading and the
    warm-up on black frames pass, so the failure comes in the middle of a video.
    """
    colour = onnx.load(str(build_color_model(path)))
    graph = colour.graph
    producer = next(n for n in graph.node if "organ" in n.output)
    producer.output[0] = "organ_ok"
    graph.initializer.extend([
        numpy_helper.from_array(np.float32(POISON_LEVEL), "p_level"),
        numpy_helper.from_array(np.array([3], np.int64), "p_width"),
        numpy_helper.from_array(np.array([1], np.int64), "p_one"),
    ])
    graph.node.extend([
        helper.make_node("ReduceMean", ["mean_rgb"], ["p_frame_mean"], axes=[1], keepdims=0),
        helper.make_node("ReduceMax", ["p_frame_mean"], ["p_peak"], keepdims=0),
        helper.make_node("Greater", ["p_peak", "p_level"], ["p_hot"]),
        helper.make_node("Cast", ["p_hot"], ["p_hot_i"], to=TensorProto.INT64),
        helper.make_node("Add", ["p_width", "p_hot_i"], ["p_cols"]),  # [3] or [4]
        helper.make_node("Concat", ["p_one", "p_cols"], ["p_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["p_shape"], ["p_zeros"],
                         value=numpy_helper.from_array(np.zeros(1, np.float32))),
        helper.make_node("Add", ["organ_ok", "p_zeros"], ["organ"]),
    ])
    onnx.checker.check_model(colour)
    onnx.save(colour, str(path))
    return path


def test_model_failing_mid_run_is_exit_4_and_threads_stop(tmp_path, capfd):
    """In-process, so the suite's thread check proves the capture and inference threads
    were stopped and joined after the worker's exception reached the caller; capfd sees
    onnxruntime's own C++ log too (it must not add its error to ours)."""
    video = encode_clip(tmp_path / "flash.mp4",
                        lambda i: scope_frame(i) if i < 25 else np.full((120, 160, 3), 255,
                                                                         np.uint8),
                        n_frames=50, fps=25)
    poisoned = build_poisoned_model(tmp_path / "poisoned.onnx")
    out = tmp_path / "out"
    out.mkdir()
    rc = main(["segment", str(video), "--models", str(poisoned), "--out",
               str(out / "s.json"), "--csv", str(out / "f.csv"), "--sample-fps", "all",
               "--batch", "2", "--threads", "1"])
    err = capfd.readouterr().err
    assert rc == EXIT_MODEL, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"endostream: error: inference failed in '{poisoned}'"), err
    assert "broadcast" in lines[-1] and "re-export" in lines[-1]
    # Progress lines, then the one error line: nothing else (no onnxruntime log line).
    assert [line for line in lines if " analysed (" not in line] == lines[-1:], err
    # Frames were analysed before the white ones: the first progress line says so.
    analysed = [int(n) for n in re.findall(r"(\d+) analysed \(", err)]
    assert analysed and analysed[0] >= 1, err
    assert _files(out) == []  # a run that raised writes neither sections.json nor frames.csv
