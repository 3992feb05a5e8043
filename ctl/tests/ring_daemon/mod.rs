//! A real `vswitchd` driven by the real `vswitchctl` (no root needed), for the ring-port
//! integration tests.
#![allow(dead_code)]

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("vswitch-it-{tag}-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&d).unwrap();
    d
}

/// A running `vswitchd`, killed (and its temp dir removed) when dropped.
pub struct Daemon {
    pub child: Option<Child>,
    pub socket: PathBuf,
}

impl Daemon {
    pub fn start(dir: &Path) -> Daemon {
        let socket = dir.join("run").join("vswitchd.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_vswitchd"))
            .arg("--socket")
            .arg(&socket)
            .arg("--state")
            .arg(dir.join("state.json"))
            .arg("--pidfile")
            .arg(dir.join("vswitchd.pid"))
            .args(["--log", "warn"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn vswitchd");
        let mut d = Daemon {
            child: Some(child),
            socket,
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if UnixStream::connect(&d.socket).is_ok() {
                break;
            }
            if let Some(status) = d.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("vswitchd exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "vswitchd did not open its socket in time"
            );
            sleep(Duration::from_millis(50));
        }
        d
    }

    pub fn ctl(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_vswitchctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run vswitchctl");
        eprintln!(
            "vswitchctl {args:?} -> {}\nstdout: {}stderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "vswitchctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            !out.status.success(),
            "vswitchctl {args:?} should have failed"
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("vswitchctl: "), "{err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "one-line error expected: {err}"
        );
        err
    }

    pub fn show_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["--format", "json", "show"]))
            .expect("show --format json parses")
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("vswitchd did not exit after SIGTERM");
            }
            sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "vswitchd exit status after SIGTERM: {status}"
        );
        assert!(!self.socket.exists(), "socket file removed at exit");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
