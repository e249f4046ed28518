"""The correction loop in miniature: segment → correct → dataset → train → export → segment.

The pieces ``python -m benchmarks.correction_loop`` chains, each really run once on a
few-second generated procedure (one training step): no figures, no timings. The figures
are the benchmark's (docs/performance.md, "The correction loop").
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.correction_loop import _correct, procedure_spec
from endostream.cli import main
from endostream.output.document import read_sections
from endostream.synth import ProcedureSpec, render_procedure


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
