"""launch/perception.launch.py: a plain, standard launch file that matches the package.

`launch` and `launch_ros` are not on PyPI, so here the file is checked by reading its syntax tree against the
package (executables, node name, parameter names, topics); where a ROS install provides them, it is also
loaded with launch itself.
"""
import ast
import importlib
from pathlib import Path

import pytest

from actiseg_ros.nodes import perception_node, replay_node
from actiseg_ros.ros.params import SPECS

ROOT = Path(__file__).resolve().parent.parent
LAUNCH_FILE = ROOT / "launch" / "perception.launch.py"
ARGUMENTS = {"image_topic", "config_file", "backend", "model_dir", "use_replay", "fastdds_profile"}


@pytest.fixture(scope="module")
def tree():
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def keyword(call, name):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def literal(node):
    return ast.literal_eval(node)


def test_imports_only_the_standard_launch_api(tree):
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
    assert modules <= {"os", "launch", "launch_ros", "ament_index_python"}, modules
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["generate_launch_description"]


def test_declares_the_documented_arguments_and_uses_each(tree):
    declared = {literal(c.args[0]) for c in calls(tree, "DeclareLaunchArgument")}
    assert declared == ARGUMENTS
    used = {literal(c.args[0]) for c in calls(tree, "LaunchConfiguration")}
    assert used == ARGUMENTS
    for call in calls(tree, "DeclareLaunchArgument"):
        assert keyword(call, "description") is not None, literal(call.args[0])


def test_perception_node_entry_matches_the_package(tree):
    nodes = {literal(keyword(c, "executable")): c for c in calls(tree, "Node")}
    assert set(nodes) == {"perception_node", "replay_node"}
    perception = nodes["perception_node"]
    assert literal(keyword(perception, "package")) == "actiseg_ros"
    assert literal(keyword(perception, "name")) == perception_node.NODE_NAME == "actiseg"
    overrides = [e for e in keyword(perception, "parameters").elts if isinstance(e, ast.Dict)][0]
    assert {literal(k) for k in overrides.keys} <= set(SPECS)
    remap = keyword(perception, "remappings").elts[0]
    assert literal(remap.elts[0]) == perception_node.IMAGE_TOPIC
    replay = nodes["replay_node"]
    assert keyword(replay, "condition") is not None  # only with use_replay:=true
    replay_params = keyword(replay, "parameters").elts[0]
    assert {literal(k) for k in replay_params.keys} <= set(replay_node.REPLAY_PARAMETERS)
    assert literal(keyword(replay, "remappings").elts[0].elts[0]) == replay_node.IMAGE_TOPIC


def test_the_executables_are_console_scripts(tree):
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


def test_shared_files_it_names_exist(tree):
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert "perception.yaml" in strings and "fastdds_shm.xml" in strings
    assert (ROOT / "config" / "perception.yaml").is_file() and (ROOT / "config" / "fastdds_shm.xml").is_file()


def real_launch_available() -> bool:
    try:
        launch = importlib.import_module("launch")
        importlib.import_module("launch_ros.actions")
    except ImportError:
        return False
    return hasattr(launch, "LaunchDescription")  # a checkout's launch/ folder imports as an empty namespace


@pytest.mark.skipif(not real_launch_available(), reason="launch and launch_ros are not installed (not on PyPI)")
def test_loads_with_launch():
    import launch
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location("perception_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, launch.LaunchDescription)
    declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    assert declared == ARGUMENTS
    assert sum(isinstance(e, Node) for e in description.entities) == 2
