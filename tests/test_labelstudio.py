"""Label Studio round trip: sections out as tasks, corrections back as sections files.

The first tests check the conversion and the refusals without a server (the export's
shape is Label Studio's: tasks with ``annotations`` whose ``result`` holds timeline
regions). The last one runs a real Label Studio: found as ``$ENDOSTREAM_LABEL_STUDIO`` or
``label-studio`` on PATH (installed in a venv of its own: its dependencies clash with
ours), started once for the module on a free 127.0.0.1 port with a temporary data folder;
the test creates a project with the labelling config, imports the tasks, posts a
reviewer's annotation through the HTTP API, exports JSON and imports it back. It skips
where Label Studio is not installed.
"""

from __future__ import annotations

import copy
import json
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from endostream.cli import main
from endostream.corrections.labelstudio import check_constant_rate
from endostream.errors import EXIT_CORRECTIONS, EXIT_VIDEO
from endostream.output.document import read_sections
from helpers.clips import encode_clip, index_frames
from helpers.label_studio import PASSWORD, USER, label_studio_executable, running_label_studio
from helpers.label_studio import http as label_studio_http
from helpers.review import LAYOUT, make_procedure


def _export(tmp_path, *sections) -> list[dict]:
    out = tmp_path / "tasks.json"
    assert main(["labelstudio", "export", *map(str, sections), "--out", str(out),
                 "--config", str(tmp_path / "config.xml")]) == 0
    return json.loads(out.read_text())


def _as_annotated(tasks: list[dict], edit=None) -> list[dict]:
    """What Label Studio exports after a reviewer accepted (or ``edit``-ed) each
    prediction: the prediction's regions as the task's one annotation."""
    out = []
    for i, task in enumerate(copy.deepcopy(tasks), 1):
        result = task["predictions"][0]["result"]
        if edit:
            result = edit(result)
        out.append({"id": i, "data": task["data"], "predictions": task["predictions"],
                    "annotations": [{"id": i, "was_cancelled": False, "result": result,
                                     "updated_at": "2026-12-03T00:30:00.000000Z"}]})
    return out


def _import(tmp_path, export: list[dict], *extra) -> tuple[int, Path]:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    out = tmp_path / "corrected"
    return main(["labelstudio", "import", str(path), "--out-dir", str(out), *extra]), out


def test_export_numbers_frames_from_one_inclusive_and_writes_the_config(tmp_path):
    t = make_procedure(tmp_path / "p")
    (task,) = _export(tmp_path, t.sections)
    ranges = [(r["value"]["ranges"][0]["start"], r["value"]["ranges"][0]["end"],
               r["value"]["timelinelabels"][0]) for r in task["predictions"][0]["result"]]
    assert ranges == [(a + 1, b + 1, label) for label, a, b in LAYOUT]
    assert task["data"]["fps"] == 25.0
    assert task["data"]["video"] == "/data/local-files/?d=p/procedure.mp4"  # below the root
    config = (tmp_path / "config.xml").read_text()
    assert 'frameRate="$fps"' in config and '<TimelineLabels name="sections"' in config
    for label in ("ear", "nose", "vocal_folds", "unusable"):
        assert f'<Label value="{label}"' in config


def test_export_links_videos_below_the_root_as_label_studio_1_23_serves_them(tmp_path,
                                                                           capsys):
    t = make_procedure(tmp_path / "docs" / "p")
    capsys.readouterr()
    (task,) = _export(tmp_path, t.sections)  # default --root: the folder above the videos'
    assert task["data"]["video"] == "/data/local-files/?d=p/procedure.mp4"
    err = capsys.readouterr().err
    assert f"add '{tmp_path / 'docs' / 'p'}' as Local Files storage" in err
    assert f"LOCAL_FILES_DOCUMENT_ROOT={tmp_path / 'docs'}" in err
    # The root itself is no storage on 1.23: a video right in --root is refused.
    out = tmp_path / "t.json"
    assert main(["labelstudio", "export", str(t.sections), "--out", str(out), "--root",
                 str(tmp_path / "docs" / "p")]) == 2
    assert "directly in the document root" in capsys.readouterr().err
    assert not out.exists()
    # ... unless the videos are served elsewhere (--url-prefix).
    assert main(["labelstudio", "export", str(t.sections), "--out", str(out), "--root",
                 str(tmp_path / "docs" / "p"), "--url-prefix", "https://media/"]) == 0
    assert json.loads(out.read_text())[0]["data"]["video"] == "https://media/procedure.mp4"


def test_accepted_predictions_come_back_as_the_same_frames_and_times(tmp_path):
    t = make_procedure(tmp_path / "p")
    code, out = _import(tmp_path, _as_annotated(_export(tmp_path, t.sections)))
    assert code == 0
    doc = read_sections(out / "sections.corrected.sections.json")
    assert doc.sections == read_sections(t.sections).sections  # exactly, figures too
    assert doc.review.changed == () and doc.review.tool == "label-studio"


def test_a_moved_boundary_and_a_new_label_come_back_exactly(tmp_path):
    t = make_procedure(tmp_path / "p")

    def edit(result):
        result[0]["value"]["ranges"][0]["end"] = 33         # ear ends at LS frame 33
        result[1]["value"]["ranges"][0]["start"] = 34       # unusable from LS frame 34
        result[2]["value"]["timelinelabels"] = ["ear"]      # nose was wrong
        return result

    code, out = _import(tmp_path, _as_annotated(_export(tmp_path, t.sections), edit))
    assert code == 0
    doc = read_sections(out / "sections.corrected.sections.json")
    assert [(s.label, s.start_frame, s.end_frame, s.start_s) for s in doc.sections] == [
        ("ear", 0, 32, 0.0), ("unusable", 33, 59, 1.32), ("ear", 60, 89, 2.4),
        ("vocal_folds", 90, 129, 3.6)]
    assert doc.review.changed == (0, 1, 2)


BAD_EDITS = {
    "overlap": (lambda r: r[1]["value"]["ranges"][0].update(start=38), "overlap"),
    "gap": (lambda r: r[1]["value"]["ranges"][0].update(start=45), "have no label"),
    "unknown label": (lambda r: r[0]["value"].update(timelinelabels=["larynx"]),
                      "not the model's"),
    "missing end": (lambda r: r.pop(), "have no label"),
    "two labels": (lambda r: r[0]["value"].update(timelinelabels=["ear", "nose"]),
                   "has 2 labels"),
}


@pytest.mark.parametrize("case", sorted(BAD_EDITS))
def test_an_annotation_that_cannot_be_a_correction_is_refused(tmp_path, capsys, case):
    t = make_procedure(tmp_path / "p")
    how, words = BAD_EDITS[case]
    tasks = _export(tmp_path, t.sections)
    capsys.readouterr()
    code, out = _import(tmp_path, _as_annotated(tasks, lambda r: (how(r), r)[1]))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_CORRECTIONS, err
    assert len(err) == 1 and err[0].startswith("endostream: error: task 1") and words in err[0]
    assert not out.exists() or not any(out.iterdir())  # nothing written


def _last_region_end(end: int):
    def edit(result):
        result[-1]["value"]["ranges"][0]["end"] = end
        return result
    return edit


def test_a_region_one_frame_past_the_video_is_its_last_frame(tmp_path):
    """Label Studio's timeline is ceil(duration × rate) frames long: one frame more than
    the video where the duration is rounded up, and a region may end there."""
    t = make_procedure(tmp_path / "p")
    last = LAYOUT[-1][2] + 1  # Label Studio's number of the video's last frame
    code, out = _import(tmp_path, _as_annotated(_export(tmp_path, t.sections),
                                                _last_region_end(last + 1)))
    assert code == 0
    doc = read_sections(out / "sections.corrected.sections.json")
    assert doc.sections == read_sections(t.sections).sections


@pytest.mark.parametrize("past", [2, 225])
def test_a_region_further_past_the_video_is_refused_not_cut(tmp_path, capsys, past):
    t = make_procedure(tmp_path / "p")
    last = LAYOUT[-1][2] + 1
    tasks = _export(tmp_path, t.sections)
    capsys.readouterr()
    code, out = _import(tmp_path, _as_annotated(tasks, _last_region_end(last + past)))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_CORRECTIONS, err
    assert err == [f"endostream: error: task 1: a region ends at Label Studio frame "
                   f"{last + past}, {past} frames past the video's last frame {last}; drag "
                   f"its end back to frame {last} in Label Studio (a region longer than the "
                   "video was drawn at another frame rate or for another video)"]
    assert not out.exists()  # nothing written, not even the folder


@pytest.mark.parametrize("tasks", ["none annotated", "cancelled", "empty"])
def test_an_export_without_an_annotation_is_refused(tmp_path, capsys, tasks):
    t = make_procedure(tmp_path / "p")
    exported = _export(tmp_path, t.sections)
    export = {"none annotated": exported,  # tasks as exported, never annotated
              "cancelled": [{**task, "id": 7, "annotations": [
                  {**task, "was_cancelled": True, "result": []}]}
                  for task in _as_annotated(exported)],
              "empty": []}[tasks]
    capsys.readouterr()
    code, out = _import(tmp_path, export)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_CORRECTIONS, err
    held = "no tasks" if tasks == "empty" else "1 task, none annotated"
    assert err == [f"endostream: error: '{tmp_path / 'export.json'}' holds no annotation "
                   f"({held}): nothing to import; in Label Studio submit each task you "
                   "corrected (or accept its prediction), then export the project again"]
    assert not out.exists()  # nothing written, not even the folder


def test_an_export_in_another_format_is_refused(tmp_path, capsys):
    t = make_procedure(tmp_path / "p")
    (task,) = _export(tmp_path, t.sections)
    json_min = [{"id": 1, "video": task["data"]["video"], "sections": []}]
    capsys.readouterr()
    code, out = _import(tmp_path, json_min)
    assert code == EXIT_CORRECTIONS and "not JSON-MIN" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_import_never_replaces_a_file_without_overwrite(tmp_path, capsys):
    t = make_procedure(tmp_path / "p")
    export = _as_annotated(_export(tmp_path, t.sections))
    assert _import(tmp_path, export)[0] == 0
    target = tmp_path / "corrected" / "sections.corrected.sections.json"
    target.write_text("the reviewer's own file")
    assert _import(tmp_path, export)[0] == 2
    assert target.read_text() == "the reviewer's own file"
    assert _import(tmp_path, export, "--overwrite")[0] == 0


def _sections_for(video: Path, n: int, fps: float = 25.0) -> Path:
    doc = {"schema": "endostream.sections/1", "complete": True,
           "source": {"path": str(video), "fps": fps, "frames": n, "duration_s": n / fps,
                      "width": 65, "height": 49},
           "models": {"path": "m.onnx", "sha256": "0" * 64,
                      "heads": {"quality": ["bad", "good"], "organ": ["ear", "nose"]}},
           "analysis": {"frames_analysed": n, "sample_fps": None, "segmenter": {}},
           "sections": [{"label": "ear", "start_s": 0.0, "end_s": n / fps, "start_frame": 0,
                         "end_frame": n - 1, "good_fraction": 1.0, "confidence": 0.9}]}
    path = video.with_suffix(".sections.json")
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("case, pts_ms, words", [
    ("vfr", [40 * i for i in range(10)] + [500 + 100 * i for i in range(10)],
     "variable frame rate"),
    ("offset", [2000 + 40 * i for i in range(20)], "not at 0"),
])
def test_a_video_label_studio_would_count_differently_is_refused(tmp_path, capsys, case,
                                                                  pts_ms, words):
    # 65x49: odd sizes, which the copy must pad for H.264 4:2:0
    video = encode_clip(tmp_path / f"{case}.mkv", index_frames(len(pts_ms), 65, 49),
                        pts=pts_ms, time_base=Fraction(1, 1000), codec="ffv1",
                        pix_fmt="yuv444p")
    sections = _sections_for(video, len(pts_ms))
    code = main(["labelstudio", "export", str(sections), "--out", str(tmp_path / "t.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_VIDEO and len(err) == 1, err
    assert words in err[0] and "ffmpeg -i" in err[0] and "fps=25" in err[0]
    assert not (tmp_path / "t.json").exists()
    # The command it gives makes a copy that Label Studio counts right.
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed: the suggested command was not tried")
    command = shlex.split(err[0].split(" with '", 1)[1].split("', segment", 1)[0])
    assert command[0] == "ffmpeg"
    subprocess.run([ffmpeg, "-v", "error", *command[1:]], cwd=tmp_path, check=True,
                   timeout=120)
    check_constant_rate(tmp_path / f"{case}-cfr.mp4", 25.0)


# -- a real Label Studio -------------------------------------------------------------------

def _http(base: str, method: str, path: str, body=None, *, timeout: float = 60):
    return label_studio_http(base, method, path, body, timeout=timeout)


@dataclass
class Server:
    base: str
    videos: Path  #: the folder it serves local files from


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A Label Studio server on 127.0.0.1 with a user whose API token is ``TOKEN``,
    serving local files below ``videos`` (tests/helpers/label_studio.py)."""
    exe = label_studio_executable()
    if exe is None:
        pytest.skip("Label Studio is not installed (see .ci/run: a venv of its own, "
                    "ENDOSTREAM_LABEL_STUDIO=/path/to/bin/label-studio)")
    try:
        with running_label_studio(exe, tmp_path_factory.mktemp("label-studio")) as server:
            yield Server(server.base, server.documents)
    except RuntimeError as e:
        pytest.fail(str(e))


def _logged_in(base: str):
    """An opener with a browser's session: Label Studio serves local files to a logged-in
    user, not to an API token."""
    import http.cookiejar
    import urllib.parse
    import urllib.request

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = base + "/user/login/"
    opener.open(login, timeout=60).read()  # sets the CSRF cookie the form must echo
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    form = urllib.parse.urlencode({"email": USER, "password": PASSWORD,
                                   "csrfmiddlewaretoken": csrf}).encode()
    opener.open(urllib.request.Request(login, form, headers={"Referer": login,
                                                             "X-CSRFToken": csrf}),
                timeout=60).read()
    return opener


@pytest.mark.slow
def test_round_trip_through_a_real_label_studio(tmp_path, label_studio):
    base = label_studio.base
    t = make_procedure(label_studio.videos / "p1")
    out = tmp_path / "tasks.json"
    assert main(["labelstudio", "export", str(t.sections), "--out", str(out), "--config",
                 str(tmp_path / "config.xml"), "--root", str(label_studio.videos)]) == 0
    tasks = json.loads(out.read_text())
    config = (tmp_path / "config.xml").read_text()
    project = _http(base, "POST", "/api/projects",
                    {"title": "endostream round trip", "label_config": config})
    _http(base, "POST", "/api/storages/localfiles",
          {"project": project["id"], "path": str(label_studio.videos / "p1"),
           "title": "videos", "use_blob_urls": True})
    _http(base, "POST", f"/api/projects/{project['id']}/import", tasks)
    # The video, served as docs/labelstudio.md says (LOCAL_FILES_* and a local files storage).
    with _logged_in(base).open(base + tasks[0]["data"]["video"], timeout=60) as r:
        assert r.read() == t.video.read_bytes()
    listed = _http(base, "GET", f"/api/tasks?project={project['id']}&fields=all")
    (task,) = listed["tasks"] if isinstance(listed, dict) else listed
    (prediction,) = task["predictions"]
    assert [r["value"] for r in prediction["result"]] == [
        r["value"] for r in tasks[0]["predictions"][0]["result"]]
    # The reviewer: the unusable stretch really starts 6 frames later, the nose is an ear.
    result = copy.deepcopy(prediction["result"])
    result[0]["value"]["ranges"][0]["end"] = 46
    result[1]["value"]["ranges"][0]["start"] = 47
    result[2]["value"]["timelinelabels"] = ["ear"]
    _http(base, "POST", f"/api/tasks/{task['id']}/annotations",
          {"result": result, "was_cancelled": False})
    exported = _http(base, "GET",
                     f"/api/projects/{project['id']}/export?exportType=JSON")
    (tmp_path / "ls-export.json").write_text(json.dumps(exported))
    out = tmp_path / "corrected"
    assert main(["labelstudio", "import", str(tmp_path / "ls-export.json"),
                 "--out-dir", str(out)]) == 0
    doc = read_sections(out / "sections.corrected.sections.json")
    assert [(s.label, s.start_frame, s.end_frame) for s in doc.sections] == [
        ("ear", 0, 45), ("unusable", 46, 59), ("ear", 60, 89), ("vocal_folds", 90, 129)]
    assert doc.sections[1].start_s == 46 / 25
    assert doc.sections[3] == read_sections(t.sections).sections[3]  # untouched: exact
    assert doc.review.tool == "label-studio" and doc.review.changed == (0, 1, 2)
