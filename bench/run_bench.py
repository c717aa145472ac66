#!/usr/bin/env python3
"""End-to-end benchmark: spot_cam_sim → receiver → ROS subscriber, ours and the Python baseline.

For each bitrate one simulator runs (1920x1080 at 30 fps by default); against it, one after the
other, each receiver under test streams for --duration-secs while a separate rclpy subscriber
(bench_subscriber.py) records every image, and this script samples the receiver's /proc
entries. Run by scripts/bench (which builds, installs and sets up ROS first); see the README's
"Performance" section for what each figure means.

Receivers:
  ours           target/release/spot_ptz_stream with config/ptz_stream.yaml (the defaults users
                 get: the libavcodec decoder)
  ours_openh264  the same with decoder:=openh264
  ours_unwatched the same with nobody subscribed to image_raw (only ~/stats): nothing is decoded;
                 CPU per frame counts the frames received (from ~/stats), not images
  baseline       bench/baseline_receiver.py: aiortc + PyAV + numpy + rclpy, as the Python
                 drivers do

Lossy link (--link-loss-percents, off by default): for each loss level one more simulator runs,
like the Spot CAM (intra refresh, keyframe requests ignored) behind a link that loses, delays and
reorders packets (LINK_FLAGS), at the first bitrate; `ours` and `baseline` stream from it one
after the other, and the subscriber compares every picture with what the simulator drew for its
frame number (bench/sim_scene.py). Figures per receiver: the frames published undamaged, as a
percentage of the frames the camera sent; the pictures published damaged; and how long the gaps
of frames not published cleanly last (the time to recover from a loss burst).

Compressed outputs (--compressed, off by default): one more simulator at the first bitrate, and
`ours` streaming from it with, in turn, a subscriber of image_raw only, of image_raw/ffmpeg and
image_raw/foxglove only, of image_raw/compressed (JPEG) only, and of nothing (bench/topic_meter.py
counts messages and bytes without decoding). Figures per case: bytes per second on each topic,
the node's CPU (% of one core, and ms per frame received).

Outputs in --out: results.json, results.md (tables), plot.png, and each run's raw files.
"""
import argparse
import csv
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
SYSTEMS = ("ours", "ours_openh264", "ours_unwatched", "baseline")
# The lossy-link run: a camera like the Spot CAM (one IDR, then intra refresh; keyframe requests
# ignored, so a receiver must repair the loss or wait out a refresh period) behind a Wi-Fi-like
# link (bursts of 3 packets lost after the camera's retransmission buffer, 1 % reordered, 20 ms
# one way); the loss percentage is added per level.
LINK_FLAGS = ["--intra-refresh", "--ignore-keyframe-requests", "--link-burst-len", "3",
              "--link-reorder-percent", "1", "--link-delay-ms", "20"]
LOSSY_SYSTEMS = ("ours", "baseline")
LOSSY_DEFAULT_BITRATE_BPS = 2_000_000
# A published picture is damaged when its worst 16x16 block is further than this from the
# simulator's drawing (mean absolute luma error; as tests/node_lossy_link.rs).
DAMAGED_WORST_BLOCK = 12.0
# Frames captured this close to the end of a run are not counted as sent (still on their way).
LOSSY_END_MARGIN_SECS = 1.0


def is_ours(system):
    return system.startswith("ours")


# ---------------------------------------------------------------- processes


class Process:
    """A child process with its output in a file, stopped with SIGINT (then SIGKILL)."""

    def __init__(self, name, argv, log_path, env=None, stdout=None):
        self.name = name
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=stdout or self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, env=env, cwd=ROOT)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout_secs=5.0):
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_secs)
            except subprocess.TimeoutExpired:
                print(f"  {self.name} did not stop on SIGINT within {timeout_secs} s; killed",
                      file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def thread_family(comm):
    """A thread's name without its number: `tokio-runtime-w`, `h264-decode`, `dds.udp`, ..."""
    return comm.rstrip("0123456789.-_#") or comm


def thread_cpu_secs(pid):
    """CPU seconds of each live thread family of `pid` (/proc/<pid>/task/*/stat)."""
    families = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return families
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        family = thread_family(comm)
        families[family] = families.get(family, 0.0) + \
            (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return families


class ProcSampler(threading.Thread):
    """Samples a process's CPU time, RSS, page faults and CPU by thread from /proc every
    `period_secs`."""

    # The CSV columns of a sample (the threads' CPU goes to threads.jsonl).
    CSV_HEADER = "time_ns,cpu_secs,rss_kb,hwm_kb,rss_shmem_kb,minor_faults,major_faults"

    def __init__(self, pid, period_secs=1.0):
        super().__init__(daemon=True)
        self.pid = pid
        self.period_secs = period_secs
        # (time_ns, cpu_secs, rss_kb, hwm_kb, rss_shmem_kb, minor_faults, major_faults,
        #  {thread family: cpu_secs})
        self.samples = []
        self._halt = threading.Event()

    def read(self):
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu_secs = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            minor_faults, major_faults = int(fields[7]), int(fields[9])
            fields = {}
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM", "RssShmem"):
                        fields[key] = int(value.split()[0])
            return (time.time_ns(), cpu_secs, fields.get("VmRSS", 0), fields.get("VmHWM", 0),
                    fields.get("RssShmem", 0), minor_faults, major_faults,
                    thread_cpu_secs(self.pid))
        except (OSError, IndexError, ValueError):
            return None

    def write(self, run_dir):
        """proc_samples.csv and threads.jsonl in `run_dir`."""
        with open(os.path.join(run_dir, "proc_samples.csv"), "w") as f:
            f.write(self.CSV_HEADER + "\n")
            f.writelines(",".join(str(v) for v in sample[:7]) + "\n"
                         for sample in self.samples)
        with open(os.path.join(run_dir, "threads.jsonl"), "w") as f:
            f.writelines(json.dumps({"time_ns": sample[0], "cpu_secs": sample[7]}) + "\n"
                         for sample in self.samples)

    def run(self):
        while not self._halt.is_set():
            sample = self.read()
            if sample:
                self.samples.append(sample)
            self._halt.wait(self.period_secs)

    def stop(self):
        self._halt.set()
        self.join()


# ---------------------------------------------------------------- statistics


def percentile(values, q):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def slope_per_min(points):
    """Least-squares slope of (time_ns, value) points, per minute."""
    if len(points) < 3:
        return None
    xs = [(t - points[0][0]) / 60e9 for t, _ in points]
    ys = [v for _, v in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var


def read_frame_log(path):
    capture_ns = {}
    with open(path) as f:
        for line in f:
            number, _, ns = line.strip().partition(",")
            if number.isdigit() and ns.isdigit():
                capture_ns[int(number)] = int(ns)
    return capture_ns


def read_images(path):
    rows = []
    with open(path) as f:
        for row in csv.DictReader(f):
            rows.append((int(row["frame_number"]) if row["frame_number"] else None,
                         int(row["receive_ns"]), int(row["stamp_ns"])))
    return rows


def read_pixel_checks(path):
    """(frame_number or None, receive_ns, worst_block or None) of every image, if checked."""
    rows = []
    with open(path) as f:
        for row in csv.DictReader(f):
            worst = row.get("worst_block")
            rows.append((int(row["frame_number"]) if row["frame_number"] else None,
                         int(row["receive_ns"]), float(worst) if worst else None))
    return rows


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass  # a line still being written
    return rows


def as_float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def progress_seen(system, path):
    """Whether the run has begun: an image arrived, or (unwatched) frames are counted."""
    if not os.path.exists(path):
        return False
    if system != "ours_unwatched":
        with open(path) as f:  # a line after the header
            f.readline()
            return f.readline().endswith("\n")
    return any(int(s.get("frames_received", "0")) > 0 for s in read_jsonl(path))


def analyse_unwatched(run_dir, samples, warmup_secs):
    """CPU of a receiver nobody watches, per frame it received (its ~/stats)."""
    stats = [s for s in read_jsonl(os.path.join(run_dir, "stats.jsonl"))
             if int(s.get("frames_received", "0")) > 0]
    result = {"images_received": 0}
    if len(stats) < 2:
        result["error"] = "no frames counted in ~/stats"
        return result
    window_start = stats[0]["receive_ns"] + int(warmup_secs * 1e9)
    window = [s for s in stats if s["receive_ns"] >= window_start]
    in_window = [s for s in samples if window[0]["receive_ns"] <= s[0] <= window[-1]["receive_ns"]] \
        if len(window) >= 2 else []
    if len(in_window) < 2:
        result["error"] = "the run was too short to measure after the warm-up"
        return result
    frames = int(window[-1]["frames_received"]) - int(window[0]["frames_received"])
    wall_secs = (window[-1]["receive_ns"] - window[0]["receive_ns"]) / 1e9
    result["window_secs"] = round(wall_secs, 2)
    result["fps"] = frames / wall_secs if wall_secs > 0 else None
    result["frames_decoded"] = int(window[-1].get("frames_decoded", "0"))
    add_cpu_and_memory(result, in_window, frames, wall_secs)
    result["rss_peak_mb"] = max(s[3] for s in samples) / 1024
    return result


def add_cpu_and_memory(result, in_window, frames, wall_secs):
    """CPU per frame and steady memory of the receiver over `in_window` (its /proc samples)."""
    first, last = in_window[0], in_window[-1]
    cpu_secs = last[1] - first[1]
    result["cpu_percent_of_one_core"] = 100.0 * cpu_secs / wall_secs
    if frames:
        result["cpu_ms_per_frame"] = 1e3 * cpu_secs / frames
        result["minor_faults_per_frame"] = (last[5] - first[5]) / frames
        result["major_faults_per_frame"] = (last[6] - first[6]) / frames
        # By thread family; a thread that ended in the window is missing from the last
        # sample, so a family's figure is never negative and the parts may sum to a little
        # less than the whole.
        result["cpu_ms_per_frame_by_thread"] = {
            family: 1e3 * max(0.0, secs - first[7].get(family, 0.0)) / frames
            for family, secs in sorted(last[7].items())}
    steady = in_window[len(in_window) // 2:]
    result["rss_steady_mb"] = statistics.median(s[2] for s in steady) / 1024
    # Of which shared memory: the DDS transport's segment (32 MiB: the node's own
    # profile, src/ros/middleware.rs), filled by the images on their way out, shared with readers.
    result["rss_shared_memory_mb"] = statistics.median(s[4] for s in steady) / 1024
    result["rss_private_steady_mb"] = result["rss_steady_mb"] - result["rss_shared_memory_mb"]


def measurement_window(images, warmup_secs):
    """Receive times (ns) of the window measured: from the warm-up's end to the last image."""
    return images[0][1] + int(warmup_secs * 1e9), images[-1][1]


def analyse(run_dir, images, capture_ns, samples, warmup_secs):
    """Every figure of one receiver's run."""
    start = json.load(open(os.path.join(run_dir, "start.json"))) \
        if os.path.exists(os.path.join(run_dir, "start.json")) else None
    result = {"images_received": len(images)}
    if not images:
        result["error"] = "no image received"
        return result
    first_receive_ns = images[0][1]
    if start:
        result["start_to_first_image_ms"] = (first_receive_ns - start["start_call_ns"]) / 1e6
    window_start, window_end = measurement_window(images, warmup_secs)
    window = [r for r in images if r[1] >= window_start]
    secs = (window_end - window_start) / 1e9
    result["window_secs"] = round(secs, 2)
    if secs <= 1 or len(window) < 2:
        result["error"] = "the run was too short to measure after the warm-up"
        return result
    numbers = [n for n, _, _ in window if n is not None]
    result["fps"] = (len(window) - 1) / ((window[-1][1] - window[0][1]) / 1e9)
    if numbers:
        expected = max(numbers) - min(numbers) + 1
        result["frames_expected"] = expected
        result["frames_lost"] = expected - len(set(numbers))
        result["frame_loss_percent"] = 100.0 * result["frames_lost"] / expected
        result["untagged_frames"] = len(window) - len(numbers)
    glass = [(r - capture_ns[n]) / 1e6 for n, r, _ in window if n in capture_ns]
    stamp = [(r - s) / 1e6 for _, r, s in window]
    for q in (50, 95, 99):
        result[f"glass_to_subscriber_ms_p{q}"] = percentile(glass, q / 100)
        result[f"stamp_to_subscriber_ms_p{q}"] = percentile(stamp, q / 100)

    # CPU and memory of the receiver, over the same window.
    in_window = [s for s in samples if window_start <= s[0] <= window_end]
    if len(in_window) >= 2:
        frames = sum(1 for _, r, _ in window if in_window[0][0] <= r <= in_window[-1][0])
        wall_secs = (in_window[-1][0] - in_window[0][0]) / 1e9
        add_cpu_and_memory(result, in_window, frames, wall_secs)
        result["rss_growth_mb_per_min"] = slope_per_min([(s[0], s[2] / 1024) for s in in_window])
    if samples:
        result["rss_peak_mb"] = max(s[3] for s in samples) / 1024

    # The node's own arrival → publish latency, from its ~/stats (600-frame windows).
    stats = [s for s in read_jsonl(os.path.join(run_dir, "stats.jsonl"))
             if s["receive_ns"] >= window_start]
    if stats:
        for q in (50, 95, 99):
            values = [v for v in (as_float(s.get(f"latency_ms_p{q}")) for s in stats)
                      if v is not None]
            if values:
                # The median of the windows for p50; the worst window for the tails.
                result[f"arrival_to_publish_ms_p{q}"] = (statistics.median(values) if q == 50
                                                         else max(values))
        last = stats[-1]
        for key in ("frames_dropped", "frames_incomplete", "decode_errors", "rtp_packets_lost",
                    "reconnects", "frames_published"):
            if key in last:
                result[f"node_{key}"] = int(last[key])
    return result


def gap_lengths(sent, clean):
    """Lengths, in frames, of the runs of consecutive sent frames not in `clean`."""
    gaps, run = [], 0
    for number in sent:
        if number in clean:
            if run:
                gaps.append(run)
            run = 0
        else:
            run += 1
    if run:
        gaps.append(run)
    return gaps


def analyse_lossy(run_dir, images, capture_ns, warmup_secs, stop_ns, fps):
    """The lossy-link figures of one receiver's run, from the subscriber's pixel check.

    Frames sent: those the simulator captured between the end of the warm-up (as `analyse`) and
    LOSSY_END_MARGIN_SECS before the run stopped (so that a receiver that stops publishing
    near the end is not let off). A frame is published cleanly when an image with its number
    arrived with a worst block within DAMAGED_WORST_BLOCK (or, checking every Nth image only,
    arrived unchecked). A damaged picture: a checked one beyond it, or one whose tag is
    unreadable.
    """
    checks = read_pixel_checks(os.path.join(run_dir, "images.csv"))
    path = os.path.join(run_dir, "pixel_check.json")
    summary = json.load(open(path)) if os.path.exists(path) else {}
    result = {"pixel_check_every": summary.get("every"),
              "pixel_check_ms_mean": summary.get("mean_ms"),
              "pixel_check_ms_max": summary.get("max_ms"),
              "control_off_by_two_worst_block_min": summary.get("control_min")}
    if not images:
        return result
    window_start, _ = measurement_window(images, warmup_secs)
    window_end = stop_ns - int(LOSSY_END_MARGIN_SECS * 1e9)
    sent = sorted(n for n, ns in capture_ns.items() if window_start <= ns <= window_end)
    if not sent:
        result["lossy_error"] = "no frame sent in the window"
        return result
    sent_set = set(sent)
    published = [(n, w) for n, r, w in checks
                 if n in sent_set or (n is None and window_start <= r <= window_end)]
    checked = [w for n, w in published if w is not None]
    untagged = sum(1 for n, _ in published if n is None)
    damaged = untagged + sum(1 for w in checked if w > DAMAGED_WORST_BLOCK)
    # Checking every image, a tagged image always has a figure; otherwise unchecked is clean.
    unchecked_clean = (summary.get("every") or 1) > 1
    clean = {n for n, w in published if n is not None
             and (w <= DAMAGED_WORST_BLOCK if w is not None else unchecked_clean)}
    gaps = [g / fps for g in gap_lengths(sent, clean)]
    result.update({
        "frames_sent": len(sent),
        "images_published": len(published),
        "images_checked": len(checked),
        "untagged_images": untagged,
        "clean_frames": len(clean),
        "clean_frames_percent": 100.0 * len(clean) / len(sent),
        "damaged_frames_published": damaged,
        # Of the pictures whose state is known (all of them, checking every one).
        "damaged_frames_published_percent": 100.0 * damaged / (len(checked) + untagged)
        if checked or untagged else None,
        "worst_block_p50": percentile(checked, 0.5),
        "worst_block_max": max(checked) if checked else None,
        "loss_gaps": len(gaps),
        "recovery_secs_p50": percentile(gaps, 0.5),
        "recovery_secs_max": max(gaps) if gaps else None,
    })
    return result


def timeline(images, capture_ns, samples):
    """Per-frame glass latency and per-second CPU, relative to the first image, for the plot."""
    if not images and not samples:
        return {"latency": [], "cpu": []}
    # Without images (nobody watching): relative to the first CPU sample.
    t0 = images[0][1] if images else samples[0][0]
    latency = [((r - t0) / 1e9, (r - capture_ns[n]) / 1e6) for n, r, _ in images
               if n in capture_ns]
    cpu = []
    for a, b in zip(samples, samples[1:]):
        if b[0] > a[0]:
            cpu.append(((b[0] - t0) / 1e9, 100.0 * (b[1] - a[1]) / ((b[0] - a[0]) / 1e9),
                        b[2] / 1024))
    return {"latency": latency, "cpu": cpu}


# ---------------------------------------------------------------- micro-benchmarks


def criterion_median_ns(group, bench):
    path = os.path.join(ROOT, "target", "criterion", group, bench, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"]
    except (OSError, KeyError, ValueError):
        return None


def micro_floor(bitrate_bps):
    """The hot path's floor per frame from the criterion results, in ms (None if missing)."""
    mbps = f"{bitrate_bps // 1_000_000}mbps_30_frames"
    parts = {
        "depacketize": (criterion_median_ns("depacketize_1080p", mbps), 30),
        "decode": (criterion_median_ns("decode_1080p", mbps), 30),
        "i420_to_bgr8": (criterion_median_ns("i420_to_bgr8_1080p", "pooled_buffer"), 1),
        "messages_and_publish": (criterion_median_ns("ros_message_1080p", "serialized_in_place"),
                                 1),
    }
    per_frame = {k: (ns / n / 1e6 if ns is not None else None) for k, (ns, n) in parts.items()}
    if any(v is None for v in per_frame.values()):
        return {"parts_ms": per_frame, "total_ms": None}
    return {"parts_ms": per_frame, "total_ms": sum(per_frame.values())}


# ---------------------------------------------------------------- one bitrate


def start_simulator(args, work, bitrate_bps, extra_flags=()):
    ready_path = os.path.join(work, "sim.ready")
    frame_log = os.path.join(work, "frames.csv")
    sim = Process("spot_cam_sim", [
        os.path.join(args.bin_dir, "spot_cam_sim"), "--bind", "127.0.0.1",
        "--grpc-port", "0", "--sdp-port", "0", "--cert-dir", os.path.join(work, "certs"),
        "--username", os.environ["BOSDYN_CLIENT_USERNAME"],
        "--password", os.environ["BOSDYN_CLIENT_PASSWORD"],
        "--width", str(args.width), "--height", str(args.height), "--fps", str(args.fps),
        "--bitrate-bps", str(bitrate_bps), "--frame-log", frame_log, *extra_flags,
    ], os.path.join(work, "sim.log"), stdout=open(ready_path, "w"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(ready_path) as f:
            line = f.readline()
        match = re.search(r"grpc=\S+:(\d+) sdp=\S+:(\d+) ca=(\S+)", line)
        if match:
            return sim, int(match.group(1)), int(match.group(2)), match.group(3), frame_log
        if not sim.alive():
            break
        time.sleep(0.1)
    sim.stop()
    raise SystemExit(f"spot_cam_sim did not become ready; see {work}/sim.log")


def receiver_command(system, args, grpc, sdp, ca, bitrate_bps):
    ros_run = os.environ.get("ROS_RUN", "ros-run")
    if is_ours(system):
        decoder = ["-p", "decoder:=openh264"] if system == "ours_openh264" else []
        return [ros_run, os.path.join(args.bin_dir, "spot_ptz_stream"), "--ros-args",
                "-r", f"__ns:=/bench/{system}", "--params-file", os.path.join(ROOT, "config",
                                                                              "ptz_stream.yaml"),
                *decoder,
                "-p", "autostart:=false", "-p", "robot_host:=127.0.0.1",
                "-p", f"grpc_port:={grpc}", "-p", f"sdp_port:={sdp}",
                "-p", f"robot_ca_path:={ca}", "-p", f"camera_ca_path:={ca}",
                "-p", "udp_bind_address:=127.0.0.1",
                "-p", f"target_bitrate_bps:={bitrate_bps}"]
    return [ros_run, os.environ.get("ROS_PYTHON", sys.executable),
            os.path.join(ROOT, "bench", "baseline_receiver.py"),
            "--robot-host", "127.0.0.1", "--grpc-port", str(grpc), "--sdp-port", str(sdp),
            "--robot-ca", ca, "--camera-ca", ca,
            "--ros-args", "-r", "__ns:=/bench/baseline"]


def run_receiver(system, args, work, sim_ports, bitrate_bps, capture_log, check_pixels=False):
    grpc, sdp, ca = sim_ports
    run_dir = os.path.join(work, system)
    os.makedirs(run_dir, exist_ok=True)
    ns = f"/bench/{system}"
    receiver = Process(system, receiver_command(system, args, grpc, sdp, ca, bitrate_bps),
                       os.path.join(run_dir, "receiver.log"))
    # ros-run execs the receiver: the child's pid is the receiver's.
    sampler = ProcSampler(receiver.pid)
    sampler.start()
    ros_run = os.environ.get("ROS_RUN", "ros-run")
    subscriber_argv = [ros_run, os.environ.get("ROS_PYTHON", sys.executable),
                       os.path.join(ROOT, "bench", "bench_subscriber.py"),
                       "--image-topic", f"{ns}/image_raw",
                       "--start-service", f"{ns}/{'spot_ptz_stream' if is_ours(system) else 'baseline_receiver'}/start_stream",
                       "--out", run_dir]
    if is_ours(system):
        subscriber_argv += ["--stats-topic", f"{ns}/spot_ptz_stream/stats"]
    if system == "ours_unwatched":
        subscriber_argv += ["--without-images"]
    if check_pixels:
        subscriber_argv += ["--check-pixels", "--fps", str(args.fps),
                            "--check-every", str(args.pixel_check_every)]
    # What starts the measurement: the first image, or without images the first ~/stats
    # message that counts received frames.
    progress_path = os.path.join(run_dir, "stats.jsonl" if system == "ours_unwatched"
                                 else "images.csv")
    subscriber = Process("subscriber", subscriber_argv, os.path.join(run_dir, "subscriber.log"))
    images_path = os.path.join(run_dir, "images.csv")
    print(f"  {system}: streaming for {args.duration_secs:.0f} s after the first image ...",
          file=sys.stderr, flush=True)
    deadline = time.monotonic() + args.first_image_timeout_secs
    first_seen = None
    while True:
        time.sleep(0.25)
        if not receiver.alive() or not subscriber.alive():
            print(f"  {system}: a process ended early; see {run_dir}/*.log", file=sys.stderr)
            break
        if first_seen is None:
            if progress_seen(system, progress_path):
                first_seen = time.monotonic()
            elif time.monotonic() > deadline:
                print(f"  {system}: no image within {args.first_image_timeout_secs} s; "
                      f"see {run_dir}/*.log", file=sys.stderr)
                break
        elif time.monotonic() - first_seen >= args.duration_secs:
            break
    stop_ns = time.time_ns()
    subscriber.stop()
    sampler.stop()
    exit_code = receiver.stop()
    sampler.write(run_dir)
    # Read once, used by both the figures and the plot.
    images, capture_ns = read_images(images_path), capture_log()
    if system == "ours_unwatched":
        result = analyse_unwatched(run_dir, sampler.samples, args.warmup_secs)
        result["receiver_exit_code"] = exit_code
        return result, timeline(images, capture_ns, sampler.samples)
    result = analyse(run_dir, images, capture_ns, sampler.samples, args.warmup_secs)
    result["receiver_exit_code"] = exit_code
    if check_pixels:
        result.update(analyse_lossy(run_dir, images, capture_ns, args.warmup_secs, stop_ns,
                                    args.fps))
    return result, timeline(images, capture_ns, sampler.samples)


def run_lossy_link(args, systems, loss_percents, bitrate_bps):
    """The lossy-link run: one simulator per loss level, the receivers one after the other."""
    lossy = {"bitrate_bps": bitrate_bps, "link_flags": LINK_FLAGS,
             "pixel_check_every": args.pixel_check_every, "runs": []}
    for loss in loss_percents:
        work = os.path.join(args.out, f"lossy-{loss:g}pct")
        os.makedirs(work, exist_ok=True)
        print(f"lossy link, {loss:g} % lost, {bitrate_bps / 1e6:g} Mbit/s:", file=sys.stderr,
              flush=True)
        sim, grpc, sdp, ca, frame_log = start_simulator(
            args, work, bitrate_bps, [*LINK_FLAGS, "--link-loss-percent", f"{loss:g}"])
        run = {"link_loss_percent": loss, "results": {}}
        try:
            for system in systems:
                result, _ = run_receiver(system, args, work, (grpc, sdp, ca), bitrate_bps,
                                         lambda: read_frame_log(frame_log), check_pixels=True)
                run["results"][system] = result
                time.sleep(1.0)
        finally:
            sim.stop()
        lossy["runs"].append(run)
    return lossy


# ---------------------------------------------------------------- report


# The cases of the compressed-outputs run: name, the topics subscribed (kind, topic name), and
# what the node records: None, "pre-roll" (record_on_detection on, nobody detected: the pre-roll
# kept in memory) or "recording" (~/start_recording called when the measured window starts).
COMPRESSED_CASES = (
    ("image_raw", (("image", "image_raw"),), None),
    ("ffmpeg + foxglove", (("ffmpeg", "image_raw/ffmpeg"), ("foxglove", "image_raw/foxglove")),
     None),
    ("compressed (JPEG)", (("jpeg", "image_raw/compressed"),), None),
    ("nobody", (), None),
    ("event recording: pre-roll kept", (), "pre-roll"),
    ("event recording: writing", (), "recording"),
)


def mcap_bytes(directory):
    """The size of the .mcap files under `directory`."""
    total = 0
    for root, _, files in os.walk(directory):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files
                     if f.endswith(".mcap"))
    return total


def call_trigger(service):
    """Calls a std_srvs/Trigger service of the node (tests/ros/call_trigger.py)."""
    ros_run = os.environ.get("ROS_RUN", "ros-run")
    subprocess.run([ros_run, os.environ.get("ROS_PYTHON", sys.executable),
                    os.path.join(ROOT, "tests", "ros", "call_trigger.py"), "--service", service],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                   cwd=ROOT, check=False, timeout=60)


def cpu_secs_of(pid):
    sample = ProcSampler(pid).read()
    return sample[1] if sample else None


def run_compressed(args, bitrate_bps):
    """Our node with subscribers of one output at a time: wire bytes and the node's CPU."""
    work = os.path.join(args.out, "compressed")
    os.makedirs(work, exist_ok=True)
    print(f"compressed outputs, {bitrate_bps / 1e6:g} Mbit/s:", file=sys.stderr, flush=True)
    sim, grpc, sdp, ca, _ = start_simulator(args, work, bitrate_bps)
    ns = "/bench/ours"
    results = []
    ros_run = os.environ.get("ROS_RUN", "ros-run")
    try:
        for name, topics, recording in COMPRESSED_CASES:
            run_dir = os.path.join(work, name.split(":")[-1].split()[0])
            os.makedirs(run_dir, exist_ok=True)
            argv = receiver_command("ours", args, grpc, sdp, ca, bitrate_bps)
            argv = [a.replace("autostart:=false", "autostart:=true") for a in argv]
            record_dir = os.path.join(run_dir, "recordings")
            argv += ["-p", f"record_dir:={record_dir}"]
            if recording == "pre-roll":
                argv += ["-p", "record_on_detection:=true"]
            receiver = Process(name, argv, os.path.join(run_dir, "receiver.log"))
            meter_argv = [ros_run, os.environ.get("ROS_PYTHON", sys.executable),
                          os.path.join(ROOT, "bench", "topic_meter.py"),
                          "--stats-topic", f"{ns}/spot_ptz_stream/stats",
                          "--duration-secs", str(args.duration_secs - args.warmup_secs),
                          "--warmup-secs", str(args.warmup_secs),
                          "--timeout-secs", str(args.duration_secs + args.first_image_timeout_secs)]
            for kind, topic in topics:
                meter_argv += ["--topic", f"{kind}={ns}/{topic}"]
            print(f"  {name} ...", file=sys.stderr, flush=True)
            meter = subprocess.Popen(meter_argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, text=True, cwd=ROOT)
            started, disk_at_start = None, 0
            result = {"case": name, "topics": {}}
            for line in meter.stdout:
                message = json.loads(line)
                if message.get("window") == "start":
                    if recording == "recording":
                        call_trigger(f"{ns}/spot_ptz_stream/start_recording")
                    started = (time.monotonic(), cpu_secs_of(receiver.pid))
                    disk_at_start = mcap_bytes(record_dir)
                elif "topics" in message:
                    ended = (time.monotonic(), cpu_secs_of(receiver.pid))
                    window = message["window_secs"] or 1.0
                    for topic, count in message["topics"].items():
                        result["topics"][topic.rsplit(ns + "/", 1)[-1]] = {
                            "messages_per_sec": count["messages"] / window,
                            "bytes_per_sec": count["bytes"] / window}
                    if recording:
                        result["disk_bytes_per_sec"] = (
                            (mcap_bytes(record_dir) - disk_at_start) / (ended[0] - started[0]))
                    if started and started[1] is not None and ended[1] is not None:
                        cpu = ended[1] - started[1]
                        result["cpu_percent"] = 100.0 * cpu / (ended[0] - started[0])
                        frames = message["frames_received"]
                        frames_secs = message["frames_secs"] or 1.0
                        fps = frames / frames_secs
                        if fps > 0:
                            result["cpu_ms_per_frame"] = 1e3 * cpu / ((ended[0] - started[0]) * fps)
                        result["frames_received_per_sec"] = fps
            meter.wait()
            receiver.stop()
            if "cpu_percent" not in result:
                result["error"] = f"no measurement; see {run_dir}/receiver.log"
            results.append(result)
            time.sleep(1.0)
    finally:
        sim.stop()
    return {"bitrate_bps": bitrate_bps, "cases": results}


def compressed_markdown(compressed, fps):
    if not compressed:
        return []
    lines = ["", f"#### Compressed outputs, {compressed['bitrate_bps'] / 1e6:g} Mbit/s "
             f"({fps} fps, `jpeg_max_rate_hz` as in config/ptz_stream.yaml)", "",
             "| subscribed | topic | messages/s | bytes/s | node CPU % of a core | node CPU ms per frame |",
             "|---|---|---|---|---|---|"]
    for case in compressed["cases"]:
        topics = case["topics"] or {"–": {}}
        if "disk_bytes_per_sec" in case:
            topics = {"(disk: .mcap files)": {"bytes_per_sec": case["disk_bytes_per_sec"]}}
        for i, (topic, figures) in enumerate(topics.items()):
            first = i == 0
            lines.append(
                f"| {case['case'] if first else ''} | {topic} | "
                f"{fmt(figures.get('messages_per_sec'), '{:.1f}')} | "
                f"{fmt(figures.get('bytes_per_sec'), '{:,.0f}')} | "
                f"{fmt(case.get('cpu_percent'), '{:.1f}') if first else ''} | "
                f"{fmt(case.get('cpu_ms_per_frame'), '{:.2f}') if first else ''} |")
    return lines


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1),
            "kernel": platform.release(), "python": platform.python_version()}


ROWS = [
    ("delivered fps", "fps", "{:.1f}"),
    ("frames lost (subscriber) %", "frame_loss_percent", "{:.2f}"),
    ("frames dropped by the node", "node_frames_dropped", "{:d}"),
    ("glass→subscriber p50 ms", "glass_to_subscriber_ms_p50", "{:.1f}"),
    ("glass→subscriber p95 ms", "glass_to_subscriber_ms_p95", "{:.1f}"),
    ("glass→subscriber p99 ms", "glass_to_subscriber_ms_p99", "{:.1f}"),
    ("arrival→publish p50 ms", "arrival_to_publish_ms_p50", "{:.1f}"),
    ("arrival→publish p95 ms", "arrival_to_publish_ms_p95", "{:.1f}"),
    ("arrival→publish p99 ms", "arrival_to_publish_ms_p99", "{:.1f}"),
    ("CPU ms per frame", "cpu_ms_per_frame", "{:.2f}"),
    ("CPU % of one core", "cpu_percent_of_one_core", "{:.0f}"),
    ("minor page faults per frame", "minor_faults_per_frame", "{:.1f}"),
    ("major page faults per frame", "major_faults_per_frame", "{:.2f}"),
    ("RSS steady MB", "rss_steady_mb", "{:.1f}"),
    ("  of which DDS shared memory MB", "rss_shared_memory_mb", "{:.1f}"),
    ("  private (RSS − shared memory) MB", "rss_private_steady_mb", "{:.1f}"),
    ("RSS peak MB", "rss_peak_mb", "{:.1f}"),
    ("RSS growth MB/min", "rss_growth_mb_per_min", "{:+.2f}"),
    ("start_stream → first image ms", "start_to_first_image_ms", "{:.0f}"),
]
RATIO_KEYS = {"fps", "glass_to_subscriber_ms_p50", "glass_to_subscriber_ms_p95",
              "glass_to_subscriber_ms_p99", "cpu_ms_per_frame", "rss_steady_mb", "rss_peak_mb",
              "rss_private_steady_mb",
              "start_to_first_image_ms"}


LOSSY_ROWS = [
    ("frames sent (in the window)", "frames_sent", "{:d}"),
    ("clean frames % of sent", "clean_frames_percent", "{:.1f}"),
    ("damaged pictures published", "damaged_frames_published", "{:d}"),
    ("damaged pictures % of published", "damaged_frames_published_percent", "{:.1f}"),
    ("  of which without a readable tag", "untagged_images", "{:d}"),
    ("gaps (frames not published cleanly)", "loss_gaps", "{:d}"),
    ("recovery p50 s", "recovery_secs_p50", "{:.2f}"),
    ("recovery max s", "recovery_secs_max", "{:.2f}"),
    ("worst-block error p50 / max", None, None),
    ("delivered fps", "fps", "{:.1f}"),
    ("glass→subscriber p50 ms", "glass_to_subscriber_ms_p50", "{:.1f}"),
    ("glass→subscriber p99 ms", "glass_to_subscriber_ms_p99", "{:.1f}"),
    ("pixel check ms per image", "pixel_check_ms_mean", "{:.1f}"),
]


def fmt(value, pattern):
    if value is None:
        return "–"
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown(report):
    lines = []
    m = report["machine"]
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux "
                 f"{m['kernel']}; simulator {report['width']}x{report['height']} at "
                 f"{report['fps']} fps on the same machine; {report['duration_secs']:.0f} s per "
                 f"receiver after the first image, the first {report['warmup_secs']:.0f} s "
                 f"not counted.")
    for run in report["runs"]:
        systems = [s for s in SYSTEMS if s in run["results"]]
        lines.append("")
        lines.append(f"#### {run['bitrate_bps'] / 1e6:g} Mbit/s")
        lines.append("")
        ratio = "ours" in systems and "baseline" in systems
        header = "| metric | " + " | ".join(systems)
        if ratio:
            header += " | ours / baseline"
        lines.append(header + " |")
        lines.append("|" + "---|" * (len(systems) + 1 + ratio))
        for label, key, pattern in ROWS:
            values = [run["results"][s].get(key) for s in systems]
            if all(v is None for v in values):
                continue
            cells = [fmt(v, pattern) for v in values]
            if ratio:
                a, b = run["results"]["ours"].get(key), run["results"]["baseline"].get(key)
                cells.append(f"{a / b:.2f}" if key in RATIO_KEYS and a is not None and b
                             else "")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.extend(thread_markdown(run["results"], systems))
        floor = run.get("micro_floor", {})
        ours = run["results"].get("ours", {})
        if floor.get("total_ms") and ours.get("cpu_ms_per_frame"):
            parts = ", ".join(f"{k} {v:.2f}" for k, v in floor["parts_ms"].items())
            lines.append("")
            lines.append(f"Micro-benchmark floor per frame: {floor['total_ms']:.2f} ms ({parts}); "
                         f"end-to-end CPU per frame is {ours['cpu_ms_per_frame'] / floor['total_ms']:.2f}x "
                         f"the floor.")
    lines.extend(lossy_markdown(report.get("lossy_link"), report["fps"]))
    lines.extend(compressed_markdown(report.get("compressed"), report["fps"]))
    return "\n".join(lines) + "\n"


def thread_markdown(results, systems):
    """CPU ms per frame by thread family, each system's families in its own rows."""
    rows = [(system, family, ms) for system in systems
            for family, ms in results[system].get("cpu_ms_per_frame_by_thread", {}).items()
            if ms >= 0.01]
    if not rows:
        return []
    lines = ["", "Where a frame's CPU goes, by thread (ms per frame; threads named by their "
             "first 15 characters without their number; under 0.01 ms left out):", "",
             "| receiver | thread | CPU ms per frame | share |", "|---|---|---|---|"]
    for system, family, ms in sorted(rows, key=lambda r: (systems.index(r[0]), -r[2])):
        whole = results[system].get("cpu_ms_per_frame")
        share = f"{100.0 * ms / whole:.0f} %" if whole else ""
        lines.append(f"| {system} | `{family}` | {ms:.2f} | {share} |")
    return lines


def lossy_markdown(lossy, fps):
    if not lossy or not lossy["runs"]:
        return []
    lines = ["", f"#### Lossy link, {lossy['bitrate_bps'] / 1e6:g} Mbit/s", "",
             f"Simulator: `{' '.join(LINK_FLAGS)} --link-loss-percent L`. A picture is damaged "
             f"when its worst 16x16 block differs from the simulator's drawing by more than "
             f"{DAMAGED_WORST_BLOCK:g} (mean absolute luma); recovery is how long each run of "
             f"frames not published cleanly lasts."]
    columns = [(run["link_loss_percent"], system, run["results"][system])
               for run in lossy["runs"] for system in LOSSY_SYSTEMS if system in run["results"]]
    lines.append("")
    lines.append("| metric | " + " | ".join(f"{s} {loss:g} %" for loss, s, _ in columns) + " |")
    lines.append("|" + "---|" * (len(columns) + 1))
    for label, key, pattern in LOSSY_ROWS:
        if key is None:
            cells = [f"{fmt(r.get('worst_block_p50'), '{:.1f}')} / "
                     f"{fmt(r.get('worst_block_max'), '{:.1f}')}" for _, _, r in columns]
        else:
            cells = [fmt(r.get(key), pattern) for _, _, r in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    notes = []
    every = {r.get("pixel_check_every") for _, _, r in columns} - {None, 1}
    if every:
        notes.append(f"only 1 picture in {'/'.join(str(e) for e in sorted(every))} was "
                     f"checked (--pixel-check-every): unchecked pictures count as clean, and "
                     f"the damaged pictures are those of the checked ones")
    slow = [f"{s} {loss:g} %" for loss, s, r in columns
            if (r.get("pixel_check_ms_mean") or 0) > 500.0 / fps]
    if slow:
        notes.append(f"the pixel check took over half a frame interval per picture for "
                     f"{', '.join(slow)}: the subscriber may have fallen behind (fewer frames "
                     f"published); consider --pixel-check-every 3")
    weak = [f"{s} {loss:g} %" for loss, s, r in columns
            if r.get("control_off_by_two_worst_block_min") is not None
            and r["control_off_by_two_worst_block_min"] <= 2 * DAMAGED_WORST_BLOCK]
    if weak:
        notes.append(f"the control (a clean picture against the drawing of frame n-2) stayed "
                     f"at or under {2 * DAMAGED_WORST_BLOCK:g} for {', '.join(weak)}: the check "
                     f"may miss wrong pictures there")
    for note in notes:
        lines.extend(["", f"Note: {note}."])
    return lines


def plot(report, timelines, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    runs = report["runs"]
    fig, axes = plt.subplots(2, len(runs), figsize=(6.5 * len(runs), 7), squeeze=False)
    colours = {"ours": "tab:blue", "ours_openh264": "tab:green", "ours_unwatched": "tab:grey",
               "baseline": "tab:orange"}
    for col, run in enumerate(runs):
        top, bottom = axes[0][col], axes[1][col]
        for system, line in timelines[col].items():
            if line["latency"]:
                xs, ys = zip(*line["latency"])
                top.plot(xs, ys, ".", ms=1.5, color=colours[system], label=system)
            if line["cpu"]:
                xs, cpu, _ = zip(*line["cpu"])
                bottom.plot(xs, cpu, "-", lw=1, color=colours[system], label=system)
        top.set_title(f"{run['bitrate_bps'] / 1e6:g} Mbit/s, {report['width']}x{report['height']}"
                      f" @ {report['fps']} fps")
        top.set_ylabel("glass → subscriber latency (ms)")
        top.set_yscale("log")
        top.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        top.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        top.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        bottom.set_ylabel("receiver CPU (% of one core)")
        bottom.set_xlabel("seconds since the first image")
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
            ax.legend(loc="upper right", markerscale=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


# ---------------------------------------------------------------- main


def main():
    parser = argparse.ArgumentParser(description="End-to-end benchmark (see scripts/bench).")
    parser.add_argument("--duration-secs", type=float, default=60.0)
    parser.add_argument("--warmup-secs", type=float, default=5.0)
    parser.add_argument("--bitrates-bps", default="2000000,8000000")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--first-image-timeout-secs", type=float, default=30.0)
    parser.add_argument("--link-loss-percents", default="",
                        help="comma-separated link loss levels (e.g. 1,3) for the lossy-link run "
                             "of ours and baseline at the first bitrate (default: no such run)")
    parser.add_argument("--compressed", action="store_true",
                        help="also measure the compressed outputs (bytes per topic, the node's "
                             "CPU with only passthrough or JPEG subscribers) at the first bitrate")
    parser.add_argument("--pixel-check-every", type=int, default=1,
                        help="lossy-link run: check 1 picture in N (1080p at 30 fps keeps up "
                             "with every one on 2 cores: ~14 ms per picture)")
    parser.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        parser.error(f"--systems: {unknown or 'none'}; accepted: {', '.join(SYSTEMS)}")
    try:
        bitrates = [int(b) for b in args.bitrates_bps.split(",") if b.strip()]
    except ValueError:
        parser.error("--bitrates-bps: comma-separated integers, e.g. 2000000,8000000")
    try:
        loss_percents = [float(p) for p in args.link_loss_percents.split(",") if p.strip()]
    except ValueError:
        parser.error("--link-loss-percents: comma-separated numbers, e.g. 1,3")
    lossy_systems = [s for s in LOSSY_SYSTEMS if s in systems]
    if loss_percents and not lossy_systems:
        parser.error(f"--link-loss-percents runs {' and '.join(LOSSY_SYSTEMS)}; "
                     f"--systems has neither")
    if args.compressed and "ours" not in systems:
        parser.error("--compressed measures ours; --systems does not have it")
    if not bitrates and not loss_percents and not args.compressed:
        parser.error("nothing to run: --bitrates-bps is empty and --link-loss-percents not given")
    if args.pixel_check_every < 1:
        parser.error("--pixel-check-every must be at least 1")
    if args.duration_secs <= args.warmup_secs:
        parser.error("--duration-secs must be longer than --warmup-secs")
    os.makedirs(args.out, exist_ok=True)
    os.environ.setdefault("BOSDYN_CLIENT_USERNAME", "bench")
    os.environ.setdefault("BOSDYN_CLIENT_PASSWORD", "bench-password")

    report = {"machine": machine(), "width": args.width, "height": args.height,
              "fps": args.fps, "duration_secs": args.duration_secs,
              "warmup_secs": args.warmup_secs, "runs": []}
    timelines = []
    for bitrate_bps in bitrates:
        work = os.path.join(args.out, f"{bitrate_bps // 1000}kbps")
        os.makedirs(work, exist_ok=True)
        print(f"{bitrate_bps / 1e6:g} Mbit/s:", file=sys.stderr, flush=True)
        sim, grpc, sdp, ca, frame_log = start_simulator(args, work, bitrate_bps)
        run = {"bitrate_bps": bitrate_bps, "results": {}}
        if (args.width, args.height, args.fps) == (1920, 1080, 30):
            # The micro-benchmarks measure this stream's frames only.
            run["micro_floor"] = micro_floor(bitrate_bps)
        lines = {}
        try:
            for system in systems:
                result, line = run_receiver(system, args, work, (grpc, sdp, ca), bitrate_bps,
                                            lambda: read_frame_log(frame_log))
                run["results"][system] = result
                lines[system] = line
                # Let the simulator's encoder idle between receivers.
                time.sleep(1.0)
        finally:
            sim.stop()
        report["runs"].append(run)
        timelines.append(lines)
    if loss_percents:
        report["lossy_link"] = run_lossy_link(args, lossy_systems, loss_percents,
                                              bitrates[0] if bitrates
                                              else LOSSY_DEFAULT_BITRATE_BPS)
    if args.compressed:
        report["compressed"] = run_compressed(args, bitrates[0] if bitrates
                                              else LOSSY_DEFAULT_BITRATE_BPS)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=2)
    table = markdown(report)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table)
    if report["runs"]:
        plot(report, timelines, os.path.join(args.out, "plot.png"))
    print(table)
    print(f"results: {args.out}/results.json, results.md"
          f"{', plot.png' if report['runs'] else ''}", file=sys.stderr)
    failed = [f"{r['bitrate_bps']}/{s}" for r in report["runs"] for s, v in r["results"].items()
              if "error" in v]
    failed += [f"compressed/{c['case']}" for c in report.get("compressed", {}).get("cases", [])
               if "error" in c]
    failed += [f"loss {r['link_loss_percent']:g} %/{s}"
               for r in report.get("lossy_link", {}).get("runs", [])
               for s, v in r["results"].items() if "error" in v or "lossy_error" in v]
    if failed:
        print(f"no measurement for: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
