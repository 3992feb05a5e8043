#!/usr/bin/env bash
# selftest.sh — validates the guest tooling without the switch: two guests joined back to back
# by QEMU's `-netdev stream` over a unix socket (no host networking at all), at most 2 guests at
# once. Exits 0 when every check passes.
#   A: g1 <-> g2 untagged: control channel (output, exit status, guest-side timeout), ping,
#      iperf3 3 s.
#   B: g1 on vs.vlan=100, g2 on vs.vlan=200: no ping; g2 moved to VLAN 100 live: ping.
#   C: one-shot guest (vs.cmd, --foreground): exits with the command's status.
# Env: VSGUEST_IMG (image dir, built/cached by build-guest.sh), SELFTEST_KEEP=1 keeps the logs.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/testlib.sh"
guest_test_init vsgt

cleanup() {
    $VS stop-all >/dev/null 2>&1
    finish_logs selftest
}
trap cleanup EXIT
trap 'exit 130' INT TERM

boot_pair() { # boot_pair ARGS_G1 -- ARGS_G2: both guests, waits for both ready
    local a=() b=() side=a x
    for x in "$@"; do
        if [ "$x" = -- ]; then side=b; continue; fi
        if [ $side = a ]; then a+=("$x"); else b+=("$x"); fi
    done
    local wire=$VSGUEST_RUN/wire.sock t
    rm -f "$wire"
    t=$(date +%s.%N)
    $VS run ${P}-g1 --net stream-listen:"$wire" --mac 52:54:00:00:00:01 "${a[@]}" >/dev/null || return 1
    $VS run ${P}-g2 --net stream-connect:"$wire" --mac 52:54:00:00:00:02 "${b[@]}" >/dev/null || return 1
    local r1 r2
    r1=$($VS wait-ready ${P}-g1 180) || { echo "$r1"; return 1; }
    r2=$($VS wait-ready ${P}-g2 180) || { echo "$r2"; return 1; }
    echo "     $r1"
    echo "     $r2"
    echo "     both ready $(elapsed "$t") s after start"
}

"$GUEST_DIR/build-guest.sh" "$VSGUEST_IMG" || { echo "selftest: image build failed"; exit 1; }
echo "selftest: accel=$(python3 -c "import sys; sys.path.insert(0,'$GUEST_DIR'); import vsguest; print('kvm' if vsguest.kvm_usable() else 'tcg')")"

# ---------------------------------------------------------------- A: untagged pair
echo "== A: two guests, untagged"
if boot_pair --ip 10.0.0.1/24 -- --ip 10.0.0.2/24; then
    ok "A: both guests ready"
    out=$(gx ${P}-g1 'echo hello; echo err >&2; exit 3'); rc=$?
    check "A: exec returns the exit status (3, got $rc)" test "$rc" = 3
    check "A: exec returns stdout+stderr exactly" test "$out" = "$(printf 'hello\nerr')"
    out=$(gx -t 2 ${P}-g1 'sleep 30; echo late'); rc=$?
    check "A: guest-side timeout kills the command (status $rc)" test "$rc" = 137 -a "${out%%late*}" = "$out"
    out=$(gx ${P}-g1 'ip -br addr show eth0'); rc=$?
    check "A: iproute2 ip runs in the guest (eth0 10.0.0.1)" grep -q '10.0.0.1/24' <<<"$out"
    out=$(gx -t 20 ${P}-g1 'ping -c 3 -W 2 10.0.0.2'); rc=$?
    check "A: g1 pings g2" test "$rc" = 0
    echo "$out" | grep -E 'packets|min/avg' | sed 's/^/     /'
    gx ${P}-g2 'iperf3 -s -1 -D' >/dev/null
    out=$(gx -t 40 ${P}-g1 'iperf3 -c 10.0.0.2 -t 3 -f m'); rc=$?
    check "A: iperf3 3 s g1 -> g2" test "$rc" = 0
    echo "$out" | grep -E 'sender|receiver' | sed 's/^/     /'
else
    bad "A: guests did not become ready"
fi
$VS stop ${P}-g1 ${P}-g2

# ---------------------------------------------------------------- B: VLAN sub-interfaces
echo "== B: VLAN sub-interfaces"
if boot_pair --ip 10.0.1.1/24 --vlan 100 -- --ip 10.0.1.2/24 --vlan 200; then
    ok "B: both guests ready (eth0.100 / eth0.200)"
    out=$(gx ${P}-g1 'ip -d -br link show eth0.100; ip -d link show eth0.100 | grep -o "vlan protocol 802.1Q id 100"'); rc=$?
    check "B: g1 has eth0.100 (802.1Q id 100)" test "$rc" = 0
    gx -t 20 ${P}-g1 'ping -c 2 -W 1 10.0.1.2' >/dev/null; rc=$?
    check "B: vlan 100 cannot ping vlan 200" test "$rc" != 0
    out=$(gx ${P}-g2 'ip link del eth0.200 && ip link add link eth0 name eth0.100 type vlan id 100 &&
                        ip addr add 10.0.1.2/24 dev eth0.100 && ip link set eth0.100 up && echo moved'); rc=$?
    check "B: g2 moved to vlan 100 live" test "$rc" = 0
    gx -t 20 ${P}-g1 'ping -c 3 -W 2 10.0.1.2' | grep -E 'packets' | sed 's/^/     /'; rc=${PIPESTATUS[0]}
    check "B: vlan 100 pings vlan 100" test "$rc" = 0
else
    bad "B: guests did not become ready"
fi
$VS stop ${P}-g1 ${P}-g2

# ---------------------------------------------------------------- C: one-shot command
echo "== C: one-shot command (vs.cmd), power off"
t=$(date +%s.%N)
out=$($VS run ${P}-g3 --net stream-listen:"$VSGUEST_RUN/wire3.sock" --ip 10.0.2.1/24 \
      --cmd 'ip -br addr show eth0; echo "a b  c"; exit 7' --foreground --timeout 120); rc=$?
check "C: exit status of vs.cmd comes back (7, got $rc)" test "$rc" = 7
check "C: command with spaces and quotes ran" grep -q '^a b  c$' <<<"$out"
check "C: address set before the command" grep -q '10.0.2.1/24' <<<"$out"
echo "     one-shot boot+run+poweroff: $(elapsed "$t") s"

echo "selftest: $(elapsed "$T0") s total"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
