"""Robot-free: start spot_cam_sim and spot_ptz_stream streaming from it.

    ros2 launch spot_ptz_stream sim_stream.launch.py

The simulator listens on 127.0.0.1 (gRPC 50443, signalling 31102) with user "spot" /
password "spot-sim", and writes its test CA to /tmp/spot_cam_sim/ca.pem.
"""
import os

from ament_index_python.packages import get_package_share_directory, get_package_prefix
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, SetEnvironmentVariable, TimerAction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    prefix = get_package_prefix("spot_ptz_stream")
    sim = os.path.join(prefix, "lib", "spot_ptz_stream", "spot_cam_sim")
    params = os.path.join(get_package_share_directory("spot_ptz_stream"), "config", "ptz_stream.yaml")
    cert_dir = LaunchConfiguration("cert_dir")
    return LaunchDescription([
        DeclareLaunchArgument("cert_dir", default_value="/tmp/spot_cam_sim"),
        DeclareLaunchArgument("width", default_value="1280"),
        DeclareLaunchArgument("height", default_value="720"),
        SetEnvironmentVariable("BOSDYN_CLIENT_USERNAME", "spot"),
        SetEnvironmentVariable("BOSDYN_CLIENT_PASSWORD", "spot-sim"),
        ExecuteProcess(
            cmd=[sim, "--bind", "127.0.0.1", "--grpc-port", "50443", "--sdp-port", "31102",
                 "--cert-dir", cert_dir, "--username", "spot", "--password", "spot-sim",
                 "--width", LaunchConfiguration("width"), "--height", LaunchConfiguration("height")],
            output="screen",
        ),
        # Give the simulator a moment to write its CA before the node reads it.
        TimerAction(period=1.0, actions=[Node(
            package="spot_ptz_stream",
            executable="spot_ptz_stream",
            name="spot_ptz_stream",
            namespace="spot/cam",
            parameters=[params, {
                "robot_host": "127.0.0.1",
                "grpc_port": 50443,
                "sdp_port": 31102,
                "robot_ca_path": [cert_dir, "/ca.pem"],
                "camera_ca_path": [cert_dir, "/ca.pem"],
                "udp_bind_address": "127.0.0.1",
            }],
            output="screen",
        )]),
    ])
