//! The packet pipeline of one bridge, run by a PMD thread over a received batch:
//! parse → exact-match cache → megaflow cache → slow path (rules, NORMAL) → actions → per-port
//! transmit batches.
//!
//! Parsing and hashing run as stages over the whole batch before any lookup: the keys are then
//! settled in memory, the hashes of different packets overlap in the CPU, and the EMC slots of
//! all packets are being fetched while the first ones are looked up.

use std::sync::atomic::Ordering;

use flowtable::{
    BridgeView, Decision, DpAction, DropReason, FlowCache, FlowKey, extract_into, translate,
};

use crate::actions;
use crate::bridge::BridgeSnapshot;
use crate::packet::{Batch, MAX_BURST, Packet, PacketPool};

/// Exact-match cache slots and megaflow limit per bridge per PMD.
pub const EMC_SLOTS: usize = 8192;
pub const MAX_MEGAFLOWS: usize = 65536;

/// What one PMD keeps for one bridge: its caches and one transmit batch per port.
pub struct BridgeLocal {
    pub cache: FlowCache,
    tx: Vec<Batch>,
    /// When this PMD last refreshed a MAC entry that cached NORMAL flows keep using.
    refreshed: Vec<(u64, u64)>,
    /// What stages 1 and 2 found for each packet of the batch in flight.
    parsed: [Parsed; MAX_BURST],
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
    pub fn new(bridge: &BridgeSnapshot) -> Self {
        BridgeLocal {
            cache: FlowCache::new(EMC_SLOTS, MAX_MEGAFLOWS),
            tx: (0..bridge.ports.len()).map(|_| Batch::new()).collect(),
            refreshed: vec![(u64::MAX, 0); REFRESH_SLOTS],
            parsed: [Parsed::default(); MAX_BURST],
        }
    }
}

/// Combines the configuration and MAC-table generations into the cache generation.
#[inline]
fn cache_generation(config_gen: u64, bridge: &BridgeSnapshot) -> u64 {
    (config_gen << 40) ^ bridge.macs.generation.load(Ordering::Acquire)
}

/// Runs every packet of `batch` (received on port index `in_idx`) through the bridge and
/// transmits the results. The batch is left empty.
#[allow(clippy::too_many_arguments)]
pub fn process_batch(
    bridge: &BridgeSnapshot,
    local: &mut BridgeLocal,
    config_gen: u64,
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
    let BridgeLocal {
        cache,
        tx,
        refreshed,
        parsed,
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
        let mut macs = bridge.macs.lock();
        let d = translate(k, &view, &mut macs, now_ns);
        bridge.macs.sync_generation(&macs);
        d
    };
    // Rule counters are summed over runs of packets that hit the same rule.
    let mut run_rule: Option<usize> = None;
    let (mut run_pkts, mut run_bytes) = (0u64, 0u64);
    // The MAC table (part of the generation) changes only on the slow path or when a MAC is
    // re-learned, so the generation is read once per batch and again after either.
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
            cache.sync_generation(cache_generation(config_gen, bridge));
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
            stale |= refresh_mac(bridge, refreshed, vlan, mac, in_ofport, now_ns);
        }
        if decision.rule != run_rule {
            flush_rule_run(bridge, run_rule, run_pkts, run_bytes);
            run_rule = decision.rule;
            run_pkts = 0;
            run_bytes = 0;
        }
        run_pkts += 1;
        run_bytes += pkt.len() as u64;

        if let Some(reason) = decision.drop {
            in_port.drops.add(reason, 1);
            pool.put(pkt);
            continue;
        }
        execute(bridge, tx, &decision.actions, pkt, pool, in_port);
    }
    flush_rule_run(bridge, run_rule, run_pkts, run_bytes);
    flush_all(bridge, tx, pool);
}

/// Cache hits skip the slow path, so a source MAC that only ever hits would age out of the
/// table: re-learn it about once a second. True if it was re-learned.
fn refresh_mac(
    bridge: &BridgeSnapshot,
    table: &mut [(u64, u64)],
    vlan: u16,
    mac: [u8; 6],
    port: u32,
    now_ns: u64,
) -> bool {
    let mut id = u64::from(vlan) << 48 | u64::from(port) << 56;
    for (i, b) in mac.iter().enumerate() {
        id ^= u64::from(*b) << (8 * i);
    }
    let slot = (id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % table.len();
    let (seen_id, at) = table[slot];
    if seen_id == id && now_ns.saturating_sub(at) < REFRESH_NS {
        return false;
    }
    table[slot] = (id, now_ns);
    let mut macs = bridge.macs.lock();
    macs.learn(vlan, mac, port, now_ns);
    bridge.macs.sync_generation(&macs);
    true
}

fn flush_rule_run(bridge: &BridgeSnapshot, rule: Option<usize>, pkts: u64, bytes: u64) {
    if let Some(c) = rule.and_then(|r| bridge.rule_counters.get(r)) {
        c.packets.fetch_add(pkts, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
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
    in_port: &crate::bridge::BridgePort,
) {
    // The common case: one output, no rewrite.
    if let [DpAction::Output(p)] = acts {
        match bridge.port_index(*p) {
            Some(idx) => enqueue(bridge, tx, idx, pkt, pool),
            None => pool.put(pkt),
        }
        return;
    }
    execute_list(bridge, tx, acts, pkt, pool, in_port);
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
    in_port: &crate::bridge::BridgePort,
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
                let mut copy = pool.get();
                pkt.clone_into(&mut copy);
                enqueue(bridge, tx, idx, copy, pool);
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

#[inline]
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
        bridge.ports[idx].port.tx_burst(batch, pool);
    }
    if let Err(p) = batch.push(pkt) {
        pool.put(p);
    }
}

fn flush_all(bridge: &BridgeSnapshot, tx: &mut [Batch], pool: &mut PacketPool) {
    for (i, batch) in tx.iter_mut().enumerate() {
        if !batch.is_empty() {
            bridge.ports[i].port.tx_burst(batch, pool);
        }
    }
}
