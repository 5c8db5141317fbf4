"""Test helper (not a test file): the perception and replay nodes as real processes, and an in-process probe
node that publishes inputs, records every output message and calls the node's services.

Processes inherit the environment (ROS_DOMAIN_ID and the Fast DDS profile from conftest.py, PYTHONPATH).
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np

from actiseg_ros.ros import names
from actiseg_ros.tools import processes
from actiseg_ros.tools.processes import PERCEPTION_MODULE, REPLAY_MODULE, ChildNode


class NodeProcess(ChildNode):
    """ChildNode plus what the tests look at: the log as it grows and the process's memory."""

    def wait_for_log(self, text: str, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return True
            if not self.alive():
                return text in self.log()
            time.sleep(0.1)
        return False

    def rss_kib(self) -> int:
        """Resident memory of the process now, from /proc/<pid>/status (VmRSS, KiB)."""
        for line in Path("/proc/%d/status" % self.pid).read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS for pid %d" % self.pid)


def _remaps(namespace: str | None, remaps: dict | None) -> dict | None:
    merged = dict({"__ns": namespace} if namespace else {}, **(remaps or {}))
    return merged or None


def perception_node(log_path, params: dict, params_file=None, namespace: str | None = None,
                    remaps: dict | None = None, process_group: int | None = None) -> NodeProcess:
    return NodeProcess(PERCEPTION_MODULE, log_path, params, params_file, _remaps(namespace, remaps), process_group)


def replay_node(log_path, params: dict, namespace: str | None = None, remaps: dict | None = None,
                process_group: int | None = None) -> NodeProcess:
    return NodeProcess(REPLAY_MODULE, log_path, params, None, _remaps(namespace, remaps), process_group)


def read_manifest(path) -> tuple:
    """-> (header dict, frames [{index, source_index, stamp_ns}], actions [{action, before, source_index}])."""
    return processes.read_manifest(path)


def image_array(msg) -> np.ndarray:
    """mono8 / bgr8 Image -> (H, W[, C]) uint8 copy, honouring step."""
    channels = {"mono8": 1, "bgr8": 3}[msg.encoding]
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)[:, : msg.width * channels]
    return rows.reshape(msg.height, msg.width, channels)[:, :, 0].copy() if channels == 1 else \
        rows.reshape(msg.height, msg.width, channels).copy()


class Probe:
    """An rclpy node in the test process (own context, spun in a thread) that records the node's outputs.

    outputs[stamp_ns] = {"objects": dict, "mask": array, "labels": array, "received": wall time, "frame_id": ...,
    "camera": the camera whose output topics it came on} (arrays only while keep_images is true; overlays are
    only counted); diagnostics: list of (status name, level int, message, {key: value}).
    It listens to the node `node` in `namespace` (topic names from actiseg_ros.ros.names) and publishes on the
    image topic of the first camera (or image_topic); image_pubs has one publisher per camera.
    """

    def __init__(self, name: str = "test_probe", keep_images: bool = True, overlay: bool = False,
                 image_topic: str | None = None, namespace: str = "/", node: str = names.NODE_NAME,
                 cameras=("",)):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from actiseg_ros.ros.qos import profile

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.keep_images = keep_images
        self.lock = threading.Lock()
        self.outputs: dict = {}
        self.diagnostics: list = []
        self.overlays = 0
        reliable = profile("reliable_output")
        self.namespace, self.node_name = namespace, node

        def topic(relative):
            return names.resolve(relative, namespace, node)

        for camera in cameras:
            self.node.create_subscription(String, topic(names.output_topic("objects", camera)),
                                          lambda m, c=camera: self._on_objects(c, m), reliable)
            kinds = ("mask", "labels", "overlay") if overlay else ("mask", "labels")
            for kind in kinds:
                self.node.create_subscription(Image, topic(names.output_topic(kind, camera)),
                                              lambda m, k=kind, c=camera: self._on_image(k, m, c), reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.image_pubs = {camera: self.node.create_publisher(Image, topic(names.camera_topic(camera)),
                                                              profile("sensor_data")) for camera in cameras}
        self.image_pub = (self.node.create_publisher(Image, image_topic, profile("sensor_data")) if image_topic
                          else self.image_pubs[cameras[0]])
        self.action_pub = self.node.create_publisher(String, topic(names.ACTION_TOPIC), profile("command"))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            self.executor.spin()
        except Exception:  # the context shut down under the executor at close()
            pass

    def _entry(self, header, camera: str) -> dict:
        stamp = header.stamp.sec * 10**9 + header.stamp.nanosec
        return self.outputs.setdefault(stamp, {"frame_id": header.frame_id, "camera": camera})

    def _on_objects(self, camera: str, msg):
        received = time.time()
        document = json.loads(msg.data)
        stamp = document["stamp"]
        with self.lock:
            entry = self.outputs.setdefault(stamp["sec"] * 10**9 + stamp["nanosec"],
                                            {"frame_id": document["frame_id"], "camera": camera})
            entry["objects"], entry["received"] = document, received

    def _on_image(self, kind: str, msg, camera: str = ""):
        with self.lock:
            entry = self._entry(msg.header, camera)
            entry[kind + "_format"] = (msg.encoding, msg.height, msg.width, msg.step, len(msg.data))
            if kind == "overlay":
                self.overlays += 1
            elif self.keep_images:
                entry[kind] = image_array(msg)

    def _on_diagnostics(self, msg):
        for status in msg.status:
            with self.lock:
                self.diagnostics.append((status.name, status.level[0], status.message,
                                         {kv.key: kv.value for kv in status.values}))

    def snapshot(self) -> dict:
        with self.lock:
            return {k: dict(v) for k, v in self.outputs.items()}

    def wait_for(self, predicate, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise TimeoutError("service %s not available" % name)
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                if time.monotonic() > deadline:
                    raise TimeoutError("service %s did not answer" % name)
                time.sleep(0.02)
            return future.result()
        finally:
            self.node.destroy_client(client)

    def lifecycle_state(self, node: str = names.NODE_NAME, timeout: float = 10.0) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(GetState, "/%s/get_state" % node, GetState.Request(), timeout).current_state.label

    def wait_for_state(self, label: str, timeout: float = 60.0) -> bool:
        def reached():
            try:
                return self.lifecycle_state(timeout=2.0) == label
            except TimeoutError:
                return False
        return self.wait_for(reached, timeout)

    def get_parameters(self, names_: list, node: str = names.NODE_NAME) -> list:
        """Values of the node's parameters, through its get_parameters service."""
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        response = self.call(GetParameters, "/%s/get_parameters" % node.strip("/"), GetParameters.Request(names=names_))
        return [parameter_value_to_python(value) for value in response.values]

    def topics(self) -> dict:
        """{topic name: [type names]} of the ROS graph as this probe sees it."""
        return dict(self.node.get_topic_names_and_types())

    def set_parameters(self, values: dict, node: str = names.NODE_NAME):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        messages = [Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]
        request = SetParameters.Request(parameters=messages)
        return self.call(SetParameters, "/%s/set_parameters" % node, request).results

    def change_state(self, transition: str, node: str = names.NODE_NAME) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request(transition=Transition(label=transition))
        return self.call(ChangeState, "/%s/change_state" % node, request).success

    def wait_for_subscriber(self, timeout: float = 30.0) -> bool:
        return self.wait_for(lambda: self.image_pub.get_subscription_count() > 0
                             and self.action_pub.get_subscription_count() > 0, timeout)

    def publish_image(self, fields: dict, stamp_ns: int | None = None, frame_id: str = "probe",
                      camera: str | None = None) -> int:
        """Publish an Image built from {height, width, encoding, is_bigendian, step, data} (on that camera's
        topic, or image_pub); returns its stamp."""
        from sensor_msgs.msg import Image

        msg = Image()
        stamp_ns = time.time_ns() if stamp_ns is None else stamp_ns
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        msg.header.frame_id = frame_id
        msg.height, msg.width, msg.encoding = fields["height"], fields["width"], fields["encoding"]
        msg.is_bigendian, msg.step, msg.data = fields["is_bigendian"], fields["step"], fields["data"]
        (self.image_pub if camera is None else self.image_pubs[camera]).publish(msg)
        return stamp_ns

    def publish_action(self, text_or_raw) -> None:
        from std_msgs.msg import String

        if isinstance(text_or_raw, bytes):
            self.action_pub.publish(text_or_raw)  # a serialized message, as a non-Python publisher could send
        else:
            self.action_pub.publish(String(data=text_or_raw))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)
        self._thread.join(5.0)


def raw_string_message(payload: bytes) -> bytes:
    """A serialized std_msgs/String (CDR little endian) holding arbitrary bytes, e.g. invalid UTF-8."""
    return b"\x00\x01\x00\x00" + (len(payload) + 1).to_bytes(4, "little") + payload + b"\x00"


def model_for_tests(tmp_path_factory) -> tuple:
    """(model folder, trained?): the shipped models/default when present, else the session's tiny export."""
    shipped = Path(__file__).resolve().parent.parent / "models" / "default"
    if (shipped / "model_card.json").is_file():
        return shipped, True
    from exported_model import tiny_export

    return tiny_export(tmp_path_factory) / "model", False
