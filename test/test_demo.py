"""`actiseg demo` end to end (real node and replay processes) on a small synthetic stream."""
import json
import subprocess
import sys

import cv2
import pytest

from exported_model import tiny_export

from actiseg_ros.data.synth import SceneStream
from actiseg_ros.tools.demo import parse_size, pick_still

pytestmark = pytest.mark.ros  # real ROS 2 processes


def test_demo_writes_report_video_and_still(tmp_path_factory, tmp_path):
    model = tiny_export(tmp_path_factory) / "model"
    report_path, video, still = tmp_path / "report.json", tmp_path / "overlay.mp4", tmp_path / "overlay.png"
    result = subprocess.run([sys.executable, "-m", "actiseg_ros.cli", "demo", "--model", str(model), "--json",
                             str(report_path), "--video", str(video), "--still", str(still), "--size", "160x120",
                             "--actions", "2", "--seed", "1", "--logs", str(tmp_path / "logs"), "--timeout", "240"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    for key in ("hz", "latency_ms_p50", "latency_ms_p95", "drops", "mean_iou", "per_action"):
        assert key in report, key
    stream = SceneStream(seed=1, size=(160, 120), actions=2)
    assert report["frames_published"] == len(stream)
    assert report["drops"] == report["frames_published"] - report["frames_segmented"]
    assert report["frames_segmented"] >= len(stream) // 3
    assert report["hz"] > 5 and 0 < report["latency_ms_p50"] <= report["latency_ms_p95"] < 2000
    assert [row["action"] for row in report["per_action"]] == [narration for _f, _l, narration in stream.timeline]
    sent = [json.loads(a) for a in report["actions_sent"]]  # JSON form: the narration + the scene's objects
    assert [a["action"] for a in sent] == [row["action"] for row in report["per_action"]]
    assert all("left hand" in a["objects"] for a in sent)
    assert 0.0 <= report["mean_iou"] <= 1.0
    written = report["video"]
    capture = cv2.VideoCapture(written)
    ok, frame = capture.read()
    capture.release()
    assert ok and frame.shape == (120, 160, 3), written
    assert cv2.imread(str(still)).shape == (120, 160, 3)
    assert "mean IoU vs ground truth" in result.stdout


def test_size_argument_and_still_choice():
    assert parse_size("640x360") == (640, 360)
    for bad in ("640", "axb", "16x16"):
        with pytest.raises(Exception):
            parse_size(bad)
    rows = [({}, {"objects": {"objects": [{"active": a} for a in actives]}}) for actives in
            ([False], [True, True], [True], [True, True])]
    assert pick_still(rows) == 1  # most active objects, nearest the middle on ties
