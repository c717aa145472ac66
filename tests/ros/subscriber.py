#!/usr/bin/env python3
"""A real rclpy subscriber for the integration tests.

Prints one JSON object per received message on stdout (flushed), then exits after --count
messages or --timeout seconds (exit code 3 on timeout). Images carry the frame number read
from the simulator's tag (32 black/white blocks at the top-left: 24-bit number + check byte).
"""
import argparse
import json
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy


def block_px(width):
    return max(8, min(32, (width // 40) // 8 * 8))


def read_tag(data, step, width, height):
    side = block_px(width)
    if width < side * 32 or height < side:
        return None
    y = side // 2
    bits = 0
    for block in range(32):
        x = block * side + side // 2
        i = y * step + x * 3
        brightness = (data[i] + data[i + 1] + data[i + 2]) // 3
        bits = (bits << 1) | (1 if brightness >= 128 else 0)
    number = bits >> 8
    a, b, c = (number >> 16) & 0xFF, (number >> 8) & 0xFF, number & 0xFF
    return number if (bits & 0xFF) == (a ^ b ^ c ^ 0xA5) else None


def stamp(header):
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def describe(kind, msg):
    if kind == "image":
        return {
            "width": msg.width, "height": msg.height, "encoding": msg.encoding, "step": msg.step,
            "frame_id": msg.header.frame_id, "stamp_ns": stamp(msg.header),
            "data_len": len(msg.data),
            "frame_number": read_tag(bytes(msg.data), msg.step, msg.width, msg.height),
            "receive_time_ns": time.time_ns(),
        }
    if kind == "camera_info":
        return {"width": msg.width, "height": msg.height, "frame_id": msg.header.frame_id,
                "stamp_ns": stamp(msg.header), "k": list(msg.k)}
    if kind == "diagnostic_status":
        return {"level": int.from_bytes(msg.level, "little") if isinstance(msg.level, bytes) else int(msg.level),
                "name": msg.name, "message": msg.message,
                "values": {kv.key: kv.value for kv in msg.values},
                "receive_time_ns": time.time_ns()}
    if kind == "diagnostic_array":
        return {"statuses": [{"name": s.name, "message": s.message,
                              "values": {kv.key: kv.value for kv in s.values}} for s in msg.status]}
    raise ValueError(kind)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", required=True)
    parser.add_argument("--type", required=True,
                        choices=["image", "camera_info", "diagnostic_status", "diagnostic_array"])
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--reliability", choices=["reliable", "best_effort"], default="best_effort")
    parser.add_argument("--also-camera-info", metavar="TOPIC",
                        help="with --type image: also print this topic's camera_info messages, "
                             "interleaved (\"kind\": \"camera_info\"), from the same process")
    args = parser.parse_args()

    if args.type in ("image", "camera_info"):
        from sensor_msgs.msg import Image, CameraInfo
        msg_type = Image if args.type == "image" else CameraInfo
    else:
        from diagnostic_msgs.msg import DiagnosticStatus, DiagnosticArray
        msg_type = DiagnosticStatus if args.type == "diagnostic_status" else DiagnosticArray

    rclpy.init()
    node = Node("test_subscriber")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.BEST_EFFORT if args.reliability == "best_effort"
                     else ReliabilityPolicy.RELIABLE)
    received = 0

    def on_message(msg):
        nonlocal received
        received += 1
        print(json.dumps(dict(describe(args.type, msg), kind=args.type)), flush=True)

    def on_camera_info(msg):
        print(json.dumps(dict(describe("camera_info", msg), kind="camera_info")), flush=True)

    node.create_subscription(msg_type, args.topic, on_message, qos)
    if args.also_camera_info:
        from sensor_msgs.msg import CameraInfo
        node.create_subscription(CameraInfo, args.also_camera_info, on_camera_info, qos)
    print(json.dumps({"subscribed": args.topic}), flush=True)
    deadline = time.monotonic() + args.timeout
    try:
        while received < args.count and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
    except KeyboardInterrupt:
        pass  # The test is done with us: release the DDS participant below.
    node.destroy_node()
    rclpy.try_shutdown()
    sys.exit(0 if received >= args.count else 3)


if __name__ == "__main__":
    main()
