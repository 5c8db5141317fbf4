"""`actiseg import bag` on real bags written by the rosbags writer (sqlite3 and MCAP), run as a user runs it;
the output is read back with the project's ActionVOS loader and run by `actiseg infer --split demo`."""
import csv
import json
import re
import shutil

import numpy as np
import pytest

from bag_helpers import ACTION_TOPIC, IMAGE_TOPIC, image_message, sample_frames, storage_file, truncate, write_bag
from conftest import run_actiseg
from ros_harness import model_for_tests

from actiseg_ros.data import actionvos
from actiseg_ros.data.import_bag import assign_frames, read_window_narrations, window_parts

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses

SIZE = (72, 40)  # an odd recorded size: frames must keep it
PERIOD_NS = 100_000_000  # 10 Hz


@pytest.fixture(scope="module")
def frames():
    return sample_frames(16, size=SIZE, period_ns=PERIOD_NS)


def recorded_actions(frames) -> list:
    """Frames 0-1 before any action; 2-7 cut onion; an action the node refuses (ignored); 8-10 action cleared;
    11-15 the JSON form with its own object list."""
    return [(frames[2][0] - 5_000_000, "cut onion with knife"), (frames[5][0] - 1, '{"action": 5}'),
            (frames[8][0], ""), (frames[11][0] - 3, json.dumps({"action": "stir the pan", "objects": ["pan"]}))]


def sequences(root) -> dict:
    return {video.name: video for video in actionvos.read_demo_layout(root, check_files=True)}


def left_over(parent, name: str) -> list:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(name) or p.name.startswith("." + name))


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_one_sequence_per_action_segment(tmp_path, frames, storage):
    bag = write_bag(tmp_path / "kitchen_run", storage, frames, recorded_actions(frames))
    out = tmp_path / "imported"
    done = run_actiseg(["import", "bag", str(bag), "--image-topic", "camera/image_raw", "--action-topic",
                        ACTION_TOPIC, "--out", str(out), "--every", "2"])
    assert done.returncode == 0, done.stderr
    assert "wrote 2 sequences (6 of the bag's 16 frames)" in done.stdout
    assert "action 1 ('{\"action\": 5}') ignored: refused" in done.stderr
    found = sequences(out)
    assert list(found) == ["00000000_kitchen-run_cut_onion", "00000001_kitchen-run_stir_pan"]
    cut, stir = found.values()
    assert cut.frames == ["frame_0000000002", "frame_0000000004", "frame_0000000006"]  # every 2nd of 2..7
    assert stir.frames == ["frame_0000000011", "frame_0000000013", "frame_0000000015"]
    assert [e["exp"] for e in cut.expressions.values()] == [
        "%s used in the action of cut onion with knife" % o for o in ("onion", "knife", "left hand", "right hand")]
    assert [e["obj_id"] for e in cut.expressions.values()] == [1, 2, 3, 4]
    assert [e["object"] for e in stir.expressions.values()] == ["pan", "left hand", "right hand"]
    for video in found.values():
        for stem in video.frames:
            position = int(stem.split("_")[1])
            rgb = actionvos.read_image(actionvos.image_path(out, "val", video.name, stem + ".jpg"))
            assert rgb.shape == (SIZE[1], SIZE[0], 3)
            assert np.abs(rgb.astype(int) - frames[position][2]).mean() < 4  # JPEG quality 95
    stamps = json.loads((out / "Stamps" / "00000001_kitchen-run_stir_pan.json").read_text())
    assert stamps["narration"] == "stir the pan" and stamps["action_log_ns"] == frames[11][0] - 3
    assert [(f["file"], f["position"], f["log_ns"], f["stamp_ns"], f["frame_id"]) for f in stamps["frames"]] == [
        (name + ".jpg", p, frames[p][0], frames[p][1], "head_camera") for name, p in
        (("frame_0000000011", 11), ("frame_0000000013", 13), ("frame_0000000015", 15))]
    with open(out / "narrations.csv", newline="") as handle:
        assert list(csv.reader(handle)) == [["sequence", "narration"],
                                            ["00000000_kitchen-run_cut_onion", "cut onion with knife"],
                                            ["00000001_kitchen-run_stir_pan", "stir the pan"]]
    report = json.loads((out / "bag_import.json").read_text())
    assert report["frames_in_bag"] == 16 and report["frames_written"] == 6
    assert [(s["part"], s["frames"]) for s in report["left_out"]] == [("before the first action", 2), ("action 2", 3)]
    assert left_over(tmp_path, "imported") == ["imported"]  # no temporary folder left


def test_frame_names_do_not_depend_on_every_or_segmentation(tmp_path, frames):
    """A labelling export made on one import matches frames of another import of the same bag by file name."""
    bag = write_bag(tmp_path / "bag", "mcap", frames, recorded_actions(frames))
    lone = tmp_path / "lone.mcap"
    shutil.copy(storage_file(bag), lone)  # a lone .mcap file works as the bag
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_actiseg(["import", "bag", str(bag), "--action-topic", ACTION_TOPIC, "--out", str(first)]).returncode == 0
    done = run_actiseg(["import", "bag", str(lone), "--segment-seconds", "0.5", "--narration", "wash the plate",
                        "--every", "3", "--out", str(second)])
    assert done.returncode == 0, done.stderr
    names = {}
    for root in (first, second):
        for video in sequences(root).values():
            for stem in video.frames:
                names.setdefault(stem, []).append(actionvos.read_image(
                    actionvos.image_path(root, "val", video.name, stem + ".jpg")))
    shared = [stem for stem, images in names.items() if len(images) == 2]
    assert len(shared) >= 3
    for stem in shared:
        np.testing.assert_array_equal(*names[stem])


def test_windows_with_narrations_csv(tmp_path, frames):
    bag = write_bag(tmp_path / "bag", "sqlite3", frames, action_topic="")
    table = tmp_path / "narrations.csv"
    table.write_text("start,narration\n0.2,cut onion with knife\n1.05,\"put knife, then onion, on board\"\n")
    out = tmp_path / "out"
    done = run_actiseg(["import", "bag", str(bag), "--segment-seconds", "0.5", "--narrations", str(table),
                        "--out", str(out)])
    assert done.returncode == 0, done.stderr
    found = sequences(out)
    # 16 frames at 10 Hz = windows 0..3 of 0.5 s; window 0 holds 0.2 s, window 2 holds 1.05 s; 1 and 3 unnarrated
    assert {name: video.frames for name, video in found.items()} == {
        "00000000_bag_cut_onion": ["frame_%010d" % i for i in range(0, 5)],
        "00000001_bag_put_knife": ["frame_%010d" % i for i in range(10, 15)]}
    report = json.loads((out / "bag_import.json").read_text())
    assert [(s["part"], s["frames"], s["reason"]) for s in report["left_out"]] == [
        ("window 1", 5, "no narration for window 1"), ("window 3", 1, "no narration for window 3")]
    with open(out / "narrations.csv", newline="") as handle:
        assert list(csv.reader(handle))[2] == ["00000001_bag_put_knife", "put knife, then onion, on board"]


def test_window_logic():
    parts = window_parts(0, 1_950_000_000, 0.5, {0: "cut onion", 2: "stir pan"}, "window", ["onion", "pan"])
    assert [(p.key, p.narration, p.start_ns) for p in parts] == [
        (0, "cut onion", 0), (1, None, 500_000_000), (2, "stir pan", 1_000_000_000), (3, None, 1_500_000_000)]
    assert assign_frames(parts, [0, 400_000_000, 600_000_000, 1_900_000_000], 500_000_000) == []
    assert [p.frames for p in parts] == [[0, 1], [2], [], [3]]
    with pytest.raises(ValueError, match=r"window\(s\) 9, but the recording has only 4"):
        window_parts(0, 1_950_000_000, 0.5, {9: "cut onion"}, "window", ["onion"])
    with pytest.raises(ValueError, match="window 0 .* unusable: empty action"):
        window_parts(0, 10, 0.5, {None: "  "}, "window", ["onion"])


def test_start_seconds_on_a_window_boundary_open_that_window():
    # 0.6 / 0.2 is 2.9999999999999996 in floating point: the narration starting at 0.6 s must still go to
    # window 3 (0.6-0.8 s), the window its frames are assigned to, not window 2.
    parts = window_parts(0, 700_000_000, 0.2, {0.6: "cut onion"}, "start", ["onion"])
    assert [(p.key, p.narration) for p in parts] == [(0, None), (1, None), (2, None), (3, "cut onion")]
    assert assign_frames(parts, [0, 600_000_000, 650_000_000], 200_000_000) == []
    assert parts[3].frames == [1, 2]


@pytest.mark.parametrize("text, match", [
    ("narration\ncut onion\n", "first line must be the header"),
    ("window,narration\nfirst,cut onion\n", "line 2: window 'first' is not a whole number"),
    ("window,narration\n0,\n", "line 2: expected window,narration"),
    ("start,narration\n", "holds no narrations"),
])
def test_bad_narrations_csv(tmp_path, text, match):
    path = tmp_path / "n.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_window_narrations(path)


def test_infer_demo_runs_on_the_import(tmp_path, frames, tmp_path_factory):
    from actiseg_ros.data.synth import SceneStream

    stream = SceneStream(seed=0, size=(160, 120))
    shots = [(log, stamp, stream.render(i).rgb) for i, (log, stamp, _rgb) in enumerate(frames[:6])]
    bag = write_bag(tmp_path / "bag", "mcap", shots, [(shots[0][0], stream.timeline[0][2])])
    out = tmp_path / "out"
    assert run_actiseg(["import", "bag", str(bag), "--action-topic", ACTION_TOPIC, "--every", "2",
                        "--out", str(out)]).returncode == 0
    model = model_for_tests(tmp_path_factory)[0]
    done = run_actiseg(["infer", "--data", str(out), "--split", "demo", "--out", str(tmp_path / "pred"),
                        "--model", str(model)])
    assert done.returncode == 0, done.stderr
    (video,) = sequences(out).values()
    for stem in video.frames:
        labels = actionvos.read_label_png(tmp_path / "pred" / video.name / (stem + ".png"))
        assert labels.shape == (120, 160)
        assert set(np.unique(labels)) <= {0} | {e["obj_id"] for e in video.expressions.values()}


def bag_with_bad_last_frame(path, frames):
    """A bag whose last frame has an encoding no converter reads: found only while frames are written."""
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    typestore = get_typestore(Stores.LATEST)
    with Writer(path, version=9) as writer:
        connection = writer.add_connection(IMAGE_TOPIC, "sensor_msgs/msg/Image", typestore=typestore)
        for index, (log_ns, stamp_ns, rgb) in enumerate(frames):
            msg = image_message(typestore, rgb, stamp_ns)
            if index == len(frames) - 1:
                msg.encoding = "32FC1"
            writer.write(connection, log_ns, typestore.serialize_cdr(msg, msg.__msgtype__))
    return path


@pytest.mark.parametrize("case", ["missing", "topic", "type", "truncated_sqlite3", "truncated_mcap", "bad_frame",
                                  "no_mode", "both_modes", "every", "narration_without_windows", "out_not_empty"])
def test_errors_are_clear_and_leave_nothing(tmp_path, frames, case):
    bag = tmp_path / "bag"
    args = ["--action-topic", ACTION_TOPIC]
    if case.startswith("truncated"):
        write_bag(bag, case.split("_")[1], frames, recorded_actions(frames))
        truncate(storage_file(bag), 0.7)
        expected = "bag .*bag is truncated or corrupt"
    elif case == "bad_frame":
        bag_with_bad_last_frame(bag, frames)
        args = ["--segment-seconds", "1", "--narration", "cut onion"]
        expected = r"topic /camera/image_raw, message 15 .*unsupported image encoding '32FC1'"
    else:
        write_bag(bag, "mcap", frames, recorded_actions(frames))
        args, expected = {
            "missing": (["--action-topic", ACTION_TOPIC], "bag .*/nothing does not exist"),
            "topic": (["--action-topic", "/robot/action"], "bag .*bag has no topic /robot/action; its topics: "
                                                           "/actiseg/action"),
            "type": (["--image-topic", ACTION_TOPIC, "--action-topic", ACTION_TOPIC],
                     "topic /actiseg/action in bag .* holds std_msgs/msg/String, not sensor_msgs"),
            "no_mode": ([], "give --action-topic .* or --segment-seconds"),
            "both_modes": (["--action-topic", ACTION_TOPIC, "--segment-seconds", "1", "--narration", "x"],
                           "not both"),
            "every": (["--action-topic", ACTION_TOPIC, "--every", "0"], "--every must be at least 1"),
            "narration_without_windows": (["--action-topic", ACTION_TOPIC, "--narration", "x"],
                                          "go with --segment-seconds"),
            "out_not_empty": (["--action-topic", ACTION_TOPIC], "exists and is not empty"),
        }[case]
    source = tmp_path / "nothing" if case == "missing" else bag
    out = tmp_path / "dataset"
    if case == "out_not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    done = run_actiseg(["import", "bag", str(source), "--out", str(out)] + args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert re.search(expected, done.stderr), done.stderr
    if case == "out_not_empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert left_over(tmp_path, "dataset") == []
