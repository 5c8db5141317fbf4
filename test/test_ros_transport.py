"""Real rclpy across processes: camera-sized frames with the product's Fast DDS profile."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros  # real ROS 2 processes


PROGRAMS = Path(__file__).parent / "ros_programs"


def test_vga_frames_at_30hz_arrive_without_loss():
    count = 90  # 3 s at 30 Hz
    subscriber = subprocess.Popen([sys.executable, str(PROGRAMS / "image_counter.py"), "--count", str(count)],
                                  stdout=subprocess.PIPE, text=True)
    try:
        assert subscriber.stdout.readline().strip() == "READY"
        publisher = subprocess.run([sys.executable, str(PROGRAMS / "image_publisher.py"), "--count", str(count),
                                    "--rate", "30", "--width", "640", "--height", "480"], timeout=60)
        assert publisher.returncode == 0
        out, _ = subscriber.communicate(timeout=40)
    finally:
        if subscriber.poll() is None:
            subscriber.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["corrupt"] == []
    lost = sorted(set(range(count)) - set(result["received"]))
    assert result["received"] == list(range(count)), "lost frames: %s" % lost


def test_profile_is_the_shipped_one():
    import os

    from actiseg_ros.dds import PROFILE_ENV, default_profile

    assert os.environ[PROFILE_ENV] == str(default_profile())
    text = default_profile().read_text()
    assert "<segment_size>33554432</segment_size>" in text
    assert 'is_default_profile="true"' in text
