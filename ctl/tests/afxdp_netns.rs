//! Root integration test: the real `vswitchd`, driven by the real `vswitchctl`, forwarding
//! between two hosts (network namespaces) over AF_XDP ports on veth pairs.
//!
//! Checks: ping across, MAC learning visible in fdb-show, a drop rule takes effect and is
//! counted, bad requests change nothing, and a restart restores bridges, ports and rules from
//! the state file.

mod common;

use common::Lab;

#[test]
fn daemon_forwards_learns_drops_and_restores() {
    let Some(mut lab) = Lab::new("d") else { return };
    let sw = lab.ns("sw");
    let a = lab.ns("a");
    let b = lab.ns("b");
    lab.veth(&sw, "a0", &a, "a1");
    lab.veth(&sw, "b0", &b, "b1");
    lab.addr(&a, "a1", "10.78.0.1/24");
    lab.addr(&b, "b1", "10.78.0.2/24");
    lab.start_daemon("d", &sw);
    let (ia, ib) = (lab.name("a0"), lab.name("b0"));

    lab.ctl_ok("d", &["add-br", "br0"]);
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br0",
            "pa",
            "type=afxdp",
            &format!("iface={ia}"),
        ],
    );
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br0",
            "pb",
            "type=afxdp",
            &format!("iface={ib}"),
        ],
    );
    let show = lab.ctl_ok("d", &["show"]);
    assert!(
        show.contains("xdp_mode"),
        "show reports the XDP mode in use:\n{show}"
    );

    // Bad requests change nothing and say why.
    let state = std::fs::read(lab.dir.join("d.json")).unwrap();
    for bad in [
        vec![
            "add-port",
            "br0",
            "pa",
            "type=afxdp",
            &format!("iface={ia}"),
        ],
        vec!["add-port", "br0", "pc", "type=afxdp", "iface=nosuchif0"],
        vec!["add-port", "nobr", "pc", "type=ring"],
        vec!["add-flow", "br0", "priority=1,in_port=nosuch,actions=drop"],
        vec!["add-flow", "br0", "nw_src=10.0.0.1,actions=drop"],
    ] {
        lab.ctl_fails_in_one_line("d", &bad);
    }
    assert_eq!(
        std::fs::read(lab.dir.join("d.json")).unwrap(),
        state,
        "state file unchanged"
    );

    assert!(
        lab.ping_eventually(&a, "10.78.0.2", 10),
        "ping across the switch\n{}",
        lab.log("d")
    );
    let fdb = lab.ctl_ok("d", &["fdb-show", "br0"]);
    assert!(
        fdb.contains("pa") && fdb.contains("pb"),
        "both hosts learned:\n{fdb}"
    );

    // Trace the echo request the pings sent: NORMAL knows both hosts now, and the PMD's cache
    // holds the same decision.
    let mac = |ns: &str, dev: &str| {
        let path = format!("/sys/class/net/{}/address", lab.name(dev));
        String::from_utf8_lossy(&lab.sh(ns, &["cat", &path]).stdout)
            .trim()
            .to_string()
    };
    let (ma, mb) = (mac(&a, "a1"), mac(&b, "b1"));
    let echo = format!(
        "in_port=pa,dl_src={ma},dl_dst={mb},icmp,nw_src=10.78.0.1,nw_dst=10.78.0.2,icmp_type=8"
    );
    let t = lab.ctl_ok("d", &["trace", "br0", &echo]);
    assert!(
        t.contains(&format!(
            "source {ma} in the untagged VLAN: already learned on pa"
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "destination {mb} in the untagged VLAN: learned on pb"
        )),
        "{t}"
    );
    assert!(t.contains("Datapath actions: pb\n"), "{t}");
    assert!(
        t.contains("megaflow holds it, same decision") || t.contains("emc holds it, same decision"),
        "{t}"
    );

    // A drop rule for ICMP stops pings; ARP and the rest still go through NORMAL.
    lab.ctl_ok("d", &["add-flow", "br0", "priority=100,icmp,actions=drop"]);
    lab.ctl_ok("d", &["add-flow", "br0", "priority=0,actions=NORMAL"]);
    assert!(
        !lab.ping(&a, "10.78.0.2", 2),
        "ICMP must be dropped by the rule"
    );
    let ports = lab.ctl_ok("d", &["--format", "json", "dump-ports", "br0"]);
    assert!(
        ports.contains("rule-drop"),
        "drops counted by reason:\n{ports}"
    );
    let flows = lab.ctl_ok("d", &["dump-flows", "br0"]);
    assert!(
        flows.contains("icmp") && flows.contains("actions=drop"),
        "{flows}"
    );
    assert!(
        flows.contains("n_packets=2") || flows.contains("n_packets=3"),
        "rule counters:\n{flows}"
    );

    // Restart: the state file brings back the bridge, ports and rules.
    lab.restart_daemon("d", &sw);
    let flows = lab.ctl_ok("d", &["dump-flows", "br0"]);
    assert!(
        flows.contains("icmp") && flows.contains("actions=drop"),
        "rules restored:\n{flows}"
    );
    let show = lab.ctl_ok("d", &["show"]);
    assert!(
        show.contains("pa") && show.contains("pb"),
        "ports restored:\n{show}"
    );
    assert!(
        !lab.ping(&a, "10.78.0.2", 2),
        "restored drop rule still applies"
    );
    lab.ctl_ok("d", &["del-flows", "br0", "icmp"]);
    assert!(
        lab.ping_eventually(&a, "10.78.0.2", 10),
        "ping after del-flows"
    );
}

/// `n_rxq=2` on a two-queue veth: one XDP program steers each queue to its own socket, the two
/// queues go to two PMDs, and the kernel's flow hash spreads 1,000 flows over both.
#[test]
fn two_afxdp_queues_spread_flows_over_two_pmds() {
    let Some(mut lab) = Lab::new("m") else { return };
    let sw = lab.ns("sw");
    let a = lab.ns("a");
    lab.veth_mq(&sw, "a0", &a, "a1", 2);
    lab.start_daemon_with("d", &sw, &["--pmd-cores=0,1"]);
    let a0 = lab.name("a0");
    lab.ctl_ok("d", &["add-br", "br0"]);
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br0",
            "pa",
            "type=afxdp",
            &format!("iface={a0}"),
            "n_rxq=2",
        ],
    );
    lab.ctl_ok("d", &["add-port", "br0", "sink", "type=ring"]);
    lab.ctl_ok("d", &["add-flow", "br0", "priority=1,actions=output:sink"]);
    let show = lab.ctl_ok("d", &["show"]);
    assert!(show.contains("n_rxq=2"), "{show}");

    let per_queue = lab.send_flows_and_count_queues("d", &a, "a1", "pa");
    println!("AFXDP_RSS per-queue packets {per_queue:?}");
    println!("{}", lab.ctl_ok("d", &["pmd-rxq-show"]));
    common::assert_even_split(&per_queue);
}
