//! Root integration test: DPDK ports (`type=dpdk`) on DPDK's own virtual devices, in a real
//! `vswitchd` driven by `vswitchctl`, without hugepages or PCI devices.
//!
//! Hosts a and b (network namespaces) talk through two bridges joined by a VLAN trunk:
//!
//! ```text
//! a1 ─ a0 [pa: dpdk net_af_packet, tag 10] br1 [tr1: afxdp t0, trunk 10] t0 ─ t1
//! t1 [tr2: dpdk net_af_packet, trunk 10] br2 [pb: afxdp b0, tag 10] b0 ─ b1
//! ```
//!
//! So DPDK ports exchange frames with the kernel (a), with our AF_XDP ports (tagged on the
//! trunk, untagged at the edges), and carry TCP. (DPDK 22.11's `net_af_xdp` on a veth stops
//! sending after about a thousand frames, which stay in its AF_XDP TX ring: this test uses
//! `net_af_packet`.) Then: bad devargs and a failed EAL leave the
//! daemon running and the state file unchanged; a DPDK port is removed and added back live;
//! a restart restores it; `n_rxq=2` spreads 1,000 flows over two PMDs.

mod common;

use std::time::{Duration, Instant};

use common::{Lab, wait_until};

const EAL: &str = "--dpdk-eal=--no-pci";

fn dpdk_port(lab: &Lab, d: &str, br: &str, name: &str, devargs: &str, extra: &[&str]) {
    let devargs = format!("devargs={devargs}");
    let mut args = vec!["add-port", br, name, "type=dpdk", &devargs];
    args.extend_from_slice(extra);
    lab.ctl_ok(d, &args);
}

#[test]
fn dpdk_ports_forward_trunk_recover_and_restore() {
    let Some(mut lab) = Lab::new("k") else { return };
    let sw = lab.ns("sw");
    let a = lab.ns("a");
    let b = lab.ns("b");
    lab.veth(&sw, "a0", &a, "a1");
    lab.veth(&sw, "t0", &sw, "t1");
    lab.veth(&sw, "b0", &b, "b1");
    lab.addr(&a, "a1", "10.79.0.1/24");
    lab.addr(&b, "b1", "10.79.0.2/24");
    lab.start_daemon_with("d", &sw, &[EAL]);
    let (a0, t0, t1, b0) = (
        lab.name("a0"),
        lab.name("t0"),
        lab.name("t1"),
        lab.name("b0"),
    );

    lab.ctl_ok("d", &["add-br", "br1"]);
    lab.ctl_ok("d", &["add-br", "br2"]);
    let pa_devargs = format!("net_af_packet0,iface={a0}");
    dpdk_port(&lab, "d", "br1", "pa", &pa_devargs, &["tag=10"]);
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br1",
            "tr1",
            "type=afxdp",
            &format!("iface={t0}"),
            "trunks=10",
        ],
    );
    dpdk_port(
        &lab,
        "d",
        "br2",
        "tr2",
        &format!("net_af_packet1,iface={t1}"),
        &["trunks=10"],
    );
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br2",
            "pb",
            "type=afxdp",
            &format!("iface={b0}"),
            "tag=10",
        ],
    );

    let show = lab.ctl_ok("d", &["show"]);
    for want in [
        "type: dpdk",
        "driver=net_af_packet",
        "link_speed",
        "mbufs_free",
    ] {
        assert!(show.contains(want), "show has {want}:\n{show}");
    }
    assert!(
        lab.ping_eventually(&a, "10.79.0.2", 15),
        "ping across DPDK ports and a VLAN trunk\n{}",
        lab.log("d")
    );
    let up = lab.iperf(&b, &a, "10.79.0.2", false);
    let down = lab.iperf(&b, &a, "10.79.0.2", true);
    println!(
        "DPDK_IPERF a->b {:.0} Mbit/s, b->a {:.0} Mbit/s",
        up / 1e6,
        down / 1e6
    );
    assert!(up > 1e6 && down > 1e6, "TCP both ways: {up} {down}");
    let ports = lab.ctl_ok("d", &["dump-ports", "br1"]);
    assert!(
        ports.contains("(pa)") && ports.contains("device: ") && ports.contains("rx_good_packets="),
        "the DPDK port's device counters and xstats:\n{ports}"
    );

    // Bad requests: one-line errors, the daemon keeps running, the state file unchanged.
    let state = std::fs::read(lab.dir.join("d.json")).unwrap();
    for bad in [
        vec![
            "add-port",
            "br1",
            "px",
            "type=dpdk",
            "devargs=net_nosuchpmd0",
        ],
        vec!["add-port", "br1", "px", "type=dpdk", "devargs=0000:ff:1f.7"],
        vec![
            "add-port",
            "br1",
            "px",
            "type=dpdk",
            "devargs=net_af_packet9,iface=nosuchif0",
        ],
        // The device is in use by pa.
        vec![
            "add-port",
            "br1",
            "px",
            "type=dpdk",
            &format!("devargs={pa_devargs}"),
        ],
        vec![
            "add-port",
            "br1",
            "px",
            "type=dpdk",
            "devargs=net_ring7",
            "n_rxq=999",
        ],
        // net_af_packet takes 1,518-byte frames at most (the lab namespace's own lo).
        vec![
            "add-port",
            "br1",
            "px",
            "type=dpdk",
            "devargs=net_af_packet9,iface=lo",
            "mtu=9000",
        ],
    ] {
        lab.ctl_fails_in_one_line("d", &bad);
    }
    let o = lab.ctl(
        "d",
        &[
            "add-port",
            "br1",
            "px",
            "type=dpdk",
            "devargs=net_af_packet9,iface=lo",
            "mtu=9000",
        ],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the device takes at most 1518"),
        "the MTU error names the device's limit: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read(lab.dir.join("d.json")).unwrap(),
        state,
        "state unchanged"
    );
    assert!(
        lab.ping(&a, "10.79.0.2", 1),
        "still forwarding after the errors"
    );

    // Hot-remove and hot-add: the device is detached and probed again.
    lab.ctl_ok("d", &["del-port", "br1", "pa"]);
    assert!(!lab.ping(&a, "10.79.0.2", 1), "no path without pa");
    dpdk_port(&lab, "d", "br1", "pa", &pa_devargs, &["tag=10"]);
    assert!(
        lab.ping_eventually(&a, "10.79.0.2", 15),
        "ping after re-adding pa"
    );

    // A restart brings the DPDK ports back from the state file.
    lab.restart_daemon_with("d", &sw, &[EAL]);
    let show = lab.ctl_ok("d", &["show"]);
    assert!(
        show.contains("net_af_packet0") && show.contains("net_af_packet1"),
        "{show}"
    );
    assert!(
        lab.ping_eventually(&a, "10.79.0.2", 15),
        "ping after restart\n{}",
        lab.log("d")
    );
}

/// A failed EAL start is an error on the port, not the end of the daemon.
#[test]
fn eal_failure_is_a_port_error() {
    let Some(mut lab) = Lab::new("e") else { return };
    let sw = lab.ns("sw");
    lab.start_daemon_with("d", &sw, &["--dpdk-eal=--no-pci --no-such-eal-option"]);
    lab.ctl_ok("d", &["add-br", "br0"]);
    let state = std::fs::read(lab.dir.join("d.json")).unwrap();
    for _ in 0..2 {
        let o = lab.ctl(
            "d",
            &["add-port", "br0", "p", "type=dpdk", "devargs=net_ring0"],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success());
        assert!(
            err.contains("EAL") && err.trim().lines().count() == 1,
            "{err}"
        );
    }
    assert_eq!(std::fs::read(lab.dir.join("d.json")).unwrap(), state);
    lab.ctl_ok("d", &["add-port", "br0", "r", "type=ring"]);
}

/// Two rx queues with RSS (af_packet's hash fanout), two PMDs: 1,000 flows split over both.
#[test]
fn two_rx_queues_spread_flows_over_two_pmds() {
    let Some(mut lab) = Lab::new("q") else { return };
    let sw = lab.ns("sw");
    let a = lab.ns("a");
    lab.veth(&sw, "a0", &a, "a1");
    lab.start_daemon_with("d", &sw, &[EAL, "--pmd-cores=0,1"]);
    let a0 = lab.name("a0");
    lab.ctl_ok("d", &["add-br", "br0"]);
    dpdk_port(
        &lab,
        "d",
        "br0",
        "pa",
        &format!("net_af_packet1,iface={a0},qpairs=2"),
        &["n_rxq=2"],
    );
    lab.ctl_ok("d", &["add-port", "br0", "sink", "type=ring"]);
    lab.ctl_ok("d", &["add-flow", "br0", "priority=1,actions=output:sink"]);
    let rxq = lab.ctl_ok("d", &["pmd-rxq-show"]);
    println!("{rxq}");

    let per_queue = lab.send_flows_and_count_queues("d", &a, "a1", "pa");
    println!("DPDK_RSS per-queue packets {per_queue:?}");
    common::assert_even_split(&per_queue);
    let pmds = lab.ctl_ok("d", &["pmd-stats"]);
    println!("{pmds}");
}

/// A balance-tcp LACP bond of two DPDK members (`net_af_packet` on veths) against a bond of
/// two AF_XDP members: LACP negotiates on both, traffic crosses, and cutting one link fails
/// over.
#[test]
fn lacp_bond_of_dpdk_members() {
    let Some(mut lab) = Lab::new("l") else { return };
    let sw = lab.ns("sw");
    let a = lab.ns("a");
    let b = lab.ns("b");
    lab.veth(&sw, "a0", &a, "a1");
    lab.veth(&sw, "b0", &b, "b1");
    lab.veth(&sw, "x0", &sw, "y0");
    lab.veth(&sw, "x1", &sw, "y1");
    lab.addr(&a, "a1", "10.82.0.1/24");
    lab.addr(&b, "b1", "10.82.0.2/24");
    lab.start_daemon_with("d", &sw, &[EAL]);
    let n = |s: &str| lab.name(s);
    let lacp = ["lacp=active", "lacp-time=fast", "bond_mode=balance-tcp"];
    lab.ctl_ok("d", &["add-br", "br1"]);
    lab.ctl_ok("d", &["add-br", "br2"]);
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br1",
            "pa",
            "type=afxdp",
            &format!("iface={}", n("a0")),
        ],
    );
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br2",
            "pb",
            "type=afxdp",
            &format!("iface={}", n("b0")),
        ],
    );
    let (m0, m1) = (
        format!("m0.devargs=net_af_packet0,iface={}", n("x0")),
        format!("m1.devargs=net_af_packet1,iface={}", n("x1")),
    );
    let mut bd = vec![
        "add-bond",
        "br1",
        "bd",
        "m0",
        "m1",
        "member-type=dpdk",
        &m0,
        &m1,
    ];
    bd.extend(lacp);
    lab.ctl_ok("d", &bd);
    let (y0, y1) = (n("y0"), n("y1"));
    let mut be = vec!["add-bond", "br2", "be", &y0, &y1];
    be.extend(lacp);
    lab.ctl_ok("d", &be);

    let negotiated = |bond: &str| lab.ctl_ok("d", &["lacp-show", bond]).contains("negotiated");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(negotiated("bd") && negotiated("be")) {
        assert!(
            Instant::now() < deadline,
            "LACP: {}",
            lab.ctl_ok("d", &["lacp-show"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        lab.ping_eventually(&a, "10.82.0.2", 15),
        "ping across the bonds"
    );
    let show = lab.ctl_ok("d", &["bond-show", "bd"]);
    println!("{show}");

    // Cut the link under the DPDK member m0 (its veth end): the bonds fail over to m1.
    lab.sh(&sw, &["ip", "link", "set", &n("y0"), "down"]);
    assert!(
        lab.ping_eventually(&a, "10.82.0.2", 15),
        "ping after failover"
    );
    // net_af_packet reports no carrier change, so m0 goes down only when its LACP partner
    // times out (3 s with lacp-time=fast); the ping above can already pass through m1 before
    // that, because the AF_XDP bond sees its carrier drop at once.
    wait_until("m0 disabled by the LACP timeout", 15, || {
        lab.ctl_ok("d", &["bond-show", "bd"])
            .contains("member m0: disabled")
    });
    let show = lab.ctl_ok("d", &["bond-show", "bd"]);
    assert!(show.contains("member m1: enabled (active)"), "{show}");
}
