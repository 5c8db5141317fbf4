"""The perception node's parameters: one table (name, default, range or choices, when it is read), the
declarations made from it, and Settings, the validated values the pipeline runs with.

Parameters marked `runtime` may change while the node is active (`ros2 param set /actiseg positive_gate 0.6`);
the others are read when the node is configured (model, backend, QoS) and are refused while it is
configured: clean the node up first (`ros2 lifecycle set /actiseg cleanup`).
"""
from __future__ import annotations

from dataclasses import dataclass

from actiseg_ros.inference.engines.select import AUTO, BACKENDS
from actiseg_ros.ros.names import check_camera_name

BACKEND_CHOICES = (AUTO,) + BACKENDS
IMAGE_QOS_CHOICES = ("sensor_data", "reliable", "system_default")
OUTPUT_QOS_CHOICES = ("reliable", "sensor_data")


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: object  # its Python type is the parameter's type (str, bool, int, float, list of str / int)
    description: str
    value_range: tuple | None = None  # (min, max) inclusive, for int and float
    choices: tuple | None = None  # allowed strings
    runtime: bool = False  # may change while configured


PARAMETERS = (
    ParamSpec("model_dir", "", "exported model folder (model_card.json, ONNX graphs); empty: the installed "
              "models/default"),
    ParamSpec("backend", AUTO, "inference backend; auto takes the fastest that works here", choices=BACKEND_CHOICES),
    ParamSpec("fallback_backend", "", "backend to use when `backend` cannot run; empty: fail instead",
              choices=("",) + BACKEND_CHOICES),
    ParamSpec("threads", 0, "ONNX Runtime intra-op threads; 0: one per core", value_range=(0, 256)),
    ParamSpec("input_size", [0, 0], "model input [height, width] this configuration expects; [0, 0] accepts the "
              "model card's. Exported graphs have a fixed size, so a mismatch fails configure instead of running "
              "another model than intended"),
    ParamSpec("max_objects", 16, "most candidate objects per action", value_range=(1, 255)),
    ParamSpec("max_image_pixels", 4096 * 4096, "larger images are refused with a warning",
              value_range=(1, 1 << 28)),
    ParamSpec("use_cv_bridge", True, "convert images with cv_bridge when a working one is installed"),
    ParamSpec("cameras", [""], "camera names served by one model: for each name C the node subscribes C/image_raw "
              "and publishes ~/C/mask, ~/C/labels, ~/C/objects, ~/C/overlay; frames of several cameras waiting "
              "together run as one batch. Empty: one camera, camera/image_raw -> ~/mask, ..."),
    ParamSpec("image_qos", "sensor_data", "camera subscription QoS: sensor_data (best effort, depth 1), reliable "
              "(depth 1) or system_default; must be compatible with the camera's publisher", choices=IMAGE_QOS_CHOICES),
    ParamSpec("output_qos", "reliable", "QoS of the outputs: reliable (depth 2; best-effort and reliable "
              "subscribers both match) or sensor_data", choices=OUTPUT_QOS_CHOICES),
    ParamSpec("diagnostics_period", 1.0, "seconds between /diagnostics messages", value_range=(0.1, 60.0)),
    ParamSpec("action", "", "action in force at start (same forms as ~/action); setting it at run time acts "
              "like publishing it", runtime=True),
    ParamSpec("always_objects", ["left hand", "right hand"], "objects added to every action's candidates",
              runtime=True),
    ParamSpec("objects", [""], "more objects added to every action's candidates (empty strings are ignored)",
              runtime=True),
    ParamSpec("positive_gate", 0.0, "an object is active (segmented) when its positive score reaches this; 0: the "
              "model card's gate", value_range=(0.0, 1.0), runtime=True),
    ParamSpec("mask_threshold", 0.0, "mask probability a pixel needs to belong to an active object; 0: the model "
              "card's threshold (calibrated on held-out data by `actiseg calibrate`)", value_range=(0.0, 0.99),
              runtime=True),
    ParamSpec("smoothing.enabled", True, "smooth positive scores across frames (moving average + hysteresis)",
              runtime=True),
    ParamSpec("smoothing.alpha", 0.5, "weight of the newest frame in the moving average (1: none)",
              value_range=(0.01, 1.0), runtime=True),
    ParamSpec("smoothing.hysteresis", 0.1, "an active object switches off only below positive_gate minus this",
              value_range=(0.0, 0.5), runtime=True),
    ParamSpec("publish_overlay", True, "publish ~/overlay (drawn only while someone subscribes)",
              runtime=True),
    ParamSpec("overlay_alpha", 0.5, "opacity of the object colours in the overlay", value_range=(0.0, 1.0),
              runtime=True),
    ParamSpec("warn_throttle", 5.0, "seconds between repeated warnings about bad images or actions",
              value_range=(0.0, 3600.0), runtime=True),
    ParamSpec("autostart", True, "configure and activate at start (otherwise wait for lifecycle transitions)"),
)
SPECS = {spec.name: spec for spec in PARAMETERS}


@dataclass(frozen=True)
class Settings:
    """Validated parameter values (names with '.' become '_')."""

    model_dir: str
    backend: str
    fallback_backend: str
    threads: int
    input_size: tuple
    max_objects: int
    max_image_pixels: int
    use_cv_bridge: bool
    cameras: tuple
    image_qos: str
    output_qos: str
    diagnostics_period: float
    action: str
    always_objects: tuple
    objects: tuple
    positive_gate: float
    mask_threshold: float
    smoothing_enabled: bool
    smoothing_alpha: float
    smoothing_hysteresis: float
    publish_overlay: bool
    overlay_alpha: float
    warn_throttle: float
    autostart: bool


def attribute(name: str) -> str:
    return name.replace(".", "_")


def check_value(spec: ParamSpec, value):
    """The value converted to the spec's type; ValueError naming the parameter when it does not fit."""
    kind = type(spec.default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError("parameter %s must be a list, got %r" % (spec.name, value))
        item_kind = type(spec.default[0])
        if not all(isinstance(v, item_kind) and not isinstance(v, bool) for v in value):
            raise ValueError("parameter %s must be a list of %s, got %r" % (spec.name, item_kind.__name__, value))
        value = tuple(value)
    elif not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ValueError("parameter %s must be %s, got %r" % (spec.name, kind.__name__, value))
    if spec.value_range is not None and not spec.value_range[0] <= value <= spec.value_range[1]:
        raise ValueError("parameter %s must be in [%s, %s], got %r" % (spec.name, spec.value_range[0],
                                                                        spec.value_range[1], value))
    if spec.choices is not None and value not in spec.choices:
        allowed = ", ".join(repr(c) for c in spec.choices)
        raise ValueError("parameter %s must be one of %s, got %r" % (spec.name, allowed, value))
    return value


def make_settings(values: dict) -> Settings:
    """{parameter name: value} (missing names take their defaults) -> Settings; ValueError when invalid."""
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ValueError("unknown parameter(s): %s" % ", ".join(unknown))
    converted = {}
    for spec in PARAMETERS:
        converted[attribute(spec.name)] = check_value(spec, values.get(spec.name, spec.default))
    size = converted["input_size"]
    if len(size) != 2 or min(size) < 0:
        raise ValueError("parameter input_size must be [height, width] (or [0, 0]), got %r" % (list(size),))
    converted["objects"] = tuple(n for n in converted["objects"] if n.strip())
    converted["always_objects"] = tuple(n for n in converted["always_objects"] if n.strip())
    try:
        converted["cameras"] = tuple(check_camera_name(n) for n in converted["cameras"] if n)
    except ValueError as err:
        raise ValueError("parameter cameras: %s" % err) from None
    if len(set(converted["cameras"])) != len(converted["cameras"]):
        raise ValueError("parameter cameras names a camera twice: %r" % (list(converted["cameras"]),))
    return Settings(**converted)


def changed_configure_time(old: Settings, new: Settings) -> list:
    """Names of the parameters that differ between two Settings and are read only at configure."""
    names = []
    for spec in PARAMETERS:
        if not spec.runtime and getattr(old, attribute(spec.name)) != getattr(new, attribute(spec.name)):
            names.append(spec.name)
    return names


# --- ROS declarations ------------------------------------------------------------------------------------

def descriptor(spec: ParamSpec):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType

    types = {str: ParameterType.PARAMETER_STRING, bool: ParameterType.PARAMETER_BOOL,
             int: ParameterType.PARAMETER_INTEGER, float: ParameterType.PARAMETER_DOUBLE}
    if isinstance(spec.default, list):
        kind = (ParameterType.PARAMETER_STRING_ARRAY if isinstance(spec.default[0], str)
                else ParameterType.PARAMETER_INTEGER_ARRAY)
    else:
        kind = types[type(spec.default)]
    text = spec.description + ("" if spec.runtime else " (read at configure)")
    # Doubles accept integers too (`alpha: 1` in YAML, `ros2 param set ... 1`); check_value converts them.
    result = ParameterDescriptor(name=spec.name, type=kind, description=text,
                                 dynamic_typing=isinstance(spec.default, float))
    if spec.choices is not None:
        result.additional_constraints = "one of: " + ", ".join(repr(c) for c in spec.choices)
    if spec.value_range is not None:
        low, high = spec.value_range
        if isinstance(spec.default, float):
            result.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
        else:
            result.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
    return result


def declare_all(node) -> dict:
    """Declare every parameter on an rclpy node; returns {name: value} as loaded (params file or default)."""
    from rclpy.parameter import Parameter

    values = {}
    for spec in PARAMETERS:
        parameter = node.declare_parameter(spec.name, spec.default, descriptor(spec))
        if parameter.value is None and isinstance(spec.default, list):
            # `objects: []` in a params file arrives untyped (ROS cannot type an empty list); [""] is the typed
            # equivalent (empty names are ignored) and keeps later `ros2 param set` calls typed.
            empty = [""] if isinstance(spec.default[0], str) else spec.default
            node.set_parameters([Parameter(spec.name, value=empty)])
            parameter = node.get_parameter(spec.name)
        values[spec.name] = parameter.value
    return values
