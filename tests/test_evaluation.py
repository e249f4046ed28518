"""Classification metrics, evaluation plots and ``endostream evaluate`` (no torch).

Metrics are checked on hand-made predictions whose answers are worked out by hand; the
CLI runs a tiny colour ONNX model over a small labelled folder, and compares sections with
synthetic ground truth.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from endostream import cli
from endostream.evaluation.metrics import (
    classification_report,
    confusion_matrix,
    precision_recall_f1,
    roc_curve,
    thin_curve,
)
from endostream.evaluation.plots import ROC_SIZE, draw_confusion, draw_roc, save_png
from endostream.evaluation.sections import evaluate_sections
from tests.helpers.onnx_models import DEFAULT_ORGAN_COLORS, build_color_model, color_image

ORGANS = ("ear", "nose", "vocal_folds")


def run_cli(argv: list[str]) -> int:
    """``endostream ARGV`` in-process (evaluate may not be registered in cli.py yet)."""
    cli.COMMANDS.setdefault("evaluate", ("endostream.commands.evaluate", "evaluate"))
    return cli.main(argv)


# --- metrics on hand-made predictions -----------------------------------------------


def test_accuracy_confusion_and_prf_match_hand_counts():
    # 3 classes, 8 frames. True:      0 0 0 1 1 2 2 2
    #                      Predicted: 0 0 1 1 2 2 2 0
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    probs = np.eye(3)[pred] * 0.8 + 0.2 / 3
    r = classification_report(y, probs, ORGANS)
    assert r.accuracy == pytest.approx(5 / 8)
    assert r.confusion.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    ear, nose, vf = (r.per_class[k] for k in ORGANS)
    # ear: tp 2, predicted 3, actual 3
    assert (ear["precision"], ear["recall"]) == pytest.approx((2 / 3, 2 / 3))
    # nose: tp 1, predicted 2, actual 2
    assert (nose["precision"], nose["recall"], nose["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    # vocal folds: tp 2, predicted 3, actual 3
    assert vf["f1"] == pytest.approx(2 / 3)
    assert [m["support"] for m in r.per_class.values()] == [3, 2, 3]
    assert r.macro["f1"] == pytest.approx((2 / 3 + 0.5 + 2 / 3) / 3)


def test_undefined_precision_and_recall_are_zero_not_nan():
    p, r, f = precision_recall_f1(confusion_matrix([0, 0, 1], [0, 0, 0], 3))
    assert p.tolist() == [2 / 3, 0.0, 0.0]  # classes 1, 2 never predicted
    assert r.tolist() == [1.0, 0.0, 0.0]  # class 2 never present
    assert not np.isnan(f).any()


def test_auc_perfect_reversed_and_tied_rankings():
    truth = [True, True, False, False, True, False]
    perfect = [0.9, 0.8, 0.2, 0.1, 0.7, 0.3]
    assert roc_curve(truth, perfect).auc == 1.0
    assert roc_curve(truth, [1 - s for s in perfect]).auc == 0.0
    assert roc_curve(truth, [0.5] * 6).auc == 0.5
    # One positive tied with one negative, everything else ordered right: 8.5 of 9 pairs.
    assert roc_curve(truth, [0.9, 0.8, 0.2, 0.1, 0.3, 0.3]).auc == pytest.approx(8.5 / 9)


def test_auc_equals_pairwise_ranking_probability():
    rng = np.random.default_rng(3)
    truth = rng.random(300) < 0.3
    scores = np.round(rng.random(300) + 0.4 * truth, 1)  # rounding makes many ties
    pos, neg = scores[truth], scores[~truth]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert roc_curve(truth, scores).auc == pytest.approx(pairs, abs=1e-12)


def test_roc_of_a_class_without_negatives_is_undefined_and_json_null():
    r = classification_report([1, 1, 1], np.array([[0.2, 0.8]] * 3), ["bad", "good"])
    assert np.isnan(r.per_class["good"]["auc"])
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["per_class"]["good"]["auc"] is None
    assert doc["per_class"]["bad"]["support"] == 0


def test_report_json_is_plain_and_curves_are_thinned():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    probs = rng.dirichlet([1, 1], 5000)
    doc = json.loads(json.dumps(classification_report(y, probs, ["bad", "good"]).to_json()))
    curve = doc["roc"]["good"]
    assert len(curve["fpr"]) <= 201 and curve["fpr"][0] == 0.0 and curve["tpr"][-1] == 1.0
    assert curve["thresholds"][0] is None  # +inf
    full = roc_curve(y == 1, probs[:, 1])
    assert thin_curve(full).auc == full.auc


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        classification_report([0], np.ones((1, 3)), ["bad", "good"])


# --- plots ---------------------------------------------------------------------------


def test_plots_are_valid_pngs_of_expected_size(tmp_path):
    r = classification_report([0, 1, 2, 2], np.eye(3)[[0, 1, 2, 1]], ORGANS)
    cm_img = draw_confusion(r.confusion, r.labels)
    roc_img = draw_roc({k: (c.fpr, c.tpr, c.auc) for k, c in r.roc.items()})
    save_png(tmp_path / "c.png", cm_img)
    save_png(tmp_path / "r.png", roc_img)
    for name, img in (("c.png", cm_img), ("r.png", roc_img)):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        back = cv2.imread(str(tmp_path / name))
        assert back.shape == img.shape
    assert roc_img.shape[:2] == (ROC_SIZE[1], ROC_SIZE[0])
    # 3 cells of 110 px plus margins; more classes make a bigger matrix.
    assert cm_img.shape[0] > 3 * 110 and cm_img.shape[1] > 3 * 110
    assert draw_confusion(np.eye(5, dtype=int), list("abcde")).shape[0] > cm_img.shape[0]


def test_confusion_plot_colours_cells_by_row_share():
    img = draw_confusion(np.array([[10, 0], [0, 10]]), ["bad", "good"])
    # Diagonal cells full share -> dark blue; off-diagonal empty -> near white. Sample each
    # cell near its corner, away from the text.
    ys, xs = np.nonzero((img[..., 2] > 90) & (img[..., 0] < 20))  # the dark-blue pixels
    assert xs.size > 2 * 80 * 80


def test_save_png_to_missing_folder_is_an_output_error(tmp_path):
    from endostream.errors import OutputError

    with pytest.raises(OutputError, match="cannot write"):
        save_png(tmp_path / "missing" / "x.png", np.zeros((4, 4, 3), np.uint8))


# --- endostream evaluate: dataset mode -----------------------------------------------


@pytest.fixture()
def colour_dataset(tmp_path) -> Path:
    """organ/<label>/rec<k>__<n>.png colour images; one nose-coloured image filed as ear."""
    root = tmp_path / "set"
    for label in ORGANS:
        (root / label).mkdir(parents=True)
        for k in range(4):
            img = color_image(DEFAULT_ORGAN_COLORS[label], seed=k)
            cv2.imwrite(str(root / label / f"rec{k % 2}__{k}.png"), img[..., ::-1])
    wrong = color_image(DEFAULT_ORGAN_COLORS["nose"], seed=9)
    cv2.imwrite(str(root / "ear" / "rec1__9.png"), wrong[..., ::-1])
    return root


def test_evaluate_dataset_mode_writes_metrics_and_plots(tmp_path, colour_dataset, capsys):
    model = build_color_model(tmp_path / "colour.onnx")
    out = tmp_path / "eval"
    rc = run_cli(["evaluate", "--models", str(model), "--device", "cpu", "--dataset",
                  str(colour_dataset), "--task", "organ", "--out-dir", str(out)])
    assert rc == 0
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["schema"] == "endostream.evaluation/1"
    assert doc["frames"] == 13 and doc["recordings"] == 2
    assert doc["labels"] == list(ORGANS)
    assert doc["confusion"]["matrix"] == [[4, 1, 0], [0, 4, 0], [0, 0, 4]]
    assert doc["accuracy"] == pytest.approx(12 / 13, abs=1e-4)
    assert doc["per_class"]["ear"]["recall"] == pytest.approx(0.8)
    assert doc["per_class"]["nose"]["precision"] == pytest.approx(0.8)
    assert doc["per_class"]["vocal_folds"]["auc"] == 1.0
    for png in ("confusion.png", "roc.png"):
        assert cv2.imread(str(out / png)) is not None
    table = capsys.readouterr().out
    assert "accuracy 0.923" in table and "vocal_folds" in table


def test_evaluate_refuses_a_head_the_model_lacks(tmp_path, colour_dataset, capsys):
    model = build_color_model(tmp_path / "organ_only.onnx", quality=False)
    (colour_dataset / "labels.csv").write_text("path,quality\near/rec0__0.png,good\n")
    rc = run_cli(["evaluate", "--models", str(model), "--device", "cpu", "--dataset",
                  str(colour_dataset), "--task", "quality", "--out-dir", str(tmp_path / "o")])
    assert rc == 2
    assert "no quality head" in capsys.readouterr().err


def test_evaluate_needs_one_mode(tmp_path, capsys):
    rc = run_cli(["evaluate", "--out-dir", str(tmp_path)])
    assert rc == 2
    assert "either --dataset" in capsys.readouterr().err


# --- endostream evaluate: video mode -------------------------------------------------


def _sections_file(path: Path, sections: list[tuple[str, float, float]]) -> Path:
    path.write_text(json.dumps({"sections": [
        {"label": lb, "start_s": a, "end_s": b} for lb, a, b in sections]}))
    return path


def test_evaluate_video_mode_scores_given_sections_against_synth_truth(tmp_path, capsys):
    from endostream.synth import ProcedureSpec, ground_truth

    truth = ground_truth(ProcedureSpec.parse("nose:4,ear:6"), fps=10.0)
    truth.write(tmp_path / "truth.json")
    # Boundary 1.5 s late, and a spurious 0.5 s vocal-folds section inside "ear".
    pred = _sections_file(tmp_path / "pred.json", [
        ("nose", 0.0, 5.5), ("ear", 5.5, 7.0), ("vocal_folds", 7.0, 7.5), ("ear", 7.5, 10.0)])
    out = tmp_path / "v"
    rc = run_cli(["evaluate", "--truth", str(tmp_path / "truth.json"), "--sections", str(pred),
                  "--out-dir", str(out)])
    assert rc == 0
    doc = json.loads((out / "video_metrics.json").read_text())
    expected = evaluate_sections([("nose", 0, 5.5), ("ear", 5.5, 7.0), ("vocal_folds", 7.0, 7.5),
                                  ("ear", 7.5, 10.0)], [("nose", 0, 4), ("ear", 4, 10)])
    m = doc["metrics"]
    assert m["boundary_errors_s"] == [1.5] == expected["boundary_errors_s"]
    assert m["extra_sections"] == 2 and m["n_true"] == 2 and m["matched"] == 1
    assert m["f1"] == pytest.approx(expected["f1"], abs=1e-4)
    assert [s["label"] for s in doc["ground_truth"]] == ["nose", "ear"]
    assert "extra sections +2" in capsys.readouterr().out


def test_evaluate_video_mode_segments_the_video_itself(tmp_path):
    from endostream.synth import SCENE_MEAN_RGB, ProcedureSpec, render_procedure

    video = tmp_path / "clip.mp4"
    truth = render_procedure(video, ProcedureSpec.parse("nose:6,vocal_folds:6"), width=160,
                             height=120, fps=10)
    truth.write(tmp_path / "truth.json")
    model = build_color_model(tmp_path / "scene.onnx", organ_colors=SCENE_MEAN_RGB,
                              sharpness_threshold=0.5)
    out = tmp_path / "v"
    rc = run_cli(["evaluate", "--models", str(model), "--device", "cpu", "--video", str(video),
                  "--truth", str(tmp_path / "truth.json"), "--out-dir", str(out), "--quiet"])
    assert rc == 0
    doc = json.loads((out / "video_metrics.json").read_text())
    assert (out / "sections.json").is_file()
    m = doc["metrics"]
    assert m["n_true"] == 2
    assert m["time_accuracy"] > 0.8
    assert m["median_boundary_error_s"] is not None and m["median_boundary_error_s"] < 2.0


def test_evaluate_video_mode_needs_truth(tmp_path, capsys):
    pred = _sections_file(tmp_path / "p.json", [("ear", 0, 1)])
    assert run_cli(["evaluate", "--sections", str(pred), "--out-dir", str(tmp_path)]) == 2
    assert "--truth" in capsys.readouterr().err


def test_evaluate_sample_fps_all_analyses_every_frame(tmp_path):
    # 'all' once parsed to None, which evaluate also used for "not given": 5 fps.
    from endostream.synth import SCENE_MEAN_RGB, ProcedureSpec, render_procedure

    video = tmp_path / "clip.mp4"
    truth = render_procedure(video, ProcedureSpec.parse("nose:3,ear:3"), width=96,
                             height=72, fps=10, seed=4)
    truth.write(tmp_path / "truth.json")
    model = build_color_model(tmp_path / "scene.onnx", organ_colors=SCENE_MEAN_RGB,
                              sharpness_threshold=0.5)
    base = ["evaluate", "--models", str(model), "--device", "cpu", "--video", str(video),
            "--truth", str(tmp_path / "truth.json"), "--quiet"]
    analysed = {}
    for rate in ("all", None):
        out = tmp_path / f"v-{rate}"
        assert run_cli([*base, "--out-dir", str(out)]
                       + (["--sample-fps", rate] if rate else [])) == 0
        doc = json.loads((out / "sections.json").read_text())
        analysed[rate] = (doc["analysis"]["frames_analysed"], doc["analysis"]["sample_fps"])
    assert analysed["all"] == (60, None)  # every frame of 6 s at 10 fps
    # segment's default rate, coarse to fine: at most the 30 frames a 5/s grid holds
    assert analysed[None][1] == 5.0 and 6 <= analysed[None][0] <= 30
