#!/usr/bin/env python3
"""Publishes vision_msgs/Detection2DArray messages at a fixed rate for a while."""
import argparse
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", default="detections")
    parser.add_argument("--class-id", default="person")
    parser.add_argument("--score", type=float, default=0.9)
    parser.add_argument("--rate-hz", type=float, default=5.0)
    parser.add_argument("--duration-secs", type=float, default=3.0)
    args = parser.parse_args()
    rclpy.init()
    node = Node("test_detection_publisher")
    publisher = node.create_publisher(Detection2DArray, args.topic,
                                      QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    # Wait (at most 20 s) until the node's subscription is matched, so none is lost to discovery.
    matched_by = time.monotonic() + 20.0
    while publisher.get_subscription_count() == 0 and time.monotonic() < matched_by:
        rclpy.spin_once(node, timeout_sec=0.05)
    end = time.monotonic() + args.duration_secs
    sent = 0
    while time.monotonic() < end:
        message = Detection2DArray()
        message.header.stamp = node.get_clock().now().to_msg()
        detection = Detection2D()
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = args.class_id
        hypothesis.hypothesis.score = args.score
        detection.results.append(hypothesis)
        message.detections.append(detection)
        publisher.publish(message)
        sent += 1
        rclpy.spin_once(node, timeout_sec=1.0 / args.rate_hz)
    print(f'{{"sent": {sent}}}', flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
