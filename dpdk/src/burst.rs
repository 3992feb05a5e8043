//! Receive and transmit queues, a burst at a time.
//!
//! A queue handle is `Send` but not `Sync`: DPDK queues are single-threaded, so the one thread
//! holding the handle (through `&mut`) is the only one in a burst on that queue. Frames are
//! lent to the caller as byte slices for the length of a closure call; the mbufs go back to
//! their pool before the call returns.

use std::sync::Arc;

use dpdk_sys::rte_mbuf;

use crate::ethdev::Inner;

/// Frames per burst.
pub const BURST: usize = 32;

/// One receive queue of a started port.
pub struct RxQueue {
    dev: Arc<Inner>,
    qid: u16,
    mbufs: [*mut rte_mbuf; BURST],
    data: [*const u8; BURST],
    len: [u16; BURST],
}

// SAFETY: the raw pointers are scratch space for one burst and never outlive a call; the
// queue may move to another thread between bursts (DPDK queues are not tied to a thread).
unsafe impl Send for RxQueue {}

impl RxQueue {
    pub(crate) fn new(dev: Arc<Inner>, qid: u16) -> RxQueue {
        RxQueue {
            dev,
            qid,
            mbufs: [std::ptr::null_mut(); BURST],
            data: [std::ptr::null(); BURST],
            len: [0; BURST],
        }
    }

    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// Receives up to `max` (≤ [`BURST`]) frames and hands each to `frame`: `Some(bytes)`, or
    /// `None` for a frame that spans several buffers (the caller counts it as dropped).
    /// Returns how many frames were received.
    pub fn recv(&mut self, max: usize, mut frame: impl FnMut(Option<&[u8]>)) -> usize {
        let max = max.min(BURST) as u16;
        // SAFETY: the queue exists and only this handle (borrowed mutably) polls it; the
        // array holds BURST ≥ max pointers.
        let n = unsafe {
            dpdk_sys::rte_eth_rx_burst(self.dev.port_id, self.qid, self.mbufs.as_mut_ptr(), max)
        };
        if n == 0 {
            return 0;
        }
        // SAFETY: the first n entries are mbufs just received; the arrays hold n entries.
        unsafe {
            dpdk_sys::vs_mbuf_views(
                self.mbufs.as_mut_ptr(),
                n,
                self.data.as_mut_ptr(),
                self.len.as_mut_ptr(),
            );
        }
        for i in 0..usize::from(n) {
            if self.len[i] == 0 {
                frame(None);
            } else {
                // SAFETY: the mbuf is ours until freed below and its first segment holds
                // len[i] bytes at data[i]; the slice does not outlive this call of `frame`.
                frame(Some(unsafe {
                    std::slice::from_raw_parts(self.data[i], usize::from(self.len[i]))
                }));
            }
        }
        // SAFETY: the n mbufs are ours and no slice into them is left.
        unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.mbufs.as_mut_ptr(), u32::from(n)) };
        usize::from(n)
    }
}

/// One transmit queue of a started port.
pub struct TxQueue {
    dev: Arc<Inner>,
    qid: u16,
    mbufs: [*mut rte_mbuf; BURST],
    data: [*mut u8; BURST],
    len: [u16; BURST],
}

// SAFETY: as for RxQueue.
unsafe impl Send for TxQueue {}

impl TxQueue {
    pub(crate) fn new(dev: Arc<Inner>, qid: u16) -> TxQueue {
        TxQueue {
            dev,
            qid,
            mbufs: [std::ptr::null_mut(); BURST],
            data: [std::ptr::null_mut(); BURST],
            len: [0; BURST],
        }
    }

    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// Sends `n` (≤ [`BURST`]) frames: frame `i` is `len(i)` bytes long and `write(i, buf)`
    /// fills them in. Returns how many the device took; a frame too long for a buffer, or one
    /// the device's ring had no room for, is not sent.
    pub fn send(
        &mut self,
        n: usize,
        len: impl Fn(usize) -> usize,
        mut write: impl FnMut(usize, &mut [u8]),
    ) -> usize {
        let n = n.min(BURST);
        if n == 0 {
            return 0;
        }
        let Some(pool) = self.dev.pool.as_ref() else {
            return 0;
        };
        // SAFETY: the pool is alive (the port holds it) and the array has room for n.
        let ret = unsafe {
            dpdk_sys::rte_pktmbuf_alloc_bulk(pool.as_ptr(), self.mbufs.as_mut_ptr(), n as u32)
        };
        if ret != 0 {
            return 0; // pool empty: all or nothing
        }
        for i in 0..n {
            self.len[i] = len(i).min(usize::from(u16::MAX)) as u16;
        }
        // SAFETY: n fresh mbufs and n lengths; `data` receives n pointers.
        unsafe {
            dpdk_sys::vs_mbuf_fill(
                self.mbufs.as_mut_ptr(),
                n as u16,
                self.len.as_ptr(),
                self.data.as_mut_ptr(),
            );
        }
        // Write the frames that fit, keep their mbufs in order at the front.
        let mut keep = 0;
        for i in 0..n {
            if self.data[i].is_null() {
                // SAFETY: a fresh mbuf of ours that goes nowhere else.
                unsafe { dpdk_sys::rte_pktmbuf_free_bulk(&mut self.mbufs[i], 1) };
                continue;
            }
            // SAFETY: rte_pktmbuf_append made len[i] bytes at data[i] part of this fresh mbuf,
            // which nothing else references.
            let buf =
                unsafe { std::slice::from_raw_parts_mut(self.data[i], usize::from(self.len[i])) };
            write(i, buf);
            self.mbufs[keep] = self.mbufs[i];
            keep += 1;
        }
        // SAFETY: only this handle transmits on the queue; the first `keep` mbufs are filled.
        let sent = unsafe {
            dpdk_sys::rte_eth_tx_burst(
                self.dev.port_id,
                self.qid,
                self.mbufs.as_mut_ptr(),
                keep as u16,
            )
        };
        let sent = usize::from(sent);
        if sent < keep {
            // SAFETY: the device did not take these; they are still ours.
            unsafe {
                dpdk_sys::rte_pktmbuf_free_bulk(
                    self.mbufs[sent..keep].as_mut_ptr(),
                    (keep - sent) as u32,
                )
            };
        }
        sent
    }
}
