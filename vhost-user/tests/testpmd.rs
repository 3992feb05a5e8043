//! The port against DPDK's `net_virtio_user` front-end in `dpdk-testpmd` (no VM needed).
//!
//! Needs root and `dpdk-testpmd` (Debian package `dpdk-dev`); otherwise every test prints
//! "SKIP: ..." and passes. testpmd runs with `--no-huge -m 512` (memfd-backed memory, so no
//! hugepages; `--in-memory` is refused with `--no-huge`, so each run gets its own
//! `--file-prefix` and its runtime directory is removed afterwards). The tests run one at a time (a global lock):
//! the machine may have only two cores.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use port_api::{Batch, Packet, PacketPool, Port};
use testpmd::Testpmd;
use vhost_user::fuzzing::status_of;
use vhost_user::{Mode, VhostUserOptions, VhostUserPort};

const TIMEOUT: Duration = Duration::from_secs(20);
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn skip() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("dpdk-testpmd").is_file()))
        .unwrap_or(false);
    if !found {
        return Some("dpdk-testpmd not installed (apt-get install dpdk-dev)".into());
    }
    None
}

macro_rules! skip_unless_ready {
    () => {
        if let Some(why) = skip() {
            println!("SKIP: {why}");
            return;
        }
    };
}

/// A socket path in a fresh directory, removed on drop.
struct SockDir(PathBuf);

impl SockDir {
    fn new(tag: &str) -> SockDir {
        let dir = std::env::temp_dir().join(format!("vsu-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        SockDir(dir)
    }
    fn sock(&self) -> PathBuf {
        self.0.join("vhu.sock")
    }
}

impl Drop for SockDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// testpmd with one `net_virtio_user` port on `sock`: `vdev` is appended to its arguments,
/// `fwd` are testpmd's own. Killed on drop.
fn start_testpmd(tag: &str, sock: &Path, vdev: &str, fwd: &[&str]) -> Testpmd {
    let mut args = vec!["--nb-cores=1"];
    args.extend_from_slice(fwd);
    Testpmd::start(&format!("u{tag}"), "0-1", &[sock], vdev, &args).expect("spawn dpdk-testpmd")
}

/// Polls `qids` until `want` frames arrived or the time is up; checks each frame is testpmd's
/// txonly frame (64 bytes, IPv4, UDP). Returns frames per queue.
fn receive(port: &VhostUserPort, qids: &[usize], want: usize, pmd: &mut Testpmd) -> Vec<usize> {
    let mut pool = PacketPool::with_capacity(256);
    let mut batch = Batch::new();
    let mut got = vec![0usize; qids.len()];
    let deadline = Instant::now() + TIMEOUT;
    while got.iter().sum::<usize>() < want {
        assert!(
            Instant::now() < deadline,
            "only {got:?} frames in {TIMEOUT:?}; status {:?}\ntestpmd output:\n{}",
            port.status(),
            pmd.output()
        );
        pmd.check_alive();
        for (i, &q) in qids.iter().enumerate() {
            let n = port.rx_burst(q, &mut pool, &mut batch);
            for p in batch.iter() {
                let d = p.data();
                assert_eq!(d.len(), 64, "frame length");
                assert_eq!(&d[12..14], &[0x08, 0x00], "ethertype IPv4");
                assert_eq!(d[23], 17, "IP protocol UDP");
            }
            got[i] += n;
            batch.recycle(&mut pool);
        }
        if got.iter().sum::<usize>() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

fn wait_for(what: &str, port: &VhostUserPort, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; status {:?}",
            port.status()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn udp_frame(seq: u32) -> Packet {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&50u16.to_be_bytes());
    f[22] = 64;
    f[23] = 17;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f[42..46].copy_from_slice(&seq.to_be_bytes());
    let mut p = Packet::new();
    p.set_data(&f);
    p
}

#[test]
fn client_mode_receives_from_testpmd_and_reconnects() {
    skip_unless_ready!();
    let _g = serial();
    let dir = SockDir::new("client");
    let vdev = "server=1,queue_size=256";
    let txonly = ["--forward-mode=txonly", "--txpkts=64"];

    let mut pmd = start_testpmd("a", &dir.sock(), vdev, &txonly);
    let mut opts = VhostUserOptions::new(dir.sock(), Mode::Client);
    opts.max_queue_pairs = 2;
    let port = VhostUserPort::new("vhu0", opts).unwrap();
    assert_eq!(port.kind(), "vhost-user");
    assert_eq!(port.n_rxq(), 2);

    let got = receive(&port, &[0, 1], 2000, &mut pmd);
    println!("first testpmd: {got:?} frames, status {:?}", port.status());
    assert_eq!(status_of(&port, "connected"), "yes");
    assert!(status_of(&port, "feature_names").contains("VERSION_1"));
    assert!(port.link_up());

    // The front-end goes away: the port notices, then reconnects to the next one by itself.
    pmd.stop();
    wait_for("disconnect", &port, || !port.is_connected());
    assert!(!port.link_up());
    // testpmd leaves its socket file behind (QEMU would replace it).
    let _ = std::fs::remove_file(dir.sock());
    let mut pmd = start_testpmd("b", &dir.sock(), vdev, &txonly);
    let got = receive(&port, &[0, 1], 2000, &mut pmd);
    println!("second testpmd: {got:?} frames, status {:?}", port.status());
    assert_eq!(status_of(&port, "connections"), "2");
    assert_eq!(status_of(&port, "broken"), "none");
    let stats = port.stats();
    assert!(
        stats.rx_packets >= 4000 && stats.rx_bytes == stats.rx_packets * 64,
        "{stats:?}"
    );
    pmd.stop();
}

#[test]
fn client_mode_transmits_to_testpmd() {
    skip_unless_ready!();
    let _g = serial();
    let dir = SockDir::new("tx");
    let mut pmd = start_testpmd(
        "t",
        &dir.sock(),
        "server=1,queue_size=256",
        &["--forward-mode=rxonly"],
    );
    let port = VhostUserPort::new("vhu1", VhostUserOptions::new(dir.sock(), Mode::Client)).unwrap();
    wait_for("queues", &port, || port.running_queue_pairs() == 1);

    let mut pool = PacketPool::with_capacity(64);
    let mut seq = 0;
    // testpmd may still be (re)starting its ports when our queue first runs, and a restart
    // resets the ring (what was in it is gone). Warm up until it receives, let its counters
    // settle, then count from there.
    let deadline = Instant::now() + TIMEOUT;
    while pmd.counter("RX-packets:").unwrap_or(0) == 0 {
        assert!(
            Instant::now() < deadline,
            "testpmd never received:\n{}",
            pmd.output()
        );
        send(&port, &mut pool, &mut seq, 32);
        std::thread::sleep(Duration::from_millis(50));
    }
    let rx0 = settled_counter(&pmd);
    let sent0 = port.stats().tx_packets;

    let want = 10_000u64;
    let deadline = Instant::now() + TIMEOUT;
    while port.stats().tx_packets - sent0 < want {
        assert!(Instant::now() < deadline, "sent only {:?}", port.stats());
        send(&port, &mut pool, &mut seq, 32);
        // Let testpmd's core catch up now and then.
        if seq % 1024 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let sent = port.stats().tx_packets - sent0;
    // testpmd prints its port counters every second.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let rx = pmd.counter("RX-packets:").unwrap_or(0) - rx0;
        if rx >= sent {
            println!(
                "port sent {sent}, testpmd received {rx}; status {:?}",
                port.status()
            );
            assert_eq!(rx, sent);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "testpmd saw {rx} of {sent}:\n{}",
            pmd.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    pmd.stop();
}

/// Sends `n` numbered frames to the guest.
fn send(port: &VhostUserPort, pool: &mut PacketPool, seq: &mut u32, n: usize) {
    let mut batch = Batch::new();
    for _ in 0..n {
        *seq += 1;
        let _ = batch.push(udp_frame(*seq));
    }
    port.tx_burst(&mut batch, pool);
    assert!(batch.is_empty());
}

/// testpmd's RX counter once two of its statistics blocks printed after this call agree.
fn settled_counter(pmd: &Testpmd) -> u64 {
    pmd.settled("RX-packets:", TIMEOUT)
        .unwrap_or_else(|| panic!("testpmd counters never settled\n{}", pmd.output()))
}

#[test]
fn server_mode_accepts_testpmd() {
    skip_unless_ready!();
    let _g = serial();
    let dir = SockDir::new("server");
    let port = VhostUserPort::new("vhu2", VhostUserOptions::new(dir.sock(), Mode::Server)).unwrap();
    assert!(dir.sock().exists(), "server mode creates the socket");
    let txonly = ["--forward-mode=txonly", "--txpkts=64"];
    let mut pmd = start_testpmd("s", &dir.sock(), "server=0,queue_size=256", &txonly);
    let got = receive(&port, &[0], 1000, &mut pmd);
    println!("server mode: {got:?} frames, status {:?}", port.status());
    assert_eq!(status_of(&port, "mode"), "server");
    drop(pmd);
    wait_for("disconnect", &port, || !port.is_connected());
    // A second front-end is accepted after the first one left.
    let mut pmd = start_testpmd("s2", &dir.sock(), "server=0,queue_size=256", &txonly);
    receive(&port, &[0], 1000, &mut pmd);
    drop(pmd);
    drop(port);
    assert!(
        !dir.sock().exists(),
        "dropping a server-mode port removes its socket"
    );
}

#[test]
fn multiqueue_receives_on_both_queues() {
    skip_unless_ready!();
    let _g = serial();
    let dir = SockDir::new("mq");
    let mut pmd = start_testpmd(
        "m",
        &dir.sock(),
        "server=1,queue_size=256,queues=2",
        &["--forward-mode=txonly", "--txpkts=64", "--rxq=2", "--txq=2"],
    );
    let port = VhostUserPort::new("vhu3", VhostUserOptions::new(dir.sock(), Mode::Client)).unwrap();
    let got = receive(&port, &[0, 1, 2], 4000, &mut pmd);
    println!("multiqueue: {got:?} frames, status {:?}", port.status());
    assert!(
        got[0] > 0 && got[1] > 0,
        "both queues carry traffic: {got:?}"
    );
    assert_eq!(got[2], 0);
    assert_eq!(status_of(&port, "queue_pairs"), "2/8");
}
