"""endostream.export: thesis checkpoints -> contract ONNX files, run by the runtime.

Checkpoints are random-init torchvision EfficientNetB0s in the thesis format, built here
(nothing is downloaded). A freshly initialised EfficientNetB0 gives the same output for
every image (its features are ~1e-14), which would make every parity check pass
trivially, so :func:`thesis_checkpoint` first recalibrates the BatchNorm statistics on
synthetic frames and scales the head so the probabilities vary from frame to frame.

Exports are module-scoped fixtures: each takes seconds, every test reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
onnx = pytest.importorskip("onnx")

from torch import nn  # noqa: E402
from torchvision.models import efficientnet_b0, resnet18  # noqa: E402

import endostream  # noqa: E402
from endostream.cli import main  # noqa: E402
from endostream.errors import ModelError, UsageError  # noqa: E402
from endostream.export.checkpoint import read_checkpoint  # noqa: E402
from endostream.export.graph import IMAGENET_MEAN, IMAGENET_STD, FrameClassifier  # noqa: E402
from endostream.export.model import build_classifier, classifier_from_checkpoint  # noqa: E402
from endostream.export.onnx_export import cpu_runs_half, export_onnx, head_spec  # noqa: E402
from endostream.export.parity import (  # noqa: E402
    FP16_PARITY_BOUND,
    FP32_PARITY_BOUND,
    check_parity,
    parity_frames,
)
from endostream.inference.classifier import Classifier  # noqa: E402

#: Spread of the calibrated logits across frames; 2 gives probabilities from ~0.02 to
#: ~0.98, where a probability reacts to logit errors about as much as it can.
LOGIT_STD = 2.0

#: Logit spread of the float16 test's head (see that test).
FP16_LOGIT_STD = 0.5

#: Parity frames for the extra exports (single-head, fp16): enough to exercise batch > 1.
FEW_FRAMES = 4


def thesis_checkpoint(
    num_classes: int, seed: int, path: Path, logit_std: float = LOGIT_STD
) -> nn.Module:
    """Save a random-init thesis-format checkpoint whose outputs depend on the image."""
    torch.manual_seed(seed)
    net = build_classifier(num_classes)
    frames = torch.from_numpy(np.array(parity_frames(8, seed=seed)))
    x = frames.permute(0, 3, 1, 2).float() / 255
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (IMAGENET_MEAN, IMAGENET_STD))
    x = (x - mean) / std
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass sets the statistics
    with torch.no_grad():
        net.train()
        net.features(x)
        net.eval()
        features = net.avgpool(net.features(x)).flatten(1)
        linear = net.classifier[1]
        logits = linear(features) - linear.bias
        linear.weight.mul_(logit_std / (logits - logits.mean(0)).std())
        linear.bias.copy_(-(linear(features) - linear.bias).mean(0))
    torch.save(net.state_dict(), path)
    return net


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference(paths: dict[str, Path]) -> FrameClassifier:
    return FrameClassifier({h: classifier_from_checkpoint(p)[0] for h, p in paths.items()})


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="module")
def ckpts(workdir) -> dict[str, Path]:
    paths = {"quality": workdir / "quality.pth", "organ": workdir / "organ.pth"}
    thesis_checkpoint(2, seed=1, path=paths["quality"])
    thesis_checkpoint(3, seed=2, path=paths["organ"])
    return paths


@pytest.fixture(scope="module")
def combined(ckpts, workdir):
    heads = [head_spec("quality", ckpts["quality"]), head_spec("organ", ckpts["organ"])]
    return export_onnx(heads, workdir / "endostream.onnx")


@pytest.fixture(scope="module")
def organ_only(ckpts, workdir):
    return export_onnx([head_spec("organ", ckpts["organ"])], workdir / "organ.onnx",
                       parity_frames=FEW_FRAMES)


@pytest.fixture(scope="module")
def torch_reference(ckpts) -> FrameClassifier:
    return reference(ckpts)


@pytest.fixture(scope="module")
def fresh_frames() -> np.ndarray:
    """Frames the export's own parity check did not see (another seed)."""
    return np.array(parity_frames(7, seed=99))


# --- the exported file ----------------------------------------------------------------------


def test_combined_file_meets_the_contract(combined, ckpts):
    model = onnx.load(str(combined.path))
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    t = inp.type.tensor_type
    assert inp.name == "frames" and t.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in t.shape.dim] == ["N", 224, 224, 3]
    outs = {o.name: o.type.tensor_type for o in model.graph.output}
    assert list(outs) == ["quality", "organ"]
    for name, width in (("quality", 2), ("organ", 3)):
        assert outs[name].elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_param or d.dim_value for d in outs[name].shape.dim] == ["N", width]
    assert not any(i.data_location == onnx.TensorProto.EXTERNAL for i in model.graph.initializer)

    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["endostream.schema"] == "1"
    assert json.loads(meta["endostream.heads"]) == {
        "quality": ["bad", "good"], "organ": ["ear", "nose", "vocal_folds"]}
    assert meta["endostream.precision"] == "fp32"
    assert json.loads(meta["endostream.source_sha256"]) == {
        h: sha256(p) for h, p in ckpts.items()}
    exported = datetime.fromisoformat(meta["endostream.exported_at"])
    assert exported.utcoffset().total_seconds() == 0
    assert meta["endostream.exporter"] == f"endostream {endostream.__version__}"
    versions = json.loads(meta["endostream.versions"])
    assert versions["torch"] == torch.__version__ and versions["onnx"] == onnx.__version__
    assert "torchvision" in versions


def test_export_reports_parity_within_bound(combined):
    report = combined.parity
    assert report.passed and report.precision == "fp32" and report.provider == "cpu"
    assert set(report.max_abs_diff) == {"quality", "organ"}
    assert max(report.max_abs_diff.values()) <= FP32_PARITY_BOUND
    # The check means something only when the model's answers vary between frames.
    assert report.spread > 0.5
    assert report.batch_sizes == (16, 1)


def test_no_temporary_files_left_beside_the_output(combined, organ_only):
    leftovers = [p.name for p in combined.path.parent.iterdir() if p.name.endswith(".partial")]
    assert leftovers == []
    assert combined.path.stat().st_mode & 0o044  # readable by others, not mkstemp's 0600


# --- run by the runtime ---------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 7])
def test_runtime_matches_torch(combined, torch_reference, fresh_frames, batch):
    frames = fresh_frames[:batch]
    expected = torch_reference.predict(torch.from_numpy(frames.copy()))
    with Classifier.load(combined.path, device="cpu") as clf:
        assert clf.heads == {"quality": ["bad", "good"], "organ": ["ear", "nose", "vocal_folds"]}
        got = clf.run(frames)
    for head in ("quality", "organ"):
        assert got[head].shape == (batch, len(clf.heads[head]))
        assert got[head].dtype == np.float32
        diff = np.abs(got[head] - expected[head].numpy()).max()
        assert diff <= FP32_PARITY_BOUND, (head, diff)


def test_single_head_file_runs_alone_and_beside_another(
    organ_only, ckpts, torch_reference, workdir, fresh_frames
):
    model = onnx.load(str(organ_only.path))
    assert [o.name for o in model.graph.output] == ["organ"]
    assert json.loads({p.key: p.value for p in model.metadata_props}["endostream.heads"]) == {
        "organ": ["ear", "nose", "vocal_folds"]}
    quality = export_onnx([head_spec("quality", ckpts["quality"])], workdir / "quality.onnx",
                          parity_frames=FEW_FRAMES)
    expected = torch_reference.predict(torch.from_numpy(fresh_frames.copy()))
    with Classifier.load([quality.path, organ_only.path], device="cpu") as clf:
        got = clf.run(fresh_frames)
    for head in ("quality", "organ"):
        assert np.abs(got[head] - expected[head].numpy()).max() <= FP32_PARITY_BOUND


def test_fp16_variant_keeps_io_types_and_is_refused_on_cpu(workdir):
    # Random-init networks are far more sensitive to rounding than trained ones (see
    # export/parity.py); a calmer head keeps this one's float16 error where a trained
    # model's would be.
    path = workdir / "organ-calm.pth"
    net = thesis_checkpoint(3, seed=3, path=path, logit_std=FP16_LOGIT_STD)
    if not cpu_runs_half():
        with pytest.raises(UsageError, match="cannot do .no float16 convolution"):
            export_onnx([head_spec("organ", path)], workdir / "organ-fp16.onnx", fp16=True)
        assert not (workdir / "organ-fp16.onnx").exists()
        pytest.skip(f"torch {torch.__version__} refuses --fp16 on the CPU (checked above)")
    result = export_onnx([head_spec("organ", path)], workdir / "organ-fp16.onnx",
                         fp16=True, parity_frames=FEW_FRAMES)
    assert result.precision == "fp16" and result.parity.bound == FP16_PARITY_BOUND
    assert max(result.parity.max_abs_diff.values()) <= FP16_PARITY_BOUND
    model = onnx.load(str(result.path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = [i for i in model.graph.initializer if len(i.dims) == 4]
    assert weights and all(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
    assert {p.key: p.value for p in model.metadata_props}["endostream.precision"] == "fp16"
    with pytest.raises(ModelError, match="fp16"):
        Classifier.load(result.path, device="cpu")
    # A float16 file that strays too far fails with advice to keep the fp32 file.
    other = FrameClassifier({"organ": thesis_checkpoint(3, seed=5, path=workdir / "o5.pth")})
    with pytest.raises(ModelError, match="parity fp16 .*FAILED.*use the fp32 file"):
        check_parity(other, result.path, "fp16", frames=parity_frames(FEW_FRAMES))
    assert net.training is False


# --- the command line -----------------------------------------------------------------------


def test_cli_exports_a_wrapped_checkpoint_with_custom_labels(ckpts, workdir, capsys):
    state = torch.load(ckpts["organ"], weights_only=True)
    wrapped = workdir / "organ-training.pth"
    torch.save({"epoch": 12, "model_state_dict": state, "best_acc": 0.93}, wrapped)
    out = workdir / "cli-organ.onnx"
    rc = main(["export", "--organ", str(wrapped), "--organ-labels", "ear, nose ,larynx",
               "--out", str(out), "--parity-frames", "2"])
    captured = capsys.readouterr()
    stdout = captured.out
    assert rc == 0, stdout
    # Findings on stdout, the file written on stderr (docs/cli.md).
    assert "parity fp32 on cpu" in stdout and f"wrote {out}" in captured.err
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["endostream.heads"]) == {"organ": ["ear", "nose", "larynx"]}
    assert json.loads(meta["endostream.source_sha256"]) == {"organ": sha256(wrapped)}


def test_cli_takes_labels_from_the_training_sidecar(ckpts, workdir, capsys):
    organ = workdir / "larynx-run.pth"
    organ.write_bytes(ckpts["organ"].read_bytes())
    sidecar = {"format": "endostream.train-labels/1", "task": "organ",
               "labels": ["ear", "nose", "larynx"]}
    (workdir / "larynx-run.labels.json").write_text(json.dumps(sidecar))
    out = workdir / "sidecar-organ.onnx"
    rc = main(["export", "--organ", str(organ), "--out", str(out), "--parity-frames", "2"])
    assert rc == 0, capsys.readouterr()
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["endostream.heads"]) == {"organ": ["ear", "nose", "larynx"]}


def test_cli_without_a_checkpoint_is_a_usage_error(workdir, capsys):
    assert main(["export", "--out", str(workdir / "x.onnx")]) == UsageError.exit_code
    assert "give --quality and/or --organ" in capsys.readouterr().err


def test_command_module_does_not_import_torch():
    code = ("import sys, argparse, endostream.export.command as c; "
            "c.configure_parser(argparse.ArgumentParser()); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


# --- checkpoints ----------------------------------------------------------------------------


@pytest.mark.parametrize("wrap", ["state_dict", "model_state_dict", "module.", None])
def test_checkpoint_layouts_are_accepted(ckpts, tmp_path, wrap):
    state = torch.load(ckpts["quality"], weights_only=True)
    if wrap == "module.":
        obj = {f"module.{k}": v for k, v in state.items()}
    elif wrap is None:
        obj = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    else:
        obj = {wrap: state, "epoch": 3, "optimizer": {"lr": 0.01}}
    path = tmp_path / "q.pth"
    torch.save(obj, path)
    ckpt = read_checkpoint(path)
    assert ckpt.num_classes == 2 and ckpt.sha256 == sha256(path)
    net, _ = classifier_from_checkpoint(path)
    assert torch.equal(net.classifier[1].weight, state["classifier.1.weight"])


def test_truncated_checkpoint_is_refused(ckpts, tmp_path):
    path = tmp_path / "cut.pth"
    path.write_bytes(ckpts["organ"].read_bytes()[:100_000])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        read_checkpoint(path)


def test_other_network_is_refused_naming_keys(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(resnet18(weights=None, num_classes=3).state_dict(), path)
    with pytest.raises(ModelError, match="no 'classifier.1.weight'.*head keys are fc.bias, fc.w"):
        classifier_from_checkpoint(path)
    # With a thesis-like head bolted on, the message lists the backbone's keys.
    state = resnet18(weights=None).state_dict()
    state["classifier.1.weight"] = torch.zeros(3, 1280)
    state["classifier.1.bias"] = torch.zeros(3)
    torch.save(state, path)
    with pytest.raises(ModelError) as err:
        classifier_from_checkpoint(path)
    message = str(err.value)
    assert "missing" in message and "features.0.0.weight" in message
    assert "unexpected" in message and "bn1.bias" in message and "more" in message
    assert "\n" not in message


def test_renamed_key_is_named(ckpts, tmp_path):
    state = torch.load(ckpts["organ"], weights_only=True)
    state["features.1.0.block.0.0.weights"] = state.pop("features.1.0.block.0.0.weight")
    path = tmp_path / "renamed.pth"
    torch.save(state, path)
    key = r"features\.1\.0\.block\.0\.0\.weight"
    with pytest.raises(ModelError, match=rf"missing 1 key \({key}\); unexpected 1 key \({key}s\)"):
        classifier_from_checkpoint(path)


class _WritesAFile:
    """Unpickling this would create ``target``: a stand-in for a malicious checkpoint."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pwned"))


def test_pickled_payload_is_refused_and_never_run(ckpts, tmp_path):
    target = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pth"
    state = torch.load(ckpts["quality"], weights_only=True)
    torch.save({"state_dict": state, "hook": _WritesAFile(target)}, path)
    with pytest.raises(ModelError, match="refusing to load .*pickled Python objects"):
        read_checkpoint(path)
    assert not target.exists()
    # A whole pickled model (torch.save(model)) is refused the same way.
    torch.save(build_classifier(2), path)
    with pytest.raises(ModelError, match="EfficientNet"):
        read_checkpoint(path)


def test_label_count_must_match_the_head(ckpts, tmp_path):
    out = tmp_path / "x.onnx"
    with pytest.raises(UsageError, match="4 labels given .* has 3 classes"):
        export_onnx([head_spec("organ", ckpts["organ"], ["a", "b", "c", "d"])], out)
    with pytest.raises(UsageError, match="lack 'good'"):
        export_onnx([head_spec("quality", ckpts["quality"], ["blurry", "sharp"])], out)
    assert list(tmp_path.iterdir()) == []


def test_parity_check_fails_for_a_graph_that_differs(organ_only, tmp_path):
    other = FrameClassifier({"organ": thesis_checkpoint(3, seed=5, path=tmp_path / "o.pth")})
    with pytest.raises(ModelError, match="parity fp32 .*FAILED"):
        check_parity(other, organ_only.path, "fp32", frames=parity_frames(FEW_FRAMES))


def test_init_weights_load_the_backbone_and_skip_the_head(tmp_path):
    imagenet = efficientnet_b0(weights=None)  # stands in for the downloaded ImageNet file
    path = tmp_path / "imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    net = build_classifier(3, init_weights=path)
    assert torch.equal(net.features[0][0].weight, imagenet.features[0][0].weight)
    assert net.classifier[1].out_features == 3
    torch.save(resnet18(weights=None).state_dict(), path)
    with pytest.raises(ModelError, match="not an EfficientNetB0 state dict: missing"):
        build_classifier(3, init_weights=path)
