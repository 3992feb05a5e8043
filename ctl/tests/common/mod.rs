//! A lab of network namespaces for root integration tests: namespaces and veths named with a
//! unique prefix, `vswitchd` instances driven by `vswitchctl`, all removed on drop (also when a
//! test fails). Never touches interfaces it did not create.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

pub fn must(cmd: &str, args: &[&str]) -> String {
    let o = run(cmd, args);
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub struct Lab {
    pub pfx: String,
    pub dir: PathBuf,
    namespaces: Vec<String>,
    daemons: Vec<(String, Child)>,
}

impl Lab {
    /// None (after printing SKIP) when not root.
    pub fn new(tag: &str) -> Option<Lab> {
        if !is_root() {
            println!("SKIP: needs root (network namespaces, AF_XDP)");
            return None;
        }
        let pfx = format!("v{tag}{}", std::process::id() % 10_000);
        let dir = std::env::temp_dir().join(format!("{pfx}-lab"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Some(Lab {
            pfx,
            dir,
            namespaces: Vec::new(),
            daemons: Vec::new(),
        })
    }

    /// Full name of a namespace or interface of this lab.
    pub fn name(&self, short: &str) -> String {
        let n = format!("{}{short}", self.pfx);
        assert!(n.len() <= 15, "interface name {n} too long");
        n
    }

    pub fn ns(&mut self, short: &str) -> String {
        let ns = self.name(short);
        must("ip", &["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        must("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    /// A veth pair `short1` in `ns1` and `short2` in `ns2`, both up, IPv6 off, full checksums
    /// (AF_XDP copies frames as they are, partial checksums included).
    pub fn veth(&self, ns1: &str, short1: &str, ns2: &str, short2: &str) {
        let (i1, i2) = (self.name(short1), self.name(short2));
        must(
            "ip",
            &[
                "link", "add", &i1, "netns", ns1, "type", "veth", "peer", "name", &i2, "netns", ns2,
            ],
        );
        for (ns, ifc) in [(ns1, &i1), (ns2, &i2)] {
            self.sh(
                ns,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{ifc}.disable_ipv6=1"),
                ],
            );
            self.sh(ns, &["ethtool", "-K", ifc, "tx", "off"]);
            must("ip", &["-n", ns, "link", "set", ifc, "up"]);
        }
    }

    /// As [`Lab::veth`], with `queues` receive and transmit queues on both ends.
    pub fn veth_mq(&self, ns1: &str, short1: &str, ns2: &str, short2: &str, queues: u32) {
        let (i1, i2) = (self.name(short1), self.name(short2));
        let q = queues.to_string();
        must(
            "ip",
            &[
                "link",
                "add",
                &i1,
                "netns",
                ns1,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                &i2,
                "netns",
                ns2,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
            ],
        );
        for (ns, ifc) in [(ns1, &i1), (ns2, &i2)] {
            self.sh(ns, &["ethtool", "-K", ifc, "tx", "off"]);
            must("ip", &["-n", ns, "link", "set", ifc, "up"]);
        }
    }

    /// Sends [`FLOW_SENDER`]'s 1,000 flows × 5 frames from `ns` out of interface `short`, and
    /// returns how many frames each receive queue of `port` took (from `pmd-rxq-show` of
    /// daemon `d`, once all 5,000 arrived or 10 s passed), in queue order.
    pub fn send_flows_and_count_queues(
        &self,
        d: &str,
        ns: &str,
        short: &str,
        port: &str,
    ) -> Vec<u64> {
        let script = FLOW_SENDER.replace("IFACE", &self.name(short));
        let out = self.sh(ns, &["timeout", "60", "python3", "-c", &script]);
        assert!(
            out.status.success(),
            "sender: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let show = self.ctl_ok(d, &["--format", "json", "pmd-rxq-show"]);
            let v: serde_json::Value = serde_json::from_str(&show).unwrap();
            let q = queue_packets(&v, port);
            if q.iter().sum::<u64>() >= 5000 || Instant::now() > deadline {
                return q;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn addr(&self, ns: &str, short: &str, cidr: &str) {
        must(
            "ip",
            &["-n", ns, "addr", "add", cidr, "dev", &self.name(short)],
        );
    }

    /// Runs a command inside a namespace.
    pub fn sh(&self, ns: &str, args: &[&str]) -> Output {
        let mut a = vec!["netns", "exec", ns];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    pub fn sh_ok(&self, ns: &str, args: &[&str]) -> String {
        let o = self.sh(ns, args);
        assert!(
            o.status.success(),
            "{ns}: {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Starts a vswitchd named `name` inside `ns`, with its own socket and state file.
    pub fn start_daemon(&mut self, name: &str, ns: &str) {
        self.start_daemon_with(name, ns, &[]);
    }

    /// As [`Lab::start_daemon`], with more vswitchd arguments.
    pub fn start_daemon_with(&mut self, name: &str, ns: &str, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_vswitchd")])
            .arg("--socket")
            .arg(self.sock(name))
            .arg("--state")
            .arg(self.dir.join(format!("{name}.json")))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start vswitchd");
        self.daemons.push((name.to_string(), child));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ctl(name, &["version"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("vswitchd {name} did not come up: {}", self.log(name));
    }

    /// Stops daemon `name` with SIGTERM (it must exit cleanly) and starts it again with the same
    /// socket and state file.
    pub fn restart_daemon(&mut self, name: &str, ns: &str) {
        self.restart_daemon_with(name, ns, &[]);
    }

    /// As [`Lab::restart_daemon`], starting it with more vswitchd arguments.
    pub fn restart_daemon_with(&mut self, name: &str, ns: &str, extra: &[&str]) {
        let i = self
            .daemons
            .iter()
            .position(|(n, _)| n == name)
            .expect("daemon");
        let (_, mut c) = self.daemons.remove(i);
        // SAFETY: kill(2) on a child we spawned.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                assert!(st.success(), "vswitchd {name} exited with {st} on SIGTERM");
                break;
            }
            assert!(Instant::now() < deadline, "vswitchd {name} ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.start_daemon_with(name, ns, extra);
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    fn sock(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    pub fn ctl(&self, name: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_vswitchctl"))
            .arg("--socket")
            .arg(self.sock(name))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a request that must fail with a one-line `vswitchctl: ...` error.
    pub fn ctl_fails_in_one_line(&self, name: &str, args: &[&str]) {
        let o = self.ctl(name, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} must fail");
        assert!(
            err.starts_with("vswitchctl: ") && err.trim().lines().count() == 1,
            "{err}"
        );
    }

    pub fn ctl_ok(&self, name: &str, args: &[&str]) -> String {
        let o = self.ctl(name, args);
        assert!(
            o.status.success(),
            "vswitchctl {args:?}: {}\n--- {name} log ---\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log(name)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// True if `dst` answers at least one of `count` pings from `ns`.
    pub fn ping(&self, ns: &str, dst: &str, count: u32) -> bool {
        self.sh(
            ns,
            &[
                "ping",
                "-c",
                &count.to_string(),
                "-i",
                "0.2",
                "-W",
                "1",
                dst,
            ],
        )
        .status
        .success()
    }

    /// Pings until one answers (ARP and learning settle first), bounded by `secs`.
    pub fn ping_eventually(&self, ns: &str, dst: &str, secs: u64) -> bool {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.ping(ns, dst, 1) {
                return true;
            }
        }
        false
    }

    /// A bounded iperf3 TCP run from `client_ns` to `server_ip` (server in `server_ns`);
    /// returns the receiver's bits per second.
    pub fn iperf(&self, server_ns: &str, client_ns: &str, server_ip: &str, reverse: bool) -> f64 {
        let mut server = Command::new("ip")
            .args([
                "netns", "exec", server_ns, "timeout", "20", "iperf3", "-s", "-1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mut args = vec!["timeout", "20", "iperf3", "-c", server_ip, "-t", "2", "-J"];
        if reverse {
            args.push("-R");
        }
        let out = self.sh(client_ns, &args);
        let _ = server.wait();
        assert!(
            out.status.success(),
            "iperf3: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("iperf3 JSON");
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, mut c) in self.daemons.drain(..) {
            // SAFETY: kill(2) on a child we spawned; a stale pid at worst gets ESRCH.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && !matches!(c.try_wait(), Ok(Some(_))) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.drain(..) {
            let _ = run("ip", &["netns", "del", &ns]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends 1,000 UDP flows (source ports 1024..2024, sources 10.80.x.y), 5 frames each, on
/// IFACE through a packet socket.
pub const FLOW_SENDER: &str = r#"
import socket, struct, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("IFACE", 0))
def csum(h):
    v = sum(struct.unpack("!10H", h))
    v = (v >> 16) + (v & 0xffff)
    return (~(v + (v >> 16))) & 0xffff
for rep in range(5):
    for f in range(1000):
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 0, 0, 64, 17, 0,
                                   bytes([10, 80, f >> 8, f & 255]), bytes([10, 81, 0, 1])))
        ip[10:12] = struct.pack("!H", csum(bytes(ip)))
        udp = struct.pack("!HHHH", 1024 + f, 9, 26, 0) + bytes(18)
        s.send(bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0]) + bytes(ip) + udp)
        if f % 32 == 31:
            time.sleep(0.001)  # af_packet's fanout rolls over to the other queue when one is full
"#;

/// Packets received per rx queue of `port`, in queue order, from pmd-rxq-show's JSON.
pub fn queue_packets(v: &serde_json::Value, port: &str) -> Vec<u64> {
    let mut q: Vec<(u64, u64)> = Vec::new();
    let pmds = v.as_array().cloned().unwrap_or_default();
    for pmd in pmds {
        for rxq in pmd["rxqs"].as_array().cloned().unwrap_or_default() {
            if rxq["port"] == port {
                q.push((
                    rxq["queue"].as_u64().unwrap_or(0),
                    rxq["packets"].as_u64().unwrap_or(0),
                ));
            }
        }
    }
    q.sort();
    q.into_iter().map(|(_, p)| p).collect()
}

/// Two queues, all 5,000 frames of [`FLOW_SENDER`], each queue 50 % ± 15 %.
pub fn assert_even_split(per_queue: &[u64]) {
    let total: u64 = per_queue.iter().sum();
    assert_eq!(per_queue.len(), 2, "{per_queue:?}");
    assert!(total >= 5000, "all frames arrived: {per_queue:?}");
    for q in per_queue {
        let share = *q as f64 / total as f64;
        assert!(
            (0.35..=0.65).contains(&share),
            "each queue 50 % ± 15 %: {per_queue:?}"
        );
    }
}

/// Polls `f` every 200 ms until it holds; panics after `secs`.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}
