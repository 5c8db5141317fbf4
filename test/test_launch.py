"""launch/perception.launch.py and launch/multi_camera.launch.py: plain, standard launch files that match the
package.

`launch` and `launch_ros` are not on PyPI, so here the files are checked by reading their syntax trees against
the package (executables, node names, namespaces, parameter names, topics); where a ROS install provides them,
they are also loaded with launch itself.
"""
import ast
import importlib
from pathlib import Path

import pytest

from actiseg_ros.nodes import replay_node
from actiseg_ros.ros import names
from actiseg_ros.ros.params import SPECS, make_settings

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILES = {"perception": ROOT / "launch" / "perception.launch.py",
                "multi_camera": ROOT / "launch" / "multi_camera.launch.py"}
ARGUMENTS = {"perception": {"namespace", "image_topic", "config_file", "backend", "model_dir", "use_replay",
                            "fastdds_profile"},
             "multi_camera": {"namespace", "config_file", "backend", "model_dir", "rate", "fastdds_profile"}}


@pytest.fixture(scope="module", params=sorted(LAUNCH_FILES))
def launch_file(request):
    path = LAUNCH_FILES[request.param]
    return request.param, ast.parse(path.read_text(), filename=str(path))


def trees():
    return {name: ast.parse(path.read_text(), filename=str(path)) for name, path in LAUNCH_FILES.items()}


def calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def keyword(call, name):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def literal(node):
    return ast.literal_eval(node)


def nodes_of(tree) -> dict:
    """{node name: Node call}."""
    return {literal(keyword(c, "name")): c for c in calls(tree, "Node")}


def remaps(call) -> list:
    value = keyword(call, "remappings")
    return [] if value is None else [(literal(e.elts[0]), e.elts[1]) for e in value.elts]


def parameter_dict(call) -> dict:
    """The literal keys of the Node's parameters dict, with values where they are literals."""
    found = [e for e in keyword(call, "parameters").elts if isinstance(e, ast.Dict)][0]
    out = {}
    for key, value in zip(found.keys, found.values):
        try:
            out[literal(key)] = literal(value)
        except ValueError:
            out[literal(key)] = value  # a LaunchConfiguration
    return out


def test_imports_only_the_standard_launch_api(launch_file):
    _name, tree = launch_file
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
    assert modules <= {"os", "launch", "launch_ros", "ament_index_python"}, modules
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["generate_launch_description"]


def test_declares_the_documented_arguments_and_uses_each(launch_file):
    name, tree = launch_file
    declared = {literal(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    assert declared == ARGUMENTS[name]
    used = {literal(c.args[0]) for c in calls(tree, "LaunchConfiguration")}
    assert used == ARGUMENTS[name]
    for call in calls(tree, "DeclareLaunchArgument"):
        assert keyword(call, "description") is not None, literal(call.args[0])
    docstring = ast.get_docstring(tree)
    for argument in ARGUMENTS[name]:
        assert argument in docstring, argument


def test_fastdds_profile_says_what_happens_when_the_variable_is_unset(launch_file):
    """`ros2 launch --show-args` prints the default as EnvVar(...): the description must explain it."""
    _name, tree = launch_file
    call = [c for c in calls(tree, "DeclareLaunchArgument") if literal(c.args[0]) == "fastdds_profile"][0]
    text = literal(keyword(call, "description"))
    assert "FASTDDS_DEFAULT_PROFILES_FILE" in text and "unset" in text and "fastdds_shm.xml" in text
    assert "32 MiB" in text


def test_every_node_takes_the_namespace_argument(launch_file):
    _name, tree = launch_file
    for node_name, call in nodes_of(tree).items():
        namespace = keyword(call, "namespace")
        assert isinstance(namespace, ast.Name) and namespace.id == "namespace", node_name
    declared = [c for c in calls(tree, "DeclareLaunchArgument") if literal(c.args[0]) == "namespace"][0]
    # '' keeps a namespace pushed by an including launch file (PushRosNamespace); '/x' would override it.
    assert literal(keyword(declared, "default_value")) == ""


def test_perception_launch_matches_the_package():
    tree = trees()["perception"]
    nodes = nodes_of(tree)
    assert set(nodes) == {names.NODE_NAME, "actiseg_replay"}
    perception = nodes[names.NODE_NAME]
    assert literal(keyword(perception, "package")) == "actiseg_ros"
    assert literal(keyword(perception, "executable")) == "perception_node"
    assert set(parameter_dict(perception)) <= set(SPECS)
    assert [source for source, _target in remaps(perception)] == [names.IMAGE_TOPIC]
    image_topic = [c for c in calls(tree, "DeclareLaunchArgument") if literal(c.args[0]) == "image_topic"][0]
    assert literal(keyword(image_topic, "default_value")) == names.IMAGE_TOPIC  # relative: follows the namespace
    replay = nodes["actiseg_replay"]
    assert literal(keyword(replay, "executable")) == "replay_node"
    assert keyword(replay, "condition") is not None  # only with use_replay:=true
    assert set(parameter_dict(replay)) <= set(replay_node.REPLAY_PARAMETERS)
    assert [source for source, _target in remaps(replay)] == [replay_node.IMAGE_TOPIC] == [names.IMAGE_TOPIC]


def test_multi_camera_launch_feeds_each_camera_of_the_node():
    nodes = nodes_of(trees()["multi_camera"])
    assert set(nodes) == {names.NODE_NAME, "replay_head", "replay_wrist"}
    perception = nodes[names.NODE_NAME]
    assert literal(keyword(perception, "executable")) == "perception_node"
    params = parameter_dict(perception)
    assert set(params) <= set(SPECS)
    cameras = params["cameras"]
    assert make_settings({"cameras": cameras}).cameras == ("head", "wrist")
    senders = []
    for camera in cameras:
        replay = nodes["replay_" + camera]
        assert literal(keyword(replay, "executable")) == "replay_node"
        replay_params = parameter_dict(replay)
        assert set(replay_params) <= set(replay_node.REPLAY_PARAMETERS)
        assert replay_params["frame_id"] == camera
        assert [(source, literal(target)) for source, target in remaps(replay)] == [
            (replay_node.IMAGE_TOPIC, names.camera_topic(camera))]
        if replay_params["action_script"] != [""]:
            senders.append(camera)
    assert senders == ["head"]  # one stream sends the actions; the node has one action for all cameras
    assert replay_node.ACTION_TOPIC == names.REPLAY_ACTION_TOPIC == names.NODE_NAME + "/action"


def test_the_executables_are_console_scripts():
    setup = ast.parse((ROOT / "setup.py").read_text())
    scripts = [literal(e) for n in ast.walk(setup) if isinstance(n, ast.Dict)
               for k, v in zip(n.keys, n.values) if k is not None and isinstance(k, ast.Constant)
               and k.value == "console_scripts" for e in v.elts]
    targets = dict(s.replace(" ", "").split("=") for s in scripts)
    assert targets["perception_node"] == "actiseg_ros.nodes.perception_node:main"
    assert targets["replay_node"] == "actiseg_ros.nodes.replay_node:main"
    for target in targets.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_shared_files_they_name_exist(launch_file):
    _name, tree = launch_file
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert "perception.yaml" in strings and "fastdds_shm.xml" in strings
    assert (ROOT / "config" / "perception.yaml").is_file() and (ROOT / "config" / "fastdds_shm.xml").is_file()


def test_perception_node_is_a_module_level_lifecycle_node():
    from rclpy.lifecycle import LifecycleNode

    from actiseg_ros.nodes import perception_node

    assert issubclass(perception_node.PerceptionNode, LifecycleNode)
    assert perception_node.PerceptionNode.__qualname__ == "PerceptionNode"
    assert perception_node.NODE_NAME == names.NODE_NAME == "actiseg"


def real_launch_available() -> bool:
    try:
        launch = importlib.import_module("launch")
        importlib.import_module("launch_ros.actions")
    except ImportError:
        return False
    return hasattr(launch, "LaunchDescription")  # a checkout's launch/ folder imports as an empty namespace


@pytest.mark.skipif(not real_launch_available(), reason="launch and launch_ros are not installed (not on PyPI)")
@pytest.mark.parametrize("name, node_count", [("perception", 2), ("multi_camera", 3)])
def test_loads_with_launch(name, node_count):
    import launch
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location(name + "_launch", LAUNCH_FILES[name])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, launch.LaunchDescription)
    declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert declared == ARGUMENTS[name]
    assert sum(isinstance(e, Node) for e in description.entities) == node_count
