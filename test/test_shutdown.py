"""Clean shutdown with real processes and real signals: SIGINT or SIGTERM to the perception node or the replay
node, one at a time or to their process group (as a terminal's Ctrl-C does), ends each within 2 s with exit code
0, no traceback and no error log line, while frames are flowing; the perception node deactivates and cleans up
(engine released) on its way out."""
import os
import signal
import time

import pytest

from ros_harness import Probe, model_for_tests, perception_node, replay_node

pytestmark = pytest.mark.ros

LIMIT_S = 2.0
REPLAY = {"width": 320, "height": 240, "rate": 30.0, "loop": True, "loop_frames": 30,
          "action_script": ["0:cut onion with knife"]}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_for_tests(tmp_path_factory)


@pytest.fixture()
def probe():
    probe = Probe("test_shutdown_probe", keep_images=False)
    yield probe
    probe.close()


def flowing(probe, node, replay, timeout: float = 90.0) -> None:
    """Wait until the node is active and its outputs for the replay's frames arrive (the worker is busy)."""
    assert probe.wait_for_state("active", timeout), node.log()
    before = len(probe.snapshot())
    assert probe.wait_for(lambda: len(probe.snapshot()) >= before + 5, 60), node.log()[-3000:] + replay.log()[-2000:]


def signal_and_time(processes, send) -> list:
    """Call send(), then wait for every process; -> [(exit code, seconds from the signal to its exit)]."""
    began = time.monotonic()
    send()
    results = []
    for process in processes:
        code = process.wait(10.0)
        results.append((code, time.monotonic() - began))
    return results


def assert_clean(process, code, elapsed, what: str) -> str:
    log = process.log()
    assert code == 0, "%s exited with %s:\n%s" % (what, code, log[-3000:])
    assert elapsed < LIMIT_S, "%s took %.2f s to end:\n%s" % (what, elapsed, log[-3000:])
    assert "Traceback" not in log and "[ERROR]" not in log, "%s:\n%s" % (what, log[-3000:])
    return log


def assert_lifecycle_left(log: str, received: str) -> None:
    assert "%s: shutting down" % received in log, log[-2000:]
    assert log.index("deactivated:") < log.index("cleaned up: model and inference engine released"), log[-2000:]


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_each_node_ends_cleanly_on_a_signal_while_frames_flow(model, probe, tmp_path, number):
    node = perception_node(tmp_path / "node.log", {"model_dir": str(model[0])})
    replay = replay_node(tmp_path / "replay.log", REPLAY)
    try:
        flowing(probe, node, replay)
        # The replay first, in the middle of its publish loop; the node keeps running without its camera.
        [(code, elapsed)] = signal_and_time([replay], lambda: replay.process.send_signal(number))
        assert_clean(replay, code, elapsed, "replay_node")
        assert node.alive()
        # Then the node, with frames still in flight: a second replay keeps its inference thread busy.
        replay = replay_node(tmp_path / "replay2.log", REPLAY)
        before = len(probe.snapshot())
        assert probe.wait_for(lambda: len(probe.snapshot()) >= before + 5, 60), replay.log()[-2000:]
        [(code, elapsed)] = signal_and_time([node], lambda: node.process.send_signal(number))
        log = assert_clean(node, code, elapsed, "perception_node")
        assert_lifecycle_left(log, number.name)
        print("%s: replay and node ended cleanly, the node in %.2f s" % (number.name, elapsed))
    finally:
        replay.stop()
        node.stop()


def test_a_process_group_signal_ends_both_cleanly(model, probe, tmp_path):
    """What a terminal's Ctrl-C (or a supervisor signalling the group) does: both nodes get SIGINT at once."""
    node = perception_node(tmp_path / "node.log", {"model_dir": str(model[0])}, process_group=0)
    replay = replay_node(tmp_path / "replay.log", REPLAY, process_group=node.pid)
    try:
        assert os.getpgid(replay.pid) == node.pid != os.getpgid(0)
        flowing(probe, node, replay)
        results = signal_and_time([node, replay], lambda: os.killpg(node.pid, signal.SIGINT))
        log = assert_clean(node, *results[0], "perception_node")
        assert_lifecycle_left(log, "SIGINT")
        assert_clean(replay, *results[1], "replay_node")
        print("process group SIGINT: node %.2f s, replay %.2f s" % (results[0][1], results[1][1]))
    finally:
        replay.stop()
        node.stop()
