//! The control side of the datapath: [`Switch`] takes typed configuration changes, keeps the
//! state they describe, and publishes it to the PMD threads as snapshots (an update never stops
//! forwarding, and touches only what it changes).
//!
//! - `state`: bridges, ports, rules, routes as the control thread holds them;
//! - `apply`: a list of changes as one transaction (all or nothing);
//! - `backends`: opening port objects, joining ring ports;
//! - `placement`: which PMD polls which receive queue (stable);
//! - `publish`: building and publishing snapshots;
//! - `runtime`: what is shared with housekeeping (the graveyard of things PMDs may still use);
//! - `housekeeping`: MAC aging and freeing, once a second / every 100 ms;
//! - `bonds`: the bonds thread (LACP, carrier, failover, rebalancing), every 10 ms;
//! - `query`: what `show`, `dump-flows`, `fdb-show`, `pmd-stats` report;
//! - `trace` and `capture`: `vswitchctl trace` and `vswitchctl capture`.

mod apply;
mod backends;
mod bonds;
mod capture;
mod housekeeping;
mod placement;
mod publish;
mod query;
mod runtime;
mod state;
mod trace;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::info::DpError;
use crate::pmd::{self, Pmd, PmdShared, Snapshot};
use crate::port::Port;
use crate::spec::{Change, PortSettings};
use crate::tunnel::Tunnels;
use apply::Txn;
use publish::Control;
use runtime::Runtime;
use state::PortEntry;
pub use trace::{PmdCache, Trace, TraceOutput};

/// Start-up settings.
#[derive(Clone, Debug, Default)]
pub struct SwitchConfig {
    /// One PMD thread per entry, pinned to that CPU. Empty: one unpinned PMD.
    pub pmd_cores: Vec<usize>,
    /// Busy-poll without ever sleeping (lowest latency, one core always at 100 %).
    pub no_idle_backoff: bool,
    /// When an idle PMD naps (unless `no_idle_backoff`).
    pub idle: crate::pmd::IdlePolicy,
    /// No PMD threads: one PMD that the caller drives ([`Switch::caller_pmd`]), for
    /// benchmarks and tests of the pipeline on one thread.
    pub caller_driven: bool,
    /// The operator's DPDK EAL arguments, used when the first `type=dpdk` port starts the EAL
    /// (see `dpdk::EalArgs` for the defaults they add to).
    pub dpdk_eal: Vec<String>,
    /// No latency sampling (`port-latency` then reports nothing).
    pub no_latency: bool,
}

/// How long a change that removed ports waits for the PMDs to let go of them. Normally one PMD
/// iteration; past this, the ports are freed later, when the PMDs catch up.
const QUIESCE_TIMEOUT: Duration = Duration::from_secs(2);

struct PmdThread {
    id: usize,
    core: Option<usize>,
    thread: Option<JoinHandle<()>>,
}

pub struct Switch {
    ctl: Mutex<Control>,
    rt: Arc<Runtime>,
    threads: Mutex<Vec<PmdThread>>,
    /// The housekeeping and bonds threads.
    housekeeping: Mutex<Vec<JoinHandle<()>>>,
    caller: Mutex<Option<Pmd>>,
}

impl Switch {
    pub fn start(cfg: SwitchConfig) -> Result<Switch, DpError> {
        let n_cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        if let Some(bad) = cfg.pmd_cores.iter().find(|c| **c >= n_cpus) {
            return Err(DpError(format!(
                "PMD core {bad} does not exist (this machine has {n_cpus} CPUs)"
            )));
        }
        let cores: Vec<Option<usize>> = if cfg.caller_driven || cfg.pmd_cores.is_empty() {
            vec![None]
        } else {
            cfg.pmd_cores.iter().map(|c| Some(*c)).collect()
        };
        let epoch = Instant::now();
        let tunnels = Arc::new(Tunnels::default());
        let config = Arc::new(ArcSwap::from_pointee(Snapshot::empty(
            cores.len(),
            tunnels.clone(),
        )));
        let mut threads = Vec::new();
        let mut pmds = Vec::new();
        let mut caller = None;
        for (id, core) in cores.iter().enumerate() {
            if cfg.caller_driven {
                let shared = Arc::new(PmdShared::default());
                shared.latency_off.store(cfg.no_latency, Ordering::Relaxed);
                caller = Some(Pmd::new(id, shared.clone()));
                pmds.push((shared, false));
                continue;
            }
            let h = pmd::spawn(
                id,
                *core,
                config.clone(),
                (!cfg.no_idle_backoff).then_some(cfg.idle),
                epoch,
            )
            .map_err(|e| DpError(format!("cannot start PMD thread: {e}")))?;
            h.shared
                .latency_off
                .store(cfg.no_latency, Ordering::Relaxed);
            pmds.push((h.shared.clone(), true));
            threads.push(PmdThread {
                id: h.id,
                core: h.core,
                thread: h.thread,
            });
        }
        let rt = Arc::new(Runtime {
            config,
            tunnels,
            pmds,
            graveyard: Mutex::new(Vec::new()),
            epoch,
            stop: AtomicBool::new(false),
            bonds: Mutex::new(Vec::new()),
        });
        let hk = housekeeping::spawn(rt.clone())
            .map_err(|e| DpError(format!("cannot start housekeeping thread: {e}")))?;
        let bonds = bonds::spawn(rt.clone())
            .map_err(|e| DpError(format!("cannot start bonds thread: {e}")))?;
        Ok(Switch {
            ctl: Mutex::new(Control::new(rt.pmds.len(), cfg.dpdk_eal.clone())),
            rt,
            threads: Mutex::new(threads),
            housekeeping: Mutex::new(vec![hk, bonds]),
            caller: Mutex::new(caller),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `changes` as one transaction: all of them, or (with the first error) none.
    /// Returns once the PMDs can see the result; if ports were removed, once the PMDs have let
    /// go of them (normally one PMD iteration) and they are closed.
    pub fn apply(&self, changes: Vec<Change>) -> Result<(), DpError> {
        let mut ctl = self.lock();
        let mut txn = Txn::new(&mut ctl.state, &self.rt.tunnels, self.rt.epoch);
        for c in changes {
            if let Err(e) = txn.apply(c) {
                txn.rollback();
                return Err(e);
            }
        }
        let removed = txn.commit();
        self.finish(&mut ctl, removed);
        Ok(())
    }

    /// Publishes the state; releases what a change removed once no PMD can use it.
    fn finish(&self, ctl: &mut Control, removed: apply::Removed) {
        backends::sync_ring_links(&ctl.state);
        *self.rt.bonds.lock().unwrap_or_else(|e| e.into_inner()) =
            ctl.state.bonds().map(|(_, b)| b.clone()).collect();
        let generation = ctl.publish(&self.rt);
        if !removed.is_empty() {
            let quiet = self.rt.wait_past(generation, QUIESCE_TIMEOUT);
            // Frames queued in a scheduler taken off its port still go out.
            for q in &removed.schedulers {
                q.flush();
            }
            self.rt.retire(generation, Box::new(removed));
            if !quiet {
                tracing::warn!(
                    generation,
                    "a PMD did not pick up the configuration in time; removed ports are closed when it does"
                );
            }
        }
        self.rt.reap();
    }

    /// Attaches a port object built by the caller (tests, benchmarks, embedders) with the
    /// next free ofport; returns it. It reports `kind()` as its type.
    pub fn attach_port(
        &self,
        bridge: &str,
        name: &str,
        port: Arc<dyn Port>,
        settings: PortSettings,
    ) -> Result<u32, DpError> {
        self.attach_entry(bridge, |state, ofport| {
            let id = state.new_id();
            Ok(PortEntry::new(id, name.to_string(), ofport, settings, port))
        })
    }

    /// Attaches a bond over port objects built by the caller (tests, benchmarks, embedders),
    /// with the next free ofport; returns it.
    pub fn attach_bond(
        &self,
        bridge: &str,
        name: &str,
        members: Vec<Arc<dyn Port>>,
        bond: crate::spec::BondSettings,
        settings: PortSettings,
    ) -> Result<u32, DpError> {
        self.attach_entry(bridge, |state, ofport| {
            for m in &members {
                if let Some(what) = state.name_in_use(m.name()) {
                    return Err(DpError(format!(
                        "{} is already the name of a {what}",
                        m.name()
                    )));
                }
            }
            let bp = backends::bond_over(state, name, ofport, members, &bond)?;
            let id = state.new_id();
            let mut entry = PortEntry::new(id, name.to_string(), ofport, settings, bp.clone());
            entry.bond = Some(bp);
            Ok(entry)
        })
    }

    /// Attaches the port `make` builds for the bridge's next free ofport, as one transaction.
    fn attach_entry(
        &self,
        bridge: &str,
        make: impl FnOnce(&mut state::ControlState, u32) -> Result<PortEntry, DpError>,
    ) -> Result<u32, DpError> {
        let mut ctl = self.lock();
        let ofport = {
            let b = ctl.state.bridge(bridge)?;
            (1..)
                .find(|n| !b.ports.iter().any(|p| p.ofport == *n))
                .unwrap_or(1)
        };
        let entry = make(&mut ctl.state, ofport)?;
        let mut txn = Txn::new(&mut ctl.state, &self.rt.tunnels, self.rt.epoch);
        if let Err(e) = txn.attach(bridge, entry) {
            txn.rollback();
            return Err(e);
        }
        let removed = txn.commit();
        self.finish(&mut ctl, removed);
        Ok(ofport)
    }

    /// Waits until every PMD thread uses the latest configuration (normally one PMD
    /// iteration): frames received after this meet it. `apply` returns once the PMDs *can* see
    /// a change; a PMD in the middle of an iteration still finishes it with what it had. False
    /// after 2 s.
    pub fn wait_for_pmds(&self) -> bool {
        let generation = self.lock().generation;
        self.rt.wait_past(generation, QUIESCE_TIMEOUT)
    }

    /// Moves receive queues between PMDs so the cycles they used are spread evenly; returns
    /// how many moved. A moving queue is first taken off its PMD, then given to the new one,
    /// so two PMDs never poll it at once.
    pub fn rebalance_rxqs(&self) -> usize {
        let mut ctl = self.lock();
        let moves = ctl.placement.rebalanced();
        if moves.is_empty() {
            return 0;
        }
        let keys: Vec<_> = moves.iter().map(|(k, _)| *k).collect();
        ctl.placement.park(&keys);
        let parked = ctl.publish(&self.rt);
        if !self.rt.wait_past(parked, QUIESCE_TIMEOUT) {
            tracing::warn!("a PMD did not let go of its queues in time; moving them anyway");
        }
        ctl.placement.place(&moves);
        ctl.publish(&self.rt);
        self.rt.reap();
        moves.len()
    }

    /// The PMD of a [`SwitchConfig::caller_driven`] switch, for the caller to drive (once).
    pub fn caller_pmd(&self) -> Option<crate::harness::CallerPmd> {
        let pmd = self
            .caller
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        Some(crate::harness::CallerPmd::new(
            pmd,
            self.rt.config.clone(),
            self.rt.epoch,
        ))
    }

    /// Stops PMD threads and releases every port.
    pub fn shutdown(&self) {
        self.rt.stop.store(true, Ordering::Relaxed);
        for (s, _) in &self.rt.pmds {
            s.stop.store(true, Ordering::Relaxed);
        }
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
        {
            if let Some(t) = t.thread.take() {
                let _ = t.join();
            }
        }
        let helpers =
            std::mem::take(&mut *self.housekeeping.lock().unwrap_or_else(|e| e.into_inner()));
        for t in helpers {
            let _ = t.join();
        }
        self.rt
            .bonds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let mut ctl = self.lock();
        ctl.state.bridges.clear();
        ctl.state.routes.clear();
        ctl.publish(&self.rt);
        self.rt.reap();
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.shutdown();
    }
}
