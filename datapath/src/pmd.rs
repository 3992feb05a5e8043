//! Poll-mode driver threads: each busy-polls the receive queues assigned to it and runs the
//! pipeline, picking up new configuration snapshots between batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::bridge::BridgeSnapshot;
use crate::packet::{Batch, MAX_BURST, PacketPool};
use crate::pipeline::{BridgeLocal, process_batch};
use crate::tunnel::{Terminated, TunnelRef, Tunnels, terminate};
use flowtable::DropReason;

/// One receive queue a PMD polls: indices into the snapshot's bridges and that bridge's ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxqRef {
    pub bridge: usize,
    pub port: usize,
    pub qid: usize,
}

/// Everything the PMDs need, swapped as a whole on every configuration change.
pub struct Snapshot {
    pub generation: u64,
    pub bridges: Vec<Arc<BridgeSnapshot>>,
    /// Receive queues per PMD.
    pub assignment: Vec<Vec<RxqRef>>,
    /// Every tunnel port, for decapsulation on VTEP ports.
    pub tunnel_ports: Vec<TunnelRef>,
    pub tunnels: Arc<Tunnels>,
}

impl RxScratch {
    pub fn for_snapshot(snap: &Snapshot) -> Self {
        RxScratch {
            decap: snap.tunnel_ports.iter().map(|_| Batch::new()).collect(),
            ..Default::default()
        }
    }
}

impl Snapshot {
    pub fn empty(n_pmds: usize) -> Self {
        Snapshot {
            generation: 0,
            bridges: Vec::new(),
            assignment: vec![Vec::new(); n_pmds],
            tunnel_ports: Vec::new(),
            tunnels: Arc::default(),
        }
    }
}

/// Counters and flags a PMD shares with the control side.
#[derive(Default)]
pub struct PmdShared {
    pub stop: AtomicBool,
    /// Latest snapshot generation this PMD has switched to.
    pub seen_generation: AtomicU64,
    pub packets: AtomicU64,
    pub emc_hits: AtomicU64,
    pub megaflow_hits: AtomicU64,
    pub misses: AtomicU64,
    /// Nanoseconds spent on polls that returned packets, and on empty polls.
    pub busy_ns: AtomicU64,
    pub idle_ns: AtomicU64,
    /// Receive bursts that returned packets (packets / rx_bursts = the average burst).
    pub rx_bursts: AtomicU64,
    /// TSC ticks per second as measured by the PMD's clock since it started (0: no TSC yet),
    /// to show busy time in cycles.
    pub tsc_hz: AtomicU64,
}

pub struct PmdHandle {
    pub id: usize,
    pub core: Option<usize>,
    pub shared: Arc<PmdShared>,
    pub thread: Option<JoinHandle<()>>,
}

/// Packet buffers per PMD: enough for every transmit batch to fill while a batch is received.
const POOL_SIZE: usize = 1024;

pub fn spawn(
    id: usize,
    core: Option<usize>,
    config: Arc<ArcSwap<Snapshot>>,
    idle_backoff: bool,
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
            run(id, &config, &s, idle_backoff, epoch);
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

fn run(
    id: usize,
    config: &ArcSwap<Snapshot>,
    shared: &PmdShared,
    idle_backoff: bool,
    epoch: Instant,
) {
    let mut pool = PacketPool::with_capacity(POOL_SIZE);
    let mut batch = Batch::new();
    let mut generation = u64::MAX;
    let mut locals: Vec<BridgeLocal> = Vec::new();
    let mut rxqs: Vec<RxqRef> = Vec::new();
    let mut empty_polls: u32 = 0;
    let mut scratch = RxScratch::default();
    let mut clock = PmdClock::new(epoch);
    let mut last = clock.now_ns();
    // Cache counters of caches already discarded by a configuration change.
    let mut base = (0, 0, 0);

    // Checks for a new snapshot with one plain load per iteration: `ArcSwap::load` would take
    // two locked instructions, which also wait for this core's pending stores into guest memory.
    let mut current = arc_swap::Cache::new(config);
    while !shared.stop.load(Ordering::Relaxed) {
        let snap = current.load();
        if snap.generation != generation {
            generation = snap.generation;
            base = add3(base, cache_totals(&locals));
            locals = snap.bridges.iter().map(|b| BridgeLocal::new(b)).collect();
            scratch.decap = snap.tunnel_ports.iter().map(|_| Batch::new()).collect();
            rxqs = snap.assignment.get(id).cloned().unwrap_or_default();
            shared.seen_generation.store(generation, Ordering::Release);
        }
        let now_ns = clock.now_ns();
        let mut got = 0;
        let mut bursts = 0u64;
        for q in &rxqs {
            let Some(bridge) = snap.bridges.get(q.bridge) else {
                continue;
            };
            let Some(bp) = bridge.ports.get(q.port) else {
                continue;
            };
            let n = bp.port.rx_burst(q.qid, &mut pool, &mut batch);
            if n == 0 {
                continue;
            }
            got += n;
            bursts += 1;
            if bp.vtep.is_some() {
                receive_on_vtep(
                    snap,
                    &mut locals,
                    q,
                    &mut batch,
                    &mut pool,
                    now_ns,
                    &mut scratch,
                );
            } else {
                process_batch(
                    bridge,
                    &mut locals[q.bridge],
                    generation,
                    q.port,
                    &mut batch,
                    &mut pool,
                    now_ns,
                );
            }
        }

        let now = clock.now_ns();
        let spent = now - last;
        last = now;
        if got > 0 {
            empty_polls = 0;
            add(&shared.busy_ns, spent);
            add(&shared.packets, got as u64);
            add(&shared.rx_bursts, bursts);
            shared.tsc_hz.store(clock.tsc_hz, Ordering::Relaxed);
            publish_cache_stats(shared, add3(base, cache_totals(&locals)));
        } else {
            add(&shared.idle_ns, spent);
            empty_polls = empty_polls.saturating_add(1);
            if idle_backoff {
                back_off(empty_polls);
            }
        }
        debug_assert!(batch.len() <= MAX_BURST);
    }
}

/// Per-PMD buffers of the VTEP receive path (one decap batch per tunnel port of the snapshot).
#[derive(Default)]
pub struct RxScratch {
    pass: Batch,
    /// One batch per tunnel port of the snapshot.
    pub decap: Vec<Batch>,
    replies: Vec<[u8; 60]>,
}

/// A batch from a VTEP port: ARP for the VTEP address is answered, VXLAN packets for local
/// tunnel ports continue decapsulated on those ports' bridges, the rest is switched as usual.
pub fn receive_on_vtep(
    snap: &Snapshot,
    locals: &mut [BridgeLocal],
    q: &RxqRef,
    batch: &mut Batch,
    pool: &mut PacketPool,
    now_ns: u64,
    scratch: &mut RxScratch,
) {
    let bridge = &snap.bridges[q.bridge];
    let bp = &bridge.ports[q.port];
    let Some(vtep) = &bp.vtep else { return };
    for mut p in batch.drain() {
        match terminate(
            p.data(),
            vtep,
            &snap.tunnels,
            &snap.tunnel_ports,
            &mut scratch.replies,
        ) {
            Terminated::Pass => {
                let _ = scratch.pass.push(p);
            }
            Terminated::Consumed => pool.put(p),
            Terminated::Drop(reason) => {
                let r = if reason == "tnl-no-port" {
                    DropReason::TnlNoPort
                } else {
                    DropReason::TnlMalformed
                };
                bp.drops.add(r, 1);
                pool.put(p);
            }
            Terminated::Decap {
                target,
                vni,
                src,
                dst,
                offset,
                len,
            } => {
                let (_, start, _) = p.raw_mut();
                if !p.set_bounds(start + offset, len) {
                    bp.drops.add(DropReason::TnlMalformed, 1);
                    pool.put(p);
                    continue;
                }
                p.tun_id = u64::from(vni);
                p.tun_src = u32::from(src);
                p.tun_dst = u32::from(dst);
                match scratch.decap.get_mut(target) {
                    Some(b) => {
                        let _ = b.push(p);
                    }
                    None => pool.put(p),
                }
            }
        }
    }
    if !scratch.replies.is_empty() {
        let mut out = Batch::new();
        for r in scratch.replies.drain(..) {
            let mut p = pool.get();
            p.set_data(&r);
            let _ = out.push(p);
        }
        bp.port.tx_burst(&mut out, pool);
    }
    if !scratch.pass.is_empty() {
        process_batch(
            bridge,
            &mut locals[q.bridge],
            snap.generation,
            q.port,
            &mut scratch.pass,
            pool,
            now_ns,
        );
    }
    for (i, b) in scratch.decap.iter_mut().enumerate() {
        if b.is_empty() {
            continue;
        }
        let Some(t) = snap.tunnel_ports.get(i) else {
            b.recycle(pool);
            continue;
        };
        let bytes: usize = b.iter().map(|p| p.len()).sum();
        t.vxlan.count_rx(b.len() as u64, bytes as u64);
        match (snap.bridges.get(t.bridge), locals.get_mut(t.bridge)) {
            (Some(tb), Some(local)) => {
                process_batch(tb, local, snap.generation, t.port, b, pool, now_ns)
            }
            _ => b.recycle(pool),
        }
    }
}

/// The PMD loop's clock: nanoseconds since `epoch` (the switch's clock), read from the TSC
/// where there is one (a few cycles, instead of a `clock_gettime` per poll) and re-anchored to
/// the monotonic clock about every millisecond. Each re-anchoring also re-measures the TSC rate
/// over the interval just ended, so the clock calibrates itself, follows rate changes, and
/// stays within a fraction of a microsecond of `epoch.elapsed()`. Never goes backwards.
struct PmdClock {
    epoch: Instant,
    /// Nanoseconds per TSC tick, fixed point (32 fractional bits); 0 until measured.
    ns_per_tick: u64,
    /// Re-anchor after this many ticks (about 1 ms).
    period: u64,
    anchor_tsc: u64,
    anchor_ns: u64,
    last_ns: u64,
    /// The first anchor, for the long-term rate.
    start_tsc: u64,
    start_ns: u64,
    /// TSC ticks per second from the first anchor to the latest one (0 until 10 ms have passed).
    tsc_hz: u64,
}

impl PmdClock {
    const REANCHOR_NS: u64 = 1_000_000;

    fn new(epoch: Instant) -> PmdClock {
        let mut c = PmdClock {
            epoch,
            ns_per_tick: 0,
            period: 0,
            anchor_tsc: 0,
            anchor_ns: 0,
            last_ns: 0,
            start_tsc: 0,
            start_ns: 0,
            tsc_hz: 0,
        };
        if let Some(t) = tsc() {
            c.anchor_tsc = t;
            c.anchor_ns = c.monotonic_ns();
            c.start_tsc = t;
            c.start_ns = c.anchor_ns;
        }
        c
    }

    fn monotonic_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    #[inline]
    fn now_ns(&mut self) -> u64 {
        let ns = match tsc() {
            Some(t) => {
                let dt = t.wrapping_sub(self.anchor_tsc);
                if dt < self.period {
                    let delta = (u128::from(dt) * u128::from(self.ns_per_tick)) >> 32;
                    self.anchor_ns + delta as u64
                } else {
                    self.reanchor(t, dt)
                }
            }
            None => self.monotonic_ns(),
        };
        let ns = ns.max(self.last_ns);
        self.last_ns = ns;
        ns
    }

    #[cold]
    fn reanchor(&mut self, t: u64, dt: u64) -> u64 {
        let ns = self.monotonic_ns();
        let dns = ns.saturating_sub(self.anchor_ns);
        // A TSC that went backwards (dt wrapped) or an interval too short to measure keeps the
        // old rate; without a rate yet, every read re-anchors (and measures).
        if dt > 0 && dt < 1 << 40 && dns > 0 && dns < 1 << 30 {
            let rate = (u128::from(dns) << 32) / u128::from(dt);
            if rate > 0 && rate < 1 << 40 {
                self.ns_per_tick = rate as u64;
                self.period = (u128::from(Self::REANCHOR_NS) << 32) as u64 / self.ns_per_tick;
            }
        }
        self.anchor_tsc = t;
        self.anchor_ns = ns;
        let (ticks, elapsed) = (t.wrapping_sub(self.start_tsc), ns - self.start_ns);
        if elapsed >= 10_000_000 && ticks < 1 << 62 {
            self.tsc_hz = (u128::from(ticks) * 1_000_000_000 / u128::from(elapsed)) as u64;
        }
        ns
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn tsc() -> Option<u64> {
    // SAFETY: RDTSC has no preconditions on x86_64 and only reads the time-stamp counter.
    Some(unsafe { core::arch::x86_64::_rdtsc() })
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn tsc() -> Option<u64> {
    None
}

/// The PMD is the only writer of its counters: a load and a store, no locked instruction.
#[inline]
fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

fn cache_totals(locals: &[BridgeLocal]) -> (u64, u64, u64) {
    locals.iter().fold((0, 0, 0), |acc, l| {
        let s = l.cache.stats();
        add3(acc, (s.emc_hits, s.megaflow_hits, s.misses))
    })
}

fn add3(a: (u64, u64, u64), b: (u64, u64, u64)) -> (u64, u64, u64) {
    (a.0 + b.0, a.1 + b.1, a.2 + b.2)
}

fn publish_cache_stats(shared: &PmdShared, (emc, mega, miss): (u64, u64, u64)) {
    shared.emc_hits.store(emc, Ordering::Relaxed);
    shared.megaflow_hits.store(mega, Ordering::Relaxed);
    shared.misses.store(miss, Ordering::Relaxed);
}

/// Spin briefly, then yield, then sleep in short naps so an idle PMD leaves the core to others.
fn back_off(empty_polls: u32) {
    if empty_polls < 128 {
        std::hint::spin_loop();
    } else if empty_polls < 1024 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TSC clock never goes backwards and stays with the monotonic clock.
    #[test]
    fn pmd_clock_follows_the_monotonic_clock() {
        let epoch = Instant::now();
        let mut clock = PmdClock::new(epoch);
        let mut last = clock.now_ns();
        let end = Instant::now() + Duration::from_millis(30);
        while Instant::now() < end {
            let before = epoch.elapsed().as_nanos() as u64;
            let now = clock.now_ns();
            let after = epoch.elapsed().as_nanos() as u64;
            assert!(now >= last, "clock went backwards");
            // Interpolation error is bounded by the re-anchoring period (1 ms); allow slack for
            // a descheduled test thread.
            assert!(now + 5_000_000 >= before && now <= after + 5_000_000);
            last = now;
        }
    }
}
