"""Robot-free: start spot_cam_sim and spot_ptz_stream streaming from it.

    ros2 launch spot_ptz_stream sim_stream.launch.py
    ros2 launch spot_ptz_stream sim_stream.launch.py width:=1920 height:=1080 grpc_port:=50443

The simulator listens on 127.0.0.1 with user "spot" / password "spot-sim" (on free ports unless
grpc_port / sdp_port are given) and writes its test CA into cert_dir (by default a new temporary
directory for each run, removed at the end). The node starts once the simulator has printed its
`ready grpc=<addr> sdp=<addr> ca=<path>` line, and takes the ports and the CA from that line.
`ros2 launch spot_ptz_stream sim_stream.launch.py --show-args` lists the arguments.
"""
import os
import shutil
import tempfile

from ament_index_python.packages import get_package_prefix, get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, LogInfo,
                            OpaqueFunction, RegisterEventHandler)
from launch.event_handlers import OnProcessExit, OnProcessIO, OnShutdown
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

SIM_USERNAME = "spot"
SIM_PASSWORD = "spot-sim"


def parse_ready_line(line):
    """`ready grpc=127.0.0.1:41234 sdp=127.0.0.1:39871 ca=/tmp/x/ca.pem` -> dict, else None."""
    if not line.startswith("ready "):
        return None
    fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
    if not {"grpc", "sdp", "ca"} <= fields.keys():
        return None
    return fields


def launch_setup(context):
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    cert_dir = arg("cert_dir")
    made_cert_dir = not cert_dir
    if made_cert_dir:
        cert_dir = tempfile.mkdtemp(prefix="spot_cam_sim-")
    sim = ExecuteProcess(
        name="spot_cam_sim",
        cmd=[os.path.join(get_package_prefix("spot_ptz_stream"), "lib", "spot_ptz_stream",
                          "spot_cam_sim"),
             "--bind", "127.0.0.1", "--grpc-port", arg("grpc_port"), "--sdp-port", arg("sdp_port"),
             "--cert-dir", cert_dir, "--username", SIM_USERNAME, "--password", SIM_PASSWORD,
             "--width", arg("width"), "--height", arg("height"), "--fps", arg("fps")],
        # Its output reaches the screen and the launch log through a pipe: no colour codes.
        additional_env={"NO_COLOR": "1"},
        output="screen",
    )
    pending = {"text": "", "started": False}

    def on_sim_stdout(event):
        # Start the node once, when the simulator says it listens (its CA file exists by then).
        if pending["started"]:
            return None
        pending["text"] += event.text.decode(errors="replace")
        *lines, pending["text"] = pending["text"].split("\n")  # keep an unfinished line
        for line in lines:
            ready = parse_ready_line(line.strip())
            if ready is None:
                continue
            pending["started"] = True
            return [Node(
                package="spot_ptz_stream",
                executable="spot_ptz_stream",
                name="spot_ptz_stream",
                namespace=arg("namespace"),
                parameters=[arg("params_file"), {
                    "robot_host": ParameterValue("127.0.0.1", value_type=str),
                    "grpc_port": int(ready["grpc"].rsplit(":", 1)[1]),
                    "sdp_port": int(ready["sdp"].rsplit(":", 1)[1]),
                    "robot_ca_path": ParameterValue(ready["ca"], value_type=str),
                    "camera_ca_path": ParameterValue(ready["ca"], value_type=str),
                    "udp_bind_address": ParameterValue("127.0.0.1", value_type=str),
                }],
                # Credentials only through the environment, never as parameters.
                additional_env={"BOSDYN_CLIENT_USERNAME": SIM_USERNAME,
                                "BOSDYN_CLIENT_PASSWORD": SIM_PASSWORD},
                output="screen",
            )]
        return None

    def on_sim_exit(event, _context):
        if pending["started"]:
            return None
        return [EmitEvent(event=Shutdown(
            reason=f"spot_cam_sim exited (code {event.returncode}) before it was ready"))]

    actions = [
        LogInfo(msg=f"spot_cam_sim writes its test CA to {cert_dir}"),
        RegisterEventHandler(OnProcessIO(target_action=sim, on_stdout=on_sim_stdout)),
        RegisterEventHandler(OnProcessExit(target_action=sim, on_exit=on_sim_exit)),
        sim,
    ]
    if made_cert_dir:
        actions.append(RegisterEventHandler(OnShutdown(
            on_shutdown=lambda _event, _context: shutil.rmtree(cert_dir, ignore_errors=True))))
    return actions


def generate_launch_description():
    default_params = os.path.join(
        get_package_share_directory("spot_ptz_stream"), "config", "ptz_stream.yaml")
    return LaunchDescription([
        DeclareLaunchArgument(
            "grpc_port", default_value="0",
            description="gRPC (robot API) port of the simulator; 0 = a free port"),
        DeclareLaunchArgument(
            "sdp_port", default_value="0",
            description="HTTPS signalling port of the simulator; 0 = a free port"),
        DeclareLaunchArgument(
            "cert_dir", default_value="",
            description="Directory for the simulator's test CA (ca.pem); "
                        "empty = a new temporary directory, removed at the end"),
        DeclareLaunchArgument(
            "width", default_value="1280", description="Simulated stream width in pixels"),
        DeclareLaunchArgument(
            "height", default_value="720", description="Simulated stream height in pixels"),
        DeclareLaunchArgument(
            "fps", default_value="30", description="Simulated stream frame rate"),
        DeclareLaunchArgument(
            "namespace", default_value="spot/cam",
            description="Namespace of the node and of image_raw, camera_info"),
        DeclareLaunchArgument(
            "params_file", default_value=default_params,
            description="YAML parameter file of the node (the simulator's address, ports and "
                        "CA are set on top of it)"),
        OpaqueFunction(function=launch_setup),
    ])
