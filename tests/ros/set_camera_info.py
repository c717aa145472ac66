#!/usr/bin/env python3
"""Calls sensor_msgs/srv/SetCameraInfo as cameracalibrator's "commit" does, with the
calibration given as JSON (width, height, k, d, distortion_model, r, p), and prints
{"success", "status_message"} as JSON."""
import argparse
import json
import sys

import rclpy
from rclpy.node import Node
from sensor_msgs.srv import SetCameraInfo


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", default="/spot_ptz_stream/set_camera_info")
    parser.add_argument("--calibration", required=True, help="JSON")
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    c = json.loads(args.calibration)
    rclpy.init()
    node = Node("test_set_camera_info")
    client = node.create_client(SetCameraInfo, args.service)
    if not client.wait_for_service(timeout_sec=args.timeout):
        print(json.dumps({"error": "service not available"}), flush=True)
        sys.exit(3)
    request = SetCameraInfo.Request()
    info = request.camera_info
    info.width, info.height = c["width"], c["height"]
    info.distortion_model = c["distortion_model"]
    info.d = [float(x) for x in c["d"]]
    info.k = [float(x) for x in c["k"]]
    info.r = [float(x) for x in c["r"]]
    info.p = [float(x) for x in c["p"]]
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=args.timeout)
    if not future.done():
        print(json.dumps({"error": "no response"}), flush=True)
        sys.exit(3)
    response = future.result()
    print(json.dumps({"success": response.success,
                      "status_message": response.status_message}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
