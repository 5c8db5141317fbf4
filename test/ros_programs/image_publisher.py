"""Publishes N rgb8 frames at a set rate once a subscriber is matched. Frame i is filled with value i % 256
and carries frame_id "i", so the receiver can check order, content and loss."""
import argparse
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", default="/camera/image_raw")
    parser.add_argument("--count", type=int, default=90)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("test_image_publisher")
    publisher = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    deadline = time.monotonic() + 20.0
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            raise SystemExit("no subscriber matched within 20 s")
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(1.0)  # let the reverse direction of discovery settle before the first frame
    frame = np.empty((args.height, args.width, 3), np.uint8)
    period = 1.0 / args.rate
    start = time.monotonic()
    for index in range(args.count):
        frame.fill(index % 256)
        msg = Image()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.header.frame_id = str(index)
        msg.height, msg.width, msg.encoding, msg.is_bigendian = args.height, args.width, "rgb8", 0
        msg.step = args.width * 3
        msg.data = frame.tobytes()
        publisher.publish(msg)
        time.sleep(max(0.0, start + (index + 1) * period - time.monotonic()))
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
