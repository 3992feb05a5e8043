//! What the control thread shares with the housekeeping thread: the published snapshot, the
//! PMDs' shared state, and the graveyard of things the PMDs may still be using. Everything a
//! PMD used is freed here, on a control thread, once every PMD has moved past it.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::bond_port::BondPort;
use crate::pmd::{PmdShared, Snapshot};
use crate::tunnel::Tunnels;

pub(super) struct Runtime {
    pub(super) config: Arc<ArcSwap<Snapshot>>,
    pub(super) tunnels: Arc<Tunnels>,
    /// Every PMD's shared state, and whether a thread of ours runs it (else the caller
    /// drives it and never waits for us).
    pub(super) pmds: Vec<(Arc<PmdShared>, bool)>,
    pub(super) graveyard: Mutex<Vec<(u64, Box<dyn Any + Send>)>>,
    pub(super) epoch: Instant,
    pub(super) stop: AtomicBool,
    /// Every bond, for the bonds thread (refreshed after each change).
    pub(super) bonds: Mutex<Vec<Arc<BondPort>>>,
}

impl Runtime {
    pub(super) fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Whether every PMD has switched to `generation` or later (stopped ones count as done).
    pub(super) fn all_past(&self, generation: u64, running_only: bool) -> bool {
        self.pmds.iter().all(|(s, threaded)| {
            (running_only && !threaded)
                || s.stop.load(Ordering::Relaxed)
                || s.seen_generation.load(Ordering::Acquire) >= generation
        })
    }

    /// Waits (polling) until every PMD thread has switched to `generation`: normally within
    /// one PMD iteration. False after `timeout`.
    pub(super) fn wait_past(&self, generation: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.all_past(generation, true) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        true
    }

    /// Keeps `item` alive until every PMD has switched to `generation`.
    pub(super) fn retire(&self, generation: u64, item: Box<dyn Any + Send>) {
        self.graveyard
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((generation, item));
    }

    /// Frees what no PMD can be using any more, and the per-bridge state PMDs handed back.
    pub(super) fn reap(&self) {
        let freed: Vec<Box<dyn Any + Send>> = {
            let mut g = self.graveyard.lock().unwrap_or_else(|e| e.into_inner());
            let (done, keep): (Vec<_>, Vec<_>) = g
                .drain(..)
                .partition(|(gen_, _)| self.all_past(*gen_, false));
            *g = keep;
            done.into_iter().map(|(_, item)| item).collect()
        };
        drop(freed);
        for (s, _) in &self.pmds {
            let back = std::mem::take(&mut *s.outbox.lock().unwrap_or_else(|e| e.into_inner()));
            drop(back);
        }
    }
}
