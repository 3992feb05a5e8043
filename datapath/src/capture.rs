//! Packet capture on a port (`vswitchctl capture`): the PMDs copy the frames a port receives
//! or is sent into a bounded ring, the control side drains it. Capture never makes a PMD wait
//! or allocate: a ring another PMD holds, or a full ring, counts the frames as missed. When
//! nobody captures, a PMD pays one relaxed load per burst.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::packet::Packet;

/// Which way a captured frame went, as the port sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received on the port (entering the switch).
    Rx,
    /// Sent to the port (leaving the switch).
    Tx,
}

impl Direction {
    fn bit(self) -> u8 {
        match self {
            Direction::Rx => RX,
            Direction::Tx => TX,
        }
    }
}

const RX: u8 = 1;
const TX: u8 = 2;

/// Largest snap length: a jumbo frame.
pub const MAX_SNAPLEN: usize = 9216;
/// Most frames a capture ring holds before the reader drains it.
pub const MAX_RING: usize = 65536;
/// A capture nobody read for this long is stopped (its reader went away).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a capture records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureSpec {
    pub rx: bool,
    pub tx: bool,
    /// Bytes kept of each frame (at most [`MAX_SNAPLEN`]).
    pub snaplen: usize,
    /// Frames the ring holds (at most [`MAX_RING`]).
    pub ring: usize,
}

/// One captured frame: when (wall time), which way, its length on the wire, its first
/// `snaplen` bytes, and how many frames were missed between it and the one before (pcapng's
/// `epb_dropcount`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    pub unix_ns: u64,
    pub direction: Direction,
    pub orig_len: u32,
    pub data: Vec<u8>,
    pub missed_before: u64,
}

/// What a read drained.
#[derive(Debug, Default)]
pub struct CaptureRead {
    pub frames: Vec<Captured>,
    /// Frames missed since the capture started (ring full or busy).
    pub missed: u64,
}

struct Ring {
    spec: CaptureSpec,
    frames: VecDeque<Captured>,
    /// Empty buffers of `snaplen` bytes' capacity, so the PMD never allocates.
    spare: Vec<Vec<u8>>,
    /// Frames missed for a full ring since the last frame captured.
    full_since: u64,
    last_read: Instant,
}

/// A port's capture point, shared by the control side and every PMD that receives from or
/// sends to the port.
#[derive(Default)]
pub(crate) struct Tap {
    armed: AtomicU8,
    ring: Mutex<Option<Ring>>,
    /// Frames missed because another PMD held the ring (counted without it), not yet
    /// attributed to a captured frame.
    busy_since: AtomicU64,
    /// Every frame missed since the capture started.
    missed: AtomicU64,
}

impl Tap {
    /// Whether frames going `dir` are being captured (one relaxed load).
    #[inline(always)]
    pub(crate) fn armed(&self, dir: Direction) -> bool {
        self.armed.load(Ordering::Relaxed) & dir.bit() != 0
    }

    /// Copies `pkts` into the ring, or counts them missed. Called by PMDs only when armed.
    #[cold]
    pub(crate) fn record(&self, dir: Direction, pkts: &[Packet]) {
        if pkts.is_empty() {
            return;
        }
        let Ok(mut guard) = self.ring.try_lock() else {
            let n = pkts.len() as u64;
            self.busy_since.fetch_add(n, Ordering::Relaxed);
            self.missed.fetch_add(n, Ordering::Relaxed);
            return;
        };
        let Some(ring) = guard.as_mut() else { return };
        let unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut full = 0;
        for p in pkts {
            let Some(mut buf) = ring.spare.pop() else {
                full += 1;
                ring.full_since += 1;
                continue;
            };
            let missed_before =
                std::mem::take(&mut ring.full_since) + self.busy_since.swap(0, Ordering::Relaxed);
            let data = p.data();
            buf.clear();
            buf.extend_from_slice(&data[..data.len().min(ring.spec.snaplen)]);
            ring.frames.push_back(Captured {
                unix_ns,
                direction: dir,
                orig_len: data.len() as u32,
                data: buf,
                missed_before,
            });
        }
        if full > 0 {
            self.missed.fetch_add(full, Ordering::Relaxed);
        }
    }

    /// Starts capturing; false if a capture is running already.
    pub(crate) fn start(&self, spec: CaptureSpec) -> bool {
        let mut guard = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_some() {
            return false;
        }
        *guard = Some(Ring {
            spec,
            // Room for the spares the reader returns while the ring is full, without moving.
            frames: VecDeque::with_capacity(spec.ring),
            spare: (0..spec.ring)
                .map(|_| Vec::with_capacity(spec.snaplen))
                .collect(),
            full_since: 0,
            last_read: Instant::now(),
        });
        self.busy_since.store(0, Ordering::Relaxed);
        self.missed.store(0, Ordering::Relaxed);
        let bits = if spec.rx { RX } else { 0 } | if spec.tx { TX } else { 0 };
        self.armed.store(bits, Ordering::Relaxed);
        true
    }

    /// Takes up to `max` frames; None if no capture is running. The ring is held only to move
    /// frames out and buffers in (a PMD that finds it held counts its burst missed), so the
    /// buffers are allocated before.
    pub(crate) fn read(&self, max: usize) -> Option<CaptureRead> {
        let (ready, snaplen) = {
            let guard = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            let ring = guard.as_ref()?;
            (ring.frames.len().min(max), ring.spec.snaplen)
        };
        let mut spares: Vec<Vec<u8>> = (0..ready).map(|_| Vec::with_capacity(snaplen)).collect();
        let mut frames = Vec::with_capacity(ready);
        {
            let mut guard = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            let ring = guard.as_mut()?;
            ring.last_read = Instant::now();
            // The capture may have been restarted in between: only take what the buffers cover.
            let n = ring.frames.len().min(ready);
            frames.extend(ring.frames.drain(..n));
            spares.truncate(n);
            ring.spare.append(&mut spares);
        }
        Some(CaptureRead {
            frames,
            missed: self.missed(),
        })
    }

    fn missed(&self) -> u64 {
        self.missed.load(Ordering::Relaxed)
    }

    /// Stops capturing; returns the frames missed, None if no capture was running.
    pub(crate) fn stop(&self) -> Option<u64> {
        self.armed.store(0, Ordering::Relaxed);
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        drop(ring);
        Some(self.missed())
    }

    /// Stops a capture whose reader has not read for [`IDLE_TIMEOUT`]; true if it did.
    pub(crate) fn stop_if_abandoned(&self) -> bool {
        let abandoned = self
            .ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|r| r.last_read.elapsed() > IDLE_TIMEOUT);
        abandoned && self.stop().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PacketPool;

    fn packets(pool: &mut PacketPool, n: usize, len: usize) -> Vec<Packet> {
        (0..n)
            .map(|i| {
                let mut p = pool.get();
                let frame: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
                assert!(p.set_data(&frame));
                p
            })
            .collect()
    }

    fn spec(ring: usize, snaplen: usize) -> CaptureSpec {
        CaptureSpec {
            rx: true,
            tx: false,
            snaplen,
            ring,
        }
    }

    #[test]
    fn frames_are_copied_cut_to_snaplen_and_counted_missed_when_full() {
        let tap = Tap::default();
        let mut pool = PacketPool::with_capacity(16);
        assert!(!tap.armed(Direction::Rx));
        assert!(tap.start(spec(4, 10)));
        assert!(!tap.start(spec(4, 10)), "one capture per port");
        assert!(tap.armed(Direction::Rx) && !tap.armed(Direction::Tx));
        let pkts = packets(&mut pool, 6, 64);
        tap.record(Direction::Rx, &pkts);
        let r = tap.read(100).unwrap();
        assert_eq!(r.frames.len(), 4);
        assert_eq!(r.missed, 2);
        assert!(r.frames.iter().all(|f| f.missed_before == 0));
        for (c, p) in r.frames.iter().zip(&pkts) {
            assert_eq!(c.orig_len, 64);
            assert_eq!(c.data, p.data()[..10]);
            assert_eq!(c.direction, Direction::Rx);
        }
        // Drained buffers are replaced: the ring takes four more; the first of them carries
        // the two missed before it.
        tap.record(Direction::Rx, &pkts[..4]);
        let r = tap.read(2).unwrap();
        assert_eq!(r.frames.len(), 2);
        assert_eq!(r.frames[0].missed_before, 2);
        assert_eq!(r.frames[1].missed_before, 0);
        assert_eq!(tap.read(100).unwrap().frames.len(), 2);
        assert_eq!(tap.stop(), Some(2));
        assert!(!tap.armed(Direction::Rx));
        assert!(tap.read(1).is_none());
        assert_eq!(tap.stop(), None);
    }

    #[test]
    fn a_busy_ring_counts_the_burst_missed() {
        let tap = Tap::default();
        let mut pool = PacketPool::with_capacity(4);
        assert!(tap.start(spec(8, 64)));
        let pkts = packets(&mut pool, 3, 20);
        {
            let _held = tap.ring.lock().unwrap();
            tap.record(Direction::Rx, &pkts);
        }
        let r = tap.read(10).unwrap();
        assert!(r.frames.is_empty());
        assert_eq!(r.missed, 3);
        tap.record(Direction::Rx, &pkts[..1]);
        assert_eq!(tap.read(10).unwrap().frames[0].missed_before, 3);
    }
}
