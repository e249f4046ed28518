"""What machine a benchmark ran on: CPU, cores, load, providers, GPU and library versions.

Figures from different machines, or from one machine under different load, do not
compare; this record travels with every result so that scripts can tell. The load
average at the start and the end of a run says whether something else shared the cores.

The load average lags by a minute, so each part of a run is also wrapped in a
:class:`CpuShare`, which reads how much CPU time *other* processes took while it ran
(``/proc/stat`` busy time minus this process's and its children's): a figure taken while
others used a sizeable share of the cores is slow, and the report says so.

>>> info = describe_machine()
>>> sorted(info)[:4]
['cores_logical', 'cores_usable', 'cpu_flags', 'cpu_model']
>>> with CpuShare() as share:
...     pass
>>> 0.0 <= (share.others or 0.0) <= 1.0
True
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose versions change the figures (looked up without importing them).
PACKAGES = ("endostream", "numpy", "opencv-python-headless", "opencv-python", "av",
            "onnxruntime-gpu", "onnxruntime", "torch", "torchvision")

#: CPU features that decide which kernels onnxruntime and OpenCV pick.
CPU_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile")

#: Share of the machine's CPU time taken by other processes during a measurement above
#: which that measurement is flagged as disturbed.
BUSY_OTHERS_SHARE = 0.1


class CpuShare:
    """Context manager: the share of all cores' time other processes used meanwhile.

    ``others`` is in [0, 1] (0: the machine was ours alone), ``None`` where ``/proc/stat``
    is missing. Counts this process and its waited-for children as ours. ``steal`` is the
    part of ``others`` that the hypervisor gave to other virtual machines (``/proc/stat``
    steal time): noise no process on this machine can be blamed for.
    """

    def __init__(self) -> None:
        self.others: float | None = None
        self.steal: float | None = None

    def __enter__(self) -> CpuShare:
        self._start = (time.monotonic(), _proc_stat(), _own_cpu_s())
        return self

    def __exit__(self, *exc: object) -> None:
        t0, stat0, own0 = self._start
        stat1 = _proc_stat()
        wall = time.monotonic() - t0
        if stat0 is None or stat1 is None or wall <= 0:
            return
        busy0, steal0, total0 = stat0
        busy1, steal1, total1 = stat1
        if total1 <= total0:
            return
        ours = _own_cpu_s() - own0
        cores = os.cpu_count() or 1
        # /proc/stat counts in clock ticks of all cores together; scale to seconds.
        busy_s = (busy1 - busy0) / (total1 - total0) * wall * cores
        self.others = round(min(1.0, max(0.0, (busy_s - ours) / (wall * cores))), 3)
        self.steal = round((steal1 - steal0) / (total1 - total0), 3)


def _proc_stat() -> tuple[int, int, int] | None:
    """(busy, steal, total) clock ticks of all cores since boot."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    fields += [0] * (8 - len(fields))
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user/nice
    return total - idle, fields[7], total


def _own_cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def describe_machine() -> dict[str, Any]:
    """CPU model, core counts, CPU flags, load, OS, Python, library versions, providers, GPU."""
    import onnxruntime as ort

    from endostream.inference.providers import default_threads, probe_gpu

    gpu = probe_gpu()
    flags = _cpu_flags()
    return {
        "cpu_model": _cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_usable": default_threads(),
        "cpu_flags": [f for f in CPU_FLAGS if f in flags],
        "memory_gb": _memory_gb(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": _versions(),
        "ffmpeg": _ffmpeg_versions(),
        "ort_providers_available": list(ort.get_available_providers()),
        "gpu": {"usable": gpu.usable, "devices": gpu.devices, "reason": gpu.reason,
                "names": _gpu_names() if gpu.usable else []},
        "loadavg_start": load_average(),
    }


def machine_line(machine: dict[str, Any]) -> str:
    """CPU, cores and the load at the start and end of a run, for its closing line.

    >>> machine_line({"cpu_model": "EPYC", "cores_logical": 2, "loadavg_start": [1.0],
    ...               "loadavg_end": [2.0]})
    'EPYC, 2 cores, load average [1.0] -> [2.0]'
    """
    return (f"{machine['cpu_model']}, {machine['cores_logical']} cores, load average "
            f"{machine['loadavg_start']} -> {machine.get('loadavg_end')}")


def write_run_json(path: Path, result: dict[str, Any], machine: dict[str, Any],
                   args: Any) -> None:
    """A run's figures with the machine and the command-line arguments it ran with."""
    path.write_text(json.dumps({**result, "machine": machine,
                                "args": {k: str(v) for k, v in vars(args).items()}},
                               indent=2))


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (``None`` where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def busy_warning(others: dict[str, float | None]) -> str | None:
    """A one-line warning naming the parts during which other processes used the CPU."""
    busy = {k: v for k, v in others.items() if v is not None and v > BUSY_OTHERS_SHARE}
    if not busy:
        return None
    parts = ", ".join(f"{k} {100 * v:.0f} %" for k, v in busy.items())
    return (f"other processes used the CPU during this run ({parts} of all cores): those "
            "figures are low and the ratios that use them less trustworthy; rerun on a quiet "
            "machine")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _memory_gb() -> float | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _ffmpeg_versions() -> dict[str, str]:
    try:
        import av

        return {k: ".".join(map(str, v)) for k, v in av.library_versions.items()}
    except (ImportError, AttributeError):
        return {}


def _gpu_names() -> list[str]:
    """GPU names from the NVIDIA driver's /proc entries (no extra packages needed)."""
    root = Path("/proc/driver/nvidia/gpus")
    names = []
    try:
        for info in sorted(root.glob("*/information")):
            for line in info.read_text().splitlines():
                if line.startswith("Model:"):
                    names.append(line.split(":", 1)[1].strip())
    except OSError:
        pass
    return names
