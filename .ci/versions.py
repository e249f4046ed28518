"""The exact versions endostream's test suite ran with, and how they differ from the lock.

    python .ci/versions.py lock > constraints/lock.txt   # after a green run
    python .ci/versions.py diff constraints/lock.txt      # what changed since that run
    python .ci/versions.py diff constraints/floors.txt --listed

``lock`` prints ``name==version`` for every distribution endostream[all] pulls in
(its requirements, followed recursively through the installed metadata), so the file
pins what the suite passed with and nothing that merely happened to be installed. ``diff``
prints one line per library whose installed version differs from the lock, naming both
versions: when a new release breaks the suite, CI's log says which one. Run inside the
environment under test; needs only the standard library.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

ROOT = "endostream"


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _applies(marker: str, extras: list[str]) -> bool:
    """Whether a requirement's environment marker holds here for any of ``extras``
    (endostream's: all of them, since CI installs ``[all]``; a dependency's: none)."""
    if not marker:
        return True
    from pip._vendor.packaging.markers import Marker  # pip is there wherever CI runs

    return any(Marker(marker).evaluate({"extra": e}) for e in extras or [""])


def closure() -> dict[str, str]:
    """Normalised name → installed version for endostream[all] and everything below it."""
    seen: dict[str, str] = {}
    todo = [(ROOT, True)]
    while todo:
        name, is_root = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = _key(dist.metadata["Name"])
        if key in seen:
            continue
        seen[key] = dist.version
        for req in dist.requires or []:
            m = re.match(r"\s*([A-Za-z0-9_.\-]+)[^;]*(?:;\s*(.*))?", req)
            if not m:
                continue
            extras = (dist.metadata.get_all("Provides-Extra") or []) if is_root else []
            if _applies((m.group(2) or "").strip(), extras):
                todo.append((m.group(1), False))
    seen.pop(_key(ROOT), None)
    return dict(sorted(seen.items()))


def read_lock(path: str) -> dict[str, str]:
    out = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[_key(name)] = version.strip()
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["lock"]:
        print("# The exact versions endostream's suite last passed with in CI (newest pass).")
        print("# pip install -e '.[all]' -c constraints/lock.txt")
        print(f"# Python {sys.version.split()[0]}; regenerate: python .ci/versions.py lock")
        for name, version in closure().items():
            print(f"{name}=={version}")
        return 0
    if argv[:1] == ["diff"] and len(argv) in (2, 3):
        # --listed: only the names the file pins (the floors pin the direct dependencies
        # alone; everything below them is whatever pip chose)
        lock, have = read_lock(argv[1]), closure()
        names = [n for n in have if n in lock] if "--listed" in argv[2:] else list(have)
        changed = [(n, lock.get(n), have[n]) for n in names if lock.get(n) != have[n]]
        for name, old, new in changed:
            print(f"  {name} {new} (in {argv[1]}: {old or 'absent'})")
        if not changed:
            print(f"  every library is at the version in {argv[1]}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
