"""One CLI grammar (issue 30, item 4), checked across every command and sub-action.

The parsers are walked from ``endostream.cli.build_parser`` (a command added tomorrow is
checked too), and the rules that need a run are run for real through ``main(argv)``
in-process on a tiny reviewed procedure (tests/helpers/review.py): ``--overwrite``,
parent folders, ``-v``/``-q`` after a command, suggestions on a typo, help that fits a
screen, required options marked, list options, stdout for findings and stderr for what
was written; docs/cli.md is the generated reference, byte for byte.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from endostream.cli import COMMANDS, build_parser, main
from endostream.commands.grammar import settle, subparsers
from endostream.commands.help import COLUMNS, GENERATE, full_help, reference
from endostream.errors import EXIT_USAGE
from helpers.onnx_models import build_color_model
from helpers.review import make_procedure

ROOT = Path(__file__).resolve().parents[1]

#: Options that name something a command writes.
WRITING = {"--out", "--out-dir", "--dataset", "--dicom-out", "--config", "--truth"}
#: The most lines a command's --help may take at 80 columns (a screen), and the two that
#: the issue names, which must fit in fewer.
MAX_HELP_LINES = 60
SHORT_HELP = {"segment": 50, "train": 50}


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    for name, sub in subparsers(parser).items():
        yield (*path, name), sub
        yield from _walk(sub, (*path, name))


PARSERS = dict(_walk(build_parser()))
LEAVES = {path: p for path, p in PARSERS.items() if not subparsers(p)}


def _ids(paths):
    return [" ".join(p) for p in paths]


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def _lines(capsys) -> tuple[str, list[str]]:
    captured = capsys.readouterr()
    return captured.out, [line for line in captured.err.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def procedure(tmp_path_factory):
    return make_procedure(tmp_path_factory.mktemp("grammar"))


@pytest.fixture(autouse=True)
def _columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", str(COLUMNS))


# --- the reference ------------------------------------------------------------------------


def test_docs_cli_md_is_generated_from_the_parsers():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert text == reference(build_parser()), f"docs/cli.md is stale; run: {GENERATE}"


def test_every_command_and_action_is_in_the_reference():
    text = reference(build_parser())
    for path, parser in PARSERS.items():
        assert f"\n## {' '.join(path)}\n" in text
        for action in parser._actions:  # the rarely used options too
            for option in action.option_strings:
                assert option in text, (path, option)


def test_help_prints_a_commands_full_help(capsys):
    assert main(["help", "labelstudio", "export"]) == 0
    assert capsys.readouterr().out == full_help(PARSERS[("labelstudio", "export")])
    assert main(["help", "segmnt"]) == EXIT_USAGE
    _, err = _lines(capsys)
    assert err == ["endostream: error: 'endostream' has no command 'segmnt'; did you mean "
                   "'segment'?"]


# --- --overwrite and folders --------------------------------------------------------------


@pytest.mark.parametrize("path", LEAVES, ids=_ids(LEAVES))
def test_every_command_that_writes_takes_overwrite(path):
    parser = LEAVES[path]
    if _options(parser) & WRITING:
        assert {"--overwrite", "--force"} <= _options(parser)
        text = " ".join(full_help(parser).split())
        assert "--overwrite, --force replace existing outputs" in text


def test_an_existing_output_is_replaced_only_with_overwrite(procedure, tmp_path, capsys):
    """The issue's case: dataset --out onto a writable file replaced it silently."""
    cases = {
        "dataset": (["dataset", str(procedure.sections), "--out"], "labels.csv", "--out"),
        "chapters": (["chapters", str(procedure.sections), "--out"], "c.vtt", "--out"),
        "next": (["next", str(procedure.sections), "--csv", str(procedure.csv),
                  "--no-thumbnails", "--out-dir"], "next.csv", "--out-dir's next.csv"),
    }
    for name, (argv, file_name, key) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        mine = folder / file_name
        mine.write_text("mine")
        target = str(folder if key.startswith("--out-dir") else mine)
        assert main([*argv, target]) == EXIT_USAGE, name
        _, err = _lines(capsys)
        assert len(err) == 1 and err[0].startswith("endostream: error: "), err
        assert f"{key} '{mine}' exists; add --overwrite to replace it" in err[0], err
        assert mine.read_text() == "mine"
        assert main([*argv, target, "--overwrite"]) == 0, name
        assert mine.read_text() != "mine"
        capsys.readouterr()


def test_out_creates_missing_parent_folders(procedure, tmp_path, capsys):
    """As --out-dir creates its folder: the README's 'dataset ... --out corrected/labels.csv'."""
    labels = tmp_path / "corrected" / "deeper" / "labels.csv"
    assert main(["dataset", str(procedure.sections), "--out", str(labels)]) == 0
    assert labels.is_file()
    chapters = tmp_path / "new" / "chapters.vtt"
    assert main(["chapters", str(procedure.sections), "--out", str(chapters)]) == 0
    assert chapters.read_text().startswith("WEBVTT")
    _, err = _lines(capsys)
    assert err[-1].startswith(f"wrote {chapters}")


def test_a_folder_that_cannot_be_made_fails_before_the_work(procedure, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["dataset", str(procedure.sections), "--out",
                 str(blocker / "labels.csv")]) == 5
    _, err = _lines(capsys)
    assert len(err) == 1 and "--out" in err[0] and "choose another --out" in err[0]


# --- -v / -q anywhere ---------------------------------------------------------------------


@pytest.mark.parametrize("path", PARSERS, ids=_ids(PARSERS))
def test_every_parser_takes_v_q_and_help_all(path):
    assert {"-v", "--verbose", "-q", "--quiet", "--help-all"} <= _options(PARSERS[path])


@pytest.mark.parametrize("argv, verbose, quiet", [
    (["labelstudio", "export", "s.json", "--out", "t.json", "-v"], 1, False),
    (["-v", "labelstudio", "-v", "export", "s.json", "--out", "t.json"], 2, False),
    (["labelstudio", "import", "e.json", "--out-dir", "d", "-q"], 0, True),
    (["next", "s.json", "--out-dir", "d", "-vv", "-q"], 2, True),
    (["train", "data", "--task", "organ", "--out", "m.pth", "--quiet"], 0, True),
    (["-q", "doctor"], 0, True),
])
def test_v_and_q_after_a_command_or_an_action(argv, verbose, quiet):
    args = settle(build_parser().parse_args(argv))
    assert (args.verbose, args.quiet) == (verbose, quiet)


def test_v_after_a_sub_action_is_taken_in_a_real_run(procedure, tmp_path, capsys):
    """The README said -v works anywhere; 'labelstudio export ... -v' refused it."""
    out = tmp_path / "tasks.json"
    assert main(["labelstudio", "export", str(procedure.sections), "--out", str(out),
                 "-v"]) == 0
    _, err = _lines(capsys)
    assert out.is_file() and f"wrote {out} (1 task; paste" in err[-1]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return build_color_model(tmp_path_factory.mktemp("model") / "color.onnx")


def test_segment_table_on_stdout_each_file_on_stderr_and_q(procedure, model, tmp_path,
                                                           capsys):
    out, csv = tmp_path / "s.json", tmp_path / "f.csv"
    argv = ["segment", str(procedure.video), "--models", str(model), "--device", "cpu",
            "--out", str(out), "--csv", str(csv)]
    assert main(argv) == 0
    stdout, err = _lines(capsys)
    assert stdout.startswith("label") and "wrote" not in stdout  # the table: a finding
    assert err[-2:] == [f"wrote {out}", f"wrote {csv}"]  # segment says it wrote the CSV
    assert main([*argv, "--overwrite", "-q"]) == 0
    stdout, err = _lines(capsys)
    assert stdout == "" and err == [f"wrote {out}", f"wrote {csv}"]


# --- typos --------------------------------------------------------------------------------


def _typo(option: str) -> str:
    """``--overwrite`` → ``--overwriet``: the last two letters swapped."""
    return option[:-2] + option[-1] + option[-2]


@pytest.mark.parametrize("path", LEAVES, ids=_ids(LEAVES))
def test_a_mistyped_option_gets_the_commands_usage_and_the_closest_match(path, capsys):
    parser = LEAVES[path]
    longs = [o for o in _options(parser) if o.startswith("--") and len(o) > 6
             and o not in ("--help", "--help-all")]
    option = "--overwrite" if "--overwrite" in longs else sorted(longs)[0]
    assert main([*path, _typo(option)]) == EXIT_USAGE
    stdout, err = _lines(capsys)
    assert stdout == ""
    assert err[0].startswith(f"usage: endostream {' '.join(path)} ")
    assert err[-1] == (f"endostream: error: {' '.join(path)}: unrecognized option "
                       f"{_typo(option)}; did you mean {option}?")
    assert len(err) <= 3  # the usage (short) and one line


def test_a_mistyped_command_action_or_choice_gets_the_closest_match(capsys):
    for argv, line in [
        (["segmnt", "v.mp4"], "endostream: error: argument COMMAND: invalid choice: 'segmnt'; "
                              "did you mean 'segment'?"),
        (["labelstudio", "exprot"], "endostream: error: labelstudio: argument ACTION: "
                                    "invalid choice: 'exprot'; did you mean 'export'?"),
        (["segment", "v.mp4", "--device", "cdua"], "endostream: error: segment: argument "
                                                   "--device: invalid choice: 'cdua'; did "
                                                   "you mean 'cuda'?"),
    ]:
        assert main(argv) == EXIT_USAGE
        _, err = _lines(capsys)
        assert err[-1] == line and err[0].startswith("usage: ")


def test_options_are_spelled_in_full(capsys):
    assert main(["segment", "v.mp4", "--overwrit"]) == EXIT_USAGE
    assert "did you mean --overwrite?" in capsys.readouterr().err


# --- help ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_fits_a_screen(name):
    parser = PARSERS[(name,)]
    lines = parser.format_help().splitlines()
    assert len(lines) <= SHORT_HELP.get(name, MAX_HELP_LINES), (name, len(lines))
    assert all(len(line) <= 100 for line in lines)  # examples may run a little past 80
    hidden = parser.rare_actions()
    if hidden:
        assert "--help-all' lists every option" in parser.format_help()
        everything = full_help(parser)
        assert all(a.option_strings[0] in everything for a in hidden)
        assert not any(f"  {a.option_strings[0]} " in parser.format_help() for a in hidden)


@pytest.mark.parametrize("path", PARSERS, ids=_ids(PARSERS))
def test_required_options_are_marked(path):
    parser = PARSERS[path]
    text = " ".join(full_help(parser).split())
    for action in parser._actions:
        if action.option_strings and action.required:
            assert action.help.endswith("(required)"), (path, action.option_strings)
            assert "(required)" in text


@pytest.mark.parametrize("path", PARSERS, ids=_ids(PARSERS))
def test_help_groups_and_short_usage(path):
    parser = PARSERS[path]
    assert parser.format_usage().startswith(f"usage: endostream {' '.join(path)} [options]")
    for group in parser._action_groups:
        assert group.title, path


# --- list options -------------------------------------------------------------------------


@pytest.mark.parametrize("path", PARSERS, ids=_ids(PARSERS))
def test_list_options_take_several_values_the_same_way(path):
    for action in PARSERS[path]._actions:
        if not action.option_strings:
            continue
        assert type(action) is not argparse._AppendAction, (path, action.option_strings)
        if action.nargs in ("+", "*"):
            assert isinstance(action, argparse._ExtendAction), (path, action.option_strings)
            # The help says how to give several (--models: "one ... or two files").
            assert "several" in action.help or " two " in action.help, action.option_strings


def test_next_csv_takes_a_b_or_repeats(procedure, tmp_path, capsys):
    second = make_procedure(tmp_path / "second", name="second.mp4")
    runs = {"spaced": ["--csv", str(procedure.csv), str(second.csv)],
            "repeated": ["--csv", str(procedure.csv), "--csv", str(second.csv)]}
    for name, csv_args in runs.items():
        out = tmp_path / name
        assert main(["next", str(procedure.sections), str(second.sections), *csv_args,
                     "--out-dir", str(out), "--no-thumbnails"]) == 0, name
        stdout, _ = _lines(capsys)
        assert "procedure.mp4" in stdout or "second.mp4" in stdout
    assert (tmp_path / "spaced" / "next.csv").read_text() == \
        (tmp_path / "repeated" / "next.csv").read_text()


# --- what goes where ----------------------------------------------------------------------


def test_next_lists_on_stdout_by_recording_name_and_explains_score(procedure, tmp_path,
                                                                   capsys):
    out = tmp_path / "review"
    assert main(["next", str(procedure.sections), "--csv", str(procedure.csv), "--out-dir",
                 str(out)]) == 0
    stdout, err = _lines(capsys)
    assert "video 1" not in stdout
    listed = [line for line in stdout.splitlines() if line.lstrip()[:1].isdigit()]
    assert listed and all(" procedure.mp4 " in line for line in listed), stdout
    assert "score:" in stdout.splitlines()[0] and "0-2" in stdout.splitlines()[0]
    assert err[:2] == [err[0], f"wrote {out / 'next.json'}"]
    assert err[0].startswith(f"wrote {out / 'next.csv'}")
    assert all(line.startswith("wrote ") for line in err), err
    assert "score" in " ".join(full_help(PARSERS[("next",)]).split())


def test_path_in_report_advice_names_an_option_of_its_command():
    for name in ("segment", "report"):
        parser = PARSERS[(name,)]
        action = next(a for a in parser._actions if "--path-in-report" in a.option_strings)
        if "--no-player" not in _options(parser):
            assert "use --no-player" not in action.help and "endostream report" in action.help
        else:
            assert "--no-player" in action.help


def test_every_wrote_line_is_on_stderr_and_names_the_file(procedure, tmp_path, capsys):
    out = tmp_path / "out.vtt"
    assert main(["chapters", str(procedure.sections), "--out", str(out)]) == 0
    stdout, err = _lines(capsys)
    assert "wrote" not in stdout and err == [f"wrote {out} (4 chapters)"]
    assert os.path.exists(out)
