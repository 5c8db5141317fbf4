"""Names that follow ROS conventions, with real processes: the perception node and the replay started under a
namespace (`--ros-args -r __ns:=/robot1`, what a launch `namespace` or PushRosNamespace passes) move every
topic into it, and a params file keyed `/**` reaches the node there."""
import pytest

from ros_harness import Probe, model_for_tests, perception_node, read_manifest, replay_node

from actiseg_ros.ros import names

NAMESPACE = "/robot1"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_for_tests(tmp_path_factory)


def test_names_resolve_like_ros_does():
    assert names.resolve(names.camera_topic()) == "/camera/image_raw"
    assert names.resolve(names.output_topic("mask")) == "/actiseg/mask"
    assert names.resolve(names.ACTION_TOPIC) == "/actiseg/action"
    assert names.resolve(names.camera_topic(), "robot1") == "/robot1/camera/image_raw"
    assert names.resolve(names.output_topic("mask"), "/robot1/") == "/robot1/actiseg/mask"
    assert names.resolve(names.output_topic("objects", "head"), "/robot1") == "/robot1/actiseg/head/objects"
    assert names.resolve(names.camera_topic("arm/wrist"), "/robot1") == "/robot1/arm/wrist/image_raw"
    assert names.resolve(names.DIAGNOSTICS_TOPIC, "/robot1") == "/diagnostics"
    assert names.resolve(names.REPLAY_ACTION_TOPIC, "/robot1") == names.resolve(names.ACTION_TOPIC, "/robot1")
    with pytest.raises(ValueError, match="no output"):
        names.output_topic("masks")


@pytest.mark.ros
def test_node_and_replay_under_a_namespace_with_a_params_file_for_any_node(model, tmp_path):
    params_file = tmp_path / "robot.yaml"
    params_file.write_text("/**:\n  ros__parameters:\n    positive_gate: 0.6\n    smoothing:\n      enabled: false\n")
    node_name = NAMESPACE.strip("/") + "/" + names.NODE_NAME
    probe = Probe("test_ns_probe", namespace=NAMESPACE)
    node = perception_node(tmp_path / "node.log", {"model_dir": str(model[0])}, params_file=params_file,
                           namespace=NAMESPACE)
    try:
        assert probe.wait_for(lambda: _state(probe, node_name) == "active", 90), node.log()
        expected = {"/robot1/camera/image_raw", "/robot1/actiseg/action", "/robot1/actiseg/mask",
                    "/robot1/actiseg/labels", "/robot1/actiseg/objects", "/robot1/actiseg/overlay", "/diagnostics"}
        assert probe.wait_for(lambda: expected <= set(probe.topics()), 20), sorted(probe.topics())
        at_root = {"/camera/image_raw", "/actiseg/mask", "/actiseg/labels", "/actiseg/objects", "/actiseg/action"}
        assert not at_root & set(probe.topics()), sorted(at_root & set(probe.topics()))

        # The `/**` file reached /robot1/actiseg: the parameter, and the gate the pipeline uses.
        assert probe.get_parameters(["positive_gate", "smoothing.enabled"], node=node_name) == [0.6, False]

        def reported_gate():
            found = [values for status, _level, _msg, values in list(probe.diagnostics)
                     if status == node_name + ": perception"]
            return found[-1].get("positive_gate") if found else None
        assert probe.wait_for(lambda: reported_gate() == "0.60", 10), reported_gate()

        # The replay in the same namespace feeds the node: frames on /robot1/camera/image_raw, the action on
        # /robot1/actiseg/action; the outputs come back on /robot1/actiseg/*.
        manifest = tmp_path / "manifest.jsonl"
        replay = replay_node(tmp_path / "replay.log", {"width": 160, "height": 120, "count": 20, "rate": 10.0,
                                                       "action_script": ["0:cut onion with knife"],
                                                       "manifest": str(manifest)}, namespace=NAMESPACE)
        assert replay.wait(60) == 0, replay.log()
        assert "[ERROR]" not in replay.log() and "Traceback" not in replay.log(), replay.log()
        _header, frames, _actions = read_manifest(manifest)
        stamps = {f["stamp_ns"] for f in frames}

        def answered():
            outputs = probe.snapshot()
            return sum(1 for stamp, out in outputs.items() if stamp in stamps and "objects" in out) >= 5
        assert probe.wait_for(answered, 30), node.log()[-3000:]
        outputs = [out for stamp, out in probe.snapshot().items() if stamp in stamps and "objects" in out]
        assert all(out["frame_id"] == "camera" for out in outputs)
        assert outputs[-1]["objects"]["action"] == "cut onion with knife"
        for out in outputs:  # smoothing is off: each decision is this frame's score against the file's gate
            assert all(o["active"] == (o["score"] >= 0.6) for o in out["objects"]["objects"]
                       if abs(o["score"] - 0.6) > 1e-3), out["objects"]  # scores are sent rounded to 4 places
        assert node.alive()
    finally:
        node.stop()
        probe.close()


def _state(probe, node_name):
    try:
        return probe.lifecycle_state(node_name, timeout=2.0)
    except TimeoutError:
        return None


@pytest.mark.slow
def test_the_command_and_the_names_import_without_rclpy(tmp_path):
    """The node module imports rclpy at its top (a ROS package's node); the `actiseg` command, its `run`
    options and the topic names must not need it (pip users without the ROS wheels, `actiseg --help`)."""
    import subprocess
    import sys

    code = r"""
import importlib, importlib.abc, sys

class NoRos(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "diagnostic_msgs"):
            raise ModuleNotFoundError("No module named %r (blocked by test)" % name, name=name)
        return None

sys.meta_path.insert(0, NoRos())
for name in ("actiseg_ros.cli", "actiseg_ros.run_cli", "actiseg_ros.ros.names", "actiseg_ros.ros.params",
             "actiseg_ros.ros.pipeline", "actiseg_ros.ros.latest_frame"):
    importlib.import_module(name)
assert "rclpy" not in sys.modules
try:
    importlib.import_module("actiseg_ros.nodes.perception_node")
except ModuleNotFoundError as err:
    print("node needs", err.name)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "node needs rclpy"
