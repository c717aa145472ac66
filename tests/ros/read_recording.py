#!/usr/bin/env python3
"""Reads one event recording (MCAP) as a viewer would and prints what it holds as one JSON object.

The messages are decoded with the file's own `ros2msg` schemas (mcap-ros2-support, as Foxglove
decodes them: no ROS message package involved), read record by record from the start, so a file
cut short (the node killed) yields every message of its complete chunks. The video
(`*/image_raw/foxglove`, foxglove_msgs/CompressedVideo) is decoded with PyAV from the file's
first video message; with --check-pixels WxH@FPS each picture is compared with what the
simulator drew (the worst 16x16-block luma error).

Output: {"complete", "error", "summary_messages", "profile", "metadata", "topics": {topic:
{"type", "count", "first_log_ns", "last_log_ns", "qos"}}, "video": {...}, "detections_log_ns",
"people", "camera_info", "camera_info_stamps_ns", "tf_static_children", "stats_keys",
"detections_log_ns"}.
"""
import argparse
import json
import os
import sys

import av
from mcap.reader import make_reader
from mcap.records import Channel, Footer, Header, Message, Metadata, Schema
from mcap.stream_reader import StreamReader
from mcap_ros2.decoder import DecoderFactory

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from subscriber import read_tag  # noqa: E402

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench")


def nal_types(data):
    """The NAL unit types of Annex-B data, in order."""
    types = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        if i + 3 < len(data):
            types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def stamp_ns(time):
    return time.sec * 1_000_000_000 + time.nanosec


def read_records(path):
    """Schemas, channels, messages (in file order), metadata; and how the file ended."""
    schemas, channels, messages, metadata = {}, {}, [], {}
    header, complete, error = None, False, None
    with open(path, "rb") as f:
        try:
            for record in StreamReader(f).records:
                if isinstance(record, Header):
                    header = record
                elif isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                elif isinstance(record, Message):
                    messages.append(record)
                elif isinstance(record, Metadata):
                    metadata[record.name] = dict(record.metadata)
                elif isinstance(record, Footer):
                    complete = True
        except Exception as e:  # a file cut short ends in the middle of a record
            error = f"{type(e).__name__}: {e}"
    return header, schemas, channels, messages, metadata, complete, error


def summary_messages(path):
    """The message count of the file's Statistics record (what `ros2 bag info` shows)."""
    try:
        with open(path, "rb") as f:
            summary = make_reader(f).get_summary()
        if summary is None or summary.statistics is None:
            return None
        return summary.statistics.message_count
    except Exception:
        return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--check-pixels", metavar="WxH@FPS")
    args = parser.parse_args()

    check = None
    if args.check_pixels:
        sys.path.insert(0, BENCH)
        from sim_scene import PixelCheck
        check = PixelCheck.from_spec(args.check_pixels)

    header, schemas, channels, messages, metadata, complete, error = read_records(args.path)
    factory = DecoderFactory()
    topics = {}
    decoded = []
    for message in messages:
        channel = channels[message.channel_id]
        schema = schemas[channel.schema_id]
        decode = factory.decoder_for(channel.message_encoding, schema)
        if decode is None:
            print(json.dumps({"error": f"no decoder for {channel.topic}"}), flush=True)
            sys.exit(3)
        topic = topics.setdefault(channel.topic, {
            "type": schema.name, "count": 0, "first_log_ns": message.log_time,
            "last_log_ns": message.log_time,
            "qos": channel.metadata.get("offered_qos_profiles"),
        })
        topic["count"] += 1
        topic["first_log_ns"] = min(topic["first_log_ns"], message.log_time)
        topic["last_log_ns"] = max(topic["last_log_ns"], message.log_time)
        decoded.append((channel.topic, message, decode(message.data)))

    video = {"messages": 0, "idr_messages": 0, "pictures": 0, "unreadable": 0,
             "decode_errors": 0, "frame_numbers": [], "worst_block": [], "log_ns": [],
             "first_nal_types": None,
             "first_log_ns": None, "stamps_ns": []}
    context = av.CodecContext.create("h264", "r")
    people, camera_info, tf_static_children, stats_keys, detections = [], None, [], None, []
    camera_info_stamps = []
    for topic, message, msg in decoded:
        if topic.endswith("/image_raw/foxglove"):
            data = bytes(msg.data)
            if video["first_nal_types"] is None:
                video["first_nal_types"] = nal_types(data)
                video["first_log_ns"] = message.log_time
                video["format"] = msg.format
                video["frame_id"] = msg.frame_id
            video["messages"] += 1
            video["stamps_ns"].append(stamp_ns(msg.timestamp))
            if 5 in nal_types(data):
                video["idr_messages"] += 1
            try:
                frames = context.decode(av.Packet(data))
            except av.error.FFmpegError:
                video["decode_errors"] += 1
                continue
            for frame in frames:
                bgr = frame.to_ndarray(format="bgr24")
                h, w = bgr.shape[:2]
                raw = bgr.tobytes()
                number = read_tag(raw, w * 3, w, h)
                video["pictures"] += 1
                if number is None:
                    video["unreadable"] += 1
                    continue
                video["frame_numbers"].append(number)
                video["log_ns"].append(message.log_time)
                if check is not None:
                    video["worst_block"].append(check.worst_block(raw, w * 3, number))
        elif topic.endswith("/camera_info"):
            camera_info_stamps.append(stamp_ns(msg.header.stamp))
            if camera_info is None:
                camera_info = {"width": msg.width, "height": msg.height, "k": list(msg.k),
                               "frame_id": msg.header.frame_id}
        elif topic.endswith("/ptz_detections"):
            people.append({"stamp_ns": stamp_ns(msg.header.stamp),
                           "people": len(msg.detections)})
        elif topic == "/tf_static":
            tf_static_children.extend(t.child_frame_id for t in msg.transforms)
        elif topic.endswith("/stats") and stats_keys is None:
            stats_keys = [v.key for v in msg.values]
        elif topic.endswith("/detections") or topic.endswith("/detections_3d"):
            detections.append(message.log_time)

    print(json.dumps({
        "complete": complete, "error": error, "summary_messages": summary_messages(args.path),
        "profile": header.profile if header else None,
        "library": header.library if header else None,
        "metadata": metadata, "topics": topics, "video": video, "people": people,
        "camera_info": camera_info, "camera_info_stamps_ns": camera_info_stamps,
        "tf_static_children": tf_static_children,
        "stats_keys": stats_keys, "detections_log_ns": detections,
    }), flush=True)


if __name__ == "__main__":
    main()
