"""Fine-tuning the model that runs: ``train --init FILE.onnx`` and the loop's validation.

The contract files are real exports (``export_onnx``) of random-init EfficientNetB0
networks whose answers vary with the image (BatchNorm set on frames, heads scaled), and
the bundled model; onnxruntime runs them. Loading a file back into torch must compute
what onnxruntime computes (the export's parity bound), keep the file's classes in its
order, and start training from those weights. The validation tests read labels CSVs with
rows marked as corrections, as ``endostream dataset`` writes them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
onnx = pytest.importorskip("onnx")

from endostream.bundled import demo_model_path  # noqa: E402
from endostream.errors import ModelError, UsageError  # noqa: E402
from endostream.export import onnx_init as O  # noqa: E402
from endostream.export import validation as V  # noqa: E402
from endostream.export.onnx_export import export_onnx, head_spec  # noqa: E402
from endostream.export.parity import FP32_PARITY_BOUND, parity_frames  # noqa: E402
from endostream.export.train import TrainConfig  # noqa: E402
from endostream.export.training_run import TrainingRun  # noqa: E402
from tests.helpers.onnx_models import build_color_model, build_no_metadata_model  # noqa: E402
from tests.test_export import thesis_checkpoint  # noqa: E402
from tests.test_multitask import shared_checkpoint  # noqa: E402
from tests.test_train import run_cli  # noqa: E402

#: The shared test model's organ classes: another order than the data's, and a class the
#: data never teaches, so loading must map rows by name and keep the file's classes.
FILE_ORGANS = ("nose", "ear", "pharynx")
#: Parity frames for the extra exports and checks: a CPU runs the full network at 224.
FEW_FRAMES = 4


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("finetune")


@pytest.fixture(scope="module")
def shared_onnx(workdir) -> Path:
    ckpt = workdir / "both.pth"
    shared_checkpoint(ckpt)
    out = workdir / "both.onnx"
    export_onnx([head_spec("quality", ckpt), head_spec("organ", ckpt, FILE_ORGANS)], out,
                parity_frames=FEW_FRAMES)
    return out


@pytest.fixture(scope="module")
def data(workdir) -> Path:
    from endostream.synth import render_dataset

    root = workdir / "data"
    render_dataset(root, per_class=4, size=(96, 72), recordings=3, bad_fraction=0.5,
                   image_format="png")
    return root


# --- ONNX -> torch ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_shared_export_loads_back_with_the_exports_parity(shared_onnx, workdir):
    weights = O.read_onnx_weights(shared_onnx)
    assert weights.shared and weights.heads == {"quality": ("bad", "good"),
                                                "organ": FILE_ORGANS}
    # Heads and the squeeze-and-excitation convolutions are stored as trained: exactly equal.
    trained = torch.load(workdir / "both.pth", weights_only=True)
    net = O.shared_from_onnx(weights, weights.heads, batches=O.normalised_batches(
        parity_frames(FEW_FRAMES)))
    state = net.state_dict()
    for key in ("heads.organ.1.weight", "heads.quality.1.bias", "features.1.0.block.1.fc1.weight",
                "features.7.0.block.2.fc2.bias"):
        assert torch.equal(state[key], trained[key]), key
    # The folded convolutions come back as another parametrisation of the same function.
    module = O.load_onnx_model(shared_onnx)
    frames = np.array(parity_frames(6, seed=77))  # frames the statistics never saw
    report = O.check_loaded(weights, module, frames)
    assert report.passed and max(report.max_abs_diff.values()) <= FP32_PARITY_BOUND
    assert report.spread > 0.1  # the answers vary, so parity proves something


@pytest.mark.slow
def test_a_pair_and_a_one_head_file_load_back_per_head(workdir):
    quality, organ = workdir / "q.pth", workdir / "o.pth"
    thesis_checkpoint(2, seed=1, path=quality)
    thesis_checkpoint(3, seed=2, path=organ)
    pair = workdir / "pair.onnx"
    export_onnx([head_spec("quality", quality), head_spec("organ", organ)], pair,
                parity_frames=FEW_FRAMES)
    weights = O.read_onnx_weights(pair)
    assert not weights.shared and weights.network_of == {"quality": 0, "organ": 1}
    report = O.check_loaded(weights, O.load_onnx_model(pair), parity_frames(FEW_FRAMES))
    assert report.passed and set(report.max_abs_diff) == {"quality", "organ"}
    one = workdir / "organ.onnx"
    export_onnx([head_spec("organ", organ)], one, parity_frames=FEW_FRAMES)
    report = O.check_loaded(O.read_onnx_weights(one), O.load_onnx_model(one),
                            parity_frames(FEW_FRAMES))
    assert report.passed and set(report.max_abs_diff) == {"organ"}
    with pytest.raises(ModelError, match="one network per head"):
        O.shared_from_onnx(weights, weights.heads)


@pytest.mark.slow
def test_the_bundled_model_loads_back_with_parity():
    weights = O.read_onnx_weights(demo_model_path())
    assert weights.shared and weights.heads["organ"] == ("ear", "nose", "vocal_folds")
    module = O.load_onnx_model(demo_model_path())
    report = O.check_loaded(weights, module, np.array(parity_frames(FEW_FRAMES, seed=5)))
    assert report.passed and report.spread > 0.5


def test_a_file_that_breaks_the_contract_is_refused_with_exit_4(data, tmp_path, capsys):
    no_meta = build_no_metadata_model(tmp_path / "plain.onnx")
    out = tmp_path / "m.pth"
    assert run_cli(["train", str(data), "--task", "organ", "--out", str(out),
                    "--init", str(no_meta)]) == ModelError.exit_code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "endostream export" in err
    # A contract file that is no EfficientNetB0 (the suite's colour model) is refused too.
    colour = build_color_model(tmp_path / "colour.onnx")
    assert run_cli(["train", str(data), "--task", "organ", "--out", str(out),
                    "--init", str(colour)]) == ModelError.exit_code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a backbone and one linear head" in err
    assert not out.exists()


def test_labels_from_the_file_come_first_and_are_kept():
    assert O.merged_labels(FILE_ORGANS, ("ear", "nose", "vocal_folds")) == (
        "nose", "ear", "pharynx", "vocal_folds")
    assert O.merged_labels(None, ("ear", "nose")) == ("ear", "nose")


# --- train --init FILE.onnx -------------------------------------------------------------


@pytest.mark.slow
def test_train_init_onnx_starts_from_the_file_and_one_step_moves_it(shared_onnx, data,
                                                                    workdir, capsys):
    out = workdir / "tuned.pth"
    assert run_cli(["train", str(data), "--task", "both", "--out", str(out), "--init",
                    str(shared_onnx), "--max-steps", "1", "--batch", "2", "--lr", "1e-4",
                    "--threads", "2", "--val-fraction", "0", "--keep", "last"]) == 0
    err = capsys.readouterr().err
    assert "init: " in err and "parity fp32" in err and " ok" in err
    sidecar = json.loads((workdir / "tuned.labels.json").read_text())
    # The file's organ classes in its order, the data's new one after them.
    assert sidecar["heads"]["organ"] == ["nose", "ear", "pharynx", "vocal_folds"]
    tuned = torch.load(out, weights_only=True)
    weights = O.read_onnx_weights(shared_onnx)
    start = O.shared_from_onnx(weights, {"quality": ("bad", "good"),
                                         "organ": ("nose", "ear", "pharynx", "vocal_folds")})
    before = start.state_dict()
    # Adam moves each weight by about lr per step: one step, so every difference is small
    # and the convolutions did move (they were trained, not replaced).
    conv = "features.1.0.block.0.0.weight"
    moved = float((tuned[conv] - before[conv]).abs().max())
    assert 1e-7 < moved < 5e-4
    head = float((tuned["heads.organ.1.weight"][:3] - before["heads.organ.1.weight"][:3])
                 .abs().max())
    assert head < 5e-4  # the file's organ rows, not a new head


def test_init_bundled_names_the_demo_model():
    from endostream.export.init_weights import init_file

    assert init_file("bundled") == demo_model_path()
    assert init_file("imagenet") is None and init_file(None) is None
    # As an input, the bundled model is never an output a run may replace.
    from endostream.errors import EndostreamError
    from endostream.export.train_config import check_train_outputs

    with pytest.raises(EndostreamError, match="--init"):
        check_train_outputs(TrainConfig(dataset=Path("ds"), task="organ",
                                        out=demo_model_path(), init="bundled"))


# --- validation in the loop -------------------------------------------------------------


def _loop_csv(data: Path, folder: Path, corrected: int = 2) -> Path:
    """The synth data set's rows plus ``corrected`` recordings of corrections (image rows
    with the ``sections`` column that endostream dataset fills)."""
    rows = list(csv.DictReader((data / "labels.csv").open()))
    out = folder / "labels.csv"
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "recording", "organ", "quality", V.CORRECTION_COLUMN])
        for r in rows:
            w.writerow([str(data / r["path"]), r["recording"], r["organ"], r["quality"], ""])
        for k in range(corrected):
            for n, r in enumerate(rows[k::3][:4]):
                copy = folder / f"proc{k}" / f"{n}.png"  # frames of another recording
                copy.parent.mkdir(exist_ok=True)
                shutil.copyfile(data / r["path"], copy)
                w.writerow([str(copy), f"proc{k}.mp4", r["organ"], "good",
                            f"proc{k}.corrected.sections.json"])
    return out


def test_the_correction_marker_is_the_column_dataset_writes():
    from endostream.corrections.dataset import COLUMNS

    assert V.CORRECTION_COLUMN in COLUMNS


def test_validation_by_fraction_draws_among_recordings_that_are_no_corrections(data, tmp_path):
    labels = _loop_csv(data, tmp_path)
    assert V.corrected_recordings(labels) == {"proc0.mp4", "proc1.mp4"}
    stream = io.StringIO()
    run = TrainingRun(TrainConfig(dataset=labels, task="organ", out=tmp_path / "m.pth",
                                  val_fraction=0.5, seed=3), stream)
    run.prepare()
    assert not {"proc0.mp4", "proc1.mp4"} & set(run.val_set.recordings())
    printed = stream.getvalue()
    val_line = next(ln for ln in printed.splitlines() if ln.startswith("validation"))
    for rec in run.val_set.recordings():  # names and frame counts
        frames = sum(1 for s in run.val_set.samples if s.recording == rec)
        assert f"{rec} ({frames})" in val_line
    assert "not corrections" in val_line
    assert "corrected recordings trained on: proc0.mp4 (4), proc1.mp4 (4)" in printed


def test_validation_that_would_hold_out_every_correction_is_refused(data, tmp_path, capsys):
    labels = _loop_csv(data, tmp_path, corrected=1)
    out = tmp_path / "m.pth"
    argv = ["train", str(labels), "--task", "organ", "--out", str(out),
            "--val-recordings", "proc0.mp4"]
    assert run_cli(argv) == UsageError.exit_code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "every corrected recording (proc0.mp4)" in err and "--hold-out-corrections" in err
    assert not out.exists()
    # Asked for explicitly, it is allowed (and said).
    stream = io.StringIO()
    run = TrainingRun(TrainConfig(dataset=labels, task="organ", out=out,
                                  val_recordings=("proc0.mp4",), hold_out_corrections=True),
                      stream)
    run.prepare()
    assert "held out for validation: proc0.mp4 (4)" in stream.getvalue()


def test_a_set_of_corrections_alone_is_split_among_them_but_never_all(tmp_path):
    from endostream.evaluation.datasets import LabelledSet, Sample

    s = [Sample(Path(f"{r}_{i}.png"), r % 2, f"p{r}") for r in range(4) for i in range(3)]
    ds = LabelledSet("organ", ("ear", "nose"), tuple(s), Path("."))
    corrected = {f"p{r}" for r in range(4)}
    train, val = V.split(ds, val_fraction=0.5, seed=0, corrected=corrected)
    held = {ds.samples[i].recording for i in val}
    assert held and held < corrected and len(train) + len(val) == len(s)
    V.check_corrections_trained(ds.subset(val), corrected, allowed=False)  # not all: fine
    with pytest.raises(UsageError, match="every corrected recording"):
        V.check_corrections_trained(ds, corrected, allowed=False)


# --- the bundled model's training data --------------------------------------------------


def test_the_model_cards_training_data_is_one_deterministic_command(tmp_path):
    """MODEL_CARD.md's ``synth --dataset`` command is the one the parity benchmark ran, and
    the same arguments write the same bytes (checked at a small count)."""
    from benchmarks.shared_parity import TRAIN_SET

    card = (Path(__file__).parents[1] / "endostream" / "data" / "MODEL_CARD.md").read_text()
    command = (f"endostream synth --dataset ds --per-class {TRAIN_SET['per_class']} "
               f"--recordings {TRAIN_SET['recordings']} --seed {TRAIN_SET['seed']} "
               "--size 320x240")
    assert command in card

    def digest(folder: Path) -> str:
        h = hashlib.sha256()
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(f.relative_to(folder).as_posix().encode() + f.read_bytes())
        return h.hexdigest()

    argv = ["--per-class", "3", "--recordings", "2", "--seed", str(TRAIN_SET["seed"]),
            "--size", "320x240"]
    assert run_cli(["synth", "--dataset", str(tmp_path / "a"), *argv]) == 0
    assert run_cli(["synth", "--dataset", str(tmp_path / "b"), *argv]) == 0
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert len(list(csv.DictReader((tmp_path / "a" / "labels.csv").open()))) == 9


def test_dataset_marks_its_rows_as_corrections_and_says_how_to_train(tmp_path, capsys):
    from tests.helpers.review import make_procedure

    tiny = make_procedure(tmp_path / "rec")
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(tiny.video, old / "clip.mp4")
    (old / "labels.csv").write_text("path,organ,quality,recording\nclip.mp4,ear,good,old1\n")
    out = tmp_path / "ds" / "labels.csv"
    out.parent.mkdir()
    assert run_cli(["dataset", str(tiny.sections), "--out", str(out), "--margin", "0.2",
                    "--include", str(old)]) == 0
    said = capsys.readouterr().err.strip().splitlines()
    assert V.corrected_recordings(out) == {"procedure.mp4"}  # the included row is old data
    model = json.loads(tiny.sections.read_text())["models"]["path"]
    assert said[-1].startswith(f"next: endostream train {out} --task both --init {model} ")
    assert "--epochs 5" in said[-1] and "trains on the corrected ones" in said[-1]
