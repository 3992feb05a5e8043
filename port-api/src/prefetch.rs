//! Hints to the CPU to start loading memory that a later stage of a batch will use, so the
//! cache misses of a whole batch overlap instead of coming one after another.
//!
//! A prefetch never faults and changes nothing the program can observe, so any address will do,
//! including guest memory that the guest is changing.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};

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

/// The line holding `p` will be written: fetch it in a state that lets this core write, so the
/// store does not need a second trip to take the line from the core that last wrote it (the
/// guest's, for its receive buffers and used ring).
///
/// `_mm_prefetch` with `_MM_HINT_ET0` only becomes PREFETCHW when the whole build enables the
/// `prfchw` target feature; otherwise it is a plain read prefetch. So the instruction is issued
/// directly, on CPUs that have it.
#[inline(always)]
pub fn write<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    if has_prefetchw() {
        // SAFETY: PREFETCHW is a hint like the prefetch in `read`: it never faults and changes
        // no register, flag or memory. It runs only where CPUID reports it.
        unsafe {
            std::arch::asm!(
                "prefetchw [{0}]",
                in(reg) p,
                options(nostack, preserves_flags, readonly)
            )
        };
        return;
    }
    read(p);
}

/// Whether the CPU has PREFETCHW (CPUID 0x8000_0001, ECX bit 8), asked once.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_prefetchw() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    const UNKNOWN: u8 = 0;
    const NO: u8 = 1;
    const YES: u8 = 2;
    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
    match STATE.load(Ordering::Relaxed) {
        YES => true,
        NO => false,
        _ => {
            let yes = cpuid_prefetchw();
            STATE.store(if yes { YES } else { NO }, Ordering::Relaxed);
            yes
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[cold]
fn cpuid_prefetchw() -> bool {
    use std::arch::x86_64::__cpuid;
    // Leaf 0x8000_0001 exists on every x86-64 CPU (it holds the long-mode bit).
    let leaf = __cpuid(0x8000_0001);
    leaf.ecx & (1 << 8) != 0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetches_take_any_address() {
        let buf = [0u8; 256];
        read(buf.as_ptr());
        write(buf.as_ptr());
        head(buf.as_ptr(), buf.len(), true);
        head(buf.as_ptr(), buf.len(), false);
        // Not dereferenced: a dangling or null address is fine too.
        write(std::ptr::null::<u8>());
        read(usize::MAX as *const u8);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn prefetchw_detection_matches_the_kernel() {
        let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") else {
            return;
        };
        let kernel_says = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .is_some_and(|l| l.split_whitespace().any(|f| f == "3dnowprefetch"));
        assert_eq!(has_prefetchw(), kernel_says);
        assert_eq!(has_prefetchw(), kernel_says, "cached answer");
    }
}
