"""Test helper (not a test file): real rosbag2 bags written with the `rosbags` writer, as a robot's recorder
would leave them, and the frames they hold.

    write_bag(path, "mcap", frames=[(log_ns, stamp_ns, rgb)], actions=[(log_ns, text)])
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_TOPIC = "/camera/image_raw"
ACTION_TOPIC = "/actiseg/action"


def sample_frames(count: int, size=(64, 48), start_ns: int = 1_700_000_000 * 10**9, period_ns: int = 50_000_000,
                stamp_offset_ns: int = -7_000_000) -> list:
    """[(log_ns, stamp_ns, rgb)]: distinct frames (a gradient moved by the index), header stamps a little
    before the log times, as a camera's capture stamp precedes the recorder's receipt."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(count):
        rgb = np.stack([(xs * 4 + i * 9) % 256, (ys * 5 + i * 3) % 256, np.full_like(xs, (i * 37) % 256)], -1)
        log_ns = start_ns + i * period_ns
        frames.append((log_ns, log_ns + stamp_offset_ns, rgb.astype(np.uint8)))
    return frames


def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.LATEST)


def image_message(typestore, rgb: np.ndarray, stamp_ns: int, encoding: str = "rgb8", pad: int = 0,
                  frame_id: str = "head_camera", compressed: str = ""):
    """A rosbags Image (rgb8 / bgr8 / mono8, rows padded by `pad` bytes) or CompressedImage ('jpeg' / 'png')."""
    types = typestore.types
    sec, nanosec = divmod(int(stamp_ns), 10**9)
    header = types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                          frame_id=frame_id)
    if compressed:
        ok, data = cv2.imencode("." + ("jpg" if compressed == "jpeg" else compressed),
                                cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        return types["sensor_msgs/msg/CompressedImage"](header=header, format=compressed,
                                                       data=np.asarray(data, np.uint8).reshape(-1))
    if encoding == "rgb8":
        pixels = rgb
    elif encoding == "bgr8":
        pixels = rgb[:, :, ::-1]
    elif encoding == "mono8":
        pixels = rgb[:, :, :1]
    else:
        raise ValueError(encoding)
    height, width, channels = pixels.shape
    rows = np.zeros((height, width * channels + pad), np.uint8)
    rows[:, : width * channels] = pixels.reshape(height, -1)
    return types["sensor_msgs/msg/Image"](header=header, height=height, width=width, encoding=encoding,
                                          is_bigendian=0, step=width * channels + pad, data=rows.reshape(-1))


def write_bag(path, storage: str = "sqlite3", frames=(), actions=(), image_topic: str = IMAGE_TOPIC,
              action_topic: str = ACTION_TOPIC, encoding: str = "rgb8", pad: int = 0, compressed: str = "",
              extra_topics=()) -> Path:
    """A bag folder written by rosbags' Writer; extra_topics: [(topic, msgtype)] added with no messages."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    typestore = _typestore()
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    path = Path(path)
    image_type = "sensor_msgs/msg/CompressedImage" if compressed else "sensor_msgs/msg/Image"
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        image_conn = writer.add_connection(image_topic, image_type, typestore=typestore) if image_topic else None
        action_conn = writer.add_connection(action_topic, "std_msgs/msg/String", typestore=typestore) \
            if action_topic else None
        for topic, msgtype in extra_topics:
            writer.add_connection(topic, msgtype, typestore=typestore)
        messages = [(log_ns, 1, image_conn, image_message(typestore, rgb, stamp_ns, encoding, pad,
                                                           compressed=compressed))
                    for log_ns, stamp_ns, rgb in frames]
        messages += [(log_ns, 0, action_conn, typestore.types["std_msgs/msg/String"](data=text))
                     for log_ns, text in actions]
        for log_ns, _order, connection, msg in sorted(messages, key=lambda m: m[:2]):
            writer.write(connection, log_ns, typestore.serialize_cdr(msg, msg.__msgtype__))
    return path


def storage_file(bag: Path) -> Path:
    """The .db3 / .mcap file inside a bag folder."""
    (found,) = [p for p in Path(bag).iterdir() if p.suffix in (".db3", ".mcap")]
    return found


def truncate(path: Path, fraction: float) -> None:
    """Cut a file to `fraction` of its size, as a recorder killed mid-write (or a copy cut short) leaves it."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(int(size * fraction))
