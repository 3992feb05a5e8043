//! Hints to the CPU to start loading memory that a later stage of a batch will use, so the
//! cache misses of a whole batch overlap instead of coming one after another.
//!
//! A prefetch never faults and changes nothing the program can observe, so any address will do,
//! including guest memory that the guest is changing.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{_MM_HINT_ET0, _MM_HINT_T0, _mm_prefetch};

/// The line holding `p` will be read.
#[inline(always)]
pub fn read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults and does not dereference `p`.
    unsafe {
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The line holding `p` will be written: fetch it in a state that lets this core write.
#[inline(always)]
pub fn write<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `read`.
    unsafe {
        _mm_prefetch::<_MM_HINT_ET0>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The start of a buffer of `len` bytes at `p`: its first line and, if it reaches that far, the
/// next one (a virtio-net header and a small frame). Longer buffers are streamed by the
/// hardware prefetcher once the copy starts.
#[inline(always)]
pub fn head(p: *const u8, len: usize, for_write: bool) {
    const LINE: usize = 64;
    let fetch = if for_write { write::<u8> } else { read::<u8> };
    fetch(p);
    if len > LINE {
        fetch(p.wrapping_add(LINE));
    }
}
