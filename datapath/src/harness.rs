//! A PMD the caller drives on its own thread ([`SwitchConfig::caller_driven`]): the real
//! receive path (snapshot pick-up, cache invalidation, pipeline, VTEP termination) without a
//! PMD thread, for benchmarks and single-threaded tests.
//!
//! [`SwitchConfig::caller_driven`]: crate::SwitchConfig::caller_driven

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use flowtable::CacheStats;

use crate::capture::Direction;
use crate::packet::{Batch, PacketPool};
use crate::pmd::{Latency, Pmd, PmdClock, Snapshot, tsc};

pub struct CallerPmd {
    pmd: Pmd,
    config: arc_swap::Cache<Arc<ArcSwap<Snapshot>>, Arc<Snapshot>>,
    clock: PmdClock,
    now_ns: Option<u64>,
    /// Where the caller's bursts are timed (the PMD loop keeps one per receive queue).
    latency: Latency,
}

/// An input port, resolved to its place in the current snapshot (re-resolved after a change).
#[derive(Clone, Debug)]
pub struct InPort {
    name: String,
    generation: u64,
    bridge: usize,
    port: usize,
}

impl InPort {
    pub fn new(name: &str) -> InPort {
        InPort {
            name: name.to_string(),
            generation: u64::MAX,
            bridge: usize::MAX,
            port: usize::MAX,
        }
    }
}

impl CallerPmd {
    pub(crate) fn new(pmd: Pmd, config: Arc<ArcSwap<Snapshot>>, epoch: Instant) -> Self {
        CallerPmd {
            pmd,
            config: arc_swap::Cache::new(config),
            clock: PmdClock::new(epoch),
            now_ns: None,
            latency: Latency::default(),
        }
    }

    /// Runs the pipeline at this time (nanoseconds of the switch's clock) from now on, instead
    /// of reading the clock per batch.
    pub fn set_time(&mut self, now_ns: u64) {
        self.now_ns = Some(now_ns);
    }

    /// The switch's clock, read as the PMD reads it (TSC).
    fn now(&mut self) -> u64 {
        match self.now_ns {
            Some(t) => t,
            None => self.clock.now_ns(),
        }
    }

    /// Runs `batch` through the switch as if received on `port`, as the PMD would (after
    /// picking up the latest configuration). False if there is no such port; the batch is left
    /// empty either way.
    #[inline]
    pub fn receive(&mut self, port: &mut InPort, batch: &mut Batch) -> bool {
        let now = self.now();
        let snap = self.config.load();
        self.pmd.sync(snap);
        if port.generation != snap.generation {
            let found = snap.bridges.iter().enumerate().find_map(|(bi, b)| {
                b.ports
                    .iter()
                    .position(|p| p.port.name() == port.name)
                    .map(|pi| (bi, pi))
            });
            match found {
                Some((bi, pi)) => {
                    port.bridge = bi;
                    port.port = pi;
                    port.generation = snap.generation;
                }
                None => {
                    batch.recycle(self.pmd.pool());
                    return false;
                }
            }
        }
        // The capture point and latency sampling as the PMD loop has them (one load per burst;
        // one TSC read more per burst, one record).
        if let Some(bp) = snap
            .bridges
            .get(port.bridge)
            .and_then(|b| b.ports.get(port.port))
            && bp.tap.armed(Direction::Rx)
        {
            bp.tap.record(Direction::Rx, batch.as_slice());
        }
        let frames = batch.len() as u64;
        let received = if self.pmd.latency_on() { tsc() } else { None };
        self.pmd.receive(snap, port.bridge, port.port, batch, now);
        if let (Some(r), Some(e)) = (received, tsc()) {
            self.latency.record(e.wrapping_sub(r), frames);
        }
        true
    }

    /// Sends what the switch's egress schedulers hold back and may send now (the PMD loop does
    /// this every iteration); returns how many frames went.
    pub fn serve_schedulers(&mut self) -> usize {
        let now = self.now();
        let snap = self.config.load();
        self.pmd.sync(snap);
        self.pmd.serve_schedulers(snap, now).0
    }

    /// The PMD's packet buffers.
    pub fn pool(&mut self) -> &mut PacketPool {
        self.pmd.pool()
    }

    /// The PMD's cache counters, summed over bridges.
    pub fn cache_stats(&self) -> CacheStats {
        let [emc_hits, megaflow_hits, misses, invalidated, evicted] = self.pmd.cache_totals();
        CacheStats {
            emc_hits,
            megaflow_hits,
            misses,
            invalidated,
            evicted,
            ..CacheStats::default()
        }
    }
}
