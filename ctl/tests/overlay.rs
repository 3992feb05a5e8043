//! VXLAN with real peers (root): a Linux kernel VXLAN device, and a second vswitchd.

mod common;

use common::Lab;

/// host h (10.60.0.1, access port of br0) -- vswitchd -- vxlan 5000 over the underlay
/// (vswitchd VTEP 10.200.0.1 on an AF_XDP port) -- Linux vxlan device in namespace lx (10.60.0.2).
#[test]
fn vxlan_interoperates_with_linux() {
    let Some(mut lab) = Lab::new("x") else { return };
    let sw = lab.ns("sw");
    let h = lab.ns("h");
    let lx = lab.ns("lx");
    lab.veth(&sw, "ph", &h, "h0");
    lab.veth(&sw, "u0", &lx, "l0");
    lab.addr(&lx, "l0", "10.200.0.2/24");
    lab.addr(&h, "h0", "10.60.0.1/24");
    // The overlay carries 1450-byte packets inside 1500-byte underlay packets (50 B overhead).
    lab.sh_ok(&h, &["ip", "link", "set", &lab.name("h0"), "mtu", "1450"]);
    let vx = lab.name("vx");
    let l0 = lab.name("l0");
    lab.sh_ok(
        &lx,
        &[
            "ip",
            "link",
            "add",
            &vx,
            "type",
            "vxlan",
            "id",
            "5000",
            "remote",
            "10.200.0.1",
            "local",
            "10.200.0.2",
            "dstport",
            "4789",
            "dev",
            &l0,
        ],
    );
    lab.sh_ok(&lx, &["ethtool", "-K", &vx, "tx", "off"]);
    lab.sh_ok(&lx, &["ip", "addr", "add", "10.60.0.2/24", "dev", &vx]);
    lab.sh_ok(&lx, &["ip", "link", "set", &vx, "up"]);

    lab.start_daemon("d", &sw);
    lab.ctl_ok("d", &["add-br", "br0"]);
    lab.ctl_ok("d", &["add-br", "brphy"]);
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br0",
            "ph",
            "type=afxdp",
            &format!("iface={}", lab.name("ph")),
        ],
    );
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "brphy",
            "up0",
            "type=afxdp",
            &format!("iface={}", lab.name("u0")),
            "vtep_ip=10.200.0.1/24",
        ],
    );
    lab.ctl_ok(
        "d",
        &[
            "add-port",
            "br0",
            "vx0",
            "type=vxlan",
            "remote_ip=10.200.0.2",
            "key=5000",
        ],
    );

    // tcpdump on the Linux side records what vswitchd puts on the underlay.
    let cap = lab.dir.join("underlay.txt");
    let capf = std::fs::File::create(&cap).unwrap();
    let mut dump = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &lx,
            "timeout",
            "30",
            "tcpdump",
            "-l",
            "-nn",
            "-v",
            "-c",
            "4",
            "-i",
            &l0,
            "udp",
            "port",
            "4789",
            "and",
            "src",
            "10.200.0.1",
        ])
        .stdout(capf)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));

    assert!(
        lab.ping_eventually(&h, "10.60.0.2", 10),
        "h -> Linux VTEP\n{}",
        lab.log("d")
    );
    assert!(lab.ping(&lx, "10.60.0.1", 2), "Linux VTEP -> h");
    let _ = dump.wait();
    let seen = std::fs::read_to_string(&cap).unwrap_or_default();
    assert!(
        seen.contains("VXLAN") && seen.contains("vni 5000"),
        "tcpdump saw:\n{seen}"
    );

    let up = lab.iperf(&lx, &h, "10.60.0.2", false);
    let down = lab.iperf(&lx, &h, "10.60.0.2", true);
    assert!(up > 1e6 && down > 1e6, "TCP both ways: {up} / {down} bit/s");

    let neigh = lab.ctl_ok("d", &["tnl-neigh-show"]);
    assert!(neigh.contains("10.200.0.2"), "{neigh}");
    let fdb = lab.ctl_ok("d", &["fdb-show", "br0"]);
    assert!(
        fdb.contains("vx0"),
        "the Linux side's MAC is learned on the tunnel port:\n{fdb}"
    );
    println!(
        "vxlan linux interop: TCP {:.0} Mbit/s up, {:.0} Mbit/s down",
        up / 1e6,
        down / 1e6
    );
}

/// Two vswitchd "hosts" joined by VXLAN over one underlay link. VNI 100 carries VLAN 100 and
/// VNI 200 carries VLAN 200: the same VLAN reaches across, the other does not.
#[test]
fn two_vswitchd_hosts_join_vlans_over_vxlan() {
    let Some(mut lab) = Lab::new("y") else { return };
    let (s1, s2) = (lab.ns("s1"), lab.ns("s2"));
    lab.veth(&s1, "ua", &s2, "ub");
    let mut hosts = Vec::new();
    for (sw, name, ip) in [
        (&s1, "a1", "10.61.0.1/24"),
        (&s1, "a2", "10.61.0.2/24"),
        (&s2, "b1", "10.61.0.3/24"),
        (&s2, "b2", "10.61.0.4/24"),
    ] {
        let ns = lab.ns(name);
        lab.veth(sw, &format!("p{name}"), &ns, &format!("{name}e"));
        lab.addr(&ns, &format!("{name}e"), ip);
        lab.sh_ok(
            &ns,
            &[
                "ip",
                "link",
                "set",
                &lab.name(&format!("{name}e")),
                "mtu",
                "1450",
            ],
        );
        hosts.push(ns);
    }
    lab.start_daemon("d1", &s1);
    lab.start_daemon("d2", &s2);
    for (d, up, me, peer, hs) in [
        ("d1", "ua", "10.201.0.1/24", "10.201.0.2", ["a1", "a2"]),
        ("d2", "ub", "10.201.0.2/24", "10.201.0.1", ["b1", "b2"]),
    ] {
        lab.ctl_ok(d, &["add-br", "br0"]);
        lab.ctl_ok(
            d,
            &[
                "add-port",
                "br0",
                "uplink",
                "type=afxdp",
                &format!("iface={}", lab.name(up)),
                &format!("vtep_ip={me}"),
                "trunks=4000",
            ],
        );
        lab.ctl_ok(
            d,
            &[
                "add-port",
                "br0",
                "vx100",
                "type=vxlan",
                &format!("remote_ip={peer}"),
                "key=100",
                "tag=100",
            ],
        );
        lab.ctl_ok(
            d,
            &[
                "add-port",
                "br0",
                "vx200",
                "type=vxlan",
                &format!("remote_ip={peer}"),
                "key=200",
                "tag=200",
            ],
        );
        lab.ctl_ok(
            d,
            &[
                "add-port",
                "br0",
                hs[0],
                "type=afxdp",
                &format!("iface={}", lab.name(&format!("p{}", hs[0]))),
                "tag=100",
            ],
        );
        lab.ctl_ok(
            d,
            &[
                "add-port",
                "br0",
                hs[1],
                "type=afxdp",
                &format!("iface={}", lab.name(&format!("p{}", hs[1]))),
                "tag=200",
            ],
        );
    }
    let (a1, a2, b1, b2) = (&hosts[0], &hosts[1], &hosts[2], &hosts[3]);
    assert!(
        lab.ping_eventually(a1, "10.61.0.3", 10),
        "VLAN 100 across hosts\n{}\n{}",
        lab.log("d1"),
        lab.log("d2")
    );
    assert!(
        lab.ping_eventually(a2, "10.61.0.4", 10),
        "VLAN 200 across hosts"
    );
    assert!(
        !lab.ping(a1, "10.61.0.4", 2),
        "VLAN 100 must not reach VLAN 200 on the other host"
    );
    assert!(!lab.ping(b2, "10.61.0.1", 2), "nor the other way");
    assert!(
        !lab.ping(a1, "10.61.0.2", 2),
        "nor VLAN 200 on the same host"
    );
    let bps = lab.iperf(b1, a1, "10.61.0.3", false);
    assert!(bps > 1e6, "TCP across the overlay: {bps} bit/s");
    let show = lab.ctl_ok("d1", &["show"]);
    assert!(
        show.contains("vx100") && show.contains("remote_ip"),
        "{show}"
    );
}
