//! The housekeeping thread: ages out MAC entries once a second (each removal is a change the
//! PMDs' caches follow), and every 100 ms frees what the PMDs have let go of.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::runtime::Runtime;

pub(super) fn spawn(rt: Arc<Runtime>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("housekeeping".into())
        .spawn(move || {
            let mut last_aging = Instant::now();
            while !rt.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                rt.reap();
                if last_aging.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                last_aging = Instant::now();
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
