#!/usr/bin/env python3
"""Prints every rcl_interfaces/Log on /rosout as one JSON line, as rqt_console would see it.

Subscribes with the QoS a late-joining log viewer uses (reliable, transient local, keep last
1000: rcl's own /rosout profile), prints {"subscribed": "/rosout"} once, then one line per
message: {"name", "level", "msg", "file", "function", "line", "stamp_ns"}. Ends after
--timeout seconds (the test stops it earlier).
"""
import argparse
import json
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()

    from rcl_interfaces.msg import Log

    # No /rosout of our own: this listener's lines must not mix with the node's.
    rclpy.init(args=["--ros-args", "--disable-rosout-logs"])
    node = Node("rosout_listener", enable_rosout=False)
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)

    def on_log(log):
        print(json.dumps({
            "name": log.name,
            "level": log.level,
            "msg": log.msg,
            "file": log.file,
            "function": log.function,
            "line": log.line,
            "stamp_ns": log.stamp.sec * 1_000_000_000 + log.stamp.nanosec,
        }), flush=True)

    node.create_subscription(Log, "/rosout", on_log, qos)
    print(json.dumps({"subscribed": "/rosout"}), flush=True)
    deadline = time.monotonic() + args.timeout
    try:
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
    except KeyboardInterrupt:
        pass
    try:
        node.destroy_node()
        rclpy.try_shutdown()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
