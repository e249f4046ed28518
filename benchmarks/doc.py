"""A benchmark writes its own figures into ``docs/performance.md``.

The page holds one marked block per benchmark run it shows::

    <!-- benchmark:bench -->
    ...
    <!-- /benchmark:bench -->

``--write-docs [NAME]`` (default: the script's stem, ``bench``, ``soak``, ``archive``)
replaces that block, at the end of a run, with the command that ran, the machine line and
the Markdown the run printed; nothing outside the markers changes. A figure on the page
then always names the command and the machine that produced it. The run's date stays in
its JSON: the page shows the current figures, not their history.

>>> page = "# Performance\\n<!-- benchmark:x -->\\nold\\n<!-- /benchmark:x -->\\nend\\n"
>>> print(replace_block(page, "x", "new"), end="")
# Performance
<!-- benchmark:x -->
new
<!-- /benchmark:x -->
end
>>> command_line("benchmarks", ["--quick", "--write-docs", "--json", "b.json"])
'python -m benchmarks --quick'
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from endostream.errors import UsageError
from endostream.output.atomic import write_text_atomic

from .machine import machine_line

#: The page the blocks live in.
PERFORMANCE = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
#: Marks the block default (the script's stem) until the run knows its stem.
_STEM = "-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--write-docs [NAME]`` and ``--docs-file FILE`` on a benchmark script's parser."""
    parser.add_argument("--write-docs", nargs="?", const=_STEM, default=None, metavar="NAME",
                        help="at the end, replace the block <!-- benchmark:NAME --> of "
                             "--docs-file with this run's tables, command and machine line "
                             "(NAME default: the script's, e.g. bench)")
    parser.add_argument("--docs-file", type=Path, default=PERFORMANCE, metavar="FILE",
                        help="the page --write-docs writes into (default: docs/performance.md)")


def markers(name: str) -> tuple[str, str]:
    """The opening and closing marker of block ``name``."""
    return f"<!-- benchmark:{name} -->", f"<!-- /benchmark:{name} -->"


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the content between block ``name``'s markers replaced by ``body``.

    Raises :class:`UsageError` when the page does not hold the block exactly once.
    """
    start, end = markers(name)
    if text.count(start) != 1 or text.count(end) != 1 or text.index(end) < text.index(start):
        raise UsageError(f"the page has no block '{name}' (one '{start}' followed by one "
                         f"'{end}'); add the markers where its figures belong")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body.strip()}\n{end}{tail}"


#: Options that only say where a run writes (left out of the command a page shows).
_WHERE_OPTIONS = ("--write-docs", "--docs-file", "--json", "--work")


def command_line(prog: str, argv: Sequence[str]) -> str:
    """The command that ran, without the options that only decide where its figures and
    files go (:data:`_WHERE_OPTIONS`): a reader reruns it as shown."""
    kept: list[str] = []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
            if not arg.startswith("-"):
                continue
        name, eq, _ = arg.partition("=")
        if name in _WHERE_OPTIONS:
            skip_value = not eq  # "--json out.json": the next argument is its value
            continue
        kept.append(arg)
    return shlex.join(["python", "-m", prog, *kept])


def block_body(markdown: str, command: str, machine: str) -> str:
    """The block: the command, the machine line, then what the run printed (its own
    ``##`` title left out: the page has its headings)."""
    printed = "\n".join(line for line in markdown.strip().splitlines()
                        if not line.startswith("## ")).strip()
    return "\n".join(["```sh", command, "```", "", f"Machine: {machine}.", "",
                      printed]).strip()


def write_docs(page: Path, name: str, markdown: str, command: str,
               machine: dict[str, Any]) -> None:
    """Replace block ``name`` of ``page`` with this run's figures (atomically)."""
    try:
        text = page.read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read {page} for --write-docs ({e.strerror}); give "
                         "--docs-file") from e
    write_text_atomic(page, replace_block(text, name, block_body(markdown, command,
                                                                 machine_line(machine))),
                      hint="give another --docs-file")


def after_run(prog: str, stem: str, args: argparse.Namespace, doc: dict[str, Any],
              markdown: str) -> Path | None:
    """Called by the script frame after a run: writes the block when ``--write-docs`` asked."""
    name = getattr(args, "write_docs", None)
    if name is None:
        return None
    name = stem if name == _STEM else name
    write_docs(args.docs_file, name, markdown, command_line(prog, args.argv), doc["machine"])
    return args.docs_file
