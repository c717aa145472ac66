"""Launch spot_ptz_stream against a robot.

    ros2 launch spot_ptz_stream ptz_stream.launch.py robot_host:=192.168.80.3 namespace:=spot/cam

Credentials come from BOSDYN_CLIENT_USERNAME / BOSDYN_CLIENT_PASSWORD in the environment.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    default_params = os.path.join(
        get_package_share_directory("spot_ptz_stream"), "config", "ptz_stream.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("namespace", default_value="spot/cam",
                              description="Namespace of image_raw, camera_info and the node"),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="YAML parameter file"),
        DeclareLaunchArgument("robot_host", default_value=os.environ.get("SPOT_IP", ""),
                              description="Robot hostname or IP (default: $SPOT_IP)"),
        Node(
            package="spot_ptz_stream",
            executable="spot_ptz_stream",
            name="spot_ptz_stream",
            namespace=LaunchConfiguration("namespace"),
            parameters=[LaunchConfiguration("params_file"),
                        {"robot_host": LaunchConfiguration("robot_host")}],
            output="screen",
        ),
    ])
