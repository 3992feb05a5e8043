//! Moving frames between the switch's packet buffers and a running ring.
//!
//! [`dequeue_burst`] takes the frames the guest transmitted (a guest TX queue): it strips the
//! virtio-net header and copies the frame into a pool packet. [`enqueue_burst`] delivers frames
//! to the guest (a guest RX queue): header plus frame into one posted chain, or, with mergeable
//! receive buffers, across as many chains as needed (`num_buffers` in the header).
//!
//! A bad chain costs one dropped frame (counted by reason) and is handed back to the guest with
//! length 0; a [`RingFault`] stops the burst and the caller marks the queue broken.

use port_api::{Batch, MAX_BURST, MAX_FRAME, Packet, PacketPool};

use crate::ring::{HostBuf, RingFault, Seg, SplitRing};
use crate::stats::{DropReason, QueueStats};
use crate::virtio_net::{
    TX_HEADER_LEN, TxOffload, parse_tx_header, rx_header, store_rx_header, store_rx_header_marked,
};

/// Frames shorter than an Ethernet header are dropped.
const MIN_FRAME: usize = 14;

/// Reusable per-ring buffers, so bursts allocate nothing once warm.
#[derive(Default)]
pub struct Scratch {
    segs: Vec<Seg>,
    /// Chains gathered for one frame (mergeable receive): head and length.
    chains: Vec<(u16, u32)>,
}

/// What a burst did.
#[derive(Debug, Default)]
pub struct Burst {
    /// Frames received (dequeue) or delivered (enqueue).
    pub done: usize,
    /// The driver wants an interrupt.
    pub notify: bool,
    /// The ring cannot be used any more.
    pub fault: Option<RingFault>,
}

/// Takes up to `out.room()` frames from a guest TX ring into `out`.
///
/// In stages over the burst, so that the cache misses on what the driver just wrote overlap:
/// read the heads and prefetch their descriptors; resolve the usual one-descriptor chains and
/// prefetch their buffers; then copy each frame out.
pub fn dequeue_burst(
    ring: &mut SplitRing,
    scratch: &mut Scratch,
    pool: &mut PacketPool,
    out: &mut Batch,
    stats: &QueueStats,
) -> Burst {
    // One copy of the loop per setting, so a guest without checksum offload runs the loop
    // with no trace of it.
    if ring.csum {
        dequeue::<true>(ring, scratch, pool, out, stats)
    } else {
        dequeue::<false>(ring, scratch, pool, out, stats)
    }
}

/// [`dequeue_burst`], reading the guests' checksum marks if `CSUM`.
#[inline(always)]
fn dequeue<const CSUM: bool>(
    ring: &mut SplitRing,
    scratch: &mut Scratch,
    pool: &mut PacketPool,
    out: &mut Batch,
    stats: &QueueStats,
) -> Burst {
    let mut burst = Burst::default();
    let want = out.room().min(MAX_BURST);
    let pending = match ring.available_for(want as u16) {
        Ok(n) => n,
        Err(f) => return fault(burst, f),
    };
    let n = usize::from(pending).min(want);
    let mut heads = [0u16; MAX_BURST];
    let heads = &mut heads[..n];
    if let Err(f) = ring.peek_heads(heads) {
        return fault(burst, f);
    }
    for &h in heads.iter() {
        ring.prefetch_desc(h);
    }
    ring.prefetch_used(n as u16);
    let bufs = single_buffers(ring, heads, false);

    let mut counted = Counted::default();
    for (&head, buf) in heads.iter().zip(bufs.iter()) {
        ring.consume();
        let frame = match buf {
            Some(buf) if CSUM => {
                copy_out(*buf, ring.hdr_len, pool).and_then(|p| mark_from(*buf, p, pool))
            }
            Some(buf) => copy_out(*buf, ring.hdr_len, pool),
            None => read_frame(ring, scratch, head, pool),
        };
        ring.push_used(head, 0);
        match frame {
            Ok(pkt) => {
                counted.add(pkt.len());
                if CSUM && pkt.csum.is_some() {
                    out.set_csum_marks(true);
                }
                if let Err(pkt) = out.push(pkt) {
                    pool.put(pkt);
                } else {
                    burst.done += 1;
                }
            }
            Err(reason) => stats.drop(reason, 1),
        }
    }
    counted.flush(stats, publish(ring, burst))
}

/// For each head, its buffer if the chain is one descriptor (see [`SplitRing::single`]), with
/// its start being fetched (for writing when `writable`).
fn single_buffers<'a>(
    ring: &'a SplitRing,
    heads: &[u16],
    writable: bool,
) -> [Option<HostBuf<'a>>; MAX_BURST] {
    let mut bufs = [None; MAX_BURST];
    for (&h, b) in heads.iter().zip(bufs.iter_mut()) {
        *b = ring.single(h, writable);
        if let Some(buf) = b {
            port_api::prefetch::head(buf.as_ptr(), buf.len(), writable);
        }
    }
    bufs
}

/// The frame in a one-descriptor chain, after its virtio-net header. Always inlined into the
/// per-frame loop (out of line it costs about 25 instructions a frame, measured).
#[inline(always)]
fn copy_out(buf: HostBuf<'_>, hdr_len: usize, pool: &mut PacketPool) -> Result<Packet, DropReason> {
    let len = frame_len(buf.len(), hdr_len)?;
    let mut pkt = pool.get_for(len);
    if !buf.read(hdr_len, pkt.prepare(len)) {
        pool.put(pkt);
        return Err(DropReason::BadLength);
    }
    Ok(pkt)
}

/// Marks a frame copied out of a one-descriptor chain as its header asks (checksum offload
/// negotiated). Out of line: guests without the offload do not pay for it.
#[inline(never)]
fn mark_from(
    buf: HostBuf<'_>,
    mut pkt: Packet,
    pool: &mut PacketPool,
) -> Result<Packet, DropReason> {
    let mut hdr = [0u8; TX_HEADER_LEN];
    let applied = if buf.read(0, &mut hdr) {
        apply_tx_header(&mut pkt, &hdr)
    } else {
        Err(DropReason::BadLength)
    };
    match applied {
        Ok(()) => Ok(pkt),
        Err(reason) => {
            pool.put(pkt);
            Err(reason)
        }
    }
}

/// Marks the packet as its transmit header asks (a checksum left to compute); a header that
/// asks for what was not negotiated, or whose checksum lies outside the frame, drops it.
fn apply_tx_header(pkt: &mut Packet, hdr: &[u8; TX_HEADER_LEN]) -> Result<(), DropReason> {
    match parse_tx_header(hdr, true) {
        Some(TxOffload::None) => Ok(()),
        Some(TxOffload::Csum { start, offset }) if pkt.set_csum_partial(start, offset) => Ok(()),
        _ => Err(DropReason::BadHeader),
    }
}

/// Frames and bytes of a burst, added to the queue's counters once at its end.
#[derive(Default)]
struct Counted {
    packets: u64,
    bytes: u64,
}

impl Counted {
    #[inline]
    fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    fn flush(self, stats: &QueueStats, burst: Burst) -> Burst {
        if self.packets > 0 {
            stats.packets.add(self.packets);
            stats.bytes.add(self.bytes);
        }
        burst
    }
}

fn read_frame(
    ring: &SplitRing,
    scratch: &mut Scratch,
    head: u16,
    pool: &mut PacketPool,
) -> Result<port_api::Packet, DropReason> {
    scratch.segs.clear();
    let total = ring.walk(head, false, &mut scratch.segs)? as usize;
    let len = frame_len(total, ring.hdr_len)?;
    let mut pkt = pool.get_for(len);
    let mut read = ring
        .gather(&scratch.segs, ring.hdr_len, pkt.prepare(len))
        .map_err(DropReason::from);
    if read.is_ok() && ring.csum {
        let mut hdr = [0u8; TX_HEADER_LEN];
        read = ring
            .gather(&scratch.segs, 0, &mut hdr)
            .map_err(DropReason::from)
            .and_then(|()| apply_tx_header(&mut pkt, &hdr));
    }
    match read {
        Ok(()) => Ok(pkt),
        Err(e) => {
            pool.put(pkt);
            Err(e)
        }
    }
}

/// The frame length of a chain of `total` bytes that starts with a `hdr_len` header.
#[inline]
fn frame_len(total: usize, hdr_len: usize) -> Result<usize, DropReason> {
    let len = total.checked_sub(hdr_len).ok_or(DropReason::BadLength)?;
    if len < MIN_FRAME {
        return Err(DropReason::BadLength);
    }
    if len > MAX_FRAME {
        return Err(DropReason::Oversize);
    }
    Ok(len)
}

/// Delivers every packet of `pkts` to a guest RX ring (or drops it, counted by reason). The
/// buffers go back to `pool`.
///
/// Staged like [`dequeue_burst`]: while each packet's next chain is one buffer big enough for
/// it, the frame goes straight there; from the first packet that needs more (or whose chain is
/// not that simple), the rest take the general path.
pub fn enqueue_burst(
    ring: &mut SplitRing,
    scratch: &mut Scratch,
    pkts: &mut Batch,
    pool: &mut PacketPool,
    stats: &QueueStats,
) -> Burst {
    // Marks go to a guest that takes them; for one that does not, the checksums are
    // completed. One copy of the loop per case, as for dequeue.
    let marks = pkts.csum_marks();
    if marks && !ring.guest_csum {
        complete_checksums(pkts);
    }
    if marks && ring.guest_csum {
        enqueue::<true>(ring, scratch, pkts, pool, stats)
    } else {
        enqueue::<false>(ring, scratch, pkts, pool, stats)
    }
}

/// [`enqueue_burst`], writing the packets' checksum marks into the headers if `MARKS`.
#[inline(always)]
fn enqueue<const MARKS: bool>(
    ring: &mut SplitRing,
    scratch: &mut Scratch,
    pkts: &mut Batch,
    pool: &mut PacketPool,
    stats: &QueueStats,
) -> Burst {
    let mut burst = Burst::default();
    let mut avail = match ring.available_for(pkts.len().min(MAX_BURST) as u16) {
        Ok(n) => n,
        Err(f) => {
            stats.drop(DropReason::NotReady, pkts.len() as u64);
            pkts.recycle(pool);
            return fault(burst, f);
        }
    };
    let n = usize::from(avail).min(pkts.len()).min(MAX_BURST);
    let mut heads = [0u16; MAX_BURST];
    let heads = &mut heads[..n];
    if let Err(f) = ring.peek_heads(heads) {
        stats.drop(DropReason::NotReady, pkts.len() as u64);
        pkts.recycle(pool);
        return fault(burst, f);
    }
    for &h in heads.iter() {
        ring.prefetch_desc(h);
    }
    ring.prefetch_used(n as u16);
    let hdr_len = ring.hdr_len;
    let bufs = single_buffers(ring, heads, true);

    // The fast prefix: each packet straight into its one-descriptor chain.
    let mut counted = Counted::default();
    let mut fast = 0;
    for ((pkt, &head), buf) in pkts.iter().zip(heads.iter()).zip(bufs.iter()) {
        let frame = pkt.data();
        let csum = if MARKS { pkt.csum_partial() } else { None };
        let Some(()) = buf.and_then(|buf| copy_in(buf, hdr_len, frame, csum)) else {
            break;
        };
        ring.consume();
        ring.push_used(head, (hdr_len + frame.len()) as u32);
        counted.add(frame.len());
        fast += 1;
    }
    avail -= fast as u16;
    burst.done = fast;
    if fast == pkts.len() {
        pkts.recycle(pool);
        return counted.flush(stats, publish(ring, burst));
    }

    // The rest, in order, through the general path.
    for (i, pkt) in pkts.drain().enumerate() {
        if i < fast {
            pool.put(pkt);
            continue;
        }
        if burst.fault.is_some() {
            stats.drop(DropReason::NotReady, 1);
            pool.put(pkt);
            continue;
        }
        let csum = if MARKS { pkt.csum_partial() } else { None };
        match write_frame(ring, scratch, &mut avail, pkt.data(), csum) {
            Ok(Ok(())) => {
                counted.add(pkt.len());
                burst.done += 1;
            }
            Ok(Err(reason)) => stats.drop(reason, 1),
            Err(f) => {
                stats.drop(DropReason::NotReady, 1);
                burst.fault = Some(f);
            }
        }
        pool.put(pkt);
    }
    if burst.fault.is_some() {
        return counted.flush(stats, burst);
    }
    counted.flush(stats, publish(ring, burst))
}

/// Completes the checksums senders left for a guest that does not take them as they are.
#[cold]
fn complete_checksums(pkts: &mut Batch) {
    for p in pkts.iter_mut() {
        // A mark checked at ingress still fits: frames do not shrink on the way.
        p.complete_csum();
    }
}

/// Header (with the checksum mark `csum`, if any) and frame into a one-descriptor chain's
/// buffer; None if they do not fit.
#[inline]
fn copy_in(
    buf: HostBuf<'_>,
    hdr_len: usize,
    frame: &[u8],
    csum: Option<(usize, usize)>,
) -> Option<()> {
    if buf.len() < hdr_len + frame.len() {
        return None;
    }
    let header = match csum {
        None => store_rx_header(&buf, hdr_len, 1),
        Some((start, offset)) => store_rx_header_marked(&buf, hdr_len, start, offset),
    };
    (header && buf.write(hdr_len, frame)).then_some(())
}

/// Writes one frame into the ring. The outer error is a ring fault, the inner a dropped frame.
fn write_frame(
    ring: &SplitRing,
    scratch: &mut Scratch,
    avail: &mut u16,
    frame: &[u8],
    csum: Option<(usize, usize)>,
) -> Result<Result<(), DropReason>, RingFault> {
    let hdr_len = ring.hdr_len;
    let need = hdr_len + frame.len();

    scratch.segs.clear();
    scratch.chains.clear();

    // `avail` may come from an earlier read of the driver's index: read it again before
    // calling the ring empty.
    let out_of_buffers = |avail: &mut u16| -> Result<bool, RingFault> {
        if *avail == 0 {
            *avail = ring.available()?;
        }
        Ok(*avail == 0)
    };
    if !ring.mrg_rxbuf {
        if out_of_buffers(avail)? {
            return Ok(Err(DropReason::NoGuestBuffer));
        }
        let head = ring.pop_head()?;
        *avail -= 1;
        let res = match ring.walk(head, true, &mut scratch.segs) {
            Err(e) => Err(e.into()),
            Ok(cap) if (cap as usize) < need => Err(DropReason::GuestBufferTooSmall),
            Ok(_) => {
                let hdr = rx_header(hdr_len, 1, csum);
                ring.scatter(&scratch.segs, &[&hdr[..hdr_len], frame])
                    .map_err(DropReason::from)
            }
        };
        let used = if res.is_ok() { need as u32 } else { 0 };
        ring.push_used(head, used);
        return Ok(res);
    }

    // Mergeable buffers: gather chains until header and frame fit.
    let mut cap = 0usize;
    while cap < need {
        if out_of_buffers(avail)? {
            // Not enough buffers for the whole frame: leave the gathered ones for later.
            let n = scratch.chains.len() as u16;
            ring.unpop(n);
            *avail += n;
            return Ok(Err(DropReason::NoGuestBuffer));
        }
        let head = ring.pop_head()?;
        *avail -= 1;
        match ring.walk(head, true, &mut scratch.segs) {
            Ok(len) => {
                cap += len as usize;
                scratch.chains.push((head, len));
            }
            Err(e) => {
                // Hand every chain taken for this frame back empty, the bad one last.
                for &(h, _) in &scratch.chains {
                    ring.push_used(h, 0);
                }
                ring.push_used(head, 0);
                return Ok(Err(e.into()));
            }
        }
    }
    let hdr = rx_header(hdr_len, scratch.chains.len() as u16, csum);
    let res = ring
        .scatter(&scratch.segs, &[&hdr[..hdr_len], frame])
        .map_err(DropReason::from);
    let mut left = if res.is_ok() { need } else { 0 };
    for &(h, len) in &scratch.chains {
        let used = left.min(len as usize);
        ring.push_used(h, used as u32);
        left -= used;
    }
    Ok(res)
}

fn fault(mut burst: Burst, f: RingFault) -> Burst {
    burst.fault = Some(f);
    burst
}

fn publish(ring: &mut SplitRing, mut burst: Burst) -> Burst {
    match ring.publish_used() {
        Ok(notify) => burst.notify = notify,
        Err(f) => burst.fault = Some(f),
    }
    burst
}
