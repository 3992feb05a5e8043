//! OpenFlow-style rules: masked matches, actions, and a priority-ordered table.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::key::{FlowKey, PortNo};

/// A masked match. `key` is kept pre-masked (`key & mask == key`) by every constructor here.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
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
    /// The egress queue (traffic class 0-7) of the output port's scheduler.
    SetQueue(u8),
    /// Polices the packet with the bridge's meter (`add-meter`): it may be dropped or
    /// re-marked.
    Meter(u32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub priority: u16,
    pub m: Match,
    pub actions: Vec<Action>,
    pub cookie: u64,
}

/// A rule's identity while it is installed: never reused, so a cached decision that names it
/// can be recognised when the rule goes away. A replaced rule (same priority and match) gets a
/// new id and fresh counters, as OpenFlow's add does.
pub type RuleId = u64;

/// Packets and bytes that hit a rule, added by every PMD that forwards with it.
#[derive(Debug, Default)]
pub struct RuleStats {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
}

impl RuleStats {
    pub fn add(&self, packets: u64, bytes: u64) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn get(&self) -> (u64, u64) {
        (
            self.packets.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}

/// A rule as installed in a table: the rule, its id and its counters. Shared (behind an `Arc`)
/// by every copy of the table and by the cached decisions it produced.
#[derive(Debug)]
pub struct InstalledRule {
    pub id: RuleId,
    pub rule: Rule,
    pub stats: RuleStats,
}

/// Source of rule ids, global so ids stay unique across tables and their copies.
static NEXT_RULE_ID: AtomicU64 = AtomicU64::new(1);

/// What an insert did.
#[derive(Debug)]
pub struct Inserted {
    pub rule: Arc<InstalledRule>,
    /// The rule it replaced (same priority and match), if any.
    pub replaced: Option<Arc<InstalledRule>>,
}

/// Rules ordered by priority (descending), then insertion order. Lookup is a linear scan: it is
/// the slow path, behind the flow caches. Cloning is cheap (rules are shared).
#[derive(Clone, Default, Debug)]
pub struct RuleTable {
    rules: Vec<Arc<InstalledRule>>,
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

    pub fn rules(&self) -> &[Arc<InstalledRule>] {
        &self.rules
    }

    /// OpenFlow add: replaces a rule with the same priority and match in place (new id, new
    /// counters), else inserts after every rule of higher or equal priority.
    pub fn insert(&mut self, mut r: Rule) -> Inserted {
        r.m.key = r.m.key.masked(&r.m.mask);
        let rule = Arc::new(InstalledRule {
            id: NEXT_RULE_ID.fetch_add(1, Ordering::Relaxed),
            rule: r,
            stats: RuleStats::default(),
        });
        let new = &rule.rule;
        if let Some(old) = self
            .rules
            .iter_mut()
            .find(|x| x.rule.priority == new.priority && x.rule.m == new.m)
        {
            let replaced = std::mem::replace(old, Arc::clone(&rule));
            return Inserted {
                rule,
                replaced: Some(replaced),
            };
        }
        let at = self
            .rules
            .partition_point(|x| x.rule.priority >= new.priority);
        self.rules.insert(at, Arc::clone(&rule));
        Inserted {
            rule,
            replaced: None,
        }
    }

    /// Non-strict delete: removes rules whose match `m` covers (and, if given, with exactly
    /// that priority). Returns the removed rules.
    pub fn remove_matching(
        &mut self,
        m: &Match,
        strict_priority: Option<u16>,
    ) -> Vec<Arc<InstalledRule>> {
        let mut removed = Vec::new();
        self.rules.retain(|r| {
            let hit = m.covers(&r.rule.m) && strict_priority.is_none_or(|p| p == r.rule.priority);
            if hit {
                removed.push(Arc::clone(r));
            }
            !hit
        });
        removed
    }

    /// Strict delete: removes the rule with exactly this priority and match.
    pub fn remove_exact(&mut self, priority: u16, m: &Match) -> Option<Arc<InstalledRule>> {
        let i = self
            .rules
            .iter()
            .position(|r| r.rule.priority == priority && r.rule.m == *m)?;
        Some(self.rules.remove(i))
    }

    /// Removes the rule with this id.
    pub fn remove_id(&mut self, id: RuleId) -> Option<Arc<InstalledRule>> {
        let i = self.rules.iter().position(|r| r.id == id)?;
        Some(self.rules.remove(i))
    }

    /// Puts back a rule taken out earlier, with its id and counters (undoing a change).
    pub fn restore(&mut self, rule: Arc<InstalledRule>) {
        let at = self
            .rules
            .partition_point(|x| x.rule.priority >= rule.rule.priority);
        self.rules.insert(at, rule);
    }

    /// The installed rule with this priority and match.
    pub fn find(&self, priority: u16, m: &Match) -> Option<&Arc<InstalledRule>> {
        self.rules
            .iter()
            .find(|r| r.rule.priority == priority && r.rule.m == *m)
    }

    /// First matching rule (highest priority). The mask is the union of the masks of every
    /// rule examined, up to and including the match: any packet equal to `k` under that mask
    /// gets the same result, which is what a megaflow needs.
    pub fn lookup(&self, k: &FlowKey) -> (Option<&Arc<InstalledRule>>, FlowKey) {
        let mut mask = FlowKey::default();
        for r in &self.rules {
            mask = mask.union(&r.rule.m.mask);
            if r.rule.m.matches(k) {
                return (Some(r), mask);
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
        t.insert(rule(10, Match::catchall(), 1));
        let first = t.insert(rule(20, port_match(1), 2));
        t.insert(rule(10, port_match(2), 3));
        assert!(first.replaced.is_none());
        first.rule.stats.add(3, 180);
        let again = t.insert(rule(20, port_match(1), 4)); // replaces cookie 2
        let replaced = again.replaced.expect("same priority and match");
        assert_eq!(replaced.id, first.rule.id);
        assert_ne!(again.rule.id, first.rule.id, "a replacement is a new rule");
        assert_eq!(again.rule.stats.get(), (0, 0), "with fresh counters");
        let cookies: Vec<u64> = t.rules().iter().map(|r| r.rule.cookie).collect();
        assert_eq!(cookies, vec![4, 1, 3]);

        let k = FlowKey {
            in_port: 2,
            tp_dst: 9,
            ..FlowKey::default()
        };
        let (r, mask) = t.lookup(&k);
        // The catchall was inserted before the port-2 rule at priority 10.
        assert_eq!(r.map(|r| r.rule.cookie), Some(1));
        assert_eq!(mask.in_port, u32::MAX);
        assert_eq!(mask.tp_dst, 0);
        let empty = RuleTable::new();
        let (none, mask) = empty.lookup(&k);
        assert!(none.is_none());
        assert_eq!(mask, FlowKey::default());
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
        assert_eq!(t.remove_matching(&port_match(1), Some(9)).len(), 0);
        assert_eq!(t.remove_matching(&port_match(1), Some(5)).len(), 1);
        assert!(t.remove_exact(7, &port_match(2)).is_none());
        assert!(t.find(6, &port_match(2)).is_some());
        assert_eq!(t.remove_matching(&Match::catchall(), None).len(), 2);
        assert!(t.is_empty());
    }
}
