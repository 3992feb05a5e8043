#!/usr/bin/env bash
# Side-by-side performance comparison: vswitch vs Open vSwitch 3.1 with DPDK: vhost-user loop
# with testpmd, and AF_XDP on veths with vswitch-pktgen.
#
#   ./bench/compare-ovs.sh [--rounds N] [--seconds S] [--smoke] [--only vswitch|ovs] [--keep]
#                          [--cases p2p,normal,p2p-1k,p2p-qos,dpdk,dpdk-1k,afxdp,afxdp-1k]
#                          (default: p2p,normal,p2p-1k,afxdp,afxdp-1k)  [--with-metrics] [--with-tuned]
# vswitch runs with the defaults a user gets. --with-tuned: also vswitch with --no-idle-backoff;
# --with-metrics: also vswitch with --metrics scraped every second (its cost).
#
# Run as root. Installs dpdk-dev (dpdk-testpmd) and openvswitch-switch-dpdk if missing, builds
# the vswitch release binaries (vswitchd, vswitchctl, vswitch-pktgen), reserves 2 MiB hugepages
# if too few are free (the old count is restored at the end), starts OVS by hand (private
# run/db/log/etc dirs under a mktemp dir, its own netns; never the system service), then runs
# bench/compare_ovs.py, which interleaves the switches A B A B ... and prints one table.
# See bench/README.md.
#
# --smoke: one short round (2 s windows) of vswitch only; exits non-zero if no frame is
# forwarded; needs no OVS. Finishes in well under a minute once built.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
ROUNDS=3
SECONDS_=10
SMOKE=0
KEEP=0
CASES="p2p,normal,p2p-1k,afxdp,afxdp-1k"
SWITCHES="v,o"
WITH_METRICS=0
WITH_TUNED=0
HUGE_PAGES_NEEDED=1024 # 2 MiB pages: OVS socket-mem 512 MiB + testpmd (-m 128) + OVS mempools, as peer.md

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --seconds) SECONDS_="$2"; shift 2 ;;
        --cases) CASES="$2"; shift 2 ;;
        --only) case "$2" in vswitch) SWITCHES=v ;; ovs) SWITCHES=o ;; *) usage 2 >&2 ;; esac; shift 2 ;;
        --smoke) SMOKE=1; shift ;;
        --with-metrics) WITH_METRICS=1; shift ;; # also vswitch with --metrics scraped every second
        --with-tuned) WITH_TUNED=1; shift ;; # also vswitch with --no-idle-backoff
        --keep) KEEP=1; shift ;; # keep the work dir (logs) even on success
        -h|--help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 >&2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs at least 2 CPUs (testpmd/pktgen on CPU0, PMD on CPU1)" >&2; exit 2; }
if [ "$SMOKE" = 1 ]; then ROUNDS=1; SECONDS_=2; SWITCHES=v; fi
if [ "$WITH_METRICS" = 1 ]; then SWITCHES="${SWITCHES/v/v,m}"; fi
if [ "$WITH_TUNED" = 1 ]; then SWITCHES="${SWITCHES/v/v,t}"; fi
# Which kinds of case: vhost-user (testpmd, hugepages) and/or AF_XDP (veths, vswitch-pktgen).
VHOST=0 AFXDP=0
for c in ${CASES//,/ }; do
    case "$c" in
        p2p|normal|p2p-1k|p2p-qos|dpdk|dpdk-1k) VHOST=1 ;;
        afxdp|afxdp-1k) AFXDP=1 ;;
        *) echo "unknown case $c (known: p2p normal p2p-1k p2p-qos dpdk dpdk-1k afxdp afxdp-1k)" >&2; exit 2 ;;
    esac
done
# Hugepages: testpmd (vhost-user cases) and OVS (dpdk-init=true in every case).
NEED_HUGE=0
if [ "$VHOST" = 1 ] || [ "$SWITCHES" != v ]; then NEED_HUGE=1; fi

log() { echo "[$(date +%H:%M:%S)] $*"; }

# ---- packages ---------------------------------------------------------------------------------
OVS_BIN=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
pkgs=()
if [ "$VHOST" = 1 ]; then command -v dpdk-testpmd >/dev/null || pkgs+=(dpdk-dev dpdk); fi
if [ "$AFXDP" = 1 ]; then command -v taskset >/dev/null || pkgs+=(util-linux); fi
# perf samples the PMD threads for the AF_XDP cases' user-mode share ("user cyc").
if [ "$AFXDP" = 1 ] && [ "$SMOKE" = 0 ]; then command -v perf >/dev/null || pkgs+=(linux-perf); fi
if [ "$SMOKE" = 0 ] && [ "$SWITCHES" != v ] && [ ! -x "$OVS_BIN" ]; then pkgs+=(openvswitch-switch-dpdk); fi
command -v ip >/dev/null || pkgs+=(iproute2)
command -v python3 >/dev/null || pkgs+=(python3)
if [ "${#pkgs[@]}" -gt 0 ]; then
    log "installing ${pkgs[*]}"
    # Don't let the package start the system OVS service: we run our own instance by hand.
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        own_policy=1
    fi
    timeout 600 apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq "${pkgs[@]}" >/dev/null
    [ "$own_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
if [ "$SWITCHES" != v ]; then
    # The system service (or anything else) running an ovs-vswitchd would fight over CPU1 and
    # hugepages. We never stop a service we did not start: refuse instead.
    if pgrep -x ovs-vswitchd >/dev/null || pgrep -f '^[^ ]*ovs-vswitchd-dpdk' >/dev/null; then
        echo "an ovs-vswitchd is already running (system service?): stop it first, e.g." \
             "'systemctl stop openvswitch-switch'; this script runs its own private OVS" >&2
        exit 2
    fi
fi

# ---- build ------------------------------------------------------------------------------------
export PATH="$PATH:${HOME:-/root}/.cargo/bin"
if [ -n "${SUDO_USER:-}" ]; then PATH="$PATH:$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin"; fi
BINDIR="$REPO/target/release"
if command -v cargo >/dev/null; then
    log "building vswitch (cargo build --release -p ctl -p bench)"
    (cd "$REPO" && timeout 1800 cargo build --release -q -p ctl -p bench)
fi
for b in vswitchd vswitchctl $([ "$AFXDP" = 1 ] && echo vswitch-pktgen); do
    [ -x "$BINDIR/$b" ] || { echo "$BINDIR/$b missing (cargo not found?)" >&2; exit 2; }
done

# ---- work dir, cleanup trap -------------------------------------------------------------------
WORK="$(mktemp -d /tmp/vswcmp.XXXXXX)"
chmod 755 "$WORK"
HUGE_OLD=""
HUGE_MNT=""
PY=""
FAILED=1
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    # The Python driver (if still running) stops its own processes and namespaces on TERM.
    if [ -n "$PY" ] && kill -TERM "$PY" 2>/dev/null; then
        for _ in $(seq 30); do kill -0 "$PY" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$PY" 2>/dev/null
    fi
    # Processes the Python driver started (each its own process group), by id.
    if [ -f "$WORK/pids" ]; then
        while read -r pid; do
            kill -TERM -- "-$pid" 2>/dev/null
        done <"$WORK/pids"
        sleep 1
        while read -r pid; do
            kill -KILL -- "-$pid" 2>/dev/null
        done <"$WORK/pids"
    fi
    if [ -f "$WORK/netns" ]; then
        while read -r ns; do ip netns del "$ns" 2>/dev/null; done <"$WORK/netns"
    fi
    if [ -f "$WORK/prefixes" ]; then
        while read -r p; do [ -n "$p" ] && rm -rf "/var/run/dpdk/$p"; done <"$WORK/prefixes"
    fi
    find "$WORK" -type s -delete 2>/dev/null
    if [ -n "$HUGE_MNT" ]; then
        rm -f "$HUGE_MNT"/* 2>/dev/null
        umount "$HUGE_MNT" 2>/dev/null && rmdir "$HUGE_MNT"
    fi
    if [ -n "$HUGE_OLD" ]; then
        echo "$HUGE_OLD" >/proc/sys/vm/nr_hugepages
        log "hugepages restored to $HUGE_OLD"
    fi
    if [ "$FAILED" = 0 ] && [ "$KEEP" = 0 ]; then
        rm -rf "$WORK"
    else
        log "logs kept in $WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- hugepages --------------------------------------------------------------------------------
HUGE_ARGS=()
free_pages() { awk '/^HugePages_Free:/ {print $2}' /proc/meminfo; }
if [ "$NEED_HUGE" = 0 ]; then
    log "AF_XDP cases, vswitch only: no hugepages needed"
elif [ "$(free_pages)" -lt "$HUGE_PAGES_NEEDED" ]; then
    old="$(cat /proc/sys/vm/nr_hugepages)"
    want=$((old + HUGE_PAGES_NEEDED - $(free_pages)))
    if echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null; then HUGE_OLD="$old"; fi
    log "hugepages: nr_hugepages $old -> $(cat /proc/sys/vm/nr_hugepages), free $(free_pages)"
fi
if [ "$NEED_HUGE" = 0 ]; then
    :
elif [ "$(free_pages)" -lt "$HUGE_PAGES_NEEDED" ]; then
    if [ "$SMOKE" = 1 ]; then
        log "too few hugepages: testpmd runs with --no-huge"
        HUGE_ARGS=(--no-huge)
    else
        echo "need $HUGE_PAGES_NEEDED free 2 MiB hugepages, have $(free_pages)" >&2; exit 1
    fi
elif ! awk '$3 == "hugetlbfs" {f=1} END {exit !f}' /proc/mounts; then
    HUGE_MNT="$WORK/huge"
    mkdir -p "$HUGE_MNT"
    mount -t hugetlbfs -o pagesize=2M nodev "$HUGE_MNT"
    log "mounted hugetlbfs on $HUGE_MNT"
fi

# ---- run --------------------------------------------------------------------------------------
log "work dir $WORK"
# In the background and waited for, so that a TERM/INT to this script runs the trap at once
# (which stops the driver first, then whatever it left).
python3 "$HERE/compare_ovs.py" --work "$WORK" --bindir "$BINDIR" --rounds "$ROUNDS" \
    --seconds "$SECONDS_" --cases "$CASES" --switches "$SWITCHES" ${HUGE_ARGS[@]+"${HUGE_ARGS[@]}"} \
    $([ "$SMOKE" = 1 ] && echo --smoke --warm 1) &
PY=$!
wait "$PY"
PY=""
FAILED=0
