"""`actiseg run`: the node alone, with options turned into --ros-args, as a real process."""
import argparse
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from exported_model import tiny_export
from ros_harness import Probe

from actiseg_ros.ros.image_conversion import from_array
from actiseg_ros.run_cli import add_arguments, node_argv

pytestmark = pytest.mark.ros  # real ROS 2 processes


def parse(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_options_become_ros_arguments(tmp_path):
    config = tmp_path / "p.yaml"
    config.write_text("actiseg:\n  ros__parameters:\n    threads: 1\n")
    argv = node_argv(parse(["--config", str(config), "--model", str(tmp_path), "--backend", "ort-cpu",
                            "--image-topic", "/cam/rgb", "--action", "stir pan", "--param", "positive_gate:=0.6"]))
    assert argv[:4] == ["actiseg-run", "--ros-args", "--params-file", str(config)]
    text = " ".join(argv)
    for expected in ('model_dir:="%s"' % tmp_path, 'backend:="ort-cpu"', 'action:="stir pan"',
                     "-r camera/image_raw:=/cam/rgb", "-p positive_gate:=0.6"):
        assert expected in text, expected
    assert "--params-file" in node_argv(parse([]))  # the installed config by default
    with pytest.raises(SystemExit, match="no such file"):
        node_argv(parse(["--config", str(tmp_path / "none.yaml")]))
    with pytest.raises(SystemExit, match="NAME:=VALUE"):
        node_argv(parse(["--param", "positive_gate=0.6"]))


def test_actiseg_run_serves_a_remapped_camera_and_stops_on_ctrl_c(tmp_path_factory, tmp_path):
    model = tiny_export(tmp_path_factory) / "model"
    log = open(tmp_path / "run.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "actiseg_ros.cli", "run", "--model", str(model),
                                "--image-topic", "/test_run/rgb", "--action", "stir pan"],
                               stdout=log, stderr=subprocess.STDOUT)
    probe = Probe("test_run_probe", image_topic="/test_run/rgb")
    try:
        assert probe.wait_for_state("active", 90), (tmp_path / "run.log").read_text()
        assert probe.wait_for_subscriber()
        frame = from_array(np.zeros((48, 64, 3), np.uint8), "rgb8")

        def answered():
            stamp = probe.publish_image(frame)
            time.sleep(0.2)
            out = probe.snapshot().get(stamp)
            return out is not None and out.get("objects", {}).get("action") == "stir pan"

        assert probe.wait_for(answered, 30), (tmp_path / "run.log").read_text()
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        probe.close()
        log.close()
