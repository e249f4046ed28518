"""`endostream report`: the timeline picture and the self-contained HTML page."""

from __future__ import annotations

import base64
import csv
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from endostream.cli import main
from endostream.output.palette import UNUSABLE_COLOR, hex_to_rgb, label_hex
from endostream.procedure import load_procedure, read_frames_csv
from endostream.review.timeline_plot import draw_timeline
from helpers.review import COLORS, LAYOUT, ORGANS, make_procedure

pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

MARKUP = "<script>alert(1)</script>"


def _near(a, b, tol=12) -> bool:
    return all(abs(int(x) - int(y)) <= tol for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("with_csv", [False, True])
def test_png_has_each_sections_colour_at_its_place(tmp_path, with_csv):
    t = make_procedure(tmp_path)
    procedure = load_procedure(t.sections)
    png, geo = draw_timeline(procedure, read_frames_csv(t.csv) if with_csv else None)
    image = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR),
                         cv2.COLOR_BGR2RGB)
    assert image.shape[:2] == (geo.height_px, geo.width_px)
    y = int(geo.band_top_px + 0.2 * (geo.band_bottom_px - geo.band_top_px))  # above labels
    for s in procedure.sections:
        want = hex_to_rgb(label_hex(s.label, ORGANS))
        xs = np.linspace(geo.x_of(s.start_s) + 3, geo.x_of(s.end_s) - 3, 15).astype(int)
        pixels = [image[y, x] for x in xs]
        if s.label == "unusable":  # grey under dark hatching
            assert want == hex_to_rgb(UNUSABLE_COLOR)
            assert sum(_near(p, want, 20) for p in pixels) >= 5
        else:
            assert all(_near(p, want) for p in pixels), (s.label, pixels[:3])
    # and nothing of a section's colour outside it: the gap left of time 0 is not banded
    assert not _near(image[y, int(geo.x0_px) - 5], hex_to_rgb(label_hex("ear", ORGANS)))


def test_svg_is_a_picture(tmp_path):
    t = make_procedure(tmp_path)
    out = tmp_path / "timeline.svg"
    assert main(["report", str(t.sections), "--out", str(out)]) == 0
    assert ET.parse(out).getroot().tag.endswith("svg")


@pytest.fixture
def html(tmp_path):
    t = make_procedure(tmp_path / "in", name=f"v{MARKUP.replace('/', '')}.mp4",
                       labels={"nose": MARKUP},
                       metadata={"title": "Jane Doe", "artist": "Dr Who",
                                 "comment": "patient Jane Doe"})
    out = tmp_path / "report.html"
    assert main(["report", str(t.sections), "--csv", str(t.csv), "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def test_html_has_one_row_per_section_with_a_decodable_thumbnail(html):
    rows = re.findall(r'<tr class="section[^"]*" data-start="([0-9.]+)"', html)
    assert [float(r) for r in rows] == [a / 25 for _, a, _ in LAYOUT]
    thumbs = re.findall(r'<img class="thumb" src="data:image/jpeg;base64,([^"]+)"', html)
    assert len(thumbs) == len(LAYOUT)
    for b64, (label, _, _) in zip(thumbs, LAYOUT, strict=True):
        img = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape[1] == 160
        corner = img[-10:, -10:].reshape(-1, 3).mean(axis=0)[::-1]  # RGB of the flat part
        assert _near(corner, COLORS[label], 25), label


def test_html_references_nothing_outside_and_escapes_markup(html):
    assert "http://" not in html and "https://" not in html
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith("data:") or not re.match(r"^[a-z]+:|^//", url), url
    assert "url(" not in html
    # Our own three (the page's script, the edit mode's data and script), none from the
    # label or the file name; in the edit mode's JSON the label's markup is escaped.
    assert html.count("<script") == 3
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    video = re.search(r'<video id="player"[^>]* src="([^"]+)"', html).group(1)
    assert video == "in/v%3Cscript%3Ealert%281%29%3Cscript%3E.mp4"
    assert 'kind="chapters"' in html
    assert "Jane" not in html and "Dr Who" not in html  # container metadata is never read


def test_html_without_the_video_has_no_player(tmp_path, capsys):
    t = make_procedure(tmp_path / "in")
    t.video.rename(tmp_path / "elsewhere.mp4")
    out = tmp_path / "r.html"
    assert main(["report", str(t.sections), "--out", str(out)]) == 0
    text = out.read_text()
    assert "<video" not in text and text.count("no picture") == len(LAYOUT)
    assert "No player: the recording was not found" in text  # said, not a silent gap
    assert "was not found" in capsys.readouterr().err
    # --video finds it again
    assert main(["report", str(t.sections), "--out", str(out), "--overwrite",
                 "--video", str(tmp_path / "elsewhere.mp4")]) == 0
    assert "<video" in out.read_text()


def test_missing_extras_say_how_to_install_them(tmp_path, monkeypatch, capsys):
    t = make_procedure(tmp_path)
    monkeypatch.setitem(sys.modules, "jinja2", None)  # import fails as if not installed
    assert main(["report", str(t.sections), "--out", str(tmp_path / "r.html")]) == 2
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["report", str(t.sections), "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("pip install 'endostream[review]'") == 2 and "Traceback" not in err
    assert not list(tmp_path.glob("r.*"))


def test_report_refuses_bad_requests(tmp_path, capsys):
    t = make_procedure(tmp_path)
    assert main(["report", str(t.sections), "--out", str(tmp_path / "r.pdf")]) == 2
    assert main(["report", str(t.sections), "--out", str(tmp_path / "r.html"),
                 "--csv", str(tmp_path / "none.csv")]) == 2
    assert main(["report", str(t.sections), "--out", str(t.sections.with_suffix(".png")),
                 "--csv", str(t.sections)]) == 2
    assert main(["report", str(t.sections), "--out", str(t.sections / "no" / "r.html")]) == 5
    (tmp_path / "dir.html").mkdir()
    assert main(["report", str(t.sections), "--out", str(tmp_path / "dir.html")]) == 5
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("endostream: error:") == 5
    assert f"e.g. '{tmp_path / 'dir.html' / 'report.html'}'" in err  # not .../sections.json


def _long_procedure(duration_s: float):
    from endostream.frames import SourceInfo
    from endostream.output.sections_file import build_document
    from endostream.procedure import Procedure
    from endostream.segmentation.section import Section

    cut = [0.0, 0.3 * duration_s, 0.45 * duration_s, duration_s]
    labels = ["ear", "unusable", "nose"]
    sections = [Section(lab, a, b, int(a * 25), int(b * 25) - 1, 0.9, 0.8)
                for lab, a, b in zip(labels, cut, cut[1:], strict=False)]
    document = build_document(
        sections=sections, complete=True,
        source=SourceInfo("v.mp4", 25.0, int(duration_s * 25), duration_s, 640, 480),
        models={"path": "m.onnx", "sha256": "0" * 64, "heads": {"organ": ORGANS}},
        frames_analysed=len(sections), sample_fps=5.0, segmenter={})
    return Procedure(Path("s.json"), document, video=None)


def _seconds(label: str) -> float:
    parts = [float(p) for p in label.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


#: Steps people count in: 1, 2, 5, 10, 15, 30 s, 1, 2, 5, 10, 15, 30 min, 1 h (and tenths).
NICE_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)


@pytest.mark.parametrize("duration_s", [5.2, 20, 39, 600, 3600, 4000])
def test_timeline_ticks_fall_on_nice_steps_with_exact_labels(duration_s):
    png, geo = draw_timeline(_long_procedure(duration_s), fmt="png")
    positions = [t for t, _ in geo.ticks]
    steps = set(np.round(np.diff(positions), 6))
    assert len(steps) == 1 and steps.pop() in NICE_STEPS_S, geo.ticks
    assert positions[0] == 0 and positions[-1] <= duration_s
    assert 5 <= len(positions) <= 10, geo.ticks  # enough to read a time off, not crowded
    for t, label in geo.ticks:  # what is written is where it is
        assert _seconds(label) == pytest.approx(t, abs=1e-6), geo.ticks
    assert geo.legend == ("Ear", "Nose", "Vocal folds", "Unusable")


def test_picture_legend_shows_the_hatched_unusable(tmp_path):
    png, geo = draw_timeline(_long_procedure(60), fmt="png")
    (tmp_path / "legend.png").write_bytes(png)
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    top = image[: int(geo.band_top_px) - 2]  # the legend row above the band
    for color in (label_hex("ear", ORGANS), label_hex("vocal_folds", ORGANS)):
        assert (np.abs(top.astype(int) - hex_to_rgb(color)).max(axis=2) < 12).sum() > 30
    grey = (np.abs(top.astype(int) - hex_to_rgb(UNUSABLE_COLOR)).max(axis=2) < 20).sum()
    dark = (np.abs(top.astype(int) - hex_to_rgb("#3A3D42")).max(axis=2) < 30).sum()
    assert grey > 10 and dark > 10  # grey with dark hatching, as in the band


def test_report_names_the_video_only_as_far_as_asked(tmp_path):
    folder = tmp_path / "Doe Jane 4711"
    t = make_procedure(folder, name="Doe_Jane_4711.mp4")
    out = tmp_path / "r.html"
    shown = {}
    for mode in (None, "none", "name", "full"):
        extra = ["--path-in-report", mode] if mode else []
        assert main(["report", str(t.sections), "--out", str(out), "--no-player",
                     "--overwrite", *extra]) == 0
        shown[mode] = out.read_text(encoding="utf-8")
    for mode in (None, "none"):  # the default names nothing
        assert "4711" not in shown[mode] and "Jane" not in shown[mode]
        assert "<title>Procedure review" in shown[mode]
    assert "Doe_Jane_4711.mp4" in shown["name"] and str(folder) not in shown["name"]
    assert str(folder / "Doe_Jane_4711.mp4") in shown["full"]
    assert str(tmp_path) not in shown["name"]  # the model's folder neither
    # with a player, only the link the browser needs, relative to the report
    assert main(["report", str(t.sections), "--out", str(out), "--overwrite"]) == 0
    text = out.read_text(encoding="utf-8")
    assert set(re.findall(r"Doe[^\"<]*", text)) == {"Doe%20Jane%204711/Doe_Jane_4711.mp4"}


def test_thumbnails_use_the_good_frame_threshold_the_run_recorded(tmp_path):
    """A frame counts as good at the threshold the run recorded (analysis.segmenter), not
    at today's default: with 0.95 recorded, a frame at p(good) 0.9 is not a candidate."""
    from endostream.procedure.thumbnails import thumbnail_times

    t = make_procedure(tmp_path)
    doc = json.loads(t.sections.read_text())
    rows = [r for r in csv.reader(t.csv.open())]
    header, body = rows[0], rows[1:]
    good_col, ear_col = header.index("quality_good"), header.index("organ_ear")
    # In the ear section (frames 0-39): frame 10 is the surest ear but p(good) 0.9;
    # frame 20 is less sure of ear but p(good) 0.97.
    for r in body:
        if r[0] == "10":
            r[good_col], r[ear_col] = "0.9000", "0.9900"
        elif r[0] == "20":
            r[good_col], r[ear_col] = "0.9700", "0.9500"
    with open(t.csv, "w", newline="") as fh:
        csv.writer(fh).writerows([header, *body])
    frames = read_frames_csv(t.csv)
    picked = {}
    for threshold in (0.5, 0.95):
        doc["analysis"]["segmenter"] = {"mode": "offline", "good_threshold": threshold}
        t.sections.write_text(json.dumps(doc))
        procedure = load_procedure(t.sections)
        assert procedure.document.analysis.good_threshold == threshold
        picked[threshold] = thumbnail_times(procedure.sections, frames,
                                            procedure.document.analysis.good_threshold)[0]
    assert picked[0.5] == pytest.approx(10 / 25) and picked[0.95] == pytest.approx(20 / 25)
