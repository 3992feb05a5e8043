//! A port's egress scheduler, as a port: [`QosPort`] wraps the port and stands in for it
//! wherever frames are sent to it (bridge outputs, tunnel encapsulation), so every path to the
//! port is scheduled and a port without QoS has no wrapper and pays nothing.
//!
//! Sending to a [`QosPort`] classes each frame and queues it; then, in the same call, the
//! scheduler sends what the shaper allows. Frames held back stay queued: the PMD that serves
//! the port ([`QosPort::service`], every iteration) sends them when credit allows. Packet
//! buffers belong to the PMD that received them, so the scheduler swaps: a queued frame's
//! buffer stays here and the sender's pool gets a spare one back, and frames sent from the
//! queue return their buffers to the spares. Both pools keep their size; the spares grow only
//! with the deepest backlog seen (bounded by the queue limits).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use port_api::{Batch, ClassHint, MAX_BURST, Packet, PacketPool, Port, PortStats};
use qos::{CLASSES, ClassMap, Frame, QueueStats, Scheduler, TrafficClass, Trust};

use super::now;
use super::waits::ClassWaits;
use crate::spec::QosConfig;

/// Most frames the scheduler lets sit in the port's transmit ring (an AF_XDP TX ring): a
/// high-priority frame waits behind at most these, not behind a full ring.
pub(crate) const MAX_IN_FLIGHT: usize = 16;

/// A queued frame (the scheduler counts its bytes), with its class and when it was queued.
struct Queued {
    pkt: Packet,
    class: u8,
    since_ns: u64,
}

impl Frame for Queued {
    fn frame_len(&self) -> usize {
        self.pkt.len()
    }
}

struct State {
    sched: Scheduler<Queued>,
    classes: ClassMap,
    /// Buffers swapped for queued frames, and returned by frames sent.
    spares: PacketPool,
    /// Frames on their way from the scheduler to the port.
    out: Batch,
    /// How long frames waited, per class.
    waits: ClassWaits,
}

/// One queue as `qos-show` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueReport {
    pub class: u8,
    pub stats: QueueStats,
    /// Frames and bytes queued now.
    pub backlog_packets: usize,
    pub backlog_bytes: usize,
    /// Time frames spent queued, nanoseconds: median, 90th and 99th percentile, longest.
    pub wait_p50_ns: u64,
    pub wait_p90_ns: u64,
    pub wait_p99_ns: u64,
    pub wait_max_ns: u64,
}

pub(crate) struct QosPort {
    inner: Arc<dyn Port>,
    state: Mutex<State>,
    /// Frames are queued: the serving PMD has something to do.
    backlog: AtomicBool,
    /// The switch's clock, for callers that are not PMDs (the control thread).
    epoch: Instant,
}

impl QosPort {
    pub(crate) fn new(inner: Arc<dyn Port>, cfg: &QosConfig, epoch: Instant) -> QosPort {
        let now = epoch.elapsed().as_nanos() as u64;
        QosPort {
            inner,
            state: Mutex::new(State {
                sched: Scheduler::new(cfg.scheduler.clone(), now),
                classes: cfg.classes.clone(),
                spares: PacketPool::with_capacity(0),
                out: Batch::new(),
                waits: ClassWaits::default(),
            }),
            backlog: AtomicBool::new(false),
            epoch,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now(&self) -> u64 {
        now::get().unwrap_or_else(|| self.epoch.elapsed().as_nanos() as u64)
    }

    /// A new configuration, live: queued frames stay (in their class), counters go on.
    pub(crate) fn reconfigure(&self, cfg: &QosConfig) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        let mut st = self.lock();
        st.sched.reconfigure(cfg.scheduler.clone(), now);
        st.classes = cfg.classes.clone();
    }

    pub(crate) fn config(&self) -> QosConfig {
        let st = self.lock();
        QosConfig {
            scheduler: st.sched.config().clone(),
            classes: st.classes.clone(),
        }
    }

    /// Sends what the shaper allows of the queued frames. The PMD serving the port calls this
    /// every iteration; it costs one load while nothing is queued, and gives way to a PMD that
    /// is sending to the port at that moment (which sends for it).
    #[inline]
    pub(crate) fn service(&self, now_ns: u64) -> usize {
        if !self.backlog.load(Ordering::Relaxed) {
            return 0;
        }
        match self.state.try_lock() {
            Ok(mut st) => self.send(&mut st, now_ns),
            Err(_) => 0,
        }
    }

    /// Whether frames are queued.
    #[inline]
    pub(crate) fn has_backlog(&self) -> bool {
        self.backlog.load(Ordering::Relaxed)
    }

    fn send(&self, st: &mut State, now_ns: u64) -> usize {
        let State {
            sched,
            spares,
            out,
            waits,
            ..
        } = st;
        let mut sent = 0;
        while !sched.is_empty() {
            // Room in the port's transmit ring, asked again after each burst (a port that
            // sends at once always has room; a NIC ring fills up to the cap).
            let room = MAX_IN_FLIGHT.saturating_sub(self.inner.tx_in_flight());
            if room == 0 {
                break;
            }
            let n = sched.dequeue(now_ns, room.min(MAX_BURST), |q| {
                waits.record(
                    usize::from(q.class & 7),
                    now_ns.saturating_sub(q.since_ns),
                    1,
                );
                // The batch has room for MAX_BURST; nothing is lost.
                if let Err(p) = out.push(q.pkt) {
                    spares.put(p);
                }
            });
            if n == 0 {
                break;
            }
            sent += self.inner.tx_burst(out, spares);
        }
        self.backlog.store(!sched.is_empty(), Ordering::Relaxed);
        sent
    }

    /// Sends every queued frame now, unshaped (the scheduler is being removed: nothing is lost).
    pub(crate) fn flush(&self) {
        let mut st = self.lock();
        let State {
            sched, spares, out, ..
        } = &mut *st;
        let frames: Vec<Packet> = sched.drain().map(|q| q.pkt).collect();
        for p in frames {
            if out.is_full() {
                self.inner.tx_burst(out, spares);
            }
            if let Err(p) = out.push(p) {
                spares.put(p);
            }
        }
        if !out.is_empty() {
            self.inner.tx_burst(out, spares);
        }
        self.backlog.store(false, Ordering::Relaxed);
    }

    /// Ends the current window of the classes' waits (the housekeeping thread, every 5 s).
    pub(crate) fn rotate_waits(&self) {
        self.lock().waits.rotate();
    }

    /// Per class with frames since start: its waits over the last finished window and since
    /// start.
    pub(crate) fn class_latency(&self) -> Vec<crate::info::ClassLatency> {
        let st = self.lock();
        (0..CLASSES as u8)
            .filter_map(TrafficClass::new)
            .map(|c| {
                (
                    c.value(),
                    st.waits.last_window(c.index()),
                    st.waits.since_start(c.index()),
                )
            })
            .filter(|(_, _, total)| total.count() > 0)
            .map(|(class, last, total)| crate::info::ClassLatency {
                class,
                window: super::waits::percentiles(&last),
                total: super::waits::percentiles(&total),
            })
            .collect()
    }

    /// Each class's counters and backlog.
    pub(crate) fn report(&self) -> Vec<QueueReport> {
        let st = self.lock();
        (0..CLASSES as u8)
            .filter_map(TrafficClass::new)
            .map(|c| {
                let (backlog_packets, backlog_bytes) = st.sched.backlog(c);
                let w = st.waits.since_start(c.index());
                let stats = st.sched.stats(c);
                QueueReport {
                    class: c.value(),
                    stats,
                    backlog_packets,
                    backlog_bytes,
                    wait_p50_ns: w.percentile(50.0),
                    wait_p90_ns: w.percentile(90.0),
                    wait_p99_ns: w.percentile(99.0),
                    wait_max_ns: w.max_ns(),
                }
            })
            .collect()
    }
}

/// The class of a frame (`frame`, carrying `hint`) leaving through a port whose scheduler uses
/// `map`.
#[inline]
fn class_of(map: &ClassMap, hint: ClassHint, frame: &[u8]) -> TrafficClass {
    // Most frames are classed by their markings: that case first, without a jump table.
    if hint == ClassHint::Markings {
        let m = qos::markings(frame);
        return map.classify(Trust::Dscp, m.dscp, m.pcp);
    }
    match hint {
        ClassHint::Queue(q) => TrafficClass::new(q).unwrap_or(TrafficClass::BEST_EFFORT),
        ClassHint::Pcp(p) => map.classify(Trust::Pcp, None, Some(p)),
        ClassHint::Markings => {
            let m = qos::markings(frame);
            map.classify(Trust::Dscp, m.dscp, m.pcp)
        }
        ClassHint::DscpOnly => map.classify(Trust::Dscp, qos::markings(frame).dscp, None),
    }
}

impl Port for QosPort {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn n_rxq(&self) -> usize {
        self.inner.n_rxq()
    }

    fn rx_burst(&self, qid: usize, pool: &mut PacketPool, out: &mut Batch) -> usize {
        self.inner.rx_burst(qid, pool, out)
    }

    fn explain_tx(&self, pkt: &Packet) -> Vec<(&'static str, String)> {
        let class = class_of(&self.lock().classes, pkt.class, pkt.data());
        let by = match pkt.class {
            ClassHint::Queue(_) => "set_queue",
            ClassHint::Pcp(_) => "trusted PCP",
            ClassHint::Markings => "DSCP, else PCP",
            ClassHint::DscpOnly => "DSCP (untrusted port)",
        };
        let mut out = vec![("qos", format!("class {} (by {by})", class.value()))];
        out.extend(self.inner.explain_tx(pkt));
        out
    }

    /// Classes every frame; a burst the idle scheduler lets through whole goes straight to the
    /// port (no queueing, no buffer swap: the common case below the rate). Otherwise queues
    /// each frame by class (a full queue drops it, counted by queue and in the port's
    /// `tx_dropped`), then sends what the scheduler allows. Returns how many were taken.
    fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let now = self.now();
        let mut st = self.lock();
        // Each frame's class, and the burst's packets and bytes per class.
        let mut classes = [0u8; MAX_BURST];
        let (mut packets, mut bytes) = ([0u64; CLASSES], [0u64; CLASSES]);
        for (slot, p) in classes.iter_mut().zip(pkts.iter()) {
            let frame = p.data();
            let c = class_of(&st.classes, p.class, frame);
            *slot = c.value();
            packets[c.index()] += 1;
            bytes[c.index()] += frame.len() as u64;
        }
        let n = pkts.len();
        if n <= MAX_BURST
            && self.inner.tx_in_flight() + n <= MAX_IN_FLIGHT.max(MAX_BURST)
            && st.sched.pass_through(now, &packets, &bytes)
        {
            // Let straight through: these frames waited nothing.
            for (c, &n) in packets.iter().enumerate() {
                if n > 0 {
                    st.waits.record(c, 0, n);
                }
            }
            drop(st);
            return self.inner.tx_burst(pkts, pool);
        }
        let mut queued = 0;
        for (pkt, &c) in pkts.drain().zip(classes.iter()) {
            let class = TrafficClass::new(c).unwrap_or(TrafficClass::BEST_EFFORT);
            let q = Queued {
                pkt,
                class: c,
                since_ns: now,
            };
            match st.sched.enqueue(class, q) {
                Ok(()) => {
                    queued += 1;
                    let spare = st.spares.get();
                    pool.put(spare);
                }
                Err(q) => pool.put(q.pkt),
            }
        }
        self.send(&mut st, now);
        queued
    }

    fn tx_in_flight(&self) -> usize {
        self.inner.tx_in_flight()
    }

    fn link_up(&self) -> bool {
        self.inner.link_up()
    }

    /// The port's counters, with frames the scheduler dropped in `tx_dropped`.
    fn stats(&self) -> PortStats {
        let mut s = self.inner.stats();
        let st = self.lock();
        s.tx_dropped += (0..CLASSES as u8)
            .filter_map(TrafficClass::new)
            .map(|c| st.sched.stats(c).dropped_packets)
            .sum::<u64>();
        s
    }

    fn mac(&self) -> Option<[u8; 6]> {
        self.inner.mac()
    }

    fn mtu(&self) -> Option<usize> {
        self.inner.mtu()
    }

    fn status(&self) -> Vec<(&'static str, String)> {
        self.inner.status()
    }
}
