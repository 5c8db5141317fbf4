"""Subscribes with sensor-data QoS and prints one JSON line: which frames arrived, intact or not."""
import argparse
import json
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", default="/camera/image_raw")
    parser.add_argument("--count", type=int, default=90)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node("test_image_counter")
    received, corrupt = [], []

    def on_image(msg):
        index = int(msg.header.frame_id)
        pixels = np.frombuffer(msg.data, np.uint8)
        intact = pixels.size == msg.height * msg.step and bool((pixels == index % 256).all())
        (received if intact else corrupt).append(index)

    node.create_subscription(Image, args.topic, on_image, qos_profile_sensor_data)
    print("READY", flush=True)
    deadline = time.monotonic() + args.timeout
    while len(received) + len(corrupt) < args.count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({"received": received, "corrupt": corrupt}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
