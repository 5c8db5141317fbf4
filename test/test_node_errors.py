"""The perception node's accounting of frames lost to engine or publishing errors, on a real rclpy node in
this process (the error paths cannot be provoked from outside a process): every lost frame is counted as
refused, per camera, and the node goes on."""
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from std_msgs.msg import Header

from actiseg_ros.nodes.perception_node import PerceptionNode, start
from actiseg_ros.ros.messages import image_msg

pytestmark = pytest.mark.ros

MODEL = Path(__file__).resolve().parents[1] / "models" / "default"


@pytest.fixture
def node():
    context = rclpy.Context()
    rclpy.init(context=context)
    overrides = [Parameter("model_dir", value=str(MODEL)), Parameter("cameras", value=["head", "wrist"]),
                 Parameter("autostart", value=False), Parameter("threads", value=1),
                 Parameter("action", value="cut onion with knife")]
    node = PerceptionNode(context=context, parameter_overrides=overrides)
    assert start(node)
    yield node
    node.shut_down()
    node.destroy_node()
    rclpy.try_shutdown(context=context)


def frame_items():
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    items = []
    for name in ("head", "wrist"):
        header = Header(frame_id=name)
        items.append((name, (image_msg(rgb, "rgb8", header), time.perf_counter(), time.time_ns())))
    return items


def refused(node) -> tuple:
    return node.counters["refused"], node.cameras["head"].refused, node.cameras["wrist"].refused


def test_an_engine_error_counts_every_frame_of_the_batch(node, monkeypatch):
    def broken_run(frames):
        raise RuntimeError("engine gone")

    monkeypatch.setattr(node.pipeline, "run", broken_run)
    node._handle_frames(frame_items())
    assert refused(node) == (2, 1, 1)


def test_a_publishing_error_counts_the_failed_frame_and_those_after_it(node, monkeypatch):
    items = frame_items()
    frames = [(name, node.converter(item[0])) for name, item in items]
    taken = [item for _name, item in items]
    calls = []
    publish = node._publish

    def publish_failing_on(index):
        def failing(camera, *args):
            calls.append(camera.name)
            if len(calls) == index:
                raise RuntimeError("publisher gone")
            return publish(camera, *args)
        return failing

    began = time.perf_counter()
    monkeypatch.setattr(node, "_publish", publish_failing_on(1))
    node._publish_batch((node.pipeline.run(frames), taken, node.settings, began, began))
    assert calls == ["head"] and refused(node) == (2, 1, 1)  # head failed, wrist never published

    calls.clear()
    monkeypatch.setattr(node, "_publish", publish_failing_on(2))
    node._publish_batch((node.pipeline.run(frames), taken, node.settings, began, began))
    assert calls == ["head", "wrist"] and refused(node) == (3, 1, 2)
    assert node.cameras["head"].stats.summary(time.monotonic())["outputs"] == 1  # head's frame went out
