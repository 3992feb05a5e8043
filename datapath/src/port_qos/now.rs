//! The time of the batch a thread is working on, for ports with an egress scheduler.
//!
//! `Port::tx_burst` takes no time argument (most ports need none), but a scheduler needs one
//! and must not read the clock per call: the PMD sets the time it read once for the iteration
//! here, and the scheduler reads it back (a thread-local load).

use std::cell::Cell;

thread_local! {
    static NOW_NS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Sets the time of the work this thread does next.
#[inline]
pub(crate) fn set(now_ns: u64) {
    NOW_NS.with(|n| n.set(Some(now_ns)));
}

/// The time set by this thread's PMD, if it is one.
#[inline]
pub(crate) fn get() -> Option<u64> {
    NOW_NS.with(Cell::get)
}
