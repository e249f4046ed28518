"""Which onnxruntime execution provider runs the model: auto | cpu | cuda | tensorrt.

``onnxruntime-gpu`` lists the CUDA and TensorRT providers as *available* on every machine,
GPU or not; asking for one that cannot start makes onnxruntime print a wall of red
errors before it falls back to the CPU. So ``auto`` first asks the NVIDIA driver itself
(``libcuda``: ``cuInit``, device count, driver CUDA version) and requests CUDA only when
a GPU is there; the attempt itself runs with onnxruntime's logger at *fatal*, and this
module checks which provider the session really got. ``cpu`` never touches the GPU
stack. An explicit ``cuda`` / ``tensorrt`` that cannot start is a :class:`UsageError`.

``auto`` picks CUDA, not TensorRT: TensorRT builds an engine for minutes on the first
load of each model and runs it in fp16, so it is opt-in (``--device tensorrt``); its
engines are cached under :data:`TRT_CACHE_DIR`. On a GPU, :class:`IoBindingRunner` runs the
session through IO binding.

>>> choice = choose_providers("cpu")
>>> choice.name, choice.ort_providers
('cpu', ('CPUExecutionProvider',))
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from endostream.errors import ModelError, UsageError
from endostream.inference.defaults import DEVICES

log = logging.getLogger(__name__)


#: onnxruntime log severities (0 verbose .. 4 fatal). Sessions log errors only; the
#: attempt to start a GPU provider logs nothing, since its failure is handled here.
ORT_LOG_ERROR = 3
ORT_LOG_FATAL = 4

#: TensorRT engine and timing caches: building an engine takes minutes, loading one
#: seconds. Override with ``ENDOSTREAM_TRT_CACHE``.
TRT_CACHE_DIR = Path(os.environ.get("ENDOSTREAM_TRT_CACHE", "~/.cache/endostream/trt")).expanduser()

#: TensorRT optimisation profile for the dynamic batch axis of ``frames``. One profile
#: covering 1..TRT_MAX_BATCH means no engine rebuild when the worker's batch size varies
#: (a partial batch at the end of a file, a live feed that forms small batches).
TRT_OPT_BATCH = 16
TRT_MAX_BATCH = 64

#: CUDA provider options. HEURISTIC conv-algorithm search because batch sizes vary from
#: batch to batch, and EXHAUSTIVE (the default) re-benchmarks every new input shape.
CUDA_OPTIONS: dict[str, Any] = {
    "device_id": 0,
    "cudnn_conv_algo_search": "HEURISTIC",
    "cudnn_conv_use_max_workspace": "1",
    "arena_extend_strategy": "kSameAsRequested",
    "do_copy_in_default_stream": "1",
}

_CUDA = "CUDAExecutionProvider"
_TRT = "TensorrtExecutionProvider"
_CPU = "CPUExecutionProvider"
_ORT_NAME = {_CPU: "cpu", _CUDA: "cuda", _TRT: "tensorrt"}


@dataclass(frozen=True)
class GpuStatus:
    """What the NVIDIA driver says; ``reason`` is one line either way."""

    usable: bool
    reason: str
    devices: int = 0


@dataclass(frozen=True)
class ProviderChoice:
    """The providers one session is created with.

    ``name`` is what the caller reports (``"cpu"``, ``"cuda"``, ``"tensorrt"``);
    ``explicit`` is False for ``auto``, where a GPU provider that fails to start falls
    back to the CPU instead of raising.
    """

    name: str
    ort_providers: tuple[Any, ...]
    explicit: bool = False
    reason: str = field(default="", compare=False)

    @property
    def on_gpu(self) -> bool:
        return self.name != "cpu"


CPU_CHOICE = ProviderChoice("cpu", (_CPU,), explicit=True, reason="CPU requested")


def default_threads() -> int:
    """Cores this process may run on (the CPU affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def quiet_ort_logging() -> None:
    """Let onnxruntime's default logger report errors only (no warning walls)."""
    ort.set_default_logger_severity(ORT_LOG_ERROR)


def session_options(threads: int | None = None, *, spinning: bool = False) -> ort.SessionOptions:
    """Session options for every endostream session.

    ``threads`` is the intra-op pool size (default: :func:`default_threads`). Spinning is
    off by default: spinning pool threads busy-wait between runs and fight the decoder
    thread (and a second session's pool) for the cores; on 2 cores that made two
    back-to-back sessions 2.5x slower (measured 2026-11).

    >>> session_options(2).intra_op_num_threads
    2
    """
    if threads is not None and threads < 1:
        raise UsageError(f"thread count must be at least 1 (got {threads}); "
                         "pass --threads 1 or more")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or default_threads()
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = ORT_LOG_ERROR
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    return so


@functools.cache
def probe_gpu() -> GpuStatus:
    """Ask the NVIDIA driver whether CUDA can start here; cached, prints nothing.

    Loads ``libcuda`` with ctypes (onnxruntime would load it anyway) and calls
    ``cuInit``, ``cuDeviceGetCount`` and ``cuDriverGetVersion``.
    """
    if _CUDA not in ort.get_available_providers():
        return GpuStatus(False, "this onnxruntime package has no CUDA provider "
                                "(install onnxruntime-gpu)")
    lib = _load_libcuda()
    if lib is None:
        return GpuStatus(False, "no NVIDIA driver (libcuda) found")
    rc = lib.cuInit(0)
    if rc != 0:
        return GpuStatus(False, f"the NVIDIA driver is installed but cuInit failed "
                                f"(CUDA error {rc})")
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return GpuStatus(False, "the NVIDIA driver sees no GPU (check CUDA_VISIBLE_DEVICES)")
    driver = ctypes.c_int(0)
    lib.cuDriverGetVersion(ctypes.byref(driver))
    needed = _ort_cuda_major()
    have = driver.value // 1000
    if needed and have and have < needed:
        return GpuStatus(
            False,
            f"the NVIDIA driver supports CUDA {have}.{driver.value % 1000 // 10} but "
            f"onnxruntime-gpu {ort.__version__} needs CUDA {needed}; update the driver",
            count.value,
        )
    return GpuStatus(True, f"{count.value} NVIDIA GPU(s), driver CUDA {have}", count.value)


def choose_providers(device: str = "auto", *, trt_cache_dir: Path | None = None) -> ProviderChoice:
    """Turn ``--device`` into the providers to request; nothing is loaded yet.

    ``auto`` gives CUDA when :func:`probe_gpu` finds a usable GPU, else the CPU. An
    explicit ``cuda``/``tensorrt`` without a usable GPU raises :class:`UsageError`.

    >>> choose_providers("auto").name in ("cpu", "cuda")
    True
    """
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; use one of: {', '.join(DEVICES)}")
    if device == "cpu":
        return CPU_CHOICE
    gpu = probe_gpu()
    if not gpu.usable:
        if device == "auto":
            log.info("running on the CPU: %s", gpu.reason)
            return ProviderChoice("cpu", (_CPU,), explicit=False, reason=gpu.reason)
        raise UsageError(
            f"{_DEVICE_TITLE[device]} was requested but no usable NVIDIA GPU/driver was found "
            f"({gpu.reason}); use --device cpu or auto"
        )
    cuda = (_CUDA, dict(CUDA_OPTIONS))
    if device == "tensorrt":
        if _TRT not in ort.get_available_providers():
            raise UsageError(
                "TensorRT was requested but this onnxruntime package has no TensorRT provider; "
                "use --device cuda or auto"
            )
        trt = (_TRT, _tensorrt_options(trt_cache_dir or TRT_CACHE_DIR))
        return ProviderChoice("tensorrt", (trt, cuda, _CPU), explicit=True, reason=gpu.reason)
    return ProviderChoice("cuda", (cuda, _CPU), explicit=device == "cuda", reason=gpu.reason)


def open_session(
    path: Path, choice: ProviderChoice, options: ort.SessionOptions
) -> tuple[ort.InferenceSession, ProviderChoice]:
    """Create a session with ``choice``; return it with the choice that actually started.

    Load errors (not ONNX, invalid graph) propagate as onnxruntime's exceptions; the
    caller (``model.py``) translates them. A GPU provider that fails to start is
    retried on the CPU when ``choice`` came from ``auto``, and raises
    :class:`UsageError` when it was asked for explicitly.
    """
    quiet_ort_logging()
    if not choice.on_gpu:
        return _session(path, options, choice.ort_providers), choice
    # The GPU attempt logs nothing: a provider that cannot start is reported below, in
    # one line, instead of onnxruntime's multi-line error wall.
    ort.set_default_logger_severity(ORT_LOG_FATAL)
    failure = ""
    session = None
    try:
        session = _session(path, options, choice.ort_providers)
    except Exception as e:  # noqa: BLE001 - provider registration errors have no common type
        failure = _first_line(e)
    finally:
        quiet_ort_logging()
    wanted = choice.ort_providers[0][0]
    started = session.get_providers()[0] if session is not None else None
    if started == wanted:
        return session, choice
    failure = _explain_provider_failure(wanted) or failure or f"{wanted} did not start"
    if choice.explicit:
        raise UsageError(
            f"{_DEVICE_TITLE[choice.name]} was requested but its provider could not start "
            f"({failure}); use --device cpu or auto"
        )
    log.warning("GPU provider could not start (%s); running on the CPU", failure)
    if session is None or started != _CPU:
        session = _session(path, options, (_CPU,))
    return session, ProviderChoice("cpu", (_CPU,), explicit=False, reason=failure)


def provider_name(session: ort.InferenceSession) -> str:
    """``"cpu"`` | ``"cuda"`` | ``"tensorrt"`` for the session's first provider."""
    return _ORT_NAME.get(session.get_providers()[0], session.get_providers()[0])


class IoBindingRunner:
    """Runs a one-input session through IO binding; what the GPU providers use.

    ``runner(batch) -> [outputs named in names]``. The input is copied into a device
    buffer kept per batch size, outputs come back to host memory in one copy each.

    ``session.run`` would allocate and free a device input for every batch; the worker's
    batches take only a few distinct sizes (full batches, a partial one at the end), so
    one buffer per size is reused. The host side is the worker's contiguous staging
    buffer; pinning it is not worth it at 150 KB per frame.
    """

    def __init__(self, session: ort.InferenceSession, names: list[str],
                 device: str = "cuda", device_id: int = 0):
        self._session = session
        self._input = session.get_inputs()[0].name
        self._names = names
        self._device = device
        self._device_id = device_id
        self._inputs: dict[tuple[int, ...], ort.OrtValue] = {}
        self._lock = threading.Lock()  # the buffers are shared state; run() is thread-safe
        # A failing run raises and the caller reports it in one line; onnxruntime's own
        # log line for the same failure would be a second one on stderr.
        self._run_options = ort.RunOptions()
        self._run_options.log_severity_level = ORT_LOG_FATAL

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        with self._lock:
            value = self._inputs.get(batch.shape)
            if value is None:
                value = ort.OrtValue.ortvalue_from_shape_and_type(
                    list(batch.shape), batch.dtype.type, self._device, self._device_id)
                self._inputs[batch.shape] = value
            value.update_inplace(batch)
            binding = self._session.io_binding()
            binding.bind_ortvalue_input(self._input, value)
            for name in self._names:
                binding.bind_output(name, "cpu")
            self._session.run_with_iobinding(binding, self._run_options)
            return binding.copy_outputs_to_cpu()


# --- helpers -------------------------------------------------------------------------

_DEVICE_TITLE = {"cuda": "CUDA", "tensorrt": "TensorRT", "auto": "a GPU"}


def _session(path: Path, options: ort.SessionOptions,
             providers: tuple[Any, ...]) -> ort.InferenceSession:
    # enable_fallback=0: onnxruntime's own fallback print()s an "EP Error" banner to
    # stdout and silently retries; the fallback policy lives in open_session instead.
    return ort.InferenceSession(
        os.fspath(path), options, providers=list(providers), enable_fallback=0
    )


def _tensorrt_options(cache_dir: Path) -> dict[str, Any]:
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelError(
            f"cannot create the TensorRT engine cache {str(cache_dir)!r} ({e.strerror}); "
            "set ENDOSTREAM_TRT_CACHE to a writable directory"
        ) from e
    shape = "frames:{}x224x224x3"
    return {
        "device_id": 0,
        "trt_fp16_enable": True,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir),
        "trt_max_workspace_size": 2 << 30,
        "trt_profile_min_shapes": shape.format(1),
        "trt_profile_opt_shapes": shape.format(TRT_OPT_BATCH),
        "trt_profile_max_shapes": shape.format(TRT_MAX_BATCH),
    }


def _load_libcuda() -> ctypes.CDLL | None:
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    found = ctypes.util.find_library("cuda")
    if found:
        names.append(found)
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def _ort_cuda_major() -> int | None:
    try:
        return int(str(getattr(ort, "cuda_version", "") or "").split(".")[0])
    except ValueError:
        return None


def _explain_provider_failure(provider: str) -> str:
    """Why a provider library does not load, from the dynamic loader ("" if it loads).

    Loads the library the way onnxruntime does (the shared bridge first, globally) and
    returns the loader's message, typically the missing CUDA/cuDNN/TensorRT library.
    Runs only after a provider failed, to turn that into one actionable line.
    """
    lib, needs = {
        _CUDA: ("onnxruntime_providers_cuda",
                f"CUDA {getattr(ort, 'cuda_version', '')} and cuDNN 9"),
        _TRT: ("onnxruntime_providers_tensorrt", "TensorRT 10, CUDA and cuDNN 9"),
    }.get(provider, (None, ""))
    if lib is None or sys.platform == "win32":
        return ""
    capi = Path(ort.__file__).parent / "capi"
    try:
        ctypes.CDLL(str(capi / "libonnxruntime_providers_shared.so"), mode=ctypes.RTLD_GLOBAL)
        ctypes.CDLL(str(capi / f"lib{lib}.so"))
    except OSError as e:
        return f"{_first_line(e)}; install the {needs} libraries"
    return ""


def ort_error_text(e: BaseException) -> str:
    """The sentence that matters in an onnxruntime exception, on one line.

    Drops ``[ONNXRuntimeError] : 7 : INVALID_PROTOBUF :``, ``Load model from X failed:``
    and the C++ source location that onnxruntime puts in front of the actual reason.

    >>> ort_error_text(RuntimeError("[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : "
    ...                             "Load model from m.onnx failed:Protobuf parsing failed."))
    'Protobuf parsing failed.'
    >>> ort_error_text(RuntimeError("Error while running Add node. Name:'' Status Message: "
    ...                             "/src/ops.h:563 void f(long) a == 1 was false. 3 by 4"))
    'Error while running Add node. 3 by 4'
    """
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    for pattern in _ORT_NOISE:
        line = pattern.sub("", line, count=1)
    for pattern in _ORT_INNER_NOISE:
        line = pattern.sub(" ", line)
    return " ".join(line.split()) or type(e).__name__


_first_line = ort_error_text

#: Prefixes onnxruntime puts before the reason a user needs to read.
_ORT_NOISE = (
    re.compile(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*"),
    re.compile(r"^Load model from .*? failed:\s*"),
    re.compile(r"^\S+\.(?:cc|h|cpp):\d+\s+(?:[^()]*\([^()]*\)\s*)?"),
)
#: The same inside a message: a node's name, and the C++ location and failed assertion
#: that come before the reason in "Status Message: ...".
_ORT_INNER_NOISE = (
    re.compile(r"\s*Name:'[^']*'\s*Status Message:\s*"),
    re.compile(r"\s*\S+\.(?:cc|h|cpp):\d+\s+[^()]*\([^()]*\)(?:\s*const)?"
               r"(?:\s[^.]*? was false\.)?\s*"),
)
