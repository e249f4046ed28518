"""The correction loop in miniature: segment → correct → dataset → train → export → segment.

The pieces ``python -m benchmarks.correction_loop`` chains, each really run once on a
few-second generated procedure (one training step): no figures, no timings. The figures
are the benchmark's (docs/performance.md, "The correction loop").
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.loop_world import correct as _correct
from benchmarks.loop_world import frames_of, procedure_spec
from endostream.cli import main
from endostream.output.document import read_sections
from endostream.synth import ProcedureSpec, render_dataset, render_procedure


def test_generated_procedures_are_valid_and_seeded():
    a = [procedure_spec(np.random.default_rng(3)).to_json() for _ in range(2)]
    assert a[0] == a[1]
    spec = procedure_spec(np.random.default_rng(4))
    labels = [s.label for s in spec.segments]
    assert {"ear", "nose", "vocal_folds"} <= set(labels)
    assert all(x != y for x, y in zip(labels, labels[1:], strict=False))  # two organs never touch
    assert 20 < spec.duration_s < 60


@pytest.mark.slow
def test_the_loop_in_miniature(tmp_path):
    torch = pytest.importorskip("torch")
    from endostream.export.multitask import SharedBackbone

    video = tmp_path / "p.mp4"
    truth = render_procedure(video, ProcedureSpec.parse("nose:2,blur:1,ear:2,vocal_folds:2"),
                             width=160, height=120, fps=10, seed=1)
    found = tmp_path / "p.sections.json"
    assert main(["segment", str(video), "--out", str(found), "--device", "cpu",
                 "--quiet"]) == 0
    fixed = tmp_path / "p.reviewed.sections.json"
    _correct(found, truth.sections, fixed)
    reviewed = read_sections(fixed)
    assert reviewed.review is not None
    assert [s.label for s in reviewed.sections] == ["nose", "unusable", "ear", "vocal_folds"]

    labels = tmp_path / "ds" / "labels.csv"
    labels.parent.mkdir()
    assert main(["dataset", str(fixed), "--out", str(labels), "--fps", "2",
                 "--margin", "0.5"]) == 0
    # --with-old, the README's recipe: the corrections and the old data in one set, the
    # step budget counting both.
    old = render_dataset(tmp_path / "old", per_class=2, size=(160, 120), seed=1,
                         recordings=1)
    both = tmp_path / "both" / "labels.csv"
    both.parent.mkdir()
    assert main(["dataset", str(fixed), "--out", str(both), "--fps", "2", "--margin", "0.5",
                 "--include", str(old)]) == 0
    assert frames_of(both) == frames_of(labels) + frames_of(old) > frames_of(labels) > 0
    # The organ head learns the organs the data has: all three are in this procedure.
    # Fine-tuning starts from a model train --task both wrote: its heads are skipped
    # (before, --init refused a shared checkpoint's 'heads.' keys: exit 4).
    init = tmp_path / "before.pth"
    torch.save(SharedBackbone({"quality": 2, "organ": 3}).state_dict(), init)
    ckpt = tmp_path / "after.pth"
    assert main(["train", str(labels), "--task", "both", "--out", str(ckpt), "--init",
                 str(init), "--max-steps", "1", "--batch", "4", "--lr", "1e-3",
                 "--val-fraction", "0", "--no-calibrate", "--threads", "2",
                 "--device", "cpu"]) == 0
    model = tmp_path / "after.onnx"
    assert main(["export", "--shared", str(ckpt), "--out", str(model),
                 "--parity-frames", "2"]) == 0
    again = tmp_path / "again.sections.json"
    assert main(["segment", str(video), "--models", str(model), "--device", "cpu",
                 "--out", str(again), "--quiet"]) == 0
    doc = read_sections(again)
    assert {k: list(v) for k, v in doc.models.heads.items()} == {
        "quality": ["bad", "good"], "organ": ["ear", "nose", "vocal_folds"]}


def test_the_budget_grows_with_the_corrections():
    """More corrected rows never mean fewer passes over them (issue 29, item 4)."""
    from benchmarks.loop_world import Budget

    budget = Budget(passes=8, min_steps=50, batch=8)
    assert budget.steps(10) == 50  # the floor
    assert budget.steps(400) == 400 and budget.steps(800) == 800
    assert all(budget.steps(r) * 8 >= 8 * r for r in (100, 400, 800))


def test_aggregate_and_targets_over_seeds():
    """Mean ± spread over seeds, and the three targets read from them."""
    from benchmarks.correction_loop import aggregate, table, verdicts

    def seed(f1s):
        rows = {("weak", -1, ""): {"f1": 0.3, "boundary_error_s": 2.0, "time_accuracy": 0.5}}
        rows[("weak", 0, "")] = {"f1": f1s[0], "boundary_error_s": 1.0,
                                 "time_accuracy": 0.6, "steps": 50}
        for n, f1 in zip((1, 2, 8), f1s[1:], strict=True):
            rows[("weak", n, "next")] = {"f1": f1, "boundary_error_s": 0.5,
                                         "time_accuracy": 0.8, "steps": 50 * n}
        return {"rows": rows}

    agg = aggregate([seed([0.5, 0.6, 0.8, 0.96]), seed([0.52, 0.62, 0.84, 0.98]),
                     seed([0.48, 0.58, 0.82, 0.97])])
    assert abs(agg[("weak", 2, "next")]["f1"]["mean"] - 0.82) < 1e-9
    assert agg[("weak", 2, "next")]["f1"]["sd"] > 0
    lines = verdicts(agg, [1, 2, 8], "weak", "next")
    assert lines[0].endswith("yes") and "every seed: yes" in lines[1]
    assert lines[2].startswith("N = 8 mean F1 ≥ 0.95: yes")
    bad = aggregate([seed([0.5, 0.9, 0.6, 0.7])] * 2)
    lines = verdicts(bad, [1, 2, 8], "weak", "next")
    assert "no (N = 1 → 2)" in lines[0] and "yes" not in lines[2]
    assert "| weak | 0 (control: old data) | – | 0.500 ± 0.000 |" in table(bad)


def test_the_budget_counts_images_not_csv_rows(tmp_path):
    """A dataset row points into a video (start_s, end_s, fps): its images are the frames
    of that stretch; a still-image row is one image."""
    (tmp_path / "v.csv").write_text("path,recording,organ,quality,start_s,end_s,fps,sections\n"
                                    "a.mp4,a.mp4,ear,good,0,8.5,2,s.json\n"
                                    "a.mp4,a.mp4,nose,good,9.5,16.9,2,s.json\n")
    (tmp_path / "i.csv").write_text("path,organ,quality,recording\n"
                                    "ear/1.jpg,ear,bad,r0\near/2.jpg,ear,good,r0\n")
    assert frames_of(tmp_path / "v.csv") == 17 + 14
    assert frames_of(tmp_path / "i.csv") == 2


@pytest.mark.slow
def test_the_world_is_seen_through_the_clinics_scope_and_each_start_has_its_old_data(
        tmp_path):
    """Every procedure through the clinic's scope, which neither model knew; each model's
    control trains on its own kind of old data (the bundled model's is drawn as the model
    card's, not the weak model's organ-per-scope frames, which teach a scope shortcut)."""
    import json

    from benchmarks.loop_world import CLINIC_SCOPE, WEAK_SCOPES, make_world

    world = make_world(tmp_path, seed=5, pool_size=1, tests=1, scope="rounded:grey")
    for _, truth in world.pool + world.tests:
        assert (truth.fov.shape, truth.palette) == ("rounded", "grey")
    assert world.old("weak") == world.old_data != world.old("bundled") == world.bundled_data
    scopes = {name: json.loads((world.old(name) / "dataset.json").read_text())["scopes"]
              for name in ("weak", "bundled")}
    assert scopes["bundled"] == {}
    assert ",".join(f"{k}={v}" for k, v in scopes["weak"].items()) == WEAK_SCOPES
    assert CLINIC_SCOPE not in scopes["weak"].values()


def test_a_pool_smaller_than_a_count_is_refused_before_any_work(capsys):
    from benchmarks.correction_loop import main as loop_main

    with pytest.raises(SystemExit) as e:
        loop_main(["--counts", "1,2,4", "--pool", "2"])
    assert e.value.code == 2
    assert "--pool 2: at least the largest count (4)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        loop_main(["--scope", "oval:warm"])
    assert "--scope oval:warm" in capsys.readouterr().err
