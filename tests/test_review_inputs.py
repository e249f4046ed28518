"""What the review commands (chapters, report, clips, annotate) accept as input: a
sections file that holds its invariants, the per-frame CSV of the same run, and the
recording wherever it can reasonably be found."""

from __future__ import annotations

import csv
import json
import shutil

import av
import pytest

from endostream.cli import main
from helpers.clips import encode_clip, index_frame
from helpers.review import FPS, LAYOUT, make_procedure

pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

#: Each reader of a sections file, with an output of its kind (``{d}``: the test folder).
READERS = {
    "chapters": ["--out", "{d}/c.vtt"],
    "report": ["--out", "{d}/r.html"],
    "clips": ["--out-dir", "{d}/clips"],
    "annotate": ["--out", "{d}/a.mp4"],
}
N_FRAMES = LAYOUT[-1][2] + 1


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("endostream: error:")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


def _run(command: str, sections, d, *extra) -> int:
    argv = [a.format(d=d) for a in READERS[command]]
    return main([command, str(sections), *argv, "--quiet" if command in ("clips", "annotate")
                 else "--overwrite", *extra])


def _broken(doc: dict, how: str) -> dict:
    doc = json.loads(json.dumps(doc))
    s = doc["sections"]
    if how == "end_before_start":  # 0:50.0 -> 0:05.0 in the words
        s[-1]["start_s"], s[-1]["end_s"] = 3.6, 1.0
    elif how == "past_the_end":
        s[-1]["end_s"], s[-1]["end_frame"] = 50.0, 1249
    elif how == "empty":
        doc["sections"] = []
    return doc


@pytest.mark.parametrize("how", ["end_before_start", "past_the_end", "empty"])
@pytest.mark.parametrize("command", sorted(READERS))
def test_every_reader_refuses_a_sections_file_that_breaks_its_invariants(
        tmp_path, capsys, command, how):
    t = make_procedure(tmp_path / "in")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_broken(t.doc, how)))
    out = tmp_path / "out"
    out.mkdir()
    assert _run(command, bad, out) == 2
    assert "is not a usable sections file" in _one_error(capsys)
    assert not [p for p in out.rglob("*") if p.is_file()]  # nothing written


def _other_csv(t, tmp_path, how: str):
    rows = list(csv.reader(t.csv.open()))
    header, body = rows[0], rows[1:]
    if how == "longer_video":  # 26 rows of a video four times as long
        body = [[str(int(r[0]) * 4), f"{float(r[1]) * 4:.4f}", *r[2:]] for r in body]
    elif how == "other_rate":  # the same video analysed at another rate
        body = body[::2]
    elif how == "other_model":
        header = [h.replace("organ_nose", "organ_larynx") for h in header]
    path = tmp_path / f"{how}.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows([header, *body])
    return path


@pytest.mark.parametrize("how", ["longer_video", "other_rate", "other_model"])
@pytest.mark.parametrize("command", ["report", "annotate"])
def test_a_frames_csv_of_another_run_is_refused(tmp_path, capsys, command, how):
    t = make_procedure(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    assert _run(command, t.sections, out, "--csv", str(t.csv)) == 0  # its own: fine
    capsys.readouterr()
    shutil.rmtree(out)
    out.mkdir()
    assert _run(command, t.sections, out, "--csv", str(_other_csv(t, tmp_path, how))) == 2
    assert "is not the per-frame CSV of" in _one_error(capsys)
    assert not list(out.iterdir())


def _frames_of(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_a_moved_recording_is_found_beside_its_sections_file(tmp_path, capsys):
    t = make_procedure(tmp_path / "old")  # source.path is absolute
    moved = tmp_path / "new"
    (tmp_path / "old").rename(moved)
    sections = moved / "sections.json"
    assert main(["chapters", str(sections), "--out", str(tmp_path / "c.mkv")]) == 0
    assert _frames_of(tmp_path / "c.mkv") == N_FRAMES
    assert main(["clips", str(sections), "--out-dir", str(tmp_path / "clips"), "--quiet",
                 "--label", "nose"]) == 0
    assert main(["report", str(sections), "--out", str(tmp_path / "r.html")]) == 0
    assert "<video" in (tmp_path / "r.html").read_text()
    assert "not found" not in capsys.readouterr().err
    # gone altogether: the error says where it looked
    (moved / t.video.name).unlink()
    assert main(["chapters", str(sections), "--out", str(tmp_path / "c2.mkv")]) == 3
    line = _one_error(capsys)
    assert str(t.video) in line and str(moved / t.video.name) in line and "--video" in line


def test_a_relative_source_path_prefers_the_sections_files_folder(tmp_path, monkeypatch):
    t = make_procedure(tmp_path / "case")
    doc = dict(t.doc, source=dict(t.doc["source"], path=t.video.name))
    t.sections.write_text(json.dumps(doc))
    # another recording of the same name in the current folder
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    encode_clip(elsewhere / t.video.name, [index_frame(i) for i in range(10)], fps=FPS)
    monkeypatch.chdir(elsewhere)
    assert main(["chapters", str(t.sections), "--out", str(tmp_path / "c.mkv")]) == 0
    assert _frames_of(tmp_path / "c.mkv") == N_FRAMES  # the case's recording, not cwd's


def test_one_section_is_said_in_the_singular(tmp_path, capsys):
    t = make_procedure(tmp_path / "in")
    whole = dict(t.doc["sections"][0], label="nose", end_s=N_FRAMES / FPS,
                 end_frame=N_FRAMES - 1)
    t.sections.write_text(json.dumps(dict(t.doc, sections=[whole])))
    assert main(["chapters", str(t.sections), "--out", str(tmp_path / "c.vtt")]) == 0
    assert "c.vtt (1 chapter)" in capsys.readouterr().err
    assert main(["report", str(t.sections), "--out", str(tmp_path / "r.html")]) == 0
    assert "· 1 section ·" in (tmp_path / "r.html").read_text()
