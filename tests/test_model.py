"""Model contract, provider choice and running: endostream.inference.classifier and
endostream.inference.providers.

Every model here is a tiny real ONNX graph (tests/helpers/onnx_models.py) run by a real
onnxruntime session on the CPU.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from endostream.errors import ModelError, UsageError
from endostream.inference import providers
from endostream.inference.classifier import Classifier, sha256_file
from endostream.output.sections_file import schema
from helpers.onnx_models import (
    DEFAULT_ORGAN_COLORS,
    build_color_model,
    build_float_nchw_model,
    build_fp16_model,
    build_label_mismatch_model,
    build_missing_output_model,
    build_no_metadata_model,
    build_split_models,
    build_stub_model,
    build_wrong_shape_model,
    color_image,
    truncate_file,
)

ORGANS = list(DEFAULT_ORGAN_COLORS)
NO_GPU = not providers.probe_gpu().usable
#: What onnxruntime prints when a GPU provider cannot start; none of it may reach the user.
ORT_WALL = ("CUDA", "Failed", "EP Error", "onnxruntime", "TensorRT")


@pytest.fixture(scope="module")
def color_model(tmp_path_factory) -> Path:
    return build_color_model(tmp_path_factory.mktemp("models") / "color.onnx")


@pytest.fixture(scope="module")
def clf(color_model) -> Classifier:
    with Classifier.load(color_model, device="cpu") as c:
        yield c


def organ_batch(seed: int = 0) -> tuple[np.ndarray, list[str]]:
    names = ORGANS * 2
    images = [color_image(DEFAULT_ORGAN_COLORS[n], seed=seed + i) for i, n in enumerate(names)]
    return np.stack(images), names


# --- running ----------------------------------------------------------------------------


def test_color_model_classifies_colours(clf):
    batch, names = organ_batch()
    probs = clf.run(batch)
    assert list(probs) == ["quality", "organ"]
    for head, p in probs.items():
        assert p.dtype == np.float32
        assert p.shape == (len(batch), len(clf.heads[head]))
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert [clf.heads["organ"][i] for i in probs["organ"].argmax(axis=1)] == names
    good = clf.heads["quality"].index("good")
    assert (probs["quality"][:, good] > 0.9).all()


def test_color_model_quality_rejects_flat_and_dark_images(clf):
    flat = color_image(DEFAULT_ORGAN_COLORS["nose"], noise=0)
    dark = color_image((12, 10, 10), noise=4)
    probs = clf.run(np.stack([flat, dark]))
    good = clf.heads["quality"].index("good")
    assert (probs["quality"][:, good] < 0.1).all()


def test_run_accepts_non_contiguous_batch(clf):
    batch, _ = organ_batch()
    strided = np.repeat(batch, 2, axis=0)[::2]
    assert not strided.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(clf.run(strided)["organ"], clf.run(batch)["organ"])


@pytest.mark.parametrize("bad", [
    np.zeros((2, 224, 224, 3), np.float32),
    np.zeros((224, 224, 3), np.uint8),
    np.zeros((2, 112, 112, 3), np.uint8),
    np.zeros((0, 224, 224, 3), np.uint8),
    [[0]],
])
def test_run_rejects_malformed_batches(clf, bad):
    with pytest.raises(ValueError, match="batch must"):
        clf.run(bad)


def test_describe_matches_sections_schema(clf, color_model):
    d = clf.describe()
    assert d["path"] == str(color_model)
    assert d["sha256"] == hashlib.sha256(color_model.read_bytes()).hexdigest() == clf.sha256
    assert d["heads"] == {"quality": ["bad", "good"], "organ": ORGANS}
    jsonschema.validate(d, schema()["properties"]["models"])
    assert clf.provider == "cpu"
    assert clf.paths == (color_model,)


def test_close_and_context_manager(color_model):
    with Classifier.load(color_model, device="cpu") as c:
        c.run(np.zeros((1, 224, 224, 3), np.uint8))
    with pytest.raises(ValueError, match="closed"):
        c.run(np.zeros((1, 224, 224, 3), np.uint8))


def test_sha256_file_streams_large_files(tmp_path):
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)
    (tmp_path / "blob").write_bytes(data)
    assert sha256_file(tmp_path / "blob") == hashlib.sha256(data).hexdigest()


def test_io_binding_runner_matches_plain_run(clf):
    # The GPU path's IO binding, exercised on the CPU device (the mechanism is the same).
    f = clf._files[0]
    runner = providers.IoBindingRunner(f.session, list(f.heads), device="cpu")
    batch, _ = organ_batch(seed=5)
    for n in (6, 2, 6):  # a new buffer per batch size, then reuse
        outs = runner(batch[:n])
        plain = clf.run(batch[:n])
        for head, out in zip(f.heads, outs, strict=True):
            np.testing.assert_array_equal(out, plain[head])


# --- two files ------------------------------------------------------------------------


def test_two_single_head_files_equal_the_combined_model(tmp_path, clf):
    q, o = build_split_models(tmp_path)
    with Classifier.load([o, q], device="cpu") as two:
        assert two.heads == clf.heads and list(two.heads) == ["quality", "organ"]
        assert two.sha256 == f"{sha256_file(o)},{sha256_file(q)}"
        jsonschema.validate(two.describe(), schema()["properties"]["models"])
        batch, _ = organ_batch(seed=9)
        got, want = two.run(batch), clf.run(batch)
        for head in want:
            np.testing.assert_allclose(got[head], want[head], atol=1e-6)


def test_single_head_files_load_alone(tmp_path):
    q, o = build_split_models(tmp_path)
    with Classifier.load(q, device="cpu") as c:
        assert list(c.heads) == ["quality"]
        assert list(c.run(np.zeros((1, 224, 224, 3), np.uint8))) == ["quality"]
    with Classifier.load(o, device="cpu") as c:
        assert list(c.heads) == ["organ"]


def test_two_files_with_the_same_head_are_refused(tmp_path, color_model):
    q, _ = build_split_models(tmp_path)
    with pytest.raises(ModelError, match="both carry the 'quality' head; pass one combined file"):
        Classifier.load([color_model, q], device="cpu")


@pytest.mark.parametrize("paths, fragment", [([], "no model file given"),
                                             (["a", "b", "c"], "3 model files given")])
def test_wrong_number_of_files(paths, fragment):
    with pytest.raises(UsageError, match=fragment):
        Classifier.load(paths, device="cpu")


# --- contract violations ---------------------------------------------------------------

def M(directory: Path) -> Path:
    return directory / "m.onnx"


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


VIOLATIONS = {
    "missing file": (lambda d: d / "nope.onnx", "not found; pass the path"),
    "directory": (lambda d: d, "is not a file"),
    "truncated": (lambda d: truncate_file(build_color_model(M(d))),
                  "is not an ONNX model, or is truncated"),
    "not onnx": (lambda d: _write(M(d), b"just some text\n"),
                 "is not an ONNX model, or is truncated"),
    "empty file": (lambda d: _write(M(d), b""), "is not an ONNX model"),
    "float NCHW": (lambda d: build_float_nchw_model(M(d)),
                   "looks like a float32 NCHW model made elsewhere; re-export with `endostream "
                   "export` so scaling and normalisation are inside the graph"),
    "wrong size": (lambda d: build_wrong_shape_model(M(d)),
                   r"shape \[N, 256, 256, 3\]; the contract wants \[N, 224, 224, 3\]"),
    "channels first uint8": (lambda d: build_wrong_shape_model(M(d), shape=("N", 3, 224, 224)),
                             "the contract wants"),
    "fixed batch": (lambda d: build_wrong_shape_model(M(d), shape=(1, 224, 224, 3)),
                    "fixed batch size of 1"),
    "input name": (lambda d: build_stub_model(M(d), input_name="images"),
                   "input is named 'images'; the contract names it 'frames'"),
    "no metadata": (lambda d: build_no_metadata_model(M(d)), "has no endostream metadata"),
    "no schema key": (lambda d: build_color_model(
        M(d), metadata_overrides={"endostream.schema": None}),
                      "no endostream.schema in its metadata"),
    "schema 2": (lambda d: build_color_model(M(d), metadata_overrides={"endostream.schema": "2"}),
                 "contract version '2', this endostream reads version 1"),
    "no heads key": (lambda d: build_color_model(
        M(d), metadata_overrides={"endostream.heads": None}),
                     "no endostream.heads"),
    "heads not JSON": (lambda d: build_color_model(
        M(d), metadata_overrides={"endostream.heads": "{quality: [bad, good]}"}),
        "endostream.heads is not valid JSON"),
    "heads not a map": (lambda d: build_color_model(
        M(d), metadata_overrides={"endostream.heads": '["quality", "organ"]'}),
        "must map each head to a list of label strings"),
    "labels not strings": (lambda d: build_color_model(
        M(d), metadata_overrides={"endostream.heads": '{"quality": ["bad", 1]}'}),
        "must map each head to a list of label strings"),
    "no heads": (lambda d: build_color_model(M(d), metadata_overrides={"endostream.heads": "{}"}),
                 "needs a 'quality' and/or an 'organ' head"),
    "unknown head": (lambda d: build_color_model(
        M(d), metadata_overrides={"endostream.heads": '{"qualty": ["bad", "good"]}'}),
        "unknown head.*'qualty'"),
    "one label": (lambda d: build_stub_model(M(d), heads={"quality": ["good"]}),
                  "two or more classes"),
    "duplicate label": (lambda d: build_stub_model(
        M(d), heads={"organ": ["ear", "ear", "nose"]}),
                        "lists label 'ear' twice"),
    "quality without good": (lambda d: build_color_model(M(d), quality_labels=("bad", "ok")),
                             "have no 'good'"),
    "missing head output": (lambda d: build_missing_output_model(M(d)),
                            "declares the 'organ' head but the graph has no output named 'organ'"),
    "labels != width (static)": (
        lambda d: build_label_mismatch_model(M(d)),
        "output 'organ' has 4 columns but endostream.heads lists 3 labels"),
    "labels != width (at warm-up)": (
        lambda d: build_label_mismatch_model(M(d), static_output_shape=False),
        "output 'organ' has 4 columns but endostream.heads lists 3 labels"),
    "logits, no softmax": (lambda d: build_stub_model(M(d), softmax=False),
                           "does not hold probabilities"),
    "unknown precision": (lambda d: build_color_model(M(d), precision="int4"),
                          "endostream.precision is 'int4'"),
    "fp16 on CPU": (lambda d: build_fp16_model(M(d)),
                    "fp16 variants are for GPUs; on the CPU they are slower and less exact: "
                    "use the fp32 file"),
    "fp16 metadata only": (lambda d: build_fp16_model(M(d), fp16_outputs=False),
                           "fp16 variants are for GPUs"),
}


@pytest.mark.parametrize("case", list(VIOLATIONS))
def test_contract_violation_is_a_one_line_model_error(tmp_path, case):
    make, fragment = VIOLATIONS[case]
    target = make(tmp_path)
    with pytest.raises(ModelError, match=fragment) as info:
        Classifier.load(target, device="cpu")
    message = str(info.value)
    assert "\n" not in message
    assert any(fix in message for fix in ("re-export", "pass the path", "use the fp32"))


def test_extra_outputs_are_ignored(tmp_path):
    path = build_stub_model(tmp_path / "m.onnx", heads={"quality": ["bad", "good"]},
                            output_widths={"quality": 2, "embedding": 5})
    with Classifier.load(path, device="cpu") as c:
        assert list(c.run(np.zeros((3, 224, 224, 3), np.uint8))) == ["quality"]


def test_other_organ_labels_come_from_the_file(tmp_path):
    colors = {"stomach": (200, 60, 60), "colon": (60, 200, 60), "duodenum": (60, 60, 200),
              "oesophagus": (220, 220, 220)}
    with Classifier.load(build_color_model(tmp_path / "m.onnx", organ_colors=colors)) as c:
        assert c.heads["organ"] == list(colors)
        probs = c.run(np.stack([color_image(v, seed=i) for i, v in enumerate(colors.values())]))
        assert list(probs["organ"].argmax(axis=1)) == [0, 1, 2, 3]


# --- providers ----------------------------------------------------------------------------


@pytest.mark.skipif(not NO_GPU, reason="checks the CPU-only behaviour")
def test_auto_device_falls_back_to_cpu_silently(color_model, capfd):
    with Classifier.load(color_model, device="auto") as c:
        c.run(np.zeros((1, 224, 224, 3), np.uint8))
        assert c.provider == "cpu"
    out, err = capfd.readouterr()
    for word in ORT_WALL:
        assert word not in out + err


@pytest.mark.skipif(not NO_GPU, reason="needs a machine without a usable GPU")
@pytest.mark.parametrize("device, title", [("cuda", "CUDA"), ("tensorrt", "TensorRT")])
def test_explicit_gpu_device_without_gpu_is_a_clear_error(color_model, capfd, device, title):
    with pytest.raises(UsageError, match=f"{title} was requested but no usable NVIDIA GPU/driver "
                                         "was found .*; use --device cpu or auto"):
        Classifier.load(color_model, device=device)
    out, err = capfd.readouterr()
    assert out == err == ""


@pytest.mark.skipif(not NO_GPU, reason="needs a machine where the CUDA provider cannot start")
def test_gpu_provider_that_cannot_start_falls_back_without_error_wall(color_model, capfd):
    # Ask onnxruntime for CUDA even though the probe says no: the real provider fails to
    # load here, and that must be one log line, not onnxruntime's wall.
    cuda = providers.ProviderChoice("cuda", (("CUDAExecutionProvider", providers.CUDA_OPTIONS),
                                             "CPUExecutionProvider"), explicit=False)
    session, started = providers.open_session(color_model, cuda, providers.session_options(1))
    assert started.name == "cpu" and session.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(UsageError, match="CUDA was requested but its provider could not start"):
        providers.open_session(color_model, providers.ProviderChoice(
            "cuda", cuda.ort_providers, explicit=True), providers.session_options(1))
    out, err = capfd.readouterr()
    for word in ORT_WALL:
        assert word not in out + err


def test_unknown_device_is_a_usage_error(color_model):
    with pytest.raises(UsageError, match="unknown device 'gpu'; use one of: auto, cpu, cuda"):
        Classifier.load(color_model, device="gpu")


def test_session_options_threads_and_no_spinning():
    so = providers.session_options(3)
    assert so.intra_op_num_threads == 3
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert providers.session_options().intra_op_num_threads == providers.default_threads()
    with pytest.raises(UsageError, match="at least 1"):
        providers.session_options(0)


def test_threads_reach_the_session(color_model):
    with Classifier.load(color_model, device="cpu", threads=1) as c:
        assert c.run(np.zeros((2, 224, 224, 3), np.uint8))["organ"].shape == (2, 3)


def test_tensorrt_options_cache_engines_in_fp16(tmp_path):
    opts = providers._tensorrt_options(tmp_path / "trt")
    assert opts["trt_fp16_enable"] and opts["trt_engine_cache_enable"]
    assert opts["trt_engine_cache_path"] == str(tmp_path / "trt") and (tmp_path / "trt").is_dir()
    assert opts["trt_profile_max_shapes"] == f"frames:{providers.TRT_MAX_BATCH}x224x224x3"


def test_ort_error_text_keeps_the_reason_only():
    raw = ("[ONNXRuntimeError] : 1 : FAIL : Load model from /m.onnx failed:/onnxruntime_src/"
           "onnxruntime/core/graph/model.cc:256 onnxruntime::Model::Model(onnx::ModelProto&&, "
           "const onnxruntime::PathString&) Unsupported model IR version: 20, max supported IR "
           "version: 13\n")
    assert providers.ort_error_text(RuntimeError(raw)) == \
        "Unsupported model IR version: 20, max supported IR version: 13"
