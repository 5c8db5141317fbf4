"""Newest-frame-only hand-off between the ROS executor and the inference thread.

A camera delivers frames faster than a slow model segments them. Queueing them makes latency grow without
bound; instead the executor's callback only drops the frame into a one-place slot (overwriting, and
counting, a frame the worker has not taken yet) and returns at once, and a worker thread segments whatever
frame is newest when it becomes free.
"""
from __future__ import annotations

import queue
import threading
import time


class _ClosableSlot:
    """What both slot kinds share: the condition their take() waits on and close(), which ends that wait."""

    def __init__(self):
        self._condition = threading.Condition()
        self._closed = False

    def close(self) -> None:
        """Wake a waiting take(); later takes return what is left, then None."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class LatestFrameSlot(_ClosableSlot):
    """put(item) never blocks; take(timeout) returns the newest item not yet taken, or None on timeout/close."""

    def __init__(self):
        super().__init__()
        self._item = None
        self._has_item = False
        self.received = 0
        self.dropped = 0  # items overwritten before the worker took them

    def put(self, item) -> None:
        with self._condition:
            self.received += 1
            if self._has_item:
                self.dropped += 1
            self._item, self._has_item = item, True
            self._condition.notify()

    def take(self, timeout: float | None = None):
        with self._condition:
            if not self._has_item and not self._closed:
                self._condition.wait(timeout)
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item


class LatestFrameSlots(_ClosableSlot):
    """Newest-frame-only slots for several cameras that one worker serves: put(key, item) never blocks and
    keeps only the newest item per key; take(timeout) returns every waiting item at once, [(key, item)] in
    the order of `keys` (the frames the worker runs as one batch), or None on timeout/close. Each key counts
    its own received and dropped (overwritten before taken) items."""

    def __init__(self, keys):
        self.keys = tuple(keys)
        if not self.keys or len(set(self.keys)) != len(self.keys):
            raise ValueError("LatestFrameSlots needs distinct keys, got %r" % (self.keys,))
        super().__init__()
        self._items: dict = {}
        self.received = dict.fromkeys(self.keys, 0)
        self.dropped = dict.fromkeys(self.keys, 0)

    def put(self, key, item) -> None:
        with self._condition:
            self.received[key] += 1
            if key in self._items:
                self.dropped[key] += 1
            self._items[key] = item
            self._condition.notify()

    def take(self, timeout: float | None = None):
        with self._condition:
            if not self._items and not self._closed:
                self._condition.wait(timeout)
            if not self._items:
                return None
            items, self._items = self._items, {}
        return [(key, items[key]) for key in self.keys if key in items]


class FrameWorker:
    """A thread that takes items from a LatestFrameSlot (or the item lists of a LatestFrameSlots) and calls
    handle(item) until stopped.

    handle() must not raise; if it does anyway, on_error(exception) is called and the worker goes on, so a
    bad frame can never stop the pipeline.
    """

    def __init__(self, slot: LatestFrameSlot, handle, on_error=None, name: str = "actiseg-inference"):
        self.slot = slot
        self.handle = handle
        self.on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.busy_seconds = 0.0
        self.handled = 0

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.slot.take(timeout=0.1)
            if item is None:
                continue
            began = time.perf_counter()
            try:
                self.handle(item)
            except Exception as err:  # the worker must outlive any frame
                if self.on_error is not None:
                    self.on_error(err)
            self.busy_seconds += time.perf_counter() - began
            self.handled += 1

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop after the frame in progress; True when the thread has ended (timeout None: wait until it has)."""
        self._stop.set()
        self.slot.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()


_END = object()  # HandOff's end-of-work marker


class HandOff:
    """The second stage of a two-stage worker: a thread that calls handle(item) for each put(item), in order.

    put() blocks while an earlier item still waits to be taken (at most one item waiting and one in handle()),
    so a slow second stage holds the first one back instead of queueing work without bound. As FrameWorker,
    it survives an exception from handle() (on_error(exception) is called). stop() ends the thread after the
    items already put.
    """

    def __init__(self, handle, on_error=None, name: str = "actiseg-publish"):
        self.handle = handle
        self.on_error = on_error
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.handled = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, item) -> None:
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            try:
                self.handle(item)
            except Exception as err:  # the stage must outlive any item
                if self.on_error is not None:
                    self.on_error(err)
            self.handled += 1

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Handle what was put, then end; True when the thread has ended (timeout None: wait until it has)."""
        if not self._thread.is_alive():
            return True
        try:
            self._queue.put(_END, timeout=timeout)
        except queue.Full:
            return False
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()
