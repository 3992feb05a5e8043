//! `ring`: an in-memory port. Two ring ports can be joined (like a patch cable): what one sends
//! the other receives. Tests and benches hold one end and attach the other to a bridge.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::packet::{Batch, MAX_FRAME, PacketPool, SMALL_FRAME};
use crate::port::{Port, PortCounters, PortStats};
use port_api::copy_frame;

/// Default number of frames a ring holds.
pub const RING_CAPACITY: usize = 1024;

/// A bounded FIFO of frames with preallocated slots.
pub struct RingQueue {
    state: Mutex<RingState>,
}

struct RingState {
    slots: Vec<Vec<u8>>,
    lens: Vec<usize>,
    head: usize,
    count: usize,
}

impl RingQueue {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RingQueue {
            state: Mutex::new(RingState {
                // Small frames' room up front; a slot grows the first time a jumbo frame
                // passes through it.
                slots: (0..capacity).map(|_| vec![0u8; SMALL_FRAME]).collect(),
                lens: vec![0; capacity],
                head: 0,
                count: 0,
            }),
        }
    }

    /// Copies frames in; returns how many fit and their bytes.
    fn push<'a>(&self, frames: impl Iterator<Item = &'a [u8]>) -> (usize, usize) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let cap = s.slots.len();
        let (mut n, mut bytes) = (0, 0);
        for f in frames {
            if s.count == cap || f.len() > MAX_FRAME {
                continue;
            }
            let i = (s.head + s.count) % cap;
            if s.slots[i].len() < f.len() {
                s.slots[i].resize(f.len(), 0);
            }
            copy_frame(&mut s.slots[i][..f.len()], f);
            s.lens[i] = f.len();
            s.count += 1;
            n += 1;
            bytes += f.len();
        }
        (n, bytes)
    }

    /// Moves up to `out.room()` frames into packets from `pool` and counts them in `counters`
    /// while the queue is locked (whichever PMD polls the queue, the lock orders the counts).
    /// Returns how many.
    fn pop(&self, pool: &mut PacketPool, out: &mut Batch, counters: &PortCounters) -> usize {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let cap = s.slots.len();
        let (mut n, mut bytes) = (0, 0);
        while s.count > 0 && !out.is_full() {
            let i = s.head;
            let len = s.lens[i];
            let mut p = pool.get_for(len);
            copy_frame(p.prepare(len), &s.slots[i][..len]);
            let _ = out.push(p);
            s.head = (s.head + 1) % cap;
            s.count -= 1;
            n += 1;
            bytes += len;
        }
        if n > 0 {
            counters.rx_packets.add(n as u64);
            counters.rx_bytes.add(bytes as u64);
        }
        n
    }

    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct RingPort {
    name: String,
    inbox: Arc<RingQueue>,
    peer: ArcSwapOption<RingQueue>,
    peer_name: ArcSwapOption<String>,
    counters: PortCounters,
    tx_lock: Mutex<()>,
    mtu: Option<usize>,
}

impl RingPort {
    /// A port with nothing joined to it: what it sends is dropped and counted.
    pub fn new(name: &str, capacity: usize) -> Self {
        RingPort {
            name: name.to_string(),
            inbox: Arc::new(RingQueue::new(capacity)),
            peer: ArcSwapOption::empty(),
            peer_name: ArcSwapOption::empty(),
            counters: PortCounters::default(),
            tx_lock: Mutex::new(()),
            mtu: None,
        }
    }

    /// The port with an MTU (what a tunnel over it may carry); unknown by default.
    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Two joined ports.
    pub fn pair(a: &str, b: &str) -> (RingPort, RingPort) {
        let pa = RingPort::new(a, RING_CAPACITY);
        let pb = RingPort::new(b, RING_CAPACITY);
        pa.join(&pb);
        (pa, pb)
    }

    /// Joins this port and `other` in both directions.
    pub fn join(&self, other: &RingPort) {
        self.peer.store(Some(other.inbox.clone()));
        self.peer_name.store(Some(Arc::new(other.name.clone())));
        other.peer.store(Some(self.inbox.clone()));
        other.peer_name.store(Some(Arc::new(self.name.clone())));
    }

    /// Sends to `other` from now on (one direction only).
    pub fn join_to(&self, other: &RingPort) {
        self.peer.store(Some(other.inbox.clone()));
        self.peer_name.store(Some(Arc::new(other.name.clone())));
    }

    /// The port this one sends to.
    pub fn peer_name(&self) -> Option<String> {
        self.peer_name.load().as_deref().cloned()
    }

    /// Cuts the link from this side (the peer keeps sending into our inbox until it cuts too).
    pub fn unjoin(&self) {
        self.peer.store(None);
        self.peer_name.store(None);
    }

    /// Frames waiting to be received.
    pub fn pending(&self) -> usize {
        self.inbox.len()
    }
}

impl Port for RingPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "ring"
    }

    fn rx_burst(&self, _qid: usize, pool: &mut PacketPool, out: &mut Batch) -> usize {
        self.inbox.pop(pool, out, &self.counters)
    }

    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        let total = pkts.len();
        let _guard = self.tx_lock.lock().unwrap_or_else(|e| e.into_inner());
        let (sent, bytes) = match &*self.peer.load() {
            Some(q) => q.push(pkts.iter().map(|p| p.data())),
            None => (0, 0),
        };
        self.counters.tx_packets.add(sent as u64);
        self.counters.tx_bytes.add(bytes as u64);
        self.counters.tx_dropped.add((total - sent) as u64);
        pkts.recycle(pool);
        sent
    }

    fn link_up(&self) -> bool {
        self.peer.load().is_some()
    }

    fn mtu(&self) -> Option<usize> {
        self.mtu
    }

    fn stats(&self) -> PortStats {
        self.counters.snapshot()
    }

    fn status(&self) -> Vec<(&'static str, String)> {
        match &*self.peer_name.load() {
            Some(p) => vec![("peer", p.to_string())],
            None => vec![("peer", "none".into())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_a_pair_in_order() {
        let (a, b) = RingPort::pair("a", "b");
        let mut pool = PacketPool::with_capacity(64);
        let mut batch = Batch::new();
        for i in 0..3u8 {
            let mut p = pool.get();
            p.set_data(&[i; 60]);
            batch.push(p).ok().unwrap();
        }
        assert_eq!(a.tx_burst(&mut batch, &mut pool), 3);
        assert!(batch.is_empty());
        let mut got = Batch::new();
        assert_eq!(b.rx_burst(0, &mut pool, &mut got), 3);
        let firsts: Vec<u8> = got.iter().map(|p| p.data()[0]).collect();
        assert_eq!(firsts, vec![0, 1, 2]);
        assert_eq!(a.stats().tx_packets, 3);
        assert_eq!(b.stats().rx_bytes, 180);
    }

    #[test]
    fn overflow_and_unjoined_are_counted() {
        let a = RingPort::new("a", 2);
        let b = RingPort::new("b", 2);
        let mut pool = PacketPool::with_capacity(8);
        let mut batch = Batch::new();
        batch.push(pool.get()).ok().unwrap();
        assert_eq!(a.tx_burst(&mut batch, &mut pool), 0);
        assert_eq!(a.stats().tx_dropped, 1);
        a.join(&b);
        for _ in 0..3 {
            let mut p = pool.get();
            p.set_data(&[1; 20]);
            batch.push(p).ok().unwrap();
        }
        assert_eq!(a.tx_burst(&mut batch, &mut pool), 2);
        assert_eq!(a.stats().tx_dropped, 2);
        assert_eq!(b.pending(), 2);
    }

    /// Two threads polling one ring queue at once (a queue handed between PMDs) and two
    /// sending into it: every frame is counted once on each side.
    #[test]
    fn concurrent_pollers_and_senders_lose_no_counts() {
        let (a, b) = RingPort::pair("a", "b");
        let sent = std::sync::atomic::AtomicU64::new(0);
        let received = std::sync::atomic::AtomicU64::new(0);
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let mut pool = PacketPool::with_capacity(64);
                    for _ in 0..2_000 {
                        let mut batch = Batch::new();
                        for _ in 0..8 {
                            let mut p = pool.get();
                            p.set_data(&[7; 60]);
                            batch.push(p).ok().unwrap();
                        }
                        let n = a.tx_burst(&mut batch, &mut pool);
                        sent.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
            let pollers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut pool = PacketPool::with_capacity(64);
                        let mut got = Batch::new();
                        loop {
                            let finished = done.load(std::sync::atomic::Ordering::Acquire);
                            let n = b.rx_burst(0, &mut pool, &mut got);
                            received.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                            got.recycle(&mut pool);
                            if finished && n == 0 {
                                break;
                            }
                        }
                    })
                })
                .collect();
            while sent.load(std::sync::atomic::Ordering::Relaxed) + a.stats().tx_dropped < 32_000 {
                std::thread::yield_now();
            }
            done.store(true, std::sync::atomic::Ordering::Release);
            for p in pollers {
                p.join().unwrap();
            }
        });
        let (tx, rx) = (a.stats(), b.stats());
        assert_eq!(tx.tx_packets + tx.tx_dropped, 32_000);
        assert_eq!(tx.tx_packets, sent.into_inner());
        assert_eq!(rx.rx_packets, received.into_inner());
        assert_eq!(rx.rx_packets, tx.tx_packets);
        assert_eq!(rx.rx_bytes, 60 * rx.rx_packets);
    }
}
