"""The manual (README.md, docs/, CHANGELOG.md) holds together as a reader meets it.

Every relative link leads to a file that exists and every ``#anchor`` to a heading of its
page (as GitHub makes anchors); the README stays a manual (at most 450 lines, install,
the demo and one's own video on the first screen) and speaks of the software, not of the
days and machines it was measured on; the architecture picture names every layer the
layering test knows, with review, corrections and dicom side by side. The commands
themselves are parsed in ``tests/test_quickstart.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_layering import ALLOWED

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "CHANGELOG.md", ROOT / "endostream" / "data" / "MODEL_CARD.md",
         *sorted((ROOT / "docs").rglob("*.md"))]
#: Pages other branches of issue 30 write (the CLI reference generated from the parsers,
#: the DICOM conformance statement): links to them are checked once they exist.
WRITTEN_ELSEWHERE = {ROOT / "docs" / "cli.md", ROOT / "docs" / "dicom-conformance.md"}


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation out, spaces to hyphens.

    >>> anchor("sections.json (schema `endostream.sections/1`)")
    'sectionsjson-schema-endostreamsections1'
    >>> anchor("Into the hospital record")
    'into-the-hospital-record'
    """
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    return {anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    found = re.findall(r"\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"", text)
    return [markdown or html for markdown, html in found]


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_every_relative_link_and_anchor_resolves(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            if dest not in WRITTEN_ELSEWHERE:
                broken.append(f"{target} (no such file)")
            continue
        if fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no heading #{fragment} in {dest.name})")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readme_is_a_manual_that_starts_with_what_a_newcomer_needs():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 450
    first_screen = "\n".join(lines[:40])
    for needed in ("## Quickstart", "pip install -e .", "endostream demo",
                   "## Segment your own video", "endostream segment procedure.mp4",
                   "'.[review]'"):
        assert needed in first_screen, needed


#: What a page about the software has no reason to say: a date (the CHANGELOG has them),
#: how loaded the measuring machine was, or when and by whom something was done.
CHATTER = re.compile(r"\b20\d\d-\d\d-\d\d\b|load average|\bnight\b|\bengineers?\b|"
                     r"\bsessions? of\b|\bthis VM\b", re.I)


@pytest.mark.parametrize("page", [README, *sorted((ROOT / "docs").rglob("*.md"))],
                         ids=_ids([README, *sorted((ROOT / "docs").rglob("*.md"))]))
def test_pages_speak_of_the_software_not_of_its_making(page):
    found = []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        # performance.md names the machine line each benchmark printed: its provenance
        if page.name == "performance.md" and line.startswith("Machine:"):
            continue
        if CHATTER.search(line):
            found.append(f"{number}: {line.strip()}")
    assert not found, f"{page.relative_to(ROOT)}:\n" + "\n".join(found)


def test_the_architecture_picture_shows_every_layer_and_the_floor():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    picture = re.search(r"```text\n(.*?)```", text, re.S).group(1)
    rows = picture.splitlines()
    for layer in ALLOWED:
        assert re.search(rf"\b{layer}\b", picture), f"{layer} is not in the picture"
    side_by_side = [r for r in rows if re.search(r"review\s.*corrections\s.*dicom", r)]
    assert side_by_side, "review, corrections and dicom are not on one row"
    # the procedure floor lies right below them, the commands right above
    below = [i for i, r in enumerate(rows) if re.search(r"\bprocedure\b", r)]
    above = [i for i, r in enumerate(rows) if re.search(r"\bcommands\b", r)]
    on = rows.index(side_by_side[0])
    assert above[0] < on < below[0]
    # each layer sits above everything it may import (rows count from the top)
    first_row = {layer: next(i for i, r in enumerate(rows) if re.search(rf"│ {layer}\b", r))
                 for layer in ALLOWED if layer not in ("export", "gui")}
    for layer, allowed in ALLOWED.items():
        for lower in allowed - {layer}:
            if layer in first_row and lower in first_row:
                assert first_row[layer] < first_row[lower], f"{layer} drawn below {lower}"
