"""`endostream clips`: stream copy from the keyframe before, or exact re-encoded cuts."""

from __future__ import annotations

import json

import av
import pytest

from endostream.cli import main
from helpers.clips import read_index
from helpers.review import FPS, HEIGHT, WIDTH, make_procedure

GOP = 10  # make_procedure's keyframe interval
#: Section boundaries moved off the keyframes: (label, first frame, last frame).
SHIFTED = [("ear", 0, 44), ("nose", 45, 84), ("vocal_folds", 85, 129)]


@pytest.fixture
def procedure(tmp_path):
    t = make_procedure(tmp_path / "in", audio=True,
                       metadata={"title": "Jane Doe", "comment": "patient Jane Doe"})
    doc = json.loads(t.sections.read_text())
    doc["sections"] = [dict(doc["sections"][0], label=label, start_s=a / FPS,
                            end_s=(b + 1) / FPS, start_frame=a, end_frame=b)
                       for label, a, b in SHIFTED]
    t.sections.write_text(json.dumps(doc))
    return t


def _decoded(path):
    with av.open(str(path)) as c:
        frames = [(f.time, read_index(f.to_ndarray(format="rgb24")[:HEIGHT // 2, :WIDTH // 2]))
                  for f in c.decode(video=0)]
        kinds = sorted(s.type for s in c.streams)
        meta = repr(dict(c.metadata)) + repr([dict(s.metadata) for s in c.streams])
    return frames, kinds, meta


@pytest.mark.parametrize("exact", [False, True])
def test_clips_decode_and_cover_their_sections(procedure, tmp_path, exact):
    out = tmp_path / "clips"
    argv = ["clips", str(procedure.sections), "--out-dir", str(out), "--quiet"]
    assert main(argv + (["--exact"] if exact else [])) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["01-ear-0.0s.mp4", "02-nose-1.8s.mp4", "03-vocal_folds-3.4s.mp4"]
    for name, (_, a, b) in zip(names, SHIFTED, strict=True):
        frames, kinds, meta = _decoded(out / name)
        indices = [i for _, i in frames]
        assert kinds == ["audio", "video"] and "Jane" not in meta
        duration = frames[-1][0] - frames[0][0] + 1 / FPS
        if exact:
            assert indices == list(range(a, b + 1))
            assert abs(duration - (b + 1 - a) / FPS) <= 1 / FPS
        else:  # from the keyframe at or before the start, every frame of the section
            assert indices[0] == a - a % GOP
            assert set(range(a, b + 1)) <= set(indices)
            assert max(indices) <= b + 3  # frames after the end only where referenced
            assert (b + 1 - a) / FPS <= duration <= (b + 1 - a + GOP + 3) / FPS
        assert frames[0][0] == pytest.approx(0.0, abs=1e-3)


def test_labels_overwrite_and_bad_requests(procedure, tmp_path, capsys):
    out = tmp_path / "clips"
    argv = ["clips", str(procedure.sections), "--out-dir", str(out), "--quiet",
            "--label", "Nose", "--format", "mkv"]  # the label as the report shows it
    assert main(argv) == 0
    assert [p.name for p in out.iterdir()] == ["02-nose-1.8s.mkv"]
    assert capsys.readouterr().err == f"wrote {out / '02-nose-1.8s.mkv'}\n"  # each clip
    assert main(argv) == 2  # kept: an existing output is replaced only when asked
    assert main(argv + ["--overwrite"]) == 0
    (out / "02-nose-1.8s.mkv").chmod(0o444)
    assert main(argv) == 2  # read-only: kept
    assert main(argv + ["--overwrite"]) == 0
    assert main(["clips", str(procedure.sections), "--out-dir", str(out),
                 "--label", "Vocal folds", "--label", "EAR", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "01-ear-0.0s.mp4", "02-nose-1.8s.mkv", "03-vocal_folds-3.4s.mp4"]
    assert main(["clips", str(procedure.sections), "--out-dir", str(out),
                 "--label", "kidney"]) == 2
    assert main(["clips", str(procedure.sections), "--out-dir", str(procedure.video.parent),
                 "--video", str(procedure.video), "--quiet"]) == 0  # beside the recording
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("endostream: error:") == 3
    assert "--overwrite" in err and "kidney" in err and "ear, nose, unusable" in err


def test_clips_progress_counts_clips_only(procedure, tmp_path, capsys):
    assert main(["clips", str(procedure.sections), "--out-dir", str(tmp_path / "c")]) == 0
    err = capsys.readouterr().err
    assert "3/3 clips (100%)" in err and "analysed" not in err
    assert err.count("3/3 clips") == 1  # the last line is not printed twice


def test_a_clip_that_starts_a_gop_early_says_so(tmp_path, capsys):
    from helpers.review import LAYOUT, encode

    t = make_procedure(tmp_path / "in")
    encode(t.video, gop=125)  # keyframes at 0 s and 5 s only
    out = tmp_path / "clips"
    assert main(["clips", str(t.sections), "--out-dir", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    # nose (2.4 s) and vocal folds (3.6 s) begin at the keyframe at 0 s
    starts = {name: _decoded(out / name)[0][0][1] for name in
              ("03-nose-2.4s.mp4", "04-vocal_folds-3.6s.mp4")}
    assert starts == {"03-nose-2.4s.mp4": 0, "04-vocal_folds-3.6s.mp4": 0}
    # unusable (1.6 s), nose and vocal folds start more than a second after that keyframe
    assert "warning: 3 clips of 4 start more than 1 s before their sections" in err
    assert f"up to {LAYOUT[3][1] / FPS:.1f} s: '04-vocal_folds-3.6s.mp4'" in err
    assert "--exact" in err
    assert main(["clips", str(t.sections), "--out-dir", str(tmp_path / "exact"), "--quiet",
                 "--exact"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_clip_that_would_replace_the_recording_is_exit_2(tmp_path, capsys):
    t = make_procedure(tmp_path / "in", name="01-ear-0.0s.mp4")  # named as its first clip
    before = t.video.read_bytes()
    assert main(["clips", str(t.sections), "--out-dir", str(t.video.parent), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is the same file as the recording" in err and "--out-dir" in err
    assert t.video.read_bytes() == before
