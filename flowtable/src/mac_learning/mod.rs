//! MAC learning table for the NORMAL action: (VLAN, MAC) → port, with aging, per-port limits
//! and fair eviction, and a log of the addresses whose forwarding changed (see [`changes`]).

mod changes;
mod limits;

use std::collections::{BTreeSet, HashMap};

use crate::key::PortNo;
pub use changes::{MAX_CHANGES, Overflowed};
use limits::LearnBucket;
pub use limits::{DEFAULT_LEARN_RATE, DEFAULT_PORT_MAC_LIMIT, PortLimits};

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
    /// The port holds as many entries as its limit allows; not learned.
    Limited,
    /// The port learned as many new addresses as its rate allows just now; not learned.
    RateLimited,
}

impl Learned {
    /// Learning was refused by the port's limits (counted as `mac-learn-limited`).
    pub fn refused(self) -> bool {
        matches!(self, Learned::Limited | Learned::RateLimited)
    }
}

type Addr = (u16, [u8; 6]);

#[derive(Clone, Copy, Debug)]
struct Slot {
    port: PortNo,
    last_seen: u64,
}

/// What the table keeps per port: its entries by age (for fair eviction), its limits and its
/// learning credit.
#[derive(Clone, Debug, Default)]
struct PortState {
    by_age: BTreeSet<(u64, Addr)>,
    limits: Option<PortLimits>,
    bucket: LearnBucket,
}

#[derive(Clone, Debug)]
pub struct MacTable {
    capacity: usize,
    aging_ns: u64,
    map: HashMap<Addr, Slot>,
    /// (last_seen, addr) of every entry, oldest first: cheap expiry.
    by_age: BTreeSet<(u64, Addr)>,
    ports: HashMap<PortNo, PortState>,
    default_limits: PortLimits,
    changes: changes::ChangeLog,
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
            ports: HashMap::new(),
            default_limits: PortLimits::default(),
            changes: changes::ChangeLog::default(),
        }
    }

    /// Changing the aging time can change which entries are live: every reader starts over.
    pub fn set_aging(&mut self, ns: u64) {
        self.aging_ns = ns;
        self.changes.reset_readers();
    }

    /// Limits for ports without their own.
    pub fn set_default_limits(&mut self, limits: PortLimits) {
        self.default_limits = limits;
    }

    /// A port's own limits (None: the table's defaults). Entries it already holds stay.
    pub fn set_port_limits(&mut self, port: PortNo, limits: Option<PortLimits>) {
        self.ports.entry(port).or_default().limits = limits;
    }

    pub fn port_limits(&self, port: PortNo) -> PortLimits {
        self.ports
            .get(&port)
            .and_then(|p| p.limits)
            .unwrap_or(self.default_limits)
    }

    /// Entries the port holds.
    pub fn port_entries(&self, port: PortNo) -> usize {
        self.ports.get(&port).map_or(0, |p| p.by_age.len())
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
        let old = self.map.get(&addr).copied();
        if let Some(old) = old
            && old.port == port
        {
            // Same port: a refresh, or the re-learning of an entry that timed out but was not
            // removed yet (it no longer forwarded anything, so that is a change).
            let live = !self.expired(&old, now_ns);
            self.touch(addr, old, now_ns);
            if live {
                return Learned::Refreshed;
            }
            self.changes.push(vlan, mac);
            return Learned::New;
        }
        // A new address for this port (new to the table, or moved from another port).
        let limits = self.port_limits(port);
        if self.port_entries(port) >= limits.max_entries {
            return Learned::Limited;
        }
        if !self
            .ports
            .entry(port)
            .or_default()
            .bucket
            .take(limits.learn_rate, now_ns)
        {
            return Learned::RateLimited;
        }
        if let Some(old) = old {
            self.remove(addr, old);
        } else if self.map.len() >= self.capacity && !self.evict_fairly() {
            return Learned::Full;
        }
        self.insert(addr, port, now_ns);
        self.changes.push(vlan, mac);
        if old.is_some_and(|o| !self.expired(&o, now_ns)) {
            Learned::Moved
        } else {
            Learned::New
        }
    }

    fn insert(&mut self, addr: Addr, port: PortNo, now_ns: u64) {
        self.map.insert(
            addr,
            Slot {
                port,
                last_seen: now_ns,
            },
        );
        self.by_age.insert((now_ns, addr));
        self.ports
            .entry(port)
            .or_default()
            .by_age
            .insert((now_ns, addr));
    }

    fn touch(&mut self, addr: Addr, old: Slot, now_ns: u64) {
        self.remove(addr, old);
        self.insert(addr, old.port, now_ns);
    }

    fn remove(&mut self, addr: Addr, old: Slot) {
        self.map.remove(&addr);
        self.by_age.remove(&(old.last_seen, addr));
        if let Some(p) = self.ports.get_mut(&old.port) {
            p.by_age.remove(&(old.last_seen, addr));
        }
    }

    /// Makes room: the least recently seen entry of the port holding the most entries goes
    /// (as Open vSwitch evicts), so a flooding port evicts its own addresses first.
    fn evict_fairly(&mut self) -> bool {
        let Some((_, victim)) = self
            .ports
            .values()
            .filter_map(|p| p.by_age.first().map(|first| (p.by_age.len(), *first)))
            .max_by_key(|(len, (seen, _))| (*len, std::cmp::Reverse(*seen)))
        else {
            return false;
        };
        let (_, addr) = victim;
        if let Some(&slot) = self.map.get(&addr) {
            self.remove(addr, slot);
            self.changes.push(addr.0, addr.1);
            return true;
        }
        false
    }

    /// What [`MacTable::learn`] would do now, without doing it (for traces). The learning
    /// rate is not drawn from, so a port at its rate limit shows as learning.
    pub fn would_learn(&self, vlan: u16, mac: [u8; 6], port: PortNo, now_ns: u64) -> Learned {
        if is_multicast(&mac) {
            return Learned::Ignored;
        }
        let old = self.map.get(&(vlan, mac));
        let live = old.filter(|o| !self.expired(o, now_ns));
        match old {
            Some(o) if o.port == port => {
                if live.is_some() {
                    Learned::Refreshed
                } else {
                    Learned::New
                }
            }
            _ if self.port_entries(port) >= self.port_limits(port).max_entries => Learned::Limited,
            _ if live.is_some() => Learned::Moved,
            _ => Learned::New,
        }
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
            if let Some(&slot) = self.map.get(&addr) {
                self.remove(addr, slot);
            } else {
                self.by_age.pop_first();
            }
            self.changes.push(addr.0, addr.1);
            n += 1;
        }
        n
    }

    /// Forgets everything learned on `port` (port deleted or its VLANs changed). Its limits
    /// stay until [`MacTable::forget_port`].
    pub fn flush_port(&mut self, port: PortNo) -> usize {
        let Some(p) = self.ports.get_mut(&port) else {
            return 0;
        };
        let entries = std::mem::take(&mut p.by_age);
        for &(last_seen, addr) in &entries {
            self.map.remove(&addr);
            self.by_age.remove(&(last_seen, addr));
            self.changes.push(addr.0, addr.1);
        }
        entries.len()
    }

    /// Forgets the port entirely: its entries, limits and learning credit.
    pub fn forget_port(&mut self, port: PortNo) {
        self.flush_port(port);
        self.ports.remove(&port);
    }

    pub fn flush(&mut self) {
        let addrs: Vec<Addr> = self.map.keys().copied().collect();
        for (vlan, mac) in addrs {
            self.changes.push(vlan, mac);
        }
        self.map.clear();
        self.by_age.clear();
        for p in self.ports.values_mut() {
            p.by_age.clear();
        }
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

    /// Number of the latest change to forwarding (learned, moved or removed address). Entries
    /// that merely time out change decisions only once `expire` removes them, so call `expire`
    /// periodically.
    pub fn change_seq(&self) -> u64 {
        self.changes.seq()
    }

    /// (VLAN, MAC) of every change after `seen`, oldest first, or [`Overflowed`] if more
    /// happened than the log keeps.
    pub fn changes_since(
        &self,
        seen: u64,
    ) -> Result<impl Iterator<Item = (u16, [u8; 6])> + '_, Overflowed> {
        self.changes.since(seen)
    }
}

#[cfg(test)]
mod tests;
