"""Launch spot_ptz_stream against a robot.

    export BOSDYN_CLIENT_USERNAME=<user> BOSDYN_CLIENT_PASSWORD=<password>
    ros2 launch spot_ptz_stream ptz_stream.launch.py robot_host:=192.168.80.3 namespace:=spot/cam

Credentials come only from BOSDYN_CLIENT_USERNAME / BOSDYN_CLIENT_PASSWORD in the environment
(the node inherits it); they are never launch arguments or parameters.
`ros2 launch spot_ptz_stream ptz_stream.launch.py --show-args` lists the arguments.
"""
import os

from ament_index_python.packages import get_package_share_directory
import launch.logging
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def launch_setup(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    missing = [v for v in ("BOSDYN_CLIENT_USERNAME", "BOSDYN_CLIENT_PASSWORD")
               if not context.environment.get(v)]
    if missing:
        launch.logging.get_logger("launch.user").warning(
            f"{' and '.join(missing)} not set: the node cannot log in to the robot")
    parameters = [arg("params_file")]
    # Only override the file's robot_host when one was given (else: the file, then $SPOT_IP).
    if arg("robot_host"):
        parameters.append({"robot_host": ParameterValue(arg("robot_host"), value_type=str)})
    return [Node(
        package="spot_ptz_stream",
        executable="spot_ptz_stream",
        name="spot_ptz_stream",
        namespace=arg("namespace"),
        parameters=parameters,
        output="screen",
    )]


def generate_launch_description():
    default_params = os.path.join(
        get_package_share_directory("spot_ptz_stream"), "config", "ptz_stream.yaml")
    return LaunchDescription([
        DeclareLaunchArgument(
            "namespace", default_value="spot/cam",
            description="Namespace of the node and of image_raw, camera_info"),
        DeclareLaunchArgument(
            "params_file", default_value=default_params,
            description="YAML parameter file of the node"),
        DeclareLaunchArgument(
            "robot_host", default_value="",
            description="Robot hostname or IP; empty = robot_host from params_file, "
                        "else the SPOT_IP environment variable"),
        OpaqueFunction(function=launch_setup),
    ])
