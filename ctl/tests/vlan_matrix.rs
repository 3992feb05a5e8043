//! VLAN port modes × ingress tagging over AF_XDP ports (root): raw frames in, what comes out of
//! every other port, tags included. The host kernel has no 8021q module, so frames are built and
//! read with raw sockets (scripts/vlan_probe.py).

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Lab;

const PROBE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/vlan_probe.py");

/// (ingress port, tags "tpid:vid[:pcp],..." or "-", expected {port: [[tpid, vid], ...]}).
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static [(u16, u16)])],
);

/// Per port: payload → the tags it arrived with.
type Seen = BTreeMap<String, Vec<(u16, u16)>>;

const PORTS: [(&str, &str); 5] = [
    ("a1", "tag=10"),
    ("a2", "tag=20"),
    ("t", "trunks=10,20,30"),
    ("n", "vlan_mode=native-untagged"),
    ("q", "vlan_mode=dot1q-tunnel"),
];

const CASES: &[Case] = &[
    // access 10
    ("a1", "-", &[("t", &[(0x8100, 10)]), ("n", &[])]),
    ("a1", "8100:10", &[]),
    ("a1", "8100:0:5", &[("t", &[(0x8100, 10)]), ("n", &[])]),
    // access 20
    ("a2", "-", &[("t", &[(0x8100, 20)]), ("n", &[(0x8100, 20)])]),
    // trunk 10,20,30
    ("t", "-", &[]),
    ("t", "8100:10", &[("a1", &[]), ("n", &[])]),
    ("t", "8100:20", &[("a2", &[]), ("n", &[(0x8100, 20)])]),
    ("t", "8100:40", &[]),
    ("t", "8100:30", &[("q", &[])]),
    ("t", "88a8:30,8100:7", &[("q", &[(0x8100, 7)])]),
    // native-untagged 10, trunks 20
    ("n", "-", &[("a1", &[]), ("t", &[(0x8100, 10)])]),
    ("n", "8100:20", &[("a2", &[]), ("t", &[(0x8100, 20)])]),
    ("n", "8100:10", &[("a1", &[]), ("t", &[(0x8100, 10)])]),
    ("n", "8100:30", &[]),
    // dot1q-tunnel 30
    ("q", "-", &[("t", &[(0x8100, 30)])]),
    ("q", "8100:7", &[("t", &[(0x88a8, 30), (0x8100, 7)])]),
];

#[test]
fn vlan_modes_times_ingress_tagging() {
    let Some(mut lab) = Lab::new("m") else { return };
    let sw = lab.ns("sw");
    let hs = lab.ns("hs");
    for (p, _) in PORTS {
        lab.veth(&sw, &format!("s{p}"), &hs, &format!("h{p}"));
    }
    lab.start_daemon("d", &sw);
    lab.ctl_ok("d", &["add-br", "br0"]);
    for (p, vlan) in PORTS {
        let mut args = vec![
            "add-port".to_string(),
            "br0".into(),
            p.into(),
            "type=afxdp".into(),
        ];
        args.push(format!("iface={}", lab.name(&format!("s{p}"))));
        args.push(vlan.into());
        match p {
            "n" => args.extend(["tag=10".into(), "trunks=20".into()]),
            "q" => args.push("tag=30".into()),
            _ => {}
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.ctl_ok("d", &a);
    }

    // Listen on every host end, then send every case (distinct payload and source MAC).
    let mut listeners = Vec::new();
    for (p, _) in PORTS {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &hs,
                "python3",
                PROBE,
                "recv",
                &lab.name(&format!("h{p}")),
                "6",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        listeners.push((p, child));
    }
    std::thread::sleep(Duration::from_millis(800));
    for (i, (port, tags, _)) in CASES.iter().enumerate() {
        let src = format!("02:00:00:00:01:{:02x}", i + 1);
        let payload = format!("case{i}");
        lab.sh_ok(
            &hs,
            &[
                "python3",
                PROBE,
                "send",
                &lab.name(&format!("h{port}")),
                "ff:ff:ff:ff:ff:ff",
                &src,
                tags,
                &payload,
            ],
        );
        std::thread::sleep(Duration::from_millis(30));
    }

    let mut seen: BTreeMap<&str, Seen> = BTreeMap::new();
    for (p, child) in listeners {
        let out = child.wait_with_output().unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let tags = v["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t[0].as_u64().unwrap() as u16, t[1].as_u64().unwrap() as u16))
                .collect();
            seen.entry(p)
                .or_default()
                .insert(v["payload"].as_str().unwrap().to_string(), tags);
        }
    }
    let mut failures = Vec::new();
    for (i, (port, tags, expect)) in CASES.iter().enumerate() {
        let payload = format!("case{i}");
        for (p, _) in PORTS {
            let got = seen.get(p).and_then(|m| m.get(&payload));
            let want = expect
                .iter()
                .find(|(q, _)| *q == p)
                .map(|(_, t)| t.to_vec());
            if got.cloned() != want {
                failures.push(format!(
                    "in {port} tags {tags}: at {p} expected {want:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n--- vswitchd ---\n{}",
        failures.join("\n"),
        lab.log("d")
    );

    // Drops are counted by reason on the ingress ports.
    let ports = lab.ctl_ok("d", &["--format", "json", "dump-ports", "br0"]);
    assert!(ports.contains("vlan-tagged-on-access"), "{ports}");
    assert!(ports.contains("vlan-not-allowed"), "{ports}");
}
