"""`actiseg record` as a user runs it (the installed entry point, a real rclpy process) recording a real
replay_node, then read back with actiseg_ros.data.bags: frames, header stamps, pixels and the action."""
import signal
import subprocess
import time

import numpy as np
import pytest

from conftest import ACTISEG
from ros_harness import read_manifest, replay_node

from actiseg_ros.data.bags import open_bag
from actiseg_ros.data.synth import SceneStream

pytestmark = pytest.mark.ros  # real ROS 2 processes

SIZE = (320, 240)


def start_record(tmp_path, *args) -> tuple:
    log = open(tmp_path / "record.log", "w")
    process = subprocess.Popen(ACTISEG + ["record"] + list(args), stdout=log, stderr=subprocess.STDOUT)
    return process, tmp_path / "record.log"


def wait_for_text(path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert text in path.read_text(), path.read_text()


def test_record_n_frames_from_replay_reads_back_exactly(tmp_path):
    bag = tmp_path / "run1"
    process, log = start_record(tmp_path, "--out", str(bag), "--storage", "mcap", "--frames", "10")
    wait_for_text(log, "recording /camera/image_raw, /actiseg/action")
    manifest = tmp_path / "manifest.jsonl"
    replay = replay_node(tmp_path / "replay.log", {"width": SIZE[0], "height": SIZE[1], "seed": 1, "count": 25,
                                                   "rate": 15.0, "manifest": str(manifest)})
    assert replay.wait(90) == 0, replay.log()
    assert process.wait(30) == 0, log.read_text()
    assert "10 frames, 1 on /actiseg/action" in log.read_text()
    _header, published, sent = read_manifest(manifest)
    by_stamp = {f["stamp_ns"]: f["source_index"] for f in published}
    stream = SceneStream(seed=1, size=SIZE)
    with open_bag(bag) as reader:
        assert reader.topics == {"/camera/image_raw": ("sensor_msgs/msg/Image", 10),
                                 "/actiseg/action": ("std_msgs/msg/String", 1)}
        frames = list(reader.frames(""))
        assert [a.text for a in reader.actions("/actiseg/action")] == [sent[0]["action"]]
    assert len(frames) == 10
    assert [f.stamp_ns for f in frames] == sorted(f.stamp_ns for f in frames)
    assert all(f.stamp_ns in by_stamp for f in frames), "recorded stamps the replay never published"
    assert all(f.frame_id == "camera" for f in frames)
    assert all(b.log_ns > a.log_ns for a, b in zip(frames, frames[1:]))
    for frame in frames[::3]:  # the pixels the replay rendered, bit for bit (rgb8 through DDS and the bag)
        np.testing.assert_array_equal(frame.rgb, stream.render(by_stamp[frame.stamp_ns]).rgb)


@pytest.mark.parametrize("storage, number", [("sqlite3", signal.SIGINT), ("mcap", signal.SIGTERM)])
def test_a_signal_ends_the_recording_with_a_finalized_bag(tmp_path, storage, number):
    bag = tmp_path / "run2"
    process, log = start_record(tmp_path, "--out", str(bag), "--storage", storage, "--action-topic", "")
    wait_for_text(log, "Ctrl-C to stop")
    manifest = tmp_path / "manifest.jsonl"
    replay = replay_node(tmp_path / "replay.log", {"width": SIZE[0], "height": SIZE[1], "count": 30, "rate": 20.0,
                                                   "action_script": [""], "manifest": str(manifest)})
    assert replay.wait(90) == 0, replay.log()
    time.sleep(0.5)
    sent = time.monotonic()
    process.send_signal(number)
    assert process.wait(10) == 0, log.read_text()
    assert time.monotonic() - sent < 3.0
    assert "Traceback" not in log.read_text(), log.read_text()
    assert (bag / "metadata.yaml").is_file()
    published = {f["stamp_ns"] for f in read_manifest(manifest)[1]}
    with open_bag(bag) as reader:
        assert list(reader.topics) == ["/camera/image_raw"]
        stamps = [f.stamp_ns for f in reader.frames("")]
    assert set(stamps) <= published
    # best effort, as a camera: the product's shared-memory profile delivers all at 20 Hz; allow a rare loss
    assert len(stamps) >= 27, "recorded %d of 30 frames" % len(stamps)


def test_duration_without_a_publisher_writes_an_empty_bag_and_warns(tmp_path):
    bag = tmp_path / "quiet"
    began = time.monotonic()
    process, log = start_record(tmp_path, "--out", str(bag), "--duration", "1.5", "--image-topic", "/nobody/image")
    assert process.wait(30) == 0, log.read_text()
    assert time.monotonic() - began >= 1.5
    assert "warning: no frame arrived on /nobody/image" in log.read_text()
    with open_bag(bag) as reader:
        assert reader.topics == {"/nobody/image": ("sensor_msgs/msg/Image", 0),
                                 "/actiseg/action": ("std_msgs/msg/String", 0)}
    again, log = start_record(tmp_path, "--out", str(bag), "--duration", "1")
    assert again.wait(30) == 2
    assert "exists already" in log.read_text()


@pytest.mark.parametrize("option, value", [("--image-topic", "bad name"), ("--action-topic", "bad name"),
                                           ("--namespace", "/robot 1")])
def test_an_invalid_topic_or_namespace_is_a_clear_error_and_writes_no_bag(tmp_path, option, value):
    bag = tmp_path / "never"
    process, log = start_record(tmp_path, "--out", str(bag), "--duration", "1", option, value)
    assert process.wait(30) == 2, log.read_text()
    assert "Traceback" not in log.read_text(), log.read_text()
    assert "actiseg record: invalid %s %r" % (option.lstrip("-").replace("-", " "), value) in log.read_text()
    assert not bag.exists()
