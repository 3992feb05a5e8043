//! `vswitchctl capture` on a busy port: a sender streams numbered frames through two AF_XDP
//! ports while 1,000 frames are captured as they arrive on one port and 1,000 as they are sent
//! to the other; `tcpdump -r` reads both files back, and every frame is byte for byte the
//! frame the sender made for its number. Needs root (namespaces, veths, AF_XDP).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Lab;

/// Streams up to 200,000 numbered 64-byte frames (or for 30 s) out of IFACE. Frame `n`
/// carries `n` in its UDP payload; `frame(n)` below builds the same bytes.
const STREAM: &str = r#"
import socket, struct, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("IFACE", 0))
end = time.time() + 30
for n in range(200000):
    payload = struct.pack("!I", n) + bytes(14)
    udp = struct.pack("!HHHH", 7000, 7001, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xffff, 0, 64, 17, 0,
                     bytes([10, 99, 0, 1]), bytes([10, 99, 0, 2]))
    try:
        s.send(bytes([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0]) + ip + udp)
    except OSError:
        time.sleep(0.001)
    if n % 64 == 63 and time.time() > end:
        break
"#;

/// The frame the sender made for number `n`.
fn frame(n: u32) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
    let payload: Vec<u8> = n.to_be_bytes().into_iter().chain([0u8; 14]).collect();
    let udp_len = 8 + payload.len() as u16;
    let ip_len = 20 + udp_len;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&((n & 0xffff) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 64, 17, 0, 0, 10, 99, 0, 1, 10, 99, 0, 2]);
    f.extend_from_slice(&7000u16.to_be_bytes());
    f.extend_from_slice(&7001u16.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&payload);
    f
}

/// The frames of a capture file as `tcpdump -r FILE -xx` prints them.
fn tcpdump_frames(file: &std::path::Path) -> Vec<Vec<u8>> {
    let out = Command::new("tcpdump")
        .args(["-r"])
        .arg(file)
        .args(["-nn", "-xx", "-t"])
        .output()
        .expect("tcpdump");
    assert!(
        out.status.success(),
        "tcpdump -r {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        match line.trim_start().strip_prefix("0x") {
            Some(rest) if line.starts_with(char::is_whitespace) => {
                let hex = rest.split_once(':').map_or("", |(_, h)| h);
                let bytes = hex.split_whitespace().flat_map(|w| {
                    (0..w.len())
                        .step_by(2)
                        .map(move |i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
                });
                frames
                    .last_mut()
                    .expect("a header line first")
                    .extend(bytes);
            }
            _ => frames.push(Vec::new()),
        }
    }
    frames
}

/// Starts `vswitchctl capture` and waits until it says it is capturing.
fn start_capture(lab: &Lab, args: &[&str]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vswitchctl"))
        .arg("--socket")
        .arg(lab.dir.join("d.sock"))
        .arg("capture")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(
        line.contains("capturing"),
        "vswitchctl capture said: {line}"
    );
    child
}

/// Waits (bounded) for a capture to finish; its summary line.
fn finish(mut child: Child, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("capture did not finish in {secs} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "capture failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn capture_on_a_busy_port_reads_back_identical_frames() {
    let Some(mut lab) = Lab::new("c") else { return };
    let sw = lab.ns("sw");
    let a = lab.ns("a");
    let b = lab.ns("b");
    lab.veth(&sw, "a0", &a, "a1");
    lab.veth(&sw, "b0", &b, "b1");
    lab.start_daemon("d", &sw);
    lab.ctl_ok("d", &["add-br", "br0"]);
    for (p, ifc) in [("pa", "a0"), ("pb", "b0")] {
        let iface = format!("iface={}", lab.name(ifc));
        lab.ctl_ok("d", &["add-port", "br0", p, "type=afxdp", &iface]);
    }
    let (rx_file, tx_file) = (lab.dir.join("pa-rx.pcapng"), lab.dir.join("pb-tx.pcapng"));
    let rx = start_capture(
        &lab,
        &[
            "pa",
            "--direction",
            "rx",
            "--count",
            "1000",
            "-w",
            rx_file.to_str().unwrap(),
        ],
    );
    let tx = start_capture(
        &lab,
        &[
            "pb",
            "--direction",
            "tx",
            "--count",
            "1000",
            "--seconds",
            "60",
            "-w",
            tx_file.to_str().unwrap(),
        ],
    );
    let script = STREAM.replace("IFACE", &lab.name("a1"));
    let mut sender = Command::new("ip")
        .args([
            "netns", "exec", &a, "timeout", "40", "python3", "-c", &script,
        ])
        .spawn()
        .unwrap();
    let rx_summary = finish(rx, 60);
    let tx_summary = finish(tx, 60);
    let _ = sender.kill();
    let _ = sender.wait();
    println!("CAPTURE {rx_summary}CAPTURE {tx_summary}");
    assert!(
        rx_summary.starts_with("1000 frames captured on pa"),
        "{rx_summary}"
    );
    assert!(
        tx_summary.starts_with("1000 frames captured on pb"),
        "{tx_summary}"
    );

    for file in [&rx_file, &tx_file] {
        let frames = tcpdump_frames(file);
        assert_eq!(frames.len(), 1000, "{}", file.display());
        let mut last = None;
        for f in &frames {
            let n = u32::from_be_bytes(f[42..46].try_into().unwrap());
            assert_eq!(f, &frame(n), "frame {n} in {}", file.display());
            assert!(last.is_none_or(|l| n > l), "frames in order");
            last = Some(n);
        }
    }
    // The daemon stopped both captures: a new one can start, and nothing is left running.
    let e = lab.ctl("d", &["capture-read", "pa"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("no capture is running on pa"));
}
