"""replay_node's plain parts: which frames it publishes, which actions it sends, how frames are encoded."""
import json

import numpy as np
import pytest

from actiseg_ros.nodes.replay_node import encode_frame, frame_indices, frame_size, script_events, source_end
from actiseg_ros.tools.frame_sources import SourceError, open_source


@pytest.fixture(scope="module")
def source():
    return open_source("synthetic", seed=2, size=(64, 48), actions=2)


def test_frame_indices_one_pass_count_and_loop():
    assert list(frame_indices(5, 0, 0, False)) == [0, 1, 2, 3, 4]
    assert list(frame_indices(5, 3, 0, False)) == [3, 4]
    assert list(frame_indices(5, 1, 2, False)) == [1, 2]
    assert list(frame_indices(5, 3, 5, True)) == [3, 4, 3, 4, 3]
    assert list(frame_indices(10, 2, 7, True, loop_frames=3)) == [2, 3, 4, 2, 3, 4, 2]
    with pytest.raises(SourceError, match="outside"):
        list(frame_indices(5, 5, 0, False))


def test_source_end():
    assert source_end(100, 10, 0, False, 0) == 100
    assert source_end(100, 10, 5, False, 0) == 15
    assert source_end(100, 10, 5, True, 0) == 100
    assert source_end(100, 10, 500, True, 20) == 30


def test_script_events_auto_and_explicit(source):
    (first, _last, action_a), (second, _end, action_b) = source.stream.timeline
    assert script_events(["auto"], source, 0, len(source), "named") == {first: action_a, second: action_b}
    assert script_events(["auto"], source, second + 2, len(source), "named") == {second + 2: action_b}
    scene = script_events(["auto"], source, 0, len(source), "scene")
    assert json.loads(scene[second]) == {"action": action_b, "objects": list(source.stream.scene.object_names)}
    assert script_events(["5:stir pan", "0:cut onion"], source, 0, 20, "named") == {0: "cut onion", 5: "stir pan"}
    assert script_events([""], source, 0, 20, "named") == {}
    with pytest.raises(SourceError, match="action_objects"):
        script_events(["auto"], source, 0, 20, "all")


def test_encode_frame():
    rgb = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert encode_frame(rgb, "rgb8").tobytes() == rgb.tobytes()
    bgr = encode_frame(rgb, "bgr8")
    assert bgr.flags.c_contiguous and bgr.tobytes() == rgb[:, :, ::-1].tobytes()
    with pytest.raises(SourceError, match="rgb8 or bgr8"):
        encode_frame(rgb, "mono8")


def test_frame_size():
    assert frame_size({"source": "synthetic", "width": 0, "height": 0}) == (640, 480)
    assert frame_size({"source": "video", "width": 0, "height": 0}) == (0, 0)  # the video's own size
    assert frame_size({"source": "folder", "width": 320, "height": 240}) == (320, 240)
    with pytest.raises(SourceError, match="both"):
        frame_size({"source": "video", "width": 320, "height": 0})
