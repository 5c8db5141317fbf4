"""`actiseg record`: record the camera (and the action topic) into a ROS 2 bag, for users who installed with
pip and so have no `ros2 bag record`. An rclpy node subscribes and writes every message as it arrived (the
serialized bytes, logged at the receipt time, as rosbag2 does) with the `rosbags` writer, sqlite3 or MCAP.

    actiseg record --out run1 [--image-topic camera/image_raw] [--action-topic actiseg/action]
                   [--storage sqlite3|mcap] [--duration S | --frames N]

Topic names are resolved like a node's (relative names in --namespace); the bag holds the resolved names
(/camera/image_raw, /robot1/camera/image_raw). Ctrl-C (SIGINT) or SIGTERM ends the recording cleanly: the bag is
finalized and its metadata.yaml written, exit code 0. The bag replays with replay_node (source bag) and imports
with `actiseg import bag`.
"""
from __future__ import annotations

import signal
import sys
import threading
import time

NODE_NAME = "actiseg_record"
IMAGE_TYPE = "sensor_msgs/msg/Image"
STRING_TYPE = "std_msgs/msg/String"


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="the bag folder to create (must not exist)")
    parser.add_argument("--image-topic", default="camera/image_raw",
                        help="sensor_msgs/Image topic to record (default: camera/image_raw)")
    parser.add_argument("--action-topic", default="actiseg/action",
                        help="std_msgs/String action topic to record too; '' for none (default: actiseg/action)")
    parser.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="bag storage format")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, default=0.0, metavar="S",
                      help="stop after S seconds (default: until Ctrl-C)")
    stop.add_argument("--frames", type=int, default=0, metavar="N", help="stop after N camera frames")
    parser.add_argument("--namespace", default="", metavar="NS",
                        help="the recorder's namespace: relative topics resolve in it (e.g. /robot1)")


class Recording:
    """Counts and writes what the subscriptions deliver; `done` is set when --frames is reached."""

    def __init__(self, writer, clock, frames_wanted: int):
        self.writer = writer
        self.clock = clock
        self.frames_wanted = frames_wanted
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.first_ns = None

    def on_message(self, topic: str, is_frame: bool, cdr: bytes) -> None:
        with self.lock:
            if self.done.is_set():
                return  # --frames reached: nothing after the N-th frame
            now_ns = self.clock.now().nanoseconds
            self.writer.write(topic, now_ns, cdr)
            self.first_ns = now_ns if self.first_ns is None else self.first_ns
            if is_frame and self.frames_wanted and self.writer.counts[topic] >= self.frames_wanted:
                self.done.set()


def main(args) -> int:
    from actiseg_ros.data.bags import BagError, BagWriter

    if args.duration < 0 or args.frames < 0:
        raise SystemExit("actiseg record: --duration and --frames must not be negative")
    import rclpy
    from rclpy.exceptions import InvalidNamespaceException
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from actiseg_ros.ros.qos import profile

    stop = threading.Event()
    # rclpy's own handlers would shut the context down under a callback writing to the bag: these only ask
    # the loop to stop, and the bag is then closed properly.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda _number, _frame: stop.set())
    rclpy.init(args=["actiseg_record"], signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = rclpy.create_node(NODE_NAME, namespace=args.namespace or None)
    except InvalidNamespaceException as err:
        rclpy.try_shutdown()
        print("actiseg record: invalid namespace %r: %s" % (args.namespace, err), file=sys.stderr)
        return 2
    writer = None
    try:
        # Names are resolved before the bag folder is created, so a bad one leaves no empty bag behind.
        names = {}
        for what, topic in (("image topic", args.image_topic), ("action topic", args.action_topic)):
            if what == "action topic" and not topic:  # '' = no action topic; an empty image topic is invalid
                continue
            try:
                names[what] = node.resolve_topic_name(topic)
            except Exception as err:  # rclpy raises its RCLError, whose type is not public
                print("actiseg record: invalid %s %r: %s" % (what, topic, err), file=sys.stderr)
                return 2
        try:
            writer = BagWriter(args.out, args.storage)
        except BagError as err:
            print("actiseg record: %s" % err, file=sys.stderr)
            return 2
        recording = Recording(writer, node.get_clock(), args.frames)
        # Best effort matches every camera publisher (a reliable subscriber would not hear a best-effort one);
        # a few messages of depth absorb a late spin without loss at camera rates.
        camera_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                                durability=DurabilityPolicy.VOLATILE)
        image_name = names["image topic"]
        writer.add_topic(image_name, IMAGE_TYPE)
        node.create_subscription(Image, image_name, lambda cdr: recording.on_message(image_name, True, cdr),
                                 camera_qos, raw=True)
        topics = [image_name]
        if args.action_topic:
            action_name = names["action topic"]
            writer.add_topic(action_name, STRING_TYPE)
            node.create_subscription(String, action_name, lambda cdr: recording.on_message(action_name, False, cdr),
                                     profile("command"), raw=True)
            topics.append(action_name)
        print("actiseg record: recording %s into %s (%s)%s" % (
            ", ".join(topics), args.out, args.storage, "; Ctrl-C to stop" if not (args.duration or args.frames)
            else ""), file=sys.stderr, flush=True)
        began = time.monotonic()
        while not stop.is_set() and not recording.done.is_set():
            if args.duration and time.monotonic() - began >= args.duration:
                break
            rclpy.spin_once(node, timeout_sec=0.05)
        with recording.lock:
            recording.done.set()  # a callback still in flight writes nothing more
        counts = dict(writer.counts)
        writer.close()
        writer = None
        frames = counts[image_name]
        print("actiseg record: %d frames%s in %s (%.1f s)" % (
            frames, "".join(", %d on %s" % (n, t) for t, n in counts.items() if t != image_name), args.out,
            time.monotonic() - began), file=sys.stderr)
        if not frames:
            print("actiseg record: warning: no frame arrived on %s (is the camera publishing? a namespace or "
                  "remap missing?)" % image_name, file=sys.stderr)
        return 0
    finally:
        if writer is not None:  # an error on the way: keep what was written, finalized
            writer.close()
        node.destroy_node()
        rclpy.try_shutdown()
