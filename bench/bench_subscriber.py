#!/usr/bin/env python3
"""The benchmark's ROS subscriber: one per receiver under test (ours or the baseline).

Subscribes to an image topic (reliable, like rqt_image_view's default) and, optionally, to the
receiver's ~/stats; once the image publisher and the start service are discovered, calls
~/start_stream and notes when. Writes, line by line (so a stopped run keeps its data):

  <out>/images.csv   frame_number,receive_ns,stamp_ns   (frame number from the simulator's tag)
                     [,worst_block  with --check-pixels: the picture's worst 16x16-block luma
                     error against what the simulator drew for that frame (bench/sim_scene.py);
                     empty for an image not checked or without a readable tag]
  <out>/pixel_check.json  with --check-pixels: {"every", "checked", "mean_ms", "max_ms",
                     "control_min" (the lowest worst-block error of a clean picture against the
                     drawing of two frames before it; the check sees a wrong picture if > 24)}
  <out>/stats.jsonl  one JSON object of ~/stats key/values per message, with receive_ns
  <out>/start.json   {"start_call_ns", "start_response_ns", "response"}

Every time is time.time_ns() (the same clock as the simulator's --frame-log). Stops on SIGINT.
"""
import argparse
import json
import os
import signal
import sys
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from sim_scene import DAMAGED_WORST_BLOCK, PixelCheck

TAG_BLOCKS = 32


def tag_block_px(width):
    """Side of one tag block; the same rule as src/sim/frame_tag.rs."""
    return max(8, min(32, (width // 40) // 8 * 8))


def read_frame_number(data, step, width, height):
    """The simulator's frame tag: 32 blocks, a 24-bit number then a check byte."""
    side = tag_block_px(width)
    if width < side * TAG_BLOCKS or height < side:
        return None
    row = (side // 2) * step
    bits = 0
    for block in range(TAG_BLOCKS):
        i = row + (block * side + side // 2) * 3
        bits = (bits << 1) | (1 if data[i] + data[i + 1] + data[i + 2] >= 384 else 0)
    number = bits >> 8
    check = ((number >> 16) ^ (number >> 8) ^ number ^ 0xA5) & 0xFF
    return number if bits & 0xFF == check else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-topic", required=True)
    parser.add_argument("--start-service", required=True)
    parser.add_argument("--stats-topic")
    parser.add_argument("--out", required=True, help="directory for the output files")
    parser.add_argument("--qos-depth", type=int, default=5)
    parser.add_argument("--discovery-timeout-secs", type=float, default=30.0)
    parser.add_argument("--without-images", action="store_true",
                        help="subscribe only to the stats (the receiver has no image consumer)")
    parser.add_argument("--check-pixels", action="store_true",
                        help="compare each picture with the simulator's drawing (needs --fps)")
    parser.add_argument("--fps", type=int, help="the simulator's frame rate (its scene time)")
    parser.add_argument("--check-every", type=int, default=1,
                        help="with --check-pixels: check every Nth image only (a slow machine)")
    args = parser.parse_args()
    if args.check_pixels and not args.fps:
        parser.error("--check-pixels needs --fps")
    os.makedirs(args.out, exist_ok=True)

    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    # Our handlers stop the loop below; rclpy's own would shut the context down under it.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    node = Node("bench_subscriber")
    images = open(os.path.join(args.out, "images.csv"), "w", buffering=1)
    images.write("frame_number,receive_ns,stamp_ns" +
                 (",worst_block\n" if args.check_pixels else "\n"))
    stats = open(os.path.join(args.out, "stats.jsonl"), "w", buffering=1)
    pixels = {"check": None, "seen": 0, "checked": 0, "total_secs": 0.0, "max_secs": 0.0}

    def check_pixels(msg, number):
        """The worst block's error, or '' (not checked this time, or no frame number)."""
        pixels["seen"] += 1
        if number is None or (pixels["seen"] - 1) % max(1, args.check_every):
            return ""
        started = time.perf_counter()
        check = pixels["check"]
        if check is None or (check.scene.width, check.scene.height) != (msg.width & ~1,
                                                                         msg.height & ~1):
            check = pixels["check"] = PixelCheck(msg.width, msg.height, args.fps)
        worst = check.worst_block(msg.data, msg.step, number)
        secs = time.perf_counter() - started
        pixels["checked"] += 1
        if number >= 2 and worst <= DAMAGED_WORST_BLOCK and pixels["checked"] % 30 == 1:
            # Control, once a second or so: the same picture against the drawing of two
            # frames earlier must fail, else the check could not see a wrong picture.
            control = check.worst_block(msg.data, msg.step, number - 2)
            pixels["control_min"] = min(pixels.get("control_min", control), control)
        pixels["total_secs"] += secs
        pixels["max_secs"] = max(pixels["max_secs"], secs)
        return f",{worst:.2f}"

    def on_image(msg):
        receive_ns = time.time_ns()
        number = read_frame_number(msg.data, msg.step, msg.width, msg.height)
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        worst = (check_pixels(msg, number) or ",") if args.check_pixels else ""
        images.write(f"{'' if number is None else number},{receive_ns},{stamp_ns}{worst}\n")

    def on_stats(msg):
        values = {kv.key: kv.value for kv in msg.values}
        values["receive_ns"] = time.time_ns()
        stats.write(json.dumps(values) + "\n")

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=args.qos_depth,
                     reliability=ReliabilityPolicy.RELIABLE)
    image_sub = None if args.without_images else \
        node.create_subscription(Image, args.image_topic, on_image, qos)
    if args.stats_topic:
        node.create_subscription(DiagnosticStatus, args.stats_topic, on_stats, 10)
    client = node.create_client(Trigger, args.start_service)

    # Wait for discovery both ways, so that the first image is not lost to matching.
    deadline = time.monotonic() + args.discovery_timeout_secs
    def discovered():
        images_seen = image_sub is None or image_sub.get_publisher_count() > 0
        return images_seen and client.service_is_ready()

    while not stopping and not discovered():
        if time.monotonic() > deadline:
            print(f"bench_subscriber: {args.image_topic} / {args.start_service} not discovered "
                  f"within {args.discovery_timeout_secs} s", file=sys.stderr)
            sys.exit(3)
        rclpy.spin_once(node, timeout_sec=0.05)
    # Let the publisher side match us too before the first frame is sent.
    settle_until = time.monotonic() + 1.0
    while not stopping and time.monotonic() < settle_until:
        rclpy.spin_once(node, timeout_sec=0.05)

    start_call_ns = time.time_ns()
    future = client.call_async(Trigger.Request())
    start_written = False
    while not stopping:
        rclpy.spin_once(node, timeout_sec=0.05)
        if not start_written and future.done():
            response = future.result()
            with open(os.path.join(args.out, "start.json"), "w") as f:
                json.dump({"start_call_ns": start_call_ns, "start_response_ns": time.time_ns(),
                           "response": response.message if response else None}, f)
            start_written = True
    images.close()
    stats.close()
    if args.check_pixels:
        checked = pixels["checked"]
        with open(os.path.join(args.out, "pixel_check.json"), "w") as f:
            json.dump({"every": args.check_every, "checked": checked,
                       "mean_ms": 1e3 * pixels["total_secs"] / checked if checked else None,
                       "max_ms": 1e3 * pixels["max_secs"],
                       "control_min": pixels.get("control_min")}, f)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
