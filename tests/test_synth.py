"""Synthetic stand-in procedures: determinism, truth, scene colours, degradations, writers."""

from __future__ import annotations

import csv
import itertools
import json
from collections import Counter

import av
import cv2
import numpy as np
import pytest

from endostream.errors import OutputError, UsageError
from endostream.output.sections_file import schema
from endostream.segmentation.section import UNUSABLE
from endostream.synth import (
    MAX_BURST_S,
    ORGANS,
    SCENE_MEAN_RGB,
    Burst,
    FieldOfView,
    GroundTruth,
    ProcedureSpec,
    Segment,
    default_spec,
    ground_truth,
    iter_frames,
    render_dataset,
    render_procedure,
)
from endostream.synth.scenes import SceneRenderer, mean_rgb_in_fov

W, H = 320, 240
FOVS = [FieldOfView(), FieldOfView.named("rounded"), FieldOfView(cx=0.42, cy=0.46, height=1.05)]


@pytest.fixture(scope="module")
def renderers():
    """One renderer per field of view; canvases are built once and shared by the tests."""
    return [SceneRenderer(W, H, fov=fov, seed=i) for i, fov in enumerate(FOVS)]


def laplacian_var(image: np.ndarray, fov: FieldOfView, denoise: bool = False) -> float:
    """Sharpness inside the field of view; ``denoise`` takes the sensor-noise floor out first."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if denoise:
        grey = cv2.GaussianBlur(grey, (0, 0), 1.0)
    lap = cv2.Laplacian(grey, cv2.CV_64F)
    return float(lap[fov.mask(*image.shape[1::-1], margin_px=4)].var())


def test_frames_are_deterministic_by_seed():
    spec = ProcedureSpec.parse("nose:0.4,blur:0.4,ear:0.4")
    a = [f.image for f in iter_frames(spec, 96, 64, fps=10.0, seed=7)]
    b = [f.image for f in iter_frames(spec, 96, 64, fps=10.0, seed=7)]
    c = [f.image for f in iter_frames(spec, 96, 64, fps=10.0, seed=8)]
    assert len(a) == 12
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


def test_truth_sections_cover_the_video_in_order():
    gt = ground_truth(default_spec(0.5), fps=10.0)
    secs = gt.sections
    assert [s.label for s in secs] == ["nose", UNUSABLE, "vocal_folds", UNUSABLE, "ear"]
    assert secs[0].start_frame == 0 and secs[0].start_s == 0.0
    assert secs[-1].end_frame == gt.n_frames - 1 and secs[-1].end_s == pytest.approx(gt.duration_s)
    for prev, nxt in itertools.pairwise(secs):
        assert nxt.start_frame == prev.end_frame + 1
        assert nxt.start_s == pytest.approx(prev.end_s)
    # bursts are bad frames inside organ sections; unusable stretches have no good frame
    assert 0.8 < secs[0].good_fraction < 1.0 and secs[1].good_fraction == 0.0
    assert secs[3].duration_s == pytest.approx(1.5)  # dark 0.5 s + black 1 s merge
    per_frame = [gt.frames[i] for i in range(secs[0].start_frame, secs[0].end_frame + 1)]
    assert {f.label for f in per_frame} == {"nose"} and {f.quality for f in per_frame} == {
        "good",
        "bad",
    }
    black = [f for f in gt.frames if f.look == "black"]
    assert black and all(f.organ is None and f.label == UNUSABLE for f in black)
    assert [f.index for f in gt.frames] == list(range(gt.n_frames))
    assert gt.label_at(0.0) == "nose" and gt.label_at(gt.duration_s - 0.01) == "ear"


def test_transition_cross_fades_between_neighbouring_organs():
    gt = ground_truth(ProcedureSpec.parse("nose:1,blur:2,ear:1"), fps=10.0)
    organs = [f.organ for f in gt.frames[10:30]]
    assert organs[0] == "nose" and organs[-1] == "ear"
    assert all(f.quality == "bad" and f.label == UNUSABLE for f in gt.frames[10:30])


def test_spec_validation_and_round_trip():
    with pytest.raises(UsageError, match="unusable"):
        Segment("nose", 5.0, bursts=(Burst(1.0, MAX_BURST_S + 0.5),))
    with pytest.raises(UsageError, match="label"):
        ProcedureSpec.parse("spleen:3")
    with pytest.raises(UsageError, match="NAME:SECONDS"):
        ProcedureSpec.parse("nose")
    with pytest.raises(UsageError, match="scene"):
        ground_truth(ProcedureSpec.parse("blur:2"), fps=5.0)
    spec = default_spec()
    assert ProcedureSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.duration_s == pytest.approx(39.0)


def test_scene_means_match_palette_under_motion(renderers):
    cols = np.array([SCENE_MEAN_RGB[o] for o in ORGANS], float)
    assert min(np.linalg.norm(a - b) for a, b in itertools.combinations(cols, 2)) > 60
    for r in renderers:
        for organ in ORGANS:
            means = np.array(
                [mean_rgb_in_fov(r.render(t, organ), r.fov) for t in np.arange(0, 40, 2.5)]
            )
            target = np.array(SCENE_MEAN_RGB[organ], float)
            assert np.abs(means - target).max() < 12, (r.fov, organ, means)
            assert np.abs(means.mean(0) - target).max() < 4, (r.fov, organ, means.mean(0))
            # nearest palette colour is the right organ for every single frame
            nearest = np.linalg.norm(means[:, None, :] - cols[None], axis=2).argmin(1)
            assert set(nearest) == {ORGANS.index(organ)}


def test_scenes_are_textured_not_flat(renderers):
    r = renderers[0]
    inside = r.fov.mask(W, H, margin_px=4)
    for organ in ORGANS:
        assert r.render(3.0, organ)[inside].std(0).min() > 8, organ


def test_blurred_frames_are_less_sharp_and_dark_frames_darker(renderers):
    for r in renderers:
        for organ in ORGANS:
            clear, blur = r.render(5.0, organ), r.render(5.0, organ, "blur")
            assert laplacian_var(blur, r.fov) < 0.5 * laplacian_var(clear, r.fov), (r.fov, organ)
            sharp, soft = laplacian_var(clear, r.fov, True), laplacian_var(blur, r.fov, True)
            assert soft < 0.35 * sharp, (r.fov, organ)
            dark = r.render(5.0, organ, "dark", dark_gain=0.2)
            assert mean_rgb_in_fov(dark, r.fov).mean() < 0.3 * mean_rgb_in_fov(clear, r.fov).mean()


def test_black_border_and_bright_field_of_view(renderers):
    for r in renderers[:2]:
        img = r.render(2.0, "nose")
        for corner in (img[:6, :6], img[:6, -6:], img[-6:, :6], img[-6:, -6:]):
            assert corner.mean() < 8
        cy, cx = int(r.fov.cy * H), int(r.fov.cx * W)
        assert img[cy - 10 : cy + 10, cx - 10 : cx + 10].mean() > 60
        assert not r.fov.mask(W, H)[0, 0] and r.fov.mask(W, H)[cy, cx]
    black = renderers[0].render(2.0, None, "black")
    assert black.mean() < 3
    room = renderers[0].render(2.0, None, "out_of_body")
    assert mean_rgb_in_fov(room, renderers[0].fov).mean() > 60


def test_rendered_video_decodes_to_the_truth(tmp_path):
    spec = ProcedureSpec(
        (
            Segment("nose", 1.0, bursts=(Burst(0.4, 0.3, "dark"),)),
            Segment(UNUSABLE, 0.6, look="black"),
            Segment("vocal_folds", 1.0),
        )
    )
    video = tmp_path / "proc.mp4"
    gt = render_procedure(video, spec, width=W, height=H, fps=10.0, seed=3, fov="rounded")
    assert gt.n_frames == 26 and gt.video_path == "proc.mp4"
    with av.open(str(video)) as container:
        frames = [f for f in container.decode(video=0)]
    assert len(frames) == gt.n_frames
    assert frames[-1].time == pytest.approx(gt.frames[-1].pts_s, abs=1e-3)
    assert [f.time for f in frames[:3]] == pytest.approx([0.0, 0.1, 0.2], abs=1e-3)
    rgb = frames[0].to_ndarray(format="rgb24")
    assert np.abs(mean_rgb_in_fov(rgb, gt.fov) - SCENE_MEAN_RGB["nose"]).max() < 14
    assert frames[12].to_ndarray(format="rgb24").mean() < 5  # black stretch

    truth_path = tmp_path / "proc.truth.json"
    gt.write(truth_path)
    doc = json.loads(truth_path.read_text())
    assert doc["synthetic"] is True and "not real anatomy" in doc["note"]
    assert doc["source"]["frames"] == 26
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc["sections"], schema()["properties"]["sections"])
    back = GroundTruth.read(truth_path)
    assert back.sections == gt.sections and back.frames == gt.frames and back.fov == gt.fov


def test_a_procedure_seen_through_another_scope_camera(tmp_path):
    """``palette``: the scope camera's colour cast, recorded in the truth (the loop
    benchmark's clinic scope is a full-frame one with a warm light)."""
    spec = ProcedureSpec.parse("nose:0.5,ear:0.5")
    plain = [f.image for f in iter_frames(spec, W, H, fps=10.0, seed=2, fov="full")]
    warm = [f.image for f in iter_frames(spec, W, H, fps=10.0, seed=2, fov="full",
                                         palette="warm")]
    r, g, b = (np.mean([w[..., c].astype(float) / np.maximum(p[..., c], 1).mean()
                        for w, p in zip(warm, plain, strict=True)]) for c in range(3))
    assert r > 1.05 * g and b < 0.9 * g  # redder and less blue than the same frames
    video = tmp_path / "grey.mp4"
    gt = render_procedure(video, spec, width=W, height=H, fps=10.0, seed=2, palette="grey")
    with av.open(str(video)) as container:
        rgb = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(int)
    assert np.abs(rgb[..., 0] - rgb[..., 2]).max() <= 4  # a monochrome camera, after yuv420
    gt.write(tmp_path / "grey.truth.json")
    assert json.loads((tmp_path / "grey.truth.json").read_text())["generator"]["palette"] == "grey"
    assert GroundTruth.read(tmp_path / "grey.truth.json").palette == "grey"
    with pytest.raises(UsageError, match="palette 'sepia'"):
        next(iter_frames(spec, 64, 48, palette="sepia"))
    from endostream.cli import main

    cli_video = tmp_path / "cli.mp4"
    assert main(["synth", str(cli_video), "--procedure", "ear:0.4", "--size", "64x48", "--fps",
                 "5", "--fov", "full", "--palette", "cool"]) == 0
    assert GroundTruth.read(tmp_path / "cli.truth.json").palette == "cool"
    assert main(["synth", str(tmp_path / "x.mp4"), "--palette", "sepia"]) == 2


def test_bad_arguments_and_paths_raise_domain_errors(tmp_path):
    with pytest.raises(UsageError, match="even"):
        render_procedure(tmp_path / "x.mp4", ProcedureSpec.parse("ear:1"), width=161, height=120)
    with pytest.raises(OutputError, match="does not exist"):
        render_procedure(
            tmp_path / "no" / "x.mp4", ProcedureSpec.parse("ear:1"), width=64, height=48
        )
    with pytest.raises(UsageError, match="circle"):
        next(iter_frames(ProcedureSpec.parse("ear:1"), fov="oval"))


def test_frame_stream_can_loop_like_a_camera():
    spec = ProcedureSpec.parse("ear:0.3")
    frames = list(itertools.islice(iter_frames(spec, 64, 48, fps=10.0, loop=True), 7))
    assert [f.index for f in frames] == list(range(7))
    assert frames[6].pts_s == pytest.approx(0.6) and frames[6].truth.index == 6
    assert np.array_equal(frames[6].image.shape, (48, 64, 3))


def test_dataset_is_balanced_and_split_by_recording(tmp_path):
    csv_path = render_dataset(
        tmp_path / "ds", per_class=12, size=(160, 120), seed=1, recordings=3, no_organ=2
    )
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["path", "organ", "quality", "recording"]
    organ_rows = [r for r in rows if r["organ"]]
    assert Counter(r["organ"] for r in organ_rows) == {o: 12 for o in ORGANS}
    by_quality = Counter((r["organ"], r["quality"]) for r in organ_rows)
    assert len({by_quality[(o, "bad")] for o in ORGANS}) == 1 and by_quality[("ear", "bad")] > 0
    assert {r["recording"] for r in rows} == {"rec00", "rec01", "rec02"}
    assert sum(1 for r in rows if not r["organ"]) == 6
    for r in rows[::5]:
        image = cv2.imread(str(csv_path.parent / r["path"]))
        assert image.shape == (120, 160, 3)
        assert r["path"].split("/")[0] == (r["organ"] or "none")
    meta = json.loads((csv_path.parent / "dataset.json").read_text())
    assert meta["synthetic"] is True
