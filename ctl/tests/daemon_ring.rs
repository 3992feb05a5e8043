//! Drives the real `vswitchd` with the real `vswitchctl` over ring ports (no root needed).

mod ring_daemon;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use ring_daemon::*;

fn ports_of(show: &serde_json::Value, bridge: &str) -> Vec<(String, u64, String)> {
    let b = show["bridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == bridge)
        .expect("bridge in show");
    b["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["ofport"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn daemon_with_ring_ports_survives_restart() {
    let dir = TempDir(temp_dir("ring"));
    let state = dir.0.join("state.json");
    let d = Daemon::start(&dir.0);

    let v = d.ok(&["version"]);
    assert!(v.contains("protocol version 1"), "{v}");
    assert!(d.ok(&["show"]).contains("no bridges"));

    assert_eq!(d.ok(&["add-br", "br0"]), "");
    d.ok(&["add-port", "br0", "p1", "type=ring"]);
    d.ok(&["add-port", "br0", "p2", "type=ring"]);
    d.ok(&["add-br", "br1"]);
    d.ok(&["add-port", "br1", "q1", "type=ring"]);
    d.ok(&["add-port", "br1", "q2", "type=ring"]);
    d.ok(&["del-port", "q2"]);
    d.ok(&[
        "add-flow",
        "br0",
        "priority=100,in_port=p1,actions=output:p2",
    ]);
    d.ok(&[
        "add-flow",
        "br0",
        "priority=90,in_port=p2,actions=output:p1",
    ]);

    let flows = d.ok(&["dump-flows", "br0"]);
    let lines: Vec<&str> = flows.lines().collect();
    assert_eq!(lines.len(), 2, "{flows}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with(" n_packets=0, n_bytes=0, priority=")),
        "{flows}"
    );
    assert!(flows.contains("in_port=p1"), "{flows}");
    let flows_json: serde_json::Value =
        serde_json::from_str(&d.ok(&["--format", "json", "dump-flows", "br0"])).unwrap();
    assert_eq!(flows_json.as_array().unwrap().len(), 2);

    let before = fs::read(&state).expect("state file written");
    let saved: serde_json::Value = serde_json::from_slice(&before).unwrap();
    assert_eq!(saved["version"], 1);
    assert_eq!(saved["bridges"][0]["flows"].as_array().unwrap().len(), 2);

    // Bad requests: one-line error, exit != 0, nothing changed.
    assert!(
        d.fails(&["add-port", "br0", "p1", "type=ring"])
            .contains("already exists")
    );
    assert!(
        d.fails(&["add-port", "br1", "p2", "type=ring"])
            .contains("already exists")
    );
    assert!(d.fails(&["add-br", "br0"]).contains("already exists"));
    d.fails(&[
        "add-flow",
        "br0",
        "priority=100,in_port=nosuchport,actions=output:p2",
    ]);
    d.fails(&["add-flow", "br0", "this is not a rule"]);
    d.fails(&["add-port", "nobr", "p9", "type=ring"]);
    d.fails(&["add-port", "br0", "p9"]);
    d.fails(&["add-port", "br0", "p9", "type=ring", "x=1", "x=2"]);
    d.fails(&[
        "add-port",
        "br0",
        "p9",
        "type=afxdp",
        "iface=vswitch-no-such-if0",
    ]);
    d.fails(&["dump-flows", "nobr"]);
    d.fails(&["frobnicate"]);
    d.fails(&["add-br"]);
    assert_eq!(
        fs::read(&state).unwrap(),
        before,
        "failed commands must not change the state file"
    );

    let show = d.show_json();
    assert_eq!(
        ports_of(&show, "br0"),
        vec![
            ("p1".to_string(), 1, "ring".to_string()),
            ("p2".to_string(), 2, "ring".to_string())
        ]
    );
    assert_eq!(
        ports_of(&show, "br1"),
        vec![("q1".to_string(), 1, "ring".to_string())]
    );
    let text = d.ok(&["show"]);
    assert!(
        text.contains("Bridge br0") && text.contains("Port p1 (ofport 1)"),
        "{text}"
    );
    d.ok(&["dump-ports", "br0"]);
    d.ok(&["fdb-show", "br0"]);
    d.ok(&["pmd-stats"]);

    d.stop();

    // Restart on the same state file: everything is back.
    let d = Daemon::start(&dir.0);
    let show2 = d.show_json();
    assert_eq!(ports_of(&show2, "br0"), ports_of(&show, "br0"));
    assert_eq!(ports_of(&show2, "br1"), ports_of(&show, "br1"));
    for b in show2["bridges"].as_array().unwrap() {
        for p in b["ports"].as_array().unwrap() {
            assert!(p.get("error").is_none(), "port restored without error: {p}");
        }
        assert!(b.get("flow_errors").is_none(), "rules restored: {b}");
    }
    assert_eq!(d.ok(&["dump-flows", "br0"]), flows, "rules came back");
    // A port added after the restart gets a fresh ofport.
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["--format", "json", "add-port", "br0", "p3", "type=ring"]))
            .unwrap();
    assert_eq!(v["ofport"], 3);
    d.ok(&["del-flows", "br0", "in_port=p1"]);
    assert_eq!(d.ok(&["dump-flows", "br0"]).lines().count(), 1);
    d.ok(&["del-br", "br1"]);
    let saved: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    assert_eq!(saved["bridges"].as_array().unwrap().len(), 1);
    d.stop();
}

#[test]
fn cli_reports_missing_daemon() {
    let dir = TempDir(temp_dir("nodaemon"));
    let sock = dir.0.join("none.sock");
    let out = Command::new(env!("CARGO_BIN_EXE_vswitchctl"))
        .arg("--socket")
        .arg(&sock)
        .arg("show")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!(
            "vswitchctl: cannot connect to {}: ",
            sock.display()
        )),
        "{err}"
    );
    assert!(err.contains("(is vswitchd running?)"), "{err}");
}

#[test]
fn daemon_refuses_corrupt_state_and_busy_socket() {
    let dir = TempDir(temp_dir("refuse"));
    let state = dir.0.join("state.json");
    let socket = dir.0.join("vswitchd.sock");
    let run = |state: &Path| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vswitchd"))
            .arg("--socket")
            .arg(&socket)
            .arg("--state")
            .arg(state)
            .args(["--log", "warn"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                return (s, err);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("vswitchd should have refused to start");
            }
            sleep(Duration::from_millis(50));
        }
    };

    fs::write(&state, "{\"version\":1,\"bridges\":[").unwrap();
    let (status, err) = run(&state);
    assert!(!status.success());
    assert!(
        err.contains(&state.display().to_string()) && err.contains("corrupt"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&state).unwrap(),
        "{\"version\":1,\"bridges\":[",
        "corrupt file left alone"
    );

    // Someone answers on the socket: refuse, and leave their socket alone.
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let (status, err) = run(&dir.0.join("fresh.json"));
    assert!(!status.success());
    assert!(err.contains("already listening"), "{err}");
    assert!(socket.exists());
}

#[test]
fn restore_failures_are_kept_and_flagged() {
    let dir = TempDir(temp_dir("restorefail"));
    let state = dir.0.join("state.json");
    let saved = r#"{"version":1,"bridges":[{"name":"br0","ports":[
        {"name":"p1","ofport":1,"type":"ring","options":{}},
        {"name":"x1","ofport":5,"type":"afxdp","options":{"iface":"vswitch-no-such-if0"}}],
        "flows":["priority=100,in_port=p1,actions=output:x1","priority=10,in_port=p1,actions=drop"]}]}"#;
    fs::write(&state, saved).unwrap();
    let d = Daemon::start(&dir.0);
    let show = d.show_json();
    let br0 = &show["bridges"][0];
    let x1 = &br0["ports"][1];
    assert_eq!(x1["name"], "x1");
    assert_eq!(x1["ofport"], 5);
    assert!(
        x1["error"]
            .as_str()
            .unwrap()
            .contains("vswitch-no-such-if0"),
        "{x1}"
    );
    assert!(br0["ports"][0].get("error").is_none());
    // Rules naming the failed port are installed all the same (they name its ofport).
    assert_eq!(br0["n_rules"], 2, "{br0}");
    assert!(d.ok(&["show"]).contains("error: "));
    // The name stays taken, and nothing is lost when the configuration changes.
    d.fails(&["add-port", "br0", "x1", "type=ring"]);
    d.ok(&["add-port", "br0", "p2", "type=ring"]);
    let cfg: serde_json::Value = serde_json::from_slice(&fs::read(&state).unwrap()).unwrap();
    let ports: Vec<&str> = cfg["bridges"][0]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["p1", "p2", "x1"], "ports in ofport order");
    let flows = cfg["bridges"][0]["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 2, "{cfg}");
    assert!(
        flows
            .iter()
            .any(|f| f == "priority=100,in_port=p1,actions=output:x1")
    );
    d.stop();
}

#[test]
fn vhost_user_server_mode_never_replaces_a_file() {
    let dir = TempDir(temp_dir("vhuserver"));
    let d = Daemon::start(&dir.0);
    d.ok(&["add-br", "br0"]);
    let file = dir.0.join("precious.txt");
    fs::write(&file, "operator data").unwrap();
    let err = d.fails(&[
        "add-port",
        "br0",
        "vm1",
        "type=vhost-user",
        "mode=server",
        &format!("path={}", file.display()),
    ]);
    assert!(err.contains("regular file"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "operator data");
    assert!(
        !d.show_json().to_string().contains("vm1"),
        "nothing changed"
    );
    // A path that is free becomes the port's socket (mode 0660), removed with the port.
    let sock = dir.0.join("vm1.sock");
    d.ok(&[
        "add-port",
        "br0",
        "vm1",
        "type=vhost-user",
        "mode=server",
        &format!("path={}", sock.display()),
    ]);
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let md = fs::metadata(&sock).unwrap();
    assert!(md.file_type().is_socket());
    assert_eq!(md.permissions().mode() & 0o777, 0o660);
    d.ok(&["del-port", "vm1"]);
    assert!(!sock.exists());
    d.stop();
}
