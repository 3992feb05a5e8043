//! The `XDP_RING_NEED_WAKEUP` flags of an AF_XDP socket's fill and TX rings.
//!
//! A socket bound with `XDP_USE_NEED_WAKEUP` has the kernel set a ring's flag when it needs a
//! syscall to go on: a `sendto` to transmit what the TX ring holds, a `recvfrom` (or `poll`) to
//! take new receive buffers from the fill ring. While a flag is clear the port makes no syscall
//! for that ring. The `xdp` crate maps the rings but does not expose these words, so this maps
//! the head of each of the two rings once more, read-only, and reads the flags from there.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Both rings' flags, mapped for the life of the socket (the port drops this before it).
pub struct RingFlags {
    fill: FlagWord,
    tx: FlagWord,
}

// SAFETY: the mappings are only read, through atomic loads, and unmapped once on drop; the
// kernel is the only writer.
unsafe impl Send for RingFlags {}
// SAFETY: as above: shared access is atomic loads only.
unsafe impl Sync for RingFlags {}

impl RingFlags {
    /// Maps the flags of the fill and TX rings of the AF_XDP socket `fd`, whose rings are
    /// already set up.
    pub fn map(fd: RawFd) -> io::Result<RingFlags> {
        let off = crate::xsk_tx::mmap_offsets(fd)?;
        Ok(RingFlags {
            fill: FlagWord::map(
                fd,
                libc::XDP_UMEM_PGOFF_FILL_RING as libc::off_t,
                off.fr.flags,
            )?,
            tx: FlagWord::map(fd, libc::XDP_PGOFF_TX_RING, off.tx.flags)?,
        })
    }

    /// The kernel waits for a syscall before it takes more receive buffers.
    #[inline]
    pub fn fill_needs_wakeup(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// The kernel waits for a syscall before it sends what the TX ring holds.
    #[inline]
    pub fn tx_needs_wakeup(&self) -> bool {
        self.tx.needs_wakeup()
    }
}

/// One ring's head, mapped up to and including its flags word.
struct FlagWord {
    base: NonNull<libc::c_void>,
    len: usize,
    flags_at: usize,
}

impl FlagWord {
    fn map(fd: RawFd, pgoff: libc::off_t, flags_at: u64) -> io::Result<FlagWord> {
        let flags_at = usize::try_from(flags_at).map_err(io::Error::other)?;
        if flags_at % std::mem::align_of::<AtomicU32>() != 0 {
            return Err(io::Error::other("misaligned AF_XDP ring flags word"));
        }
        let len = flags_at + std::mem::size_of::<u32>();
        // SAFETY: a fresh shared read-only mapping of the ring at `pgoff` of our own socket; the
        // kernel checks that `len` is within the ring. Nothing else refers to the new pages.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(FlagWord {
            base,
            len,
            flags_at,
        })
    }

    #[inline]
    fn needs_wakeup(&self) -> bool {
        // SAFETY: `flags_at + 4 <= len` bytes are mapped from `base` until drop, and the word is
        // 4-aligned (checked in `map`; the mapping is page-aligned). The kernel writes it
        // concurrently, so it is read atomically; like libxdp, without a fence.
        let word = unsafe {
            &*self
                .base
                .as_ptr()
                .cast::<u8>()
                .add(self.flags_at)
                .cast::<AtomicU32>()
        };
        word.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

impl Drop for FlagWord {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map`, which nothing uses after this.
        unsafe { libc::munmap(self.base.as_ptr(), self.len) };
    }
}
