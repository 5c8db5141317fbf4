"""replay_node's bag source: a short bag written by the rosbags writer (synthetic frames, bgr8 with padded rows,
and the actions on the recorded action topic), replayed through the real perception node as processes over DDS.
Bad bags end the replay with exit code 2 and an error naming the bag."""
import re
import time

import numpy as np
import pytest

from bag_helpers import ACTION_TOPIC, sample_frames, storage_file, truncate, write_bag
from ros_harness import Probe, model_for_tests, perception_node, read_manifest, replay_node

from actiseg_ros.data.synth import SceneStream
from actiseg_ros.nodes.replay_node import check_timing, frame_gap
from actiseg_ros.tools.frame_sources import SourceError, open_source

pytestmark = pytest.mark.ros  # real ROS 2 processes

SIZE = (320, 240)
SEED = 0
PERIOD_NS = 125_000_000  # recorded at 8 Hz: the default model takes ~40-100 ms a frame on a 2-core CPU
BEFORE, AFTER = 8, 8  # frames recorded before and after the scene's second action begins
STAMP_OFFSET_NS = -7_000_000  # the header stamps: capture time, 7 ms before the recorder logged each frame


@pytest.fixture(scope="module")
def stream():
    return SceneStream(seed=SEED, size=SIZE)


@pytest.fixture(scope="module")
def recording(stream, tmp_path_factory):
    """(bag path, [(log_ns, stamp_ns, rgb)], [(log_ns, text)]): the stream around its first action change."""
    boundary = stream.timeline[1][0]
    start_ns = 1_750_000_000 * 10**9
    frames = []
    for i, index in enumerate(range(boundary - BEFORE, boundary + AFTER)):
        log_ns = start_ns + i * PERIOD_NS
        frames.append((log_ns, log_ns + STAMP_OFFSET_NS, stream.render(index).rgb))
    actions = [(frames[0][0] - 2_000_000, stream.timeline[0][2]),
               (frames[BEFORE][0] - 1_000_000, stream.timeline[1][2])]
    path = write_bag(tmp_path_factory.mktemp("bag") / "kitchen", "mcap", frames, actions, encoding="bgr8", pad=4)
    return path, frames, actions


def test_bag_source_frames_headers_and_script(recording, tmp_path):
    path, frames, actions = recording
    source = open_source("bag", str(path), size=(0, 0), action_topic="actiseg/action")
    assert len(source) == len(frames)
    assert source.times_ns == [log for log, _stamp, _rgb in frames]
    assert source.header(3) == (frames[3][1], "head_camera")
    np.testing.assert_array_equal(source.frame(0), frames[0][2])
    np.testing.assert_array_equal(source.frame(5), frames[5][2])  # a seek
    np.testing.assert_array_equal(source.frame(6), frames[6][2])  # then in order
    np.testing.assert_array_equal(source.frame(2), frames[2][2])  # back
    # each recorded action from the first frame recorded after it; one in force before `start` moves to start
    assert source.auto_script(0, len(frames)) == [(0, actions[0][1], []), (BEFORE, actions[1][1], [])]
    assert source.auto_script(3, len(frames)) == [(3, actions[0][1], []), (BEFORE, actions[1][1], [])]
    assert source.auto_script(0, BEFORE) == [(0, actions[0][1], [])]
    assert open_source("bag", str(path), size=(0, 0)).auto_script(0, len(frames)) == []  # no action topic
    half = open_source("bag", str(path), size=(160, 120))
    assert half.frame(1).shape == (120, 160, 3)
    source.close()


def test_check_timing_and_frame_gap():
    check_timing({"stamps": "recorded", "rate": 0.0, "source": "bag"})
    check_timing({"stamps": "now", "rate": 30.0, "source": "video"})
    with pytest.raises(SourceError, match=r"rate must be positive \(Hz\), got 0"):
        check_timing({"stamps": "now", "rate": 0.0, "source": "synthetic"})
    with pytest.raises(SourceError, match="or 0 .the recorded timing., got -1"):
        check_timing({"stamps": "now", "rate": -1.0, "source": "bag"})
    with pytest.raises(SourceError, match="stamps 'recorded' needs source bag"):
        check_timing({"stamps": "recorded", "rate": 30.0, "source": "folder"})
    with pytest.raises(SourceError, match="stamps must be one of now, recorded"):
        check_timing({"stamps": "bag", "rate": 30.0, "source": "bag"})
    times = [0, 100_000_000, 150_000_000, 150_000_000]
    assert frame_gap(times, 0, 1, 0.05) == pytest.approx(0.1)
    assert frame_gap(times, 1, 2, 0.05) == pytest.approx(0.05)
    assert frame_gap(times, 2, 3, 0.05) == 0.0
    assert frame_gap(times, 3, 0, 0.05) == 0.05  # a loop's jump back


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_for_tests(tmp_path_factory)


def test_bag_replayed_through_the_node_keeps_recorded_stamps_timing_and_actions(recording, model, tmp_path):
    path, frames, actions = recording
    probe = Probe(keep_images=False)
    node = perception_node(tmp_path / "node.log", {"model_dir": str(model[0]), "positive_gate": 0.75 if model[1]
                                                   else 0.0, "smoothing.enabled": False})
    try:
        assert probe.wait_for_state("active", 90), node.log()
        manifest = tmp_path / "manifest.jsonl"
        replay = replay_node(tmp_path / "replay.log", {"source": "bag", "path": str(path), "image_topic": "",
                                                       "action_topic": ACTION_TOPIC, "stamps": "recorded",
                                                       "rate": 0.0, "manifest": str(manifest)})
        assert replay.wait(90) == 0, replay.log()
        probe.wait_for(lambda: len(probe.snapshot()) >= len(frames), 5.0)
        time.sleep(1.0)
        outputs = probe.snapshot()
    finally:
        node.stop()
        probe.close()
    _header, published, sent = read_manifest(manifest)
    recorded_stamps = [stamp for _log, stamp, _rgb in frames]
    # The replay published every frame with its recorded header, and the recorded actions before their frames.
    assert [f["stamp_ns"] for f in published] == recorded_stamps
    assert [(a["action"], a["before"]) for a in sent] == [(actions[0][1], 0), (actions[1][1], BEFORE)]
    # At the recorded timing: 15 gaps of 125 ms (never faster; slower only by the machine's scheduling).
    seconds = float(re.search(r"published 16 frames in ([0-9.]+) s", replay.log()).group(1))
    span = (len(frames) - 1) * PERIOD_NS / 1e9
    assert span - 0.1 <= seconds <= 2 * span + 1.0, replay.log()

    # The node's outputs carry the recorded stamps and frame_id, and the recorded actions were applied.
    assert outputs, node.log()
    assert set(outputs) <= set(recorded_stamps), "outputs with stamps that are not in the bag"
    assert len(outputs) >= len(frames) // 3, "only %d of %d frames came back" % (len(outputs), len(frames))
    assert all(out["frame_id"] == "head_camera" for out in outputs.values())
    index_of = {stamp: i for i, stamp in enumerate(recorded_stamps)}
    with_objects = {index_of[s]: out["objects"] for s, out in outputs.items() if "objects" in out}
    assert with_objects
    # The change applies to the next frame the node takes, whenever it was captured (see test_node_e2e): from
    # frame BEFORE + 2 on at the latest; a frame just before the change may already have it.
    for index, document in with_objects.items():
        if index >= BEFORE + 2:
            assert document["action"] == actions[1][1], "frame %d still had the old action" % index
    assert any(i >= BEFORE + 2 for i in with_objects)
    assert any(document["action"] == actions[0][1] for i, document in with_objects.items() if i < BEFORE)


def bad_bag(kind: str, tmp_path):
    """(path, params, expected log text) of one kind of unusable bag."""
    frames = sample_frames(6)
    if kind == "missing":
        return tmp_path / "no_such_bag", {}, r"bag .*no_such_bag does not exist"
    if kind == "topic":
        path = write_bag(tmp_path / "bag", "sqlite3", frames, [(frames[0][0], "cut onion")])
        return path, {"image_topic": "/wrist/image_raw"}, r"has no topic /wrist/image_raw; its topics: /actiseg/action"
    if kind == "type":
        path = write_bag(tmp_path / "bag", "mcap", frames, [(frames[0][0], "cut onion")])
        return path, {"image_topic": ACTION_TOPIC}, \
            r"topic /actiseg/action in bag .* holds std_msgs/msg/String, not sensor_msgs/msg/Image"
    storage = kind.split("_")[1]
    path = write_bag(tmp_path / "bag", storage, frames, [(frames[0][0], "cut onion")])
    truncate(storage_file(path), 0.6)
    return path, {}, r"bag .*bag is truncated or corrupt"


@pytest.mark.parametrize("kind", ["missing", "topic", "type", "truncated_sqlite3", "truncated_mcap"])
def test_bad_bags_end_the_replay_with_a_clear_error(kind, tmp_path):
    path, params, expected = bad_bag(kind, tmp_path)
    replay = replay_node(tmp_path / "replay.log", dict({"source": "bag", "path": str(path)}, **params))
    assert replay.wait(60) == 2, replay.log()
    assert re.search(expected, replay.log()), replay.log()
    assert "Traceback" not in replay.log()
