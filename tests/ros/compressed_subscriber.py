#!/usr/bin/env python3
"""A real rclpy subscriber of the node's compressed outputs, decoding them as viewers do.

- image_raw/ffmpeg (ffmpeg_image_transport_msgs/FFMPEGPacket): like ffmpeg_image_transport's
  subscriber, waits for a message with flags & 1 (a keyframe), then decodes every packet with
  PyAV (libavcodec);
- image_raw/foxglove (foxglove_msgs/CompressedVideo): like Foxglove, waits for a message that
  holds an IDR slice (NAL type 5), then decodes every message;
- image_raw/compressed (sensor_msgs/CompressedImage): decodes each JPEG with PyAV.

Prints one JSON object per message on stdout (flushed): the topic kind, sizes and fields, and
for every picture it decoded the frame number read from the simulator's tag and, with
--check-pixels WxH@FPS, the worst 16x16-block luma error against what the simulator drew
(bench/sim_scene.py). First line: {"subscribed": [...], "time_ns": ...}. Runs for --duration
seconds, or with --until-decoded until each subscribed topic decoded a picture (exit 3 if not
by --duration).
"""
import argparse
import json
import os
import sys
import time

import av
import rclpy
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from subscriber import read_tag, stamp  # noqa: E402

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")


def has_idr(data):
    """Whether Annex-B data holds an IDR slice (what Foxglove calls a keyframe)."""
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        if i + 3 < len(data) and data[i + 3] & 0x1F == 5:
            return True
        i = data.find(b"\x00\x00\x01", i + 3)
    return False


class Decoder:
    """PyAV decoding of one topic: frame numbers (and pixel errors) of what it outputs."""

    def __init__(self, codec, check):
        self.codec = codec
        self.context = None
        self.check = check

    def start(self):
        self.context = av.CodecContext.create(self.codec, "r")

    def decode(self, data):
        pictures, error = [], None
        try:
            for frame in self.context.decode(av.Packet(data)):
                bgr = frame.to_ndarray(format="bgr24")
                height, width = bgr.shape[:2]
                raw = bgr.tobytes()
                number = read_tag(raw, width * 3, width, height)
                picture = {"frame_number": number, "width": width, "height": height}
                if self.check is not None and number is not None:
                    picture["worst_block"] = self.check.worst_block(raw, width * 3, number)
                pictures.append(picture)
        except av.error.FFmpegError as e:
            error = str(e)
        return pictures, error


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ffmpeg", metavar="TOPIC")
    parser.add_argument("--foxglove", metavar="TOPIC")
    parser.add_argument("--jpeg", metavar="TOPIC")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--until-decoded", action="store_true")
    parser.add_argument("--check-pixels", metavar="WxH@FPS")
    parser.add_argument("--count-publishers", nargs="+", metavar="TOPIC",
                        help="only print {\"publishers\": {topic: count}} after 3 s of discovery")
    args = parser.parse_args()

    if args.count_publishers:
        rclpy.init()
        node = Node("publisher_counter")
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
        counts = {t: node.count_publishers(t) for t in args.count_publishers}
        print(json.dumps({"publishers": counts}), flush=True)
        node.destroy_node()
        rclpy.try_shutdown()
        return

    check = None
    if args.check_pixels:
        sys.path.insert(0, BENCH)
        from sim_scene import PixelCheck
        check = PixelCheck.from_spec(args.check_pixels)

    rclpy.init()
    node = Node("compressed_test_subscriber")
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=30,
                          reliability=ReliabilityPolicy.RELIABLE)
    decoded = {}

    def emit(kind, fields, decoder, data, start_here):
        if decoder.context is None and start_here:
            decoder.start()
        pictures, error = ([], None) if decoder.context is None else decoder.decode(data)
        if pictures:
            decoded[kind] = True
        print(json.dumps(dict(fields, kind=kind, bytes=len(data), started=decoder.context is not None,
                              pictures=pictures, error=error, receive_time_ns=time.time_ns())),
              flush=True)

    subscribed = []
    if args.ffmpeg:
        from ffmpeg_image_transport_msgs.msg import FFMPEGPacket
        ffmpeg = Decoder("h264", check)

        def on_ffmpeg(msg):
            data = bytes(msg.data)
            fields = {"flags": msg.flags, "pts": msg.pts, "encoding": msg.encoding,
                      "width": msg.width, "height": msg.height, "frame_id": msg.header.frame_id,
                      "stamp_ns": stamp(msg.header), "starts_with_start_code":
                          data.startswith(b"\x00\x00\x00\x01") or data.startswith(b"\x00\x00\x01")}
            emit("ffmpeg", fields, ffmpeg, data, msg.flags & 1)

        node.create_subscription(FFMPEGPacket, args.ffmpeg, on_ffmpeg, reliable)
        subscribed.append("ffmpeg")
    if args.foxglove:
        from foxglove_msgs.msg import CompressedVideo
        foxglove = Decoder("h264", check)

        def on_foxglove(msg):
            data = bytes(msg.data)
            idr = has_idr(data)
            fields = {"format": msg.format, "frame_id": msg.frame_id, "has_idr": idr,
                      "stamp_ns": msg.timestamp.sec * 1_000_000_000 + msg.timestamp.nanosec,
                      "starts_with_start_code":
                          data.startswith(b"\x00\x00\x00\x01") or data.startswith(b"\x00\x00\x01")}
            emit("foxglove", fields, foxglove, data, idr)

        node.create_subscription(CompressedVideo, args.foxglove, on_foxglove, reliable)
        subscribed.append("foxglove")
    if args.jpeg:
        from sensor_msgs.msg import CompressedImage
        best_effort = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                 reliability=ReliabilityPolicy.BEST_EFFORT)

        def on_jpeg(msg):
            jpeg = Decoder("mjpeg", check)
            jpeg.start()
            fields = {"format": msg.format, "frame_id": msg.header.frame_id,
                      "stamp_ns": stamp(msg.header)}
            emit("jpeg", fields, jpeg, bytes(msg.data), True)

        node.create_subscription(CompressedImage, args.jpeg, on_jpeg, best_effort)
        subscribed.append("jpeg")

    print(json.dumps({"subscribed": subscribed, "time_ns": time.time_ns()}), flush=True)
    deadline = time.monotonic() + args.duration
    try:
        while time.monotonic() < deadline:
            if args.until_decoded and all(decoded.get(k) for k in subscribed):
                break
            rclpy.spin_once(node, timeout_sec=0.05)
    except KeyboardInterrupt:
        pass  # The test is done with us: release the DDS participant below.
    node.destroy_node()
    rclpy.try_shutdown()
    if args.until_decoded and not all(decoded.get(k) for k in subscribed):
        sys.exit(3)


if __name__ == "__main__":
    main()
