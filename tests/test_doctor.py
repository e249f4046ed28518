"""`endostream --version` / `doctor`: the versions a bug report needs, read from the real
installation (package metadata, PyAV's FFmpeg, onnxruntime's providers)."""

from __future__ import annotations

import json
from importlib import metadata

import av
import onnxruntime as ort
import pytest

from endostream import __version__
from endostream.cli import main
from endostream.commands.doctor import declared_ranges, format_report, satisfies


def test_version_names_every_library_that_matters_with_its_installed_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"endostream {__version__}"
    for dist in ("numpy", "opencv-python-headless", "av", "torch", "PyQt5"):
        try:
            want = metadata.version(dist)
        except metadata.PackageNotFoundError:
            want = "not installed"
        line = next(x for x in out.splitlines() if x.split()[:1] == [dist])
        assert want in line, line
    codec = ".".join(str(n) for n in av.library_versions["libavcodec"])
    assert f"libavcodec {codec}" in out
    assert ", ".join(p.removesuffix("ExecutionProvider")
                     for p in ort.get_available_providers()) in out
    assert "GPU: " in out


def test_doctor_json_is_the_same_report(capsys):
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [lib["name"] for lib in report["libraries"]]
    assert names[:3] == ["numpy", "opencv-python-headless", "av"]
    numpy_row = report["libraries"][0]
    assert numpy_row["version"] == metadata.version("numpy")
    assert numpy_row["wanted"] == declared_ranges()["numpy"] and numpy_row["in_range"]
    assert report["onnxruntime"]["version"] == ort.__version__


def test_a_library_outside_the_declared_range_is_marked():
    report = {"endostream": "0", "python": "3", "platform": "x", "ffmpeg": {},
              "onnxruntime": {"providers": ["CPU"], "gpu": "not used: none"},
              "libraries": [{"name": "av", "role": "core", "version": "11.0.0",
                             "wanted": ">=12", "in_range": satisfies("11.0.0", ">=12")},
                            {"name": "ray", "role": "cluster", "version": None,
                             "wanted": ">=2.9", "in_range": None}]}
    text = format_report(report)
    assert "11.0.0  << outside endostream's range >=12" in text
    assert "not installed" in text.splitlines()[3]


@pytest.mark.parametrize("version,spec,ok", [
    ("5.1.0.95", ">=4.8", True), ("4.7.0.72", ">=4.8", False), ("5.0", ">=4.8,<5", False),
    ("4.14.0", ">=4.8,<5", True), ("1.24.4", "==1.24.4", True), ("2.0.0rc1", ">=2", True),
    ("1.17.3", "~=1.17.0", True), ("1.18", "~=1.17.0", False),
])
def test_satisfies(version, spec, ok):
    assert satisfies(version, spec) is ok
