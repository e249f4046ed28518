"""`endostream chapters`: WebVTT, FFmpeg metadata and the stream-copied chaptered copy."""

from __future__ import annotations

import re

import av
import pytest

from endostream.cli import main
from endostream.review.chapters import chapter_title, chapters_of, to_ffmetadata
from helpers.review import FPS, LAYOUT, make_procedure

PATIENT = {"title": "Jane Doe 1961-02-03", "comment": "patient Jane Doe",
           "artist": "Dr Who", "creation_time": "2024-01-01T10:00:00Z"}


@pytest.fixture
def procedure(tmp_path):
    return make_procedure(tmp_path / "in", audio=True, metadata=PATIENT)


def _video_packets(path):
    """Payloads and presentation times (ms: Matroska keeps milliseconds) of the video."""
    with av.open(str(path)) as c:
        origin = float(c.streams.video[0].start_time * c.streams.video[0].time_base)
        return [(round(float(p.pts * p.time_base) - origin, 3), p.is_keyframe, bytes(p))
                for p in c.demux(video=0) if p.size]


def _leaks(text: str) -> bool:
    return any(word in text for word in ("Jane", "Doe", "Dr Who", "2024-01-01"))


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_muxed_copy_has_the_sections_as_chapters_and_the_same_packets(procedure, tmp_path,
                                                                       capsys, ext):
    out = tmp_path / f"copy.{ext}"
    assert main(["chapters", str(procedure.sections), "--out", str(out)]) == 0
    with av.open(str(out)) as c:
        chapters = c.chapters()
        # Matroska shifts all streams when the audio starts before 0 (AAC priming).
        origin = float(c.streams.video[0].start_time * c.streams.video[0].time_base)
        meta = dict(c.metadata)
        stream_meta = [dict(s.metadata) for s in c.streams]
        kinds = sorted(s.type for s in c.streams if s.type in ("video", "audio"))
    assert kinds == ["audio", "video"]
    assert [ch["metadata"]["title"] for ch in chapters] == [
        "Ear (80% good)", "Unusable", "Nose (80% good)", "Vocal folds (80% good)"]
    for ch, (_label, first, last) in zip(chapters, LAYOUT, strict=True):
        tb = ch["time_base"]
        assert abs(float(ch["start"] * tb) - origin - first / FPS) <= 1 / FPS
        assert abs(float(ch["end"] * tb) - origin - (last + 1) / FPS) <= 1 / FPS
    assert _video_packets(out) == _video_packets(procedure.video)  # stream copy, untouched
    assert not _leaks(repr(meta) + repr(stream_meta))


def test_keep_metadata_keeps_it_and_the_original_is_untouched(procedure, tmp_path):
    before = procedure.video.read_bytes()
    out = tmp_path / "copy.mkv"
    assert main(["chapters", str(procedure.sections), "--out", str(out),
                 "--keep-metadata"]) == 0
    with av.open(str(out)) as c:
        assert "Jane Doe" in repr(dict(c.metadata))
    assert procedure.video.read_bytes() == before


def test_webvtt_parses_and_matches_the_sections(procedure, tmp_path):
    out = tmp_path / "chapters.vtt"
    assert main(["chapters", str(procedure.sections), "--out", str(out),
                 "--skip-unusable"]) == 0
    text = out.read_text()
    assert text.startswith("WEBVTT\n\n")
    cues = re.findall(r"(\d+)\n(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})"
                      r"\n([^\n]+)\n", text)
    expected = [(label, a, b) for label, a, b in LAYOUT if label != "unusable"]
    assert len(cues) == len(expected) == text.count(" --> ")
    for cue, (label, a, b) in zip(cues, expected, strict=True):
        h, m, s, ms = map(int, cue[1:5])
        assert abs(h * 3600 + m * 60 + s + ms / 1000 - a / FPS) < 1e-3
        h, m, s, ms = map(int, cue[5:9])
        assert abs(h * 3600 + m * 60 + s + ms / 1000 - (b + 1) / FPS) < 1e-3
        assert cue[9].startswith(label.replace("_", " ").capitalize())
    assert not _leaks(text)


def test_ffmetadata_and_escaping(procedure, tmp_path):
    out = tmp_path / "c.ffmeta"
    assert main(["chapters", str(procedure.sections), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith(";FFMETADATA1\n") and text.count("[CHAPTER]") == len(LAYOUT)
    assert "START=1600\nEND=2400\ntitle=Unusable" in text
    assert not _leaks(text)
    from endostream.segmentation.section import Section
    weird = chapters_of([Section("a=b;#c", 0.0, 1.0, 0, 24, 1.0, 1.0)])
    assert "title=A\\=b\\;\\#c" in to_ffmetadata(weird)
    assert chapter_title(Section("nose", 0, 1, 0, 1, 0.95, 0.9)) == "Nose"


def test_bad_inputs_are_one_line_errors(procedure, tmp_path, capsys):
    assert main(["chapters", str(tmp_path / "none.json"), "--out", "x.vtt"]) == 2
    assert main(["chapters", str(procedure.sections), "--out", str(procedure.video)]) == 2
    assert main(["chapters", str(procedure.sections), "--out", str(tmp_path / "c.txt")]) == 2
    assert main(["chapters", str(procedure.sections), "--out", str(tmp_path / "c.mkv"),
                 "--video", str(tmp_path / "missing.mp4")]) == 3
    (tmp_path / "bad.json").write_text("{")
    assert main(["chapters", str(tmp_path / "bad.json"), "--out", "x.vtt"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("endostream: error:") == 5
    assert not (tmp_path / "c.txt").exists()
