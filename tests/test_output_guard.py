"""The output guard on its own: every rule, on real files (the CLI's use is tested in
``test_cli_safety.py``)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from endostream.errors import EXIT_OUTPUT, EXIT_USAGE, OutputError, UsageError
from endostream.output.atomic import write_json_atomic
from endostream.output.guard import (
    PROBE_PREFIX,
    check_outputs,
    prepare_output_folder,
    same_file,
)


@pytest.fixture
def video(tmp_path) -> Path:
    path = tmp_path / "v.mp4"
    path.write_bytes(b"irreplaceable recording")
    return path


def _refused(outputs, inputs, error=UsageError, **kw) -> str:
    with pytest.raises(error) as e:
        check_outputs(outputs, inputs, **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_new_output_beside_the_input_is_fine_and_leaves_nothing(tmp_path, video):
    check_outputs({"--out": tmp_path / "v.sections.json", "--csv": None}, {"VIDEO": video})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


@pytest.mark.parametrize("how", ["same path", "symlink", "dotdot", "hard link", "relative"])
def test_output_that_is_the_input_is_refused(tmp_path, video, how, monkeypatch):
    if how == "same path":
        out = video
    elif how == "symlink":
        out = tmp_path / "link.json"
        out.symlink_to(video)
    elif how == "dotdot":
        (tmp_path / "sub").mkdir()
        out = tmp_path / "sub" / ".." / "v.mp4"
    elif how == "hard link":
        out = tmp_path / "other-name.json"
        os.link(video, out)
    else:
        monkeypatch.chdir(tmp_path)
        out = Path("v.mp4")
    message = _refused({"--out": out}, {"VIDEO": video})
    assert message.startswith("--out ") and "VIDEO" in message and "choose another --out" in message
    assert UsageError.exit_code == EXIT_USAGE
    assert video.read_bytes() == b"irreplaceable recording"


def test_an_input_symlink_to_the_output_is_seen_too(tmp_path, video):
    link = tmp_path / "clip.mp4"
    link.symlink_to(video)
    assert "VIDEO" in _refused({"--out": video}, {"VIDEO": link})


def test_two_outputs_on_one_file_are_refused(tmp_path, video):
    out = tmp_path / "x.json"
    message = _refused({"--out": out, "--csv": out}, {"VIDEO": video})
    assert message.startswith("--csv ") and "--out" in message


def test_output_that_is_the_model_is_refused(tmp_path, video):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"model")
    assert "--models" in _refused({"--csv": model}, {"VIDEO": video, "--models": model})


def test_stdout_is_skipped_but_only_once(tmp_path, video):
    check_outputs({"--out": "-", "--csv": tmp_path / "f.csv"}, {"VIDEO": video})
    assert "stdout" in _refused({"--out": "-", "--csv": "-"}, {"VIDEO": video})


def test_missing_folders_are_created_as_out_dir_does(tmp_path, video):
    check_outputs({"--out": tmp_path / "new" / "deeper" / "s.json"}, {"VIDEO": video})
    assert (tmp_path / "new" / "deeper").is_dir()
    assert not list((tmp_path / "new" / "deeper").iterdir())  # no file, the probe removed


def test_a_folder_that_cannot_be_created_fails_fast(tmp_path, video):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    message = _refused({"--out": blocker / "sub" / "s.json"}, {"VIDEO": video}, OutputError)
    assert "Not a directory; choose another --out" in message
    assert OutputError.exit_code == EXIT_OUTPUT


@pytest.mark.parametrize("folder", ["/proc", "/sys"])
def test_kernel_folders_are_not_writable_even_for_root(folder, video):
    message = _refused({"--out": Path(folder) / "s.json"}, {"VIDEO": video}, OutputError)
    assert message.startswith(f"cannot create files in '{folder}' (for --out)")


def test_an_existing_directory_or_device_is_refused(tmp_path, video):
    assert "is a directory" in _refused({"--out": tmp_path}, {"VIDEO": video}, OutputError)
    assert "regular file" in _refused({"--out": "/dev/null"}, {"VIDEO": video}, OutputError)


def test_read_only_output_needs_overwrite_and_keeps_its_mode(tmp_path, video):
    out = tmp_path / "s.json"
    out.write_text("{}")
    out.chmod(0o444)  # no write bit: refused even for root, who could write it anyway
    message = _refused({"--out": out}, {"VIDEO": video}, UsageError)
    assert "(read-only); add --overwrite" in message
    check_outputs({"--out": out}, {"VIDEO": video}, overwrite=True)
    write_json_atomic(out, {"new": 1})
    assert stat.S_IMODE(out.stat().st_mode) == 0o444 and '"new"' in out.read_text()


def test_an_existing_writable_output_needs_overwrite_too(tmp_path, video):
    out = tmp_path / "s.json"
    out.write_text("{}")
    message = _refused({"--out": out}, {"VIDEO": video}, UsageError)
    assert message == (f"--out '{out}' exists; add --overwrite to replace it, or choose "
                       "another --out")
    check_outputs({"--out": out}, {"VIDEO": video}, overwrite=True)
    assert out.read_text() == "{}"  # checked, not touched


def test_replaced_file_keeps_its_permissions(tmp_path):
    out = tmp_path / "s.json"
    out.write_text("{}")
    out.chmod(0o640)
    write_json_atomic(out, {"a": 1})
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a chmod 555 folder anyway")
def test_chmod_read_only_folder_fails_fast(tmp_path, video):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _refused({"--out": ro / "s.json"}, {"VIDEO": video}, OutputError)
    finally:
        ro.chmod(0o755)


def test_prepare_output_folder_creates_and_probes(tmp_path):
    folder = prepare_output_folder("--out-dir", tmp_path / "a" / "b")
    assert folder.is_dir() and not any(folder.iterdir())
    assert not any(p.name.startswith(PROBE_PREFIX) for p in tmp_path.rglob("*"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        prepare_output_folder("--out-dir", tmp_path / "file")
    with pytest.raises(OutputError, match="cannot create --out-dir '/proc/x'"):
        prepare_output_folder("--out-dir", "/proc/x")


def test_same_file_on_missing_paths_compares_names(tmp_path):
    assert same_file(tmp_path / "a" / ".." / "x", tmp_path / "x")
    assert not same_file(tmp_path / "x", tmp_path / "y")
