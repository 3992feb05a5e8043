//! MAC learning table for the NORMAL action: (VLAN, MAC) → port, with aging and LRU eviction.

use std::collections::{BTreeSet, HashMap};

use crate::key::PortNo;

pub const DEFAULT_MAC_CAPACITY: usize = 8192;
pub const DEFAULT_MAC_AGING_NS: u64 = 300_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MacEntry {
    pub vlan: u16,
    pub mac: [u8; 6],
    pub port: PortNo,
    /// Time since the source was last seen.
    pub age_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    New,
    Moved,
    Refreshed,
    /// Table full and nothing to evict (capacity 0); not learned.
    Full,
    /// Multicast/broadcast source: never learned.
    Ignored,
}

type Addr = (u16, [u8; 6]);

#[derive(Clone, Copy, Debug)]
struct Slot {
    port: PortNo,
    last_seen: u64,
}

#[derive(Clone, Debug)]
pub struct MacTable {
    capacity: usize,
    aging_ns: u64,
    map: HashMap<Addr, Slot>,
    /// (last_seen, addr) of every entry, oldest first: gives LRU eviction and cheap expiry.
    by_age: BTreeSet<(u64, Addr)>,
    generation: u64,
}

impl Default for MacTable {
    fn default() -> Self {
        MacTable::new(DEFAULT_MAC_CAPACITY, DEFAULT_MAC_AGING_NS)
    }
}

pub fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

impl MacTable {
    pub fn new(capacity: usize, aging_ns: u64) -> Self {
        MacTable {
            capacity,
            aging_ns,
            map: HashMap::new(),
            by_age: BTreeSet::new(),
            generation: 0,
        }
    }

    /// Changing the aging time can change which entries are live, so the generation bumps.
    pub fn set_aging(&mut self, ns: u64) {
        self.aging_ns = ns;
        self.generation += 1;
    }

    fn expired(&self, s: &Slot, now_ns: u64) -> bool {
        now_ns.saturating_sub(s.last_seen) > self.aging_ns
    }

    /// Records that `mac` on `vlan` was seen as a source on `port`.
    pub fn learn(&mut self, vlan: u16, mac: [u8; 6], port: PortNo, now_ns: u64) -> Learned {
        if is_multicast(&mac) {
            return Learned::Ignored;
        }
        let addr = (vlan, mac);
        if let Some(&old) = self.map.get(&addr) {
            // An expired entry no longer forwarded anything, so re-learning it is New.
            let result = if self.expired(&old, now_ns) {
                Learned::New
            } else if old.port != port {
                Learned::Moved
            } else {
                Learned::Refreshed
            };
            self.by_age.remove(&(old.last_seen, addr));
            self.by_age.insert((now_ns, addr));
            self.map.insert(
                addr,
                Slot {
                    port,
                    last_seen: now_ns,
                },
            );
            if result != Learned::Refreshed {
                self.generation += 1;
            }
            return result;
        }
        if self.map.len() >= self.capacity {
            let Some((_, oldest)) = self.by_age.pop_first() else {
                return Learned::Full;
            };
            self.map.remove(&oldest);
        }
        self.map.insert(
            addr,
            Slot {
                port,
                last_seen: now_ns,
            },
        );
        self.by_age.insert((now_ns, addr));
        self.generation += 1;
        Learned::New
    }

    /// The port `mac` was learned on, unless unknown or expired.
    pub fn lookup(&self, vlan: u16, mac: [u8; 6], now_ns: u64) -> Option<PortNo> {
        let s = self.map.get(&(vlan, mac))?;
        (!self.expired(s, now_ns)).then_some(s.port)
    }

    /// Removes expired entries; returns how many.
    pub fn expire(&mut self, now_ns: u64) -> usize {
        let mut n = 0;
        while let Some(&(last_seen, addr)) = self.by_age.first() {
            if now_ns.saturating_sub(last_seen) <= self.aging_ns {
                break;
            }
            self.by_age.pop_first();
            self.map.remove(&addr);
            n += 1;
        }
        if n > 0 {
            self.generation += 1;
        }
        n
    }

    /// Forgets everything learned on `port` (port deleted or link down).
    pub fn flush_port(&mut self, port: PortNo) -> usize {
        let before = self.map.len();
        let by_age = &mut self.by_age;
        self.map.retain(|addr, s| {
            let keep = s.port != port;
            if !keep {
                by_age.remove(&(s.last_seen, *addr));
            }
            keep
        });
        let n = before - self.map.len();
        if n > 0 {
            self.generation += 1;
        }
        n
    }

    pub fn flush(&mut self) {
        if !self.map.is_empty() {
            self.generation += 1;
        }
        self.map.clear();
        self.by_age.clear();
    }

    /// Live entries, sorted by VLAN then MAC.
    pub fn entries(&self, now_ns: u64) -> Vec<MacEntry> {
        let mut v: Vec<MacEntry> = self
            .map
            .iter()
            .filter(|(_, s)| !self.expired(s, now_ns))
            .map(|(&(vlan, mac), s)| MacEntry {
                vlan,
                mac,
                port: s.port,
                age_ns: now_ns.saturating_sub(s.last_seen),
            })
            .collect();
        v.sort_by_key(|e| (e.vlan, e.mac));
        v
    }

    /// Entries stored, including expired ones not yet removed by `expire`.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bumps whenever a forwarding decision could change (New, Moved, removals, aging change).
    /// Entries that merely time out change decisions only once `expire` removes them, so call
    /// `expire` periodically.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
    const S: u64 = 1_000_000_000;

    #[test]
    fn learn_lookup_move_refresh() {
        let mut t = MacTable::new(16, 300 * S);
        let g0 = t.generation();
        assert_eq!(t.learn(10, A, 1, 0), Learned::New);
        let g1 = t.generation();
        assert!(g1 > g0);
        assert_eq!(t.lookup(10, A, 0), Some(1));
        assert_eq!(t.lookup(20, A, 0), None, "VLANs are separate");
        assert_eq!(t.learn(10, A, 1, S), Learned::Refreshed);
        assert_eq!(t.generation(), g1, "refresh changes no decision");
        assert_eq!(t.learn(10, A, 2, 2 * S), Learned::Moved);
        assert!(t.generation() > g1);
        assert_eq!(t.lookup(10, A, 2 * S), Some(2));
        assert_eq!(t.learn(10, [0xff; 6], 1, 0), Learned::Ignored);
        assert_eq!(
            t.learn(10, [0x01, 0, 0x5e, 0, 0, 1], 1, 0),
            Learned::Ignored
        );
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn aging() {
        let mut t = MacTable::new(16, 10 * S);
        t.learn(0, A, 1, 0);
        t.learn(0, B, 2, 5 * S);
        assert_eq!(t.lookup(0, A, 10 * S), Some(1));
        assert_eq!(
            t.lookup(0, A, 11 * S),
            None,
            "expired entries are not returned"
        );
        assert_eq!(t.entries(11 * S).len(), 1);
        let g = t.generation();
        assert_eq!(t.expire(11 * S), 1);
        assert!(t.generation() > g);
        assert_eq!(t.len(), 1);
        let g = t.generation();
        assert_eq!(t.expire(11 * S), 0);
        assert_eq!(t.generation(), g);
        // Re-learning an expired (not yet removed) entry is New.
        assert_eq!(t.learn(0, B, 2, 100 * S), Learned::New);
        let e = t.entries(101 * S);
        assert_eq!(
            e,
            vec![MacEntry {
                vlan: 0,
                mac: B,
                port: 2,
                age_ns: S
            }]
        );
    }

    #[test]
    fn lru_eviction_and_flush() {
        let mut t = MacTable::new(2, 300 * S);
        t.learn(0, A, 1, 0);
        t.learn(0, B, 2, S);
        t.learn(0, A, 1, 2 * S); // A is now more recent than B
        let g = t.generation();
        assert_eq!(t.learn(0, C, 3, 3 * S), Learned::New);
        assert!(t.generation() > g);
        assert_eq!(t.lookup(0, B, 3 * S), None, "least recently seen evicted");
        assert_eq!(t.lookup(0, A, 3 * S), Some(1));
        assert_eq!(t.len(), 2);
        assert_eq!(t.flush_port(1), 1);
        assert_eq!(t.flush_port(1), 0);
        assert_eq!(t.lookup(0, C, 3 * S), Some(3));
        let g = t.generation();
        t.flush();
        assert!(t.is_empty());
        assert!(t.generation() > g);
        let mut z = MacTable::new(0, S);
        assert_eq!(z.learn(0, A, 1, 0), Learned::Full);
    }
}
