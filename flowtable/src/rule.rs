//! OpenFlow-style rules: masked matches, actions, and a priority-ordered table.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::key::{FlowKey, PortNo};

/// A masked match. `key` is kept pre-masked (`key & mask == key`) by every constructor here.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Match {
    pub key: FlowKey,
    pub mask: FlowKey,
}

impl Match {
    /// A match on `key` through `mask` (bits outside the mask are cleared).
    pub fn new(key: FlowKey, mask: FlowKey) -> Match {
        Match {
            key: key.masked(&mask),
            mask,
        }
    }

    /// Matches every packet.
    pub fn catchall() -> Match {
        Match::default()
    }

    #[inline]
    pub fn matches(&self, k: &FlowKey) -> bool {
        k.masked(&self.mask) == self.key
    }

    /// True if every packet `other` matches is also matched by `self`: `other` constrains every
    /// bit `self` does, to the same value. Used for non-strict delete.
    pub fn covers(&self, other: &Match) -> bool {
        other.mask.masked(&self.mask) == self.mask && other.key.masked(&self.mask) == self.key
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Output(PortNo),
    InPort,
    Flood,
    All,
    Normal,
    /// Only ever alone; a rule with no output drops anyway.
    Drop,
    /// Push a tag with this TPID (0x8100 or 0x88a8); VID/PCP copied from the current outer tag.
    PushVlan(u16),
    PopVlan,
    /// Set the VID; pushes an 802.1Q tag first on an untagged packet (like OVS `mod_vlan_vid`).
    SetVlanVid(u16),
    SetVlanPcp(u8),
    SetDscp(u8),
    /// Tunnel key (VNI) for a tunnel port with `key=flow`.
    SetTunId(u64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub priority: u16,
    pub m: Match,
    pub actions: Vec<Action>,
    pub cookie: u64,
}

/// Source of table generations. Global so two tables never share a generation unless one is an
/// unmodified clone of the other (same rules ⇒ same decisions, so sharing is then harmless).
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Rules ordered by priority (descending), then insertion order. Lookup is a linear scan: it is
/// the slow path, behind the flow caches.
#[derive(Clone, Default, Debug)]
pub struct RuleTable {
    rules: Vec<Rule>,
    generation: u64,
}

impl RuleTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Changes whenever the rule set changes (0 for a never-modified table). Combine with the
    /// MAC table's generation to invalidate flow caches.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    fn bump(&mut self) {
        self.generation = NEXT_GENERATION.fetch_add(1, Ordering::Relaxed);
    }

    /// OpenFlow add: replaces a rule with the same priority and match in place, else inserts
    /// after every rule of higher or equal priority.
    pub fn insert(&mut self, mut r: Rule) {
        r.m.key = r.m.key.masked(&r.m.mask);
        self.bump();
        if let Some(old) = self
            .rules
            .iter_mut()
            .find(|x| x.priority == r.priority && x.m == r.m)
        {
            *old = r;
            return;
        }
        let at = self.rules.partition_point(|x| x.priority >= r.priority);
        self.rules.insert(at, r);
    }

    /// Non-strict delete: removes rules whose match `m` covers (and, if given, with exactly
    /// that priority). Returns how many were removed.
    pub fn remove_matching(&mut self, m: &Match, strict_priority: Option<u16>) -> usize {
        let before = self.rules.len();
        self.rules
            .retain(|r| !(m.covers(&r.m) && strict_priority.is_none_or(|p| p == r.priority)));
        let removed = before - self.rules.len();
        if removed > 0 {
            self.bump();
        }
        removed
    }

    /// First matching rule (highest priority). The mask is the union of the masks of every
    /// rule examined, up to and including the match: any packet equal to `k` under that mask
    /// gets the same result, which is what a megaflow needs.
    pub fn lookup(&self, k: &FlowKey) -> (Option<usize>, FlowKey) {
        let mut mask = FlowKey::default();
        for (i, r) in self.rules.iter().enumerate() {
            mask = mask.union(&r.m.mask);
            if r.m.matches(k) {
                return (Some(i), mask);
            }
        }
        (None, mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port_match(p: PortNo) -> Match {
        Match::new(
            FlowKey {
                in_port: p,
                ..FlowKey::default()
            },
            FlowKey {
                in_port: u32::MAX,
                ..FlowKey::default()
            },
        )
    }

    fn rule(priority: u16, m: Match, cookie: u64) -> Rule {
        Rule {
            priority,
            m,
            actions: vec![Action::Normal],
            cookie,
        }
    }

    #[test]
    fn order_replace_and_lookup() {
        let mut t = RuleTable::new();
        assert_eq!(t.generation(), 0);
        t.insert(rule(10, Match::catchall(), 1));
        t.insert(rule(20, port_match(1), 2));
        t.insert(rule(10, port_match(2), 3));
        let g = t.generation();
        assert_ne!(g, 0);
        t.insert(rule(20, port_match(1), 4)); // replaces cookie 2
        assert_ne!(t.generation(), g);
        let cookies: Vec<u64> = t.rules().iter().map(|r| r.cookie).collect();
        assert_eq!(cookies, vec![4, 1, 3]);

        let k = FlowKey {
            in_port: 2,
            tp_dst: 9,
            ..FlowKey::default()
        };
        let (i, mask) = t.lookup(&k);
        assert_eq!(i, Some(1)); // catchall inserted before the port-2 rule at priority 10
        assert_eq!(mask.in_port, u32::MAX);
        assert_eq!(mask.tp_dst, 0);
        let empty = RuleTable::new();
        assert_eq!(empty.lookup(&k), (None, FlowKey::default()));
    }

    #[test]
    fn covers_and_delete() {
        let mut t = RuleTable::new();
        t.insert(rule(5, port_match(1), 1));
        t.insert(rule(6, port_match(2), 2));
        t.insert(rule(7, Match::catchall(), 3));
        assert!(Match::catchall().covers(&port_match(1)));
        assert!(!port_match(1).covers(&Match::catchall()));
        assert!(!port_match(1).covers(&port_match(2)));
        assert_eq!(t.remove_matching(&port_match(1), Some(9)), 0);
        assert_eq!(t.remove_matching(&port_match(1), Some(5)), 1);
        assert_eq!(t.remove_matching(&Match::catchall(), None), 2);
        assert!(t.is_empty());
    }
}
