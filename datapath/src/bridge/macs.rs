//! A bridge's MAC learning table, shared by every PMD's slow path, the housekeeping thread and
//! the control thread. Its change number is mirrored in an atomic so a PMD notices learned,
//! moved or removed addresses with one load per batch, without the lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use flowtable::{Learned, MacLearning, MacTable, PortNo};

pub(crate) struct MacShared {
    table: Mutex<MacTable>,
    /// `MacTable::change_seq` as of the last unlock.
    seq: AtomicU64,
}

/// The locked table; publishes its change number when dropped.
pub(crate) struct MacGuard<'a> {
    shared: &'a MacShared,
    table: MutexGuard<'a, MacTable>,
}

impl std::ops::Deref for MacGuard<'_> {
    type Target = MacTable;
    fn deref(&self) -> &MacTable {
        &self.table
    }
}

impl std::ops::DerefMut for MacGuard<'_> {
    fn deref_mut(&mut self) -> &mut MacTable {
        &mut self.table
    }
}

impl Drop for MacGuard<'_> {
    fn drop(&mut self) {
        self.shared
            .seq
            .store(self.table.change_seq(), Ordering::Release);
    }
}

impl MacShared {
    pub(crate) fn new(table: MacTable) -> Self {
        let seq = AtomicU64::new(table.change_seq());
        MacShared {
            table: Mutex::new(table),
            seq,
        }
    }

    pub(crate) fn lock(&self) -> MacGuard<'_> {
        MacGuard {
            shared: self,
            table: self.table.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// The table's change number as of its last unlock.
    #[inline]
    pub(crate) fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }
}

/// The table as the slow path sees it: locked on first use only, so translations that never
/// reach NORMAL (port rules) never take the bridge's lock.
pub(crate) struct LazyMacs<'a> {
    shared: &'a MacShared,
    guard: Option<MacGuard<'a>>,
}

impl<'a> LazyMacs<'a> {
    pub(crate) fn new(shared: &'a MacShared) -> Self {
        LazyMacs {
            shared,
            guard: None,
        }
    }

    fn table(&mut self) -> &mut MacTable {
        self.guard.get_or_insert_with(|| self.shared.lock())
    }
}

impl MacLearning for LazyMacs<'_> {
    fn learn(&mut self, vlan: u16, mac: [u8; 6], port: PortNo, now_ns: u64) -> Learned {
        self.table().learn(vlan, mac, port, now_ns)
    }

    fn lookup(&mut self, vlan: u16, mac: [u8; 6], now_ns: u64) -> Option<PortNo> {
        self.table().lookup(vlan, mac, now_ns)
    }
}
