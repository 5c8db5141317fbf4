"""The newest-frame slot and its worker thread: no queue, drops counted, errors survived."""
import threading
import time

from actiseg_ros.ros.latest_frame import FrameWorker, LatestFrameSlot


def test_slot_keeps_only_the_newest_item_and_counts_drops():
    slot = LatestFrameSlot()
    for i in range(5):
        slot.put(i)
    assert slot.take(timeout=0) == 4
    assert slot.take(timeout=0) is None
    assert (slot.received, slot.dropped) == (5, 4)
    slot.put(5)
    assert slot.take(timeout=0) == 5
    assert slot.dropped == 4


def test_take_waits_for_a_put_from_another_thread():
    slot = LatestFrameSlot()
    threading.Timer(0.05, slot.put, args=("frame",)).start()
    began = time.monotonic()
    assert slot.take(timeout=2.0) == "frame"
    assert time.monotonic() - began < 1.0


def test_close_wakes_a_waiting_take():
    slot = LatestFrameSlot()
    threading.Timer(0.05, slot.close).start()
    began = time.monotonic()
    assert slot.take(timeout=5.0) is None
    assert time.monotonic() - began < 1.0


def test_slow_worker_drops_frames_and_never_falls_behind():
    """A 20 ms handler fed at 1 kHz handles the newest frames; what it handles lags by at most one frame."""
    slot = LatestFrameSlot()
    handled = []
    latest_put = [0]

    def handle(item):
        handled.append((item, latest_put[0]))
        time.sleep(0.02)

    worker = FrameWorker(slot, handle)
    worker.start()
    for i in range(300):
        latest_put[0] = i
        slot.put(i)
        time.sleep(0.001)
    time.sleep(0.1)
    assert worker.stop()
    items = [item for item, _ in handled]
    assert items == sorted(items) and items[-1] == 299
    assert len(items) < 100 and slot.dropped == 300 - len(items)
    assert max(latest - item for item, latest in handled) <= 5  # taken when newest (a queue would lag by dozens)


def test_worker_survives_a_raising_handler():
    slot = LatestFrameSlot()
    errors, handled = [], []

    def handle(item):
        if item == "bad":
            raise ValueError("bad frame")
        handled.append(item)

    worker = FrameWorker(slot, handle, on_error=errors.append)
    worker.start()
    slot.put("bad")
    time.sleep(0.1)
    slot.put("good")
    time.sleep(0.1)
    assert worker.stop()
    assert handled == ["good"] and [str(e) for e in errors] == ["bad frame"]
    assert worker.handled == 2


def test_stop_reports_a_frame_still_running_and_can_wait_for_it():
    # The node frees the engine only once the worker has really ended: stop() says False while a frame is still
    # running after its timeout, and stop(timeout=None) waits for that frame.
    started, release = threading.Event(), threading.Event()

    def slow_handler(item):
        started.set()
        release.wait(5.0)

    slot = LatestFrameSlot()
    worker = FrameWorker(slot, slow_handler, lambda err: None)
    worker.start()
    slot.put("frame")
    assert started.wait(5.0)
    assert worker.stop(timeout=0.05) is False
    threading.Timer(0.2, release.set).start()
    began = time.monotonic()
    assert worker.stop(timeout=None) is True
    assert 0.1 < time.monotonic() - began < 5.0
