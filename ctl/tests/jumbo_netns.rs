//! Root integration tests at MTU 9000: jumbo frames through real `vswitchd`s over AF_XDP
//! ports (multi-buffer AF_XDP on veths with native XDP), across a VLAN trunk between two
//! switches and through a VXLAN overlay on a 9000-byte underlay. Frames just past each limit
//! are dropped and counted.

mod common;

use common::{Lab, wait_until};

impl Lab {
    fn mtu(&self, ns: &str, short: &str, mtu: u32) {
        self.sh_ok(
            ns,
            &[
                "ip",
                "link",
                "set",
                &self.name(short),
                "mtu",
                &mtu.to_string(),
            ],
        );
    }

    /// True if pings of `size` bytes of payload, never fragmented, are answered.
    fn ping_df(&self, ns: &str, dst: &str, size: u32) -> bool {
        let size = size.to_string();
        let args = [
            "ping", "-M", "do", "-s", &size, "-c", "3", "-i", "0.2", "-W", "2", dst,
        ];
        self.sh(ns, &args).status.success()
    }

    fn port_stat(&self, d: &str, port: &str, key: &str) -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&self.ctl_ok(d, &["--format", "json", "dump-ports", "br0"]))
                .expect("dump-ports JSON");
        v.as_array()
            .and_then(|ports| ports.iter().find(|p| p["name"] == port))
            .and_then(|p| p[key].as_u64())
            .unwrap_or_else(|| panic!("no {key} for {port} in {v}"))
    }
}

/// Host a (VLAN 100 access port on switch 1) and host b (VLAN 100 access port on switch 2),
/// the switches joined by a VLAN trunk, every link at MTU 9000: 9,000-byte IP packets cross
/// both switches and the tagged trunk whole, and TCP runs at that MTU. A frame past the
/// largest a packet holds (9,216 bytes) is dropped at the port that received it, counted.
#[test]
fn afxdp_and_vlan_trunk_at_mtu_9000() {
    let Some(mut lab) = Lab::new("j") else { return };
    let (s1, s2, a, b) = (lab.ns("s1"), lab.ns("s2"), lab.ns("a"), lab.ns("b"));
    lab.veth(&s1, "a0", &a, "a1");
    lab.veth(&s2, "b0", &b, "b1");
    lab.veth(&s1, "t1", &s2, "t2");
    for (ns, ifc) in [
        (&s1, "a0"),
        (&a, "a1"),
        (&s2, "b0"),
        (&b, "b1"),
        (&s1, "t1"),
        (&s2, "t2"),
    ] {
        lab.mtu(ns, ifc, 9000);
    }
    lab.addr(&a, "a1", "10.77.0.1/24");
    lab.addr(&b, "b1", "10.77.0.2/24");
    lab.start_daemon("d1", &s1);
    lab.start_daemon("d2", &s2);
    for (d, host, trunk) in [("d1", "a0", "t1"), ("d2", "b0", "t2")] {
        lab.ctl_ok(d, &["add-br", "br0"]);
        let iface = |s: &str| format!("iface={}", lab.name(s));
        lab.ctl_ok(
            d,
            &[
                "add-port",
                "br0",
                "host",
                "type=afxdp",
                &iface(host),
                "tag=100",
            ],
        );
        lab.ctl_ok(
            d,
            &[
                "add-port",
                "br0",
                "trunk",
                "type=afxdp",
                &iface(trunk),
                "trunks=100",
            ],
        );
    }
    let show = lab.ctl_ok("d1", &["show"]);
    assert!(
        show.contains("xdp_mode=native") && show.contains("multi_buffer=yes"),
        "native XDP and multi-buffer AF_XDP at MTU 9000:\n{show}"
    );

    assert!(
        lab.ping_eventually(&a, "10.77.0.2", 10),
        "small pings first\n{}",
        lab.log("d1")
    );
    assert!(
        lab.ping_df(&a, "10.77.0.2", 8972),
        "9,000-byte IP packets across two switches and a trunk\n{}\n{}",
        lab.ctl_ok("d1", &["dump-ports", "br0"]),
        lab.ctl_ok("d2", &["dump-ports", "br0"])
    );
    let bps = lab.iperf(&b, &a, "10.77.0.2", false);
    assert!(bps > 1e6, "TCP at MTU 9000: {bps} bit/s");
    println!("jumbo afxdp+trunk: TCP {:.0} Mbit/s", bps / 1e6);

    // Past the largest frame: host a and its switch port at MTU 9300, a 9,242-byte frame.
    lab.mtu(&s1, "a0", 9300);
    lab.mtu(&a, "a1", 9300);
    let before = lab.port_stat("d1", "host", "rx_dropped");
    assert!(
        !lab.ping_df(&a, "10.77.0.2", 9200),
        "a frame past 9,216 bytes is dropped"
    );
    wait_until("the oversized frames counted", 5, || {
        lab.port_stat("d1", "host", "rx_dropped") >= before + 3
    });
    let show = lab.ctl_ok("d1", &["show"]);
    assert!(show.contains("rx_oversize=3"), "counted by reason:\n{show}");
    assert!(
        lab.ping_df(&a, "10.77.0.2", 8972),
        "and jumbo frames still pass"
    );
}

/// Two vswitchd hosts joined by VXLAN over an underlay at MTU 9000: the overlay carries 8,950
/// bytes of IP (the underlay less the 50 bytes of VXLAN), TCP runs over it, and a packet one
/// byte longer is dropped at the tunnel port as too big.
#[test]
fn vxlan_overlay_on_a_9000_underlay() {
    let Some(mut lab) = Lab::new("k") else { return };
    let (s1, s2, a, b) = (lab.ns("s1"), lab.ns("s2"), lab.ns("a"), lab.ns("b"));
    lab.veth(&s1, "ua", &s2, "ub");
    lab.veth(&s1, "pa", &a, "ae");
    lab.veth(&s2, "pb", &b, "be");
    for (ns, ifc, mtu) in [
        (&s1, "ua", 9000),
        (&s2, "ub", 9000),
        (&s1, "pa", 8950),
        (&a, "ae", 8950),
        (&s2, "pb", 8950),
        (&b, "be", 8950),
    ] {
        lab.mtu(ns, ifc, mtu);
    }
    lab.addr(&a, "ae", "10.62.0.1/24");
    lab.addr(&b, "be", "10.62.0.2/24");
    lab.start_daemon("d1", &s1);
    lab.start_daemon("d2", &s2);
    for (d, up, me, peer, host) in [
        ("d1", "ua", "10.202.0.1/24", "10.202.0.2", "pa"),
        ("d2", "ub", "10.202.0.2/24", "10.202.0.1", "pb"),
    ] {
        lab.ctl_ok(d, &["add-br", "br0"]);
        let iface = |s: &str| format!("iface={}", lab.name(s));
        lab.ctl_ok(
            d,
            &[
                "add-port",
                "br0",
                "uplink",
                "type=afxdp",
                &iface(up),
                &format!("vtep_ip={me}"),
                "trunks=4000",
            ],
        );
        lab.ctl_ok(
            d,
            &[
                "add-port",
                "br0",
                "vx",
                "type=vxlan",
                &format!("remote_ip={peer}"),
                "key=300",
                "tag=300",
            ],
        );
        lab.ctl_ok(
            d,
            &[
                "add-port",
                "br0",
                "host",
                "type=afxdp",
                &iface(host),
                "tag=300",
            ],
        );
    }
    assert!(
        lab.ping_eventually(&a, "10.62.0.2", 10),
        "small pings over the overlay\n{}\n{}",
        lab.log("d1"),
        lab.log("d2")
    );
    assert!(
        lab.ping_df(&a, "10.62.0.2", 8950 - 28),
        "8,950 bytes of IP over a 9000 underlay\n{}",
        lab.ctl_ok("d1", &["show"])
    );
    let bps = lab.iperf(&b, &a, "10.62.0.2", false);
    assert!(bps > 1e6, "TCP over the jumbo overlay: {bps} bit/s");
    println!("jumbo vxlan: TCP {:.0} Mbit/s", bps / 1e6);

    // One byte more than the underlay carries: dropped at the tunnel port, as too big.
    lab.mtu(&s1, "pa", 8951);
    lab.mtu(&a, "ae", 8951);
    assert!(!lab.ping_df(&a, "10.62.0.2", 8951 - 28));
    let show = lab.ctl_ok("d1", &["show"]);
    assert!(
        show.contains("drop_too_big=3"),
        "three too-big drops at the tunnel port:\n{show}"
    );
}
