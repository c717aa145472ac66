#!/usr/bin/env python3
"""Drives the node's parameter services as `ros2 param` and rqt_reconfigure do (rclpy's
AsyncParameterClient: the rcl_interfaces services) and prints one JSON line per step:
list, describe, get, sets that must be taken and sets that must be refused, an atomic batch
with one bad value, the values afterwards, and the /parameter_events seen for the node."""
import argparse
import json
import math
import sys
import time

import rclpy
from rcl_interfaces.msg import ParameterEvent
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile, ReliabilityPolicy


def wait(node, future, timeout):
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        print(json.dumps({"error": "no response"}), flush=True)
        sys.exit(3)
    return future.result()


def descriptor_json(d):
    return {
        "name": d.name,
        "type": d.type,
        "description": d.description,
        "read_only": d.read_only,
        "additional_constraints": d.additional_constraints,
        "integer_range": [[r.from_value, r.to_value, r.step] for r in d.integer_range],
        "floating_point_range": [[r.from_value, r.to_value] for r in d.floating_point_range],
    }


def value_json(v):
    value = parameter_value_to_python(v)
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else value


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", default="/spot_ptz_stream")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    rclpy.init()
    node = Node("test_parameter_client")
    events = []
    node.create_subscription(
        ParameterEvent,
        "/parameter_events",
        lambda e: events.append(e) if e.node == args.node else None,
        QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE),
    )
    client = AsyncParameterClient(node, args.node)
    if not client.wait_for_services(timeout_sec=args.timeout):
        print(json.dumps({"error": "parameter services not available"}), flush=True)
        sys.exit(3)
    t = args.timeout

    listed = wait(node, client.list_parameters([], 0), t)
    print(json.dumps({"step": "list", "names": list(listed.result.names)}), flush=True)

    described = wait(node, client.describe_parameters(
        ["target_bitrate_bps", "jpeg_max_rate_hz", "aim_policy", "robot_host", "ptz_mount_xyz"]), t)
    print(json.dumps({"step": "describe",
                      "descriptors": [descriptor_json(d) for d in described.descriptors]}), flush=True)

    got = wait(node, client.get_parameters(["target_bitrate_bps", "aim_policy"]), t)
    print(json.dumps({"step": "get", "values": [value_json(v) for v in got.values]}), flush=True)

    def set_one(name, value, type_=None):
        p = Parameter(name, type_, value) if type_ else Parameter(name, value=value)
        result = wait(node, client.set_parameters([p]), t).results[0]
        return {"name": name, "successful": result.successful, "reason": result.reason}

    taken = [
        set_one("target_bitrate_bps", 1000000),
        # An integer for a number parameter (what `ros2 param set ... 5` sends).
        set_one("jpeg_max_rate_hz", 5),
        set_one("diagnostics_period_secs", 0.25),
    ]
    print(json.dumps({"step": "set", "results": taken}), flush=True)

    refused = [
        set_one("target_bitrate_bps", -5),
        set_one("target_bitrate_bps", "fast"),
        set_one("robot_host", "elsewhere"),
        set_one("aim_policy", "nearest"),
        set_one("aim_deadband_deg", float("nan")),
        set_one("no_such_parameter", True),
    ]
    print(json.dumps({"step": "refused", "results": refused}), flush=True)

    atomic = wait(node, client.set_parameters_atomically([
        Parameter("jpeg_quality", value=50),
        Parameter("aim_deadband_deg", value=90.0),
    ]), t).result
    print(json.dumps({"step": "atomic", "successful": atomic.successful,
                      "reason": atomic.reason}), flush=True)

    names = ["target_bitrate_bps", "jpeg_max_rate_hz", "jpeg_quality", "aim_deadband_deg",
             "robot_host", "aim_policy", "diagnostics_period_secs",
             "qos_overrides./image_raw.publisher.depth"]
    after = wait(node, client.get_parameters(names), t)
    print(json.dumps({"step": "after",
                      "values": dict(zip(names, [value_json(v) for v in after.values]))}), flush=True)

    # What a subscriber sees of the publishers' QoS (rclcpp's QoS overrides).
    publishers = {}
    for topic in ["/image_raw", "/camera_info"]:
        info = node.get_publishers_info_by_topic(topic)
        publishers[topic] = [{"node": i.node_name,
                              "reliability": int(i.qos_profile.reliability),
                              "durability": int(i.qos_profile.durability)} for i in info]
    override = set_one("qos_overrides./image_raw.publisher.depth", 3)
    print(json.dumps({"step": "qos", "publishers": publishers, "set": override}), flush=True)

    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({"step": "events", "changed": [
        {p.name: value_json(p.value) for p in e.changed_parameters} for e in events
        if e.changed_parameters]}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
