//! A pool of packet buffers (mbufs) for one port.

use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::Error;

/// An mbuf pool. It must outlive every port queue that takes buffers from it, which
/// [`crate::EthDev`] ensures by owning its pool.
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
    size: u32,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe: any thread may allocate from
// and free to one (per-lcore caches belong to the EAL thread that uses them).
unsafe impl Send for Mempool {}
// SAFETY: as above; shared references only allocate, free and read counts.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `size` mbufs of `data_room` bytes (headroom included) on NUMA `socket`, each lcore
    /// keeping up to `cache` in a private cache.
    pub fn new(
        name: &str,
        size: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Mempool, Error> {
        let cname = CString::new(name)
            .map_err(|_| Error::Invalid(format!("mempool name {name:?} has a NUL byte")))?;
        // SAFETY: the name is NUL-terminated and copied by DPDK; the other arguments are
        // plain values. A NULL return sets rte_errno.
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), size, cache, 0, data_room, socket)
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw, size })
            .ok_or_else(|| Error::call(format!("mbuf pool of {size} buffers"), -1))
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Buffers in the pool (not handed out).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive (owned by self); counting only reads it.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Buffers handed out (in device rings, in bursts, leaked).
    pub fn in_use(&self) -> u32 {
        // SAFETY: as in `available`.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: no queue uses the pool any more (the owning EthDev stopped and closed its
        // port first), and nothing else holds the pointer.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
