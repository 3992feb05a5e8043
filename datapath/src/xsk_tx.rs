//! The producer side of an AF_XDP socket's TX ring, and the socket calls around it that the
//! `xdp` crate does not offer: binding with `XDP_USE_SG` and reading `XDP_STATISTICS`.
//!
//! A frame larger than one UMEM frame goes out as several descriptors, all but the last with
//! `XDP_PKT_CONTD` set (the kernel's multi-buffer AF_XDP, 6.6 on). The `xdp` crate builds
//! descriptors without that option, so the port maps the TX ring once more and writes its
//! descriptors itself; the crate's own TX ring handle is dropped unused, so this is the only
//! producer. The crate still maps the UMEM, allocates frames and reaps the completion ring.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// One descriptor as the kernel reads it: UMEM address, length, options.
pub use libc::xdp_desc as Desc;

/// The option that says the next descriptor continues this frame.
pub const CONTINUED: u32 = libc::XDP_PKT_CONTD;

/// The TX ring mapped read-write for the life of the socket (the port drops this first).
pub struct TxProducer {
    base: NonNull<libc::c_void>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    descs: NonNull<Desc>,
    size: u32,
    /// Our producer index: descriptors written up to here, published by `submit`.
    cached_prod: u32,
    /// The kernel's consumer index plus the ring size, as last read: free entries end there.
    cached_cons: u32,
}

// SAFETY: the mapping is owned by this value and unmapped once on drop; the shared indexes are
// accessed atomically and the descriptors only by this single producer (`&mut self`).
unsafe impl Send for TxProducer {}

impl TxProducer {
    /// Maps the TX ring of `size` entries (a power of two) of the AF_XDP socket `fd`, whose
    /// rings are set up.
    pub fn map(fd: RawFd, size: u32) -> io::Result<TxProducer> {
        if !size.is_power_of_two() {
            return Err(io::Error::other("the TX ring size is not a power of two"));
        }
        let off = mmap_offsets(fd)?.tx;
        let at = |o: u64| usize::try_from(o).map_err(io::Error::other);
        let (prod_at, cons_at, desc_at) = (at(off.producer)?, at(off.consumer)?, at(off.desc)?);
        if prod_at % 4 != 0 || cons_at % 4 != 0 || desc_at % std::mem::align_of::<Desc>() != 0 {
            return Err(io::Error::other("misaligned AF_XDP TX ring"));
        }
        let map_len = desc_at + size as usize * std::mem::size_of::<Desc>();
        // SAFETY: a fresh shared mapping of our own socket's TX ring; the kernel refuses a
        // length beyond the ring. Nothing else refers to the new pages.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                libc::XDP_PGOFF_TX_RING,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p).ok_or_else(|| io::Error::other("mmap returned null"))?;
        // SAFETY: every offset is within the `map_len` bytes just mapped.
        let field = |at: usize| unsafe { base.byte_add(at) };
        let mut ring = TxProducer {
            base,
            map_len,
            producer: field(prod_at).cast(),
            consumer: field(cons_at).cast(),
            descs: field(desc_at).cast(),
            size,
            cached_prod: 0,
            cached_cons: 0,
        };
        ring.cached_prod = ring.producer().load(Ordering::Relaxed);
        ring.cached_cons = ring.consumer().load(Ordering::Acquire).wrapping_add(size);
        Ok(ring)
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: within the mapping (checked in `map`), 4-aligned, alive until drop; the kernel
        // reads it concurrently, hence atomic.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`; the kernel writes it.
        unsafe { self.consumer.as_ref() }
    }

    /// Free entries, reading the kernel's consumer index again if fewer than `want` were
    /// known.
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        // Acquire: the kernel has finished reading the entries it consumed.
        self.cached_cons = self
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.size);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Writes a descriptor into the next entry; false if the ring is full. Published by
    /// [`TxProducer::submit`].
    pub fn push(&mut self, desc: Desc) -> bool {
        if self.free(1) == 0 {
            return false;
        }
        let i = (self.cached_prod & (self.size - 1)) as usize;
        // SAFETY: `i < size` entries lie in the mapping after `descs`; the entry is free (between
        // the kernel's consumer and our producer), so the kernel does not read it until
        // `submit` publishes it.
        unsafe { self.descs.add(i).write(desc) };
        self.cached_prod = self.cached_prod.wrapping_add(1);
        true
    }

    /// Hands the pushed descriptors to the kernel.
    pub fn submit(&mut self) {
        // Release: the descriptors are written before the kernel sees the new index.
        self.producer().store(self.cached_prod, Ordering::Release);
    }
}

impl Drop for TxProducer {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, which nothing uses after this.
        unsafe { libc::munmap(self.base.as_ptr(), self.map_len) };
    }
}

pub(crate) fn mmap_offsets(fd: RawFd) -> io::Result<libc::xdp_mmap_offsets> {
    // SAFETY: all zeroes is a valid `xdp_mmap_offsets` (integers only).
    let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::xdp_mmap_offsets>();
    let mut len = size as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `off`, which has that size.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            (&raw mut off).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != size {
        // Kernels before 5.4 answer with the layout that has no flags words.
        return Err(io::Error::other("the kernel's AF_XDP rings are too old"));
    }
    Ok(off)
}

/// How a socket is bound.
#[derive(Clone, Copy, Debug)]
pub struct Bind {
    pub zero_copy: bool,
    /// Frames may span several UMEM frames (`XDP_USE_SG`).
    pub multi_buffer: bool,
}

/// Binds the AF_XDP socket `fd`, whose UMEM and rings are set up, to `queue` of `ifindex`,
/// asking for need-wakeup flags.
pub fn bind(fd: RawFd, ifindex: u32, queue: u32, how: Bind) -> io::Result<()> {
    let mut flags = libc::XDP_USE_NEED_WAKEUP;
    flags |= if how.zero_copy {
        libc::XDP_ZEROCOPY
    } else {
        libc::XDP_COPY
    };
    if how.multi_buffer {
        flags |= libc::XDP_USE_SG;
    }
    // SAFETY: all zeroes is a valid `sockaddr_xdp` (integers only).
    let mut addr: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
    addr.sxdp_family = libc::AF_XDP as libc::sa_family_t;
    addr.sxdp_flags = flags;
    addr.sxdp_ifindex = ifindex;
    addr.sxdp_queue_id = queue;
    // SAFETY: bind(2) on our own socket with a valid address of the size given.
    let ret = unsafe {
        libc::bind(
            fd,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The kernel's drop counters of the AF_XDP socket `fd`.
pub fn statistics(fd: RawFd) -> io::Result<libc::xdp_statistics> {
    // SAFETY: all zeroes is a valid `xdp_statistics` (integers only).
    let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `st`, which has that size.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            (&raw mut st).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}
