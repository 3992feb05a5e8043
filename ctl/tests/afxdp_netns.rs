//! Root integration test: the real `vswitchd`, driven by the real `vswitchctl`, forwarding
//! between two hosts (network namespaces) over AF_XDP ports on veth pairs.
//!
//! Checks: ping across, MAC learning visible in fdb-show, a drop rule takes effect and is
//! counted, and a restart restores bridges, ports and rules from the state file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

fn must(cmd: &str, args: &[&str]) {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Namespaces and veths named with a unique prefix; deleted on drop, also when a test fails.
struct Topology {
    pfx: String,
    dir: PathBuf,
    daemon: Option<Child>,
}

impl Topology {
    fn new(tag: &str) -> Topology {
        let pfx = format!("vst{tag}{}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("{pfx}-run"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t = Topology {
            pfx,
            dir,
            daemon: None,
        };
        for ns in ["sw", "a", "b"] {
            must("ip", &["netns", "add", &t.ns(ns)]);
            must("ip", &["-n", &t.ns(ns), "link", "set", "lo", "up"]);
        }
        for (host, addr) in [("a", "10.78.0.1/24"), ("b", "10.78.0.2/24")] {
            let sw_end = format!("{}{host}0", t.pfx);
            let host_end = format!("{}{host}1", t.pfx);
            must(
                "ip",
                &[
                    "link",
                    "add",
                    &sw_end,
                    "netns",
                    &t.ns("sw"),
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &host_end,
                    "netns",
                    &t.ns(host),
                ],
            );
            for (ns, ifc) in [("sw", &sw_end), (host, &host_end)] {
                must(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &t.ns(ns),
                        "sysctl",
                        "-qw",
                        &format!("net.ipv6.conf.{ifc}.disable_ipv6=1"),
                    ],
                );
                must("ip", &["-n", &t.ns(ns), "link", "set", ifc, "up"]);
            }
            must(
                "ip",
                &["-n", &t.ns(host), "addr", "add", addr, "dev", &host_end],
            );
            // Full checksums from the host stack: AF_XDP copies frames as they are.
            must(
                "ip",
                &[
                    "netns",
                    "exec",
                    &t.ns(host),
                    "ethtool",
                    "-K",
                    &host_end,
                    "tx",
                    "off",
                ],
            );
        }
        t
    }

    fn ns(&self, n: &str) -> String {
        format!("{}-{n}", self.pfx)
    }

    fn iface(&self, host: &str) -> String {
        format!("{}{host}0", self.pfx)
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("vswitchd.sock")
    }

    fn start_daemon(&mut self) {
        let log = std::fs::File::create(self.dir.join("vswitchd.log")).unwrap();
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("sw"),
                env!("CARGO_BIN_EXE_vswitchd"),
            ])
            .arg("--socket")
            .arg(self.sock())
            .arg("--state")
            .arg(self.dir.join("state.json"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vswitchd");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ctl(&["version"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("vswitchd did not come up: {}", self.log());
    }

    fn stop_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            // SAFETY: kill(2) on a child we spawned; a stale pid at worst gets ESRCH.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("vswitchd ignored SIGTERM");
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("vswitchd.log")).unwrap_or_default()
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vswitchctl"))
            .arg("--socket")
            .arg(self.sock())
            .args(args)
            .output()
            .unwrap()
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "vswitchctl {args:?}: {}\n--- vswitchd log ---\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Pings b from a; true if at least one reply came back.
    fn ping(&self, count: &str) -> bool {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &self.ns("a"),
                "ping",
                "-c",
                count,
                "-i",
                "0.2",
                "-W",
                "1",
                "10.78.0.2",
            ],
        )
        .status
        .success()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in ["sw", "a", "b"] {
            let _ = run("ip", &["netns", "del", &self.ns(ns)]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn file_exists(p: &Path) -> bool {
    p.exists()
}

#[test]
fn daemon_forwards_learns_drops_and_restores() {
    if !is_root() {
        println!("SKIP: needs root (network namespaces, AF_XDP)");
        return;
    }
    let mut t = Topology::new("d");
    t.start_daemon();
    t.ctl_ok(&["add-br", "br0"]);
    let (ia, ib) = (t.iface("a"), t.iface("b"));
    t.ctl_ok(&[
        "add-port",
        "br0",
        "pa",
        "type=afxdp",
        &format!("iface={ia}"),
    ]);
    t.ctl_ok(&[
        "add-port",
        "br0",
        "pb",
        "type=afxdp",
        &format!("iface={ib}"),
    ]);
    let show = t.ctl_ok(&["show"]);
    assert!(
        show.contains("xdp_mode"),
        "show reports the XDP mode in use:\n{show}"
    );

    // A bad request changes nothing and says why.
    let dup = t.ctl(&[
        "add-port",
        "br0",
        "pa",
        "type=afxdp",
        &format!("iface={ia}"),
    ]);
    assert!(!dup.status.success());
    assert!(!dup.stderr.is_empty());
    let missing = t.ctl(&["add-port", "br0", "pc", "type=afxdp", "iface=nosuchif0"]);
    assert!(!missing.status.success());

    assert!(t.ping("3"), "ping across the switch\n{}", t.log());

    let fdb = t.ctl_ok(&["fdb-show", "br0"]);
    assert!(
        fdb.contains("pa") && fdb.contains("pb"),
        "both hosts learned:\n{fdb}"
    );

    // A drop rule for ICMP stops pings; ARP and the rest still go through NORMAL.
    t.ctl_ok(&["add-flow", "br0", "priority=100,icmp,actions=drop"]);
    t.ctl_ok(&["add-flow", "br0", "priority=0,actions=NORMAL"]);
    assert!(!t.ping("2"), "ICMP must be dropped by the rule");
    let ports = t.ctl_ok(&["--format", "json", "dump-ports", "br0"]);
    assert!(
        ports.contains("rule-drop"),
        "drops counted by reason:\n{ports}"
    );
    let flows = t.ctl_ok(&["dump-flows", "br0"]);
    assert!(
        flows.contains("icmp") && flows.contains("actions=drop"),
        "{flows}"
    );

    // Restart: the state file brings back the bridge, ports and rules.
    t.stop_daemon();
    assert!(file_exists(&t.dir.join("state.json")));
    t.start_daemon();
    let flows = t.ctl_ok(&["dump-flows", "br0"]);
    assert!(
        flows.contains("icmp") && flows.contains("actions=drop"),
        "rules restored:\n{flows}"
    );
    let show = t.ctl_ok(&["show"]);
    assert!(
        show.contains("pa") && show.contains("pb"),
        "ports restored:\n{show}"
    );
    assert!(!t.ping("2"), "restored drop rule still applies");
    t.ctl_ok(&["del-flows", "br0", "icmp"]);
    wait_for("ping after del-flows", || t.ping("2"));
    t.stop_daemon();
}
