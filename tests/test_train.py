"""Training datasets, splits, synthetic bad frames, and ``endostream train`` end to end.

Dataset reading, splitting and augmentation need numpy and OpenCV only and run in the fast
suite. The training tests (marked ``torch`` and ``slow``) fine-tune a randomly initialised
EfficientNetB0 for a few steps at batch 4 on a tiny generated dataset (about 0.1–0.5 s a
step on 2 cores), then check that the checkpoint loads, resumes bit-exactly, exports with
``endostream export`` and segments a clip.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from endostream import cli
from endostream.crop import find_content_area, preprocess
from endostream.errors import UsageError
from endostream.evaluation import datasets as D
from endostream.export import sampling as S
from tests.helpers.onnx_models import color_image

STEPS = 2  # optimiser steps per training run in these tests
COLOURS = {"ear": (200, 70, 40), "nose": (230, 150, 180), "vocal_folds": (90, 200, 220)}


def run_cli(argv: list[str]) -> int:
    """``endostream ARGV`` in-process (train may not be registered in cli.py yet)."""
    cli.COMMANDS.setdefault("train", ("endostream.export.train_command", "train"))
    return cli.main(argv)


def disc_image(rgb, seed: int, size=(160, 120)) -> np.ndarray:
    """A textured colour disc inside a black border, like an endoscope frame (RGB)."""
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    tex = color_image(rgb, seed=seed, size=max(w, h))[:h, :w]
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (w // 2, h // 2), h // 2 - 4, 1, -1)
    img[mask > 0] = tex[mask > 0]
    return img


def write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[..., ::-1])


# --- reading datasets ----------------------------------------------------------------


def test_class_folders_take_recordings_from_file_names(tmp_path):
    for label in ("ear", "nose"):
        for k in range(4):
            write_png(tmp_path / label / f"pat{k % 2}__{k:03d}.png", disc_image(COLOURS[label], k))
    ds = D.read_dataset(tmp_path, "organ")
    assert ds.labels == ("ear", "nose")
    assert ds.class_counts() == {"ear": 4, "nose": 4}
    assert sorted(ds.recordings()) == ["pat0", "pat1"] and ds.recordings_known
    img = ds.load(0)
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8
    # The runtime crop removed the black border: the corners of a disc crop are dark but
    # the centre holds the colour, and no black band runs across the middle.
    assert img[112, :, :].max(axis=1).min() > 30


def test_class_folders_without_recording_ids_warn(tmp_path, caplog):
    for k in range(2):
        write_png(tmp_path / "good" / f"{k}.png", disc_image(COLOURS["ear"], k))
    ds = D.read_dataset(tmp_path, "quality")
    assert not ds.recordings_known and len(ds.recordings()) == 2
    assert "cannot be checked for leaks" in caplog.text


def test_class_folders_with_labels_csv_for_recordings(tmp_path):
    for k in range(3):
        write_png(tmp_path / "ear" / f"{k}.png", disc_image(COLOURS["ear"], k))
    (tmp_path / "labels.csv").write_text(
        "path,recording\near/0.png,A\near/1.png,A\near/2.png,B\n")
    ds = D.read_dataset(tmp_path, "organ")
    assert [s.recording for s in ds.samples] == ["A", "A", "B"]


def test_labels_csv_with_images_and_video_rows(tmp_path):
    from endostream.synth import ProcedureSpec, render_dataset, render_procedure

    csv_path = render_dataset(tmp_path / "frames", per_class=3, size=(96, 72), recordings=1,
                              bad_fraction=0.34, image_format="png")
    quality = D.read_dataset(csv_path.parent, "quality")  # folder holding labels.csv
    assert quality.labels == ("bad", "good") and len(quality) == 9
    assert quality.recordings() == ["rec00"]

    render_procedure(tmp_path / "v.mp4", ProcedureSpec.parse("nose:2,ear:2"), width=96,
                     height=72, fps=10)
    table = tmp_path / "video.csv"
    table.write_text("path,organ,quality,patient,start_s,end_s,frame\n"
                     "v.mp4,nose,good,p1,0,2,\n"      # 0..2 s at 2 fps: 4 frames
                     "v.mp4,ear,good,p1,2.5,,\n"      # 2.5 s to the end: 3 frames
                     "v.mp4,ear,good,p1,,,35\n")      # frame 35 (3.5 s)
    ds = D.read_dataset(table, "organ", video_fps=2.0)
    frames = sorted((s.frame, ds.labels[s.label]) for s in ds.samples)
    assert frames == [(0, "nose"), (5, "nose"), (10, "nose"), (15, "nose"),
                      (25, "ear"), (30, "ear"), (35, "ear"), (35, "ear")]
    assert {s.recording for s in ds.samples} == {"p1"}
    assert all(s.image.shape == (224, 224, 3) for s in ds.samples)


def test_bad_datasets_are_refused_with_one_line(tmp_path):
    with pytest.raises(UsageError, match="dataset not found"):
        D.read_dataset(tmp_path / "missing", "organ")
    (tmp_path / "t.csv").write_text("path,organ\n")
    with pytest.raises(UsageError, match="no 'quality' column"):
        D.read_dataset(tmp_path / "t.csv", "quality")
    (tmp_path / "u.csv").write_text("path,organ\nnope.png,ear\n")
    with pytest.raises(UsageError, match="file not found: 'nope.png'"):
        D.read_dataset(tmp_path / "u.csv", "organ")
    write_png(tmp_path / "f" / "bad" / "a__1.png", disc_image(COLOURS["ear"], 0))
    with pytest.raises(UsageError, match="needs frames labelled 'good'"):
        D.read_dataset(tmp_path / "f", "quality")


# --- splits --------------------------------------------------------------------------


def _set(recordings: int, per: int = 3, classes: int = 2) -> D.LabelledSet:
    samples = [D.Sample(Path(f"r{r}_{i}.png"), r % classes, f"r{r}")
               for r in range(recordings) for i in range(per)]
    return D.LabelledSet("organ", tuple(f"c{k}" for k in range(classes)), tuple(samples),
                         Path("."))


def test_split_keeps_recordings_whole_and_is_seeded():
    ds = _set(12, classes=3)
    train, val = D.split_by_recording(ds, 0.25, seed=7)
    assert sorted(train + val) == list(range(len(ds)))
    rec_train = {ds.samples[i].recording for i in train}
    rec_val = {ds.samples[i].recording for i in val}
    assert not rec_train & rec_val
    assert len(rec_val) == 3  # one of the four recordings of each class
    assert {ds.samples[i].label for i in val} == {0, 1, 2}
    assert D.split_by_recording(ds, 0.25, seed=7) == (train, val)
    assert D.split_by_recording(ds, 0.25, seed=8) != (train, val)


def test_named_validation_recordings(tmp_path):
    ds = _set(4)
    train, val = D.split_by_names(ds, ["r1"])
    assert {ds.samples[i].recording for i in val} == {"r1"}
    with pytest.raises(UsageError, match="no recording named r9"):
        D.split_by_names(ds, ["r9"])


def test_leaking_split_is_refused_naming_the_recordings():
    ds = _set(4)
    with pytest.raises(UsageError, match=r"recordings r1, r2 are in both") as e:
        D.check_no_leak(ds, ds.subset([3, 6]))
    assert "\n" not in str(e.value)
    D.check_no_leak(ds.subset(range(6)), ds.subset(range(6, 12)))  # r0,r1 | r2,r3: fine


# --- balanced epochs and synthetic bad frames ----------------------------------------


def test_epoch_plan_balances_classes_and_synthesises_bad():
    targets = [1] * 90 + [0] * 10  # good 90, bad 10 (labels: bad, good)
    plan = S.epoch_plan(targets, ["bad", "good"], epoch=0, seed=0, length=20000, synth_bad=0.5)
    labels = np.array([0 if synth else targets[i] for i, synth, _ in plan])
    assert abs((labels == 0).mean() - 0.5) < 0.02  # balanced
    synth = np.array([s for _, s, _ in plan])
    assert abs(synth.mean() - 0.25) < 0.02  # half of the bad class
    assert all(targets[i] == 1 for i, s, _ in plan if s)  # made from good frames only
    assert plan == S.epoch_plan(targets, ["bad", "good"], epoch=0, seed=0, length=20000,
                                synth_bad=0.5)
    only_good = S.epoch_plan([1] * 10, ["bad", "good"], epoch=1, seed=0, length=4000,
                             synth_bad=0.5)
    assert abs(np.mean([s for _, s, _ in only_good]) - 0.5) < 0.03


def _sharpness(img: np.ndarray) -> float:
    """Laplacian variance over squared mean: fine detail, independent of brightness."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var() / max(grey.mean(), 1.0) ** 2)


def _badly_exposed(img: np.ndarray, good: np.ndarray) -> bool:
    """Much darker, or overexposed: most content pixels clipped at 255 in some channel."""
    content = good.max(axis=2) > 30
    clipped = (img.max(axis=2) == 255)[content].mean()
    return img.mean() / good.mean() < 0.55 or clipped > 0.5


def test_synthetic_bad_frames_are_blurrier_or_darker_or_brighter():
    full = disc_image(COLOURS["nose"], 3, size=(320, 240))
    good = preprocess(full, find_content_area(full))
    rng = np.random.default_rng(0)
    for _ in range(10):
        blurred = S.degrade(good, rng, mode="blur")
        assert _sharpness(blurred) < 0.2 * _sharpness(good)
        assert abs(float(blurred.mean()) - float(good.mean())) < 3
        lit = S.degrade(good, rng, mode="brightness")
        assert _badly_exposed(lit, good) and not _badly_exposed(blurred, good)
        both = S.degrade(good, rng, mode="both")
        assert _sharpness(both) < 0.2 * _sharpness(good)
        assert _badly_exposed(both, good)
    drawn = [S.degrade(good, rng) for _ in range(60)]  # modes drawn 1/3 each
    blurred = sum(_sharpness(m) < 0.2 * _sharpness(good) for m in drawn)
    assert 30 < blurred < 52  # blur or both: 2/3 of 60 = 40
    assert not np.shares_memory(S.degrade(good, rng), good)


def test_item_loader_labels_synthetic_items_bad(tmp_path):
    write_png(tmp_path / "good" / "a__1.png", disc_image(COLOURS["ear"], 0))
    ds = D.read_dataset(tmp_path, "quality").with_labels(("bad", "good"))
    loader = S.ItemLoader(ds)
    real, label = loader[(0, False, 0)]
    fake, fake_label = loader[(0, True, 123)]
    assert (label, fake_label) == (1, 0)
    assert not np.array_equal(real, fake)
    assert np.array_equal(fake, loader[(0, True, 123)][0])  # the seed fixes the augmentation


def test_train_command_imports_no_torch():
    code = ("import sys, endostream.export.train_command, endostream.evaluation.datasets, "
            "endostream.commands.evaluate; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- training (torch) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    from endostream.synth import render_dataset

    root = tmp_path_factory.mktemp("tiny")
    render_dataset(root, per_class=4, size=(96, 72), recordings=3, bad_fraction=0.5,
                   image_format="png")
    return root


def _train(dataset: Path, out: Path, *extra: str, task: str = "quality") -> int:
    return run_cli(["train", str(dataset), "--task", task, "--out", str(out), "--batch", "4",
                    "--lr", "1e-3", "--threads", "2", "--seed", "3", *extra])


@pytest.fixture(scope="module")
def quality_run(tiny_dataset, tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("q") / "quality.pth"
    assert _train(tiny_dataset, out, "--max-steps", str(STEPS)) == 0
    return out


@pytest.mark.torch
@pytest.mark.slow
def test_checkpoint_is_the_thesis_format_with_sidecars(quality_run, capsys):
    from endostream.export.model import classifier_from_checkpoint
    from endostream.export.train import read_labels_sidecar, sidecar_paths

    net, ckpt = classifier_from_checkpoint(quality_run)
    assert ckpt.num_classes == 2
    side = read_labels_sidecar(quality_run)
    assert side["task"] == "quality" and side["labels"] == ["bad", "good"]
    assert side["steps"] == STEPS
    last = side["last"]
    assert last["val_accuracy"] is not None and set(last["val_recall"]) == {"bad", "good"}
    assert sidecar_paths(quality_run)[1].is_file()


@pytest.mark.torch
@pytest.mark.slow
def test_resume_continues_bit_exactly(quality_run, tiny_dataset, tmp_path):
    import torch

    from endostream.export.train import sidecar_paths

    resumed = tmp_path / "resumed.pth"
    for src, dst in zip((quality_run, *sidecar_paths(quality_run)),
                        (resumed, *sidecar_paths(resumed)), strict=True):
        shutil.copy(src, dst)
    assert _train(tiny_dataset, resumed, "--resume", "--max-steps", str(STEPS + 1)) == 0
    straight = tmp_path / "straight.pth"
    assert _train(tiny_dataset, straight, "--max-steps", str(STEPS + 1)) == 0
    a, b = torch.load(resumed), torch.load(straight)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    saved = torch.load(sidecar_paths(resumed)[1], weights_only=True)
    assert saved["global_step"] == STEPS + 1
    # Bit-exact with the default augmentation on: every part draws from the item's seed.
    from endostream.export.augment import PARTS

    assert saved["config"]["augment"] == list(PARTS)
    # Nothing left to do: a resume past --max-steps says so and keeps the files.
    assert _train(tiny_dataset, resumed, "--resume", "--max-steps", str(STEPS + 1)) == 0


@pytest.mark.torch
@pytest.mark.slow
def test_cosine_schedule_follows_the_step_count_and_says_which_epoch_it_kept(
        tiny_dataset, tmp_path, capsys):
    """--lr-schedule cosine scales the rate by the step count (a resumed run picks it up
    where it is), and --keep last reports the epoch ``out`` really holds."""
    import math

    import torch

    from endostream.export.train import read_labels_sidecar, sidecar_paths

    out = tmp_path / "cosine.pth"

    def saved_lr() -> float:
        resume = torch.load(sidecar_paths(out)[1], weights_only=True)
        assert resume["config"]["lr_schedule"] == "cosine"
        return resume["optimizer"]["param_groups"][0]["lr"]

    common = ["--lr-schedule", "cosine", "--keep", "last", "--batch", "2", "--patience", "0"]
    assert _train(tiny_dataset, out, "--max-steps", "4", *common) == 0
    # the 4th step (0-based 3) ran at lr x (1 + cos(3 pi / 4)) / 2
    assert saved_lr() == pytest.approx(1e-3 * (1 + math.cos(3 * math.pi / 4)) / 2)
    err = capsys.readouterr().err
    side = read_labels_sidecar(out)
    assert side["kept"] == "last" and side["epoch_kept"] == side["last"]["epoch"] >= 1
    assert f"kept epoch {side['epoch_kept']}," in err
    assert _train(tiny_dataset, out, "--resume", "--max-steps", "6", *common) == 0
    assert saved_lr() == pytest.approx(1e-3 * (1 + math.cos(5 * math.pi / 6)) / 2)


@pytest.mark.torch
@pytest.mark.slow
def test_trained_checkpoints_export_and_segment(quality_run, tiny_dataset, tmp_path):
    import jsonschema

    from endostream.output.sections_file import schema
    from endostream.synth import ProcedureSpec, render_procedure

    organ = tmp_path / "organ.pth"
    assert _train(tiny_dataset, organ, "--max-steps", str(STEPS), task="organ") == 0
    onnx_path = tmp_path / "trained.onnx"
    # No --*-labels: export takes the class names from the sidecars train wrote.
    assert run_cli(["export", "--quality", str(quality_run), "--organ", str(organ),
                    "--parity-frames", "2", "--out", str(onnx_path)]) == 0
    clip = tmp_path / "clip.mp4"
    render_procedure(clip, ProcedureSpec.parse("nose:2,ear:2"), width=160, height=120, fps=5)
    out = tmp_path / "sections.json"
    assert run_cli(["segment", str(clip), "--models", str(onnx_path), "--device", "cpu",
                    "--out", str(out), "--quiet"]) == 0
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, schema())
    assert doc["models"]["heads"] == {"quality": ["bad", "good"],
                                      "organ": ["ear", "nose", "vocal_folds"]}
    assert doc["sections"] and doc["sections"][-1]["end_s"] == pytest.approx(4.0, abs=0.3)


@pytest.mark.torch
def test_export_refuses_a_checkpoint_passed_as_the_other_head(quality_run, tmp_path, capsys):
    rc = run_cli(["export", "--organ", str(quality_run), "--out", str(tmp_path / "x.onnx")])
    assert rc == UsageError.exit_code
    err = capsys.readouterr().err
    assert "trained as the quality classifier" in err and "pass it as --quality" in err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.torch
def test_leaking_validation_split_is_refused(tmp_path, capsys):
    pytest.importorskip("torch")
    for name in ("a", "b", "c"):
        write_png(tmp_path / f"{name}.png", disc_image(COLOURS["ear"], ord(name)))
    rows = {"train.csv": [("a.png", "p1"), ("b.png", "p2")], "val.csv": [("c.png", "p2")]}
    for file, content in rows.items():
        with open(tmp_path / file, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(("path", "organ", "recording"))
            w.writerows((p, "ear", r) for p, r in content)
    out = tmp_path / "m.pth"
    rc = _train(tmp_path / "train.csv", out, "--val-split", str(tmp_path / "val.csv"),
                task="organ")
    assert rc == 2
    err = capsys.readouterr().err
    assert "the split leaks: recording p2 is in both" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.torch
def test_model_input_matches_the_exported_graph():
    torch = pytest.importorskip("torch")
    from torch import nn

    from endostream.export.graph import FrameClassifier
    from endostream.export.train import to_model_input

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 2)).eval()
    frames = torch.randint(0, 256, (3, 224, 224, 3), dtype=torch.uint8)
    (graph_probs,) = FrameClassifier({"quality": net})(frames)
    with torch.inference_mode():
        train_probs = torch.softmax(net(to_model_input(frames)), dim=1)
    assert torch.equal(graph_probs, train_probs)


@pytest.mark.torch
def test_cli_help_defaults_match_the_recipe():
    pytest.importorskip("torch")
    from endostream.export import train as T
    from endostream.export.augment import PARTS
    from endostream.export.partial_labels import DEFAULT_ORGAN_SHARE
    from endostream.export.selection import DEFAULT_PATIENCE
    from endostream.export.train_command import AUGMENT_PARTS, HELP_DEFAULTS, LR_SCHEDULES
    from endostream.export.train_config import LR_SCHEDULES as SCHEDULES

    assert HELP_DEFAULTS == {"lr": T.DEFAULT_LR, "batch": T.DEFAULT_BATCH,
                             "epochs": T.DEFAULT_EPOCHS, "val_fraction": D.DEFAULT_VAL_FRACTION,
                             "synth_bad": S.DEFAULT_SYNTH_BAD, "video_fps": D.DEFAULT_VIDEO_FPS,
                             "patience": DEFAULT_PATIENCE, "organ_share": DEFAULT_ORGAN_SHARE}
    assert AUGMENT_PARTS == PARTS
    assert LR_SCHEDULES == SCHEDULES


@pytest.mark.torch
@pytest.mark.slow
def test_sigint_saves_a_checkpoint_and_exits_130(tiny_dataset, tmp_path):
    pytest.importorskip("torch")
    import signal

    import torch

    from endostream.export.train import sidecar_paths

    out = tmp_path / "int.pth"
    proc = subprocess.Popen(
        [sys.executable, "-m", "endostream", "train", str(tiny_dataset), "--task", "organ",
         "--out", str(out), "--batch", "4", "--lr", "1e-3", "--threads", "1",
         "--val-fraction", "0", "--epochs", "1000"],
        stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:  # wait for the end of the first epoch, then interrupt
            if line.startswith("epoch 1/"):
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stderr.read()
        assert proc.wait(timeout=120) == 130, rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "continue with --resume" in rest
    saved = torch.load(sidecar_paths(out)[1], weights_only=True)
    assert saved["global_step"] >= 3 and out.is_file()
