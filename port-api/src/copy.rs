//! Frame copies. A small frame (32 to 128 bytes) is copied as two fixed-size blocks that overlap
//! in the middle, inlined: for the usual 64-byte frame a call into libc's memcpy costs more than
//! the copy itself, and a forwarded frame is copied twice.

/// `dst.copy_from_slice(src)`, the small-frame way.
///
/// # Panics
/// If the lengths differ, as `copy_from_slice` does.
#[inline]
pub fn copy_frame(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "copy_frame: lengths differ");
    // SAFETY: both slices hold `src.len()` bytes, and a shared and a mutable borrow never
    // overlap.
    unsafe { copy_bytes(src.as_ptr(), dst.as_mut_ptr(), src.len()) }
}

/// `copy_nonoverlapping(src, dst, len)`, the small-frame way; for memory that must not be
/// borrowed as a slice (guest memory the guest may change meanwhile).
///
/// # Safety
/// As for `copy_nonoverlapping`: `len` bytes readable at `src`, writable at `dst`, apart.
#[inline(always)]
pub unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    // SAFETY (all three arms): each block lies inside `[0, len)` of both buffers, which the
    // caller guarantees; overlapping blocks write the same bytes of `src` twice.
    unsafe {
        if (64..=128).contains(&len) {
            std::ptr::copy_nonoverlapping(src, dst, 64);
            if len > 64 {
                std::ptr::copy_nonoverlapping(src.add(len - 64), dst.add(len - 64), 64);
            }
        } else if (32..64).contains(&len) {
            std::ptr::copy_nonoverlapping(src, dst, 32);
            std::ptr::copy_nonoverlapping(src.add(len - 32), dst.add(len - 32), 32);
        } else {
            std::ptr::copy_nonoverlapping(src, dst, len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_frame_copies_every_length() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..=300 {
            let mut dst = vec![0u8; n];
            copy_frame(&mut dst, &src[..n]);
            assert_eq!(dst, &src[..n], "length {n}");
        }
    }
}
