#!/usr/bin/env python3
"""Counts the images a plain rclpy subscriber gets, as a user's consumer would subscribe.

Subscribes to --topic (sensor_msgs/Image, taken serialized: no conversion cost, so the count
is what the middleware delivered), prints {"subscribed": ...} once, then, from the first image
on, counts for --seconds and prints one JSON summary: {"received": n, "seconds": s,
"first_receive_time_ns": t}. Exit code 3 if no image came within --timeout.
"""
import argparse
import json
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, qos_profile_sensor_data


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--reliability", choices=["reliable", "best_effort"], required=True)
    args = parser.parse_args()

    from sensor_msgs.msg import Image

    rclpy.init()
    node = Node("count_frames")
    if args.reliability == "best_effort":
        qos = qos_profile_sensor_data  # best effort, keep last 5: what image consumers use
    else:
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                         reliability=ReliabilityPolicy.RELIABLE)
    first = None
    received = 0

    def on_message(_serialized):
        nonlocal first, received
        if first is None:
            first = time.monotonic()
            print(json.dumps({"first_receive_time_ns": time.time_ns()}), flush=True)
        if time.monotonic() - first < args.seconds:
            received += 1

    node.create_subscription(Image, args.topic, on_message, qos, raw=True)
    print(json.dumps({"subscribed": args.topic}), flush=True)
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            if first is not None and time.monotonic() - first >= args.seconds:
                break
            rclpy.spin_once(node, timeout_sec=0.05)
    except KeyboardInterrupt:
        pass
    print(json.dumps({"received": received, "seconds": args.seconds}), flush=True)
    try:
        node.destroy_node()
        rclpy.try_shutdown()
    except KeyboardInterrupt:
        pass  # The test stops us once it has the count.
    sys.exit(0 if first is not None else 3)


if __name__ == "__main__":
    main()
