"""Topic names of the perception node, as ROS conventions want them: inputs relative to the node's namespace,
outputs and the action under the node's private namespace (`~`), diagnostics absolute.

At the root namespace with the node named `actiseg` they resolve to /camera/image_raw, /actiseg/mask, ...;
started under namespace robot1 (`--ros-args -r __ns:=/robot1`, a launch `namespace` or PushRosNamespace) to
/robot1/camera/image_raw, /robot1/actiseg/mask, ...; each can be remapped (`-r camera/image_raw:=/my/camera`).
Plain strings, no rclpy: the `actiseg` command and the tests read them without starting ROS.
"""
from __future__ import annotations

import re

NODE_NAME = "actiseg"
IMAGE_TOPIC = "camera/image_raw"  # the single camera (parameter cameras empty)
ACTION_TOPIC = "~/action"
OUTPUT_KINDS = ("mask", "labels", "objects", "overlay")
DIAGNOSTICS_TOPIC = "/diagnostics"
# replay_node publishes the action relative to its own namespace, so it reaches the node `actiseg` of the same
# namespace; remap it (`-r actiseg/action:=other/action`) to drive a node with another name.
REPLAY_ACTION_TOPIC = NODE_NAME + "/action"

_TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def check_camera_name(name: str) -> str:
    """A camera name of the `cameras` parameter: one or more ROS name tokens joined by '/' (head, arm/wrist);
    ValueError naming it otherwise (absolute or private names would leave the node's namespace)."""
    if not isinstance(name, str) or not name or not all(_TOKEN.match(token) for token in name.split("/")):
        raise ValueError("camera name %r must be ROS name tokens (a letter, then letters, digits or '_') joined by "
                         "'/', like head or arm/wrist" % (name,))
    return name


def camera_topic(camera: str = "") -> str:
    """The image topic of a camera ('' = the single camera): camera/image_raw, or C/image_raw."""
    return IMAGE_TOPIC if not camera else "%s/image_raw" % camera


def output_topic(kind: str, camera: str = "") -> str:
    """~/mask for the single camera, ~/C/mask for camera C."""
    if kind not in OUTPUT_KINDS:
        raise ValueError("no output %r (have %s)" % (kind, ", ".join(OUTPUT_KINDS)))
    return "~/%s" % kind if not camera else "~/%s/%s" % (camera, kind)


def resolve(topic: str, namespace: str = "/", node: str = NODE_NAME) -> str:
    """The absolute name a topic of the table above gets for a node `node` in `namespace` (no remapping)."""
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if topic.startswith("/"):
        return topic
    if topic.startswith("~/"):
        return "%s/%s/%s" % (namespace, node, topic[2:])
    return "%s/%s" % (namespace, topic)
