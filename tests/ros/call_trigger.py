#!/usr/bin/env python3
"""Calls a std_srvs/Trigger service and prints {"success", "message"} as JSON."""
import argparse
import json
import sys

import rclpy
from rclpy.node import Node
from std_srvs.srv import Trigger


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", required=True)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    rclpy.init()
    node = Node("test_trigger_client")
    client = node.create_client(Trigger, args.service)
    if not client.wait_for_service(timeout_sec=args.timeout):
        print(json.dumps({"error": "service not available"}), flush=True)
        sys.exit(3)
    future = client.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=args.timeout)
    if not future.done():
        print(json.dumps({"error": "no response"}), flush=True)
        sys.exit(3)
    response = future.result()
    print(json.dumps({"success": response.success, "message": response.message}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
