"""`actiseg run`: the perception node alone, for pip users without `ros2 run` / `ros2 launch`.

    actiseg run --config config/perception.yaml --image-topic /my_camera/image_raw --action "cut onion with knife"

It is the same process as the ROS executable `perception_node` (same parameters, topics and lifecycle); the
options only build its `--ros-args`. Stop it with Ctrl-C.
"""
from __future__ import annotations

import argparse

from actiseg_ros.ros.names import IMAGE_TOPIC
from actiseg_ros.tools.processes import ros_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None,
                        help="parameters YAML (default: the installed config/perception.yaml)")
    parser.add_argument("--model", default=None, help="exported model folder (parameter model_dir)")
    parser.add_argument("--backend", default=None, help="inference backend (parameter backend)")
    parser.add_argument("--image-topic", default=None, help="camera topic (remaps %s)" % IMAGE_TOPIC)
    parser.add_argument("--action", default=None, help="action in force at start, e.g. 'cut onion with knife'")
    parser.add_argument("--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="any other node parameter (repeatable), e.g. --param positive_gate:=0.6")


def node_argv(args) -> list:
    """The argv perception_node.main() receives."""
    from pathlib import Path

    config = args.config
    if config is None:
        from actiseg_ros.paths import config_file

        try:
            shipped = config_file("perception.yaml")
            config = str(shipped) if shipped.is_file() else None
        except FileNotFoundError:
            config = None
    elif not Path(config).is_file():
        raise SystemExit("--config %s: no such file" % config)
    params = {}
    if args.model:
        params["model_dir"] = str(Path(args.model).expanduser().resolve())
    if args.backend:
        params["backend"] = args.backend
    if args.action is not None:
        params["action"] = args.action
    remaps = {IMAGE_TOPIC: args.image_topic} if args.image_topic else None
    argv = ["actiseg-run"] + ros_arguments(params, config, remaps)
    for item in args.param:
        if ":=" not in item:
            raise SystemExit("--param %r must be NAME:=VALUE" % item)
        argv += ["-p", item]
    return argv


def main(args) -> int:
    from actiseg_ros.nodes.perception_node import main as node_main

    return node_main(node_argv(args))
