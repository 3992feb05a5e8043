//! The exact-match cache's index hash: CRC32C over the key's ten words, one SSE4.2 `crc32`
//! instruction per word, spread to 64 bits by one multiply. About a third of the instructions
//! of [`KeyHasher`]'s five 128-bit multiplies, which stay the fallback on CPUs without SSE4.2.
//!
//! CRC is linear, so a sender who knows it can craft keys that share EMC slots whatever the
//! seed. In the EMC that costs only hit rate: those flows fall through to the megaflow cache,
//! whose tables keep the seeded [`KeyHasher`]. Open vSwitch's EMC is indexed by CRC32C or the
//! NIC's RSS hash in the same way.

use crate::hash::KeyHasher;
use crate::key::FlowKey;

/// Odd, so the spreading multiply loses none of the CRC's 32 bits.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Clone, Debug)]
pub(super) struct EmcHasher {
    seed: u32,
    /// Whether the CPU has the `crc32` instruction (asked once, at construction).
    crc: bool,
}

impl EmcHasher {
    /// A hasher with a seed from the operating system's randomness, as [`KeyHasher::random`].
    pub(super) fn random() -> Self {
        use std::hash::BuildHasher;
        EmcHasher::new(std::collections::hash_map::RandomState::new().hash_one(0u8) as u32)
    }

    pub(super) fn new(seed: u32) -> Self {
        EmcHasher {
            seed,
            crc: has_crc32(),
        }
    }

    /// The key's EMC hash; `fallback` hashes where the CPU has no `crc32`.
    #[inline(always)]
    pub(super) fn hash(&self, key: &FlowKey, fallback: &KeyHasher) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if self.crc {
            return crc_words(key, self.seed);
        }
        fallback.hash(key)
    }
}

#[cfg(target_arch = "x86_64")]
fn has_crc32() -> bool {
    std::arch::is_x86_feature_detected!("sse4.2")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_crc32() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn crc_words(key: &FlowKey, seed: u32) -> u64 {
    let words: *const [u64; 10] = key.words();
    let mut acc = u64::from(seed);
    // SAFETY: `crc32 r64, m64` reads the eight bytes at each offset 0..72 of `words`, a live
    // borrow of the key's ten initialised words, and writes only `acc`. It runs only when
    // `EmcHasher::new` found SSE4.2 (`crc` true); it touches no flags and no stack.
    unsafe {
        std::arch::asm!(
            "crc32 {acc}, qword ptr [{w}]",
            "crc32 {acc}, qword ptr [{w} + 8]",
            "crc32 {acc}, qword ptr [{w} + 16]",
            "crc32 {acc}, qword ptr [{w} + 24]",
            "crc32 {acc}, qword ptr [{w} + 32]",
            "crc32 {acc}, qword ptr [{w} + 40]",
            "crc32 {acc}, qword ptr [{w} + 48]",
            "crc32 {acc}, qword ptr [{w} + 56]",
            "crc32 {acc}, qword ptr [{w} + 64]",
            "crc32 {acc}, qword ptr [{w} + 72]",
            acc = inout(reg) acc,
            w = in(reg) words,
            options(pure, readonly, nostack, preserves_flags)
        )
    };
    acc.wrapping_mul(SPREAD)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC32C (Castagnoli, reflected, as the `crc32` instruction computes it) bit by bit, with
    /// no final inversion, over the key's bytes in memory order.
    fn reference(key: &FlowKey, seed: u32) -> u64 {
        let mut crc = seed;
        for w in key.words() {
            for b in w.to_le_bytes() {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ 0x82f6_3b78
                    } else {
                        crc >> 1
                    };
                }
            }
        }
        u64::from(crc).wrapping_mul(SPREAD)
    }

    fn key(tp_dst: u16) -> FlowKey {
        FlowKey {
            in_port: 3,
            nw_src: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            tp_dst,
            ..FlowKey::default()
        }
    }

    #[test]
    fn instruction_matches_the_polynomial() {
        let h = EmcHasher::new(0x1234_5678);
        if !h.crc {
            return;
        }
        let fallback = KeyHasher::with_seed(1);
        for p in [0, 1, 80, 65535] {
            assert_eq!(h.hash(&key(p), &fallback), reference(&key(p), 0x1234_5678));
        }
    }

    #[test]
    fn both_ways_spread() {
        // The EMC takes one way from the low bits and one from bits 32 and up.
        let h = EmcHasher::new(7);
        let fallback = KeyHasher::with_seed(3);
        for shift in [0, 32] {
            let mut slots: Vec<u64> = (0..64u16)
                .map(|p| (h.hash(&key(p), &fallback) >> shift) & 1023)
                .collect();
            slots.sort();
            slots.dedup();
            assert!(slots.len() > 50, "shift {shift}: {} slots", slots.len());
        }
    }

    #[test]
    fn swapped_addresses_differ() {
        let h = EmcHasher::new(9);
        let fallback = KeyHasher::with_seed(4);
        let mut a = key(1);
        a.nw_dst = [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut b = a;
        std::mem::swap(&mut b.nw_src, &mut b.nw_dst);
        assert_ne!(h.hash(&a, &fallback), h.hash(&b, &fallback));
    }
}
