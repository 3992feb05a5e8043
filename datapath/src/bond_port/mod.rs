//! A bond as a port of the bridge: [`BondPort`] polls every member's queues and sends each
//! frame out of the member the bond's [`Distribution`] picks. LACP frames arriving on a member
//! go to the bond's control side ([`ctl`]), which runs on the bonds thread every few
//! milliseconds: LACP, carrier, up/down delays, rebalancing, learning packets after a
//! failover; it publishes a new distribution when anything changes. PMDs read the published
//! distribution once per burst.

pub mod ctl;
mod loads;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use bond::lacp::pdu::{self, MAX_FRAME_LEN};
use bond::{Distribution, NO_MEMBER, Policy};
use port_api::{Batch, MAX_BURST, Packet, PacketPool, Port, PortStats, SharedCounter};

pub(crate) use ctl::BondCtl;
pub use ctl::{BondReport, MemberReport};
use loads::BucketLoads;

/// Slow Protocols frames waiting for the control side; more are dropped (and counted): LACP
/// sends a few per second, so a full queue means someone floods.
const SLOW_QUEUE: usize = 64;

/// A Slow Protocols frame as received, with one byte more than the largest valid one so the
/// parser can tell an oversize frame.
#[derive(Clone, Copy)]
pub(crate) struct SlowFrame {
    member: u8,
    len: u8,
    bytes: [u8; MAX_FRAME_LEN + 1],
}

impl SlowFrame {
    fn new(member: usize, frame: &[u8]) -> SlowFrame {
        let len = frame.len().min(MAX_FRAME_LEN + 1);
        let mut bytes = [0; MAX_FRAME_LEN + 1];
        bytes[..len].copy_from_slice(&frame[..len]);
        SlowFrame {
            member: member as u8,
            len: len as u8,
            bytes,
        }
    }

    pub(crate) fn member(&self) -> usize {
        usize::from(self.member)
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Drops the bond makes itself (the members count their own).
#[derive(Default)]
pub(crate) struct BondDrops {
    /// Frames that arrived on a member that may not deliver them (a backup member, a member
    /// out of the aggregator, a flood on a non-active balance-slb member).
    pub(crate) rx_not_admitted: SharedCounter,
    /// Slow Protocols frames beyond what the control side keeps.
    pub(crate) slow_dropped: SharedCounter,
    /// Frames to send while no member is enabled.
    pub(crate) tx_no_member: SharedCounter,
}

thread_local! {
    /// One member's share of a burst, reused (a bond's send never nests).
    static SCRATCH: RefCell<Batch> = RefCell::new(Batch::new());
}

pub(crate) struct BondPort {
    name: String,
    members: Vec<Arc<dyn Port>>,
    /// The bond's receive queue i is queue `.1` of member `.0`.
    rxqs: Vec<(usize, usize)>,
    dist: ArcSwap<Distribution>,
    slow: Mutex<VecDeque<SlowFrame>>,
    loads: BucketLoads,
    pub(crate) drops: BondDrops,
    ctl: Mutex<BondCtl>,
}

impl BondPort {
    pub(crate) fn new(
        name: &str,
        members: Vec<Arc<dyn Port>>,
        ctl: BondCtl,
        n_pmds: usize,
    ) -> BondPort {
        let rxqs = members
            .iter()
            .enumerate()
            .flat_map(|(m, p)| (0..p.n_rxq()).map(move |q| (m, q)))
            .collect();
        BondPort {
            name: name.to_string(),
            members,
            rxqs,
            dist: ArcSwap::from_pointee(Distribution::down()),
            slow: Mutex::new(VecDeque::with_capacity(SLOW_QUEUE)),
            loads: BucketLoads::new(n_pmds),
            drops: BondDrops::default(),
            ctl: Mutex::new(ctl),
        }
    }

    pub(crate) fn members(&self) -> &[Arc<dyn Port>] {
        &self.members
    }

    pub(crate) fn ctl(&self) -> MutexGuard<'_, BondCtl> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn publish(&self, d: &Distribution) {
        self.dist.store(Arc::new(d.clone()));
    }

    /// Slow Protocols frames received since the last call, oldest first.
    pub(crate) fn take_slow(&self, out: &mut Vec<SlowFrame>) {
        let mut q = self.slow.lock().unwrap_or_else(|e| e.into_inner());
        out.extend(q.drain(..));
    }

    pub(crate) fn bucket_totals(&self) -> [u64; bond::BUCKETS] {
        self.loads.totals()
    }

    fn queue_slow(&self, member: usize, frame: &[u8]) {
        let mut q = self.slow.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() < SLOW_QUEUE {
            q.push_back(SlowFrame::new(member, frame));
        } else {
            self.drops.slow_dropped.add(1);
        }
    }

    fn member(&self, m: u8) -> Option<&Arc<dyn Port>> {
        (m != NO_MEMBER)
            .then(|| self.members.get(usize::from(m)))
            .flatten()
    }

    /// balance-slb, when every frame of the burst has the first one's source MAC, ethertype
    /// and kind of destination (one VM's burst): the member of the first frame's bucket, with
    /// the burst's bytes counted on that bucket. None otherwise.
    fn slb_one_source(&self, d: &Distribution, pkts: &Batch) -> Option<u8> {
        let first = pkts.iter().next()?.data();
        let key0 = d.slb_key(first)?;
        let group0 = first[0] & 1;
        let mut bytes = 0;
        for p in pkts.iter() {
            let f = p.data();
            let h = f.first_chunk::<14>()?;
            let key = u64::from_be_bytes([h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]]);
            if key != key0 || h[0] & 1 != group0 {
                return None;
            }
            bytes += f.len();
        }
        let bucket = d.bucket(first);
        self.loads.row().add(bucket, bytes);
        Some(d.member_in_bucket(first, bucket))
    }

    /// Sends a balanced burst: each frame to its bucket's member, one call per member.
    fn tx_balanced(&self, d: &Distribution, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        if let Some(m) = self.slb_one_source(d, pkts) {
            return self.member(m).map_or(0, |p| p.tx_burst(pkts, pool));
        }
        let mut which = [NO_MEMBER; MAX_BURST];
        let mut present = 0u64;
        let mut unsent = false;
        let row = self.loads.row();
        // Bytes per bucket, added once per run of frames in the same bucket; and under
        // balance-slb, a frame with the previous frame's source (and kind of destination)
        // goes where it went, unhashed: a burst is often one VM's.
        let (mut run_bucket, mut run_bytes) = (usize::MAX, 0usize);
        let slb = d.policy == Policy::Slb;
        // The previous frame's source MAC and ethertype, destination's group bit, and member.
        let mut last: Option<(u64, u8, u8)> = None;
        for (w, p) in which.iter_mut().zip(pkts.iter()) {
            let f = p.data();
            let key = match f.first_chunk::<14>() {
                Some(h) if slb => {
                    let k =
                        u64::from_be_bytes([h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13]]);
                    Some((k, h[0] & 1))
                }
                _ => None,
            };
            if let (Some((k, mc)), Some((lk, lmc, lw))) = (key, last)
                && k == lk
                && mc == lmc
            {
                *w = lw;
                run_bytes += f.len();
                continue;
            }
            let bucket = d.bucket(f);
            if bucket != run_bucket {
                if run_bytes > 0 {
                    row.add(run_bucket, run_bytes);
                }
                (run_bucket, run_bytes) = (bucket, 0);
            }
            run_bytes += f.len();
            *w = d.member_in_bucket(f, bucket);
            if *w == NO_MEMBER {
                unsent = true;
            } else {
                present |= 1 << *w;
            }
            // Tagged frames are hashed with their VLAN: not reused by source alone.
            last = key
                .filter(|_| d.slb_key(f).is_some())
                .map(|(k, mc)| (k, mc, *w));
        }
        if run_bytes > 0 {
            row.add(run_bucket, run_bytes);
        }
        let mut sent = 0;
        if present.count_ones() == 1 && !unsent {
            // One member takes the whole burst (one flow, or one enabled member).
            let m = present.trailing_zeros() as u8;
            return self.member(m).map_or(0, |p| p.tx_burst(pkts, pool));
        }
        let mut n = pkts.len().min(MAX_BURST);
        SCRATCH.with_borrow_mut(|scratch| {
            while present != 0 {
                let m = present.trailing_zeros() as u8;
                present &= present - 1;
                pkts.move_where(scratch, |i, _| which[i] == m);
                // Keep `which` aligned with what is left in `pkts`.
                let mut k = 0;
                for i in 0..n {
                    if which[i] != m {
                        which[k] = which[i];
                        k += 1;
                    }
                }
                n = k;
                if let Some(p) = self.member(m) {
                    sent += p.tx_burst(scratch, pool);
                }
                scratch.recycle(pool);
            }
        });
        sent
    }
}

fn is_slow(frame: &[u8]) -> bool {
    pdu::is_slow_protocols(frame)
}

impl Port for BondPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "bond"
    }

    fn n_rxq(&self) -> usize {
        self.rxqs.len()
    }

    fn rx_burst(&self, qid: usize, pool: &mut PacketPool, out: &mut Batch) -> usize {
        let Some(&(m, mq)) = self.rxqs.get(qid) else {
            return 0;
        };
        let start = out.len();
        let n = self.members[m].rx_burst(mq, pool, out);
        if n == 0 {
            return 0;
        }
        let d = self.dist.load();
        let admits_all = match d.policy {
            Policy::Active | Policy::Slb => usize::from(d.active) == m,
            Policy::L4 => d.enabled & (1 << m) != 0,
        };
        if admits_all && !out.iter().skip(start).any(|p| is_slow(p.data())) {
            return n;
        }
        let mut refused = 0;
        out.retain_from(start, pool, |p| {
            let f = p.data();
            if is_slow(f) {
                self.queue_slow(m, f);
                false
            } else if d.rx_admit(m, f) {
                true
            } else {
                refused += 1;
                false
            }
        });
        if refused > 0 {
            self.drops.rx_not_admitted.add(refused);
        }
        out.len() - start
    }

    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        let d = self.dist.load();
        let sent = match d.policy {
            Policy::Active => match self.member(d.active) {
                Some(p) => p.tx_burst(pkts, pool),
                None => 0,
            },
            Policy::Slb | Policy::L4 => self.tx_balanced(&d, pkts, pool),
        };
        if !pkts.is_empty() {
            self.drops.tx_no_member.add(pkts.len() as u64);
            pkts.recycle(pool);
        }
        sent
    }

    fn tx_in_flight(&self) -> usize {
        self.members.iter().map(|m| m.tx_in_flight()).sum()
    }

    fn link_up(&self) -> bool {
        self.dist.load().enabled != 0
    }

    /// The members' counters summed, with the bond's own drops added.
    fn stats(&self) -> PortStats {
        let mut s = PortStats::default();
        for m in &self.members {
            let x = m.stats();
            s.rx_packets += x.rx_packets;
            s.rx_bytes += x.rx_bytes;
            s.rx_dropped += x.rx_dropped;
            s.tx_packets += x.tx_packets;
            s.tx_bytes += x.tx_bytes;
            s.tx_dropped += x.tx_dropped;
        }
        s.rx_dropped += self.drops.rx_not_admitted.get() + self.drops.slow_dropped.get();
        s.tx_dropped += self.drops.tx_no_member.get();
        s
    }

    fn mtu(&self) -> Option<usize> {
        self.members.iter().filter_map(|m| m.mtu()).min()
    }

    fn explain_tx(&self, pkt: &Packet) -> Vec<(&'static str, String)> {
        let d = self.dist.load();
        let f = pkt.data();
        let (member, how) = match d.policy {
            Policy::Active => (d.active, "the active member".to_string()),
            Policy::Slb | Policy::L4 => {
                let bucket = d.bucket(f);
                (
                    d.member_in_bucket(f, bucket),
                    format!("{} hash bucket {bucket}", d.policy.name()),
                )
            }
        };
        let Some(m) = self.member(member) else {
            return vec![("bond", format!("{how}: no enabled member, dropped"))];
        };
        let mut out = vec![("bond", format!("{how}: member {}", m.name()))];
        out.extend(m.explain_tx(pkt));
        out
    }

    fn status(&self) -> Vec<(&'static str, String)> {
        let d = self.dist.load();
        let names: Vec<&str> = self.members.iter().map(|m| m.name()).collect();
        let active = self.member(d.active).map_or("none", |p| p.name());
        vec![
            ("balancing", d.policy.name().to_string()),
            ("members", names.join(",")),
            ("active", active.to_string()),
        ]
    }
}
