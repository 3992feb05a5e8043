use std::path::PathBuf;

use datapath::{Switch, SwitchConfig};

use super::*;
use crate::model::Config;
use crate::persist::{self, tests::temp_dir};
use crate::protocol::Request;
use crate::results::*;

fn req(cmd: &str, args: &[&str]) -> Request {
    Request::new(cmd, args.iter().map(|s| s.to_string()).collect())
}

/// A daemon over a real switch whose one PMD nobody drives (no threads needed).
fn daemon(tag: &str, cfg: Config) -> (Daemon, PathBuf, persist::tests::TempDir) {
    let dir = temp_dir(tag);
    let path = dir.join("state.json");
    let sw = Switch::start(SwitchConfig {
        caller_driven: true,
        ..SwitchConfig::default()
    })
    .unwrap();
    (Daemon::new(sw, cfg, path.clone()), path, dir)
}

fn state(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn commands_edit_the_model_the_datapath_and_the_state_file() {
    let (mut d, path, _dir) = daemon("cmds", Config::default());
    handle(&mut d, &req("add-br", &["br0"])).unwrap();
    let v = handle(&mut d, &req("add-port", &["br0", "p1", "type=ring"])).unwrap();
    assert_eq!(v["ofport"], 1);
    handle(
        &mut d,
        &req("add-port", &["br0", "p2", "type=ring", "peer=p1", "tag=10"]),
    )
    .unwrap();
    handle(
        &mut d,
        &req(
            "add-flow",
            &["br0", "priority=100,in_port=p1,actions=output:p2"],
        ),
    )
    .unwrap();
    handle(&mut d, &req("add-flow", &["br0", "actions=drop"])).unwrap();
    let saved = persist::load(&path).unwrap();
    assert_eq!(persist::to_json(&saved), persist::to_json(d.config()));
    let text = state(&path);
    assert!(text.contains("\"peer\": \"p1\""), "{text}");
    assert!(text.contains("\"tag\": \"10\""), "{text}");
    assert!(
        text.contains("priority=100,in_port=p1,actions=output:p2"),
        "{text}"
    );
    assert!(text.contains("priority=32768,actions=drop"), "{text}");
    let live = d.datapath().bridge("br0").unwrap();
    assert_eq!(live.ports.len(), 2);
    assert_eq!(live.n_rules, 2);

    let before = state(&path);
    let bad: &[(&str, &[&str], &str)] = &[
        ("add-br", &["br0"], "already exists"),
        ("add-br", &["p1"], "name of a port"),
        ("add-br", &["a,b"], "invalid bridge name"),
        (
            "add-br",
            &[],
            "wrong number of arguments (usage: add-br BRIDGE)",
        ),
        (
            "add-port",
            &["br0", "p1", "type=ring"],
            "port p1 already exists on bridge br0",
        ),
        (
            "add-port",
            &["br9", "p9", "type=ring"],
            "no bridge named br9",
        ),
        ("add-port", &["br0", "p9"], "missing type="),
        (
            "add-port",
            &["br0", "p9", "type=ring", "peer=a", "peer=b"],
            "peer given twice",
        ),
        (
            "add-port",
            &["br0", "p9", "type=ring", "peer"],
            "malformed option",
        ),
        (
            "add-port",
            &["br0", "p9", "type=bogus"],
            "unknown port type",
        ),
        ("add-port", &["br0", "p9", "type=ring", "tag=5000"], "tag"),
        (
            "add-port",
            &["br0", "p9", "type=afxdp", "iface=nope"],
            "interface \"nope\" not found",
        ),
        (
            "add-port",
            &["br0", "p9", "type=ring", "peer=p1"],
            "already joined to p2",
        ),
        (
            "add-flow",
            &["br0", "in_port=zz,actions=drop"],
            "unknown port \"zz\"",
        ),
        ("add-flow", &["br0", "garbage"], "actions="),
        ("add-flow", &["br0", "a", "b"], "wrong number of arguments"),
        ("add-flow", &["br9", "actions=drop"], "no bridge named br9"),
        ("del-port", &["br0", "nope"], "bridge br0 has no port nope"),
        ("del-port", &["nope"], "no port named nope"),
        ("del-br", &["br9"], "no bridge named br9"),
        ("dump-flows", &["br9"], "no bridge named br9"),
        ("set", &["port", "p1", "iface=x"], "cannot set \"iface\""),
        ("set", &["port", "p1", "tag=0"], "bad tag"),
        ("set", &["port", "nope", "tag=1"], "no port named nope"),
        ("set", &["bridge", "p1", "tag=1"], "only \"set port"),
        ("tnl-route-add", &["10.0.0.0/8", "p1"], "has no vtep_ip"),
        ("frobnicate", &[], "unknown command 'frobnicate'"),
        ("show", &["x"], "wrong number"),
        (
            "batch",
            &["add-br", "b1", "--", "show"],
            "only changes can be batched",
        ),
        // One bad command in a batch and none of it happens.
        (
            "batch",
            &["add-br", "b1", "--", "add-br", "b1"],
            "already exists",
        ),
    ];
    for (c, a, want) in bad {
        let err = handle(&mut d, &req(c, a)).unwrap_err();
        assert!(err.contains(want), "{c} {a:?}: {err}");
    }
    assert_eq!(
        state(&path),
        before,
        "failed commands must not touch the state file"
    );
    assert!(d.datapath().bridge("b1").is_err(), "nor the datapath");

    // set port: an empty value clears; settings apply live.
    handle(&mut d, &req("set", &["port", "p2", "tag=", "trunks=10,20"])).unwrap();
    assert!(state(&path).contains("\"trunks\": \"10,20\""));
    let v = handle(&mut d, &req("del-flows", &["br0", "in_port=p1"])).unwrap();
    assert_eq!(v["deleted"], 1);
    let v = handle(
        &mut d,
        &req("del-flows", &["br0", "--strict", "priority=32768"]),
    )
    .unwrap();
    assert_eq!(v["deleted"], 1);
    assert_eq!(d.datapath().bridge("br0").unwrap().n_rules, 0);
    // A batch is one transaction.
    handle(
        &mut d,
        &req(
            "batch",
            &[
                "add-br",
                "br1",
                "--",
                "add-port",
                "br1",
                "q1",
                "type=ring",
                "--",
                "add-flow",
                "br1",
                "actions=NORMAL",
            ],
        ),
    )
    .unwrap();
    assert_eq!(d.datapath().bridge("br1").unwrap().n_rules, 1);
    handle(&mut d, &req("del-port", &["p2"])).unwrap();
    handle(&mut d, &req("del-br", &["br0"])).unwrap();
    handle(&mut d, &req("del-br", &["br1"])).unwrap();
    assert!(persist::load(&path).unwrap().bridges.is_empty());
    assert!(d.datapath().bridges().is_empty());
}

#[test]
fn read_commands() {
    let (mut d, _, _dir) = daemon("read", Config::default());
    handle(&mut d, &req("add-br", &["br0"])).unwrap();
    handle(
        &mut d,
        &req("add-port", &["br0", "p1", "type=ring", "mac-limit=8"]),
    )
    .unwrap();
    handle(
        &mut d,
        &req("add-flow", &["br0", "priority=5,actions=drop"]),
    )
    .unwrap();
    let show: ShowResult =
        serde_json::from_value(handle(&mut d, &req("show", &[])).unwrap()).unwrap();
    let p = &show.bridges[0].ports[0];
    assert_eq!((p.ofport, p.error.as_deref()), (1, None));
    assert_eq!(p.status["mac_learned"], "0/8");
    assert_eq!(show.bridges[0].n_rules, 1);
    let flows: Vec<FlowEntry> =
        serde_json::from_value(handle(&mut d, &req("dump-flows", &["br0"])).unwrap()).unwrap();
    assert_eq!(
        (flows[0].priority, flows[0].text.as_str()),
        (5, "priority=5,actions=drop")
    );
    let ports: Vec<PortStatsEntry> =
        serde_json::from_value(handle(&mut d, &req("dump-ports", &["br0"])).unwrap()).unwrap();
    assert_eq!(ports[0].rx_packets, 0);
    let fdb: Vec<FdbRow> =
        serde_json::from_value(handle(&mut d, &req("fdb-show", &["br0"])).unwrap()).unwrap();
    assert!(fdb.is_empty());
    let pmds: Vec<PmdRow> =
        serde_json::from_value(handle(&mut d, &req("pmd-rxq-show", &[])).unwrap()).unwrap();
    assert_eq!(pmds[0].rxqs[0].port, "p1");
    let v: VersionInfo =
        serde_json::from_value(handle(&mut d, &req("version", &[])).unwrap()).unwrap();
    assert_eq!(v.protocol_version, 1);
    d.shutdown();
    assert!(
        handle(&mut d, &req("show", &[]))
            .unwrap_err()
            .contains("shutting down")
    );
}

#[test]
fn restore_keeps_what_failed_and_reserves_its_ofport() {
    let text = r#"{"version":1,"bridges":[
        {"name":"br0","ports":[
            {"name":"p1","ofport":1,"type":"ring","options":{}},
            {"name":"x1","ofport":2,"type":"afxdp","options":{"iface":"veth-vswitch-missing"}},
            {"name":"p2","ofport":4,"type":"ring","options":{"peer":"q1"}}],
         "flows":["priority=10,in_port=p1,actions=output:p2","priority=9,in_port=x1,actions=drop"]},
        {"name":"br1","ports":[{"name":"q1","ofport":1,"type":"ring","options":{}}],"flows":[]}]}"#;
    let cfg = persist::from_json(text).unwrap();
    let (mut d, path, _dir) = daemon("restore", cfg);
    let show: ShowResult =
        serde_json::from_value(handle(&mut d, &req("show", &[])).unwrap()).unwrap();
    let br0 = &show.bridges[0];
    let ports: Vec<(&str, u32)> = br0
        .ports
        .iter()
        .map(|p| (p.name.as_str(), p.ofport))
        .collect();
    assert_eq!(ports, [("p1", 1), ("x1", 2), ("p2", 4)]);
    assert!(
        br0.ports[1]
            .error
            .as_deref()
            .unwrap()
            .contains("veth-vswitch-missing")
    );
    assert_eq!(br0.ports[2].error, None);
    assert_eq!(
        br0.ports[2].status["peer"], "q1",
        "joined to its peer on br1"
    );
    assert_eq!(
        br0.n_rules, 2,
        "rules naming a failed port are installed (by ofport)"
    );
    // The failed port keeps its name and its ofport.
    assert!(
        handle(&mut d, &req("add-port", &["br0", "x1", "type=ring"]))
            .unwrap_err()
            .contains("already exists")
    );
    let v = handle(&mut d, &req("add-port", &["br0", "p3", "type=ring"])).unwrap();
    assert_eq!(v["ofport"], 3);
    assert!(
        handle(&mut d, &req("set", &["port", "x1", "tag=5"]))
            .unwrap_err()
            .contains("not running")
    );
    // It stays in the state file until the operator removes it.
    assert!(state(&path).contains("veth-vswitch-missing"));
    handle(&mut d, &req("del-port", &["x1"])).unwrap();
    assert!(!state(&path).contains("veth-vswitch-missing"));
}

#[test]
fn qos_commands_configure_persist_and_report() {
    let (mut d, path, _dir) = daemon("qos", Config::default());
    handle(&mut d, &req("add-br", &["br0"])).unwrap();
    handle(&mut d, &req("add-port", &["br0", "vm1", "type=ring"])).unwrap();
    handle(&mut d, &req("add-port", &["br0", "up", "type=ring"])).unwrap();
    // A queue needs a scheduler first.
    let e = handle(&mut d, &req("set-queue", &["up", "0", "weight=4"])).unwrap_err();
    assert!(e.contains("has no QoS"), "{e}");
    // Scheduler and queues in one transaction.
    handle(
        &mut d,
        &req(
            "batch",
            &[
                "set-qos",
                "up",
                "max-rate=1Gbit",
                "overhead=24",
                "--",
                "set-queue",
                "up",
                "0",
                "weight=4",
                "max-rate=100Mbit",
                "--",
                "set-queue",
                "up",
                "5",
                "strict",
            ],
        ),
    )
    .unwrap();
    handle(&mut d, &req("set", &["port", "vm1", "trust=untrusted:10"])).unwrap();
    handle(
        &mut d,
        &req(
            "set-policer",
            &[
                "vm1",
                "type=trtcm",
                "cir=10Mbit",
                "pir=20Mbit",
                "yellow=dscp:12",
            ],
        ),
    )
    .unwrap();
    // `set port` keeps the QoS settings it does not name.
    handle(&mut d, &req("set", &["port", "vm1", "tag=5"])).unwrap();

    let show: QosShowResult =
        serde_json::from_value(handle(&mut d, &req("qos-show", &["up"])).unwrap()).unwrap();
    assert_eq!(show.qos["max-rate"], "1Gbit");
    assert_eq!(show.queues.len(), 8);
    assert_eq!((show.queues[0].weight, show.queues[0].strict), (4, false));
    assert_eq!(show.queues[0].max_rate.as_deref(), Some("100Mbit"));
    assert!(show.queues[5].strict && show.queues[7].strict);
    let text = crate::format::qos_show(&show);
    assert!(
        text.contains("queue 0: weight=4 max-rate=100Mbit"),
        "{text}"
    );
    let vm1: QosShowResult =
        serde_json::from_value(handle(&mut d, &req("qos-show", &["vm1"])).unwrap()).unwrap();
    assert_eq!(vm1.trust, "untrusted:10");
    assert!(vm1.queues.is_empty());
    assert_eq!(vm1.policer.as_ref().unwrap()["yellow"], "dscp:12");
    assert_eq!(vm1.policer_counts.as_ref().unwrap().len(), 3);

    // Bad settings: a one-line error, nothing changes.
    let before = state(&path);
    let bad: &[(&str, &[&str], &str)] = &[
        ("set-qos", &["up", "max-rate=0"], "max-rate"),
        ("set-qos", &["vm1", "burst=9000"], "needs max-rate"),
        ("set-queue", &["up", "8", "weight=1"], "unknown class"),
        ("set-queue", &["up", "1", "weight=0"], "weight"),
        (
            "set-queue",
            &["up", "1", "colour=red"],
            "unknown queue option",
        ),
        ("set-policer", &["vm1", "cir=0"], "cir"),
        ("set", &["port", "vm1", "trust=everyone"], "bad trust"),
        ("set-qos", &["nope", "max-rate=1Gbit"], "no port named nope"),
        ("qos-show", &["nope"], "no port named nope"),
    ];
    for (cmd, args, want) in bad {
        let e = handle(&mut d, &req(cmd, args)).unwrap_err();
        assert!(e.contains(want), "{cmd} {args:?}: {e}");
        assert!(!e.contains('\n'));
    }
    assert_eq!(state(&path), before);

    // Persisted and restored as it was.
    let restored = persist::load(&path).unwrap();
    assert_eq!(persist::to_json(&restored), persist::to_json(d.config()));
    let up = &restored.bridge("br0").unwrap().ports[1];
    assert_eq!(up.settings.qos.as_ref().unwrap().scheduler.overhead, 24);

    handle(&mut d, &req("clear-qos", &["up"])).unwrap();
    handle(&mut d, &req("clear-policer", &["vm1"])).unwrap();
    assert!(!state(&path).contains("\"qos\""));
    assert!(!state(&path).contains("\"policer\""));
    let show: QosShowResult =
        serde_json::from_value(handle(&mut d, &req("qos-show", &["up"])).unwrap()).unwrap();
    assert!(show.queues.is_empty());
}

#[test]
fn meters_are_added_used_dumped_and_protected() {
    let (mut d, path, _dir) = daemon("meters", Config::default());
    handle(&mut d, &req("add-br", &["br0"])).unwrap();
    handle(&mut d, &req("add-port", &["br0", "p1", "type=ring"])).unwrap();
    handle(&mut d, &req("add-port", &["br0", "p2", "type=ring"])).unwrap();
    // A rule cannot use a meter that does not exist.
    let e = handle(
        &mut d,
        &req("add-flow", &["br0", "in_port=p1,actions=meter:1,output:p2"]),
    )
    .unwrap_err();
    assert!(e.contains("meter 1"), "{e}");
    handle(
        &mut d,
        &req(
            "add-meter",
            &[
                "br0",
                "meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000",
            ],
        ),
    )
    .unwrap();
    handle(
        &mut d,
        &req("add-flow", &["br0", "in_port=p1,actions=meter:1,output:p2"]),
    )
    .unwrap();
    let rows: Vec<MeterRow> =
        serde_json::from_value(handle(&mut d, &req("dump-meters", &["br0"])).unwrap()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].text,
        "meter=1,kbps,burst,bands=type=drop,rate=10000,burst_size=1000"
    );
    assert_eq!(rows[0].bands[0].kind, "drop");
    assert!(crate::format::dump_meters(&rows).contains("0: drop rate=10000 packet_count:0"));
    assert!(state(&path).contains("meter=1,kbps"));
    // In use: not deleted.
    let e = handle(&mut d, &req("del-meter", &["br0", "meter=1"])).unwrap_err();
    assert!(e.contains("used by 1 rule"), "{e}");
    let e = handle(
        &mut d,
        &req(
            "add-meter",
            &["br0", "meter=2,pktps,bands=type=drop,rate=1"],
        ),
    )
    .unwrap_err();
    assert!(e.contains("pktps"), "{e}");
    // Restored from the state file as it was.
    let restored = persist::load(&path).unwrap();
    assert_eq!(persist::to_json(&restored), persist::to_json(d.config()));
    handle(&mut d, &req("del-flows", &["br0"])).unwrap();
    handle(&mut d, &req("del-meter", &["br0", "meter=1"])).unwrap();
    assert!(d.datapath().meters("br0").unwrap().is_empty());
    let e = handle(&mut d, &req("del-meter", &["br0", "1"])).unwrap_err();
    assert!(e.contains("no meter 1"), "{e}");
}
