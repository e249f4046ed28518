"""Print what this installation runs on: library versions, FFmpeg, providers, GPU.

Paste the output into a bug report. Each library is named with its installed version,
checked against the range endostream declares for it (``setup.cfg``); a library outside
that range is marked, since the suite has not passed with it. Versions are read from the
installed package metadata, so the optional heavy libraries (torch, PyQt5, Ray) are not
imported; PyAV is asked for its FFmpeg libraries and onnxruntime for its providers.
``endostream --version`` prints the same.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
from dataclasses import asdict, dataclass
from importlib import metadata

from endostream import __version__

EXAMPLES = """\
examples:
  endostream doctor            # versions, FFmpeg libraries, onnxruntime providers, GPU
  endostream doctor --json     # the same as one JSON object

exit codes: 0 done (also when a library is missing or outside its range: it is reported)
"""

#: (distribution, what it is for), in the order a bug report wants them. The first names
#: are the core; the rest come with extras.
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("numpy", "core"),
    ("opencv-python-headless", "core"),
    ("av", "core: PyAV, decoding"),
    ("onnxruntime-gpu", "core: inference"),
    ("onnxruntime", "core: inference (CPU-only package)"),
    ("torch", "export extra: training, export"),
    ("torchvision", "export extra"),
    ("onnx", "export extra"),
    ("PyQt5", "gui extra: live window"),
    ("matplotlib", "review extra: timeline pictures"),
    ("jinja2", "review extra: HTML report"),
    ("ray", "cluster extra: segment --engine ray"),
)


@dataclass(frozen=True)
class Library:
    name: str
    role: str
    version: str | None  # None: not installed
    wanted: str  # the declared range, "" when endostream declares none
    in_range: bool | None  # None: not installed or nothing declared


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of text (default: text)")


def run(args: argparse.Namespace) -> int:
    report = collect()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def collect() -> dict:
    """Everything ``doctor`` prints, as plain data."""
    wanted = declared_ranges()
    libraries = []
    for name, role in LIBRARIES:
        version = _installed(name)
        if version is None and name == "onnxruntime" and _installed("onnxruntime-gpu"):
            continue  # the GPU package provides the module; the CPU one is not needed
        spec = wanted.get(_key(name), "")
        libraries.append(Library(name, role, version, spec,
                                 None if version is None or not spec
                                 else satisfies(version, spec)))
    return {
        "endostream": __version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": f"{platform.system()} {platform.machine()}",
        "libraries": [asdict(lib) for lib in libraries],
        "ffmpeg": _ffmpeg(),
        "onnxruntime": _onnxruntime(),
    }


def format_report(report: dict) -> str:
    lines = [f"endostream {report['endostream']}",
             f"Python {report['python']} on {report['platform']}"]
    for lib in report["libraries"]:
        if lib["version"] is None:
            state = "not installed"
        else:
            state = lib["version"]
            if lib["in_range"] is False:
                state += f"  << outside endostream's range {lib['wanted']}"
        lines.append(f"  {lib['name']:<24} {state:<14} ({lib['role']})")
    ff = report["ffmpeg"]
    lines.append("FFmpeg (through PyAV): " + (", ".join(f"{k} {v}" for k, v in ff.items())
                                              if ff else "unknown"))
    ort = report["onnxruntime"]
    lines.append(f"onnxruntime providers: {', '.join(ort['providers']) or 'none'}")
    lines.append(f"GPU: {ort['gpu']}")
    return "\n".join(lines)


def declared_ranges() -> dict[str, str]:
    """Normalised distribution name → version specifier, from endostream's own metadata
    (the extras included; the first declaration of a name wins)."""
    try:
        requires = metadata.requires("endostream") or []
    except metadata.PackageNotFoundError:  # running from a source tree without install
        return {}
    out: dict[str, str] = {}
    for req in requires:
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*([^;]*)", req)
        if m and m.group(2).strip():
            out.setdefault(_key(m.group(1)), m.group(2).strip().replace(" ", ""))
    return out


def satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` meets a comma-separated specifier of ``>=``, ``<``, ``==``,
    ``<=``, ``>``, ``!=`` clauses (release numbers compared; pre/post tags ignored).

    >>> satisfies("5.1.0.95", ">=4.8"), satisfies("4.7.0", ">=4.8"), satisfies("2.0", "<2,>=1")
    (True, False, False)
    """
    have = _release(version)
    for clause in filter(None, spec.split(",")):
        m = re.match(r"(>=|<=|==|!=|>|<|~=)(.+)", clause)
        if not m:
            continue
        op, want = m.group(1), _release(m.group(2))
        width = max(len(have), len(want))
        a = have + (0,) * (width - len(have))
        b = want + (0,) * (width - len(want))
        ok = {">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b, "!=": a != b,
              "==": a[:len(want)] == want, "~=": a >= b and a[:len(want) - 1] == want[:-1]}[op]
        if not ok:
            return False
    return True


def _release(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.strip().split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _ffmpeg() -> dict[str, str]:
    try:
        import av
    except ImportError:  # pragma: no cover - av is a core dependency
        return {}
    versions = getattr(av, "library_versions", {}) or {}
    return {name: ".".join(str(n) for n in v) for name, v in sorted(versions.items())
            if name in ("libavcodec", "libavformat", "libavutil", "libswscale")}


def _onnxruntime() -> dict:
    try:
        import onnxruntime as ort

        from endostream.inference.providers import probe_gpu
    except ImportError as e:  # pragma: no cover - onnxruntime is a core dependency
        return {"version": None, "providers": [], "gpu": f"onnxruntime not importable ({e})"}
    status = probe_gpu()
    gpu = (f"usable: {status.reason}" if status.usable
           else f"not used: {status.reason}")
    return {"version": ort.__version__,
            "providers": [p.removesuffix("ExecutionProvider")
                          for p in ort.get_available_providers()],
            "gpu": gpu}
