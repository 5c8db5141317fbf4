"""ROS 2 bags (rosbag2) in and out without ROS, through the `rosbags` library (pure Python; rosbag2_py is not
on PyPI). No rclpy here: `actiseg import bag` and the replay node's bag source read with it, `actiseg record`
writes with it.

A bag is a folder with metadata.yaml and its sqlite3 (.db3) or MCAP (.mcap) storage file, or a lone .db3 /
.mcap file. Camera frames come from sensor_msgs/Image (any encoding actiseg_ros.ros.image_conversion reads:
rgb8, bgr8, mono8, mono16, rgba8, yuv422 ..., step padding honoured) or sensor_msgs/CompressedImage (jpeg,
png); actions from std_msgs/String.

    with open_bag("run1") as bag:
        topic = bag.image_topic("")           # the only image topic, else a BagError listing them
        for frame in bag.frames(topic):       # Frame(log_ns, stamp_ns, frame_id, rgb)
            ...
        actions = bag.actions("/actiseg/action")  # [Action(log_ns, text)]

Every failure is a BagError whose message names the bag and, where it applies, the topic and message.
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
STRING = "std_msgs/msg/String"
IMAGE_TYPES = (IMAGE, COMPRESSED_IMAGE)
STORAGES = ("sqlite3", "mcap")
ROSBAGS_HINT = "pip install 'rosbags>=0.11.9,<0.12' (or pip install 'actiseg_ros[bag]')"


class BagError(ValueError):
    """The bag cannot be read as asked; the message names the bag, topic or message at fault."""


def _rosbags():
    """The parts of rosbags this module uses, imported on first use (an optional dependency)."""
    try:
        from rosbags.highlevel import AnyReader, AnyReaderError
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.typesys import Stores, get_typestore
    except ModuleNotFoundError as err:
        raise BagError("ROS 2 bags need the Python package 'rosbags' (%s is missing): %s"
                       % (err.name, ROSBAGS_HINT)) from None
    return AnyReader, AnyReaderError, StoragePlugin, Writer, Stores, get_typestore


def default_typestore():
    """Message definitions for bags that carry none (sqlite3 bags recorded before ROS 2 Iron)."""
    _reader, _error, _plugin, _writer, stores, get_typestore = _rosbags()
    return get_typestore(stores.LATEST)


@dataclass(frozen=True)
class Frame:
    log_ns: int  # when the recorder received it (the bag's timestamp): the recorded timing
    stamp_ns: int  # the message's header stamp (the camera's capture time)
    frame_id: str
    rgb: np.ndarray  # (H, W, 3) uint8


@dataclass(frozen=True)
class FrameInfo:
    log_ns: int
    stamp_ns: int
    frame_id: str


@dataclass(frozen=True)
class Action:
    log_ns: int
    text: str


def _stamp_ns(header) -> int:
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def compressed_to_rgb(fmt: str, data) -> np.ndarray:
    """sensor_msgs/CompressedImage (format 'jpeg', 'png', 'rgb8; jpeg compressed bgr8' ...) -> RGB."""
    kind = fmt.lower()
    if "compresseddepth" in kind.replace(" ", ""):
        raise ValueError("depth images (format %r) are not camera frames" % fmt)
    if not any(name in kind for name in ("jpeg", "jpg", "png")) and kind.strip():
        raise ValueError("unsupported compressed format %r (jpeg or png)" % fmt)
    buffer = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if bgr is None:
        raise ValueError("%d bytes of format %r do not decode as an image" % (buffer.size, fmt))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def message_rgb(msgtype: str, msg) -> np.ndarray:
    """A deserialized Image or CompressedImage -> (H, W, 3) uint8 RGB; ValueError says what is wrong."""
    from actiseg_ros.ros.image_conversion import msg_to_rgb8

    if msgtype == COMPRESSED_IMAGE:
        return compressed_to_rgb(str(msg.format), msg.data)
    return msg_to_rgb8(msg)


class Bag:
    """An open bag (use open_bag). Topics, frames and actions; closes with close() or a with block."""

    def __init__(self, path):
        AnyReader, AnyReaderError, *_ = _rosbags()
        self.path = Path(path)
        if not self.path.exists():
            raise BagError("bag %s does not exist" % self.path)
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            raise BagError("bag %s is a folder without metadata.yaml: give a rosbag2 folder or its .db3/.mcap "
                           "file" % self.path)
        if self.path.is_file() and self.path.suffix not in (".db3", ".mcap"):
            raise BagError("bag %s: a lone bag file must be .db3 (sqlite3) or .mcap, not %r"
                           % (self.path, self.path.suffix))
        self._error_types = (AnyReaderError,)
        try:
            self.reader = AnyReader([self.path], default_typestore=default_typestore())
            self.reader.open()
        except Exception as err:  # rosbags, sqlite and YAML raise several unrelated types for a damaged bag
            raise BagError(self._damaged(err)) from None
        self.topics = {name: (info.msgtype, int(info.msgcount)) for name, info in self.reader.topics.items()}

    def _damaged(self, err) -> str:
        text = str(err).rstrip(".") or type(err).__name__
        return "bag %s is truncated or corrupt (a recording cut short, or a partial copy?): %s" % (self.path, text)

    def close(self) -> None:
        if getattr(self, "reader", None) is not None:
            self.reader.close()
            self.reader = None

    def __enter__(self) -> "Bag":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> str:
        """'topic (type, N messages), ...' for error messages."""
        listed = ["%s (%s, %d)" % (name, msgtype, count) for name, (msgtype, count) in sorted(self.topics.items())]
        return ", ".join(listed) or "none"

    def image_topics(self) -> list:
        return sorted(name for name, (msgtype, _count) in self.topics.items() if msgtype in IMAGE_TYPES)

    def _topic(self, topic: str, types, what: str) -> str:
        name = topic if topic in self.topics or topic.startswith("/") else "/" + topic
        if name not in self.topics:
            raise BagError("bag %s has no topic %s; its topics: %s" % (self.path, topic, self.describe()))
        msgtype = self.topics[name][0]
        if msgtype not in types:
            raise BagError("topic %s in bag %s holds %s, not %s" % (name, self.path, msgtype, what))
        return name

    def image_topic(self, topic: str = "") -> str:
        """The image topic to read: `topic` checked, or with '' the bag's only image topic."""
        if topic:
            return self._topic(topic, IMAGE_TYPES, "sensor_msgs/msg/Image or CompressedImage")
        found = self.image_topics()
        if len(found) != 1:
            raise BagError("bag %s has %s image topics; choose one%s (its topics: %s)"
                           % (self.path, len(found) or "no", "" if found else " from another bag", self.describe()))
        return found[0]

    def action_topic(self, topic: str) -> str:
        return self._topic(topic, (STRING,), "std_msgs/msg/String")

    def _messages(self, topic: str, start_ns=None):
        """(connection, log_ns, deserialized message) of one topic in recorded order; read errors -> BagError."""
        connections = [c for c in self.reader.connections if c.topic == topic]
        iterator = self.reader.messages(connections=connections, start=start_ns)
        count = 0
        while True:
            try:
                connection, log_ns, raw = next(iterator)
                msg = self.reader.deserialize(raw, connection.msgtype)
            except StopIteration:
                return
            except Exception as err:  # a damaged page or chunk surfaces while reading, in many types
                raise BagError("%s, at message %d of %s" % (self._damaged(err), count, topic)) from None
            count += 1
            yield connection, int(log_ns), msg

    def frames(self, topic: str, start_ns=None):
        """Frame after Frame of an image topic (checked with image_topic first), from log time start_ns on."""
        topic = self.image_topic(topic)
        for index, (connection, log_ns, msg) in enumerate(self._messages(topic, start_ns)):
            try:
                rgb = message_rgb(connection.msgtype, msg)
            except ValueError as err:
                raise BagError("bag %s, topic %s, message %d (log time %d ns): %s"
                               % (self.path, topic, index, log_ns, err)) from None
            yield Frame(log_ns, _stamp_ns(msg.header), str(msg.header.frame_id), rgb)

    def frame_infos(self, topic: str) -> list:
        """[FrameInfo] of every message of an image topic, without decoding the pixels."""
        topic = self.image_topic(topic)
        return [FrameInfo(log_ns, _stamp_ns(msg.header), str(msg.header.frame_id))
                for _connection, log_ns, msg in self._messages(topic)]

    def actions(self, topic: str) -> list:
        """[Action] of a std_msgs/String topic, in recorded order."""
        topic = self.action_topic(topic)
        return [Action(log_ns, str(msg.data)) for _connection, log_ns, msg in self._messages(topic)]


def open_bag(path) -> Bag:
    return Bag(path)


def frame_of_time(log_times: list, log_ns: int) -> int:
    """Index of the first frame recorded at or after log_ns (len(log_times) when none is): an action recorded
    between two frames applies from the next frame on."""
    return bisect_left(log_times, log_ns)


class BagWriter:
    """A rosbag2 bag written with rosbags' writer (for `actiseg record`): topics added by type name, messages
    written as the CDR bytes a ROS subscription delivers (rclpy's raw=True), so nothing is re-serialized.
    close() finalizes the storage and writes metadata.yaml."""

    def __init__(self, path, storage: str = "sqlite3"):
        _reader, _error, StoragePlugin, Writer, _stores, _get = _rosbags()
        if storage not in STORAGES:
            raise BagError("storage must be one of %s, got %r" % (", ".join(STORAGES), storage))
        self.path = Path(path)
        if self.path.exists():
            raise BagError("%s exists already; a bag is written into a new folder" % self.path)
        self.typestore = default_typestore()
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(self.path, version=9, storage_plugin=plugin)
        self.writer.open()
        self.connections = {}
        self.counts = {}

    def add_topic(self, topic: str, msgtype: str) -> None:
        self.connections[topic] = self.writer.add_connection(topic, msgtype, typestore=self.typestore)
        self.counts[topic] = 0

    def write(self, topic: str, log_ns: int, cdr: bytes) -> None:
        self.writer.write(self.connections[topic], int(log_ns), cdr)
        self.counts[topic] += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
