"""One grammar for every command line: what ``endostream.cli`` applies to each parser.

Every command and sub-action (``labelstudio export``) gets the same:

- ``-v``/``-vv`` and ``-q`` anywhere: before the command, after it, after a sub-action;
  the counts given at each level add up (:func:`settle`).
- a mistyped option or command shows that command's usage and one error line with the
  closest match (``did you mean --overwrite?``), exit 2 (:class:`Parser`).
- ``--help`` fits a screen: options sit in argument groups (:func:`arrange`), rarely
  used ones are left out of ``--help`` and shown by ``--help-all`` (and in the CLI
  reference, docs/cli.md), required options say "(required)" (:func:`finish`).

What a command writes follows one policy too (:mod:`endostream.output.guard`): an
existing output is replaced only with ``--overwrite``, and missing parent folders of an
output are created, as ``--out-dir`` creates its folder.

>>> p = Parser(prog="endostream demo")
>>> _ = p.add_argument("--overwrite", action="store_true", help="replace (default: no)")
>>> finish(p, depth=1)
>>> settle(p.parse_args(["-vv", "-q"])).verbose
2
>>> suggest("--overwrit", ["--overwrite", "--out"])
'--overwrite'
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from endostream.errors import EXIT_USAGE

#: How a list option takes several values: ``--csv a b`` and ``--csv a --csv b`` alike.
LIST = {"action": "extend", "nargs": "+"}

#: Said once in each list option's help.
LIST_HELP = "(several: --opt A B or --opt A --opt B)"

_VERBOSE = "_verbose_"
_QUIET = "_quiet_"


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``, if one is close enough to be a typo (options are
    compared without their dashes, which every one of them shares).

    >>> suggest("--bogus", ["--out", "--overwrite"]) is None
    True
    """
    by_name = {c.lstrip("-"): c for c in candidates}
    matches = difflib.get_close_matches(word.lstrip("-"), list(by_name), n=1, cutoff=0.6)
    return by_name[matches[0]] if matches else None


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples as written; options wrapped at the terminal's width."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that refuses leftovers itself (so the error shows this
    command's usage, not the top level's), suggests the closest option or choice, and
    hides rarely used options from ``--help`` (``--help-all`` shows them)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        kwargs.setdefault("add_help", False)
        # Options are spelled in full: an abbreviation that works today would break the
        # day an option sharing its start is added, and a typo gets a suggestion instead.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.add_argument("-h", "--help", action="help", help="show this help and exit")
        #: True while ``--help-all`` or the reference formats this parser's help.
        self.show_all = False

    # --- errors ------------------------------------------------------------------------

    def parse_known_args(self, args=None, namespace=None):
        if args is not None and not subparsers(self):
            self._refuse_unknown_options(args)
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognized(extras))
        return namespace, extras

    def _refuse_unknown_options(self, args: Sequence[str]) -> None:
        """A mistyped long option first: argparse would otherwise report the required
        arguments it then misses, and never the typo."""
        for arg in args:
            if arg == "--":
                return
            if arg.startswith("--") and arg.split("=", 1)[0] not in self._option_string_actions:
                self.error(self._unrecognized([arg]))

    def _unrecognized(self, extras: Sequence[str]) -> str:
        first = extras[0]
        if first.startswith("-") and len(first) > 1:
            name = first.split("=", 1)[0]
            options = [o for a in self._actions for o in a.option_strings]
            match = suggest(name, options)
            hint = f"; did you mean {match}?" if match else \
                f"; '{self.prog} --help-all' lists every option"
            return f"unrecognized option {name}{hint}"
        return f"unexpected argument '{first}'; '{self.prog} --help' shows what it takes"

    def _check_value(self, action, value):
        if action.choices is not None and value not in action.choices:
            choices = [str(c) for c in action.choices]
            match = suggest(str(value), choices)
            hint = f"did you mean '{match}'?" if match else f"choose from {', '.join(choices)}"
            raise argparse.ArgumentError(action, f"invalid choice: '{value}'; {hint}")
        super()._check_value(action, value)

    def error(self, message: str):
        """Usage, then one line: ``endostream: error: segment: ...``; exit 2."""
        self.print_usage(sys.stderr)
        command = self.prog.removeprefix("endostream").strip()
        where = f"{command}: " if command else ""
        self.exit(EXIT_USAGE, f"endostream: error: {where}{message}\n")

    # --- help ----------------------------------------------------------------------------

    def rare_actions(self) -> list[argparse.Action]:
        return [a for a in self._actions if getattr(a, "rare", False)]

    @contextmanager
    def _hiding(self) -> Iterator[int]:
        hidden = [] if self.show_all else self.rare_actions()
        saved = [(a, a.help) for a in hidden]
        for a in hidden:
            a.help = argparse.SUPPRESS
        try:
            yield len(hidden)
        finally:
            for a, text in saved:
                a.help = text

    def format_usage(self) -> str:
        with self._hiding():
            return super().format_usage()

    def format_help(self) -> str:
        epilog = self.epilog
        with self._hiding() as hidden:
            if hidden:
                note = (f"{hidden} rarely used option{'s' if hidden > 1 else ''} not shown: "
                        f"'{self.prog} --help-all' lists every option")
                self.epilog = f"{note}\n\n{epilog}" if epilog else note
            try:
                return super().format_help()
            finally:
                self.epilog = epilog


class _HelpAllAction(argparse._HelpAction):
    """``--help-all``: the help with the rarely used options too."""

    def __call__(self, parser, namespace, values, option_string=None):
        parser.show_all = True
        parser.print_help()
        parser.exit()


def arrange(parser: argparse.ArgumentParser, groups: Mapping[str, Sequence[str]] = {},
            rare: Iterable[str] = ()) -> None:
    """Put options into titled argument groups for ``--help`` (by an option string of
    each, in the order given; a title that exists is reused) and mark the ``rare`` ones,
    which ``--help`` leaves out and ``--help-all`` shows. Parsing is unchanged."""
    by_option = {o: a for a in parser._actions for o in a.option_strings}
    by_title = {g.title: g for g in parser._action_groups}
    for title, options in groups.items():
        group = by_title.get(title) or parser.add_argument_group(title)
        by_title[title] = group
        for option in options:
            action = by_option[option]
            for g in parser._action_groups:
                if action in g._group_actions:
                    g._group_actions.remove(action)
            group._group_actions.append(action)
    for option in rare:
        by_option[option].rare = True


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-commands (or sub-actions) of ``parser``, by name; empty for a leaf."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _usage(parser: argparse.ArgumentParser) -> str:
    """``%(prog)s [options] VIDEO [VIDEO ...]``: the positionals and the required options;
    every other option is listed (grouped) below."""
    words = ["%(prog)s", "[options]"]
    for action in parser._actions:
        if action.option_strings:
            if action.required:
                metavar = action.metavar or action.dest.upper()
                words.append(f"{action.option_strings[0]} {metavar}")
            continue
        if isinstance(action, argparse._SubParsersAction):
            words.append(f"{action.metavar or 'ACTION'} ...")
            continue
        name = action.metavar or action.dest
        words.append({"*": f"[{name} ...]", "+": f"{name} [{name} ...]",
                      "?": f"[{name}]"}.get(action.nargs, name))
    return " ".join(words)


def finish(parser: argparse.ArgumentParser, *, depth: int = 0) -> None:
    """Apply the grammar to ``parser`` and its sub-parsers, after their options are in:
    ``-v``/``-q`` and ``--help-all`` on each, "(required)" in each required option's help,
    a short usage line."""
    for action in parser._actions:
        if action.option_strings and action.required and action.help \
                and "(required)" not in action.help:
            action.help += " (required)"
    parser.add_argument("--help-all", action=_HelpAllAction,
                        help="show every option, the rarely used too")
    parser.add_argument("-v", "--verbose", action="count", default=0, dest=f"{_VERBOSE}{depth}",
                        help="more log output (-vv: debug, with tracebacks)")
    parser.add_argument("-q", "--quiet", action="count", default=0, dest=f"{_QUIET}{depth}",
                        help="less output: no progress line or summary")
    if depth > 0:
        parser.usage = _usage(parser)
    for sub in subparsers(parser).values():
        finish(sub, depth=depth + 1)


def settle(args: argparse.Namespace) -> argparse.Namespace:
    """Add up ``-v`` and ``-q`` given at each level into ``args.verbose`` (0-2) and
    ``args.quiet`` (a bool), the two names commands read."""
    counts = vars(args)
    verbose = sum(v for k, v in counts.items() if k.startswith(_VERBOSE) and v)
    quiet = sum(v for k, v in counts.items() if k.startswith(_QUIET) and v)
    args.verbose = min(verbose, 2)
    args.quiet = bool(quiet)
    return args
