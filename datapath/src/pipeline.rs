//! The packet pipeline of one bridge, run by a PMD thread over a received batch:
//! parse → exact-match cache → megaflow cache → slow path (rules, NORMAL) → actions → per-port
//! transmit batches.
//!
//! Parsing and hashing run as stages over the whole batch before any lookup: the keys are then
//! settled in memory, the hashes of different packets overlap in the CPU, and the EMC slots of
//! all packets are being fetched while the first ones are looked up.

use std::sync::Arc;

use flowtable::{
    BridgeView, Decision, DpAction, DropReason, FlowCache, FlowKey, InstalledRule, Invalidation,
    MacTable, extract_into, translate,
};

use crate::actions;
use crate::bridge::{BridgeId, BridgePort, BridgeSnapshot, ConfigEvent, LazyMacs};
use crate::capture::Direction;
use crate::packet::{Batch, MAX_BURST, Packet, PacketPool};

/// Exact-match cache slots and megaflow limit per bridge per PMD.
pub(crate) const EMC_SLOTS: usize = 8192;
pub(crate) const MAX_MEGAFLOWS: usize = 65536;
/// Most rule-change × megaflow checks a PMD does when it adopts a snapshot; beyond that,
/// dropping the bridge's cached decisions is cheaper than checking each.
const MAX_REVALIDATION_CHECKS: usize = 4_000_000;

/// What one PMD keeps for one bridge across snapshots: its caches, one transmit batch per
/// port, and how far it has caught up with the bridge's changes. Allocated by the control
/// thread (the EMC alone is most of a megabyte), never on the PMD.
pub(crate) struct BridgeLocal {
    pub(crate) id: BridgeId,
    pub(crate) cache: FlowCache,
    tx: Vec<Batch>,
    /// When this PMD last refreshed a MAC entry that cached NORMAL flows keep using.
    refreshed: Vec<(u64, u64)>,
    /// What stages 1 and 2 found for each packet of the batch in flight.
    parsed: [Parsed; MAX_BURST],
    /// The MAC table's change number this PMD's caches reflect.
    mac_seen: u64,
    /// The configuration events this PMD's caches reflect.
    config_seen: u64,
    /// The rule the last packets hit, kept across batches so a long run of one rule costs no
    /// reference counting (its counters are added at the end of each batch).
    run_rule: Option<Arc<InstalledRule>>,
}

/// One packet's key and EMC hash, or why it could not be parsed.
#[derive(Clone, Copy, Default)]
struct Parsed {
    key: FlowKey,
    hash: u64,
    bad: Option<DropReason>,
}

/// Slots of the MAC refresh table, and how often a busy source MAC is re-learned.
const REFRESH_SLOTS: usize = 256;
const REFRESH_NS: u64 = 1_000_000_000;

impl BridgeLocal {
    pub(crate) fn new(bridge: &BridgeSnapshot) -> Self {
        BridgeLocal {
            id: bridge.id,
            cache: FlowCache::new(EMC_SLOTS, MAX_MEGAFLOWS),
            tx: (0..bridge.ports.len()).map(|_| Batch::new()).collect(),
            refreshed: vec![(u64::MAX, 0); REFRESH_SLOTS],
            parsed: [Parsed::default(); MAX_BURST],
            mac_seen: bridge.shared.macs.seq(),
            config_seen: bridge.config_seq,
            run_rule: None,
        }
    }

    /// Catches up with a (new) snapshot of the bridge: one transmit batch per port, and the
    /// configuration events since the last one applied to the caches.
    pub(crate) fn adopt(&mut self, bridge: &BridgeSnapshot) {
        // Transmit batches are empty between batches: only their number matters.
        self.tx.resize_with(bridge.ports.len(), Batch::new);
        if self.config_seen == bridge.config_seq {
            return;
        }
        let pending = bridge.config_seq.saturating_sub(self.config_seen) as usize;
        let cache = &mut self.cache;
        let affordable = pending.saturating_mul(cache.stats().megaflows) <= MAX_REVALIDATION_CHECKS;
        let replayed = affordable
            && bridge
                .shared
                .events
                .replay(self.config_seen, bridge.config_seq, |e| {
                    cache.invalidate(match e {
                        ConfigEvent::RuleAdded { priority, m } => Invalidation::RuleAdded {
                            priority: *priority,
                            m,
                        },
                        ConfigEvent::RuleRemoved(id) => Invalidation::RuleRemoved(*id),
                        ConfigEvent::Port(p) => Invalidation::Port(*p),
                        ConfigEvent::All => Invalidation::All,
                    })
                });
        if !replayed {
            cache.invalidate(Invalidation::All);
        }
        self.config_seen = bridge.config_seq;
    }
}

/// Invalidates what learned, moved or removed addresses changed since `seen`.
#[inline(never)]
fn catch_up_macs(cache: &mut FlowCache, bridge: &BridgeSnapshot, seen: &mut u64) {
    let table = bridge.shared.macs.lock();
    match table.changes_since(*seen) {
        Ok(changes) => {
            for (vlan, mac) in changes {
                cache.invalidate(Invalidation::Mac { vlan, mac });
            }
        }
        Err(_) => cache.invalidate(Invalidation::All),
    }
    *seen = table.change_seq();
}

/// Runs every packet of `batch` (received on port index `in_idx`) through the bridge and
/// transmits the results. The batch is left empty.
pub(crate) fn process_batch(
    bridge: &BridgeSnapshot,
    local: &mut BridgeLocal,
    in_idx: usize,
    batch: &mut Batch,
    pool: &mut PacketPool,
    now_ns: u64,
) {
    let Some(in_port) = bridge.ports.get(in_idx) else {
        batch.recycle(pool);
        return;
    };
    let in_ofport = in_port.ofport;
    // Checksum marks travel with this batch's packets to the batches they leave in (empty
    // now: every batch is sent before this returns).
    let marks = batch.csum_marks();
    batch.set_csum_marks(false);
    for b in local.tx.iter_mut() {
        b.set_csum_marks(marks);
    }
    let BridgeLocal {
        cache,
        tx,
        refreshed,
        parsed,
        mac_seen,
        run_rule,
        ..
    } = local;

    // Stage 1: parse every packet.
    for (pkt, p) in batch.iter_mut().zip(parsed.iter_mut()) {
        let (tun_id, tun_src, tun_dst) = (pkt.tun_id, pkt.tun_src, pkt.tun_dst);
        match extract_into(pkt.data(), in_ofport, &mut p.key) {
            Ok(()) => {
                p.key.tun_id = tun_id;
                p.key.tun_src = tun_src;
                p.key.tun_dst = tun_dst;
                p.bad = None;
            }
            Err(reason) => p.bad = Some(reason),
        }
    }
    // Trust and policing of the input port, before the lookup sees the key.
    if let Some(ingress) = &in_port.ingress {
        let keys = parsed.iter_mut().map(|p| (&mut p.key, &mut p.bad));
        ingress.apply(batch.iter_mut().zip(keys), now_ns);
    }
    // Stage 2: hash, and start fetching the EMC slots.
    for p in parsed.iter_mut().take(batch.len()) {
        if p.bad.is_none() {
            p.hash = cache.hash(&p.key);
            cache.prefetch(p.hash);
        }
    }

    // Stage 3: look up and act, packet by packet.
    let mut slow = |k: &FlowKey| -> Decision {
        let view = BridgeView {
            ports: &bridge.port_nos,
            vlan_modes: &bridge.vlan_modes,
            rules: &bridge.rules,
        };
        let d = translate(k, &view, &mut LazyMacs::new(&bridge.shared.macs), now_ns);
        if d.learn_refused {
            in_port.drops.add(DropReason::MacLearnLimited, 1);
        }
        d
    };
    // Rule counters are summed over runs of packets that hit the same rule.
    let (mut run_pkts, mut run_bytes) = (0u64, 0u64);
    // Learned, moved or removed addresses invalidate cache entries: catch up with them before
    // the first lookup and after the slow path or a MAC refresh (both can learn).
    let mut stale = true;
    let mut last_learn = None;

    // A batch holds at most MAX_BURST packets, as many as `parsed`: the zip loses none.
    for (pkt, p) in batch.drain().zip(parsed.iter()) {
        let (key, hash) = (&p.key, p.hash);
        if let Some(reason) = p.bad {
            in_port.drops.add(reason, 1);
            pool.put(pkt);
            continue;
        }
        if stale {
            if bridge.shared.macs.seq() != *mac_seen {
                catch_up_macs(cache, bridge, mac_seen);
            }
            stale = false;
        }
        let decision = match cache.emc_lookup(key, hash) {
            Some(d) => d,
            None => {
                stale = true;
                cache.lookup_past_emc(key, hash, &mut slow)
            }
        };

        // Consecutive packets of one flow share the refresh check: same MAC, same time.
        if decision.learn != last_learn
            && let Some((vlan, mac)) = decision.learn
        {
            last_learn = decision.learn;
            stale |= refresh_mac(bridge, refreshed, vlan, mac, in_port, now_ns);
        }
        // Compared by address: the rule's own fields share a cache line other PMDs write.
        if decision.rule.as_ref().map(Arc::as_ptr) != run_rule.as_ref().map(Arc::as_ptr) {
            flush_rule_run(run_rule, run_pkts, run_bytes);
            *run_rule = decision.rule.clone();
            (run_pkts, run_bytes) = (0, 0);
        }
        run_pkts += 1;
        run_bytes += pkt.len() as u64;

        if let Some(reason) = decision.drop {
            in_port.drops.add(reason, 1);
            pool.put(pkt);
            continue;
        }
        execute(bridge, tx, &decision.actions, pkt, pool, in_port, now_ns);
    }
    flush_rule_run(run_rule, run_pkts, run_bytes);
    flush_all(bridge, tx, pool);
}

/// Cache hits skip the slow path, so a source MAC that only ever hits would age out of the
/// table: re-learn it about once a second. True if it was re-learned.
fn refresh_mac(
    bridge: &BridgeSnapshot,
    table: &mut [(u64, u64)],
    vlan: u16,
    mac: [u8; 6],
    port: &BridgePort,
    now_ns: u64,
) -> bool {
    let mut id = u64::from(vlan) << 48 | u64::from(port.ofport) << 56;
    for (i, b) in mac.iter().enumerate() {
        id ^= u64::from(*b) << (8 * i);
    }
    let slot = (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % table.len();
    let (seen_id, at) = table[slot];
    if seen_id == id && now_ns.saturating_sub(at) < REFRESH_NS {
        return false;
    }
    table[slot] = (id, now_ns);
    // A refusal here is not counted: the slow path counted this source's when it came.
    MacTable::learn(
        &mut bridge.shared.macs.lock(),
        vlan,
        mac,
        port.ofport,
        now_ns,
    );
    true
}

fn flush_rule_run(rule: &Option<Arc<InstalledRule>>, pkts: u64, bytes: u64) {
    if pkts > 0
        && let Some(r) = rule
    {
        r.stats.add(pkts, bytes);
    }
}

/// Runs a decision's actions in order; every output but the last sends a copy.
#[inline(always)]
fn execute(
    bridge: &BridgeSnapshot,
    tx: &mut [Batch],
    acts: &[DpAction],
    pkt: Packet,
    pool: &mut PacketPool,
    in_port: &BridgePort,
    now_ns: u64,
) {
    // The common case: one output, no rewrite.
    if let [DpAction::Output(p)] = acts {
        match bridge.port_index(*p) {
            Some(idx) => enqueue(bridge, tx, idx, pkt, pool),
            None => pool.put(pkt),
        }
        return;
    }
    execute_list(bridge, tx, acts, pkt, pool, in_port, now_ns);
}

/// [`execute`] for anything but one plain output: kept out of the per-packet loop, whose
/// registers it would otherwise take.
#[inline(never)]
fn execute_list(
    bridge: &BridgeSnapshot,
    tx: &mut [Batch],
    acts: &[DpAction],
    mut pkt: Packet,
    pool: &mut PacketPool,
    in_port: &BridgePort,
    now_ns: u64,
) {
    // Translation never leaves actions after the last output.
    let last_output = match acts.last() {
        Some(DpAction::Output(_)) => Some(acts.len() - 1),
        _ => acts.iter().rposition(|a| matches!(a, DpAction::Output(_))),
    };
    let Some(last_output) = last_output else {
        in_port.drops.add(DropReason::RuleDrop, 1);
        pool.put(pkt);
        return;
    };
    for (i, a) in acts.iter().enumerate().take(last_output + 1) {
        match a {
            DpAction::Output(p) => {
                let Some(idx) = bridge.port_index(*p) else {
                    continue;
                };
                if i == last_output {
                    enqueue(bridge, tx, idx, pkt, pool);
                    return;
                }
                let mut copy = pool.get_for(pkt.len());
                if pkt.clone_into(&mut copy) {
                    enqueue(bridge, tx, idx, copy, pool);
                } else {
                    pool.put(copy);
                }
            }
            DpAction::Meter(id) => {
                // A meter that is gone (the rule's change is on its way) lets the packet by.
                if let Some(m) = bridge.meters.get(*id)
                    && !m.police(&mut pkt, now_ns)
                {
                    in_port.drops.add(DropReason::Policed, 1);
                    pool.put(pkt);
                    return;
                }
            }
            other => {
                if !actions::apply(&mut pkt, other) {
                    in_port.drops.add(DropReason::TooBig, 1);
                    pool.put(pkt);
                    return;
                }
            }
        }
    }
    pool.put(pkt);
}

// Always inlined into the per-packet loop: out of line it costs about 30 instructions per
// packet (measured), and the compiler's heuristics stopped inlining it once `put` grew a branch.
#[inline(always)]
fn enqueue(
    bridge: &BridgeSnapshot,
    tx: &mut [Batch],
    idx: usize,
    pkt: Packet,
    pool: &mut PacketPool,
) {
    let Some(batch) = tx.get_mut(idx) else {
        pool.put(pkt);
        return;
    };
    if batch.is_full() {
        send(&bridge.ports[idx], batch, pool);
    }
    if let Err(p) = batch.push(pkt) {
        pool.put(p);
    }
}

fn flush_all(bridge: &BridgeSnapshot, tx: &mut [Batch], pool: &mut PacketPool) {
    for (i, batch) in tx.iter_mut().enumerate() {
        if !batch.is_empty() {
            send(&bridge.ports[i], batch, pool);
        }
    }
}

/// Hands a transmit batch to its port (through the capture point when a capture is on). Once
/// per batch, and out of line: inlined, it would stop `enqueue` from being inlined into the
/// per-packet loop (+34 instructions per packet, measured).
#[inline(never)]
fn send(port: &BridgePort, batch: &mut Batch, pool: &mut PacketPool) {
    if batch.csum_marks() && !port.takes_partial_csum {
        complete_checksums(port, batch, pool);
    }
    if port.tap.armed(Direction::Tx) {
        port.tap.record(Direction::Tx, batch.as_slice());
    }
    port.port.tx_burst(batch, pool);
}

/// Computes the checksums senders left to the network (guests with checksum offload), for a
/// port that cannot carry them as is. A frame whose mark no longer fits is dropped, counted as
/// `tx-failed` on that port.
#[cold]
fn complete_checksums(port: &BridgePort, batch: &mut Batch, pool: &mut PacketPool) {
    let mut bad = false;
    for p in batch.iter_mut() {
        if p.csum.is_some() && !p.complete_csum() {
            p.set_bounds(0, 0);
            bad = true;
        }
    }
    if bad {
        let dropped = batch.retain_from(0, pool, |p| !p.is_empty());
        port.drops.add(DropReason::TxFailed, dropped as u64);
    }
}
