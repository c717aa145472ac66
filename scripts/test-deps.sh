# shellcheck shell=bash
# scripts/test-deps.sh -- Debian packages that only the tests need. SOURCE it (bash), from
# scripts/test after scripts/ros-env.sh:
#
#     source scripts/test-deps.sh     # works under `set -euo pipefail`, CI=true, no stdin
#
#   ffmpeg       ffprobe/ffmpeg read and decode the MP4 files written by
#                `ptz_stream_probe --save-video` (tests/probe_recording.rs); ffmpeg's x11grab
#                takes the screenshot in tests/probe_display.rs.
#   xvfb         a virtual X display for `ptz_stream_probe --display` (tests/probe_display.rs).
#   iproute2     `ss`, to read the node's UDP receive buffers (tests/node_udp_receive_buffer.rs).
#   nftables     `nft`, a network path that drops packets (tests/lossy_network_path.rs).
#   libxcursor1  loaded at run time by the probe's window (minifb opens libX11 and libXcursor).
#
# Idempotent: a dpkg-query check (a few ms) when everything is installed; otherwise one
# `apt-get update` and a quiet, non-interactive install of the missing packages only. Needs
# root or password-less sudo for that install. On failure prints "test-deps: ERROR: ..." and
# returns 1 (never `exit`).

if [ -z "${BASH_VERSION:-}" ]; then
    echo "test-deps.sh: this file needs bash (source it from a bash script)" >&2
    # shellcheck disable=SC2317
    return 1 2>/dev/null || exit 1
fi
if ! (return 0 2>/dev/null); then
    echo "test-deps.sh: source this file instead of running it: source ${BASH_SOURCE[0]}" >&2
    exit 1
fi

_testdeps_main() {
    local pkgs="ffmpeg xvfb libxcursor1 iproute2 nftables" pkg status missing="" sudo="" log
    for pkg in $pkgs; do
        status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null) || status=""
        case "$status" in ii*) ;; *) missing="${missing:+$missing }$pkg" ;; esac
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "test-deps: ERROR: missing Debian packages: $missing. Install them: sudo apt-get install -y $missing" >&2
            return 1
        fi
    fi
    log=$(mktemp "${TMPDIR:-/tmp}/test-deps-apt.XXXXXX.log") || return 1
    echo "test-deps: apt-get install $missing" >&2
    # shellcheck disable=SC2086
    if ! { $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600 update &&
           $sudo env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 \
               -o Dpkg::Use-Pty=0 install --no-install-recommends $missing; } </dev/null >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "test-deps: ERROR: apt-get failed (log: $log). Try: apt-get update && apt-get install -y $missing" >&2
        return 1
    fi
    rm -f -- "$log"
}

if _testdeps_main; then
    unset -f _testdeps_main
    return 0
fi
unset -f _testdeps_main
return 1
