//! The bonds thread: every [`TICK`] it runs each bond's control side (LACP frames received,
//! carrier, timers, rebalancing, learning packets), which publishes a new distribution to the
//! PMDs when anything changed. The tick bounds how long a carrier loss goes unnoticed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use super::runtime::Runtime;

/// How often bonds run: a link that goes down is noticed within this (plus `downdelay`).
pub(super) const TICK: Duration = Duration::from_millis(10);

pub(super) fn spawn(rt: Arc<Runtime>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("bonds".into())
        .spawn(move || {
            while !rt.stop.load(Ordering::Relaxed) {
                std::thread::sleep(TICK);
                let bonds = rt.bonds.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let now = rt.epoch.elapsed();
                for b in bonds {
                    b.ctl().tick(&b, now);
                }
            }
        })
}
