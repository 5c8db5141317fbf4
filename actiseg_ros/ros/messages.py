"""The node's output messages, built from arrays and the input image's header.

Every output carries the camera image's header (stamp and frame_id), so a consumer can pair outputs with
inputs and measure end-to-end latency.
"""
from __future__ import annotations

import array as pyarray
import json

import numpy as np

ENCODING_CHANNELS = {"mono8": 1, "bgr8": 3, "rgb8": 3}


def image_msg(array: np.ndarray, encoding: str, header):
    """(H, W) or (H, W, 3) uint8 -> sensor_msgs/Image with the given header.

    The pixels go in as an array.array('B') filled straight from the array's buffer: the generated setter
    stores such an array as it is, whereas bytes are first copied into a new array.array (one extra copy
    of every output image)."""
    from sensor_msgs.msg import Image

    channels = ENCODING_CHANNELS.get(encoding)
    if channels is None:
        raise ValueError("no builder for encoding %r (have %s)" % (encoding, ", ".join(ENCODING_CHANNELS)))
    wrong_shape = array.ndim != (2 if channels == 1 else 3) or (channels > 1 and array.shape[2] != channels)
    if array.dtype != np.uint8 or wrong_shape:
        raise ValueError("%s needs a uint8 array of %s, got %s %s" % (encoding, "(H, W)" if channels == 1 else
                                                                     "(H, W, %d)" % channels, array.dtype, array.shape))
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(array.shape[1] * channels)
    data = pyarray.array("B")
    data.frombytes(memoryview(np.ascontiguousarray(array)).cast("B"))
    msg.data = data
    return msg


def objects_payload(sec: int, nanosec: int, frame_id: str, action, objects, image_hw, timings_ms=None,
                    camera: str = "", batch_size: int = 1) -> dict:
    """The ~/objects document (README.md, section `/actiseg/objects`). timings_ms: this frame's stage times;
    camera: the camera's name ('' for the single camera); batch_size: frames run in the same engine call."""
    return {
        "stamp": {"sec": int(sec), "nanosec": int(nanosec)},
        "frame_id": frame_id,
        "camera": camera,
        "action": None if action is None else action.narration,
        "image_size": [int(image_hw[1]), int(image_hw[0])],
        "batch_size": int(batch_size),
        "timings_ms": {k: round(float(v), 2) for k, v in (timings_ms or {}).items()},
        "objects": [{"id": o.id, "name": o.name, "score": round(float(o.score), 4),
                     "raw_score": round(float(o.raw_score), 4), "active": bool(o.active),
                     "bbox": None if o.bbox is None else [int(v) for v in o.bbox], "area": int(o.area)}
                    for o in objects],
    }


def objects_msg(header, action, objects, image_hw, timings_ms=None, camera: str = "", batch_size: int = 1):
    from std_msgs.msg import String

    msg = String()
    msg.data = json.dumps(objects_payload(header.stamp.sec, header.stamp.nanosec, header.frame_id, action, objects,
                                          image_hw, timings_ms, camera, batch_size), separators=(",", ":"))
    return msg


def diagnostics_msg(stamp, node_name: str, level: str, message: str, values: dict):
    """diagnostic_msgs/DiagnosticArray with one status; level 'ok' | 'warn' | 'error' | 'stale'; values are
    stringified (floats with 2 decimals, None -> '')."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    levels = {"ok": DiagnosticStatus.OK, "warn": DiagnosticStatus.WARN, "error": DiagnosticStatus.ERROR,
              "stale": DiagnosticStatus.STALE}
    status = DiagnosticStatus()
    status.level = levels[level]
    status.name = "%s: perception" % node_name
    status.message = message
    status.hardware_id = "actiseg"
    status.values = [KeyValue(key=str(k), value="" if v is None else (("%.2f" % v) if isinstance(v, float) else str(v)))
                     for k, v in values.items()]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
