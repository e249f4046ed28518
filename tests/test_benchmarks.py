"""Smoke tests of ``python -m benchmarks``: it runs end to end and writes the promised JSON.

A tiny generated clip and the colour model from :mod:`tests.helpers.onnx_models` keep the
run to seconds; nothing here asserts on timings (the machine decides those), only that
every figure is there and the ratios follow from the figures.
"""

from __future__ import annotations

import importlib.util
import json
import math

import pytest

from benchmarks import __main__ as bench
from benchmarks import coarse as coarse_bench
from benchmarks.inputs import default_video_spec
from benchmarks.live_latency import percentiles
from benchmarks.report import check_targets, compute_ratios, markdown
from endostream.contract import META_SOURCE_SHA256
from endostream.synth import ProcedureSpec, render_procedure
from tests.helpers.onnx_models import build_color_model

#: Keys scripts compare across runs (the issue names them).
REQUIRED = (
    ("ratios", "e2e_over_stage_limit"),
    ("ratios", "speedup_over_naive"),
    ("ratios", "realtime_factor_default"),
    ("live", "p99_ms"),
    ("live", "batch_infer_ms"),
)


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    video = d / "tiny.mp4"
    render_procedure(video, ProcedureSpec.parse("nose:1.5,blur:0.5,ear:1"), width=160,
                     height=120, fps=10)
    return video, build_color_model(d / "colour.onnx")


def _run(tmp_path, tiny_inputs, *extra):
    video, model = tiny_inputs
    out = tmp_path / "bench.json"
    code = bench.main(["--quick", "--video", str(video), "--models", str(model), "--device",
                       "cpu", "--json", str(out), "--live-seconds", "1.5", "--skip-coarse",
                       *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_quick_run_writes_every_figure(tmp_path, tiny_inputs, capsys):
    doc = _run(tmp_path, tiny_inputs, "--skip-naive", "--repeat", "2")
    for section, key in REQUIRED:
        assert key in doc[section], f"{section}.{key} missing"
    assert doc["schema"] == bench.SCHEMA and doc["quick"] is True
    m = doc["machine"]
    assert m["cpu_model"] and m["cores_usable"] >= 1
    assert "CPUExecutionProvider" in m["ort_providers_available"]
    assert {"onnxruntime", "numpy", "av"} <= {k.removesuffix("-gpu") for k in m["libraries"]}
    assert doc["inputs"]["model"]["provider"] == "cpu"
    assert doc["inputs"]["model"]["origin"] == "given"
    assert set(doc["noise"]["cpu_share_others"]) >= {"decode", "inference", "e2e_every_frame"}
    assert doc["noise"]["repeat"] == 2 and len(doc["noise"]["attempts_fps"]["decode"]) == 2
    # The kept figure is the fastest attempt.
    assert doc["stages"]["decode"]["fps"] == max(doc["noise"]["attempts_fps"]["decode"])

    st = doc["stages"]
    assert [b["batch"] for b in st["inference"]] == [1, 4, 8, 16, 32]
    assert st["decode"]["frames"] == st["decode_preprocess"]["frames"] == 30
    assert st["stage_limit_fps"] > 0
    every, default = doc["e2e"]["every_frame"], doc["e2e"]["default_rate"]
    assert every["frames_analysed"] == 30 and every["sample_fps"] is None
    dense = doc["e2e"]["default_rate_dense"]
    assert dense["frames_analysed"] == 15 and dense["sample_fps"] == 5.0
    assert dense["mode"] == "dense" and dense["inferences_per_video_s"] == 5.0
    # The default is coarse to fine: a frame a second, densely only where it can change.
    assert default["mode"] == "coarse-to-fine" and default["sample_fps"] == 5.0
    assert 4 <= default["frames_analysed"] <= 15 and default["video_frames"] == 30
    assert [r["source_fps"] for r in doc["live"]["rates"]] == [30.0, 60.0]
    assert doc["live"]["p99_ms"] > 0 and doc["live"]["batch_infer_ms"] > 0

    r = doc["ratios"]
    assert math.isclose(r["e2e_over_stage_limit"], every["analysed_fps"] / st["stage_limit_fps"],
                        rel_tol=0.01)
    assert r["speedup_over_naive"] is None and doc["naive"] is None
    assert doc["targets"]["speedup_over_naive"]["met"] is None

    text = capsys.readouterr().out
    assert "| **stage limit**" in text and "naive baseline | skipped" in text
    # 1.5 s of live is too short to split into halves: said, not guessed.
    assert all(r["rss_second_half_mb"] is None for r in doc["live"]["rates"])
    assert "RSS MB start→end (second half) |" in text
    _assert_tables_render(text)


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="needs torchvision")
def test_naive_baseline_runs_in_a_child_process(tmp_path, tiny_inputs):
    doc = _run(tmp_path, tiny_inputs, "--naive-frames", "2", "--live-seconds", "0")
    assert doc["naive"]["frames"] == 2 and doc["naive"]["fps"] > 0
    assert doc["ratios"]["speedup_over_naive"] > 0
    assert doc["live"] == {"rates": []} and doc["ratios"]["live_p99_over_batch_infer"] is None


def test_ratios_and_targets_follow_the_figures():
    doc = {"e2e": {"every_frame": {"analysed_fps": 30.0}, "default_rate": {"realtime_factor": 4.0}},
           "stages": {"stage_limit_fps": 40.0}, "naive": None,
           "live": {"p99_ms": 120.0, "batch_infer_ms": 30.0}}
    ratios = compute_ratios(doc)
    assert ratios == {"e2e_over_stage_limit": 0.75, "speedup_over_naive": None,
                      "realtime_factor_default": 4.0, "realtime_factor_default_dense": None,
                      "default_over_decode": None, "default_dense_over_decode": None,
                      "live_p99_over_batch_infer": 4.0}
    met = {k: v["met"] for k, v in check_targets(ratios).items()}
    assert met == {"e2e_over_stage_limit": False, "speedup_over_naive": None,
                   "realtime_factor_default": False, "default_over_decode": None,
                   "live_p99_over_batch_infer": False}
    doc["e2e"]["default_rate"].update(realtime_factor=45.0, video_fps=900.0)
    doc["stages"]["decode"] = {"fps": 1000.0}
    met = {k: v["met"] for k, v in check_targets(compute_ratios(doc)).items()}
    assert met["realtime_factor_default"] is True and met["default_over_decode"] is True


def test_percentiles_of_nothing_are_none():
    assert percentiles([]) == {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    assert percentiles([5.0])["max_ms"] == 5.0


def test_default_video_is_720p30():
    spec = default_video_spec(quick=False)
    assert (spec.width, spec.height, spec.fps) == (1280, 720, 30.0)
    assert "1280x720-30fps" in spec.file_name()


def test_markdown_without_live_or_naive():
    doc = {
        "quick": True, "warnings": [],
        "machine": {"cpu_model": "x", "cores_usable": 2, "libraries": {"onnxruntime": "1"},
                    "loadavg_start": None, "loadavg_end": None},
        "inputs": {"video": {"path": "v.mp4", "origin": "given", "width": 4, "height": 4,
                             "fps": 30.0, "frames": 3, "duration_s": 0.1},
                   "model": {"path": "m.onnx", "origin": "given", "provider": "cpu",
                             "heads": {"organ": ["a", "b"]}, "threads": 2}},
        "stages": {"decode": {"frames": 3, "ms_per_frame": 1.0, "fps": 1000.0},
                   "decode_preprocess": {"frames": 3, "ms_per_frame": 2.0, "fps": 500.0},
                   "preprocess_ms_per_frame": 0.0, "inference": [], "stage_limit_batch": 16,
                   "stage_limit_ms_per_frame": 3.0, "stage_limit_fps": 333.0},
        "e2e": {}, "live": {"rates": []}, "naive": None,
        "targets": check_targets(compute_ratios({})),
    }
    text = markdown(doc)
    assert "| preprocess alone (difference) | | 0.00 | – |" in text
    assert "live source" not in text


def test_soak_runs_a_few_hundred_frames_and_reports(tmp_path, tiny_inputs, capsys):
    from benchmarks import soak

    video, model = tiny_inputs
    out = tmp_path / "soak.json"
    code = soak.main(["--frames", "300", "--rate", "300", "--video", str(video), "--models",
                      str(model), "--device", "cpu", "--sample-interval", "0.1",
                      "--json", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == soak.SCHEMA and doc["interrupted"] is False
    fr = doc["frames"]
    # The 30-frame clip looped ten times, as one stream: pts never went backwards.
    assert fr["captured"] == fr["displayed"] == 300 and fr["loops"] >= 9
    assert fr["pts_backwards"] == 0 and fr["video_s"] == pytest.approx(29.9, abs=0.01)
    assert 0 < fr["analysed"] <= 300 and fr["analysed"] + fr["dropped"] == 300
    assert doc["sections"]["count"] >= 1
    assert set(doc["memory"]) >= {"start_mb", "max_mb", "end_mb", "growth_mb"}
    assert doc["memory"]["max_mb"] >= doc["memory"]["start_mb"] > 0
    windows = doc["windows"]
    assert len(windows) == soak.WINDOWS and windows[0]["first_frame"] == 30
    assert sum(w["analysed"] for w in windows) <= fr["analysed"]
    assert set(doc["latency"]) >= {"p50_ms", "p99_ms", "p50_growth", "p99_growth"}
    assert set(doc["targets"]) == {"rss_growth_mb", "latency_p50_growth", "latency_p99_growth"}
    assert len(doc["samples"]["t_s"]) == len(doc["samples"]["rss_mb"]) >= 2
    text = capsys.readouterr().out
    assert "## Soak: 300 frames at 300 fps (complete)" in text and "| target |" in text
    _assert_tables_render(text)


def _assert_tables_render(text: str) -> None:
    """Every Markdown table's delimiter row has as many cells as its header (else GitHub
    shows the lines as text)."""
    lines = text.splitlines()
    tables = 0
    for head, rule in zip(lines, lines[1:], strict=False):
        if rule.startswith("|---"):
            tables += 1
            assert head.count("|") == rule.count("|"), f"{head}\n{rule}"
    assert tables >= 1


def test_one_backbone_is_compared_with_the_pair_in_the_same_run(tmp_path, tiny_inputs, capsys):
    _, model = tiny_inputs  # the colour file stands in for both: figures, not speed, checked
    doc = _run(tmp_path, tiny_inputs, "--skip-naive", "--shared-model", str(model),
               "--int8-model", str(model), "--live-seconds", "1.2")
    part = doc["shared"]
    assert set(part["models"]) == {"pair", "shared", "int8"} and part["batch"] == 8
    for figures in part["models"].values():
        assert figures["e2e_fps"] > 0 and figures["inference_ms_per_frame"] > 0
        assert figures["e2e_frames"] == 30 and figures["live_p99_ms"] is not None
        # 3 s at 10 fps at the default 5 fps, coarse to fine: at most half analysed.
        assert 4 <= figures["default_rate_analysed"] <= 15
        assert figures["default_rate_decoded_fps"] > 0
        assert figures["default_rate_cpu_ms_per_decoded_frame"] > 0
    pair, shared, int8 = (part["models"][k] for k in ("pair", "shared", "int8"))
    r = part["ratios"]
    assert math.isclose(r["shared_over_pair_e2e_fps"], shared["e2e_fps"] / pair["e2e_fps"],
                        rel_tol=0.01)
    assert math.isclose(r["int8_over_shared_inference"], shared["inference_ms_per_frame"]
                        / int8["inference_ms_per_frame"], rel_tol=0.01)
    assert math.isclose(r["int8_default_rate_over_decode"], int8["default_rate_decoded_fps"]
                        / doc["stages"]["decode"]["fps"], rel_tol=0.01)
    assert math.isclose(r["int8_default_rate_over_decode_cpu"],
                        doc["stages"]["decode"]["cpu_ms_per_frame"]
                        / int8["default_rate_cpu_ms_per_decoded_frame"], rel_tol=0.02)
    assert part["targets"]["shared_speedup_over_naive"]["met"] is None  # naive skipped
    # int8 is measured, no longer a target (issue 32).
    assert not set(part["targets"]) & {"int8_over_shared_inference",
                                       "int8_default_rate_over_decode"}
    text = capsys.readouterr().out
    assert "one backbone vs two" in text and "| int8 / shared |" in text
    assert part["live_s"] == 1.2 and "live 30 fps at batch 1 for 1.2 s" in text
    # A soak's --live-seconds does not stretch the comparison; its own option can skip live.
    doc = _run(tmp_path, tiny_inputs, "--skip-naive", "--shared-model", str(model),
               "--skip-int8", "--comparison-live-seconds", "0")
    assert doc["live"]["p99_ms"] is not None and doc["shared"]["live_s"] == 0
    assert all(m["live_p99_ms"] is None for m in doc["shared"]["models"].values())
    assert "no live" in capsys.readouterr().out
    # Without a shared file, a run on given --models says why it left the comparison out.
    assert _run(tmp_path, tiny_inputs, "--skip-naive", "--live-seconds", "0")["shared"] == {
        "skipped": "--models given without --shared-model"}


def test_a_shared_backbone_file_is_told_apart_from_a_pair(tmp_path):
    """The comparison takes the bundled model as its shared column when it is one backbone
    with two heads: ``export --shared`` names one source checkpoint for both heads."""
    from benchmarks.inputs import is_shared_backbone
    from endostream.bundled import demo_model_path

    def model(name: str, shas: dict[str, str] | None) -> bool:
        meta = {META_SOURCE_SHA256: json.dumps(shas) if shas else None}
        return is_shared_backbone(build_color_model(tmp_path / name, metadata_overrides=meta))

    assert model("shared.onnx", {"quality": "ab" * 32, "organ": "ab" * 32})
    assert not model("pair.onnx", {"quality": "ab" * 32, "organ": "cd" * 32})
    assert not model("unknown.onnx", None)  # no provenance: not taken for a shared file
    if demo_model_path().is_file():
        assert is_shared_backbone(demo_model_path())


def test_dense_and_coarse_to_fine_side_by_side_on_procedures_with_truth(tmp_path, capsys,
                                                                        monkeypatch):
    """``benchmarks.coarse`` on two small generated procedures: both columns from one run,
    scored against the truth the generator wrote (the colour model knows the scenes)."""
    from endostream.synth.scenes import SCENE_MEAN_RGB

    monkeypatch.setattr("benchmarks.inputs.CACHE_DIR", tmp_path / "cache")
    model = build_color_model(tmp_path / "colour.onnx", organ_colors=SCENE_MEAN_RGB,
                              sharpness="ratio", sharpness_threshold=0.151)
    out = tmp_path / "coarse.json"
    assert coarse_bench.main(["--procedures", "2", "--long-minutes", "0", "--size", "320x240",
                              "--duration-scale", "0.4", "--models", str(model),
                              "--json", str(out)]) == 0
    part = json.loads(out.read_text())["coarse"]
    assert len(part["rows"]) == 2 and "long" not in part
    for row in part["rows"]:
        dense, c2f = row["dense"], row["coarse"]
        assert dense["inferences_per_video_s"] == pytest.approx(5.0, abs=0.1)
        assert c2f["frames_analysed"] < dense["frames_analysed"]
        assert c2f["frames_decoded"] < dense["frames_decoded"]  # non-reference frames skipped
        assert dense["metrics"]["n_true"] == c2f["metrics"]["n_true"] > 0
    summary = part["procedures"]
    for mode in ("dense", "coarse"):
        assert 0 < summary[mode]["f1_pooled"] <= 1 and summary[mode]["realtime_factor"] > 0
    assert summary["coarse"]["inferences_per_video_s"] < summary["dense"]["inferences_per_video_s"]
    text = capsys.readouterr().out
    assert "**coarse to fine**" in text and "`--dense`" in text
    _assert_tables_render(text)
