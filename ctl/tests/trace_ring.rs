//! `vswitchctl trace` through the real daemon over ring ports (no root needed): a VLAN access
//! port, a drop rule and a table miss, a NORMAL flood, a VXLAN output, a QoS class, a hex
//! frame, and clear errors.

mod ring_daemon;

use ring_daemon::*;

const A: &str = "02:00:00:00:00:0a";
const B: &str = "02:00:00:00:00:0b";

fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn trace_explains_vlans_rules_floods_tunnels_and_classes() {
    let dir = TempDir(temp_dir("trace"));
    let d = Daemon::start(&dir.0);

    // A VLAN access port (10), a trunk of 10 and 20 with a scheduler, an access port of 20.
    d.ok(&["add-br", "br0"]);
    d.ok(&["add-port", "br0", "acc10", "type=ring", "tag=10"]);
    d.ok(&["add-port", "br0", "trunk", "type=ring", "trunks=10,20"]);
    d.ok(&["add-port", "br0", "acc20", "type=ring", "tag=20"]);
    d.ok(&["set-qos", "trunk", "max-rate=1Gbit", "dscp-map=46:5"]);
    let flow = format!(
        "in_port=acc10,dl_src={A},dl_dst={B},udp,nw_src=10.0.0.1,nw_dst=10.0.0.2,nw_tos=184,tp_src=5000,tp_dst=53"
    );
    let t = d.ok(&["trace", "br0", &flow]);
    println!("{t}");
    assert!(
        t.starts_with("Flow: udp,in_port=acc10,dl_vlan=0xffff,"),
        "{t}"
    );
    assert!(t.contains("no rules: every frame goes to NORMAL"), "{t}");
    assert!(
        t.contains("NORMAL: acc10 admits the frame into VLAN 10"),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "NORMAL: source {A} in VLAN 10: would be learned on acc10"
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!(
            "NORMAL: destination {B} in VLAN 10: unknown, flooded"
        )),
        "{t}"
    );
    assert!(
        t.contains("NORMAL: to trunk tagged VLAN 10 (TPID 0x8100)"),
        "{t}"
    );
    assert!(
        t.contains("NORMAL: acc20 does not carry the VLAN: skipped"),
        "{t}"
    );
    assert!(
        t.contains("Datapath actions: push_vlan(tpid=0x8100,vid=10,pcp=0),trunk\n"),
        "{t}"
    );
    let out = lines_with(&t, "Output to trunk (ring): ");
    assert_eq!(out.len(), 1, "{t}");
    // The tag carries the priority of the frame's class (DSCP 46: 7).
    assert!(out[0].contains("dl_vlan=10,dl_vlan_pcp=7"), "{t}");
    assert!(t.contains("  qos: class 5 (by DSCP, else PCP)"), "{t}");
    assert!(lines_with(&t, "Cache of pmd0: ").len() == 1, "{t}");
    assert!(!t.contains("Dropped"), "{t}");
    // Tracing learned nothing.
    assert!(!d.ok(&["fdb-show", "br0"]).contains(A));

    // A tagged frame on the access port is refused.
    let tagged = format!("in_port=acc10,dl_vlan=10,dl_src={A},dl_dst={B}");
    let t = d.ok(&["trace", "br0", &tagged]);
    assert!(t.contains("NORMAL: acc10 refuses the frame"), "{t}");
    assert!(t.contains("Datapath actions: drop"), "{t}");
    assert_eq!(lines_with(&t, "Dropped: ").len(), 1, "{t}");

    // A drop rule, and a table miss.
    d.ok(&["add-br", "br1"]);
    d.ok(&["add-port", "br1", "p1", "type=ring"]);
    d.ok(&["add-port", "br1", "p2", "type=ring"]);
    d.ok(&["add-port", "br1", "p3", "type=ring"]);
    d.ok(&["add-flow", "br1", "priority=200,tcp,tp_dst=22,actions=drop"]);
    d.ok(&["add-flow", "br1", "priority=100,ip,actions=normal"]);
    let ssh = format!(
        "in_port=p1,dl_src={A},dl_dst={B},tcp,nw_src=10.0.0.1,nw_dst=10.0.0.2,tp_src=40000,tp_dst=22"
    );
    let t = d.ok(&["trace", "br1", &ssh]);
    assert!(
        t.contains("rule: priority=200,tcp,tp_dst=22,actions=drop"),
        "{t}"
    );
    assert!(t.contains("Datapath actions: drop"), "{t}");
    assert!(
        lines_with(&t, "Dropped: ").len() == 1 && t.contains("rule"),
        "{t}"
    );
    let arp = format!(
        "in_port=p1,dl_src={A},dl_dst=ff:ff:ff:ff:ff:ff,arp,arp_spa=10.0.0.1,arp_tpa=10.0.0.2"
    );
    let t = d.ok(&["trace", "br1", &arp]);
    assert!(t.contains("no rule matched: dropped (table miss)"), "{t}");

    // NORMAL floods a broadcast to every other port.
    let t = d.ok(&[
        "trace",
        "br1",
        &format!("in_port=p1,dl_src={A},dl_dst=ff:ff:ff:ff:ff:ff,udp,nw_src=10.0.0.1,nw_dst=10.0.0.255,tp_src=68,tp_dst=67"),
    ]);
    assert!(
        t.contains("rule: priority=100,ip,actions=NORMAL")
            || t.contains("rule: priority=100,ip,actions=normal"),
        "{t}"
    );
    assert!(
        t.contains("NORMAL: multicast or broadcast destination: flooded in the untagged VLAN"),
        "{t}"
    );
    assert!(t.contains("Datapath actions: p2,p3\n"), "{t}");
    assert_eq!(lines_with(&t, "Output to p").len(), 2, "{t}");

    // A VXLAN output: the encapsulation the tunnel port would add, and its unresolved next hop.
    d.ok(&["add-br", "brphy"]);
    d.ok(&[
        "add-port",
        "brphy",
        "up0",
        "type=ring",
        "vtep_ip=10.200.0.1/24",
        "vtep_mac=02:00:00:00:01:01",
    ]);
    d.ok(&["add-br", "br2"]);
    d.ok(&["add-port", "br2", "vm", "type=ring"]);
    d.ok(&[
        "add-port",
        "br2",
        "vx0",
        "type=vxlan",
        "remote_ip=10.200.0.2",
        "key=5000",
    ]);
    d.ok(&["add-flow", "br2", "in_port=vm,actions=output:vx0"]);
    let t = d.ok(&["trace", "br2", &format!("in_port=vm,dl_src={A},dl_dst={B}")]);
    println!("{t}");
    assert!(t.contains("Output to vx0 (vxlan): "), "{t}");
    assert!(
        t.contains("  vxlan: VNI 5000, 10.200.0.1 -> 10.200.0.2, UDP port 4789"),
        "{t}"
    );
    assert!(t.contains("via up0"), "{t}");
    assert!(t.contains("  next hop: 10.200.0.2 unresolved"), "{t}");

    // A hex frame (the one the first flow described has the same trace), and JSON.
    let json: serde_json::Value =
        serde_json::from_str(&d.ok(&["--format", "json", "trace", "br0", &flow])).unwrap();
    let hex = json["frame_hex"].as_str().unwrap().to_string();
    let t = d.ok(&["trace", "br0", "acc10", &hex]);
    assert!(
        t.contains("Datapath actions: push_vlan(tpid=0x8100,vid=10,pcp=0),trunk\n"),
        "{t}"
    );
    assert_eq!(json["outputs"][0]["port"], "trunk");

    // A frame too short to parse is traced to its drop.
    let t = d.ok(&["trace", "br0", "acc10", "00112233"]);
    assert!(
        t.starts_with("Flow: (the frame could not be parsed)"),
        "{t}"
    );
    assert!(t.contains("Dropped: runt"), "{t}");

    // Errors are one clear line.
    for (args, want) in [
        (
            vec!["trace", "br0", "dl_src=02:00:00:00:00:01"],
            "needs in_port",
        ),
        (vec!["trace", "br0", "in_port=nope"], "nope"),
        (
            vec!["trace", "nobr", "in_port=acc10"],
            "no bridge named nobr",
        ),
        (vec!["trace", "br0", "acc10", "0x123"], "even number"),
    ] {
        let e = d.fails(&args);
        assert!(e.contains(want), "{args:?}: {e}");
    }
    d.stop();
}
