//! Drives `dpdk-testpmd` (Debian package `dpdk-dev`) as a vhost-user front-end and traffic
//! generator: `net_virtio_user` ports, no hugepages (`--no-huge`), a unique `--file-prefix`,
//! output collected for counters, killed and cleaned up on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// True if `dpdk-testpmd` is on PATH.
pub fn available() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("dpdk-testpmd").is_file()))
        .unwrap_or(false)
}

pub struct Testpmd {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    prefix: String,
    socks: Vec<PathBuf>,
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
        let lines = Arc::new(Mutex::new(Vec::new()));
        for out in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
                    // Keep the tail only: stats print every second.
                    if l.len() > 20_000 {
                        l.drain(..10_000);
                    }
                    l.push(line);
                }
            });
        }
        Ok(Testpmd {
            child,
            lines,
            prefix,
            socks: socks.iter().map(|s| s.to_path_buf()).collect(),
        })
    }

    /// Sum over ports of the last value printed after `key` (e.g. "RX-packets:") in the
    /// periodic per-port statistics. None before the first statistics block.
    pub fn counter(&self, key: &str) -> Option<u64> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        // Each block starts with "Port statistics": sum the key over the last complete block.
        let starts: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.contains("Port statistics"))
            .map(|(i, _)| i)
            .collect();
        let start = if starts.len() >= 2 {
            starts[starts.len() - 2]
        } else {
            *starts.first()?
        };
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
        found.then_some(sum)
    }

    pub fn output(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let from = lines.len().saturating_sub(60);
        lines[from..].join("\n")
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
        for s in &self.socks {
            let _ = std::fs::remove_file(s);
        }
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        self.stop();
    }
}
