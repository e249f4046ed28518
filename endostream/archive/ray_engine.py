"""The Ray engine: the archive's videos spread over the workers of a Ray cluster.

Each worker is a Ray *actor* (:class:`SegmentWorker`) that loads the model once, when it
starts, and keeps it for every video it is given; the driver hands each idle worker the
next video, waits for whichever finishes first (``ray.wait``) and writes that video's
results and the summary at once. Actors rather than Ray Data ``map_batches``: the unit of
work is a whole video whose frames must reach one segmenter in order, decoding is
sequential within a video, and a video's outcome must come back to the driver as soon as
it is done (Ray Data would stream frames between operators and re-assemble them, and
batch outcomes at its own pace).

Resources follow ``--device``: on GPU nodes (``--device cuda``/``tensorrt``, or ``auto``
where the cluster has GPUs) one GPU per worker; every worker gets ``--threads`` CPUs
(default :data:`DEFAULT_CPUS_PER_WORKER`, on GPU nodes
:data:`DEFAULT_CPUS_PER_GPU_WORKER`) for decoding and, on the CPU, inference, and
its onnxruntime and OpenCV use exactly that many threads, so workers never oversubscribe
a node. Inputs and the model
are opened by path on the worker's node: every node must see them at the same path (a
shared filesystem). Workers never write files; only the driver does.

A worker process that dies mid-video (OOM killer, a node lost) is restarted by Ray and
the video is run again (``max_restarts`` / ``max_task_retries`` =
:data:`MAX_RETRIES`); a video that still kills its worker after that is reported as failed
and the run goes on.

>>> engine = RayEngine(ModelSpec(("/shared/m.onnx",)), SegmentOptions())  # doctest: +SKIP
>>> for outcome in engine.process(jobs):  # doctest: +SKIP
...     print(outcome.job.name, outcome.status, outcome.worker)
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cv2
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from endostream.archive.inputs import ArchiveJob
from endostream.archive.local import ModelSpec
from endostream.archive.outcome import VideoOutcome, analyse_video
from endostream.errors import EXIT_INTERNAL, EXIT_USAGE, EndostreamError, ModelError, UsageError
from endostream.inference.classifier import Classifier
from endostream.pipeline.offline import SegmentOptions

#: CPUs (and inference threads) per CPU worker when --threads is not given. One: on a
#: 2-vCPU VM, two 1-CPU workers (two videos at once) finished an archive in 0.53 of the
#: local engine's time, one 2-CPU worker in 0.995 (benchmarks.archive): whole videos in
#: parallel need no thread synchronisation. Each worker holds its own model (about
#: 0.6 GB on the CPU at batch 8); pass --threads N for fewer, wider workers.
DEFAULT_CPUS_PER_WORKER = 1
#: CPUs per GPU worker: decoding every frame stays on the CPU.
DEFAULT_CPUS_PER_GPU_WORKER = 2
#: How often a dead worker is restarted and its video retried before the video is failed.
MAX_RETRIES = 2
#: Seconds between looks at Ctrl+C while waiting for results.
POLL_S = 0.5
#: Seconds the workers may take to start and load the model (a busy cluster may not have
#: the CPUs or GPUs free; better a clear error than a run that waits forever).
START_TIMEOUT_S = 600.0
#: Seconds the workers get to hand back their partial results after Ctrl+C.
STOP_TIMEOUT_S = 30.0
_GPU_DEVICES = ("cuda", "tensorrt")


@ray.remote(max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES, max_concurrency=2)
class SegmentWorker:
    """One model, loaded once, analysing one video at a time.

    ``max_concurrency=2`` leaves a second thread for :meth:`stop` and :meth:`status`
    while :meth:`analyse` runs; the driver never gives a worker two videos at once.
    """

    def __init__(self, model: ModelSpec, threads: int | None):
        if threads:
            cv2.setNumThreads(threads)
        self._stop = threading.Event()
        self._video: str | None = None
        self._analysed = 0
        self.error: tuple[int, str] | None = None
        self.classifier: Classifier | None = None
        try:
            self.classifier = model.load(threads=threads)
        except EndostreamError as e:  # reported by ready(), so the driver can say why
            self.error = (e.exit_code, str(e))

    def ready(self) -> tuple[int, str] | None:
        """``None`` once the model is loaded; else ``(exit code, message)``."""
        return self.error

    def analyse(self, job: ArchiveJob, options: SegmentOptions,
                keep_predictions: bool) -> VideoOutcome:
        assert self.classifier is not None, "analyse() on a worker whose model failed"
        # A fresh Event per video: segment_video sets the one it is given when it ends.
        self._stop = threading.Event()
        self._video, self._analysed = job.name, 0

        def progress(decoded: int, analysed: int, total: int | None) -> None:
            self._analysed = analysed

        context = ray.get_runtime_context()
        where = f"ray:{ray.util.get_node_ip_address()}:{os.getpid()}" + (
            " (restarted)" if context.was_current_actor_reconstructed else "")
        try:
            return analyse_video(job, self.classifier, options,
                                 keep_predictions=keep_predictions, stop=self._stop,
                                 on_progress=progress, worker=where)
        finally:
            self._video = None

    def stop(self) -> None:
        """End the video in flight early (its partial result is returned) and refuse
        nothing else: the driver sends no more work after a stop."""
        self._stop.set()

    def status(self) -> dict[str, Any]:
        """Process id, the video in flight (``None`` when idle) and frames analysed."""
        return {"pid": os.getpid(), "video": self._video, "analysed": self._analysed}


class RayEngine:
    """Runs jobs on Ray actors; :meth:`process` yields outcomes in the order they finish.

    ``address`` joins an existing cluster (``auto``, ``ray://head:10001``); without it, a
    Ray session already started in this process is used, or a local cluster is started
    (and shut down by :meth:`close`). ``workers`` caps the number of actors.
    """

    name = "ray"

    def __init__(self, model: ModelSpec, options: SegmentOptions, *,
                 address: str | None = None, keep_predictions: bool = False,
                 workers: int | None = None, cpus_per_worker: int | None = None,
                 announce: Callable[[str], None] | None = None):
        """``announce`` receives a line for the user when the cluster and workers start
        (they take seconds, before any video finishes)."""
        self.announce = announce or (lambda text: None)
        self.model = model
        self.options = options
        self.address = address
        self.keep_predictions = keep_predictions
        self.max_workers = workers
        self.cpus_per_worker = cpus_per_worker or model.threads  # None: the defaults
        self.actors: list[Any] = []
        self._owns_ray = False

    # --- starting -------------------------------------------------------------------

    def start(self, jobs: int) -> None:
        """Connect to (or start) Ray and start the workers, each loading the model."""
        started = time.monotonic()
        if not ray.is_initialized():
            self.announce(f"ray: joining the cluster at {self.address}" if self.address else
                          "ray: starting a local cluster (about 10 s)")
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.WARNING)
            except (ConnectionError, RayError, ValueError) as e:
                raise UsageError(f"cannot reach the Ray cluster at '{self.address}' ({e}); "
                                 "check --ray-address, or drop it to start a local "
                                 "cluster") from None
            self._owns_ray = True
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        use_gpu = self.model.device in _GPU_DEVICES or (self.model.device == "auto" and gpus)
        if use_gpu and not gpus:
            raise UsageError(f"--device {self.model.device}: the Ray cluster has no GPU; use "
                             "--device cpu (or auto)")
        # Decoding stays on the CPU on GPU nodes too: every worker gets its CPUs.
        wanted = self.cpus_per_worker or (DEFAULT_CPUS_PER_GPU_WORKER if use_gpu
                                          else DEFAULT_CPUS_PER_WORKER)
        per = min(wanted, max(cpus, 1))
        self.cpus_per_worker = per
        count = min(gpus, max(cpus // per, 1)) if use_gpu else max(cpus // per, 1)
        count = max(1, min(count, jobs, self.max_workers or count))
        resources_each = {"num_cpus": per, "num_gpus": 1 if use_gpu else 0}
        threads = per
        self.actors = [SegmentWorker.options(**resources_each).remote(self.model, threads)
                       for _ in range(count)]
        try:
            problems = ray.get([a.ready.remote() for a in self.actors], timeout=START_TIMEOUT_S)
        except GetTimeoutError:
            raise UsageError(f"Ray could not start {count} workers with {resources_each} each "
                             f"within {START_TIMEOUT_S:g} s; the cluster is busy or too small: "
                             "free it, or pass fewer --threads") from None
        for problem in problems:
            if problem is not None:
                code, message = problem
                raise (UsageError if code == EXIT_USAGE else ModelError)(message)
        self.announce(f"ray: {count} worker{'' if count == 1 else 's'} ready, "
                      f"{'1 GPU' if use_gpu else f'{per} CPU' + ('' if per == 1 else 's')} "
                      f"each, after {time.monotonic() - started:.1f} s")

    # --- running --------------------------------------------------------------------

    def process(self, jobs: Sequence[ArchiveJob]) -> Iterator[VideoOutcome]:
        """Outcomes as they finish. After Ctrl+C the videos in flight are stopped, their
        partial outcomes yielded, and :class:`KeyboardInterrupt` raised again."""
        if not self.actors:
            self.start(len(jobs))
        todo = collections.deque(jobs)
        in_flight: dict[Any, tuple[Any, ArchiveJob]] = {}

        def submit(actor: Any) -> None:
            if todo:
                job = todo.popleft()
                ref = actor.analyse.remote(job, self.options, self.keep_predictions)
                in_flight[ref] = (actor, job)

        for actor in self.actors:
            submit(actor)
        try:
            while in_flight:
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    actor, job = in_flight.pop(ref)
                    outcome, alive = self._result(ref, job)
                    if alive:
                        submit(actor)
                    elif not in_flight:
                        yield from (self._no_worker(j) for j in todo)
                        todo.clear()
                    yield outcome
        except KeyboardInterrupt:
            yield from self._stop(in_flight)
            raise

    def _result(self, ref: Any, job: ArchiveJob) -> tuple[VideoOutcome, bool]:
        """The outcome of ``ref`` and whether its worker can take more work."""
        try:
            return ray.get(ref), True
        except RayActorError as e:
            message = (f"the Ray worker died while analysing it, {MAX_RETRIES + 1} times "
                       f"({_first_line(e)}); check the node's memory and logs, then rerun")
            return VideoOutcome(job, None, None, message, EXIT_INTERNAL, 0.0, "ray"), False
        except RayError as e:
            return VideoOutcome(job, None, None, f"Ray failed on it: {_first_line(e)}",
                                EXIT_INTERNAL, 0.0, "ray"), True

    @staticmethod
    def _no_worker(job: ArchiveJob) -> VideoOutcome:
        return VideoOutcome(job, None, None, "every Ray worker died; rerun to retry it",
                            EXIT_INTERNAL, 0.0, "ray")

    def _stop(self, in_flight: dict[Any, tuple[Any, ArchiveJob]]) -> Iterator[VideoOutcome]:
        for actor, _ in in_flight.values():
            actor.stop.remote()
        if not in_flight:
            return
        ready, late = ray.wait(list(in_flight), num_returns=len(in_flight),
                               timeout=STOP_TIMEOUT_S)
        for ref in ready:
            outcome, _ = self._result(ref, in_flight[ref][1])
            yield outcome
        for ref in late:
            ray.cancel(ref, force=False)

    def close(self) -> None:
        """Stop the workers (and the local cluster this engine started)."""
        for actor in self.actors:
            try:
                ray.kill(actor)
            except RayError:
                pass
        self.actors = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
