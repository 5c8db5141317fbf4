"""actiseg_ros.data.bags on real rosbag2 bags written by the rosbags writer (sqlite3 and MCAP)."""
import shutil

import numpy as np
import pytest

from bag_helpers import ACTION_TOPIC, IMAGE_TOPIC, sample_frames, storage_file, truncate, write_bag

from actiseg_ros.data.bags import BagError, BagWriter, frame_of_time, open_bag

STORAGES = ("sqlite3", "mcap")


@pytest.fixture(scope="module")
def frames():
    return sample_frames(12)


@pytest.fixture(scope="module", params=STORAGES)
def bag_path(request, tmp_path_factory, frames):
    actions = [(frames[0][0] - 1000, "cut onion with knife"), (frames[6][0] + 10, "put knife on board")]
    return write_bag(tmp_path_factory.mktemp("bag") / "run1", request.param, frames, actions)


def test_frames_stamps_and_actions_come_back_exactly(bag_path, frames):
    with open_bag(bag_path) as bag:
        assert bag.topics == {IMAGE_TOPIC: ("sensor_msgs/msg/Image", 12), ACTION_TOPIC: ("std_msgs/msg/String", 2)}
        assert bag.image_topic("") == IMAGE_TOPIC
        read = list(bag.frames("camera/image_raw"))  # a relative name finds the recorded /camera/image_raw
        assert [(f.log_ns, f.stamp_ns) for f in read] == [(log, stamp) for log, stamp, _rgb in frames]
        assert all(f.frame_id == "head_camera" for f in read)
        for got, (_log, _stamp, rgb) in zip(read, frames):
            assert got.rgb.dtype == np.uint8 and got.rgb.shape == (48, 64, 3)
            np.testing.assert_array_equal(got.rgb, rgb)
        assert [(i.log_ns, i.stamp_ns, i.frame_id) for i in bag.frame_infos("")] == \
            [(f.log_ns, f.stamp_ns, f.frame_id) for f in read]
        actions = bag.actions(ACTION_TOPIC)
        assert [(a.log_ns, a.text) for a in actions] == [(frames[0][0] - 1000, "cut onion with knife"),
                                                         (frames[6][0] + 10, "put knife on board")]
        later = list(bag.frames("", start_ns=frames[5][0]))
        assert [f.log_ns for f in later] == [log for log, _stamp, _rgb in frames[5:]]


def test_a_lone_storage_file_opens_too(bag_path, frames, tmp_path):
    lone = tmp_path / storage_file(bag_path).name
    shutil.copy(storage_file(bag_path), lone)
    with open_bag(lone) as bag:
        assert [f.log_ns for f in bag.frames("")] == [log for log, _stamp, _rgb in frames]


@pytest.mark.parametrize("encoding, pad", [("rgb8", 0), ("rgb8", 5), ("bgr8", 3), ("mono8", 7)])
def test_encodings_and_step_padding(tmp_path, frames, encoding, pad):
    path = write_bag(tmp_path / "bag", "mcap", frames[:3], encoding=encoding, pad=pad)
    with open_bag(path) as bag:
        for got, (_log, _stamp, rgb) in zip(bag.frames(""), frames):
            expected = np.repeat(rgb[:, :, :1], 3, axis=2) if encoding == "mono8" else rgb
            np.testing.assert_array_equal(got.rgb, expected)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_images(tmp_path, frames, fmt):
    path = write_bag(tmp_path / "bag", "sqlite3", frames[:3], compressed=fmt)
    with open_bag(path) as bag:
        assert bag.topics[IMAGE_TOPIC][0] == "sensor_msgs/msg/CompressedImage"
        for got, (_log, _stamp, rgb) in zip(bag.frames(""), frames):
            assert got.rgb.shape == rgb.shape
            error = np.abs(got.rgb.astype(int) - rgb).mean()
            assert error == 0 if fmt == "png" else error < 8  # JPEG is lossy


def test_missing_bag_and_folder_without_metadata(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        open_bag(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="without metadata.yaml"):
        open_bag(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BagError, match=r"\.db3.*\.mcap"):
        open_bag(tmp_path / "notes.txt")


def test_missing_topic_lists_the_bags_topics(bag_path):
    with open_bag(bag_path) as bag:
        with pytest.raises(BagError, match=r"no topic /wrist/image_raw; its topics: /actiseg/action "
                                           r"\(std_msgs/msg/String, 2\), /camera/image_raw"):
            list(bag.frames("/wrist/image_raw"))
        with pytest.raises(BagError, match="no topic /robot/action"):
            bag.actions("/robot/action")


def test_wrong_message_type_is_named(bag_path):
    with open_bag(bag_path) as bag:
        with pytest.raises(BagError, match="topic /actiseg/action .* holds std_msgs/msg/String, not sensor_msgs"):
            list(bag.frames(ACTION_TOPIC))
        with pytest.raises(BagError, match="/camera/image_raw .* holds sensor_msgs/msg/Image, not std_msgs/msg/String"):
            bag.actions(IMAGE_TOPIC)


def test_image_topic_must_be_chosen_when_not_exactly_one(tmp_path, frames):
    two = write_bag(tmp_path / "two", "sqlite3", frames[:2], extra_topics=[("/wrist/image_raw",
                                                                            "sensor_msgs/msg/Image")])
    with open_bag(two) as bag, pytest.raises(BagError, match="has 2 image topics; choose one"):
        bag.image_topic("")
    none = write_bag(tmp_path / "none", "mcap", [], actions=[(5, "cut onion")], image_topic="")
    with open_bag(none) as bag, pytest.raises(BagError, match="has no image topics"):
        bag.image_topic("")


@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_truncated_storage_file_is_a_clear_error(tmp_path, frames, storage, fraction):
    path = write_bag(tmp_path / "bag", storage, frames, [(frames[0][0], "cut onion")])
    truncate(storage_file(path), fraction)
    with pytest.raises(BagError, match="bag .*/bag is truncated or corrupt"):
        with open_bag(path) as bag:  # sqlite may fail only once it reads the damaged page: read everything
            list(bag.frames(""))
            bag.actions(ACTION_TOPIC)


def test_unsupported_encoding_names_topic_and_message(tmp_path, frames):
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.LATEST)
    types = typestore.types
    path = tmp_path / "depth"
    with Writer(path, version=9) as writer:
        connection = writer.add_connection("/depth", "sensor_msgs/msg/Image", typestore=typestore)
        msg = types["sensor_msgs/msg/Image"](header=types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=1, nanosec=0), frame_id="d"), height=2, width=2,
            encoding="32FC1", is_bigendian=0, step=8, data=np.zeros(16, np.uint8))
        writer.write(connection, 1000, typestore.serialize_cdr(msg, msg.__msgtype__))
    with open_bag(path) as bag, pytest.raises(BagError, match=r"topic /depth, message 0 .*unsupported image "
                                                               r"encoding '32FC1'"):
        list(bag.frames(""))


@pytest.mark.parametrize("storage", STORAGES)
def test_bag_writer_stores_raw_cdr_that_reads_back(tmp_path, frames, storage):
    from bag_helpers import image_message
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.LATEST)
    path = tmp_path / "recorded"
    with BagWriter(path, storage) as writer:
        writer.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        writer.add_topic("/actiseg/action", "std_msgs/msg/String")
        for log_ns, stamp_ns, rgb in frames[:4]:
            msg = image_message(typestore, rgb, stamp_ns, "bgr8", pad=2)
            writer.write("/camera/image_raw", log_ns, typestore.serialize_cdr(msg, msg.__msgtype__))
        text = typestore.types["std_msgs/msg/String"](data="stir pan")
        writer.write("/actiseg/action", frames[1][0], typestore.serialize_cdr(text, text.__msgtype__))
    assert (path / "metadata.yaml").is_file()
    with open_bag(path) as bag:
        assert [(f.log_ns, f.stamp_ns) for f in bag.frames("")] == [(log, stamp) for log, stamp, _ in frames[:4]]
        assert [a.text for a in bag.actions("/actiseg/action")] == ["stir pan"]
    with pytest.raises(BagError, match="exists already"):
        BagWriter(path, storage)
    with pytest.raises(BagError, match="storage must be one of sqlite3, mcap"):
        BagWriter(tmp_path / "other", "rosbag1")


def test_frame_of_time():
    times = [10, 20, 30]
    assert [frame_of_time(times, t) for t in (0, 10, 11, 20, 30, 31)] == [0, 0, 1, 1, 2, 3]


def test_without_rosbags_the_error_says_how_to_install(monkeypatch, bag_path):
    import sys

    monkeypatch.setitem(sys.modules, "rosbags.highlevel", None)  # as if the package were not installed
    with pytest.raises(BagError, match=r"need the Python package 'rosbags' .*pip install 'rosbags>=0.11.9,<0.12'"):
        open_bag(bag_path)
