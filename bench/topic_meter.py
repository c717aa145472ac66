#!/usr/bin/env python3
"""Measures what the node's image topics cost on the wire: an rclpy subscriber that counts the
messages and bytes of each topic it is given (without decoding), and reads the node's ~/stats
for the frames it received. Prints one JSON object at the end:

  {"window_secs": ..., "topics": {topic: {"messages": n, "bytes": n}},
   "frames_received": n (the node's counter over the window)}

The window starts at the first message of any topic (without --topic: of ~/stats), after
--warmup-secs, and lasts
--duration-secs; a line {"window": "start"} is printed when it starts. Used by
run_bench.py --compressed.
"""
import argparse
import json
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

TYPES = {
    "image": ("sensor_msgs.msg", "Image"),
    "jpeg": ("sensor_msgs.msg", "CompressedImage"),
    "ffmpeg": ("ffmpeg_image_transport_msgs.msg", "FFMPEGPacket"),
    "foxglove": ("foxglove_msgs.msg", "CompressedVideo"),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", action="append", default=[], metavar="KIND=TOPIC",
                        help=f"kind is one of {', '.join(TYPES)}")
    parser.add_argument("--stats-topic", required=True)
    parser.add_argument("--duration-secs", type=float, default=20.0)
    parser.add_argument("--warmup-secs", type=float, default=3.0)
    parser.add_argument("--timeout-secs", type=float, default=60.0)
    args = parser.parse_args()

    rclpy.init()
    node = Node("topic_meter")
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=30,
                          reliability=ReliabilityPolicy.RELIABLE)
    counts = {}
    state = {"first": None, "window_start": None}

    def counter(topic):
        counts[topic] = {"messages": 0, "bytes": 0}

        def on_message(msg):
            now = time.monotonic()
            if state["first"] is None:
                state["first"] = now
            start = state["window_start"]
            if start is not None and now < start + args.duration_secs:
                counts[topic]["messages"] += 1
                counts[topic]["bytes"] += len(msg.data)
        return on_message

    for spec in args.topic:
        kind, _, topic = spec.partition("=")
        module, name = TYPES[kind]
        msg_type = getattr(__import__(module, fromlist=[name]), name)
        node.create_subscription(msg_type, topic, counter(topic), reliable)

    from diagnostic_msgs.msg import DiagnosticStatus
    received = []

    def on_stats(msg):
        values = {kv.key: kv.value for kv in msg.values}
        now = time.monotonic()
        received.append((now, int(values.get("frames_received", "0"))))
        if not args.topic and state["first"] is None:
            # No topic to wait for (the cost of nobody subscribing): start at the first status.
            state["first"] = now

    node.create_subscription(DiagnosticStatus, args.stats_topic, on_stats, reliable)
    deadline = time.monotonic() + args.timeout_secs
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        now = time.monotonic()
        if state["window_start"] is None and state["first"] is not None \
                and now >= state["first"] + args.warmup_secs:
            state["window_start"] = now
            print(json.dumps({"window": "start"}), flush=True)
        start = state["window_start"]
        if start is not None and now >= start + args.duration_secs:
            break
    start = state["window_start"]
    in_window = [n for t, n in received if start is not None and start <= t <= start + args.duration_secs]
    frames = in_window[-1] - in_window[0] if len(in_window) >= 2 else 0
    frames_secs = 0.0
    if len(in_window) >= 2:
        times = [t for t, _ in received if start <= t <= start + args.duration_secs]
        frames_secs = times[-1] - times[0]
    print(json.dumps({"window_secs": args.duration_secs if start is not None else 0.0,
                      "topics": counts, "frames_received": frames,
                      "frames_secs": frames_secs}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    main()
