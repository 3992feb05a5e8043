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
