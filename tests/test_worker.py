"""InferenceWorker: dynamic batching, order, end marker, errors and stopping.

The classifier is a real Classifier on the tiny colour model; subclasses only record the
batch sizes they see or raise, to test the worker's side of the contract.
"""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from endostream.errors import UsageError
from endostream.frames import Frame, Prediction
from endostream.inference.classifier import Classifier
from endostream.inference.worker import InferenceWorker
from endostream.sources.base import END_OF_STREAM
from helpers.onnx_models import DEFAULT_ORGAN_COLORS, build_color_model, color_image

ORGANS = list(DEFAULT_ORGAN_COLORS)
#: Generous bound for a worker to finish; reaching it means the worker hung.
JOIN_S = 10.0


class RecordingClassifier(Classifier):
    """The real classifier, noting each batch size it is given."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_sizes: list[int] = []

    def run(self, batch):
        self.batch_sizes.append(len(batch))
        return super().run(batch)


class FailingClassifier(Classifier):
    def run(self, batch):
        raise RuntimeError("boom in run")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return build_color_model(tmp_path_factory.mktemp("models") / "color.onnx")


@pytest.fixture
def recording(model_path):
    with RecordingClassifier.load(model_path, device="cpu") as clf:
        yield clf


def frames(n: int, start: int = 0) -> list[Frame]:
    out = []
    for i in range(start, start + n):
        organ = ORGANS[i % len(ORGANS)]
        img = color_image(DEFAULT_ORGAN_COLORS[organ], seed=i)
        out.append(Frame(index=i, pts_s=i / 5.0, image=img, captured_ns=i))
    return out


def drain(q: queue.Queue) -> list:
    """Everything up to and including END_OF_STREAM (the worker must always send it)."""
    items = []
    while True:
        item = q.get(timeout=JOIN_S)
        items.append(item)
        if item is END_OF_STREAM:
            return items


def run_worker(clf, items, *, batch_size=16, max_wait_ms=30.0, out_size=0):
    in_q: queue.Queue = queue.Queue()
    out_q: queue.Queue = queue.Queue(maxsize=out_size)
    for item in items:
        in_q.put(item)
    worker = InferenceWorker(clf, in_q, out_q, threading.Event(), batch_size=batch_size,
                             max_wait_ms=max_wait_ms)
    worker.start()
    got = drain(out_q)
    worker.join(JOIN_S)
    assert not worker.is_alive()
    return worker, got


def test_batches_fill_up_to_batch_size_and_keep_order(recording):
    worker, got = run_worker(recording, frames(40) + [END_OF_STREAM], batch_size=16)
    assert worker.error is None
    assert recording.batch_sizes == [16, 16, 8]
    preds = got[:-1]
    assert got[-1] is END_OF_STREAM
    assert all(isinstance(p, Prediction) for p in preds)
    assert [p.index for p in preds] == list(range(40))
    assert [p.pts_s for p in preds] == [i / 5.0 for i in range(40)]
    organs = [ORGANS[int(p.probs["organ"].argmax())] for p in preds]
    assert organs == [ORGANS[i % 3] for i in range(40)]
    for p in preds:
        assert set(p.probs) == {"quality", "organ"}
        assert p.probs["organ"].dtype == np.float32 and p.probs["organ"].shape == (3,)
        assert p.labelled_ns >= p.captured_ns and p.latency_ms >= 0
    stats = worker.stats()
    assert stats["frames"] == 40 and stats["batches"] == 3
    assert stats["mean_batch_size"] == pytest.approx(40 / 3)
    assert len(worker.infer_ms) == 3 and stats["infer_ms_median"] > 0
    assert stats["frames_per_s_inference"] > 0


def test_predictions_equal_a_direct_run(recording):
    fs = frames(7)
    worker, got = run_worker(recording, fs + [END_OF_STREAM], batch_size=4)
    direct = recording.run(np.stack([f.image for f in fs]))
    for i, p in enumerate(got[:-1]):
        for head in direct:
            np.testing.assert_allclose(p.probs[head], direct[head][i], atol=1e-6)


def test_end_of_stream_inside_a_batch_ends_the_worker(recording):
    worker, got = run_worker(recording, frames(5) + [END_OF_STREAM] + frames(3, start=5))
    assert recording.batch_sizes == [5]
    assert len(got) == 6 and got[-1] is END_OF_STREAM


def test_empty_stream_sends_only_the_end_marker(recording):
    worker, got = run_worker(recording, [END_OF_STREAM])
    assert got == [END_OF_STREAM] and recording.batch_sizes == []
    assert worker.stats()["frames"] == 0 and worker.stats()["infer_ms_median"] == 0.0


def test_live_feed_does_not_wait_for_frames_that_never_come(recording):
    # Each frame is sent only after the previous prediction came back: the worker must
    # run a partial batch after max_wait_ms instead of waiting for a full one.
    in_q: queue.Queue = queue.Queue(maxsize=4)
    out_q: queue.Queue = queue.Queue()
    worker = InferenceWorker(recording, in_q, out_q, threading.Event(), batch_size=16,
                             max_wait_ms=5.0)
    worker.start()
    for f in frames(4):
        in_q.put(f)
        pred = out_q.get(timeout=JOIN_S)
        assert pred.index == f.index
    in_q.put(END_OF_STREAM)
    assert out_q.get(timeout=JOIN_S) is END_OF_STREAM
    worker.join(JOIN_S)
    assert recording.batch_sizes == [1, 1, 1, 1]


def test_max_wait_zero_takes_only_what_is_queued(recording):
    worker, got = run_worker(recording, frames(10) + [END_OF_STREAM], batch_size=4, max_wait_ms=0)
    assert recording.batch_sizes == [4, 4, 2]


def test_exception_in_run_reaches_error_and_end_still_arrives(model_path):
    with FailingClassifier.load(model_path, device="cpu") as clf:
        worker, got = run_worker(clf, frames(3) + [END_OF_STREAM])
    assert got == [END_OF_STREAM]
    assert isinstance(worker.error, RuntimeError) and "boom in run" in str(worker.error)


@pytest.mark.parametrize("image", [np.zeros((224, 3), np.uint8),
                                   np.zeros((224, 224, 3), np.float32)])
def test_malformed_frame_image_is_an_error_not_a_broadcast(recording, image):
    bad = Frame(index=0, pts_s=0.0, image=image, captured_ns=0)
    worker, got = run_worker(recording, [bad, END_OF_STREAM])
    assert got == [END_OF_STREAM]
    assert isinstance(worker.error, ValueError) and "expected uint8" in str(worker.error)


def test_stop_event_ends_an_idle_worker(recording):
    in_q: queue.Queue = queue.Queue()
    out_q: queue.Queue = queue.Queue()
    stop = threading.Event()
    worker = InferenceWorker(recording, in_q, out_q, stop)
    worker.start()
    stop.set()
    worker.join(JOIN_S)
    assert not worker.is_alive() and worker.error is None
    assert out_q.get_nowait() is END_OF_STREAM


def test_stop_event_ends_a_worker_blocked_on_a_full_output_queue(recording):
    in_q: queue.Queue = queue.Queue()
    for f in frames(20):
        in_q.put(f)
    out_q: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    worker = InferenceWorker(recording, in_q, out_q, stop, batch_size=8)
    worker.start()
    out_q.get(timeout=JOIN_S)  # the worker is producing; nobody reads any further
    stop.set()
    worker.join(JOIN_S)
    assert not worker.is_alive() and worker.error is None
    assert recording.batch_sizes == [8]  # stopped inside the first batch's output


@pytest.mark.parametrize("kwargs, fragment", [({"batch_size": 0}, "--batch must be at least 1"),
                                              ({"max_wait_ms": -1}, "max wait")])
def test_bad_settings_are_usage_errors(recording, kwargs, fragment):
    with pytest.raises(UsageError, match=fragment):
        InferenceWorker(recording, queue.Queue(), queue.Queue(), threading.Event(), **kwargs)
