#!/bin/sh
# /init of the vswitch test guest (busybox ash). Built into the initramfs by build-guest.sh.
# Keep it to busybox built-ins/applets: every dynamically linked exec costs ~200 ms under TCG.
#
# Kernel command-line parameters (all optional):
#   vs.name=NAME          shown in the ready line
#   vs.ip=A.B.C.D/P       address; default 10.0.0.<last MAC byte>/24
#   vs.vlan=N             create eth0.N and put the address on it (eth0 stays up, no address)
#   vs.mtu=N              MTU of eth0 (and eth0.N)
#   vs.ipv6=1             keep IPv6 (default: disabled, so the guest sends no RS/DAD/MLD noise)
#   vs.offload=off        ethtool -K eth0 tx off tso off gso off gro off (costs one dynamic exec)
#   vs.carrier=SECS       how long to wait for carrier (default 60)
#   vs.cmd=CMD            %-encoded command (%20 = space); run, then power off
#   vs.cmd64=B64          same, base64-encoded
# Without vs.cmd*, serves the control channel on /dev/ttyS1 (see vsguest.py exec):
#   request  : "<token> <timeout-secs> <base64 command>\n"
#   response : "VSG-BEGIN <token>\n" <output, stdout+stderr> "\nVSG-END <token> <status>\n"
# Console markers (ttyS0): "VSGUEST-READY ...", "VSGUEST-CTL-READY", "VSGUEST-CMD-EXIT status=N",
# "VSGUEST-FAIL reason".
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /dev/shm
hostname vsguest
ip link set lo up

# busybox ash would run its own `ip` applet; commands run here get iproute2's.
ip() { /usr/sbin/ip "$@"; }

fail() {
    echo "VSGUEST-FAIL $*"
    sleep 1
    reboot -f
}

# --- parameters -------------------------------------------------------------------------
set -f
read -r cmdline < /proc/cmdline
NAME= IPADDR= VLAN= MTU= IPV6=0 OFFLOAD= CARRIER=60 CMD= HAVECMD=0
for w in $cmdline; do
    case $w in
    vs.name=*)    NAME=${w#*=} ;;
    vs.ip=*)      IPADDR=${w#*=} ;;
    vs.vlan=*)    VLAN=${w#*=} ;;
    vs.mtu=*)     MTU=${w#*=} ;;
    vs.ipv6=*)    IPV6=${w#*=} ;;
    vs.offload=*) OFFLOAD=${w#*=} ;;
    vs.carrier=*) CARRIER=${w#*=} ;;
    vs.cmd=*)     CMD=$(printf '%b' "$(echo "${w#*=}" | sed 's/%/\\x/g')"); HAVECMD=1 ;;
    vs.cmd64=*)   CMD=$(echo "${w#*=}" | base64 -d); HAVECMD=1 ;;
    esac
done
set +f

if [ "$IPV6" != 1 ]; then
    echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null
    echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null
fi

# --- modules ------------------------------------------------------------------------------
while read -r m; do
    [ -n "$m" ] || continue
    insmod "/lib/modules/$m" 2>/tmp/insmod.err || {
        grep -q 'File exists' /tmp/insmod.err || { echo "insmod $m: $(cat /tmp/insmod.err)"; }
    }
done < /lib/modules/load.list

# --- eth0 ---------------------------------------------------------------------------------
i=0
while [ ! -e /sys/class/net/eth0 ]; do
    i=$((i + 1)); [ $i -gt 200 ] && fail "no eth0 after 20 s"
    sleep 0.1
done
read -r MAC < /sys/class/net/eth0/address
if [ -z "$IPADDR" ]; then
    last=${MAC##*:}
    IPADDR=10.0.0.$((0x$last))/24
fi
[ -n "$MTU" ] && busybox ip link set eth0 mtu "$MTU"
busybox ip link set eth0 up
if [ "$OFFLOAD" = off ]; then
    /usr/sbin/ethtool -K eth0 tx off tso off gso off gro off >/dev/null 2>&1
fi
DEV=eth0
if [ -n "$VLAN" ]; then
    DEV=eth0.$VLAN
    busybox ip link add link eth0 name "$DEV" type vlan id "$VLAN" \
        || /usr/sbin/ip link add link eth0 name "$DEV" type vlan id "$VLAN" \
        || fail "cannot create $DEV"
    [ "$IPV6" != 1 ] && echo 1 > "/proc/sys/net/ipv6/conf/$DEV/disable_ipv6" 2>/dev/null
    [ -n "$MTU" ] && busybox ip link set "$DEV" mtu "$MTU"
    busybox ip link set "$DEV" up
fi
busybox ip addr add "$IPADDR" dev "$DEV" || fail "cannot set $IPADDR on $DEV"

# Carrier: with vhost-user it comes up once the back-end has started the rings.
CARRIER_OK=0
i=0
while [ $i -lt $((CARRIER * 10)) ]; do
    read -r c < /sys/class/net/eth0/carrier 2>/dev/null
    [ "$c" = 1 ] && { CARRIER_OK=1; break; }
    i=$((i + 1)); sleep 0.1
done
read -r up idle < /proc/uptime
echo
echo "VSGUEST-READY name=$NAME ip=$IPADDR dev=$DEV mac=$MAC carrier=$CARRIER_OK uptime=$up"

# --- one command, then power off -----------------------------------------------------------
if [ "$HAVECMD" = 1 ]; then
    cd /root
    ( eval "$CMD" ) </dev/null
    rc=$?
    echo
    echo "VSGUEST-CMD-EXIT status=$rc"
    sync
    reboot -f
    sleep 5
    poweroff -f
fi

# --- control channel on ttyS1 -------------------------------------------------------------
killtree() { # killtree PID: SIGKILL a process and all its descendants
    for c in $(ps -o pid,ppid | awk -v p="$1" '$2 == p {print $1}'); do killtree "$c"; done
    kill -9 "$1" 2>/dev/null
}

[ -c /dev/ttyS1 ] || fail "no /dev/ttyS1 for the control channel"
stty -F /dev/ttyS1 raw -echo -echoe -echok -echoctl -echoke 115200 2>/dev/null
exec 3<>/dev/ttyS1
echo "VSGUEST-CTL-READY"
cd /root
while :; do
    if ! read -r tok tmo b64 <&3; then sleep 0.2; continue; fi
    [ -n "$tok" ] || continue
    cmd=$(echo "$b64" | base64 -d 2>/dev/null)
    printf 'VSG-BEGIN %s\n' "$tok" >&3
    ( eval "$cmd" ) </dev/null >&3 2>&3 &
    pid=$!
    wd=
    case $tmo in
    ''|0|*[!0-9]*) ;;
    *) ( sleep "$tmo"; echo "vsguest: timeout after ${tmo}s, killed" >&3; killtree "$pid" ) </dev/null >/dev/null 2>&1 &
       wd=$! ;;
    esac
    wait "$pid"
    rc=$?
    [ -n "$wd" ] && { kill "$wd" 2>/dev/null; wait "$wd" 2>/dev/null; }
    printf '\nVSG-END %s %d\n' "$tok" "$rc" >&3
done
