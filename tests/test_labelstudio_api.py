"""labelstudio push / pull: Label Studio driven through its HTTP API, no pasting.

The first tests need no Label Studio: the requests the client builds, its refusals of a
server that cannot be reached or does not answer (a closed port, a port that accepts and
says nothing), of a redirect to another server (a small local HTTP server that redirects),
and of a video layout Label Studio 1.23 cannot serve. The slow ones run a real Label
Studio 1.23 (tests/helpers/label_studio.py, started once for this module): push two
sections files, check the project, its tasks, predictions and that a task's video URL is
served; annotate one task through the API, pull, and run ``chapters`` and ``dataset`` on
the corrected file; push again without duplicates; a refused token and a missing project.
"""

from __future__ import annotations

import copy
import csv
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from endostream.cli import main
from endostream.corrections.labelstudio_api import LabelStudio, build_request
from endostream.errors import EXIT_SEND, EXIT_USAGE
from endostream.output.document import read_sections
from helpers.label_studio import (
    TOKEN,
    free_port,
    http,
    label_studio_executable,
    running_label_studio,
)
from helpers.review import make_procedure


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("endostream: error: "), err
    return err[0]


# -- without a server ------------------------------------------------------------------------


def test_requests_carry_the_token_json_and_the_query():
    r = build_request("http://ls:8080", "POST", "/api/projects/3/import", "T0",
                      [{"data": {"video": "/data/local-files/?d=a/b.mp4"}}])
    assert r.full_url == "http://ls:8080/api/projects/3/import"
    assert r.get_method() == "POST" and r.get_header("Authorization") == "Token T0"
    assert r.get_header("Content-type") == "application/json"
    assert json.loads(r.data) == [{"data": {"video": "/data/local-files/?d=a/b.mp4"}}]
    r = build_request("https://ls", "GET", "/api/projects/3/export", "abc",
                      query={"exportType": "JSON", "download_all_tasks": "true"},
                      scheme="Bearer")
    assert r.full_url == ("https://ls/api/projects/3/export?exportType=JSON&"
                          "download_all_tasks=true")
    assert r.get_header("Authorization") == "Bearer abc" and r.data is None


def test_a_closed_port_is_one_line_and_exit_10(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"  # free: nothing listens there
    code = main(["labelstudio", "pull", "--url", url, "--token", "T", "--project", "1",
                 "--out-dir", str(tmp_path / "out")])
    line = _one_error_line(capsys)
    assert code == EXIT_SEND and "cannot reach Label Studio" in line and url in line
    assert not (tmp_path / "out").exists()


def test_a_server_that_never_answers_is_an_error_after_the_timeout(tmp_path, capsys):
    t = make_procedure(tmp_path / "docs" / "p1")
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        code = main(["labelstudio", "push", str(t.sections), "--url", url, "--token", "T",
                     "--timeout", "1"])
        waited = time.monotonic() - started
    line = _one_error_line(capsys)
    assert code == EXIT_SEND and "did not answer" in line and "within 1 s" in line
    assert waited < 30  # one call's timeout (and the clip's checks), not a hang


class _Redirect(BaseHTTPRequestHandler):
    """Answers every request with a redirect to another server, and remembers it."""

    seen: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(302)
        self.send_header("Location", "http://127.0.0.2:9/api/projects/1")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_redirect_to_another_server_is_refused(tmp_path, capsys):
    server = HTTPServer(("127.0.0.1", 0), _Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code = main(["labelstudio", "pull", "--url", url, "--token", "T0", "--project",
                     "1", "--out-dir", str(tmp_path / "out")])
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
    line = _one_error_line(capsys)
    assert code == EXIT_SEND and "redirected to http://127.0.0.2:9" in line
    assert _Redirect.seen == [("/api/projects/1", "Token T0")]  # and nothing else


@pytest.mark.parametrize("argv, words", [
    (["--url", "localhost:8080"], "not a Label Studio address"),
    (["--url", "ftp://h/"], "not a Label Studio address"),
    (["--url", "http://127.0.0.1:9", "--timeout", "0"], "--timeout 0"),
    (["--url", "http://127.0.0.1:9", "--token", " "], "--token is empty"),
])
def test_bad_server_options_are_usage_errors(tmp_path, capsys, argv, words):
    argv = ["--token", "T", *argv] if "--token" not in argv else argv
    code = main(["labelstudio", "pull", *argv, "--project", "1", "--out-dir",
                 str(tmp_path / "o")])
    line = _one_error_line(capsys)
    assert code == EXIT_USAGE and words in line


def test_a_video_directly_in_the_document_root_is_refused_before_any_request(tmp_path,
                                                                           capsys):
    t = make_procedure(tmp_path / "docs")
    code = main(["labelstudio", "push", str(t.sections), "--url",
                 f"http://127.0.0.1:{free_port()}", "--token", "T", "--root",
                 str(tmp_path / "docs")])
    line = _one_error_line(capsys)
    assert code == EXIT_USAGE and "directly in the document root" in line
    assert "move the videos into a subfolder" in line


# -- a real Label Studio ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    exe = label_studio_executable()
    if exe is None:
        pytest.skip("Label Studio is not installed (see .ci/run: a venv of its own, "
                    "ENDOSTREAM_LABEL_STUDIO=/path/to/bin/label-studio)")
    try:
        with running_label_studio(exe, tmp_path_factory.mktemp("ls-api")) as server:
            yield server
    except RuntimeError as e:
        pytest.fail(str(e))


def _tasks(base: str, project: int) -> list[dict]:
    listed = http(base, "GET", f"/api/tasks?project={project}&fields=all&page_size=100")
    return sorted(listed["tasks"] if isinstance(listed, dict) else listed,
                  key=lambda t: t["id"])


def _push(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["labelstudio", "push", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out.strip(), out.err.strip()


@pytest.mark.slow
def test_push_annotate_pull_and_push_again(tmp_path, capsys, label_studio):
    base, docs = label_studio.base, label_studio.documents
    first = make_procedure(docs / "batch" / "p1")
    second = make_procedure(docs / "batch" / "p2", name="second.mp4")
    # The default --root: the folder above the videos' common folder (docs here).
    code, out, err = _push(capsys, first.sections, second.sections, "--url", base,
                           "--token", TOKEN, "--project", "ENT clinic")
    assert code == 0, err
    assert out.startswith(base + "/projects/")
    project = int(out.rsplit("/", 1)[1])
    assert "2 tasks imported" in err
    assert http(base, "GET", f"/api/projects/{project}")["title"] == "ENT clinic"
    storages = http(base, "GET", f"/api/storages/localfiles?project={project}")
    assert [s["path"] for s in storages] == [str((docs / "batch").resolve())]
    tasks = _tasks(base, project)
    assert [t["data"]["video"] for t in tasks] == [
        "/data/local-files/?d=batch/p1/procedure.mp4", "/data/local-files/?d=batch/p2/second.mp4"]
    for task in tasks:
        (prediction,) = task["predictions"]
        assert [(r["value"]["ranges"][0]["start"], r["value"]["timelinelabels"][0])
                for r in prediction["result"]] == [
            (1, "ear"), (41, "unusable"), (61, "nose"), (91, "vocal_folds")]
    # The video URL of a task resolves on Label Studio (the token suffices on 1.23).
    req = urllib.request.Request(base + tasks[1]["data"]["video"],
                                 headers={"Authorization": f"Token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200 and r.read() == second.video.read_bytes()

    # A reviewer corrects the first task: the nose is an ear.
    result = copy.deepcopy(tasks[0]["predictions"][0]["result"])
    result[2]["value"]["timelinelabels"] = ["ear"]
    http(base, "POST", f"/api/tasks/{tasks[0]['id']}/annotations",
         {"result": result, "was_cancelled": False})
    corrected = tmp_path / "corrected"
    capsys.readouterr()
    assert main(["labelstudio", "pull", "--url", base, "--token", TOKEN, "--project",
                 str(project), "--out-dir", str(corrected)]) == 0
    assert "1 task without an annotation left out" in capsys.readouterr().err
    (path,) = corrected.iterdir()
    assert path.name == "sections.corrected.sections.json"  # named after its sections file
    doc = read_sections(path)
    assert [(s.label, s.start_frame, s.end_frame) for s in doc.sections] == [
        ("ear", 0, 39), ("unusable", 40, 59), ("ear", 60, 89), ("vocal_folds", 90, 129)]
    assert doc.review.tool == "label-studio" and doc.review.changed == (2,)
    # The corrected file is one the other commands take.
    assert main(["chapters", str(path), "--out", str(tmp_path / "chapters.vtt")]) == 0
    assert "00:00:02.400 --> 00:00:03.600\nEar" in (tmp_path / "chapters.vtt").read_text()
    assert main(["dataset", str(path), "--out", str(tmp_path / "labels.csv")]) == 0
    with open(tmp_path / "labels.csv", newline="") as fh:
        organs = [row["organ"] for row in csv.DictReader(fh)]
    assert "ear" in organs and "nose" not in organs  # the correction, not the model
    # Pulling again into the same folder does not replace the file without --overwrite.
    capsys.readouterr()
    assert main(["labelstudio", "pull", "--url", base, "--token", TOKEN, "--project",
                 str(project), "--out-dir", str(corrected)]) == EXIT_USAGE
    assert "--overwrite" in _one_error_line(capsys)

    # Pushing the same sections again, by id or by title, adds nothing.
    for which in (str(project), "ENT clinic"):
        code, out, err = _push(capsys, first.sections, second.sections, "--url", base,
                               "--token", TOKEN, "--project", which, "--root", docs)
        assert code == 0 and out == f"{base}/projects/{project}", err
        assert "0 tasks imported, 2 tasks already there" in err
    assert len(_tasks(base, project)) == 2
    assert len(http(base, "GET", f"/api/storages/localfiles?project={project}")) == 1
    assert len(_tasks(base, project)[0]["annotations"]) == 1  # the reviewer's work stays


@pytest.mark.slow
def test_a_refused_token_and_a_missing_project_are_one_line_and_exit_10(tmp_path, capsys,
                                                                          label_studio):
    base = label_studio.base
    t = make_procedure(label_studio.documents / "refused" / "p")
    capsys.readouterr()
    assert main(["labelstudio", "push", str(t.sections), "--url", base, "--token",
                 "not-the-token"]) == EXIT_SEND
    line = _one_error_line(capsys)
    assert "refused the token (HTTP 401" in line and "Account & Settings" in line
    assert main(["labelstudio", "pull", "--url", base, "--token", "not-the-token",
                 "--project", "1", "--out-dir", str(tmp_path / "out")]) == EXIT_SEND
    assert "refused the token" in _one_error_line(capsys)
    assert main(["labelstudio", "pull", "--url", base, "--token", TOKEN, "--project",
                 "9999", "--out-dir", str(tmp_path / "out")]) == EXIT_SEND
    line = _one_error_line(capsys)
    assert "has no project 9999" in line and "--project" in line
    assert not (tmp_path / "out").exists()
    assert main(["labelstudio", "push", str(t.sections), "--url", base, "--token", TOKEN,
                 "--project", "9999"]) == EXIT_SEND
    assert "has no project 9999" in _one_error_line(capsys)


@pytest.mark.slow
def test_videos_outside_the_servers_document_root_are_refused_with_its_reason(
        tmp_path, capsys, label_studio):
    t = make_procedure(tmp_path / "elsewhere" / "p")  # not below the server's root
    assert main(["labelstudio", "push", str(t.sections), "--url", label_studio.base,
                 "--token", TOKEN, "--project", "elsewhere"]) == EXIT_SEND
    line = _one_error_line(capsys)
    assert "refused POST /api/storages/localfiles (HTTP 400:" in line
    assert "LOCAL_FILES_DOCUMENT_ROOT" in line and "--root" in line


@pytest.mark.slow
def test_a_personal_access_token_is_exchanged_for_an_access_token(capsys, label_studio):
    base = label_studio.base
    personal = http(base, "POST", "/api/token/")["token"]  # what Account & Settings makes
    t = make_procedure(label_studio.documents / "personal" / "p")
    code, out, err = _push(capsys, t.sections, "--url", base, "--token", personal,
                           "--project", "personal token")
    assert code == 0 and out.startswith(f"{base}/projects/"), err
    assert len(_tasks(base, int(out.rsplit("/", 1)[1]))) == 1
    code, out, err = _push(capsys, t.sections, "--url", base, "--token",
                           personal[:-2] + "xx")
    assert code == EXIT_SEND and "refused the token (HTTP 401 to POST /api/token/refresh" \
        in err and len(err.splitlines()) == 1


def test_the_client_is_imported_only_by_push_and_pull():
    """urllib's client stays out of the other actions: the parser does not import it."""
    probe = ("import contextlib, io, sys\n"
             "from endostream.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()), "
             "contextlib.suppress(SystemExit):\n"
             "    main(['labelstudio', 'export', '--help'])\n"
             "print(' '.join(sorted(m for m in sys.modules if 'labelstudio' in m)))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["endostream.commands.labelstudio",
                                  "endostream.corrections.labelstudio"]
    assert LabelStudio.__module__ == "endostream.corrections.labelstudio_api"


@pytest.mark.slow
def test_the_readme_loop_with_the_reviewer_in_label_studio(tmp_path, capsys, label_studio):
    """The README's loop (benchmarks.readme_loop, every line as written, smaller numbers)
    with the correction made in Label Studio: ``labelstudio push`` the model's sections,
    the reviewer redraws the regions to the truth, ``labelstudio pull`` writes the file
    the README's ``dataset`` line reads; then train, export and evaluate run on it."""
    pytest.importorskip("torch")
    from benchmarks import readme_loop

    base = label_studio.base
    work = label_studio.documents / "clinic" / "walk"  # a subfolder of the document root

    def reviewer(folder, truth):
        capsys.readouterr()
        assert main(["labelstudio", "push", str(folder / "procedure.sections.json"), "--url",
                     base, "--token", TOKEN, "--project", "README walk"]) == 0
        project = int(capsys.readouterr().out.strip().rsplit("/", 1)[1])
        (task,) = _tasks(base, project)
        first = task["predictions"][0]["result"][0]
        result = [{**{k: first[k] for k in ("from_name", "to_name", "type")},
                   "id": f"r{k}", "value": {"ranges": [{"start": s.start_frame + 1,
                                                        "end": s.end_frame + 1}],
                                            "timelinelabels": [s.label]}}
                  for k, s in enumerate(truth.sections)]
        http(base, "POST", f"/api/tasks/{task['id']}/annotations",
             {"result": result, "was_cancelled": False})
        pulled = tmp_path / "pulled"
        assert main(["labelstudio", "pull", "--url", base, "--token", TOKEN, "--project",
                     str(project), "--out-dir", str(pulled)]) == 0
        (path,) = pulled.iterdir()
        assert path.name == "procedure.corrected.sections.json"  # after its sections file
        path.rename(folder / path.name)

    result = readme_loop.walk(work, reviewer=reviewer, quick=True, seed=5, score=False)
    assert [c[0] for c in result.commands] == [c[0] for c in readme_loop.readme_commands()]
    doc = read_sections(work / "procedure.corrected.sections.json")
    assert doc.review.tool == "label-studio" and doc.review.changed
    assert "corrected recordings trained on: procedure.mp4" in capsys.readouterr().err
    assert (work / "tuned.onnx").is_file()
