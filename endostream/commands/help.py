"""Print a command's help with every option, or the whole CLI reference as Markdown.

'endostream help COMMAND [ACTION]' prints what 'endostream COMMAND --help-all' prints;
'endostream help --markdown' prints the CLI reference, docs/cli.md, which is generated
this way from the parsers themselves (the tests fail when docs/cli.md differs).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from endostream.commands.grammar import subparsers, suggest
from endostream.errors import UsageError

EXAMPLES = """\
examples:
  endostream help segment
  endostream help labelstudio export
  endostream help --markdown > docs/cli.md

exit codes: 0 done, 2 bad arguments
"""

#: The width the reference is written at (a terminal's, and the help-length test's).
COLUMNS = 80

#: The command that writes docs/cli.md.
GENERATE = "endostream help --markdown > docs/cli.md"

#: The README's exit code table, stated once more where the grammar is.
EXIT_CODES = (
    (0, "done"),
    (2, "bad arguments or input files (a sections file, per-frame CSV or list that is not "
        "what the command needs), an output that would replace an input, or an existing "
        "output without `--overwrite`"),
    (3, "the video is missing, unreadable or not a video (`labelstudio export`: or not at "
        "one fixed frame rate from 0)"),
    (4, "the model file is missing or breaks the model contract"),
    (5, "an output cannot be written"),
    (6, "decoding failed part way: what was analysed is written with `complete: false`"),
    (7, "a live source could not be opened or was lost"),
    (8, "an archive run finished, but some videos failed or are partial (listed in "
        "`archive.json`)"),
    (9, "a corrections file is refused (broken schema, sections that overlap or leave gaps, "
        "another video or model, labels the model does not know); nothing is written"),
    (10, "`dicom --send`: the archive could not be reached, refused the association, or did "
         "not store every file (the files stay in `--out-dir`)"),
    (130, "Ctrl+C or SIGTERM: what was analysed is written with `complete: false`"),
)

GRAMMAR = """\
## One grammar for every command

- **`--overwrite`** (alias `--force`) replaces existing outputs, read-only ones too (a
  replaced file keeps its permissions). Without it, an output that exists is refused
  before any work, in one line naming the flag (exit 2). Outputs are checked before a
  model is loaded or a frame decoded: an output that is an input or another output of the
  run is refused (exit 2); a directory or device in an output's place, or a folder that
  does not take new files, fails at once (exit 5).
- **Folders**: `--out` creates its missing parent folders, as `--out-dir` (and `--dataset`,
  `--dicom-out`) create theirs.
- **`-v`/`-vv`/`-q`** are accepted anywhere: before the command, after it, after a
  sub-action (`endostream labelstudio export ... -v`). `-v` logs more, `-vv` adds debug
  lines, FFmpeg's log and tracebacks for bugs; `-q` leaves out progress lines and
  summaries (errors, warnings, the demo model's notice and the files written still show).
- **List options** take several values either way: `--csv a.csv b.csv` or
  `--csv a.csv --csv b.csv` (and, where a value used to be a comma list, `A,B` still
  works). A list option takes every value up to the next option, so give positional
  arguments before it, or end the list with `--`.
- **Typos**: a mistyped command, option or choice shows that command's usage and one
  error line with the closest match (`did you mean --overwrite?`), exit 2. Options are
  spelled in full (no abbreviations).
- **Help**: `--help` shows the usual options in groups, fitting a screen; `--help-all`
  (or `endostream help COMMAND`) adds the rarely used ones. Required options say
  "(required)".
- **What goes where**: findings (`segment`'s and `demo`'s section tables, `next`'s list,
  `evaluate`'s metrics, `export`'s parity figures) go to stdout; messages, progress and one
  `wrote PATH` line per file written go to stderr, so `2>/dev/null` leaves the findings
  and `--out -` leaves the data.
- **Errors** are one line on stderr, `endostream: error: ...`, that says what to do, with
  the exit code of the table below; never a traceback (`-vv` shows one for a bug).
"""


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("topic", nargs="*", metavar="COMMAND",
                   help="a command, and an action of it (default: the list of commands)")
    p.add_argument("--markdown", action="store_true",
                   help="print the whole CLI reference as Markdown, as docs/cli.md holds it "
                        "(default: the help of COMMAND)")


def run(args: argparse.Namespace) -> int:
    root = args.root_parser
    if args.markdown:
        if args.topic:
            raise UsageError("--markdown prints the whole reference; give no COMMAND")
        sys.stdout.write(reference(root))
        return 0
    parser = root
    for word in args.topic:
        choices = subparsers(parser)
        if word not in choices:
            match = suggest(word, choices)
            hint = f"did you mean '{match}'?" if match else \
                f"'{parser.prog} --help' lists them"
            raise UsageError(f"'{parser.prog}' has no command '{word}'; {hint}")
        parser = choices[word]
    sys.stdout.write(full_help(parser))
    return 0


@contextmanager
def _columns(width: int) -> Iterator[None]:
    """argparse wraps at the terminal's width: fix it while the reference is written."""
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved


def full_help(parser: argparse.ArgumentParser) -> str:
    """The help with every option, as ``--help-all`` prints it."""
    saved = getattr(parser, "show_all", False)
    parser.show_all = True
    try:
        return parser.format_help()
    finally:
        parser.show_all = saved


def _walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    for sub in subparsers(parser).values():
        yield sub
        yield from _walk(sub)


def reference(root: argparse.ArgumentParser, width: int = COLUMNS) -> str:
    """docs/cli.md: the grammar once, the exit codes, then every command's full help."""
    lines = ["# Command-line reference", "",
             f"Generated from the parsers by `{GENERATE}` (edit the parsers, not this "
             "file: a test fails when it differs). `endostream COMMAND --help` shows the "
             "usual options, `--help-all` every one, as below.", "",
             GRAMMAR, "## Exit codes", "", "| code | meaning |", "|---|---|",
             *(f"| {code} | {meaning} |" for code, meaning in EXIT_CODES), "",
             "## Commands", "",
             "| command | what it does |", "|---|---|"]
    commands = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    for choice in commands._choices_actions:
        lines.append(f"| [`{choice.dest}`](#{choice.dest.replace(' ', '-')}) | {choice.help} |")
    lines.append("")
    with _columns(width):
        for parser in _walk(root):
            name = parser.prog.removeprefix("endostream ").strip()
            lines += [f"## {name}", "", "```text", full_help(parser).rstrip("\n"), "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
