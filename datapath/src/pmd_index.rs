//! Which PMD the current thread is, for state kept per PMD in shared ports (bond bucket loads,
//! a DPDK port's transmit queue): one writer per row or queue, no contended lock.

use std::cell::Cell;

thread_local! {
    static PMD_INDEX: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Set by a PMD before it sends (receive processing, egress schedulers).
#[inline]
pub(crate) fn set(index: usize) {
    PMD_INDEX.with(|c| c.set(Some(index)));
}

/// This thread's PMD index; None on threads that are not PMDs.
#[inline]
pub(crate) fn get() -> Option<usize> {
    PMD_INDEX.with(Cell::get)
}
