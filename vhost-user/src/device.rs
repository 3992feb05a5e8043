//! Device state shared between the control thread (which applies vhost-user messages) and the
//! PMD threads (which move frames).
//!
//! Each virtqueue has its own mutex. The PMD polling a guest TX queue takes it with `try_lock`
//! (so it never waits for the control thread); transmitters to a guest RX queue take it with
//! `lock` (they serialise among themselves anyway). The control thread holds a queue's lock only
//! to update that queue, never across socket I/O or mmap.

use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use port_api::{Batch, PacketPool};

use crate::memory::MemoryTable;
use crate::ring::{RingConfig, RingFault, SplitRing};
use crate::rxtx::{self, Burst, Scratch};
use crate::stats::{DropReason, QueueStats};
use crate::virtio_net;

/// Ring addresses as the front-end gave them (its own virtual addresses).
#[derive(Clone, Copy, Debug, Default)]
pub struct VringAddrs {
    pub desc: u64,
    pub used: u64,
    pub avail: u64,
}

/// One virtqueue: its configuration from the front-end and, once it can run, the ring.
#[derive(Default)]
pub struct Vring {
    pub num: u16,
    pub addrs: Option<VringAddrs>,
    /// Next available index to process when the ring (re)starts.
    pub base: u16,
    pub kick: Option<File>,
    pub call: Option<File>,
    pub err: Option<File>,
    /// A kick fd was set (`SET_VRING_KICK`) and the ring was not stopped since.
    pub started: bool,
    /// `SET_VRING_ENABLE`, or always once features without PROTOCOL_FEATURES are set.
    pub enabled: bool,
    pub ring: Option<SplitRing>,
    /// Why the ring was stopped for good (until it is set up again).
    pub broken: Option<String>,
    scratch: Scratch,
}

impl Vring {
    /// Stops the ring, remembering where it stopped.
    pub fn stop(&mut self) {
        if let Some(ring) = self.ring.take() {
            self.base = ring.next_avail();
        }
    }

    /// Stops the ring and forgets its whole configuration (disconnect, `RESET_OWNER`).
    pub fn reset(&mut self) {
        *self = Vring::default();
    }

    /// (Re)starts the ring when it is started, enabled and fully described, with the current
    /// memory table and features.
    pub fn refresh(&mut self, memory: &MemoryTable, features: u64) {
        self.stop();
        if !self.started || !self.enabled || self.broken.is_some() || self.num == 0 {
            return;
        }
        let (Some(addrs), Some(mem)) = (self.addrs, memory.guest()) else {
            return;
        };
        let translated = (
            memory.va_to_gpa(addrs.desc),
            memory.va_to_gpa(addrs.avail),
            memory.va_to_gpa(addrs.used),
        );
        let (Some(desc), Some(avail), Some(used)) = translated else {
            self.broken = Some("ring address not in the memory table".into());
            return;
        };
        let cfg = RingConfig {
            desc,
            avail,
            used,
            size: self.num,
            base: self.base,
            event_idx: virtio_net::has_event_idx(features),
            indirect: virtio_net::has_indirect(features),
            hdr_len: virtio_net::header_len(features),
            mrg_rxbuf: virtio_net::has_mrg_rxbuf(features),
            csum: virtio_net::has_csum(features),
            guest_csum: virtio_net::has_guest_csum(features),
        };
        match SplitRing::new(mem, cfg) {
            Ok(ring) => self.ring = Some(ring),
            Err(f) => self.broken = Some(f.to_string()),
        }
    }

    /// Frames the guest transmitted on this (guest TX) queue.
    fn receive(&mut self, pool: &mut PacketPool, out: &mut Batch, stats: &QueueStats) -> usize {
        let Some(ring) = self.ring.as_mut() else {
            return 0;
        };
        let burst = rxtx::dequeue_burst(ring, &mut self.scratch, pool, out, stats);
        self.finish(burst)
    }

    /// Frames for the guest on this (guest RX) queue.
    fn transmit(&mut self, pkts: &mut Batch, pool: &mut PacketPool, stats: &QueueStats) -> usize {
        let Some(ring) = self.ring.as_mut() else {
            stats.drop(DropReason::NotReady, pkts.len() as u64);
            pkts.recycle(pool);
            return 0;
        };
        let burst = rxtx::enqueue_burst(ring, &mut self.scratch, pkts, pool, stats);
        self.finish(burst)
    }

    fn finish(&mut self, burst: Burst) -> usize {
        if let Some(f) = burst.fault {
            self.fail(f);
        } else if burst.notify {
            self.signal();
        }
        burst.done
    }

    fn fail(&mut self, fault: RingFault) {
        tracing::warn!("vhost-user virtqueue broken: {fault}");
        self.broken = Some(fault.to_string());
        self.stop();
    }

    /// Interrupts the driver through the call eventfd.
    fn signal(&self) {
        if let Some(call) = &self.call {
            // An eventfd write only fails when the counter would overflow; the driver is
            // then already signalled.
            let _ = (&*call).write_all(&1u64.to_ne_bytes());
        }
    }
}

/// A virtqueue, its counters, and whether it runs (read without the lock to skip idle queues).
#[derive(Default)]
pub struct VringSlot {
    state: Mutex<Vring>,
    ready: AtomicBool,
    pub stats: QueueStats,
}

impl VringSlot {
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Locks the queue for the control thread; [`VringGuard`] republishes `ready` on drop.
    pub fn lock(&self) -> VringGuard<'_> {
        VringGuard {
            slot: self,
            vring: self.state.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// PMD receive from this guest TX queue; 0 when the control thread holds it.
    pub fn receive(&self, pool: &mut PacketPool, out: &mut Batch) -> usize {
        if !self.is_ready() {
            return 0;
        }
        let mut vring = match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return 0,
        };
        let n = vring.receive(pool, out, &self.stats);
        if vring.ring.is_none() {
            self.ready.store(false, Ordering::Relaxed);
        }
        n
    }

    /// Transmit into this guest RX queue (drops everything, counted, if it does not run).
    pub fn transmit(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        let mut vring = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let n = vring.transmit(pkts, pool, &self.stats);
        if vring.ring.is_none() {
            self.ready.store(false, Ordering::Relaxed);
        }
        n
    }

    pub fn broken(&self) -> Option<String> {
        self.lock().broken.clone()
    }
}

/// The control thread's hold on a virtqueue.
pub struct VringGuard<'a> {
    slot: &'a VringSlot,
    vring: MutexGuard<'a, Vring>,
}

impl std::ops::Deref for VringGuard<'_> {
    type Target = Vring;
    fn deref(&self) -> &Vring {
        &self.vring
    }
}

impl std::ops::DerefMut for VringGuard<'_> {
    fn deref_mut(&mut self) -> &mut Vring {
        &mut self.vring
    }
}

impl Drop for VringGuard<'_> {
    fn drop(&mut self) {
        self.slot
            .ready
            .store(self.vring.ring.is_some(), Ordering::Relaxed);
    }
}

/// Everything the port, its control thread and the PMDs share.
pub struct Shared {
    /// Virtqueues: even indices are guest RX (the switch transmits), odd ones guest TX.
    pub vrings: Box<[VringSlot]>,
    pub connected: AtomicBool,
    /// Negotiated virtio features (0 while disconnected).
    pub features: AtomicU64,
    pub protocol_features: AtomicU64,
    /// 1 + the highest queue pair whose guest RX queue runs (0 if none): the transmit spread.
    pub tx_pairs: AtomicUsize,
    pub mem_regions: AtomicUsize,
    /// Front-end connections accepted or made so far.
    pub connections: AtomicU64,
    /// vhost-user messages refused (error replies) or malformed.
    pub protocol_errors: AtomicU64,
}

impl Shared {
    pub fn new(max_queue_pairs: usize) -> Shared {
        Shared {
            vrings: (0..2 * max_queue_pairs)
                .map(|_| VringSlot::default())
                .collect(),
            connected: AtomicBool::new(false),
            features: AtomicU64::new(0),
            protocol_features: AtomicU64::new(0),
            tx_pairs: AtomicUsize::new(0),
            mem_regions: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
        }
    }

    pub fn max_queue_pairs(&self) -> usize {
        self.vrings.len() / 2
    }

    /// Recomputes [`Shared::tx_pairs`] after a queue changed.
    pub fn update_tx_pairs(&self) {
        let pairs = (0..self.max_queue_pairs())
            .rev()
            .find(|&q| self.vrings[2 * q].is_ready())
            .map_or(0, |q| q + 1);
        self.tx_pairs.store(pairs, Ordering::Relaxed);
    }

    /// Queue pairs with both queues running.
    pub fn running_pairs(&self) -> usize {
        (0..self.max_queue_pairs())
            .filter(|&q| self.vrings[2 * q].is_ready() && self.vrings[2 * q + 1].is_ready())
            .count()
    }
}
