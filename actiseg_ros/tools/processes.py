"""Start the package's ROS executables as child processes (for `actiseg demo` and the node benchmark).

Children are started with the current interpreter (`python -m actiseg_ros.nodes...`) and inherit the whole
environment: the ROS wheels re-exec the interpreter with their library path, and a sanitised environment
breaks that (see the platform notes).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

PERCEPTION_MODULE = "actiseg_ros.nodes.perception_node"
REPLAY_MODULE = "actiseg_ros.nodes.replay_node"


def ros_literal(value) -> str:
    """A Python value as the YAML literal of `-p name:=value` (floats keep their '.', so ROS types them double)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str, list)):
        return json.dumps(value)
    raise TypeError("no ROS parameter literal for %r" % (value,))


def ros_arguments(params: dict, params_file=None, remaps: dict | None = None) -> list:
    args = ["--ros-args"]
    if params_file:
        args += ["--params-file", str(params_file)]
    for name, value in params.items():
        args += ["-p", "%s:=%s" % (name, ros_literal(value))]
    for source, target in (remaps or {}).items():
        args += ["-r", "%s:=%s" % (source, target)]
    return args


class ChildNode:
    """A node process whose output goes to a log file."""

    def __init__(self, module: str, log_path, params: dict, params_file=None, remaps: dict | None = None,
                 process_group: int | None = None):
        """remaps: {from: to}, e.g. {'camera/image_raw': '/my/camera'} or {'__ns': '/robot1'}; process_group:
        as subprocess.Popen's (0: a new group led by this process), so a test can signal a group as launch
        does."""
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", module] + ros_arguments(params, params_file, remaps),
                                        stdout=self._log, stderr=subprocess.STDOUT, process_group=process_group)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None when still running after `timeout` seconds."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGINT (a clean ROS shutdown), then SIGKILL if it does not end in time."""
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            if self.wait(timeout) is None:
                self.process.kill()
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


def read_manifest(path) -> tuple:
    """replay_node's manifest -> (header dict, frames [{index, source_index, stamp, stamp_ns}],
    actions [{action, before, source_index}])."""
    lines = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError("%s is empty: the replay published nothing" % path)
    frames = [dict(f, stamp_ns=f["stamp"][0] * 10**9 + f["stamp"][1]) for f in lines[1:] if "index" in f]
    actions = [a for a in lines[1:] if "action" in a]
    return lines[0], frames, actions


def wait_until(predicate, timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return bool(predicate())


def run_replay_session(collector, logs, node_params: dict, replay_params: dict, deadline: float,
                       params_file=None, activate_timeout: float = 120.0) -> tuple:
    """perception_node and replay_node as two processes, the way the demo and the node benchmark run them:
    start the node, wait until its lifecycle is active, replay to the end, let the last outputs arrive,
    and always stop both and close `collector` (a ros.collector.OutputCollector already subscribed).

    deadline: time.monotonic() by which the replay must have finished (at least 10 s are always granted).
    -> (collector records, the node's last diagnostics {key: value}); SystemExit with the failing node's
    log tail when a node does not start, or the replay fails or overruns.
    """
    logs = Path(logs)
    node = ChildNode(PERCEPTION_MODULE, logs / "perception_node.log", node_params, params_file=params_file)
    replay = None
    try:
        if not wait_until(lambda: not node.alive() or collector.lifecycle_state() == "active", activate_timeout) \
                or not node.alive():
            raise SystemExit("the perception node did not become active:\n" + node.log_tail())
        replay = ChildNode(REPLAY_MODULE, logs / "replay_node.log", replay_params)
        code = replay.wait(max(10.0, deadline - time.monotonic()))
        if code is None:
            raise SystemExit("the replay did not finish in time:\n" + replay.log_tail())
        if code != 0:
            raise SystemExit("the replay failed (exit %s):\n%s" % (code, replay.log_tail()))
        collector.wait_quiet(quiet=1.5, timeout=30)
        diagnostics = dict(collector.diagnostics.get("actiseg: perception", {}))
    finally:
        if replay is not None:
            replay.stop()
        node.stop()
        records = collector.snapshot()
        collector.close()
    return records, diagnostics
