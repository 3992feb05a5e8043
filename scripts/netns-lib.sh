# Helpers for scripts that build test hosts in network namespaces. Everything they create is
# named with "$PFX" so cleanup finds it; nothing else is touched.

# ns_create NAME...: new namespaces with loopback up.
ns_create() {
    for ns in "$@"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
}

# veth_join NS1 IF1 NS2 IF2: a veth pair with one end in each namespace, both up, IPv6 off
# (no router solicitations in the counters).
veth_join() {
    ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
    for pair in "$1:$2" "$3:$4"; do
        local ns=${pair%%:*} ifc=${pair#*:}
        ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifc.disable_ipv6=1"
        ip -n "$ns" link set "$ifc" up
    done
}

# ns_delete_prefix PFX: deletes every namespace whose name starts with PFX (and with them
# their veth ends).
ns_delete_prefix() {
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep "^$1" || true); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}

# lab_init PFX: a run directory ($RUN), the vswitchctl command line ($CTL, needs $BIN), and on
# exit the removal of the daemon, of every namespace named PFX* and of the run directory.
lab_init() {
    PFX=$1
    RUN=$(mktemp -d "/tmp/$PFX.XXXXXX")
    CTL=("$BIN/vswitchctl" --socket "$RUN/vswitchd.sock")
    DAEMON=""
    trap lab_cleanup EXIT
}

lab_cleanup() {
    [ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
    ns_delete_prefix "$PFX"
    rm -rf "$RUN"
}

# vswitchd_start NS [ARGS...]: starts vswitchd inside NS (log in $RUN/vswitchd.log) and waits
# for its management socket.
vswitchd_start() {
    local ns=$1
    shift
    ip netns exec "$ns" "$BIN/vswitchd" --socket "$RUN/vswitchd.sock" --state "$RUN/state.json" \
        "$@" 2>"$RUN/vswitchd.log" &
    DAEMON=$!
    for _ in $(seq 100); do [ -S "$RUN/vswitchd.sock" ] && break; sleep 0.1; done
}
