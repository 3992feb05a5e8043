#!/usr/bin/env bash
# vhost-selftest.sh — the guest tooling on a real vhost-user back-end, with DPDK's testpmd as a
# known-good stand-in for vswitchd (two vhost-user client ports, io forwarding = a wire between
# the two guests). This is the order a vswitchd test follows:
#   1. start the guests: QEMU is the vhost-user SERVER and blocks until a back-end connects;
#   2. start the back-end (vswitchd / testpmd) as CLIENT on the guests' sockets;
#   3. wait-ready, then guest-exec.
# Checks: ping, iperf3 3 s, 2 queue pairs (mq=on with vectors=0), VLAN 100 vs 200, and a
# back-end restart (carrier drops, comes back, traffic resumes).
# Needs the apt package `dpdk` (installed here when missing and root). Exits 0 on success.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
guest_test_init vsgv
TP=

if ! command -v dpdk-testpmd >/dev/null; then
    [ "$(id -u)" = 0 ] || { echo "vhost-selftest: needs dpdk-testpmd (apt package dpdk)"; exit 1; }
    apt-get install -y --no-install-recommends dpdk >/dev/null || { echo "vhost-selftest: cannot install dpdk"; exit 1; }
fi

stop_backend() {
    if [ -n "$TP" ]; then
        stop_pid "$TP"
        TP=
    fi
}
cleanup() {
    stop_backend
    $VS stop-all >/dev/null 2>&1
    rm -rf "/var/run/dpdk/$P"
    finish_logs vhost-selftest
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_backend QUEUES: testpmd, one forwarding core, no hugepages, client on both sockets.
start_backend() {
    local q=$1
    # stdin: a FIFO opened read-write, so testpmd's "Press enter to exit" read blocks forever
    [ -p "$VSGUEST_RUN/testpmd.in" ] || mkfifo "$VSGUEST_RUN/testpmd.in"
    timeout 600 dpdk-testpmd -l 0,1 --no-huge -m 512 --no-pci --file-prefix "$P" --iova-mode=va \
        --vdev "net_vhost0,iface=$VSGUEST_RUN/g1.vu,client=1,queues=$q" \
        --vdev "net_vhost1,iface=$VSGUEST_RUN/g2.vu,client=1,queues=$q" \
        -- --forward-mode=io --auto-start --nb-cores=1 --rxq="$q" --txq="$q" \
        --total-num-mbufs=8192 --stats-period=0 \
        0<>"$VSGUEST_RUN/testpmd.in" >> "$VSGUEST_RUN/testpmd.log" 2>&1 &
    TP=$!
}

# boot QUEUES ARGS_G1 -- ARGS_G2
boot() {
    local q=$1; shift
    local a=() b=() side=a x t
    for x in "$@"; do
        if [ "$x" = -- ]; then side=b; continue; fi
        if [ $side = a ]; then a+=("$x"); else b+=("$x"); fi
    done
    t=$(date +%s.%N)
    $VS run ${P}-g1 --net vhost:"$VSGUEST_RUN/g1.vu" --queues "$q" --mac 52:54:00:00:00:01 "${a[@]}" >/dev/null || return 1
    $VS run ${P}-g2 --net vhost:"$VSGUEST_RUN/g2.vu" --queues "$q" --mac 52:54:00:00:00:02 "${b[@]}" >/dev/null || return 1
    start_backend "$q"
    local r1 r2
    r1=$($VS wait-ready ${P}-g1 180) || { echo "$r1"; return 1; }
    r2=$($VS wait-ready ${P}-g2 180) || { echo "$r2"; return 1; }
    echo "     $r1"; echo "     $r2"
    echo "     both ready $(elapsed "$t") s after start"
}

"$GUEST_DIR/build-guest.sh" "$VSGUEST_IMG" || { echo "vhost-selftest: image build failed"; exit 1; }

echo "== A: vhost-user, 2 queue pairs, untagged"
if boot 2 --ip 10.0.0.1/24 -- --ip 10.0.0.2/24; then
    ok "A: both guests ready behind testpmd"
    out=$(gx ${P}-g1 'ethtool -L eth0 combined 2 && ethtool -l eth0 | tail -5 | grep Combined'); rc=$?
    check "A: guest uses 2 combined queues ($(echo $out))" test "$rc" = 0 -a "$(echo "$out" | awk '{print $2}')" = 2
    gx ${P}-g2 'ethtool -L eth0 combined 2' >/dev/null
    out=$(gx -t 20 ${P}-g1 'ping -c 3 -W 2 10.0.0.2'); rc=$?
    check "A: g1 pings g2 through the back-end" test "$rc" = 0
    echo "$out" | grep -E 'packets|min/avg' | sed 's/^/     /'
    gx ${P}-g2 'iperf3 -s -1 -D' >/dev/null
    out=$(gx -t 40 ${P}-g1 'iperf3 -c 10.0.0.2 -t 3 -P 2 -f m'); rc=$?
    check "A: iperf3 3 s, 2 streams" test "$rc" = 0
    echo "$out" | grep -E 'SUM.*(sender|receiver)' | sed 's/^/     /'

    echo "== B: back-end restart"
    stop_backend
    out=$(gx -t 20 ${P}-g1 'for i in $(seq 100); do [ "$(cat /sys/class/net/eth0/carrier)" = 0 ] && { echo down; exit 0; }; sleep 0.1; done; exit 1'); rc=$?
    check "B: carrier drops when the back-end goes away" test "$rc" = 0
    t=$(date +%s.%N)
    start_backend 2
    out=$(gx -t 40 ${P}-g1 'for i in $(seq 300); do [ "$(cat /sys/class/net/eth0/carrier)" = 1 ] && { echo up; exit 0; }; sleep 0.1; done; exit 1'); rc=$?
    check "B: carrier back after the back-end reconnects ($(elapsed "$t") s)" test "$rc" = 0
    gx -t 30 ${P}-g1 'ping -c 5 -W 2 10.0.0.2' | grep packets | sed 's/^/     /'; rc=${PIPESTATUS[0]}
    check "B: traffic resumes" test "$rc" = 0
else
    bad "A: guests did not become ready"
fi
stop_backend
$VS stop ${P}-g1 ${P}-g2

echo "== C: VLAN sub-interfaces through the back-end"
if boot 1 --ip 10.0.1.1/24 --vlan 100 -- --ip 10.0.1.2/24 --vlan 200; then
    ok "C: both guests ready (eth0.100 / eth0.200)"
    gx -t 20 ${P}-g1 'ping -c 2 -W 1 10.0.1.2' >/dev/null; rc=$?
    check "C: vlan 100 cannot ping vlan 200" test "$rc" != 0
    gx ${P}-g2 'ip link del eth0.200 && ip link add link eth0 name eth0.100 type vlan id 100 &&
                ip addr add 10.0.1.2/24 dev eth0.100 && ip link set eth0.100 up' >/dev/null; rc=$?
    check "C: g2 moved to vlan 100" test "$rc" = 0
    gx -t 20 ${P}-g1 'ping -c 3 -W 2 10.0.1.2' | grep packets | sed 's/^/     /'; rc=${PIPESTATUS[0]}
    check "C: vlan 100 pings vlan 100" test "$rc" = 0
else
    bad "C: guests did not become ready"
fi
stop_backend
$VS stop ${P}-g1 ${P}-g2
grep -l -iE 'segfault|vhost_set_mem_table failed|falling back' "$VSGUEST_RUN"/*/qemu.log && bad "QEMU logged a vhost error"

echo "vhost-selftest: $(elapsed "$T0") s total"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
