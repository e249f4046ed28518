"""section_metrics: boundary errors both ways, segment matching, pooling; the benchmark runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from endostream.evaluation.sections import (
    boundary_errors,
    evaluate_sections,
    match_sections,
    pool,
    time_accuracy,
)
from endostream.segmentation.section import Section

TRUTH = [("nose", 0.0, 40.0), ("ear", 40.0, 100.0), ("unusable", 100.0, 110.0)]


def test_perfect_prediction():
    r = evaluate_sections(TRUTH, TRUTH)
    assert r["f1"] == 1.0 and r["extra_sections"] == 0 and r["unmatched_pred"] == 0
    assert r["boundary_error_s"] == 0.0 and r["time_accuracy"] == 1.0


def test_accepts_section_objects():
    secs = [Section(lab, s, e, int(s * 30), int(e * 30) - 1, 1.0, 1.0) for lab, s, e in TRUTH]
    assert evaluate_sections(secs, TRUTH)["f1"] == 1.0


def test_boundary_errors_both_ways():
    pred = [("nose", 0.0, 41.0), ("ear", 41.0, 70.0), ("nose", 70.0, 72.0),
            ("ear", 72.0, 99.0), ("unusable", 99.0, 110.0)]
    assert boundary_errors(pred, TRUTH).tolist() == [1.0, 1.0]
    assert boundary_errors(pred=TRUTH, truth=pred).tolist() == [1.0, 30.0, 28.0, 1.0]
    r = evaluate_sections(pred, TRUTH)
    assert r["median_boundary_error_s"] == 1.0
    assert r["median_pred_boundary_error_s"] == 14.5
    assert r["boundary_error_s"] == 1.0  # median of [1, 1, 1, 30, 28, 1]
    assert r["extra_sections"] == 2


def test_flickering_prediction_is_near_true_boundaries_but_far_the_other_way():
    flicker = [("nose" if k % 2 else "ear", k * 0.5, (k + 1) * 0.5) for k in range(220)]
    r = evaluate_sections(flicker, TRUTH)
    assert r["median_boundary_error_s"] == 0.0
    assert r["boundary_error_s"] > 10.0
    assert r["f1"] < 0.05


def test_missing_boundaries_measure_to_the_video_ends():
    r = evaluate_sections([("nose", 0.0, 110.0)], TRUTH)
    assert r["boundary_errors_s"] == [40.0, 10.0]
    assert r["pred_boundary_errors_s"] == []


def test_matching_needs_label_and_iou():
    pred = [("nose", 0.0, 25.0), ("ear", 25.0, 100.0), ("nose", 100.0, 110.0)]
    # nose IoU 25/40 >= 0.5; ear IoU 60/75 = 0.8; last has the wrong label.
    assert [(i, j) for i, j, _ in match_sections(pred, TRUTH)] == [(0, 0), (1, 1)]
    assert match_sections(pred, TRUTH, iou_threshold=0.7) == [(1, 1, pytest.approx(0.8))]
    r = evaluate_sections(pred, TRUTH)
    assert r["precision"] == r["recall"] == pytest.approx(2 / 3)


def test_time_accuracy():
    pred = [("nose", 0.0, 50.0), ("ear", 50.0, 110.0)]
    assert time_accuracy(pred, TRUTH) == pytest.approx(90 / 110)


def test_empty_inputs():
    assert evaluate_sections([], [])["f1"] == 1.0
    r = evaluate_sections([], TRUTH)
    assert r["f1"] == 0.0 and r["boundary_error_s"] == 25.0  # median of 40 and 10


def test_pool_adds_counts_and_pools_errors():
    a = evaluate_sections(TRUTH, TRUTH)
    b = evaluate_sections([("nose", 0.0, 110.0)], TRUTH)
    p = pool([a, b])
    assert (p["n_true"], p["n_pred"], p["matched"], p["videos"]) == (6, 4, 3, 2)
    assert sorted(p["boundary_errors_s"]) == [0.0, 0.0, 10.0, 40.0]
    assert p["time_accuracy"] == pytest.approx((1.0 + 40 / 110) / 2)


def test_benchmark_runs_and_the_segmenter_beats_the_baselines(tmp_path):
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "quality.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.segmenter_quality", "--sequences", "3",
         "--seed", "5", "--json", str(out)],
        cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| offline (HMM + merge) |" in proc.stdout
    methods = json.loads(out.read_text())["methods"]
    offline = methods["offline (HMM + merge)"]
    baselines = [v for k, v in methods.items() if k.startswith(("per-frame", "majority"))]
    assert len(baselines) == 2
    for b in baselines:
        assert offline["f1"] > b["f1"]
        assert offline["boundary_error_s"] < b["boundary_error_s"]
        assert offline["unmatched_pred"] <= b["unmatched_pred"]
        assert abs(offline["extra_sections"]) <= abs(b["extra_sections"])
