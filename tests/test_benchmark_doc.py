"""A benchmark writes its own figures into ``docs/performance.md`` (``--write-docs``).

Run through the scripts' real frame (:func:`benchmarks.entry.run_script`) with a run
function that returns at once: what is tested is the block replacement on a page in a
temporary folder, not a measurement.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shlex
from pathlib import Path

import pytest

from benchmarks import doc
from benchmarks.entry import run_script

ROOT = Path(__file__).resolve().parents[1]

PAGE = """# Performance

Intro that stays.

<!-- benchmark:bench -->
```sh
python -m benchmarks
```

| old | figures |
<!-- /benchmark:bench -->

Between the blocks, also kept.

<!-- benchmark:soak -->
old soak figures
<!-- /benchmark:soak -->
"""

MACHINE = {"cpu_model": "Test CPU 9000", "cores_logical": 2, "loadavg_start": [0.5, 0.4, 0.3]}


def _printed(d: dict) -> str:
    return f"## endostream benchmark\n\n| stage | frames/s |\n|---|---:|\n| decode | {d['fps']} |\n"


def _run_frame(tmp_path: Path, page: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    doc.add_arguments(parser)
    argv = ["--quick", "--json", str(tmp_path / "run.json"), "--docs-file", str(page), *extra]
    return run_script("benchmarks", "bench", parser, lambda args: {"machine": dict(MACHINE),
                                                                   "fps": 1234.5},
                      _printed, argv)


def test_the_run_replaces_its_block_with_command_machine_and_tables(tmp_path, capsys):
    page = tmp_path / "performance.md"
    page.write_text(PAGE, encoding="utf-8")
    assert _run_frame(tmp_path, page, "--write-docs") == 0
    text = page.read_text(encoding="utf-8")
    block = text.split("<!-- benchmark:bench -->\n", 1)[1].split("<!-- /benchmark:bench -->")[0]
    assert block.startswith("```sh\npython -m benchmarks --quick\n```")
    assert "--write-docs" not in block and "--docs-file" not in block and "--json" not in block
    assert "Machine: Test CPU 9000, 2 cores, load average [0.5, 0.4, 0.3]" in block
    assert "| decode | 1234.5 |" in block and "| old | figures |" not in block
    assert "## endostream benchmark" not in text  # the page keeps its own headings
    # Everything outside the block is byte for byte what it was.
    before = PAGE.split("<!-- benchmark:bench -->")[0]
    after = PAGE.split("<!-- /benchmark:bench -->")[1]
    assert text.startswith(before) and text.endswith(after)
    assert "figures written into" in capsys.readouterr().err
    assert json.loads((tmp_path / "run.json").read_text())["fps"] == 1234.5


def test_a_named_block_is_the_one_replaced(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text(PAGE, encoding="utf-8")
    assert _run_frame(tmp_path, page, "--write-docs", "soak") == 0
    text = page.read_text(encoding="utf-8")
    assert "old soak figures" not in text and "| decode | 1234.5 |" in text
    assert "| old | figures |" in text  # the bench block is untouched


def test_without_the_flag_the_page_is_not_touched(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text(PAGE, encoding="utf-8")
    assert _run_frame(tmp_path, page) == 0
    assert page.read_text(encoding="utf-8") == PAGE


@pytest.mark.parametrize("page_text", [
    "# no block here\n",
    "<!-- /benchmark:bench -->\nclosed before opened\n<!-- benchmark:bench -->\n",
    "<!-- benchmark:bench -->\n<!-- /benchmark:bench -->\n<!-- benchmark:bench -->\n",
])
def test_a_page_without_exactly_one_block_is_refused_and_kept(tmp_path, capsys, page_text):
    page = tmp_path / "performance.md"
    page.write_text(page_text, encoding="utf-8")
    assert _run_frame(tmp_path, page, "--write-docs") == 2
    err = capsys.readouterr().err
    assert "error: the page has no block 'bench'" in err and "Traceback" not in err
    assert page.read_text(encoding="utf-8") == page_text
    assert (tmp_path / "run.json").is_file()  # the figures themselves are kept


def test_a_missing_page_is_one_line(tmp_path, capsys):
    assert _run_frame(tmp_path, tmp_path / "nowhere.md", "--write-docs") == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("argv, command", [
    (["--write-docs"], "python -m benchmarks"),
    (["--write-docs", "bench-live", "--live-seconds", "600"],
     "python -m benchmarks --live-seconds 600"),
    (["--live-seconds", "600", "--write-docs=x", "--docs-file=p.md"],
     "python -m benchmarks --live-seconds 600"),
    (["--docs-file", "p.md", "--write-docs", "--quick"], "python -m benchmarks --quick"),
    (["--seeds", "3", "--work", "/tmp/w", "--json=/tmp/l.json", "--write-docs", "x"],
     "python -m benchmarks --seeds 3"),
])
def test_the_command_leaves_out_where_the_figures_go(argv, command):
    assert doc.command_line("benchmarks", argv) == command


#: Block name → the script whose parser its command line must pass.
PAGE_BLOCKS = {"bench": "benchmarks.__main__", "bench-live": "benchmarks.__main__",
               "soak": "benchmarks.soak", "archive": "benchmarks.archive",
               "readme_loop": "benchmarks.readme_loop",
               "correction_loop": "benchmarks.correction_loop",
               "correction_loop-order": "benchmarks.correction_loop",
               "correction_loop-recipe": "benchmarks.correction_loop"}


@pytest.mark.parametrize("name", sorted(PAGE_BLOCKS))
def test_the_real_page_has_each_block_once_with_a_command_its_script_takes(name):
    text = (ROOT / "docs" / "performance.md").read_text(encoding="utf-8")
    start, end = doc.markers(name)
    assert text.count(start) == 1 and text.count(end) == 1
    block = text.split(start)[1].split(end)[0]
    commands = re.findall(r"```sh\n(.*?)```", block, re.S)
    assert commands, f"block {name} names no command"
    for line in commands[0].strip().splitlines():
        argv = shlex.split(line, comments=True)
        assert argv[:2] == ["python", "-m"]
        module = importlib.import_module(PAGE_BLOCKS[name])
        assert argv[2] == module.__name__.removesuffix(".__main__")
        module.build_parser().parse_args(argv[3:])  # SystemExit (a failure) if it drifted
    assert "Machine:" in block
