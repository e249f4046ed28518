"""int8 variants: ``export --int8`` / :func:`quantize_model`, its gate, the runtime's refusal.

The models are the session-built convolutional colour classifier
(:mod:`tests.helpers.conv_model`): real Conv and Gemm ops that onnxruntime's quantiser
turns into QDQ int8, quantised for real and run in onnxruntime.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

pytest.importorskip("onnxruntime.quantization")

from endostream.cli import main  # noqa: E402
from endostream.errors import ModelError, UsageError  # noqa: E402
from endostream.export.quantize import (  # noqa: E402
    CALIBRATION_FRAMES,
    MIN_AGREEMENT,
    quantize_model,
)
from endostream.inference import classifier as classifier_module  # noqa: E402
from endostream.inference.classifier import Classifier, sha256_file  # noqa: E402
from endostream.inference.providers import ProviderChoice  # noqa: E402
from tests.helpers.conv_model import build_conv_color_model, scene_colors  # noqa: E402
from tests.helpers.onnx_models import (  # noqa: E402
    DEFAULT_ORGAN_COLORS,
    build_fp16_model,
    color_image,
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("int8")


@pytest.fixture(scope="module")
def fp32(workdir) -> Path:
    return build_conv_color_model(workdir / "conv.onnx")


@pytest.fixture(scope="module")
def scenes_model(workdir) -> Path:
    """An organ head that tells the synthetic scenes apart (nearest mean colour)."""
    return build_conv_color_model(workdir / "scenes.onnx", organ_colors=scene_colors(),
                                  organ_temperature=SCENE_TEMPERATURE)


#: Organ temperature of the scene model: a few grey levels of difference decide.
SCENE_TEMPERATURE = 10.0


@pytest.fixture(scope="module")
def int8(fp32, workdir):
    return quantize_model(fp32, workdir / "conv-int8.onnx")


def _test_images() -> np.ndarray:
    """Textured images of every organ colour and flat (bad) ones, with seeded noise."""
    images = [color_image(rgb, seed=k) for k, rgb in enumerate(DEFAULT_ORGAN_COLORS.values())]
    images += [color_image((150, 150, 150), noise=0), color_image((30, 90, 60), noise=0)]
    return np.stack(images)


def test_int8_file_meets_the_contract_and_keeps_the_answers(fp32, int8):
    assert int8.passed and int8.path.is_file()
    assert set(int8.heads) == {"quality", "organ"}
    assert all(g.agreement >= MIN_AGREEMENT for g in int8.heads.values())
    assert int8.gate_frames == CALIBRATION_FRAMES + 16
    model = onnx.load(str(int8.path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # Weights are stored as int8, the softmax stays float (rows sum to 1).
    assert any(t.data_type == onnx.TensorProto.INT8 for t in model.graph.initializer)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["endostream.precision"] == "int8"
    quantization = json.loads(meta["endostream.quantization"])
    assert quantization["fp32_sha256"] == sha256_file(fp32)
    assert quantization["format"] == "QDQ" and quantization["per_channel"] is True
    images = _test_images()
    with Classifier.load(fp32, device="cpu") as ref, Classifier.load(int8.path, device="cpu") as q:
        want, got = ref.run(images), q.run(images)
    for head in ("quality", "organ"):
        assert got[head].dtype == np.float32
        np.testing.assert_allclose(got[head].sum(axis=1), 1.0, atol=1e-5)
        assert list(got[head].argmax(1)) == list(want[head].argmax(1))
    assert list(got["quality"].argmax(1)) == [1, 1, 1, 0, 0]  # the model itself still works


def test_scene_model_passes_and_its_organ_head_is_checked_on_scenes(scenes_model, workdir):
    result = quantize_model(scenes_model, workdir / "scenes-int8.onnx")
    organ = result.heads["organ"]
    # Not a constant answer: the gate compares a head that really separates the scenes.
    assert organ.accuracy_fp32 > 0.6 and organ.agreement >= MIN_AGREEMENT
    assert abs(organ.accuracy_int8 - organ.accuracy_fp32) <= 0.01


def test_gate_refuses_a_model_that_int8_cannot_hold(workdir):
    fragile = build_conv_color_model(workdir / "outlier.onnx", organ_colors=scene_colors(),
                                     organ_temperature=SCENE_TEMPERATURE, outlier=1e6)
    out = workdir / "outlier-int8.onnx"
    with pytest.raises(ModelError, match=r"failed its gate, nothing was written.*organ.*FAILED"):
        quantize_model(fragile, out)
    assert not out.exists()
    assert not [p for p in workdir.iterdir() if "partial" in p.name or p.name.startswith(".")]


def test_only_an_fp32_file_is_quantised(workdir):
    fp16 = build_fp16_model(workdir / "fp16.onnx")
    with pytest.raises(ModelError, match="fp16"):
        quantize_model(fp16, workdir / "from-fp16.onnx")


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_runtime_refuses_int8_on_a_gpu_provider(int8, monkeypatch, device):
    # No GPU here: the provider choice a GPU machine would make is handed in, and the
    # refusal must come before any GPU session is opened (open_session is never reached).
    choice = ProviderChoice(device, ("CUDAExecutionProvider", "CPUExecutionProvider"),
                            explicit=True)
    monkeypatch.setattr(classifier_module, "choose_providers", lambda _device: choice)
    opened = []
    real_open = classifier_module.open_session
    monkeypatch.setattr(classifier_module, "open_session",
                        lambda path, c, o: opened.append(c.name) or real_open(path, c, o))
    with pytest.raises(ModelError) as info:
        Classifier.load(int8.path, device=device)
    message = str(info.value)
    assert "\n" not in message and ModelError.exit_code == 4
    assert f"int8 variants are for the CPU and would be slower on the {device} provider" in message
    assert "--device cpu" in message and opened == ["cpu"]


def test_int8_runs_in_segment_on_the_cpu(int8):
    with Classifier.load(int8.path, device="cpu") as clf:
        assert clf.provider == "cpu"
        assert clf.heads == {"quality": ["bad", "good"], "organ": list(DEFAULT_ORGAN_COLORS)}


# --- the command line -----------------------------------------------------------------------


def _labelled_set(root: Path) -> Path:
    """labels.csv with organ and quality columns: textured organ colours, flat bad frames."""
    root.mkdir()
    rows = []
    for k, (organ, rgb) in enumerate(DEFAULT_ORGAN_COLORS.items()):
        for i in range(4):
            name = f"rec{i % 2}__{organ}{i}.png"
            cv2.imwrite(str(root / name), cv2.cvtColor(color_image(rgb, seed=10 * k + i),
                                                       cv2.COLOR_RGB2BGR))
            rows.append({"path": name, "organ": organ, "quality": "good",
                         "recording": f"rec{i % 2}"})
    for i in range(3):
        name = f"rec{i % 2}__flat{i}.png"
        cv2.imwrite(str(root / name), np.full((224, 224, 3), 60 + 40 * i, np.uint8))
        rows.append({"path": name, "organ": "", "quality": "bad", "recording": f"rec{i % 2}"})
    with open(root / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "organ", "quality", "recording"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_cli_quantises_a_file_with_a_labelled_held_out_set(fp32, workdir, capsys):
    held = _labelled_set(workdir / "held")
    out = workdir / "cli-int8.onnx"
    rc = main(["export", "--from-onnx", str(fp32), "--int8", "--heldout", str(held),
               "--out", str(out)])
    captured = capsys.readouterr()
    stdout = captured.out
    assert rc == 0, stdout
    assert "int8 gate organ: argmax agrees with fp32 on" in stdout
    assert "accuracy 1.000 int8 / 1.000 fp32 on 12 held-out frames" in stdout
    assert "accuracy 1.000 int8 / 1.000 fp32 on 15 held-out frames" in stdout  # quality
    assert f"held-out frames: 15 frames of {held}" in stdout and f"wrote {out}" in captured.err


@pytest.mark.parametrize("argv, fragment", [
    (["--from-onnx", "m.onnx"], "--from-onnx and --heldout belong to --int8"),
    (["--int8", "--fp16", "--shared", "b.pth"], "--int8 and --fp16 are two variants"),
    (["--int8", "--from-onnx", "m.onnx", "--organ", "o.pth"], "without checkpoints"),
])
def test_cli_int8_usage_errors(workdir, capsys, argv, fragment):
    rc = main(["export", *argv, "--out", str(workdir / "never.onnx")])
    assert rc == UsageError.exit_code
    assert fragment in capsys.readouterr().err


def test_cli_gate_failure_exits_4_and_writes_nothing(workdir, capsys):
    fragile = build_conv_color_model(workdir / "outlier-cli.onnx", organ_colors=scene_colors(),
                                     organ_temperature=SCENE_TEMPERATURE, outlier=1e6)
    out = workdir / "never-int8.onnx"
    rc = main(["export", "--from-onnx", str(fragile), "--int8", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == ModelError.exit_code == 4
    assert err.startswith("endostream: error: the int8 file failed its gate")
    assert "keep the fp32" in err
    assert err.count("\n") == 1 and not out.exists()
