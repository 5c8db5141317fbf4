"""The newest-frame slot and its worker thread: no queue, drops counted, errors survived."""
import threading
import time

from actiseg_ros.ros.latest_frame import FrameWorker, HandOff, LatestFrameSlot


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


def test_hand_off_handles_items_in_order_on_its_own_thread_and_drains_on_stop():
    seen, threads = [], set()

    def handle(item):
        time.sleep(0.005)
        seen.append(item)
        threads.add(threading.current_thread().name)

    stage = HandOff(handle, name="second-stage")
    stage.start()
    for i in range(10):
        stage.put(i)
    assert stage.stop(timeout=5.0)
    assert seen == list(range(10)) and threads == {"second-stage"} and stage.handled == 10
    assert stage.stop(timeout=0.1)  # stopping twice is harmless


def test_hand_off_holds_the_producer_back_instead_of_queueing():
    """One item in handle() and one waiting at most: the third put waits until the first is handled."""
    release = threading.Event()
    stage = HandOff(lambda item: release.wait(5.0))
    stage.start()
    stage.put(1)
    time.sleep(0.05)  # item 1 is in handle() now
    stage.put(2)
    third = threading.Thread(target=stage.put, args=(3,))
    third.start()
    time.sleep(0.1)
    assert third.is_alive(), "a full hand-off must block the producer"
    release.set()
    third.join(2.0)
    assert not third.is_alive()
    assert stage.stop(timeout=5.0) and stage.handled == 3


def test_hand_off_survives_a_failing_item():
    errors, seen = [], []

    def handle(item):
        if item == "bad":
            raise ValueError("broken item")
        seen.append(item)

    stage = HandOff(handle, on_error=errors.append)
    stage.start()
    for item in ("a", "bad", "b"):
        stage.put(item)
    assert stage.stop(timeout=5.0)
    assert seen == ["a", "b"] and [str(e) for e in errors] == ["broken item"]


def test_hand_off_stop_times_out_on_a_stuck_handler():
    release = threading.Event()
    stage = HandOff(lambda item: release.wait(5.0))
    stage.start()
    stage.put(1)
    time.sleep(0.05)
    stage.put(2)  # the queue is full now, the handler stuck on item 1
    assert stage.stop(timeout=0.1) is False
    release.set()
    assert stage.stop(timeout=5.0)
