#!/usr/bin/env bash
# AF_XDP veth → vswitchd → veth, driven by vswitch-pktgen (AF_XDP too) from its own namespace.
# Run as root: ./bench/afxdp-bench.sh [--seconds S] [--flows N] [--rate PPS] [--size B] [--smoke]
# Prints pktgen's figures (Mpps, loss, latency percentiles) and vswitchd's pmd-stats.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_=5 FLOWS=1 RATE=0 SIZE=64 RULES=port
EXTRA=()
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) SECONDS_=$2; shift ;;
        --flows) FLOWS=$2; shift ;;
        --rate) RATE=$2; shift ;;
        --size) SIZE=$2; shift ;;
        --normal) RULES=normal ;;
        --smoke) SECONDS_=1; RATE=20000; EXTRA=(--max-loss 0) ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || { echo "afxdp-bench: run as root" >&2; exit 1; }
source scripts/netns-lib.sh
cargo build --release -q -p ctl -p bench
BIN=$PWD/target/release
lab_init vsab$$
ns_create "$PFX-gen" "$PFX-sw"
veth_join "$PFX-gen" "${PFX}g0" "$PFX-sw" "${PFX}s0"
veth_join "$PFX-gen" "${PFX}g1" "$PFX-sw" "${PFX}s1"
vswitchd_start "$PFX-sw" --pmd-cores 1 --no-idle-backoff
"${CTL[@]}" add-br br0
"${CTL[@]}" add-port br0 p0 type=afxdp iface="${PFX}s0"
"${CTL[@]}" add-port br0 p1 type=afxdp iface="${PFX}s1"
if [ "$RULES" = port ]; then
    "${CTL[@]}" add-flow br0 "in_port=p0,actions=output:p1"
fi
echo "== vswitchd: $("${CTL[@]}" show | grep -o 'xdp_mode=[a-z]*' | head -1), rules: $RULES"
ip netns exec "$PFX-gen" taskset -c 0 "$BIN/vswitch-pktgen" --tx-iface "${PFX}g0" --rx-iface "${PFX}g1" \
    --seconds "$SECONDS_" --flows "$FLOWS" --rate "$RATE" --size "$SIZE" "${EXTRA[@]}"
"${CTL[@]}" pmd-stats
"${CTL[@]}" dump-ports br0
