"""An rclpy node, in its own context and thread, that records what the perception node publishes: for each
output stamp, the objects document, the arrival time and (optionally) the mask and a JPEG of the overlay.
Used by `actiseg demo` and benchmarks/bench_node.py to measure the node from outside, over real DDS.
"""
from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np


def image_rows(msg, channels: int) -> np.ndarray:
    """Image message -> (H, W, C) uint8 copy, honouring step."""
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, : msg.width * channels]
    return rows.reshape(msg.height, msg.width, channels).copy()


class OutputCollector:
    """records[stamp_ns] = {"received": wall s, "objects": dict, "mask": (H, W) uint8, "overlay_jpeg": bytes,
    "topic": the objects topic it came on}.

    objects_topics: the objects topics to record (default /actiseg/objects; several nodes or cameras: each of
    theirs, e.g. /actiseg/head/objects); masks and overlays are taken from the node at /actiseg."""

    def __init__(self, name: str = "actiseg_collector", keep_masks: bool = False, keep_overlay: bool = False,
                 objects_topics=("/actiseg/objects",)):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from actiseg_ros.ros.qos import output_profile

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.lock = threading.Lock()
        self.records: dict = {}
        self.diagnostics: dict = {}  # status name -> latest {key: value}
        qos = output_profile("reliable")
        for topic in objects_topics:
            self.node.create_subscription(String, topic, lambda msg, t=topic: self._on_objects(msg, t), qos)
        if keep_masks:
            self.node.create_subscription(Image, "/actiseg/mask", self._on_mask, qos)
        if keep_overlay:
            self.node.create_subscription(Image, "/actiseg/overlay", self._on_overlay, qos)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="actiseg-collector", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # the context was shut down by close()
            pass

    def _entry(self, header) -> dict:
        return self.records.setdefault(header.stamp.sec * 10**9 + header.stamp.nanosec, {})

    def _on_objects(self, msg, topic: str = "/actiseg/objects") -> None:
        received = time.time()
        document = json.loads(msg.data)
        stamp = document["stamp"]["sec"] * 10**9 + document["stamp"]["nanosec"]
        with self.lock:
            entry = self.records.setdefault(stamp, {})
            entry["received"], entry["objects"], entry["topic"] = received, document, topic

    def _on_mask(self, msg) -> None:
        mask = image_rows(msg, 1)[:, :, 0]
        with self.lock:
            self._entry(msg.header)["mask"] = mask

    def _on_overlay(self, msg) -> None:
        ok, jpeg = cv2.imencode(".jpg", image_rows(msg, 3), [cv2.IMWRITE_JPEG_QUALITY, 90])
        if ok:
            with self.lock:
                self._entry(msg.header)["overlay_jpeg"] = jpeg.tobytes()

    def _on_diagnostics(self, msg) -> None:
        with self.lock:
            for status in msg.status:
                self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def snapshot(self) -> dict:
        with self.lock:
            return {stamp: dict(entry) for stamp, entry in self.records.items()}

    def lifecycle_state(self, node: str = "actiseg", timeout: float = 2.0) -> str | None:
        """The node's lifecycle state label, or None when its service does not answer in time."""
        from lifecycle_msgs.srv import GetState

        client = self.node.create_client(GetState, "/%s/get_state" % node)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                return None
            future = client.call_async(GetState.Request())
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.02)
            return future.result().current_state.label if future.done() else None
        finally:
            self.node.destroy_client(client)

    def wait_quiet(self, quiet: float = 1.0, timeout: float = 30.0) -> None:
        """Return once no new record arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        count, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            with self.lock:
                now_count = len(self.records)
            if now_count != count:
                count, since = now_count, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)
        self._thread.join(5.0)
