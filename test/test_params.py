"""Node parameters: the table, validation, the shipped YAML, and declaration on a real rclpy node."""
import dataclasses

import pytest
import yaml

from actiseg_ros.paths import share_dir
from actiseg_ros.ros.params import (PARAMETERS, SPECS, Settings, attribute, changed_configure_time, check_value,
                                    declare_all, descriptor, make_settings)


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, prefix + key + "."))
        else:
            out[prefix + key] = value
    return out


def test_settings_fields_are_the_parameters():
    assert [f.name for f in dataclasses.fields(Settings)] == [attribute(p.name) for p in PARAMETERS]
    defaults = make_settings({})
    assert defaults.backend == "auto" and defaults.always_objects == ("left hand", "right hand")
    assert defaults.objects == ()  # the typed-empty default [""] means no objects
    assert defaults.cameras == ()  # one camera: camera/image_raw
    assert defaults.positive_gate == 0.0 and defaults.mask_threshold == 0.0  # 0: the model card's thresholds
    assert make_settings({"cameras": ["head", "arm/wrist", ""]}).cameras == ("head", "arm/wrist")


@pytest.mark.parametrize("name, value, words", [
    ("positive_gate", 1.5, "[0.0, 1.0]"),
    ("positive_gate", "high", "must be float"),
    ("backend", "cuda", "one of"),
    ("image_qos", "best_effort", "one of"),
    ("threads", 2.0, "must be int"),
    ("autostart", 1, "must be bool"),
    ("objects", "knife", "must be a list"),
    ("objects", ["knife", 3], "list of str"),
    ("input_size", [192], "[height, width]"),
    ("cameras", ["head", "head"], "twice"),
    ("cameras", ["/head"], "ROS name tokens"),
    ("cameras", ["~/head"], "ROS name tokens"),
    ("cameras", ["head/"], "ROS name tokens"),
    ("cameras", ["2nd"], "ROS name tokens"),
])
def test_invalid_values_are_refused_with_the_parameter_named(name, value, words):
    with pytest.raises(ValueError) as err:
        make_settings({name: value})
    assert name in str(err.value) and words in str(err.value)


def test_integers_are_accepted_for_doubles():
    assert check_value(SPECS["smoothing.alpha"], 1) == 1.0
    assert isinstance(make_settings({"positive_gate": 1}).positive_gate, float)


def test_unknown_parameter_is_refused():
    with pytest.raises(ValueError, match="unknown parameter"):
        make_settings({"positive_gait": 0.5})


def test_configure_time_changes_are_told_apart():
    old = make_settings({})
    new = make_settings({"positive_gate": 0.6, "model_dir": "/m", "image_qos": "reliable"})
    assert changed_configure_time(old, new) == ["model_dir", "image_qos"]


def test_shipped_yaml_sets_every_parameter_with_a_valid_value():
    document = yaml.safe_load((share_dir() / "config" / "perception.yaml").read_text())
    assert list(document) == ["/**"]  # applies under any namespace and node name
    values = flatten(document["/**"]["ros__parameters"])
    assert set(values) == set(SPECS)
    settings = make_settings(values)
    for spec in PARAMETERS:  # the file documents the defaults, it does not change them
        assert getattr(settings, attribute(spec.name)) == getattr(make_settings({}), attribute(spec.name)), spec.name


def test_descriptors_carry_type_range_and_choices():
    from rcl_interfaces.msg import ParameterType

    gate = descriptor(SPECS["positive_gate"])
    assert gate.type == ParameterType.PARAMETER_DOUBLE and gate.dynamic_typing
    assert (gate.floating_point_range[0].from_value, gate.floating_point_range[0].to_value) == (0.0, 1.0)
    threads = descriptor(SPECS["threads"])
    assert threads.integer_range[0].to_value == 256
    assert "ort-cpu" in descriptor(SPECS["backend"]).additional_constraints
    assert descriptor(SPECS["objects"]).type == ParameterType.PARAMETER_STRING_ARRAY
    assert "read at configure" in descriptor(SPECS["model_dir"]).description
    assert "read at configure" not in descriptor(SPECS["positive_gate"]).description


def test_declaring_on_a_node_reads_a_params_file(tmp_path):
    import rclpy

    params = tmp_path / "p.yaml"
    params.write_text("actiseg:\n  ros__parameters:\n    objects: []\n    always_objects: []\n"
                      "    smoothing:\n      alpha: 1\n    positive_gate: 0.6\n")
    context = rclpy.Context()
    rclpy.init(args=["--ros-args", "--params-file", str(params)], context=context)
    try:
        node = rclpy.create_node("actiseg", context=context)
        settings = make_settings(declare_all(node))
        assert settings.positive_gate == 0.6 and settings.smoothing_alpha == 1.0
        assert settings.objects == () and settings.always_objects == ()  # [] in YAML: none, not the defaults
        assert node.describe_parameter("mask_threshold").floating_point_range[0].to_value == 0.99
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


@pytest.mark.ros
def test_a_params_file_keyed_for_any_node_applies_under_a_namespace(tmp_path):
    """`/**` reaches /robot1/actiseg; a file keyed by the bare node name (`actiseg:`) does not (the issue's case)."""
    import rclpy

    any_node = tmp_path / "any.yaml"
    any_node.write_text("/**:\n  ros__parameters:\n    positive_gate: 0.6\n    cameras: [head, wrist]\n")
    bare_name = tmp_path / "bare.yaml"
    bare_name.write_text("actiseg:\n  ros__parameters:\n    positive_gate: 0.6\n")
    found = {}
    for label, path in (("any", any_node), ("bare", bare_name)):
        context = rclpy.Context()
        rclpy.init(args=["--ros-args", "-r", "__ns:=/robot1", "--params-file", str(path)], context=context)
        try:
            node = rclpy.create_node("actiseg", context=context)
            assert node.get_fully_qualified_name() == "/robot1/actiseg"
            found[label] = make_settings(declare_all(node))
            node.destroy_node()
        finally:
            rclpy.try_shutdown(context=context)
    assert found["any"].positive_gate == 0.6 and found["any"].cameras == ("head", "wrist")
    assert found["bare"].positive_gate == 0.0
