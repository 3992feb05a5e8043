use super::*;

const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];
const S: u64 = 1_000_000_000;

fn changes(t: &MacTable, seen: u64) -> Vec<(u16, [u8; 6])> {
    t.changes_since(seen).expect("in the log").collect()
}

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [2, 0, b[0], b[1], b[2], b[3]]
}

#[test]
fn learn_lookup_move_refresh() {
    let mut t = MacTable::new(16, 300 * S);
    let c0 = t.change_seq();
    assert_eq!(t.learn(10, A, 1, 0), Learned::New);
    assert_eq!(changes(&t, c0), vec![(10, A)]);
    let c1 = t.change_seq();
    assert_eq!(t.lookup(10, A, 0), Some(1));
    assert_eq!(t.lookup(20, A, 0), None, "VLANs are separate");
    assert_eq!(t.learn(10, A, 1, S), Learned::Refreshed);
    assert_eq!(t.change_seq(), c1, "refresh changes no decision");
    assert_eq!(t.learn(10, A, 2, 2 * S), Learned::Moved);
    assert_eq!(changes(&t, c1), vec![(10, A)]);
    assert_eq!(t.lookup(10, A, 2 * S), Some(2));
    assert_eq!((t.port_entries(1), t.port_entries(2)), (0, 1));
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
    let c = t.change_seq();
    assert_eq!(t.expire(11 * S), 1);
    assert_eq!(changes(&t, c), vec![(0, A)]);
    assert_eq!(t.len(), 1);
    let c = t.change_seq();
    assert_eq!(t.expire(11 * S), 0);
    assert_eq!(t.change_seq(), c);
    // Re-learning an expired (not yet removed) entry is New, and a change.
    assert_eq!(t.learn(0, B, 2, 100 * S), Learned::New);
    assert_eq!(changes(&t, c), vec![(0, B)]);
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
    // A new aging time can change what is live: readers start over.
    let c = t.change_seq();
    t.set_aging(S);
    assert!(t.changes_since(c).is_err());
}

#[test]
fn eviction_is_fair_and_flush_is_logged() {
    let mut t = MacTable::new(3, 300 * S);
    t.learn(0, A, 1, 0);
    t.learn(0, B, 2, S);
    t.learn(0, C, 2, 2 * S);
    // Full: port 2 holds the most, so its least recently seen address (B) goes, although A
    // is older.
    let c = t.change_seq();
    assert_eq!(t.learn(0, mac(1), 3, 3 * S), Learned::New);
    assert_eq!(changes(&t, c), vec![(0, B), (0, mac(1))]);
    assert_eq!(t.lookup(0, B, 3 * S), None);
    assert_eq!(t.lookup(0, A, 3 * S), Some(1));
    assert_eq!(t.len(), 3);
    let c = t.change_seq();
    assert_eq!(t.flush_port(1), 1);
    assert_eq!(t.flush_port(1), 0);
    assert_eq!(changes(&t, c), vec![(0, A)]);
    assert_eq!(t.lookup(0, C, 3 * S), Some(2));
    t.flush();
    assert!(t.is_empty());
    let mut z = MacTable::new(0, S);
    assert_eq!(z.learn(0, A, 1, 0), Learned::Full);
}

#[test]
fn port_limits_refuse_and_protect_others() {
    let mut t = MacTable::new(100, 300 * S);
    t.learn(0, A, 1, 0);
    t.set_port_limits(
        7,
        Some(PortLimits {
            max_entries: 10,
            learn_rate: 0,
        }),
    );
    // A flood of source addresses from port 7: ten are learned, the rest refused.
    let refused = (0..1000)
        .filter(|i| t.learn(0, mac(*i), 7, S).refused())
        .count();
    assert_eq!((refused, t.port_entries(7)), (990, 10));
    assert_eq!(t.lookup(0, A, S), Some(1), "others keep their entries");
    // A refused address is not in the table; a known one still refreshes.
    assert_eq!(t.lookup(0, mac(500), S), None);
    assert_eq!(t.learn(0, mac(3), 7, 2 * S), Learned::Refreshed);
    // Moving an address onto a port at its limit is refused too.
    assert_eq!(t.learn(0, A, 7, 2 * S), Learned::Limited);
    assert_eq!(t.lookup(0, A, 2 * S), Some(1));
    // Once its entries age out, the port learns again.
    t.expire(400 * S);
    assert_eq!(t.learn(0, mac(2000), 7, 400 * S), Learned::New);
}

#[test]
fn learning_rate_is_limited_per_port() {
    let mut t = MacTable::new(100_000, 300 * S);
    t.set_default_limits(PortLimits {
        max_entries: 100_000,
        learn_rate: 100,
    });
    // 10,000 new addresses offered over one second: the first second's burst (100) plus one
    // per 10 ms are learned.
    let mut learned = 0;
    for i in 0..10_000u32 {
        let now = u64::from(i) * 100_000; // 10 kHz
        if t.learn(0, mac(i), 5, now) == Learned::New {
            learned += 1;
        }
    }
    assert!((195..=201).contains(&learned), "{learned}");
    // Another port has its own credit.
    assert_eq!(t.learn(0, [6, 0, 0, 0, 0, 1], 6, S), Learned::New);
    // The refused ones were not logged as changes.
    assert_eq!(t.change_seq(), learned + 1);
}

#[test]
fn change_log_overflow_is_reported() {
    let mut t = MacTable::new(10_000, 300 * S);
    t.set_default_limits(PortLimits {
        max_entries: 10_000,
        learn_rate: 0,
    });
    for i in 0..(MAX_CHANGES as u32 + 10) {
        t.learn(0, mac(i), 1, 0);
    }
    assert!(t.changes_since(0).is_err());
    assert_eq!(t.changes_since(t.change_seq() - 3).unwrap().count(), 3);
}
