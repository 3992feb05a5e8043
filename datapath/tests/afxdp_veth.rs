//! AF_XDP port on a real veth pair in a private network namespace (root only).
//!
//! Creates netns `vsafx<pid><tag>` with veth `a` <-> `b`, opens an [`AfXdpPort`] on `a`, sends
//! frames into `b` with an AF_PACKET socket and checks `rx_burst` returns them byte for byte,
//! then `tx_burst`s frames out of `a` and checks they arrive on `b`. The namespace is deleted at
//! the end, also on failure.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use datapath::afxdp::{AfXdpOptions, AfXdpPort, XdpModeRequest};
use datapath::packet::{Batch, MAX_BURST, PacketPool};
use datapath::port::Port;

const ETHERTYPE: u16 = 0x88b5;
const N_RX: usize = 100;
const N_TX: usize = 80;
const TIMEOUT: Duration = Duration::from_secs(5);

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the namespace (and the veth pair in it) when dropped.
struct Netns(String);

impl Netns {
    fn create(tag: &str) -> Netns {
        let name = format!("vsafx{}{tag}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        let n = ns.0.as_str();
        run(&[
            "ip",
            "netns",
            "exec",
            n,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        run(&[
            "ip", "-n", n, "link", "add", "name", "a", "type", "veth", "peer", "name", "b",
        ]);
        run(&["ip", "-n", n, "link", "set", "dev", "a", "up"]);
        run(&["ip", "-n", n, "link", "set", "dev", "b", "up"]);
        ns
    }

    /// Moves the calling thread into the namespace.
    fn enter(&self) {
        let path = CString::new(format!("/var/run/netns/{}", self.0)).unwrap();
        // SAFETY: `path` is a valid C string; the result is checked.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        assert!(
            fd >= 0,
            "open {path:?}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: setns on a namespace fd affects only the calling thread's network namespace.
        let ret = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            ret,
            0,
            "setns {}: {}",
            self.0,
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// AF_PACKET socket bound to one interface and our ethertype.
struct RawSock(OwnedFd);

impl RawSock {
    fn open(ifname: &str) -> RawSock {
        let proto = ETHERTYPE.to_be();
        // SAFETY: plain socket(2); checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                proto.into(),
            )
        };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fresh descriptor owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let c_name = CString::new(ifname).unwrap();
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        assert!(ifindex != 0, "no interface {ifname}");
        // SAFETY: sockaddr_ll is plain data; all zeroes is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the given length.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            ret,
            0,
            "bind AF_PACKET to {ifname}: {}",
            std::io::Error::last_os_error()
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: `tv` is a valid timeval of the given length.
        let ret = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        assert_eq!(ret, 0);
        RawSock(fd)
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is valid for reads of its length.
        let ret = unsafe { libc::send(self.0.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            ret,
            frame.len() as isize,
            "AF_PACKET send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// One incoming frame, or None after the 100 ms receive timeout.
    fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 4096];
        // SAFETY: sockaddr_ll is plain data; all zeroes is valid.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: `buf` and `from` are valid for writes of the given lengths.
        let n = unsafe {
            libc::recvfrom(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut from_len,
            )
        };
        if n < 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
            return None;
        }
        buf.truncate(n as usize);
        Some(buf)
    }
}

/// A broadcast test frame: ethertype 0x88b5, `tag`, sequence number, then a pattern; lengths vary.
fn frame(seq: usize, tag: u8) -> Vec<u8> {
    let len = 60 + (seq * 37) % 1400;
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, tag]);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.push(tag);
    f.extend_from_slice(&(seq as u32).to_be_bytes());
    while f.len() < len {
        f.push((seq + f.len()) as u8);
    }
    f
}

fn ethertype(f: &[u8]) -> u16 {
    if f.len() < 14 {
        0
    } else {
        u16::from_be_bytes([f[12], f[13]])
    }
}

/// How a case drives the port.
#[derive(Clone, Copy)]
struct Case {
    tag: &'static str,
    mode: XdpModeRequest,
    /// UMEM size; 64 gives 32-entry rings, so 100 frames need fill-ring refills and TX needs
    /// completion reaping.
    frame_count: u32,
    /// Send in chunks and wait for each to arrive before the next (needed with tiny rings).
    lockstep: bool,
}

fn run_case(case: Case) {
    let tag = case.tag;
    if !is_root() {
        println!("SKIP: needs root (afxdp_veth {tag})");
        return;
    }
    let ns = Netns::create(tag);
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter();
            exercise_port(&ns, case);
        });
    });
    // The XDP program must be gone once the port is dropped.
    let out = Command::new("ip")
        .args(["-n", &ns.0, "link", "show", "dev", "a"])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&out.stdout);
    assert!(
        !link.contains("xdp"),
        "XDP program still attached after drop: {link}"
    );
}

/// Appends frames from `sock` to `into` until it holds `target`, or the timeout.
fn collect(sock: &RawSock, into: &mut Vec<Vec<u8>>, target: usize) {
    let deadline = Instant::now() + TIMEOUT;
    while into.len() < target && Instant::now() < deadline {
        if let Some(f) = sock.recv() {
            into.push(f);
        }
    }
}

fn exercise_port(ns: &Netns, case: Case) {
    let Case {
        tag,
        mode,
        frame_count,
        lockstep,
    } = case;
    let chunk_len = if lockstep { 16 } else { N_RX };
    let opts = AfXdpOptions {
        mode,
        frame_count,
        ..Default::default()
    };
    let port = AfXdpPort::open("afx0", "a", opts).unwrap_or_else(|e| panic!("open: {e}"));
    println!(
        "[{tag}] AF_XDP port on veth: xdp_mode={} status={:?}",
        port.xdp_mode(),
        port.status()
    );
    match mode {
        XdpModeRequest::Generic => assert_eq!(port.xdp_mode(), "generic"),
        XdpModeRequest::Native => assert_eq!(port.xdp_mode(), "native"),
        XdpModeRequest::Auto => {}
    }
    assert_eq!(port.kind(), "afxdp");
    assert!(port.link_up(), "veth a should be up");
    let mut pool = PacketPool::with_capacity(4 * MAX_BURST);

    // Receive: frames sent into `b` by another thread come out of rx_burst on `a`.
    let sent: Vec<Vec<u8>> = (0..N_RX).map(|i| frame(i, 0xa1)).collect();
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut others = 0;
    let seen = AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            ns.enter();
            let sock = RawSock::open("b");
            let deadline = Instant::now() + TIMEOUT;
            for (i, chunk) in sent.chunks(chunk_len).enumerate() {
                for f in chunk {
                    sock.send(f);
                }
                let done = i * chunk_len + chunk.len();
                while seen.load(Ordering::Relaxed) < done && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let deadline = Instant::now() + TIMEOUT;
        let mut batch = Batch::new();
        while got.len() < N_RX && Instant::now() < deadline {
            if port.rx_burst(0, &mut pool, &mut batch) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            for p in batch.drain() {
                if ethertype(p.data()) == ETHERTYPE {
                    got.push(p.data().to_vec());
                } else {
                    others += 1;
                }
                pool.put(p);
            }
            seen.store(got.len(), Ordering::Relaxed);
        }
    });
    // Anything extra (duplicates) would show up now.
    std::thread::sleep(Duration::from_millis(100));
    let mut batch = Batch::new();
    port.rx_burst(0, &mut pool, &mut batch);
    let extra = batch.len();
    batch.recycle(&mut pool);
    println!(
        "[{tag}] rx: {} of {N_RX} test frames, {others} other frames, {extra} extra",
        got.len()
    );
    assert_eq!(got.len(), N_RX, "frames received by rx_burst");
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(g, s, "frame {i} differs");
    }
    assert_eq!(extra, 0);
    let stats = port.stats();
    assert_eq!(stats.rx_packets, (N_RX + others) as u64);
    assert_eq!(stats.rx_dropped, 0);

    // Transmit: frames tx_burst'ed on `a` arrive on `b`.
    let sock = RawSock::open("b");
    let to_send: Vec<Vec<u8>> = (0..N_TX).map(|i| frame(i, 0xb2)).collect();
    let mut received = Vec::new();
    let mut queued = 0;
    for chunk in to_send.chunks(MAX_BURST - 7) {
        let mut batch = Batch::new();
        for f in chunk {
            let mut p = pool.get();
            assert!(p.set_data(f));
            batch.push(p).ok().unwrap();
        }
        assert_eq!(
            port.tx_burst(&mut batch, &mut pool),
            chunk.len(),
            "tx_burst accepted"
        );
        assert!(batch.is_empty());
        queued += chunk.len();
        if lockstep {
            collect(&sock, &mut received, queued);
        }
    }
    collect(&sock, &mut received, N_TX);
    println!(
        "[{tag}] tx: {} of {N_TX} frames seen on the peer",
        received.len()
    );
    assert_eq!(received.len(), N_TX, "frames seen on the peer");
    for (i, (r, s)) in received.iter().zip(&to_send).enumerate() {
        assert_eq!(r, s, "transmitted frame {i} differs");
    }
    let stats = port.stats();
    assert_eq!(stats.tx_packets, N_TX as u64);
    assert_eq!(
        stats.tx_bytes,
        to_send.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(stats.tx_dropped, 0);
    println!("[{tag}] stats {stats:?}");
    let status = port.status();
    println!("[{tag}] status {status:?}");
    let field = |k: &str| {
        status
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("need_wakeup"), "yes");
    // Copy mode sends only from sendto, so the kernel keeps asking for a kick.
    assert!(
        field("tx_kicks").parse::<u64>().unwrap_or(0) > 0,
        "{status:?}"
    );
    assert_eq!(pool.grown, 0);
}

#[test]
fn afxdp_veth_best_effort() {
    run_case(Case {
        tag: "be",
        mode: XdpModeRequest::Auto,
        frame_count: 4096,
        lockstep: false,
    });
}

#[test]
fn afxdp_veth_generic() {
    run_case(Case {
        tag: "gen",
        mode: XdpModeRequest::Generic,
        frame_count: 4096,
        lockstep: false,
    });
}

/// 32-entry rings: receive wraps the fill ring three times, transmit has to reap completions.
#[test]
fn afxdp_veth_small_umem() {
    run_case(Case {
        tag: "small",
        mode: XdpModeRequest::Native,
        frame_count: 64,
        lockstep: true,
    });
}
