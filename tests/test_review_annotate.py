"""`endostream annotate`: the overlay burned in, same frames and times, audio copied."""

from __future__ import annotations

import av
import numpy as np
import pytest

from endostream.cli import main
from endostream.output.palette import hex_to_rgb, label_hex
from helpers.review import FPS, HEIGHT, LAYOUT, ORGANS, WIDTH, make_procedure


def _frames(path):
    with av.open(str(path)) as c:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        kinds = sorted(s.type for s in c.streams)
        meta = repr(dict(c.metadata))
    return frames, kinds, meta


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
    for label, a, b in LAYOUT:
        if label == "unusable":
            continue
        mid = (a + b) // 2
        image = annotated[mid][1]
        x = int((WIDTH - 1) * (mid + 0.5 * (b - a)) / duration) - 2  # later in the section
        strip = image[HEIGHT - 3, x].astype(int)
        want = np.array(hex_to_rgb(label_hex(label, ORGANS)))
        assert np.abs(strip - want).max() < 40, (label, strip, want)
        # the label panel darkens the top-left corner of the bright frame
        assert image[int(HEIGHT * 0.15), int(WIDTH * 0.7)].mean() < source[mid][1][
            int(HEIGHT * 0.15), int(WIDTH * 0.7)].mean()
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
