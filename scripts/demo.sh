#!/usr/bin/env bash
# The vswitch demo: two hosts (network namespaces) joined through vswitchd by AF_XDP ports on
# veth pairs. Pings across, runs a short iperf3, prints the port counters, cleans up.
# Run as root on Debian 12: ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
./scripts/setup.sh
source scripts/netns-lib.sh

echo "== building (release)"
cargo build --release -q -p ctl
BIN=$PWD/target/release
lab_init vsdemo$$

echo "== topology: $PFX-a (10.77.0.1) -- afxdp -- vswitchd -- afxdp -- $PFX-b (10.77.0.2)"
ns_create "$PFX-sw" "$PFX-a" "$PFX-b"
veth_join "$PFX-sw" "$PFX-a0" "$PFX-a" "$PFX-a1"
veth_join "$PFX-sw" "$PFX-b0" "$PFX-b" "$PFX-b1"
ip -n "$PFX-a" addr add 10.77.0.1/24 dev "$PFX-a1"
ip -n "$PFX-b" addr add 10.77.0.2/24 dev "$PFX-b1"
# AF_XDP copies frames as they are: locally generated TCP on a veth carries only a partial
# checksum, so the hosts compute full checksums themselves.
ip netns exec "$PFX-a" ethtool -K "$PFX-a1" tx off >/dev/null
ip netns exec "$PFX-b" ethtool -K "$PFX-b1" tx off >/dev/null

echo "== starting vswitchd"
vswitchd_start "$PFX-sw"

set -x
"${CTL[@]}" add-br br0
"${CTL[@]}" add-port br0 a type=afxdp iface="$PFX-a0"
"${CTL[@]}" add-port br0 b type=afxdp iface="$PFX-b0"
"${CTL[@]}" show
ip netns exec "$PFX-a" ping -c 3 -i 0.3 -W 2 10.77.0.2
"${CTL[@]}" fdb-show br0
timeout 20 ip netns exec "$PFX-b" iperf3 -s -1 >/dev/null &
sleep 0.5
timeout 20 ip netns exec "$PFX-a" iperf3 -c 10.77.0.2 -t 3 -f m
wait $! 2>/dev/null || true
"${CTL[@]}" dump-ports br0
"${CTL[@]}" pmd-stats
set +x
echo "== demo done"
