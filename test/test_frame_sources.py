"""Replay frame sources: synthetic stream, image folder, video file, ActionVOS sequence; script entries."""
import cv2
import numpy as np
import pytest

from actiseg_ros.tools.frame_sources import SourceError, open_source, parse_script

pytestmark = pytest.mark.slow  # full synthetic generations or command-line subprocesses


def test_synthetic_source_frames_and_auto_script():
    source = open_source("synthetic", seed=2, size=(96, 64), actions=2)
    assert source.frame(0).shape == (64, 96, 3)
    timeline = source.stream.timeline
    script = source.auto_script(0, len(source))
    assert [(i, n) for i, n, _names in script] == [(first, narration) for first, _last, narration in timeline]
    assert "left hand" in script[0][2]
    assert source.auto_script(timeline[1][0] - 3, timeline[1][0] + 1)[0][0] == timeline[1][0] - 3


def test_folder_source_reads_sorted_images_and_resizes(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / ("f%d.png" % i)), np.full((20, 30, 3), (i * 10, 0, 0), np.uint8))
    source = open_source("folder", str(tmp_path), size=(15, 10))
    assert len(source) == 3
    assert source.frame(2).shape == (10, 15, 3) and source.frame(2)[0, 0, 2] == 20  # BGR on disk -> RGB
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no"):
        open_source("folder", str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="does not exist"):
        open_source("folder", str(tmp_path / "missing"))


def test_video_source(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    assert writer.isOpened()
    for value in range(6):
        writer.write(np.full((24, 32, 3), value * 40, np.uint8))
    writer.release()
    source = open_source("video", str(path), size=(0, 0))
    assert len(source) == 6
    assert abs(int(source.frame(3)[5, 5, 0]) - 120) < 12
    assert abs(int(source.frame(0)[5, 5, 0]) - 0) < 12  # out of order: seeks
    with pytest.raises(SourceError, match="cannot open the video"):
        open_source("video", str(tmp_path / "none.mp4"))


def test_actionvos_source(tmp_path):
    from actiseg_ros.data import synth

    plan = synth.plan_dataset(synth.PRESETS["tiny"], seed=0)
    segments = synth.write_dataset(plan, tmp_path, size=(64, 48))
    segment = segments[0]  # the first segment written is a training one
    source = open_source("actionvos", str(tmp_path), split="train", sequence=segment.name, size=(0, 0))
    assert len(source) == len(segment.sparse_frames) and source.frame(0).shape == (48, 64, 3)
    assert source.auto_script(0, len(source))[0][1] == segment.narration
    with pytest.raises(SourceError, match="no sequence"):
        open_source("actionvos", str(tmp_path), split="train", sequence="nope")


def test_bad_sources_are_named():
    with pytest.raises(SourceError, match="unknown source"):
        open_source("webcam")
    with pytest.raises(SourceError, match="needs the parameter path"):
        open_source("video")


def test_parse_script():
    assert parse_script(["30: stir pan", "", "0:cut onion: finely"]) == [(0, "cut onion: finely"), (30, "stir pan")]
    with pytest.raises(SourceError, match="FRAME:ACTION"):
        parse_script(["stir pan"])
