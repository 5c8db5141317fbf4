"""replay_node: a camera stand-in. Publishes frames of a video file, an image folder, an ActionVOS sequence or
the built-in synthetic stream on camera/image_raw at a set rate (header stamp = publish time, frame_id from
a parameter), and optionally a scripted sequence of actions on actiseg/action. Both names are relative, so
under a namespace they reach the perception node of that namespace (/robot1/camera/image_raw,
/robot1/actiseg/action); remap them to feed another camera name or node (`-r camera/image_raw:=head/image_raw
-r actiseg/action:=other/action`). SIGINT or SIGTERM stops publishing and ends the process with exit code 0.

    replay_node --ros-args -p source:=synthetic -p rate:=30.0 -p action_script:="['auto']"
    replay_node --ros-args -p source:=video -p path:=kitchen.mp4 -p action_script:="['0:cut onion with knife']"
    replay_node --ros-args -p source:=bag -p path:=run1 -p action_topic:=/actiseg/action -p rate:=0.0 \
        -p stamps:=recorded

Parameters: source (synthetic | video | folder | actionvos | bag), path, split and sequence (actionvos), seed
and domain (synthetic: `kitchen`, the shipped model's, or the held-out `kitchen_b`), width and height (0 x 0:
640x480 for the synthetic stream, a recorded source's own size), actions (synthetic), rate (Hz), start (first
source frame), count (frames to publish, 0: the rest of the source, or forever with loop), loop, loop_frames
(source frames in the loop, from start; 0: to the source's end), encoding (rgb8 | bgr8), frame_id, action_script
(['auto']: the source's own narrations at the frames where they start; 'FRAME:TEXT' entries; [''] none),
action_objects (named: send the narration text; scene: send JSON with the source's object list), preload (decode
every frame before publishing, so slow decoding never lowers the rate; skipped with a warning above
preload_limit_mib), wait_for_subscribers (camera subscribers to wait for), wait_timeout (s), manifest (a
JSON-lines file recording every published frame's stamp and source index, and every action sent).
A ROS 2 bag (source bag; path: a rosbag2 folder, sqlite3 or MCAP, or its lone .db3/.mcap file, read with the
`rosbags` library) adds: image_topic (the image topic in the bag; '': its only sensor_msgs/Image or
CompressedImage topic), action_topic (a std_msgs/String topic in the bag, '': none; its messages are the `auto`
script, each sent just before the first frame recorded at or after it), stamps (now: stamped as the frame leaves;
recorded: the bag's header stamp and frame_id) and rate 0 (the recorded timing: frames leave with the gaps
between their recording times). A bag that is missing, lacks a topic, holds the wrong message type or is cut
short ends the node with exit code 2 and an error naming it.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
import time

import numpy as np

from actiseg_ros.ros.names import IMAGE_TOPIC  # relative: follows the namespace, as the node's camera input
from actiseg_ros.tools.frame_sources import SourceError, open_source, parse_script

NODE_NAME = "actiseg_replay"
ACTION_TOPIC = "actiseg/action"  # the `actiseg` node's ~/action in the same namespace
STOP = threading.Event()  # set by SIGINT / SIGTERM: the publish loop ends at its next frame

REPLAY_PARAMETERS = {
    "source": "synthetic", "path": "", "split": "val", "sequence": "", "seed": 0, "domain": "kitchen",
    "width": 0, "height": 0,
    "actions": 4, "rate": 30.0, "start": 0, "count": 0, "loop": False, "encoding": "rgb8", "frame_id": "camera",
    "loop_frames": 0, "action_script": ["auto"], "action_objects": "named", "preload": True, "preload_limit_mib": 2048,
    "wait_for_subscribers": 1, "wait_timeout": 30.0, "manifest": "",
    "image_topic": "", "action_topic": "", "stamps": "now",  # source bag: topics in the bag, header stamps
}
STAMPS = ("now", "recorded")
SYNTHETIC_SIZE = (640, 480)  # (W, H) of the synthetic stream when width and height are 0


def frame_size(values: dict) -> tuple:
    """(width, height) to publish: as set; with 0 x 0, the synthetic stream is VGA and recorded sources keep
    their size."""
    size = (int(values["width"]), int(values["height"]))
    if size == (0, 0) and values["source"] == "synthetic":
        return SYNTHETIC_SIZE
    if min(size) < 0 or (0 in size and size != (0, 0)):
        raise SourceError("width and height must both be positive, or both 0, got %dx%d" % size)
    return size


def frame_indices(length: int, start: int, count: int, loop: bool, loop_frames: int = 0):
    """Source indices to publish, in order (a generator: with loop and count 0 it never ends). A loop runs over
    [start, start + loop_frames), or [start, length) when loop_frames is 0."""
    if not 0 <= start < length:
        raise SourceError("start %d is outside the source's %d frames" % (start, length))
    stop = min(length, start + loop_frames) if loop_frames > 0 else length
    published = 0
    index = start
    while count <= 0 or published < count:
        if index >= stop:
            if not loop:
                return
            index = start
        yield index
        index += 1
        published += 1


def source_end(length: int, start: int, count: int, loop: bool, loop_frames: int) -> int:
    """One past the last source index that frame_indices can yield."""
    if loop:
        return min(length, start + loop_frames) if loop_frames > 0 else length
    return length if count <= 0 else min(length, start + count)


def script_events(entries, source, start: int, end: int, objects_mode: str) -> dict:
    """{source index: action text} to publish just before that frame."""
    if objects_mode not in ("named", "scene"):
        raise SourceError("action_objects must be 'named' or 'scene', got %r" % objects_mode)
    events = {}
    if list(entries) == ["auto"]:
        for index, narration, names in source.auto_script(start, end):
            events[index] = (json.dumps({"action": narration, "objects": names}) if objects_mode == "scene" and names
                             else narration)
    else:
        for index, text in parse_script(entries):
            events[index] = text
    return events


def check_timing(values: dict) -> None:
    """rate 0 (the recorded timing) and stamps 'recorded' need a source that recorded them: a bag."""
    if values["stamps"] not in STAMPS:
        raise SourceError("stamps must be one of %s, got %r" % (", ".join(STAMPS), values["stamps"]))
    if values["rate"] < 0 or (values["rate"] == 0 and values["source"] != "bag"):
        raise SourceError("rate must be positive (Hz)%s, got %s" % (
            "" if values["source"] != "bag" else " or 0 (the recorded timing)", values["rate"]))
    if values["stamps"] == "recorded" and values["source"] != "bag":
        raise SourceError("stamps 'recorded' needs source bag (the %s source has no recorded stamps)"
                          % values["source"])


def frame_gap(times_ns, previous: int, index: int, fallback: float) -> float:
    """Seconds between publishing source frames `previous` and `index` at the recorded timing: the recorded
    gap for consecutive frames, `fallback` where a loop jumps back (or the clock of the recording did)."""
    if index == previous + 1 and times_ns[index] >= times_ns[previous]:
        return (times_ns[index] - times_ns[previous]) / 1e9
    return fallback


def encode_frame(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) RGB -> the contiguous pixel array of `encoding` (what messages.image_msg publishes)."""
    if encoding == "rgb8":
        return np.ascontiguousarray(rgb)
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    raise SourceError("the replay publishes rgb8 or bgr8, not %r" % encoding)


def run(node, values: dict) -> int:
    """Publish the frames and actions described by the parameter values; returns the process exit code."""
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header, String

    from actiseg_ros.ros.messages import image_msg
    from actiseg_ros.ros.qos import profile

    log = node.get_logger()
    check_timing(values)
    source = open_source(values["source"], values["path"], values["seed"], frame_size(values), values["actions"],
                         values["split"], values["sequence"], values["image_topic"], values["action_topic"],
                         values["domain"])
    length = len(source)
    end = source_end(length, values["start"], values["count"], values["loop"], values["loop_frames"])
    events = script_events(values["action_script"], source, values["start"], end, values["action_objects"])
    encoding = values["encoding"]
    encode_frame(np.zeros((1, 1, 3), np.uint8), encoding)  # refuse a bad encoding before any waiting
    cache = {}
    wanted = range(values["start"], end)
    if values["preload"]:
        first = source.frame(values["start"])
        needed_mib = len(wanted) * first.nbytes / 2**20
        if needed_mib > values["preload_limit_mib"]:
            log.warning("not preloading: %d frames need %.0f MiB, more than preload_limit_mib %d; frames are decoded "
                        "while publishing, which may lower the rate" % (len(wanted), needed_mib,
                                                                       values["preload_limit_mib"]))
            wanted = range(0)
    if values["preload"] and len(wanted):
        from tqdm import tqdm

        for index in tqdm(wanted, desc="replay: preloading frames", unit="frame", file=sys.stderr):
            if STOP.is_set():
                return 0
            rgb = source.frame(index)
            cache[index] = encode_frame(rgb, encoding)

    image_pub = node.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
    action_pub = node.create_publisher(String, ACTION_TOPIC, profile("command"))
    deadline = time.monotonic() + values["wait_timeout"]
    wanted_subscribers = values["wait_for_subscribers"]
    import rclpy

    while image_pub.get_subscription_count() < wanted_subscribers or (
            events and wanted_subscribers > 0 and action_pub.get_subscription_count() < 1):
        if STOP.is_set():
            return 0
        if time.monotonic() > deadline:
            log.error("no subscriber on %s%s within %.0f s" % (image_pub.topic_name, " / " + action_pub.topic_name
                                                               if events else "", values["wait_timeout"]))
            return 2
        rclpy.spin_once(node, timeout_sec=0.05)
    if wanted_subscribers > 0:
        time.sleep(1.0)  # let discovery finish in the other direction before the first (reliable) action

    manifest = open(values["manifest"], "w") if values["manifest"] else None
    if manifest:
        width, height = frame_size(values)
        manifest.write(json.dumps({"source": values["source"], "seed": values["seed"], "domain": values["domain"],
                                   "width": width,
                                   "height": height, "actions": values["actions"], "rate": values["rate"],
                                   "encoding": encoding}) + "\n")
    recorded = getattr(source, "times_ns", None) if values["rate"] == 0 else None
    if recorded is None:
        period = 1.0 / values["rate"]
    else:  # the recorded timing; its median gap serves a loop's jump back and the "fell behind" test
        period = float(np.median(np.diff(recorded))) / 1e9 if len(recorded) > 1 else 0.0
    published = 0
    due = 0.0  # seconds after `began` the next frame leaves
    previous = None
    began = time.monotonic()
    try:
        for index in frame_indices(length, values["start"], values["count"], values["loop"], values["loop_frames"]):
            if STOP.is_set():
                break
            if index in events:
                action_pub.publish(String(data=events[index]))
                if manifest:
                    manifest.write(json.dumps({"action": events[index], "before": published, "source_index": index})
                                   + "\n")
            pixels = cache[index] if index in cache else encode_frame(source.frame(index), encoding)
            if previous is not None:
                due += period if recorded is None else frame_gap(recorded, previous, index, period)
            previous = index
            delay = began + due - time.monotonic()
            if delay > 0:
                if STOP.wait(delay):
                    break
            elif delay < -period:  # fell behind (slow decoding): restart the schedule instead of bursting
                began = time.monotonic() - due
            if values["stamps"] == "recorded":
                stamp_ns, frame_id = source.header(index)
                msg = image_msg(pixels, encoding, Header(frame_id=frame_id))
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
            else:
                msg = image_msg(pixels, encoding, Header(frame_id=values["frame_id"]))
                msg.header.stamp = node.get_clock().now().to_msg()  # as the frame leaves, like a capture stamp
            image_pub.publish(msg)
            if manifest:
                manifest.write(json.dumps({"index": published, "source_index": index,
                                           "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec]}) + "\n")
            published += 1
    finally:
        if manifest:
            manifest.close()
    elapsed = time.monotonic() - began
    log.info("published %d frames in %.1f s (%.1f Hz) and %d actions"
             % (published, elapsed, published / max(elapsed, 1e-9), sum(1 for i in events)))
    STOP.wait(0.5)  # the last reliable messages leave before the participant goes
    return 0


def main(argv=None) -> int:
    from actiseg_ros.dds import use_default_profile

    use_default_profile()
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.signals import SignalHandlerOptions

    # rclpy's own handlers would shut the context down inside the signal, under a publish in progress
    # ("publisher's context is invalid"): these only ask the loop to stop, and the node is then taken down.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda _number, _frame: STOP.set())
    rclpy.init(args=sys.argv if argv is None else argv, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node(NODE_NAME)
    code = 1
    try:
        values = {}
        for name, default in REPLAY_PARAMETERS.items():
            values[name] = node.declare_parameter(name, default).value
        code = run(node, values)
    except SourceError as err:
        node.get_logger().error(str(err))
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
