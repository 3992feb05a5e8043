//! Drives `dpdk-testpmd` (Debian package `dpdk-dev`) as a vhost-user front-end and traffic
//! generator: `net_virtio_user` ports, no hugepages (`--no-huge`), a unique `--file-prefix`,
//! output collected for counters, killed and cleaned up on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// The first line of each periodic statistics block.
const BLOCK_HEADER: &str = "Port statistics";

/// True if `dpdk-testpmd` is on PATH.
pub fn available() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("dpdk-testpmd").is_file()))
        .unwrap_or(false)
}

pub struct Testpmd {
    child: Child,
    out: Arc<Mutex<Output>>,
    prefix: String,
    /// Sockets testpmd created (`server=1`), removed when it stops.
    own_socks: Vec<PathBuf>,
}

/// What testpmd printed: the tail of its lines, and how many statistics blocks it has begun.
#[derive(Default)]
struct Output {
    lines: Vec<String>,
    /// "Port statistics" headers seen since the start (the tail may have dropped some).
    blocks: u64,
    /// When the header of each recent block was read (block number, wall time), newest last.
    begun: std::collections::VecDeque<(u64, SystemTime)>,
}

/// One complete periodic statistics block: its number since testpmd started (1, 2, ...), the
/// sum over ports of the value after a key, and when its first line was read (testpmd writes
/// its output unbuffered, so that is when it took the counts, to within milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub block: u64,
    pub value: u64,
    pub begun: Option<SystemTime>,
}

impl Testpmd {
    /// Starts testpmd with one `net_virtio_user` port per socket (`vdev_extra` is appended to
    /// each vdev, e.g. `server=1,queue_size=256`), then testpmd arguments `args` after `--`.
    /// `lcores` is the EAL core list (e.g. "0-1": one main and one forwarding core).
    pub fn start(
        tag: &str,
        lcores: &str,
        socks: &[&Path],
        vdev_extra: &str,
        args: &[&str],
    ) -> std::io::Result<Testpmd> {
        let prefix = format!("vsw{}{tag}", std::process::id());
        let mut cmd = Command::new("dpdk-testpmd");
        cmd.args([
            "-l",
            lcores,
            "--no-pci",
            "--no-huge",
            "-m",
            "512",
            "--log-level=lib.eal:error",
        ])
        .arg(format!("--file-prefix={prefix}"));
        for (i, s) in socks.iter().enumerate() {
            // A killed testpmd leaves its server socket behind; a new one cannot bind over it.
            if vdev_extra.contains("server=1") {
                let _ = std::fs::remove_file(s);
            }
            cmd.arg("--vdev").arg(format!(
                "net_virtio_user{i},path={},{vdev_extra}",
                s.display()
            ));
        }
        cmd.arg("--")
            .args(["--total-num-mbufs=8192", "--stats-period=1"])
            .args(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let out = Arc::new(Mutex::new(Output::default()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                    // Keep the tail only: stats print every period.
                    if o.lines.len() > 20_000 {
                        o.lines.drain(..10_000);
                    }
                    if line.contains(BLOCK_HEADER) {
                        o.blocks += 1;
                        let n = o.blocks;
                        if o.begun.len() >= 256 {
                            o.begun.pop_front();
                        }
                        o.begun.push_back((n, SystemTime::now()));
                    }
                    o.lines.push(line);
                }
            });
        }
        Ok(Testpmd {
            child,
            out,
            prefix,
            own_socks: if vdev_extra.contains("server=1") {
                socks.iter().map(|s| s.to_path_buf()).collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Sum over ports of the value printed after `key` (e.g. "RX-packets:") in the last complete
    /// periodic statistics block (complete once the next one begins). None before that.
    ///
    /// The blocks come every `--stats-period` as testpmd measures it, which is not a second of
    /// wall time everywhere (two on some machines), and a value is only as fresh as its block:
    /// to wait for counts to stop moving, use [`Testpmd::settled`], not a wall-clock interval.
    pub fn counter(&self, key: &str) -> Option<u64> {
        self.reading(key).map(|r| r.value)
    }

    /// The last complete statistics block's value for `key`, with that block's number.
    pub fn reading(&self, key: &str) -> Option<Reading> {
        let o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let lines = &o.lines;
        let starts: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains(BLOCK_HEADER))
            .map(|(i, _)| i)
            .collect();
        // A block is complete once the next one begins.
        if starts.len() < 2 {
            return None;
        }
        let (start, block) = (starts[starts.len() - 2], o.blocks - 1);
        let end = starts
            .iter()
            .find(|s| **s > start)
            .copied()
            .unwrap_or(lines.len());
        let mut sum = 0;
        let mut found = false;
        for l in &lines[start..end] {
            let value = l
                .find(key)
                .and_then(|i| l[i + key.len()..].split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(v) = value {
                sum += v;
                found = true;
            }
        }
        let begun = o.begun.iter().find(|(b, _)| *b == block).map(|(_, t)| *t);
        found.then_some(Reading {
            block,
            value: sum,
            begun,
        })
    }

    /// The value of `key` once it has stopped moving: two consecutive statistics blocks, both
    /// begun after this call, print the same value. None if that does not happen within
    /// `timeout` (or testpmd prints no statistics).
    pub fn settled(&self, key: &str, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        let after = self.out.lock().unwrap_or_else(|e| e.into_inner()).blocks;
        let mut last: Option<Reading> = None;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            let Some(r) = self.reading(key) else { continue };
            if r.block <= after || last.is_some_and(|l| l.block == r.block) {
                continue;
            }
            if let Some(l) = last
                && l.block + 1 == r.block
                && l.value == r.value
            {
                return Some(r.value);
            }
            last = Some(r);
        }
        None
    }

    /// Waits until the value of `key` in a statistics block begun after this call exceeds
    /// `min`; returns it, or None after `timeout`.
    pub fn wait_above(&self, key: &str, min: u64, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        let after = self.out.lock().unwrap_or_else(|e| e.into_inner()).blocks;
        while Instant::now() < deadline {
            if let Some(r) = self.reading(key)
                && r.block > after
                && r.value > min
            {
                return Some(r.value);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn output(&self) -> String {
        let o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let from = o.lines.len().saturating_sub(60);
        o.lines[from..].join("\n")
    }

    /// Every line kept (the tail of a long run).
    pub fn output_all(&self) -> String {
        let o = self.out.lock().unwrap_or_else(|e| e.into_inner());
        o.lines.join("\n")
    }

    /// Panics with testpmd's output if it exited on its own.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("testpmd exited ({status}):\n{}", self.output_all());
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
        for s in &self.own_socks {
            let _ = std::fs::remove_file(s);
        }
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        self.stop();
    }
}
