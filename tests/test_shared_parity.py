"""The shared-model parity benchmark in miniature: one seed, two training steps, small
frames and one extra procedure, really rendered, trained, exported and scored. No
figures are checked but the bundled model's, which is fixed; the benchmark's figures are
in docs/performance.md ("The bundled model's recipe over three seeds")."""

from __future__ import annotations

import json

import pytest

from benchmarks.shared_parity import main


@pytest.mark.slow
def test_parity_in_miniature(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "parity.json"
    code = main(["--seeds", "1", "--steps", "2", "--quality-steps", "2", "--per-class", "12",
                 "--heldout-per-class", "6", "--procedures", "1", "--video-size", "160x120",
                 "--video-fps", "10",
                 "--work", str(tmp_path / "work"), "--json", str(out)])
    doc = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert code == (0 if all(doc["parity"].values()) else 1)
    assert set(doc["parity"]) == {"quality_acc", "organ_acc_all", "organ_acc_good",
                                  "video demo", "video seed 11"}
    assert [r["seed"] for r in doc["shared"]] == [0]
    # the card's recipe: a quality network first, both heads then trained on its backbone
    assert (tmp_path / "work" / "shared0-quality.pth").is_file()
    assert (tmp_path / "work" / "shared0.onnx").is_file()
    # ... with a cosine rate schedule and the last epoch kept
    import torch
    resume = torch.load(tmp_path / "work" / "shared0.resume.pt", weights_only=True)
    assert (resume["config"]["lr_schedule"], resume["config"]["keep"]) == ("cosine", "last")
    assert "organ share 0.5, lr cosine, keep last" in printed
    # ... and the pair's recipe on the same seed, its quality network shared with the
    # shared model's start, for the spread of the pair itself
    assert [r["seed"] for r in doc["pair_seeds"]] == [0]
    assert (tmp_path / "work" / "pair0-organ.pth").is_file()
    assert "| pair recipe, seed 0, 2 x 2 steps |" in printed
    assert doc["reference"] == "pair recipe mean"  # no --pair given
    for row in (doc["bundled_model"], *doc["pair_seeds"], *doc["shared"]):
        assert all(0.0 <= row[k] <= 1.0 for k in ("quality_acc", "organ_acc_all",
                                                  "organ_acc_good"))
        assert set(row["videos"]) == {"demo", "seed 11"}
        assert set(row["bad_frames_by_look"]) <= {"blur", "dark", "black"}
    # The bundled model finds the demo's sections and calls none of its unusable frames
    # good: the truth is aligned with the analysed frames and the heads read the right way.
    pair = doc["bundled_model"]
    assert pair["videos"]["demo"]["f1"] == 1.0
    assert pair["organ_acc_good"] > 0.9
    assert pair["demo_bad_frames"] and all(p < 0.5 for _, _, p in pair["demo_bad_frames"])
    assert {look for _, look, _ in pair["demo_bad_frames"]} == {"blur", "dark", "black"}
    assert "| bundled model |" in printed and "| shared, seed 0, 2 + 2 steps |" in printed
