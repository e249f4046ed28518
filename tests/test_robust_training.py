"""Training that holds up on other scopes: field-of-view masks, augmentation, the shortcut
check, best checkpoint and early stopping, temperature scaling, ``--init``.

Masks, augmentation, the shortcut check (on tiny hand-made ONNX models) and calibration
need no network and run in milliseconds; the training tests (``torch``, ``slow``) run a few
steps of a random-init EfficientNetB0 on a tiny generated set, like tests/test_train.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from endostream.errors import UsageError
from endostream.evaluation import datasets as D
from endostream.evaluation.shortcut import shortcut_check
from endostream.export import sampling as S
from endostream.export.augment import PARTS, AugmentConfig, Augmenter
from endostream.export.calibration import calibrate, expected_calibration_error, softmax
from endostream.export.grouping import regroup
from endostream.fov import SHAPES, FovMask
from endostream.synth.dataset import parse_scopes
from tests.helpers.onnx_models import _save, color_image, contract_metadata
from tests.test_train import run_cli, write_png

RED, BLUE = (200, 70, 40), (90, 200, 220)


# --- field-of-view masks and augmentation ---------------------------------------------


def test_mask_shape_is_independent_of_the_label_over_a_seeded_epoch():
    # A skewed set (one class 8x the other): balanced sampling, then one mask per item.
    targets = [0] * 80 + [1] * 10 + [2] * 30
    plan = S.epoch_plan(targets, ["ear", "nose", "vocal_folds"], epoch=3, seed=11, length=3000)
    aug = Augmenter(AugmentConfig())
    table = np.zeros((3, len(SHAPES)))
    for index, _, seed in plan:
        table[targets[index], SHAPES.index(aug.fov_mask(seed).shape)] += 1
    assert (table > 0).all()  # every class sees every shape
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / expected).sum())
    # chi-square, 8 degrees of freedom: 26.1 is the 0.1 % point; a mask tied to the label
    # (e.g. shape = label) would give thousands.
    assert chi2 < 26.1, table


def test_augmentation_is_seeded_switchable_and_never_at_validation(tmp_path):
    img = color_image(RED, seed=1)
    aug = Augmenter(AugmentConfig())
    assert np.array_equal(aug(img, 5), aug(img, 5))
    assert not np.array_equal(aug(img, 5), aug(img, 6))
    assert np.array_equal(Augmenter(AugmentConfig.without(["all"]))(img, 5), img)
    # One part off leaves the other parts' draws alone.
    no_grey = Augmenter(AugmentConfig.without(["grey"]))
    assert all(no_grey.fov_mask(s) == aug.fov_mask(s) for s in range(20))
    with pytest.raises(UsageError, match="--no-augment 'tint'"):
        AugmentConfig.without(["tint"])
    assert set(AugmentConfig().enabled()) == set(PARTS)
    # The item loader augments only when given an augmenter (training); validation has none.
    write_png(tmp_path / "ear" / "a__1.png", img)
    ds = D.read_dataset(tmp_path, "organ")
    plain, label = S.ItemLoader(ds)[(0, False, 5)]
    assert np.array_equal(plain, ds.load(0)) and label == 0
    augmented, _ = S.ItemLoader(ds, augment=aug)[(0, False, 5)]
    assert np.array_equal(augmented, aug(ds.load(0), 5))


def test_outside_the_field_is_near_black_like_the_runtime_leaves_it():
    img = np.full((224, 224, 3), 180, np.uint8)
    for name in ("round", "elliptical"):
        out = FovMask.named(name).apply(img, np.random.default_rng(0))
        cover = FovMask.named(name).coverage(224)
        assert out[cover == 0].max() <= 25 and out[cover == 1].min() == 180
    rng = np.random.default_rng(4)
    for _ in range(30):
        mask = FovMask.random(rng)
        inside = mask.coverage(224).mean()
        assert 0.45 < inside <= 1.0, mask  # always a usable field, never a sliver


def test_synthetic_scopes_give_each_organ_its_own_mask_and_colour(tmp_path):
    from endostream.synth import render_dataset

    assert parse_scopes("ear=full:grey") == {"ear": ("full", "grey")}
    with pytest.raises(UsageError, match="ORGAN=SHAPE"):
        parse_scopes("ear=hexagon")
    render_dataset(tmp_path, per_class=2, size=(96, 72), recordings=1, image_format="png",
                   scopes={"ear": ("full", "grey"), "nose": ("circle", "warm")})
    ds = D.read_dataset(tmp_path, "organ")
    by_label = {ds.labels[s.label]: ds.load(i) for i, s in enumerate(ds.samples)}
    ear, nose = by_label["ear"], by_label["nose"]
    assert np.ptp(ear.astype(int), axis=2).max() <= 2  # grey
    assert ear[:8, :8].mean() > 20 and nose[:4, :4].mean() < 20  # no mask / round mask


def test_an_organ_without_a_scope_keeps_the_recordings_own_field_of_view(tmp_path):
    """Another organ's scope must not leak into the next organ's frames: vocal folds (no
    scope given) come out exactly as without any --scopes."""
    from endostream.synth import render_dataset

    for name, scopes in (("plain", None), ("scoped", {"ear": ("full", "none")})):
        render_dataset(tmp_path / name, per_class=2, size=(96, 72), recordings=2,
                       image_format="png", scopes=scopes)
    for recording in ("rec00", "rec01"):
        for k in range(1):
            image = f"vocal_folds/{recording}_{k:04d}_good.png"
            assert (tmp_path / "plain" / image).read_bytes() == \
                (tmp_path / "scoped" / image).read_bytes(), image


def test_group_by_rule_recovers_recordings(tmp_path):
    for k in range(4):
        write_png(tmp_path / "ear" / f"pat{k % 2}-{k}.png", color_image(RED, seed=k))
    ds = D.read_dataset(tmp_path, "organ")
    assert not ds.recordings_known and len(ds.recordings()) == 4
    grouped = regroup(ds, "prefix:-")
    assert grouped.recordings_known and sorted(grouped.recordings()) == ["pat0", "pat1"]


# --- the shortcut check -----------------------------------------------------------------


def _region_model(path: Path, box: tuple[int, int, int, int], *, dark_is: str) -> Path:
    """An organ head (ear, nose) that looks only at ``box`` = (y0, y1, x0, x1) of the input.

    ``dark_is="ear"``: a dark box means ear (a model that learned the round scope's black
    corners). ``dark_is="red"``: red-dominant box means ear (a model that looks at tissue).
    """
    y0, y1, x0, x1 = box
    init = [helper.make_tensor(n, TensorProto.INT64, [len(v)], v) for n, v in (
        ("starts", [y0, x0]), ("ends", [y1, x1]), ("axes", [1, 2]))]
    nodes = [helper.make_node("Cast", ["frames"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Slice", ["f", "starts", "ends", "axes"], ["box"]),
             helper.make_node("ReduceMean", ["box"], ["m"], axes=[1, 2], keepdims=0)]  # [N, 3]
    if dark_is == "ear":
        w = np.array([[-1, 1]] * 3, np.float32) / 10.0  # sum of channels vs a threshold
        b = np.array([12.0, -12.0], np.float32)
    else:
        w = np.array([[1, -1], [-1, 1], [0, 0]], np.float32) / 10.0  # red minus green
        b = np.zeros(2, np.float32)
    init += [helper.make_tensor("w", TensorProto.FLOAT, [3, 2], w.ravel()),
             helper.make_tensor("b", TensorProto.FLOAT, [2], b)]
    nodes += [helper.make_node("MatMul", ["m", "w"], ["mw"]),
              helper.make_node("Add", ["mw", "b"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["organ"], axis=1)]
    graph = helper.make_graph(
        nodes, "region", [helper.make_tensor_value_info("frames", TensorProto.UINT8,
                                                        ["N", 224, 224, 3])],
        [helper.make_tensor_value_info("organ", TensorProto.FLOAT, ["N", 2])], init)
    return _save(graph, contract_metadata({"organ": ["ear", "nose"]}), path)


@pytest.fixture()
def organ_set(tmp_path) -> Path:
    """Full-frame images (no black border): red = ear, blue = nose."""
    root = tmp_path / "set"
    for label, rgb in (("ear", RED), ("nose", BLUE)):
        for k in range(6):
            write_png(root / label / f"r{k}__{k}.png", color_image(rgb, seed=k, size=160))
    return root


def test_evaluate_flags_a_model_that_reads_the_mask(organ_set, tmp_path, capsys):
    corner = _region_model(tmp_path / "corner.onnx", (0, 12, 0, 12), dark_is="ear")
    out = tmp_path / "eval"
    assert run_cli(["evaluate", "--dataset", str(organ_set), "--task", "organ",
                    "--models", str(corner), "--out-dir", str(out), "--device", "cpu"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["shortcut"]["flagged"] and doc["shortcut"]["changed"] == 12
    assert doc["shortcut"]["answers"]["round"]["ear"] == 12  # round mask: all "ear"
    assert "FLAGGED" in capsys.readouterr().out


def test_evaluate_passes_a_model_that_reads_the_tissue(organ_set, tmp_path, capsys):
    centre = _region_model(tmp_path / "centre.onnx", (96, 128, 96, 128), dark_is="red")
    out = tmp_path / "eval"
    assert run_cli(["evaluate", "--dataset", str(organ_set), "--task", "organ",
                    "--models", str(centre), "--out-dir", str(out), "--device", "cpu"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["accuracy"] == 1.0
    assert doc["shortcut"]["changed"] == 0 and not doc["shortcut"]["flagged"]


def test_shortcut_check_counts_per_image_not_per_mask():
    images = np.stack([color_image(RED, seed=k) for k in range(8)])

    def first(n):  # answers follow the mask for the first n images only (one batch)
        def predict(x):
            p = np.tile([[1.0, 0.0]], (len(x), 1))
            dark = x[:n, 0, 0].sum(axis=1) < 30
            p[:n][dark] = [0.0, 1.0]
            return p
        return predict

    report = shortcut_check(images, first(4), ("ear", "nose"), threshold=0.4)
    assert (report.changed, report.frames, report.flagged) == (4, 8, True)
    # Two changed answers are too few to flag, whatever the share.
    report = shortcut_check(images[:4], first(2), ("ear", "nose"), threshold=0.4)
    assert (report.changed, report.flagged) == (2, False)
    # ... and the line says so, not "ok" (export's two parity frames: "2 of 2 ... ok").
    assert report.summary().endswith("too few images to judge (a flag needs 3 changed "
                                     "answers)")
    assert shortcut_check(images, first(0), ("ear", "nose")).summary().endswith(": ok")


# --- calibration --------------------------------------------------------------------------


def test_temperature_lowers_the_calibration_error_of_an_over_confident_head():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    logits = rng.normal(size=(600, 3))
    logits[np.arange(600), y] += 1.2
    logits *= 5.0  # right about 75 % of the time, but ~100 % sure
    fit = calibrate(logits, y)
    assert fit.temperature > 2.0
    assert fit.ece_after < fit.ece_before / 3
    assert fit.nll_after < fit.nll_before
    # The answers do not change, only the confidence.
    assert np.array_equal(softmax(logits).argmax(1), softmax(logits, fit.temperature).argmax(1))
    assert expected_calibration_error(softmax(logits, fit.temperature), y) == fit.ece_after


# --- training (torch) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def organ_dataset(tmp_path_factory) -> Path:
    from endostream.synth import render_dataset

    root = tmp_path_factory.mktemp("organs")
    render_dataset(root, per_class=3, size=(96, 72), recordings=3, image_format="png")
    return root


def _train(dataset: Path, out: Path, *extra: str) -> int:
    return run_cli(["train", str(dataset), "--task", "organ", "--out", str(out), "--batch", "4",
                    "--lr", "1e-3", "--threads", "2", "--seed", "3", *extra])


@pytest.mark.torch
@pytest.mark.slow
def test_best_checkpoint_and_early_stopping(organ_dataset, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import torch

    from endostream.export import train as T

    losses = iter([1.0, 0.5, 0.9, 0.8, 0.7])

    def scripted(self):
        return {"val_loss": next(losses), "val_accuracy": 0.5, "val_recall": {}}

    monkeypatch.setattr(T.TrainingRun, "validate", scripted)
    out = tmp_path / "organ.pth"
    assert _train(organ_dataset, out, "--epochs", "5", "--patience", "2",
                  "--max-steps", "9", "--no-calibrate") == 0
    side = T.read_labels_sidecar(out)
    resume = torch.load(T.sidecar_paths(out)[1], weights_only=True)
    assert side["epoch_kept"] == 2 and side["kept"] == "best"
    assert len(resume["history"]) == 4  # epochs 3 and 4 did not improve: stopped early
    kept = torch.load(out, weights_only=True)
    assert any(not torch.equal(kept[k], resume["model"][k]) for k in kept)  # not the last


@pytest.mark.torch
@pytest.mark.slow
def test_calibrated_training_round_trips_through_export(organ_dataset, tmp_path, capsys):
    pytest.importorskip("torch")
    import onnxruntime as ort
    import torch

    from endostream.contract import META_TEMPERATURE
    from endostream.export.model import classifier_from_checkpoint
    from endostream.export.parity import parity_frames
    from endostream.export.train import read_labels_sidecar, sidecar_paths, to_model_input

    out = tmp_path / "organ.pth"
    assert _train(organ_dataset, out, "--max-steps", "1", "--val-fraction", "0.34") == 0
    side = read_labels_sidecar(out)
    assert side["calibration"]["frames"] >= 1 and side["augment"] == list(PARTS)
    # The fit needs more validation frames than this tiny set has; set a temperature as
    # training would, and check that export folds it in and records it.
    side["temperature"] = 2.5
    sidecar_paths(out)[0].write_text(json.dumps(side))
    onnx_path = tmp_path / "organ.onnx"
    assert run_cli(["export", "--organ", str(out), "--out", str(onnx_path),
                    "--parity-frames", "3"]) == 0
    printed = capsys.readouterr().out
    assert "temperature 2.500" in printed and "shortcut check" in printed
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta[META_TEMPERATURE]) == {"organ": 2.5}
    frames = parity_frames(3)
    net, _ = classifier_from_checkpoint(out)
    with torch.inference_mode():
        want = torch.softmax(net(to_model_input(torch.from_numpy(np.array(frames)))) / 2.5, 1)
    got = ort.InferenceSession(str(onnx_path)).run(None, {"frames": frames})[0]
    assert np.abs(got - want.numpy()).max() < 1e-4


@pytest.mark.torch
def test_init_imagenet_without_network_says_what_it_needs(organ_dataset, tmp_path,
                                                          monkeypatch, capsys):
    pytest.importorskip("torch")
    import torchvision.models._api as api

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")  # what urllib raises offline (URLError)

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    code = _train(organ_dataset, tmp_path / "o.pth", "--init", "imagenet", "--max-steps", "1")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "--init imagenet needs the network once" in err[-1] and "--init FILE" in err[-1]


@pytest.mark.torch
@pytest.mark.slow
def test_init_file_works_offline(organ_dataset, tmp_path):
    pytest.importorskip("torch")
    import torch

    from endostream.export.model import build_classifier

    torch.manual_seed(0)
    init = tmp_path / "init.pth"
    torch.save(build_classifier(1000).state_dict(), init)
    assert _train(organ_dataset, tmp_path / "o.pth", "--init", str(init), "--max-steps", "1",
                  "--no-calibrate") == 0


@pytest.mark.torch
def test_unknown_recordings_make_validation_optimistic_unless_grouped(tmp_path, caplog):
    pytest.importorskip("torch")
    from endostream.export.train import TrainConfig, TrainingRun

    for label, rgb in (("ear", RED), ("nose", BLUE)):
        for k in range(6):
            write_png(tmp_path / "set" / label / f"pat{k % 3}-{k}.png",
                      color_image(rgb, seed=k, size=64))
    base = dict(dataset=tmp_path / "set", task="organ", out=tmp_path / "o.pth", val_fraction=0.34)
    run = TrainingRun(TrainConfig(**base), stream=None)
    run.prepare()
    assert run.optimistic and "validation is optimistic" in caplog.text
    caplog.clear()
    run = TrainingRun(TrainConfig(**base, group_by="prefix:-"), stream=None)
    run.prepare()
    assert not run.optimistic and "optimistic" not in caplog.text
    assert set(run.val_set.recordings()).isdisjoint(run.train_set.recordings())
