//! vhost-user ring benchmark without I/O: one thread plays both the guest driver (over anonymous
//! memory, `vhost_user::fuzzing::MockGuest`) and the device side, moving 64-byte frames from a
//! guest transmit ring into pool packets (`dequeue_burst`) and from those into a guest receive
//! ring (`enqueue_burst`), in bursts of 32. It measures the CPU work of our ring code alone:
//! everything stays in this core's cache, unlike a real guest on another core.
//!
//! Usage: vhost-bench [--seconds S] [--packets N]
//! `--packets N` runs exactly N packets for instruction counts under callgrind
//! (`bench/instructions.sh --vhost`), which counts only `device_dequeue` and `device_enqueue`.

use std::time::{Duration, Instant};

use bench::cli::Args;
use bench::tsc;
use port_api::{Batch, MAX_BURST, PacketPool};
use vhost_user::fuzzing::MockGuest;
use vhost_user::ring::SplitRing;
use vhost_user::rxtx::{Scratch, dequeue_burst, enqueue_burst};
use vhost_user::stats::QueueStats;

const RING: u16 = 256;
const HDR: usize = 12;
const FRAME: usize = 64;
const BUF: u64 = 2048;
const F_WRITE: u16 = 2;

struct Side {
    guest: MockGuest,
    ring: SplitRing,
    scratch: Scratch,
    stats: QueueStats,
    next: u16,
}

impl Side {
    /// A ring whose descriptor i is buffer i: readable `len` bytes (guest transmit) or writable
    /// (guest receive).
    fn new(writable: bool) -> Side {
        let guest = MockGuest::new(
            MockGuest::BUFFERS as usize + RING as usize * BUF as usize,
            RING,
        );
        let frame: Vec<u8> = (0..HDR + FRAME)
            .map(|i| if i < HDR { 0 } else { i as u8 })
            .collect();
        for i in 0..RING {
            let addr = MockGuest::BUFFERS + u64::from(i) * BUF;
            if writable {
                guest.write_desc(i, addr, BUF as u32, F_WRITE, 0);
            } else {
                guest.write(addr, &frame);
                guest.write_desc(i, addr, (HDR + FRAME) as u32, 0, 0);
            }
        }
        let ring = guest.ring(false, true, true);
        Side {
            guest,
            ring,
            scratch: Scratch::default(),
            stats: QueueStats::default(),
            next: 0,
        }
    }

    /// The driver makes the next burst of chains available.
    fn post(&mut self) {
        let heads: [u16; MAX_BURST] = std::array::from_fn(|i| (self.next + i as u16) % RING);
        self.guest.publish(&heads);
        self.next = (self.next + MAX_BURST as u16) % RING;
    }
}

#[inline(never)]
fn device_dequeue(s: &mut Side, pool: &mut PacketPool, out: &mut Batch) -> usize {
    dequeue_burst(&mut s.ring, &mut s.scratch, pool, out, &s.stats).done
}

#[inline(never)]
fn device_enqueue(s: &mut Side, pool: &mut PacketPool, pkts: &mut Batch) -> usize {
    enqueue_burst(&mut s.ring, &mut s.scratch, pkts, pool, &s.stats).done
}

/// One burst each way; returns the TSC cycles spent in the device side (not the mock driver).
fn round(tx: &mut Side, rx: &mut Side, pool: &mut PacketPool, batch: &mut Batch) -> u64 {
    tx.post();
    rx.post();
    let t0 = tsc::now();
    let got = device_dequeue(tx, pool, batch);
    let sent = device_enqueue(rx, pool, batch);
    let spent = tsc::now() - t0;
    assert_eq!(
        (got, sent),
        (MAX_BURST, MAX_BURST),
        "every frame must cross"
    );
    spent
}

fn main() {
    let args = Args::from_env();
    let seconds = args.value::<f64>("--seconds").unwrap_or(2.0);
    let packets = args.value::<u64>("--packets");

    let (mut tx, mut rx) = (Side::new(false), Side::new(true));
    let mut pool = PacketPool::with_capacity(256);
    let mut batch = Batch::new();
    for _ in 0..16 {
        let _ = round(&mut tx, &mut rx, &mut pool, &mut batch);
    }
    let t0 = Instant::now();
    let mut rounds = 0u64;
    let mut cycles = 0u64;
    match packets {
        Some(n) => {
            for _ in 0..n.div_ceil(MAX_BURST as u64) {
                cycles += round(&mut tx, &mut rx, &mut pool, &mut batch);
                rounds += 1;
            }
        }
        None => {
            let deadline = t0 + Duration::from_secs_f64(seconds);
            while Instant::now() < deadline {
                for _ in 0..64 {
                    cycles += round(&mut tx, &mut rx, &mut pool, &mut batch);
                }
                rounds += 64;
            }
        }
    }
    let pkts = rounds * MAX_BURST as u64;
    let ns = t0.elapsed().as_nanos() as f64;
    println!(
        "vhost-bench: {pkts} frames of {FRAME} B guest TX ring -> pool -> guest RX ring, bursts of {MAX_BURST}, \
         mergeable buffers, EVENT_IDX; {:.1} TSC cycles/frame in dequeue + enqueue \
         ({:.2} Mpps overall, with the mock driver)",
        cycles as f64 / pkts as f64,
        pkts as f64 / ns * 1e3,
    );
}
