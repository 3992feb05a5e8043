//! Poll-mode driver threads: each busy-polls the receive queues placed on it and runs the
//! pipeline. Between iterations it picks up a new configuration snapshot if there is one; its
//! caches and buffers live across snapshots ([`Pmd`]), and a change invalidates only what it
//! affects.

mod clock;
mod idle;
mod latency;
mod probe;
mod vtep;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use arc_swap::ArcSwap;

use crate::bridge::{BridgeId, BridgeSnapshot};
use crate::capture::Direction;
use crate::counter::Counter;
use crate::packet::{Batch, PacketPool};
use crate::pipeline::{BridgeLocal, process_batch};
use crate::port_qos::{QosPort, now};
use crate::tunnel::{TunnelRef, Tunnels};
pub(crate) use clock::{PmdClock, tsc};
pub use idle::IdlePolicy;
use idle::Wait;
pub use latency::Percentiles;
pub(crate) use latency::{Latency, WINDOW_SECS, empty as empty_latency};
pub use probe::CachedDecision;
pub(crate) use probe::{CacheProbe, ask as ask_cache};
use vtep::RxScratch;

/// Packets and TSC cycles of one receive queue on the PMD that polls it (its only writer; a
/// queue moves between PMDs only after the old one let go of it).
#[derive(Default)]
pub(crate) struct RxqStats {
    pub(crate) packets: Counter,
    pub(crate) cycles: Counter,
    /// Time the queue's frames spend in the switch (see [`latency`]).
    pub(crate) latency: Latency,
}

/// One receive queue a PMD polls: indices into the snapshot's bridges and that bridge's ports.
#[derive(Clone)]
pub(crate) struct RxqRef {
    pub(crate) bridge: usize,
    pub(crate) port: usize,
    pub(crate) qid: usize,
    pub(crate) stats: Arc<RxqStats>,
}

/// Everything the PMDs need, swapped as a whole on every configuration change (the parts that
/// did not change are shared with the previous snapshot).
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) bridges: Vec<Arc<BridgeSnapshot>>,
    /// Receive queues per PMD.
    pub(crate) rxqs: Vec<Vec<RxqRef>>,
    /// Egress schedulers per PMD, which sends what they hold back.
    pub(crate) schedulers: Vec<Vec<Arc<QosPort>>>,
    /// Every tunnel port, for decapsulation on VTEP ports.
    pub(crate) tunnel_ports: Vec<TunnelRef>,
    pub(crate) tunnels: Arc<Tunnels>,
}

impl Snapshot {
    pub(crate) fn empty(n_pmds: usize, tunnels: Arc<Tunnels>) -> Self {
        Snapshot {
            generation: 0,
            bridges: Vec::new(),
            rxqs: vec![Vec::new(); n_pmds],
            schedulers: vec![Vec::new(); n_pmds],
            tunnel_ports: Vec::new(),
            tunnels,
        }
    }
}

/// Counters and flags a PMD shares with the control side, and the hand-over of per-bridge
/// state (allocated and freed by the control thread, never by the PMD).
#[derive(Default)]
pub(crate) struct PmdShared {
    pub(crate) stop: AtomicBool,
    /// Latest snapshot generation this PMD has switched to.
    pub(crate) seen_generation: AtomicU64,
    pub(crate) packets: AtomicU64,
    pub(crate) emc_hits: AtomicU64,
    pub(crate) megaflow_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) invalidated: AtomicU64,
    pub(crate) evicted: AtomicU64,
    /// Nanoseconds spent on polls that returned packets, and on empty polls.
    pub(crate) busy_ns: AtomicU64,
    pub(crate) idle_ns: AtomicU64,
    /// Receive bursts that returned packets (packets / rx_bursts = the average burst).
    pub(crate) rx_bursts: AtomicU64,
    /// TSC ticks per second as measured by the PMD's clock since it started (0: no TSC yet),
    /// to show busy time in cycles.
    pub(crate) tsc_hz: AtomicU64,
    /// Latency sampling off (`vswitchd --no-latency`): one TSC read and one histogram record
    /// per receive burst fewer.
    pub(crate) latency_off: AtomicBool,
    /// Per-bridge state for bridges new to this PMD, put here before the snapshot that has
    /// them is published.
    pub(crate) inbox: Mutex<Vec<BridgeLocal>>,
    /// Per-bridge state of bridges that are gone, for the control thread to free.
    pub(crate) outbox: Mutex<Vec<BridgeLocal>>,
    /// A trace's question about this PMD's caches, and the flag that says one is waiting.
    pub(crate) probe: Mutex<Option<CacheProbe>>,
    pub(crate) probe_asked: AtomicBool,
}

pub(crate) struct PmdHandle {
    pub(crate) id: usize,
    pub(crate) core: Option<usize>,
    pub(crate) shared: Arc<PmdShared>,
    /// None for a PMD driven by the caller ([`crate::harness`]).
    pub(crate) thread: Option<JoinHandle<()>>,
}

/// Packet buffers per PMD: enough for every transmit batch to fill while a batch is received.
const POOL_SIZE: usize = 1024;

/// A PMD's own state: buffers, per-bridge caches aligned with the current snapshot's bridges,
/// and the receive queues it polls.
pub(crate) struct Pmd {
    id: usize,
    shared: Arc<PmdShared>,
    pool: PacketPool,
    batch: Batch,
    generation: u64,
    locals: Vec<BridgeLocal>,
    rxqs: Vec<RxqRef>,
    scratch: RxScratch,
    /// Cache counters of per-bridge state already handed back.
    retired: [u64; 5],
}

impl Pmd {
    pub(crate) fn new(id: usize, shared: Arc<PmdShared>) -> Pmd {
        Pmd {
            id,
            shared,
            pool: PacketPool::with_capacity(POOL_SIZE),
            batch: Batch::new(),
            generation: u64::MAX,
            locals: Vec::new(),
            rxqs: Vec::new(),
            scratch: RxScratch::default(),
            retired: [0; 5],
        }
    }

    /// Whether latency is sampled (`vswitchd --no-latency` turns it off).
    #[inline]
    pub(crate) fn latency_on(&self) -> bool {
        !self.shared.latency_off.load(Ordering::Relaxed)
    }

    /// Switches to `snap` if it is newer than the one in use.
    #[inline]
    pub(crate) fn sync(&mut self, snap: &Snapshot) {
        if snap.generation != self.generation {
            self.adopt(snap);
        }
    }

    /// Aligns the per-bridge state with the snapshot's bridges (kept ones keep their caches,
    /// new ones come from the inbox, gone ones go to the outbox), then applies each bridge's
    /// configuration events to its caches.
    #[cold]
    fn adopt(&mut self, snap: &Snapshot) {
        let mut old = std::mem::take(&mut self.locals);
        {
            let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
            for b in &snap.bridges {
                let local = take_by_id(&mut old, b.id)
                    .or_else(|| take_by_id(&mut inbox, b.id))
                    // Not handed over (should not happen): make it here rather than fail.
                    .unwrap_or_else(|| BridgeLocal::new(b));
                self.locals.push(local);
            }
        }
        if !old.is_empty() {
            for l in &old {
                add_cache_totals(&mut self.retired, l);
            }
            let mut outbox = self.shared.outbox.lock().unwrap_or_else(|e| e.into_inner());
            outbox.append(&mut old);
        }
        for (local, b) in self.locals.iter_mut().zip(&snap.bridges) {
            local.adopt(b);
        }
        self.scratch.resize(snap.tunnel_ports.len());
        self.rxqs.clear();
        if let Some(q) = snap.rxqs.get(self.id) {
            self.rxqs.extend(q.iter().cloned());
        }
        self.generation = snap.generation;
        self.shared
            .seen_generation
            .store(snap.generation, Ordering::Release);
    }

    /// Polls every receive queue once; returns (packets, non-empty bursts). A queue that
    /// returned packets is charged the TSC cycles since the previous such queue finished (or
    /// the poll began): its receive and processing, plus the empty polls just before it, at one
    /// TSC read per non-empty burst.
    #[inline]
    fn poll(&mut self, snap: &Snapshot, now_ns: u64) -> (usize, u64) {
        let mut got = 0;
        let mut bursts = 0u64;
        let mut batch = std::mem::take(&mut self.batch);
        let rxqs = std::mem::take(&mut self.rxqs);
        let latency_on = self.latency_on();
        let mut mark = tsc();
        for q in &rxqs {
            let Some(bp) = snap.bridges.get(q.bridge).and_then(|b| b.ports.get(q.port)) else {
                continue;
            };
            let n = bp.port.rx_burst(q.qid, &mut self.pool, &mut batch);
            if n == 0 {
                continue;
            }
            if bp.tap.armed(Direction::Rx) {
                bp.tap.record(Direction::Rx, batch.as_slice());
            }
            let received = if latency_on { tsc() } else { None };
            got += n;
            bursts += 1;
            self.receive(snap, q.bridge, q.port, &mut batch, now_ns);
            q.stats.packets.add(n as u64);
            let end = tsc();
            if let (Some(s), Some(e)) = (mark, end) {
                q.stats.cycles.add(e.wrapping_sub(s));
            }
            if let (Some(r), Some(e)) = (received, end) {
                q.stats.latency.record(e.wrapping_sub(r), n as u64);
            }
            mark = end;
        }
        self.rxqs = rxqs;
        self.batch = batch;
        (got, bursts)
    }

    /// Runs a batch received on port `port` of bridge `bridge` (indices in `snap`): tunnel
    /// termination on a VTEP port, the bridge's pipeline otherwise. The batch is left empty.
    pub(crate) fn receive(
        &mut self,
        snap: &Snapshot,
        bridge: usize,
        port: usize,
        batch: &mut Batch,
        now_ns: u64,
    ) {
        let Some(b) = snap.bridges.get(bridge) else {
            batch.recycle(&mut self.pool);
            return;
        };
        // For egress schedulers this batch reaches (they take no time argument), and bonds.
        now::set(now_ns);
        crate::pmd_index::set(self.id);
        let vtep = b.ports.get(port).is_some_and(|p| p.vtep.is_some());
        if vtep {
            vtep::receive(
                snap,
                &mut self.locals,
                bridge,
                port,
                batch,
                &mut self.pool,
                now_ns,
                &mut self.scratch,
            );
        } else if let Some(local) = self.locals.get_mut(bridge) {
            process_batch(b, local, port, batch, &mut self.pool, now_ns);
        } else {
            batch.recycle(&mut self.pool);
        }
    }

    /// Sends what the egress schedulers this PMD serves hold back and may send now. Returns
    /// the frames sent, and whether frames are still held back.
    #[inline]
    pub(crate) fn serve_schedulers(&mut self, snap: &Snapshot, now_ns: u64) -> (usize, bool) {
        let Some(list) = snap.schedulers.get(self.id) else {
            return (0, false);
        };
        crate::pmd_index::set(self.id);
        let mut sent = 0;
        let mut pending = false;
        for q in list {
            sent += q.service(now_ns);
            pending |= q.has_backlog();
        }
        (sent, pending)
    }

    /// The caches' counters, summed over bridges (including those already gone).
    pub(crate) fn cache_totals(&self) -> [u64; 5] {
        let mut t = self.retired;
        for l in &self.locals {
            add_cache_totals(&mut t, l);
        }
        t
    }

    fn publish_cache_stats(&self) {
        let [emc, mega, miss, invalidated, evicted] = self.cache_totals();
        let s = &self.shared;
        s.emc_hits.store(emc, Ordering::Relaxed);
        s.megaflow_hits.store(mega, Ordering::Relaxed);
        s.misses.store(miss, Ordering::Relaxed);
        s.invalidated.store(invalidated, Ordering::Relaxed);
        s.evicted.store(evicted, Ordering::Relaxed);
    }

    pub(crate) fn pool(&mut self) -> &mut PacketPool {
        &mut self.pool
    }
}

fn take_by_id(v: &mut Vec<BridgeLocal>, id: BridgeId) -> Option<BridgeLocal> {
    let i = v.iter().position(|l| l.id == id)?;
    Some(v.swap_remove(i))
}

fn add_cache_totals(t: &mut [u64; 5], l: &BridgeLocal) {
    let s = l.cache.stats();
    for (x, v) in t.iter_mut().zip([
        s.emc_hits,
        s.megaflow_hits,
        s.misses,
        s.invalidated,
        s.evicted,
    ]) {
        *x += v;
    }
}

pub(crate) fn spawn(
    id: usize,
    core: Option<usize>,
    config: Arc<ArcSwap<Snapshot>>,
    idle: Option<IdlePolicy>,
    epoch: Instant,
) -> std::io::Result<PmdHandle> {
    let shared = Arc::new(PmdShared::default());
    let s = shared.clone();
    let thread = std::thread::Builder::new()
        .name(format!("pmd{id}"))
        .spawn(move || {
            if let Some(c) = core {
                pin_to_core(c);
            }
            run(Pmd::new(id, s), &config, idle, epoch);
        })?;
    Ok(PmdHandle {
        id,
        core,
        shared,
        thread: Some(thread),
    })
}

fn pin_to_core(core: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it for core < CPU_SETSIZE, which
    // we check; sched_setaffinity(0, ...) only affects the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if core < libc::CPU_SETSIZE as usize {
            libc::CPU_SET(core, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                tracing::warn!(
                    core,
                    "could not pin PMD thread: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// `idle`: when the PMD naps (None: never).
fn run(mut pmd: Pmd, config: &ArcSwap<Snapshot>, idle: Option<IdlePolicy>, epoch: Instant) {
    let mut clock = PmdClock::new(epoch);
    let mut last = clock.now_ns();
    // When the PMD last received or sent something.
    let mut last_work = last;
    // Checks for a new snapshot with one plain load per iteration: `ArcSwap::load` would take
    // two locked instructions, which also wait for this core's pending stores into guest memory.
    let mut current = arc_swap::Cache::new(config);
    let shared = Arc::clone(&pmd.shared);
    while !shared.stop.load(Ordering::Relaxed) {
        let snap = current.load();
        pmd.sync(snap);
        let now_ns = clock.now_ns();
        let (got, bursts) = pmd.poll(snap, now_ns);
        let (sent, held_back) = pmd.serve_schedulers(snap, now_ns);
        if shared.probe_asked.load(Ordering::Relaxed) {
            pmd.answer_probe();
        }

        let now = clock.now_ns();
        let spent = now - last;
        last = now;
        if got > 0 {
            last_work = now;
            add(&shared.busy_ns, spent);
            add(&shared.packets, got as u64);
            add(&shared.rx_bursts, bursts);
            shared.tsc_hz.store(clock.tsc_hz, Ordering::Relaxed);
            pmd.publish_cache_stats();
        } else {
            add(&shared.idle_ns, spent);
            // A scheduler holding frames back must not wait for a nap to end.
            if sent > 0 || held_back {
                last_work = now;
            }
            match idle.map(|p| p.wait(now - last_work)) {
                Some(Wait::Nap(d)) => std::thread::sleep(d),
                _ => std::hint::spin_loop(),
            }
        }
    }
}

/// The PMD is the only writer of its counters: a load and a store, no locked instruction.
#[inline]
fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}
