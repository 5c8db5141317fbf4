"""Output messages: images with the input header, the objects JSON, diagnostics."""
import json

import numpy as np
import pytest
from std_msgs.msg import Header

from actiseg_ros.ros.messages import diagnostics_msg, image_msg, objects_msg, objects_payload
from actiseg_ros.ros.pipeline import ObjectOutput
from actiseg_ros.ros.action_parsing import ActionCommand


def header():
    h = Header()
    h.stamp.sec, h.stamp.nanosec, h.frame_id = 12, 345, "cam"
    return h


def test_mono8_and_bgr8_images_keep_the_header_and_layout():
    labels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    msg = image_msg(labels, "mono8", header())
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (12, 345, "cam")
    assert (msg.height, msg.width, msg.step, msg.encoding, msg.is_bigendian) == (3, 4, 4, "mono8", 0)
    assert bytes(msg.data) == labels.tobytes()
    bgr = np.zeros((2, 5, 3), np.uint8)
    bgr[1, 4] = (1, 2, 3)
    msg = image_msg(bgr[:, :, :], "bgr8", header())
    assert msg.step == 15 and bytes(msg.data)[-3:] == b"\x01\x02\x03"


@pytest.mark.parametrize("array, encoding", [(np.zeros((2, 2), np.uint16), "mono8"),
                                             (np.zeros((2, 2, 3), np.uint8), "mono8"),
                                             (np.zeros((2, 2), np.uint8), "bgr8"),
                                             (np.zeros((2, 2), np.uint8), "yuv422")])
def test_wrong_arrays_are_refused(array, encoding):
    with pytest.raises(ValueError):
        image_msg(array, encoding, header())


def test_objects_document():
    objects = [ObjectOutput(id=1, name="onion", prompt="p", score=0.912345, raw_score=0.8, active=True,
                            bbox=(1, 2, 30, 40), area=900),
               ObjectOutput(id=2, name="knife", prompt="q", score=0.1, raw_score=0.1, active=False, bbox=None, area=0)]
    command = ActionCommand(narration="cut onion with knife", objects=("onion", "knife"), named=("onion", "knife"))
    msg = objects_msg(header(), command, objects, (480, 640), {"segmenter": 41.234})
    document = json.loads(msg.data)
    assert document == objects_payload(12, 345, "cam", command, objects, (480, 640), {"segmenter": 41.234})
    assert document["timings_ms"] == {"segmenter": 41.23}
    assert document["stamp"] == {"sec": 12, "nanosec": 345} and document["image_size"] == [640, 480]
    assert document["action"] == "cut onion with knife"
    assert document["objects"][0] == {"id": 1, "name": "onion", "score": 0.9123, "raw_score": 0.8, "active": True,
                                      "bbox": [1, 2, 30, 40], "area": 900}
    assert document["objects"][1]["bbox"] is None
    assert json.loads(objects_msg(header(), None, [], (1, 1)).data)["action"] is None


def test_diagnostics_levels_and_values():
    from diagnostic_msgs.msg import DiagnosticStatus

    msg = diagnostics_msg(header().stamp, "actiseg", "warn", "slow", {"rate_hz": 14.456, "backend": "ort-cpu",
                                                                      "latency_ms_p95": None, "drops": 3})
    status = msg.status[0]
    assert status.level == DiagnosticStatus.WARN and status.name == "actiseg: perception" and status.message == "slow"
    assert {kv.key: kv.value for kv in status.values} == {"rate_hz": "14.46", "backend": "ort-cpu",
                                                          "latency_ms_p95": "", "drops": "3"}
    with pytest.raises(KeyError):
        diagnostics_msg(header().stamp, "actiseg", "fine", "", {})
