"""Batch sizes and device choices: defined once, used by the pipelines and the help texts.

Every command's ``--batch`` and ``--device`` help is built from these names, so the help
cannot state another default than the code uses. The measurements behind the numbers are
in docs/notes/batching.md.

>>> default_batch("cpu"), default_batch("cuda"), LIVE_BATCH
(8, 32, 1)
>>> batch_help()
'frames per inference batch (default: 8 on the CPU, 32 on a GPU)'
"""

from __future__ import annotations

from endostream.errors import UsageError

#: Frames per inference batch on the CPU. On two cores batches 4-32 cost the same per frame
#: within the machine's noise (docs/notes/batching.md), but onnxruntime's arena keeps the
#: largest batch's activations: 8 holds about 570 MB where 16 holds 990 MB (2026-11).
CPU_BATCH = 8

#: Frames per inference batch on a GPU: keeps the device busy between the host's batches.
GPU_BATCH = 32

#: Frames per batch live. A frame waits for the run in progress, then for its own batch,
#: so latency is about two batch run times: batches of 1 keep it lowest
#: (docs/notes/batching.md; batch 1 p99 about 100 ms, batch 4 about 360 ms on two cores, 2026-11).
LIVE_BATCH = 1

#: ``--device`` choices: ``auto`` takes a GPU only where one can really be used.
DEVICES = ("auto", "cpu", "cuda", "tensorrt")
DEFAULT_DEVICE = "auto"


def default_batch(provider: str) -> int:
    """The batch size a run uses when none is given, for the classifier's provider."""
    return CPU_BATCH if provider == "cpu" else GPU_BATCH


def check_batch(batch_size: int | None) -> None:
    """The one check of a batch size (``None``: the default is used): at least 1.

    >>> check_batch(0)
    Traceback (most recent call last):
    ...
    endostream.errors.UsageError: --batch must be at least 1, got 0
    """
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch must be at least 1, got {batch_size}")


def batch_help() -> str:
    """The ``--batch`` help text of the offline commands."""
    return f"frames per inference batch (default: {CPU_BATCH} on the CPU, {GPU_BATCH} on a GPU)"
