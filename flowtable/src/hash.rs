//! Seeded hashing of flow keys for the caches.
//!
//! Five independent 64×64→128-bit multiplies over pairs of key words, folded together: short
//! dependency chains, so the hashes of a whole batch overlap in the CPU. The seed is random per
//! process, so a sender cannot craft keys that all land in one hash bucket.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use crate::key::{FlowKey, KEY_WORDS};

const SEEDS: usize = KEY_WORDS + 2;

#[derive(Clone, Debug)]
pub struct KeyHasher {
    seed: [u64; SEEDS],
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher::random()
    }
}

/// Multiply and fold the two halves of the 128-bit product.
#[inline(always)]
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    (r as u64) ^ ((r >> 64) as u64)
}

impl KeyHasher {
    /// A hasher with a seed from the operating system's randomness (via std's `RandomState`).
    pub fn random() -> Self {
        let state = RandomState::new();
        KeyHasher {
            seed: std::array::from_fn(|i| state.hash_one(i) | 1),
        }
    }

    /// A reproducible hasher, for tests and benchmarks.
    pub fn with_seed(seed: u64) -> Self {
        let mut s = seed;
        KeyHasher {
            seed: std::array::from_fn(|_| {
                // splitmix64
                s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) | 1
            }),
        }
    }

    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        let w = key.words();
        let s = &self.seed;
        let a = fold_mul(w[0] ^ s[0], w[1] ^ s[1]);
        let b = fold_mul(w[2] ^ s[2], w[3] ^ s[3]);
        let c = fold_mul(w[4] ^ s[4], w[5] ^ s[5]);
        let d = fold_mul(w[6] ^ s[6], w[7] ^ s[7]);
        let e = fold_mul(w[8] ^ s[8], w[9] ^ s[9]);
        fold_mul(a ^ c ^ e ^ s[10], b ^ d ^ s[11])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_sees_every_field() {
        let h = KeyHasher::with_seed(1);
        let base = h.hash(&FlowKey::default());
        assert_eq!(base, h.hash(&FlowKey::default()));
        let mut changed = [FlowKey::default(); 8];
        changed[0].nw_dst[15] = 1;
        changed[1].tp_dst = 1;
        changed[2].dl_src[5] = 1;
        changed[3].cvlan_tci = 1;
        changed[4].tun_dst = 1;
        changed[5].nw_frag = 1;
        changed[6].tun_id = 1;
        changed[7].in_port = 1;
        for k in changed {
            assert_ne!(h.hash(&k), base, "{k:?}");
        }
    }

    #[test]
    fn low_and_high_bits_spread() {
        // Keys differing only in one field must land in different small-table slots, whichever
        // end of the hash the table takes its index from.
        let h = KeyHasher::with_seed(2);
        for shift in [0, 32, 54] {
            let mut slots: Vec<u64> = (0..64u16)
                .map(|p| {
                    let k = FlowKey {
                        tp_dst: p,
                        ..FlowKey::default()
                    };
                    (h.hash(&k) >> shift) & 1023
                })
                .collect();
            slots.sort();
            slots.dedup();
            assert!(slots.len() > 50, "shift {shift}: {} slots", slots.len());
        }
    }

    #[test]
    fn seeds_differ() {
        let k = FlowKey {
            tp_src: 7,
            ..FlowKey::default()
        };
        assert_ne!(KeyHasher::random().hash(&k), KeyHasher::random().hash(&k));
        assert_eq!(
            KeyHasher::with_seed(5).hash(&k),
            KeyHasher::with_seed(5).hash(&k)
        );
    }
}
