"""`endostream next`: where the model is least sure, ranked over several analysed videos.

Two copies of the tiny procedure of :mod:`helpers.review` (one flat colour per section):
in the first, the organ head hesitates between nose and ear inside the nose section; in
the second, the per-frame answer says vocal folds inside the ear section. Both stretches
must lead the list, each with a thumbnail of the right section's colour.
"""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from endostream.cli import main
from endostream.corrections.uncertainty import FrameDoubt, rank
from endostream.errors import EXIT_USAGE, EXIT_VIDEO
from helpers.review import COLORS, make_procedure


def _edit_csv(path, start_s, end_s, probs):
    """Give the frames in [start_s, end_s) these organ probabilities (ear, nose, vf)."""
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    cols = [header.index(f"organ_{o}") for o in ("ear", "nose", "vocal_folds")]
    for row in rows[1:]:
        if start_s <= float(row[1]) < end_s:
            for c, p in zip(cols, probs, strict=True):
                row[c] = f"{p:.4f}"
            row[header.index("organ")] = ("ear", "nose", "vocal_folds")[int(np.argmax(probs))]
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


@pytest.fixture()
def two_videos(tmp_path):
    a = make_procedure(tmp_path / "a")
    b = make_procedure(tmp_path / "b")
    _edit_csv(a.csv, 2.6, 3.4, (0.45, 0.5, 0.05))  # hesitates inside nose (2.4-3.6 s)
    _edit_csv(b.csv, 0.4, 1.2, (0.05, 0.05, 0.9))  # says vocal folds inside ear (0-1.6 s)
    return a, b


def _colour_name(image_bgr: np.ndarray) -> str:
    h, w = image_bgr.shape[:2]
    mean = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)[h // 2 + 10:, w // 2 + 10:]
    mean = mean.reshape(-1, 3).mean(axis=0)
    return min(COLORS, key=lambda k: float(np.abs(mean - np.array(COLORS[k])).sum()))


def test_next_ranks_doubt_and_disagreement_across_videos(two_videos, tmp_path, capsys):
    a, b = two_videos
    out = tmp_path / "review"
    assert main(["next", str(a.sections), str(b.sections), "--csv", str(a.csv),
                 "--csv", str(b.csv), "--out-dir", str(out), "--window", "0.8",
                 "--spacing", "2", "--count", "5"]) == 0
    assert "wrote" in capsys.readouterr().err
    with open(out / "next.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    doc = json.loads((out / "next.json").read_text())
    assert doc["schema"] == "endostream.next/1" and len(doc["stretches"]) == len(rows)
    top = {(r["video"], r["section"], r["model_says"]) for r in rows[:2]}
    assert top == {(str(a.video), "nose", "nose"), (str(b.video), "ear", "vocal_folds")}
    for r in rows[:2]:
        at = float(r["at_s"])
        assert (2.6 <= at < 3.4) if r["video"] == str(a.video) else (0.4 <= at < 1.2)
        assert float(r["score"]) > 0.8
        thumb = cv2.imread(str(out / r["thumbnail"]))
        assert thumb is not None and _colour_name(thumb) == r["section"]
        assert "procedure" not in r["thumbnail"]  # never the video's file name
    # Spaced apart within each video; ranked best first.
    for v in (str(a.video), str(b.video)):
        times = [float(r["at_s"]) for r in rows if r["video"] == v]
        assert all(abs(x - y) >= 2 for i, x in enumerate(times) for y in times[i + 1:])
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_spacing_keeps_one_confusing_minute_from_filling_the_list():
    t = np.arange(0, 600, 0.2)
    doubt = np.where((t >= 100) & (t < 160), 0.9, 0.0)
    doubt[(t >= 400) & (t < 402)] = 0.6
    n = len(t)
    d = FrameDoubt(t, np.ones(n, bool), doubt, np.zeros(n, bool), np.zeros(n), ["ear"] * n,
                   ["ear"] * n,
                   ["ear", "nose"], np.tile([0.5, 0.5], (n, 1)))
    picks = rank([d], window_s=4, spacing_s=30, count=10)
    centres = [p.at_s for p in picks]
    assert len([c for c in centres if 95 <= c < 165]) <= 3  # 60 s of doubt, 30 s apart
    assert any(399 <= c < 403 for c in centres)  # the short stretch still makes the list
    assert all(p.score > 0.1 for p in picks)


def test_next_bad_inputs(two_videos, tmp_path, capsys):
    a, b = two_videos
    out = str(tmp_path / "review")
    # No per-frame CSV beside the file (make_procedure names it frames.csv).
    assert main(["next", str(a.sections), "--out-dir", out]) == EXIT_USAGE
    assert "segment' with --csv" in capsys.readouterr().err
    assert main(["next", str(a.sections), str(b.sections), "--csv", str(a.csv),
                 "--out-dir", out]) == EXIT_USAGE
    assert "1 --csv for 2" in capsys.readouterr().err
    assert main(["next", str(a.sections), "--csv", str(a.sections),
                 "--out-dir", out]) == EXIT_USAGE
    assert "per-frame CSV" in capsys.readouterr().err
    a.video.unlink()
    assert main(["next", str(a.sections), "--csv", str(a.csv), "--out-dir", out]) == EXIT_VIDEO
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["next", str(a.sections), "--csv", str(a.csv), "--out-dir", out,
                 "--no-thumbnails"]) == 0
    assert not (tmp_path / "review" / "thumbs").exists()


def _confident(t: np.ndarray, layout: list[tuple[str, float, float]], labels: list[str]):
    """A FrameTable whose every frame is judged good and sure of its section's organ."""
    from endostream.procedure import FrameTable
    from endostream.segmentation.section import Section

    organ = np.zeros((len(t), len(labels)))
    sections = []
    for label, a, b in layout:
        inside = (t >= a) & (t < b)
        organ[inside, labels.index(label)] = 1.0
        idx = np.flatnonzero(inside)
        sections.append(Section(label, a, b, int(idx[0]), int(idx[-1]), 1.0, 1.0))
    table = FrameTable(np.arange(len(t)), t, np.full(len(t), 0.99), labels, organ)
    return table, sections


def test_a_confident_mistake_is_listed_for_the_sections_around_it():
    """A model sure of 'ear' for 6 s in the middle of the nose (every frame at 1.00): no
    doubt and no disagreement, but the sections around it give it away. A 60 s larynx
    between the way in and the way out through the nose is the procedure, not listed."""
    from endostream.corrections.uncertainty import frame_doubt

    labels = ["ear", "nose", "vocal_folds"]
    t = np.arange(0, 200, 0.2)
    layout = [("nose", 0, 40), ("ear", 40, 46), ("nose", 46, 70), ("vocal_folds", 70, 130),
              ("nose", 130, 200)]
    table, sections = _confident(t, layout, labels)
    doubt = frame_doubt(table, sections, good_at=0.5)
    assert doubt.doubt.max() == 0.0 and not doubt.disagree.any()
    picks = rank([doubt], window_s=4, spacing_s=10, count=10)
    assert picks, "a confident island must be listed"
    top = picks[0]
    assert 40 <= top.at_s < 46 and top.section == "ear"
    assert top.why == "unlike the sections around it" and top.context > 0.7
    assert not any(70 <= p.at_s < 130 for p in picks)  # the long larynx visit


def test_next_lists_a_confident_island_through_the_command(tmp_path, capsys):
    """End to end: a sections file whose short nose section sits between two ear sections,
    every frame sure of it; `next` lists it first and says why, in next.csv."""
    proc = make_procedure(tmp_path / "p")
    doc = json.loads(proc.sections.read_text())
    # ear 0-1.6 s, unusable, nose 2.4-3.6 s, vocal folds 3.6-5.2 s → make the last ear,
    # so nose (1.2 s) is an island between two ear sections.
    doc["sections"][3]["label"] = "ear"
    proc.sections.write_text(json.dumps(doc))
    _edit_csv(proc.csv, 0.0, 1.6, (1.0, 0.0, 0.0))
    _edit_csv(proc.csv, 2.4, 3.6, (0.0, 1.0, 0.0))
    _edit_csv(proc.csv, 3.6, 5.2, (1.0, 0.0, 0.0))
    out = tmp_path / "review"
    assert main(["next", str(proc.sections), "--csv", str(proc.csv), "--out-dir", str(out),
                 "--window", "0.8", "--spacing", "2", "--count", "3",
                 "--no-thumbnails"]) == 0
    capsys.readouterr()
    with open(out / "next.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["section"] == "nose" and 2.4 <= float(rows[0]["at_s"]) < 3.6
    assert "unlike the sections around it" in rows[0]["why"]
    assert float(rows[0]["context"]) > 0.9
