"""One backbone, two heads: partial labels, masked losses, ``train --task both`` -> export.

The shared-backbone network is a random-init EfficientNetB0 (nothing is downloaded). The
loss tests run it on a few 64x64 images (the network takes any size), so they stay fast;
the end-to-end test trains a few steps on a tiny generated set with frames that have no
organ label, exports with ``--shared`` and segments a short clip.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
onnx = pytest.importorskip("onnx")

from torch import nn  # noqa: E402

from endostream.cli import main  # noqa: E402
from endostream.errors import UsageError  # noqa: E402
from endostream.export import partial_labels as P  # noqa: E402
from endostream.export.graph import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from endostream.export.multitask import SharedBackbone  # noqa: E402
from endostream.export.onnx_export import export_onnx, head_spec  # noqa: E402
from endostream.export.parity import FP32_PARITY_BOUND, parity_frames  # noqa: E402
from tests.test_train import COLOURS, disc_image, write_png  # noqa: E402

HEADS = {"quality": 2, "organ": 3}


def run_cli(argv: list[str]) -> int:
    return main(argv)


# --- masked losses: a head without labels is not touched -------------------------------


def _step(targets: list[list[int]]) -> tuple[SharedBackbone, dict[str, torch.Tensor]]:
    """One Adam step of a fresh shared model on 4 small images; returns it and its start."""
    torch.manual_seed(0)
    net = SharedBackbone(HEADS).train()
    before = {k: v.detach().clone() for k, v in net.state_dict().items()}
    x = torch.randn(len(targets), 3, 64, 64)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    total, per_head = P.masked_loss(net(x), torch.tensor(targets))
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    return net, before


def test_a_batch_without_organ_labels_leaves_the_organ_head_untouched():
    net, before = _step([[0, -1], [1, -1], [1, -1], [0, -1]])
    organ = net.heads["organ"][1]
    assert organ.weight.grad is None and organ.bias.grad is None  # not in the loss at all
    for key in ("heads.organ.1.weight", "heads.organ.1.bias"):
        assert torch.equal(net.state_dict()[key], before[key])
    quality = net.heads["quality"][1]
    assert quality.weight.grad is not None and quality.weight.grad.abs().sum() > 0
    assert not torch.equal(net.state_dict()["heads.quality.1.weight"],
                           before["heads.quality.1.weight"])


def test_the_loss_is_the_sum_of_each_heads_mean_over_its_labelled_frames():
    torch.manual_seed(1)
    logits = {"quality": torch.randn(4, 2), "organ": torch.randn(4, 3)}
    targets = torch.tensor([[1, 2], [0, -1], [1, 0], [-1, 1]])
    total, per_head = P.masked_loss(logits, targets)
    ce = nn.functional.cross_entropy
    q = ce(logits["quality"][[0, 1, 2]], torch.tensor([1, 0, 1]))
    o = ce(logits["organ"][[0, 2, 3]], torch.tensor([2, 0, 1]))
    assert torch.allclose(per_head["quality"], q) and torch.allclose(per_head["organ"], o)
    assert torch.allclose(total, q + o)
    assert P.masked_loss(logits, torch.full((4, 2), -1)) == (None, {})


def test_batchnorm_recalibration_takes_the_statistics_of_the_frames_given():
    from endostream.export.multitask import recalibrate_batchnorm

    torch.manual_seed(2)
    net = SharedBackbone(HEADS).train()
    x = torch.randn(16, 3, 64, 64) * 3 + 1  # far from the initial statistics
    rng = torch.get_rng_state()
    assert recalibrate_batchnorm(net, [x[:8], x[8:]]) == 16
    assert net.training and torch.equal(torch.get_rng_state(), rng)  # nothing random drawn
    conv, bn = net.features[0][0], net.features[0][1]
    with torch.no_grad():
        y = conv(x)
    assert torch.allclose(bn.running_mean, y.mean((0, 2, 3)), atol=1e-4)
    # The average of the two halves' unbiased variances.
    halves = [y[:8].transpose(0, 1).flatten(1).var(1), y[8:].transpose(0, 1).flatten(1).var(1)]
    assert torch.allclose(bn.running_var, (halves[0] + halves[1]) / 2, rtol=1e-3)
    assert all(m.momentum == 0.1 for m in net.modules() if isinstance(m, nn.BatchNorm2d))


# --- partial labels -----------------------------------------------------------------------


def _partial_csv(root: Path) -> Path:
    """8 frames of 2 recordings: organ missing on some, one organ label on a bad frame."""
    rows = []
    for k in range(8):
        organ = ("ear", "nose")[k % 2]
        write_png(root / f"f{k}.png", disc_image(COLOURS[organ], k))
        quality = "bad" if k == 6 else "good"
        known = organ if k not in (4, 5) else ""
        rows.append((f"f{k}.png", known, quality, f"rec{k // 4}"))
    path = root / "labels.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("path", "organ", "quality", "recording"))
        w.writerows(rows)
    return path


def test_partial_set_joins_the_heads_and_keeps_organ_on_bad_frames(tmp_path):
    ds = P.read_partial_set(_partial_csv(tmp_path), synth_bad=0.5)
    assert ds.heads == {"quality": ("bad", "good"), "organ": ("ear", "nose")}
    t = ds.targets
    by_name = {Path(s.path).name: tuple(t[i]) for i, s in enumerate(ds.samples)}
    assert by_name["f0.png"] == (1, 0) and by_name["f1.png"] == (1, 1)
    assert by_name["f4.png"] == (1, -1)  # no organ label
    # organ known on a bad frame: kept, as --task organ keeps it (the pair's organ network
    # learns from such frames too)
    assert by_name["f6.png"] == (0, 0)
    assert ds.recordings() == ["rec0", "rec1"]


def test_epoch_plan_balances_each_head_and_is_seeded():
    rng = np.random.default_rng(0)
    q = (rng.random(400) < 0.9).astype(int)  # mostly good
    o = np.where(rng.random(400) < 0.3, (rng.random(400) < 0.1).astype(int), -1)
    targets = np.stack([q, np.where(q == 1, o, -1)], axis=1)
    labels = (("bad", "good"), ("ear", "nose"))
    plan = P.epoch_plan(targets, labels, epoch=0, seed=0, synth_bad=0.5, length=8000)
    assert plan == P.epoch_plan(targets, labels, epoch=0, seed=0, synth_bad=0.5, length=8000)
    class Frames:  # the labels, no images
        def __init__(self):
            self.labels, self.targets = labels, targets
            self.samples = [SimpleNamespace(label=int(q)) for q in targets[:, 0]]

        def load(self, index: int) -> np.ndarray:
            return np.zeros((8, 8, 3), np.uint8)

    loader = P.ItemLoader(Frames())
    taught = np.array([loader[item][1] for item in plan])
    quality, organ = taught[taught[:, 0] >= 0, 0], taught[taught[:, 1] >= 0, 1]
    assert len(quality) == len(organ) == 4000  # half the epoch per head, one head per item
    assert abs(quality.mean() - 0.5) < 0.03  # 90 % good in the set, half in what it learns
    assert abs(organ.mean() - 0.5) < 0.03  # 10 % nose in the set

    # --organ-share: the organ head's part of the epoch, still balanced within it
    plan = P.epoch_plan(targets, labels, epoch=0, seed=0, synth_bad=0.5, length=8000,
                        organ_share=0.75)
    taught = np.array([loader[item][1] for item in plan])
    quality, organ = taught[taught[:, 0] >= 0, 0], taught[taught[:, 1] >= 0, 1]
    assert (len(quality), len(organ)) == (2000, 6000)
    assert abs(quality.mean() - 0.5) < 0.04 and abs(organ.mean() - 0.5) < 0.03
    for share in (0.0, 1.0, 1.5):  # a head with no part of the epoch would never learn
        with pytest.raises(UsageError, match="--organ-share out of range"):
            P.epoch_plan(targets, labels, epoch=0, seed=0, organ_share=share)


def test_an_organ_share_that_starves_a_head_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("path,quality,organ,recording\n")
    out = tmp_path / "both.pth"
    assert run_cli(["train", str(tmp_path), "--task", "both", "--organ-share", "1",
                    "--out", str(out)]) == UsageError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--organ-share out of range: 1.0" in err[0]
    assert not out.exists()


def test_a_dataset_without_organ_labels_is_refused(tmp_path):
    for k in range(2):
        write_png(tmp_path / f"{k}.png", disc_image(COLOURS["ear"], k))
    (tmp_path / "labels.csv").write_text("path,quality,recording\n0.png,good,a\n1.png,bad,b\n")
    with pytest.raises(UsageError, match="train --task quality instead"):
        P.read_partial_set(tmp_path)


# --- the exported graph -------------------------------------------------------------------


def shared_checkpoint(path: Path, seed: int = 0) -> SharedBackbone:
    """A random-init shared model whose answers vary by frame (BatchNorm recalibrated)."""
    torch.manual_seed(seed)
    net = SharedBackbone(HEADS)
    frames = torch.from_numpy(np.array(parity_frames(8, seed=seed)))
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    x = (frames.permute(0, 3, 1, 2).float() / 255 - mean) / std
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        net.train()
        net.features(x)
        net.eval()
        features = net.embed(x)
        for head in net.heads.values():
            linear = head[1]
            logits = linear(features) - linear.bias
            linear.weight.mul_(2.0 / (logits - logits.mean(0)).std())
            linear.bias.copy_(-(linear(features) - linear.bias).mean(0))
    torch.save(net.state_dict(), path)
    return net


@pytest.mark.slow
def test_shared_export_runs_one_backbone_with_parity_per_head(tmp_path):
    ckpt = tmp_path / "both.pth"
    shared_checkpoint(ckpt)
    out = tmp_path / "both.onnx"
    result = export_onnx([head_spec("quality", ckpt), head_spec("organ", ckpt)], out,
                         parity_frames=6)
    report = result.parity
    assert set(report.max_abs_diff) == {"quality", "organ"} and report.passed
    assert all(d <= FP32_PARITY_BOUND for d in report.max_abs_diff.values())
    assert report.spread > 0.1  # the answers vary, so parity proves something
    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == ["quality", "organ"]
    convs = sum(1 for n in model.graph.node if n.op_type == "Conv")
    one_backbone = sum(1 for m in SharedBackbone(HEADS).features.modules()
                       if isinstance(m, nn.Conv2d))
    assert convs == one_backbone  # the backbone is in the graph once, not per head
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["endostream.heads"]) == {"quality": ["bad", "good"],
                                                     "organ": ["ear", "nose", "vocal_folds"]}


def test_export_shared_folds_each_heads_temperature(tmp_path, capsys):
    """train --task both stores one temperature per head; export folds each into its own."""
    ckpt = tmp_path / "both.pth"
    shared_checkpoint(ckpt)
    sidecar = {"format": "endostream.train-labels/1", "task": "both", "labels": ["bad", "good"],
               "heads": {"quality": ["bad", "good"], "organ": ["ear", "nose", "vocal_folds"]},
               "temperature": {"quality": 1.5, "organ": 3.0}}
    (tmp_path / "both.labels.json").write_text(json.dumps(sidecar))
    out = tmp_path / "both.onnx"
    assert run_cli(["export", "--shared", str(ckpt), "--parity-frames", "4",
                    "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "quality: temperature 1.500" in stdout and "organ: temperature 3.000" in stdout
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["endostream.temperature"]) == {"quality": 1.5, "organ": 3.0}


def test_init_weights_load_the_shared_backbone(tmp_path):
    from torchvision.models import efficientnet_b0

    torch.manual_seed(5)
    imagenet = efficientnet_b0(weights=None)
    path = tmp_path / "imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    net = SharedBackbone(HEADS, init_weights=path)
    ref = imagenet.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in net.state_dict().items()
               if k.startswith("features."))
    assert net.heads["organ"][1].out_features == 3


@pytest.mark.slow
def test_backbone_lr_trains_new_heads_on_a_trained_backbone(tmp_path):
    """The recipe of the shared model: a quality network's backbone (``--init q.pth``),
    new heads at --lr, the backbone at --backbone-lr; the resume keeps both rates and
    the organ head's share of the epochs."""
    from endostream.export.model import build_classifier
    from endostream.export.train import sidecar_paths
    from endostream.synth import render_dataset

    data = tmp_path / "data"
    render_dataset(data, per_class=4, size=(96, 72), recordings=3, bad_fraction=0.5,
                   image_format="png")
    torch.manual_seed(7)
    quality = tmp_path / "quality.pth"  # thesis format: its head is skipped by --init
    torch.save(build_classifier(2).state_dict(), quality)
    start = torch.load(quality)

    def moved(out: Path, backbone_lr: str) -> float:
        assert run_cli(["train", str(data), "--task", "both", "--out", str(out), "--batch", "4",
                        "--lr", "1e-3", "--backbone-lr", backbone_lr, "--init", str(quality),
                        "--threads", "2", "--seed", "3", "--max-steps", "3",
                        "--keep", "last", "--organ-share", "0.75"]) == 0
        got = torch.load(out)
        weights = [k for k in got if k.startswith("features.") and k.endswith(".weight")
                   and got[k].dim() == 4]  # convolutions: no BatchNorm statistics
        backbone = max(float((got[k] - start[k]).abs().max()) for k in weights)
        return backbone

    still = moved(tmp_path / "still.pth", "1e-12")
    fine = moved(tmp_path / "fine.pth", "1e-4")
    assert still < 1e-9 < fine < 0.01  # Adam moves each weight by about lr per step
    saved = torch.load(sidecar_paths(tmp_path / "fine.pth")[1], weights_only=True)
    assert [g["lr"] for g in saved["optimizer"]["param_groups"]] == [1e-4, 1e-3]
    assert saved["config"]["backbone_lr"] == 1e-4
    assert saved["config"]["organ_share"] == 0.75


def test_a_shared_checkpoint_mixed_with_another_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "both.pth"
    torch.save(SharedBackbone(HEADS).state_dict(), ckpt)
    other = tmp_path / "organ.pth"
    from endostream.export.model import build_classifier
    torch.save(build_classifier(3).state_dict(), other)
    out = tmp_path / "x.onnx"
    assert run_cli(["export", "--quality", str(ckpt), "--organ", str(other),
                    "--out", str(out)]) == UsageError.exit_code
    assert "export it alone with --shared" in capsys.readouterr().err
    assert run_cli(["export", "--shared", str(ckpt), "--organ", str(other),
                    "--out", str(out)]) == UsageError.exit_code
    assert "without --quality/--organ" in capsys.readouterr().err
    assert not out.exists()


# --- train --task both -> export --shared -> segment -----------------------------------


@pytest.mark.slow
def test_train_both_exports_and_segments(tmp_path):
    import jsonschema

    from endostream.export.train import read_labels_sidecar
    from endostream.inference.classifier import Classifier
    from endostream.output.sections_file import schema
    from endostream.synth import ProcedureSpec, render_dataset, render_procedure

    data = tmp_path / "data"
    # no_organ: black out-of-body frames with quality bad and no organ label.
    render_dataset(data, per_class=4, size=(96, 72), recordings=3, bad_fraction=0.5,
                   image_format="png", no_organ=1)
    ckpt = tmp_path / "both.pth"
    assert run_cli(["train", str(data), "--task", "both", "--out", str(ckpt), "--batch", "4",
                    "--lr", "1e-3", "--threads", "2", "--seed", "3", "--max-steps", "2",
                    "--keep", "last"]) == 0
    side = read_labels_sidecar(ckpt)
    assert side["task"] == "both" and side["steps"] == 2
    assert run_cli(["train", str(data), "--task", "both", "--out", str(ckpt), "--resume",
                    "--threads", "2", "--max-steps", "3", "--keep", "last"]) == 0
    side = read_labels_sidecar(ckpt)
    # resumed, one step more (--keep last: out holds the newest weights, not the best)
    assert side["steps"] == 3 and side["last"]["step"] == 3
    straight = tmp_path / "straight.pth"
    assert run_cli(["train", str(data), "--task", "both", "--out", str(straight), "--batch",
                    "4", "--lr", "1e-3", "--threads", "2", "--seed", "3", "--max-steps", "3",
                    "--keep", "last"]) == 0
    a, b = torch.load(ckpt), torch.load(straight)
    assert all(torch.equal(a[k], b[k]) for k in a)  # BatchNorm recalibration included
    assert side["heads"] == {"quality": ["bad", "good"], "organ": ["ear", "nose", "vocal_folds"]}
    assert set(side["last"]["val_accuracy"]) == {"quality", "organ"}
    # A temperature per head, each fitted on the validation frames labelled for it.
    assert set(side["temperature"]) == set(side["calibration"]) == {"quality", "organ"}
    assert all(side["calibration"][h]["frames"] > 0 and side["temperature"][h] >= 1.0
               for h in ("quality", "organ"))

    model = tmp_path / "both.onnx"
    assert run_cli(["export", "--shared", str(ckpt), "--parity-frames", "2",
                    "--out", str(model)]) == 0
    with Classifier.load(model, device="cpu") as clf:  # the runtime's contract checks
        assert clf.heads == {"quality": ["bad", "good"], "organ": ["ear", "nose", "vocal_folds"]}
    clip = tmp_path / "clip.mp4"
    render_procedure(clip, ProcedureSpec.parse("nose:2,ear:2"), width=160, height=120, fps=5)
    out = tmp_path / "sections.json"
    assert run_cli(["segment", str(clip), "--models", str(model), "--device", "cpu",
                    "--out", str(out), "--quiet"]) == 0
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, schema())
    assert doc["models"]["heads"]["organ"] == ["ear", "nose", "vocal_folds"]
