//! A port's egress scheduler: one queue per traffic class (limits in packets and bytes, tail
//! drop counted by queue), strict priority for the classes configured so (the higher class
//! first), byte-based deficit round robin (DWRR) with weights for the others, an optional
//! minimum and maximum rate per queue, and a port shaper (rate and burst, with a per-frame
//! overhead: preamble, SFD, FCS and IFG on a wire port, none on a vhost-user port).
//!
//! Time is given, never read: the caller passes its clock (one read per PMD iteration), so
//! tests run in virtual time. Frames the shaper holds back stay queued until a later call.
//!
//! Order of service for each frame sent:
//! 1. strict queues, highest class first, within their maximum rate;
//! 2. weighted queues still below their minimum rate, highest class first;
//! 3. weighted queues by DWRR (each visit adds `weight × QUANTUM` bytes of credit), within their
//!    maximum rate.
//!
//! and every frame only if the port shaper has its bytes (plus overhead).

use std::collections::VecDeque;

use crate::class::{CLASSES, TrafficClass};
use crate::tokens::Bucket;

/// DWRR credit per unit of weight per round: one full-size frame.
pub const QUANTUM: u64 = 1514;
/// Burst of a per-queue minimum or maximum rate: this long at the rate, or one full-size frame.
const RATE_BURST_NS: u64 = 10_000_000;

/// Something with a length in bytes (without the per-frame overhead).
pub trait Frame {
    fn frame_len(&self) -> usize;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// Served before every weighted queue, the higher class first.
    pub strict: bool,
    /// DWRR weight of a weighted queue (at least 1).
    pub weight: u32,
    /// Bytes per second served ahead of the other weighted queues.
    pub min_rate: Option<u64>,
    /// Bytes per second never exceeded.
    pub max_rate: Option<u64>,
    pub limit_packets: usize,
    pub limit_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            strict: false,
            weight: 1,
            min_rate: None,
            max_rate: None,
            limit_packets: 1024,
            limit_bytes: 1024 * 1514,
        }
    }
}

/// The port shaper: `rate` bytes per second, bursts up to `burst` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shaper {
    pub rate: u64,
    pub burst: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub queues: [QueueConfig; CLASSES],
    pub shaper: Option<Shaper>,
    /// Bytes added to each frame for the shaper and the per-queue rates.
    pub overhead: u32,
}

impl Default for SchedulerConfig {
    /// Classes 6 and 7 strict, the others weighted 1 to 6 by class.
    fn default() -> Self {
        let queues = std::array::from_fn(|c| QueueConfig {
            strict: c >= 6,
            weight: c as u32 + 1,
            ..QueueConfig::default()
        });
        SchedulerConfig {
            queues,
            shaper: None,
            overhead: 0,
        }
    }
}

impl SchedulerConfig {
    /// Checks what the types cannot; the error names the queue and the field.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(s) = self.shaper {
            if s.rate == 0 {
                return Err("the port's rate must be above 0".into());
            }
            // A burst smaller than a full-size frame would hold such a frame for ever.
            let least = QUANTUM + u64::from(self.overhead);
            if s.burst < least {
                return Err(format!("the port's burst must be at least {least} bytes"));
            }
        }
        for (c, q) in self.queues.iter().enumerate() {
            if !q.strict && q.weight == 0 {
                return Err(format!("queue {c}: weight must be above 0"));
            }
            if q.min_rate == Some(0) || q.max_rate == Some(0) {
                return Err(format!("queue {c}: a rate must be above 0"));
            }
            if let (Some(min), Some(max)) = (q.min_rate, q.max_rate)
                && min > max
            {
                return Err(format!("queue {c}: min-rate is above max-rate"));
            }
            if q.limit_packets == 0 || q.limit_bytes == 0 {
                return Err(format!("queue {c}: limits must be above 0"));
            }
        }
        Ok(())
    }
}

/// Counters of one queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub enqueued_packets: u64,
    pub enqueued_bytes: u64,
    pub sent_packets: u64,
    pub sent_bytes: u64,
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
}

struct Queue<T> {
    frames: VecDeque<T>,
    bytes: usize,
    deficit: u64,
    min: Option<Bucket>,
    max: Option<Bucket>,
    stats: QueueStats,
}

pub struct Scheduler<T> {
    cfg: SchedulerConfig,
    queues: [Queue<T>; CLASSES],
    shaper: Option<Bucket>,
    /// The weighted queue DWRR serves now.
    current: usize,
    /// Whether `current` got its quantum for this visit.
    credited: bool,
}

fn rate_bucket(rate: Option<u64>, now_ns: u64) -> Option<Bucket> {
    rate.map(|r| {
        let burst = (u128::from(r) * u128::from(RATE_BURST_NS) / 1_000_000_000) as u64;
        Bucket::new(r, burst.max(QUANTUM), now_ns)
    })
}

impl<T: Frame> Scheduler<T> {
    pub fn new(cfg: SchedulerConfig, now_ns: u64) -> Self {
        let queues = std::array::from_fn(|c| Queue {
            frames: VecDeque::new(),
            bytes: 0,
            deficit: 0,
            min: rate_bucket(cfg.queues[c].min_rate, now_ns),
            max: rate_bucket(cfg.queues[c].max_rate, now_ns),
            stats: QueueStats::default(),
        });
        let shaper = cfg.shaper.map(|s| Bucket::new(s.rate, s.burst, now_ns));
        Scheduler {
            cfg,
            queues,
            shaper,
            current: 0,
            credited: false,
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// A new configuration, keeping every queued frame and counter (rates keep their
    /// tokens up to their new size).
    pub fn reconfigure(&mut self, cfg: SchedulerConfig, now_ns: u64) {
        for (c, q) in self.queues.iter_mut().enumerate() {
            let qc = cfg.queues[c];
            q.min = match (q.min.take(), qc.min_rate) {
                (Some(mut b), Some(r)) => {
                    let fresh = rate_bucket(Some(r), now_ns).map_or(QUANTUM, |f| f.size);
                    b.reshape(r, fresh, now_ns);
                    Some(b)
                }
                (_, r) => rate_bucket(r, now_ns),
            };
            q.max = match (q.max.take(), qc.max_rate) {
                (Some(mut b), Some(r)) => {
                    let fresh = rate_bucket(Some(r), now_ns).map_or(QUANTUM, |f| f.size);
                    b.reshape(r, fresh, now_ns);
                    Some(b)
                }
                (_, r) => rate_bucket(r, now_ns),
            };
        }
        self.shaper = match (self.shaper.take(), cfg.shaper) {
            (Some(mut b), Some(s)) => {
                b.reshape(s.rate, s.burst, now_ns);
                Some(b)
            }
            (_, s) => s.map(|s| Bucket::new(s.rate, s.burst, now_ns)),
        };
        self.cfg = cfg;
    }

    /// Queues a frame of `class`; a queue at its limit refuses it (tail drop, counted): the
    /// frame comes back for the caller to free.
    pub fn enqueue(&mut self, class: TrafficClass, frame: T) -> Result<(), T> {
        let c = class.index();
        let limits = self.cfg.queues[c];
        let q = &mut self.queues[c];
        let len = frame.frame_len();
        if q.frames.len() >= limits.limit_packets || q.bytes + len > limits.limit_bytes {
            q.stats.dropped_packets += 1;
            q.stats.dropped_bytes += len as u64;
            return Err(frame);
        }
        q.bytes += len;
        q.stats.enqueued_packets += 1;
        q.stats.enqueued_bytes += len as u64;
        q.frames.push_back(frame);
        Ok(())
    }

    /// Sends up to `budget` frames (what the port can take now) through `send`, in the order
    /// of service, as the rates allow at `now_ns`. Returns how many.
    pub fn dequeue(&mut self, now_ns: u64, budget: usize, mut send: impl FnMut(T)) -> usize {
        if let Some(s) = &mut self.shaper {
            s.fill(now_ns);
        }
        for q in &mut self.queues {
            if let Some(b) = &mut q.min {
                b.fill(now_ns);
            }
            if let Some(b) = &mut q.max {
                b.fill(now_ns);
            }
        }
        let mut sent = 0;
        while sent < budget {
            let Some(c) = self.pick() else { break };
            let overhead = u64::from(self.cfg.overhead);
            let q = &mut self.queues[c];
            let Some(frame) = q.frames.pop_front() else {
                break;
            };
            let len = frame.frame_len();
            let cost = len as u64 + overhead;
            q.bytes -= len;
            q.stats.sent_packets += 1;
            q.stats.sent_bytes += len as u64;
            for b in [&mut q.min, &mut q.max].into_iter().flatten() {
                b.take(cost);
            }
            if q.frames.is_empty() {
                q.deficit = 0;
            }
            if let Some(s) = &mut self.shaper {
                s.take(cost);
            }
            send(frame);
            sent += 1;
        }
        sent
    }

    /// A burst reaching an idle scheduler that the shaper and every queue's maximum rate let
    /// through whole would leave at once, whatever the order of service: instead of queueing
    /// it, takes its tokens and counts it as queued and sent, and returns true. Otherwise
    /// takes nothing and returns false (the caller queues the frames). `packets` and `bytes`
    /// are the burst's, per class.
    pub fn pass_through(
        &mut self,
        now_ns: u64,
        packets: &[u64; CLASSES],
        bytes: &[u64; CLASSES],
    ) -> bool {
        if !self.is_empty() {
            return false;
        }
        let overhead = u64::from(self.cfg.overhead);
        let cost: [u64; CLASSES] = std::array::from_fn(|i| bytes[i] + packets[i] * overhead);
        let total: u64 = cost.iter().sum();
        if let Some(s) = &mut self.shaper {
            s.fill(now_ns);
            if !s.has(total) {
                return false;
            }
        }
        for (q, &n) in self.queues.iter_mut().zip(&cost) {
            if n > 0
                && let Some(b) = &mut q.max
            {
                b.fill(now_ns);
                if !b.has(n) {
                    return false;
                }
            }
        }
        if let Some(s) = &mut self.shaper {
            s.take(total);
        }
        for (i, q) in self.queues.iter_mut().enumerate() {
            if packets[i] == 0 {
                continue;
            }
            for b in [&mut q.min, &mut q.max].into_iter().flatten() {
                b.fill(now_ns);
                b.take(cost[i]);
            }
            let st = &mut q.stats;
            st.enqueued_packets += packets[i];
            st.enqueued_bytes += bytes[i];
            st.sent_packets += packets[i];
            st.sent_bytes += bytes[i];
        }
        true
    }

    /// The queue whose head goes next, if the rates allow any; takes DWRR credit for it.
    fn pick(&mut self) -> Option<usize> {
        let overhead = u64::from(self.cfg.overhead);
        let cost = |q: &Queue<T>| q.frames.front().map(|f| f.frame_len() as u64 + overhead);
        let shaper_ok = |n: u64, s: &Option<Bucket>| s.as_ref().is_none_or(|b| b.has(n));
        let max_ok = |q: &Queue<T>, n: u64| q.max.as_ref().is_none_or(|b| b.has(n));
        // The port shaper gates everything: if the most urgent head does not fit, nothing
        // behind it goes first (no reordering of classes by size).
        for c in (0..CLASSES).rev() {
            let q = &self.queues[c];
            if self.cfg.queues[c].strict
                && let Some(n) = cost(q)
                && max_ok(q, n)
            {
                return shaper_ok(n, &self.shaper).then_some(c);
            }
        }
        for c in (0..CLASSES).rev() {
            let q = &self.queues[c];
            if !self.cfg.queues[c].strict
                && let (Some(n), Some(min)) = (cost(q), &q.min)
                && min.has(n)
                && max_ok(q, n)
            {
                return shaper_ok(n, &self.shaper).then_some(c);
            }
        }
        // DWRR over the weighted queues with a frame their maximum rate allows.
        let eligible = |s: &Self, c: usize| {
            !s.cfg.queues[c].strict && cost(&s.queues[c]).is_some_and(|n| max_ok(&s.queues[c], n))
        };
        if !(0..CLASSES).any(|c| eligible(self, c)) {
            return None;
        }
        // Each pass over the ring gives every eligible queue a quantum, so a head is reached
        // within (largest frame / smallest quantum) passes.
        for _ in 0..CLASSES * 64 {
            let c = self.current;
            if eligible(self, c) {
                let need = cost(&self.queues[c]).unwrap_or(0);
                if !self.credited {
                    self.queues[c].deficit += u64::from(self.cfg.queues[c].weight) * QUANTUM;
                    self.credited = true;
                }
                if self.queues[c].deficit >= need {
                    if !shaper_ok(need, &self.shaper) {
                        return None;
                    }
                    self.queues[c].deficit -= need;
                    return Some(c);
                }
            } else if self.cfg.queues[c].strict || self.queues[c].frames.is_empty() {
                self.queues[c].deficit = 0;
            }
            self.current = (c + 1) % CLASSES;
            self.credited = false;
        }
        None
    }

    /// Frames and bytes queued, per class.
    pub fn backlog(&self, class: TrafficClass) -> (usize, usize) {
        let q = &self.queues[class.index()];
        (q.frames.len(), q.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(|q| q.frames.is_empty())
    }

    pub fn stats(&self, class: TrafficClass) -> QueueStats {
        self.queues[class.index()].stats
    }

    /// Takes every queued frame out (the port goes away).
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.queues.iter_mut().flat_map(|q| {
            q.bytes = 0;
            q.frames.drain(..)
        })
    }
}

#[cfg(test)]
mod tests;
