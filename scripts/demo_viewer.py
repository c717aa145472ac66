#!/usr/bin/env python3
"""The demo's viewer: saves the latest image_raw as a PNG and prints a live status line.

Writes <output>/latest.png about once a second (atomically), and prints fps, latency, frame
size and drops from the node's ~/stats on one updating line.
"""
import argparse
import os
import struct
import sys
import time
import zlib

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import Image


def write_png(path, width, height, bgr, step):
    rows = bytearray()
    for y in range(height):
        row = bgr[y * step: y * step + width * 3]
        rgb = bytearray(row)
        rgb[0::3], rgb[2::3] = row[2::3], row[0::3]
        rows += b"\x00" + rgb

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(bytes(rows), 3)) + chunk(b"IEND", b"")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(png)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--image-topic", default="/spot/cam/image_raw")
    parser.add_argument("--stats-topic", default="/spot/cam/spot_ptz_stream/stats")
    parser.add_argument("--output", default="demo-output")
    parser.add_argument("--duration-secs", type=float, default=0.0, help="0 = until Ctrl+C")
    args = parser.parse_args()
    os.makedirs(args.output, exist_ok=True)
    latest = os.path.join(args.output, "latest.png")

    rclpy.init()
    node = Node("spot_ptz_stream_demo_viewer")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
    state = {"images": 0, "saved": 0, "last_save": 0.0, "stats": {}, "size": None}

    def on_image(msg):
        state["images"] += 1
        state["size"] = (msg.width, msg.height)
        now = time.monotonic()
        if now - state["last_save"] >= 1.0:
            write_png(latest, msg.width, msg.height, bytes(msg.data), msg.step)
            state["saved"] += 1
            state["last_save"] = now

    def on_stats(msg):
        state["stats"] = {kv.key: kv.value for kv in msg.values}

    node.create_subscription(Image, args.image_topic, on_image, qos)
    node.create_subscription(DiagnosticStatus, args.stats_topic, on_stats, 10)
    start = time.monotonic()
    last_print = 0.0
    try:
        while args.duration_secs <= 0 or time.monotonic() - start < args.duration_secs:
            rclpy.spin_once(node, timeout_sec=0.1)
            if time.monotonic() - last_print >= 1.0:
                last_print = time.monotonic()
                s = state["stats"]
                line = (f"state={s.get('state', '?'):<12} fps={s.get('fps', '-'):>6} "
                        f"latency p50/p99={s.get('latency_ms_p50', '-')}/{s.get('latency_ms_p99', '-')} ms "
                        f"size={s.get('width', '?')}x{s.get('height', '?')} dropped={s.get('frames_dropped', '-')} "
                        f"reconnects={s.get('reconnects', '-')} images_seen={state['images']} png={latest}")
                sys.stdout.write("\r" + line[:180].ljust(180))
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    sys.stdout.write("\n")
    node.destroy_node()
    rclpy.try_shutdown()
    if state["saved"] == 0:
        print("no image was received; see the node's log above", file=sys.stderr)
        sys.exit(1)
    print(f"saved {latest} ({state['size'][0]}x{state['size'][1]})")


if __name__ == "__main__":
    main()
