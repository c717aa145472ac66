#!/usr/bin/env python3
"""Publishes sensor_msgs/JointState on ~/ptz_command (as a joystick would: names and positions,
pan/tilt in radians, zoom a factor) five times a second for --secs seconds, while printing each
~/ptz_state it receives as JSON {"name": [...], "position": [...]}, and one more ~/ptz_state
after the last command."""
import argparse
import json
import math
import time

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import JointState


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", default="/spot_ptz_stream")
    parser.add_argument("--names", required=True, help="comma separated, e.g. pan,tilt,zoom")
    parser.add_argument("--positions", required=True, help="comma separated; nan allowed")
    parser.add_argument("--secs", type=float, default=3.0)
    args = parser.parse_args()
    rclpy.init()
    node = Node("test_ptz_command")
    publisher = node.create_publisher(JointState, args.node + "/ptz_command", 10)

    states = [0]

    def on_state(msg):
        states[0] += 1
        print(json.dumps({"name": list(msg.name),
                          "position": [p if math.isfinite(p) else None for p in msg.position]}),
              flush=True)

    node.create_subscription(JointState, args.node + "/ptz_state", on_state, 10)
    command = JointState()
    command.name = args.names.split(",")
    command.position = [float(p) for p in args.positions.split(",")]
    # Discovery first, so that no command is published into the void.
    deadline = time.monotonic() + 10.0
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    end = time.monotonic() + args.secs
    next_publish = 0.0
    while time.monotonic() < end:
        if time.monotonic() >= next_publish:
            command.header.stamp = node.get_clock().now().to_msg()
            publisher.publish(command)
            next_publish = time.monotonic() + 0.2
        rclpy.spin_once(node, timeout_sec=0.05)
    # One more ~/ptz_state after the last command (it comes every second while the head is
    # still), so that the caller sees where the head is afterwards.
    seen = states[0]
    end = time.monotonic() + 10.0
    while states[0] == seen and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
