#!/usr/bin/env python3
"""Python baseline receiver for the benchmark: Spot CAM WebRTC video -> sensor_msgs/Image.

Does what the existing Python Spot drivers do (the Spot SDK `spot_cam` WebRTC example,
spot_wrapper's Spot CAM image stream, spot_ros): log in with bosdyn-client, GET the camera's SDP
offer over HTTPS with the user token as bearer, answer it with an aiortc `RTCPeerConnection`
(non-trickle: aiortc gathers every candidate in setLocalDescription), POST the answer, then
`await track.recv()` frames decoded by aiortc's own H.264 decoder (PyAV/FFmpeg, in aiortc's
decoder thread), `frame.to_ndarray(format="bgr24")` and publish a bgr8 `sensor_msgs/Image`
through rclpy.

Deliberately the *favourable* receive-only variant: the received track is NOT added back to the
peer connection. The SDK example does add it back, which makes aiortc re-encode the video and
send it to the camera; that costs a full H.264 encode per frame and is left out here. Audio is
answered recvonly and its (Opus) frames are drained and dropped, like our Rust driver does.

Usage (credentials only from BOSDYN_CLIENT_USERNAME / BOSDYN_CLIENT_PASSWORD):

    baseline_receiver.py --robot-host HOST --grpc-port N --sdp-port N --robot-ca PATH \
        --camera-ca PATH [--sdp-path /h264.sdp] [--autostart] [--frame-id spot_cam_ptz] \
        [--qos-depth 1] [--ros-args -r __ns:=/bench/baseline]

ROS interface (node `baseline_receiver`):
  - publishes `image_raw` (sensor_msgs/Image, bgr8, step = width*3), QoS reliable /
    keep_last(qos-depth) / volatile. header.stamp = ROS clock when the decoded frame came out of
    `track.recv()`. msg.data is filled as cv_bridge's cv2_to_imgmsg does
    (`ndarray.tobytes()` into the message's array('B')).
  - services `~/start_stream`, `~/stop_stream` (std_srvs/Trigger). start logs in once (the token is
    reused and refreshed by bosdyn's TokenManager), fetches the offer, answers, and returns once the
    answer is accepted; frames follow when ICE/DTLS is up. stop closes the peer connection.

Output contract: stdout gets exactly one line `baseline ready` (flushed) once the services exist;
stderr gets `baseline: first frame published ...` for the first frame of each session, plus logs.
SIGINT/SIGTERM: close the peer connection, destroy the node, exit 0.

Threads: the asyncio loop (aiortc, signalling, frame conversion and publishing) runs in the main
thread; the rclpy executor spins in a second thread. Service callbacks hand their work to the loop
with asyncio.run_coroutine_threadsafe and wait for the result.

Loopback: aioice leaves 127.0.0.1 / ::1 out of its host candidates. When the robot address is a
loopback address (the simulator), the host candidates are restricted to that loopback address so
the ICE pair is loopback <-> loopback (see `_restrict_host_candidates`).
"""

import argparse
import asyncio
import base64
import concurrent.futures
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

import aioice.ice
import bosdyn.client
import requests
import urllib3
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

# What one Trigger call may wait for (login + offer + answer); the driver's HTTP timeout is 10 s.
SERVICE_WAIT_SECS = 30.0
HTTP_TIMEOUT_SECS = 10.0
# Shutdown budget for closing the peer connection (the whole exit must stay under 2 s).
CLOSE_TIMEOUT_SECS = 0.8
STATS_PERIOD_SECS = 10.0

def eprint(*parts):
    print(*parts, file=sys.stderr, flush=True)


def _restrict_host_candidates(robot_host):
    """Make aioice offer a loopback host candidate when the robot is on loopback.

    aioice's get_host_addresses() skips 127.0.0.1 and ::1, so against a robot on 127.0.0.1 the
    answer would only carry this machine's other interface addresses. When the robot address is
    loopback, gather on that loopback address only; otherwise keep aioice's behaviour.
    """
    try:
        infos = socket.getaddrinfo(robot_host, None, proto=socket.IPPROTO_UDP)
        address = ipaddress.ip_address(infos[0][4][0])
    except (OSError, ValueError, IndexError):
        return None
    if not address.is_loopback:
        return None
    loopback = str(address)
    is_v4 = address.version == 4

    def host_addresses(use_ipv4, use_ipv6):
        return [loopback] if (use_ipv4 if is_v4 else use_ipv6) else []

    aioice.ice.get_host_addresses = host_addresses
    return loopback


class Receiver:
    """The WebRTC side. Coroutines run on the asyncio loop thread; the blocking `_login`,
    `_get_offer` and `_post_answer` run in the loop's default executor."""

    def __init__(self, args, node, publisher, loop):
        self.args = args
        self.node = node
        self.publisher = publisher
        self.loop = loop
        self.username = os.environ.get("BOSDYN_CLIENT_USERNAME", "")
        self.password = os.environ.get("BOSDYN_CLIENT_PASSWORD", "")
        host = args.robot_host
        url_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        self.url = f"https://{url_host}:{args.sdp_port}/{args.sdp_path.lstrip('/')}"
        self.http = requests.Session()
        self.http.trust_env = False  # no proxy for the robot's address
        self.robot = None
        self.pc = None
        self.tasks = set()
        self.lock = asyncio.Lock()
        self.session = 0
        self.frames = 0
        self.started_at = time.monotonic()

    # --- login and signalling (blocking; run in the default executor) ---------------------------

    def _login(self):
        if self.robot is not None and self.robot.user_token:
            return self.robot.user_token
        if not self.username or not self.password:
            raise RuntimeError("set BOSDYN_CLIENT_USERNAME and BOSDYN_CLIENT_PASSWORD")
        sdk = bosdyn.client.create_standard_sdk("baseline_receiver")
        sdk.load_robot_cert(self.args.robot_ca)
        robot = sdk.create_robot(self.args.robot_host)
        robot.update_secure_channel_port(self.args.grpc_port)
        try:
            robot.authenticate(self.username, self.password, timeout=HTTP_TIMEOUT_SECS)
        except Exception:
            # Do not leave a gRPC channel of a failed attempt reconnecting in the background.
            for channel in robot.channels_by_authority.values():
                channel.close()
            robot._shutdown()
            raise
        self.robot = robot
        return robot.user_token

    def _verify(self):
        return self.args.camera_ca if self.args.camera_ca else False

    def _get_offer(self, token):
        response = self.http.get(self.url, headers={"Authorization": f"Bearer {token}"},
                                 verify=self._verify(), timeout=HTTP_TIMEOUT_SECS)
        if response.status_code in (401, 403):
            self.robot = None  # log in again next time
        response.raise_for_status()
        body = response.json()
        return body["id"], base64.b64decode(body["sdp"]).decode("utf-8")

    def _post_answer(self, token, offer_id, sdp):
        body = {"id": offer_id, "sdp": base64.b64encode(sdp.encode("utf-8")).decode("utf-8")}
        response = self.http.post(self.url, json=body,
                                  headers={"Authorization": f"Bearer {token}"},
                                  verify=self._verify(), timeout=HTTP_TIMEOUT_SECS)
        response.raise_for_status()

    # --- session ---------------------------------------------------------------------------------

    async def start(self):
        async with self.lock:
            if self.pc is not None and self.pc.connectionState not in ("failed", "closed"):
                return True, f"already streaming (connection {self.pc.connectionState})"
            await self._close_pc()
            started = time.monotonic()
            try:
                token = await self.loop.run_in_executor(None, self._login)
                offer_id, offer_sdp = await self.loop.run_in_executor(None, self._get_offer, token)
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                self.session += 1
                self._watch(pc, self.session)
                self.pc = pc
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
                await pc.setLocalDescription(await pc.createAnswer())
                await self.loop.run_in_executor(None, self._post_answer, token, offer_id,
                                                pc.localDescription.sdp)
            except Exception as error:  # noqa: BLE001 -- any failure: log, allow a new start
                log_error = f"start_stream failed: {type(error).__name__}: {error}"
                self.node.get_logger().error(log_error)
                await self._close_pc()
                return False, log_error
            candidates = sorted({line.split()[4] for line in pc.localDescription.sdp.splitlines()
                                 if line.startswith("a=candidate:")})
            message = (f"answered offer {offer_id} in {time.monotonic() - started:.2f} s "
                       f"(host candidates {', '.join(candidates)}); frames follow once connected")
            self.node.get_logger().info(message)
            return True, message

    async def stop(self):
        async with self.lock:
            if self.pc is None:
                return True, "not streaming"
            await self._close_pc()
            return True, "stopped"

    def _watch(self, pc, session):
        @pc.on("connectionstatechange")
        async def on_state():
            state = pc.connectionState
            self.node.get_logger().info(f"session {session}: connection {state}")
            if state == "failed" and pc is self.pc:
                self.node.get_logger().error(
                    f"session {session}: WebRTC connection failed; call ~/start_stream to retry")
                await self._close_pc()

        @pc.on("track")
        def on_track(track):
            if track.kind == "video":
                self._spawn(self._video(track, session))
            else:
                self._spawn(self._drain(track))

    def _spawn(self, coro):
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _close_pc(self):
        pc, self.pc = self.pc, None
        if pc is not None:
            try:
                await asyncio.wait_for(pc.close(), CLOSE_TIMEOUT_SECS)
            except Exception as error:  # noqa: BLE001 -- closing is best effort
                self.node.get_logger().warn(f"closing the peer connection: {error!r}")
        for task in list(self.tasks):
            task.cancel()

    async def _drain(self, track):
        try:
            while True:
                await track.recv()
        except MediaStreamError:
            pass

    async def _video(self, track, session):
        clock = self.node.get_clock()
        frame_id = self.args.frame_id
        first = True
        try:
            while True:
                frame = await track.recv()
                stamp = clock.now().to_msg()
                bgr = frame.to_ndarray(format="bgr24")
                msg = Image()
                msg.header.stamp = stamp
                msg.header.frame_id = frame_id
                msg.height, msg.width = bgr.shape[0], bgr.shape[1]
                msg.encoding = "bgr8"
                msg.is_bigendian = 0
                msg.step = msg.width * 3
                msg.data = bgr.tobytes()  # what cv_bridge.cv2_to_imgmsg does
                self.publisher.publish(msg)
                self.frames += 1
                if first:
                    first = False
                    eprint(f"baseline: first frame published (session {session}, "
                           f"{msg.width}x{msg.height}, "
                           f"{time.monotonic() - self.started_at:.3f} s after launch, "
                           f"unix_ns={time.time_ns()})")
        except MediaStreamError:
            self.node.get_logger().info(
                f"session {session}: video track ended; call ~/start_stream to stream again")

    async def stats(self):
        last_frames, last_time = 0, time.monotonic()
        while True:
            await asyncio.sleep(STATS_PERIOD_SECS)
            now = time.monotonic()
            if self.frames != last_frames:
                fps = (self.frames - last_frames) / (now - last_time)
                self.node.get_logger().info(f"published {self.frames} frames; {fps:.1f} fps")
            last_frames, last_time = self.frames, now


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--robot-host", required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--sdp-port", type=int, required=True)
    parser.add_argument("--robot-ca", required=True, help="PEM of the robot's gRPC CA")
    parser.add_argument("--camera-ca", default=None,
                        help="PEM of the camera's signalling CA (omitted: not verified)")
    parser.add_argument("--sdp-path", default="/h264.sdp")
    parser.add_argument("--autostart", action="store_true")
    parser.add_argument("--frame-id", default="spot_cam_ptz")
    parser.add_argument("--qos-depth", type=int, default=1)
    return parser.parse_args(argv)


async def run(args):
    loop = asyncio.get_running_loop()
    stop_event = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_event.set)

    node = Node("baseline_receiver")
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=args.qos_depth,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)
    publisher = node.create_publisher(Image, "image_raw", qos)
    receiver = Receiver(args, node, publisher, loop)
    loopback = _restrict_host_candidates(args.robot_host)
    if loopback:
        node.get_logger().info(f"robot on loopback: ICE host candidate {loopback} only")
    if not args.camera_ca:
        node.get_logger().warn("the camera's signalling certificate is not verified")
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # said once above

    def call_on_loop(coro_fn):
        def callback(_request, response):
            future = asyncio.run_coroutine_threadsafe(coro_fn(), loop)
            try:
                response.success, response.message = future.result(timeout=SERVICE_WAIT_SECS)
            except concurrent.futures.TimeoutError:
                future.cancel()
                response.success, response.message = False, "timed out"
            except Exception as error:  # noqa: BLE001 -- report, never kill the executor
                response.success, response.message = False, f"{type(error).__name__}: {error}"
            return response
        return callback

    node.create_service(Trigger, "~/start_stream", call_on_loop(receiver.start))
    node.create_service(Trigger, "~/stop_stream", call_on_loop(receiver.stop))

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    spin_thread = threading.Thread(target=executor.spin, name="rclpy-spin", daemon=True)
    spin_thread.start()
    print("baseline ready", flush=True)

    stats_task = loop.create_task(receiver.stats())
    if args.autostart:
        loop.create_task(receiver.start())
    await stop_event.wait()

    node.get_logger().info("shutting down")
    stats_task.cancel()
    await receiver._close_pc()
    executor.shutdown(timeout_sec=0.5)
    spin_thread.join(timeout=0.5)
    if receiver.robot is not None:
        receiver.robot._shutdown()  # stops bosdyn's token refresh thread
    node.destroy_node()


def main():
    rclpy.init(args=sys.argv, signal_handler_options=SignalHandlerOptions.NO)
    args = parse_args(remove_ros_args(sys.argv)[1:])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(run(args))
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0.05))
    finally:
        rclpy.try_shutdown()
    # Not asyncio.run(): it would join the default executor's threads, and a login or HTTP
    # request in flight (up to 10 s) must not hold the exit up. Skip the interpreter's joins too.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
