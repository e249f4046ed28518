"""`endostream report`: the timeline picture and the self-contained HTML page."""

from __future__ import annotations

import base64
import re
import sys
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import pytest

from endostream.cli import main
from endostream.output.palette import UNUSABLE_COLOR, hex_to_rgb, label_hex
from endostream.review.procedure import load_procedure, read_frames_csv
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
    assert html.count("<script") == 1  # our own, none from the label or the file name
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
    assert "was not found" in capsys.readouterr().err
    # --video finds it again
    assert main(["report", str(t.sections), "--out", str(out),
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
    assert main(["report", str(t.sections), "--out", str(tmp_path / "no" / "r.html")]) == 5
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("endostream: error:") == 4
