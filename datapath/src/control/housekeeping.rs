//! The housekeeping thread: ages out MAC entries once a second (each removal is a change the
//! PMDs' caches follow) and stops captures nobody reads, every 100 ms frees what the PMDs
//! have let go of, and every 5 s ends the receive queues' latency windows.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::runtime::Runtime;
use crate::pmd::WINDOW_SECS;

/// Ends every receive queue's latency window, and every egress scheduler's window of waits.
fn rotate_latency(rt: &Runtime) {
    // The queues' statistics only: holding the snapshot would keep removed ports open.
    let (stats, schedulers): (Vec<_>, Vec<_>) = {
        let snap = rt.config.load();
        (
            snap.rxqs
                .iter()
                .flatten()
                .map(|q| q.stats.clone())
                .collect(),
            snap.schedulers.iter().flatten().cloned().collect(),
        )
    };
    for s in stats {
        s.latency.rotate();
    }
    for q in schedulers {
        q.rotate_waits();
    }
}

/// Stops captures whose reader went away (a killed `vswitchctl capture`).
fn stop_abandoned_captures(rt: &Runtime) {
    let taps: Vec<_> = rt
        .config
        .load()
        .bridges
        .iter()
        .flat_map(|b| b.ports.iter().map(|p| p.tap.clone()))
        .collect();
    for t in taps {
        if t.stop_if_abandoned() {
            tracing::info!("stopped a capture nobody read for 10 s");
        }
    }
}

pub(super) fn spawn(rt: Arc<Runtime>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            let mut last_aging = Instant::now();
            let mut last_rotation = Instant::now();
            while !rt.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                rt.reap();
                if last_rotation.elapsed() >= Duration::from_secs(WINDOW_SECS) {
                    last_rotation = Instant::now();
                    rotate_latency(&rt);
                }
                if last_aging.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                last_aging = Instant::now();
                stop_abandoned_captures(&rt);
                let now = rt.now_ns();
                // The bridges' tables only: holding the snapshot would keep removed ports open.
                let tables: Vec<_> = rt
                    .config
                    .load()
                    .bridges
                    .iter()
                    .map(|b| b.shared.clone())
                    .collect();
                for t in tables {
                    t.macs.lock().expire(now);
                }
            }
        })
}
