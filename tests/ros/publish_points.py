#!/usr/bin/env python3
"""Publishes geometry_msgs/PointStamped on ~/look_at moving from --from to --to in --steps steps
at --rate-hz (a script tracking somebody who walks), then exits."""
import argparse
import time

import rclpy
from geometry_msgs.msg import PointStamped
from rclpy.node import Node


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", default="/spot_ptz_stream/look_at")
    parser.add_argument("--frame", required=True)
    parser.add_argument("--from", dest="start", required=True, help="x,y,z")
    parser.add_argument("--to", dest="end", required=True, help="x,y,z")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rate-hz", type=float, default=5.0)
    args = parser.parse_args()
    start = [float(v) for v in args.start.split(",")]
    end = [float(v) for v in args.end.split(",")]
    rclpy.init()
    node = Node("test_publish_points")
    publisher = node.create_publisher(PointStamped, args.topic, 10)
    # Discovery first, so that no point is published into the void.
    deadline = time.monotonic() + 10.0
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    for step in range(args.steps):
        f = step / max(args.steps - 1, 1)
        msg = PointStamped()
        msg.header.frame_id = args.frame
        msg.point.x, msg.point.y, msg.point.z = [a + (b - a) * f for a, b in zip(start, end)]
        publisher.publish(msg)
        time.sleep(1.0 / args.rate_hz)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
