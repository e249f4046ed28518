"""`endostream annotate`: the overlay burned in, same frames and times, audio copied."""

from __future__ import annotations

import av
import numpy as np
import pytest

from endostream.cli import main
from endostream.output.palette import hex_to_rgb, label_hex
from endostream.procedure import load_procedure, read_frames_csv
from endostream.review.annotate import OverlayPainter
from helpers.review import FPS, HEIGHT, LAYOUT, ORGANS, WIDTH, make_procedure


def _frames(path):
    with av.open(str(path)) as c:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        kinds = sorted(s.type for s in c.streams)
        meta = repr(dict(c.metadata))
    return frames, kinds, meta


def _assert_panel_where_the_layout_says(painter, index, image, source):
    """The panel darkens the box the layout code gives it, and nothing right of it.

    The box comes from :meth:`OverlayPainter.panel_layout`, whatever OpenCV's text metrics
    are; a missing panel leaves the box as bright as the source and fails.
    """
    label, prob, good = painter.state_at(index)
    x0, y0, x1, y1 = painter.panel_layout(label, prob, good).box
    assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT
    inside, was = image[y0:y1, x0:x1].astype(float), source[y0:y1, x0:x1].astype(float)
    # text and chip are a minority of the box: its median pixel is the darkened panel
    assert np.median(inside.mean(axis=2)) < 0.6 * np.median(was.mean(axis=2))
    if x1 + 3 < WIDTH:  # just right of the panel the picture is untouched (up to coding)
        right = (slice(y0 + 1, y1 - 1), slice(x1 + 2, min(WIDTH, x1 + 6)))
        assert abs(image[right].astype(float).mean() - source[right].astype(float).mean()) < 12


def test_panel_layout_holds_its_text_at_every_size(tmp_path):
    """The panel holds the ink of every part (checked by drawing, at several heights)."""
    procedure = load_procedure(make_procedure(tmp_path).sections)
    for w, h in [(160, 120), (640, 360), (1920, 1080)]:
        painter = OverlayPainter(procedure, None, width=w, height=h)
        for good in (True, False, None):
            lay = painter.panel_layout("vocal_folds", 0.88, good)
            x0, y0, x1, y1 = lay.box
            blank = np.full((h, w, 3), 128, np.uint8)
            painter._panel(blank, "vocal_folds", 0.88, good)
            changed = np.argwhere(np.abs(blank.astype(int) - 128).max(axis=2) > 0)
            (ty0, tx0), (ty1, tx1) = changed.min(axis=0), changed.max(axis=0)
            assert (tx0, ty0) == (x0, y0) and tx1 < x1 + 1 and ty1 < y1, (w, good)
            # every text part is shorter than the panel and narrower than the frame
            for part in (lay.name, lay.prob, lay.badge):
                assert 0 < part.height < y1 - y0 and part.width < w


@pytest.mark.parametrize("with_csv", [False, True])
def test_annotated_video_has_the_sources_frames_and_the_overlay(tmp_path, capsys, with_csv):
    t = make_procedure(tmp_path / "in", audio=True, metadata={"title": "Jane Doe"})
    out = tmp_path / "annotated.mp4"
    argv = ["annotate", str(t.sections), "--out", str(out)]
    assert main(argv + (["--csv", str(t.csv)] if with_csv else [])) == 0
    assert "130/130 frames" in capsys.readouterr().err  # the progress line
    source, _, _ = _frames(t.video)
    annotated, kinds, meta = _frames(out)
    assert len(annotated) == len(source)
    assert [round(a, 4) for a, _ in annotated] == [round(s, 4) for s, _ in source]
    assert kinds == ["audio", "video"] and "Jane" not in meta
    duration = LAYOUT[-1][2] + 1
    painter = OverlayPainter(load_procedure(t.sections),
                             read_frames_csv(t.csv) if with_csv else None,
                             width=WIDTH, height=HEIGHT)
    for label, a, b in LAYOUT:
        if label == "unusable":
            continue
        mid = (a + b) // 2
        image = annotated[mid][1]
        x = int((WIDTH - 1) * (mid + 0.5 * (b - a)) / duration) - 2  # later in the section
        strip = image[HEIGHT - 3, x].astype(int)
        want = np.array(hex_to_rgb(label_hex(label, ORGANS)))
        assert np.abs(strip - want).max() < 40, (label, strip, want)
        _assert_panel_where_the_layout_says(painter, mid, image, source[mid][1])
    # the playhead moves: the brightest column of the strip follows the frame's time
    xs = [int(np.argmax(img[HEIGHT - 2].sum(axis=1))) for _, img in annotated[::25]]
    assert xs == sorted(xs) and xs[-1] - xs[0] > WIDTH // 2
    assert annotated[-1][0] == pytest.approx((duration - 1) / FPS, abs=1e-3)


def test_annotate_refuses_the_recording_as_output(tmp_path, capsys):
    t = make_procedure(tmp_path)
    before = t.video.read_bytes()
    assert main(["annotate", str(t.sections), "--out", str(t.video)]) == 2
    assert main(["annotate", str(t.sections), "--out", str(tmp_path / "a.gif")]) == 2
    assert t.video.read_bytes() == before
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("endostream: error:") == 2
