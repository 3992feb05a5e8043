//! Ring processing against a synthetic guest (anonymous guest memory, a fake driver).

use port_api::{Batch, PacketPool};

use crate::fuzzing::MockGuest;
use crate::ring::{ChainError, RingFault, SplitRing};
use crate::rxtx::{Scratch, dequeue_burst, enqueue_burst};
use crate::stats::{DropReason, QueueStats};

pub(crate) const NEXT: u16 = 1;
pub(crate) const WRITE: u16 = 2;
const INDIRECT: u16 = 4;
pub(crate) const BUF: u64 = MockGuest::BUFFERS;
pub(crate) const HDR: usize = 12;

pub(crate) fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

pub(crate) fn dequeue(
    ring: &mut SplitRing,
    stats: &QueueStats,
) -> (Vec<Vec<u8>>, Option<RingFault>) {
    let mut pool = PacketPool::with_capacity(8);
    let mut out = Batch::new();
    let burst = dequeue_burst(ring, &mut Scratch::default(), &mut pool, &mut out, stats);
    assert_eq!(burst.done, out.len());
    (out.iter().map(|p| p.data().to_vec()).collect(), burst.fault)
}

pub(crate) fn enqueue(
    ring: &mut SplitRing,
    frames: &[Vec<u8>],
    stats: &QueueStats,
) -> (usize, bool, Option<RingFault>) {
    let mut pool = PacketPool::with_capacity(8);
    let mut pkts = Batch::new();
    for f in frames {
        let mut p = pool.get_for(f.len());
        assert!(p.set_data(f));
        pkts.push(p).ok().unwrap();
    }
    let burst = enqueue_burst(ring, &mut Scratch::default(), &mut pkts, &mut pool, stats);
    assert!(pkts.is_empty());
    (burst.done, burst.notify, burst.fault)
}

/// A transmit chain: header in descriptor 0, the frame split over descriptors 1 and 2.
#[test]
fn valid_tx_chain() {
    let mut g = MockGuest::new(0x10000, 8);
    let f = frame(100, 1);
    g.write(BUF, &[0u8; HDR]);
    g.write(BUF + 0x100, &f[..40]);
    g.write(BUF + 0x200, &f[40..]);
    g.write_desc(0, BUF, HDR as u32, NEXT, 5);
    g.write_desc(5, BUF + 0x100, 40, NEXT, 3);
    g.write_desc(3, BUF + 0x200, 60, 0, 0);
    g.publish(&[0]);
    let mut ring = g.ring(false, false, false);
    let stats = QueueStats::default();
    let (frames, fault) = dequeue(&mut ring, &stats);
    assert_eq!(fault, None);
    assert_eq!(frames, vec![f]);
    assert_eq!(g.used_idx(), 1);
    assert_eq!(g.used_elem(0), (0, 0));
    assert_eq!((stats.packets.get(), stats.bytes.get()), (1, 100));
    // Nothing more available: nothing happens.
    assert_eq!(dequeue(&mut ring, &stats).0.len(), 0);
    assert_eq!(g.used_idx(), 1);
}

/// Header and frame in one descriptor (the common Linux layout).
#[test]
fn single_descriptor_tx() {
    let mut g = MockGuest::new(0x10000, 8);
    let f = frame(64, 7);
    g.write(BUF + HDR as u64, &f);
    g.write_desc(2, BUF, (HDR + 64) as u32, 0, 0);
    g.publish(&[2]);
    let mut ring = g.ring(false, false, false);
    let (frames, _) = dequeue(&mut ring, &QueueStats::default());
    assert_eq!(frames, vec![f]);
    assert_eq!(g.used_elem(0), (2, 0));
}

/// One burst mixing one-descriptor chains (fast path), a chained frame (general path) and a bad
/// chain: every frame comes out in ring order, every chain is returned in order.
#[test]
fn mixed_tx_burst_keeps_order() {
    let mut g = MockGuest::new(0x10000, 8);
    let (a, b, c) = (frame(64, 1), frame(80, 2), frame(70, 3));
    g.write(BUF + HDR as u64, &a);
    g.write_desc(0, BUF, (HDR + 64) as u32, 0, 0);
    g.write(BUF + 0x1000, &[0u8; HDR]);
    g.write(BUF + 0x1100, &b);
    g.write_desc(1, BUF + 0x1000, HDR as u32, NEXT, 2);
    g.write_desc(2, BUF + 0x1100, 80, 0, 0);
    g.write_desc(3, 0xffff_0000, 100, 0, 0);
    g.write(BUF + 0x2000 + HDR as u64, &c);
    g.write_desc(4, BUF + 0x2000, (HDR + 70) as u32, 0, 0);
    g.publish(&[0, 1, 3, 4]);
    let mut ring = g.ring(false, false, false);
    let stats = QueueStats::default();
    let (frames, fault) = dequeue(&mut ring, &stats);
    assert_eq!(fault, None);
    assert_eq!(frames, vec![a, b, c]);
    assert_eq!(stats.dropped_for(DropReason::BadAddress), 1);
    assert_eq!(g.used_idx(), 4);
    let used: Vec<u32> = (0..4).map(|i| g.used_elem(i).0).collect();
    assert_eq!(used, vec![0, 1, 3, 4]);
}

fn expect_tx_drop(g: &mut MockGuest, head: u16, indirect: bool, reason: DropReason) {
    g.publish(&[head]);
    let mut ring = g.ring(indirect, false, false);
    let stats = QueueStats::default();
    let (frames, fault) = dequeue(&mut ring, &stats);
    assert_eq!(fault, None);
    assert!(frames.is_empty());
    assert_eq!(stats.dropped_for(reason), 1, "expected a {reason:?} drop");
    // The chain goes back to the guest, empty.
    assert_eq!(g.used_idx(), 1);
    assert_eq!(g.used_elem(0), (u32::from(head), 0));
}

#[test]
fn chain_loop_is_dropped() {
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, BUF, 64, NEXT, 1);
    g.write_desc(1, BUF, 64, NEXT, 0);
    expect_tx_drop(&mut g, 0, false, DropReason::ChainTooLong);
}

#[test]
fn self_loop_is_dropped() {
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(4, BUF, 64, NEXT, 4);
    expect_tx_drop(&mut g, 4, false, DropReason::ChainTooLong);
}

#[test]
fn next_index_out_of_range_is_dropped() {
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, BUF, 64, NEXT, 8);
    expect_tx_drop(&mut g, 0, false, DropReason::BadDescriptor);
}

#[test]
fn address_outside_memory_is_dropped() {
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, 0xfff0, 64, 0, 0);
    expect_tx_drop(&mut g, 0, false, DropReason::BadAddress);
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, u64::MAX - 8, 64, 0, 0);
    expect_tx_drop(&mut g, 0, false, DropReason::BadAddress);
}

#[test]
fn huge_length_is_dropped() {
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, BUF, u32::MAX, 0, 0);
    expect_tx_drop(&mut g, 0, false, DropReason::BadAddress);
}

#[test]
fn writable_buffer_in_tx_chain_is_dropped() {
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, BUF, 64, WRITE, 0);
    expect_tx_drop(&mut g, 0, false, DropReason::BadDescriptor);
}

#[test]
fn short_and_oversize_frames_are_dropped() {
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, BUF, 8, 0, 0);
    expect_tx_drop(&mut g, 0, false, DropReason::BadLength);
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, BUF, (HDR + port_api::MAX_FRAME + 1) as u32, 0, 0);
    expect_tx_drop(&mut g, 0, false, DropReason::Oversize);
}

#[test]
fn indirect_descriptors() {
    let mut g = MockGuest::new(0x10000, 8);
    let f = frame(90, 3);
    let table = BUF + 0x1000;
    g.write(BUF, &[0u8; HDR]);
    g.write(BUF + 0x100, &f[..30]);
    g.write(BUF + 0x200, &f[30..]);
    g.write_desc_at(table, 0, BUF, HDR as u32, NEXT, 2);
    g.write_desc_at(table, 2, BUF + 0x100, 30, NEXT, 1);
    g.write_desc_at(table, 1, BUF + 0x200, 60, 0, 0);
    g.write_desc(6, table, 3 * 16, INDIRECT, 0);
    g.publish(&[6]);
    let mut ring = g.ring(true, false, false);
    let (frames, fault) = dequeue(&mut ring, &QueueStats::default());
    assert_eq!(fault, None);
    assert_eq!(frames, vec![f]);
    assert_eq!(g.used_elem(0), (6, 0));
}

#[test]
fn bad_indirect_descriptors_are_dropped() {
    let table = BUF + 0x1000;
    // Not negotiated.
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc_at(table, 0, BUF, 80, 0, 0);
    g.write_desc(0, table, 16, INDIRECT, 0);
    expect_tx_drop(&mut g, 0, false, DropReason::BadDescriptor);
    // Nested.
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc_at(table, 0, table, 16, INDIRECT, 0);
    g.write_desc(0, table, 16, INDIRECT, 0);
    expect_tx_drop(&mut g, 0, true, DropReason::BadDescriptor);
    // Length not a multiple of 16.
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, table, 20, INDIRECT, 0);
    expect_tx_drop(&mut g, 0, true, DropReason::BadDescriptor);
    // INDIRECT together with NEXT.
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, table, 16, INDIRECT | NEXT, 1);
    expect_tx_drop(&mut g, 0, true, DropReason::BadDescriptor);
    // Table longer than the ring.
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, table, 16 * 9, INDIRECT, 0);
    expect_tx_drop(&mut g, 0, true, DropReason::ChainTooLong);
    // A loop inside the table.
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc_at(table, 0, BUF, 40, NEXT, 1);
    g.write_desc_at(table, 1, BUF, 40, NEXT, 0);
    g.write_desc(0, table, 32, INDIRECT, 0);
    expect_tx_drop(&mut g, 0, true, DropReason::ChainTooLong);
    // Table outside memory.
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, 0xfff8, 32, INDIRECT, 0);
    expect_tx_drop(&mut g, 0, true, DropReason::BadAddress);
}

#[test]
fn avail_index_too_far_ahead_breaks_the_ring() {
    let g = MockGuest::new(0x10000, 8);
    g.set_avail_idx(9);
    let mut ring = g.ring(false, false, false);
    let (frames, fault) = dequeue(&mut ring, &QueueStats::default());
    assert!(frames.is_empty());
    assert_eq!(
        fault,
        Some(RingFault::AvailIndexAhead {
            pending: 9,
            size: 8
        })
    );
    // Exactly a full ring is fine.
    let mut g = MockGuest::new(0x10000, 8);
    for i in 0..8 {
        g.write_desc(i, BUF, 80, 0, 0);
    }
    g.publish(&[0, 1, 2, 3, 4, 5, 6, 7]);
    let mut ring = g.ring(false, false, false);
    assert_eq!(dequeue(&mut ring, &QueueStats::default()).0.len(), 8);
}

#[test]
fn head_out_of_range_breaks_the_ring() {
    let mut g = MockGuest::new(0x10000, 8);
    g.publish(&[8]);
    let mut ring = g.ring(false, false, false);
    let (_, fault) = dequeue(&mut ring, &QueueStats::default());
    assert_eq!(fault, Some(RingFault::HeadOutOfRange { head: 8, size: 8 }));
}

#[test]
fn ring_outside_memory_is_refused() {
    let g = MockGuest::new(0x10000, 8);
    let cfg = crate::ring::RingConfig {
        desc: 0,
        avail: 0xfffe,
        used: MockGuest::USED,
        size: 8,
        base: 0,
        event_idx: false,
        indirect: false,
        hdr_len: 12,
        mrg_rxbuf: false,
        csum: false,
        guest_csum: false,
    };
    let err = SplitRing::new(g.mem.clone(), cfg).err();
    assert_eq!(err, Some(RingFault::Inaccessible("available ring")));
}

#[test]
fn rx_single_buffer() {
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, BUF, 2048, WRITE, 0);
    g.write_desc(1, BUF + 0x1000, 40, WRITE, 0);
    g.publish(&[0, 1]);
    let mut ring = g.ring(false, false, false);
    let stats = QueueStats::default();
    let f = frame(200, 9);
    // The second frame does not fit its 40-byte buffer; the third finds no buffer.
    let (done, notify, fault) = enqueue(&mut ring, &[f.clone(), f.clone(), f.clone()], &stats);
    assert_eq!((done, notify, fault), (1, true, None));
    let hdr = g.read(BUF, HDR);
    assert_eq!(&hdr[10..12], &[1, 0], "num_buffers = 1");
    assert_eq!(g.read(BUF + HDR as u64, 200), f);
    assert_eq!(g.used_idx(), 2);
    assert_eq!(g.used_elem(0), (0, (HDR + 200) as u32));
    assert_eq!(g.used_elem(1), (1, 0));
    assert_eq!(stats.dropped_for(DropReason::GuestBufferTooSmall), 1);
    assert_eq!(stats.dropped_for(DropReason::NoGuestBuffer), 1);
}

#[test]
fn rx_readable_buffer_is_dropped() {
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, BUF, 2048, 0, 0);
    g.publish(&[0]);
    let mut ring = g.ring(false, false, false);
    let stats = QueueStats::default();
    let (done, _, _) = enqueue(&mut ring, &[frame(60, 0)], &stats);
    assert_eq!(done, 0);
    assert_eq!(stats.dropped_for(DropReason::BadDescriptor), 1);
    assert_eq!(g.used_elem(0), (0, 0));
}

/// A guest receive ring with mergeable buffers and four 1024-byte buffers posted (descriptors
/// 0..4 at BUF + 0x1000 * i).
fn four_mergeable_buffers() -> (MockGuest, SplitRing) {
    four_mergeable_buffers_of(&[0, 1, 2, 3])
}

/// The same four buffers, of which only `posted` are made available yet.
fn four_mergeable_buffers_of(posted: &[u16]) -> (MockGuest, SplitRing) {
    let mut g = MockGuest::new(0x10000, 8);
    for i in 0..4u16 {
        g.write_desc(i, BUF + 0x1000 * u64::from(i), 1024, WRITE, 0);
    }
    g.publish(posted);
    let ring = g.ring(false, false, true);
    (g, ring)
}

#[test]
fn rx_mergeable_buffers() {
    let (g, mut ring) = four_mergeable_buffers();
    let stats = QueueStats::default();
    let f = frame(1500, 5);
    let small = frame(60, 6);
    let (done, _, fault) = enqueue(&mut ring, &[f.clone(), small.clone()], &stats);
    assert_eq!((done, fault), (2, None));
    // 12 + 1500 bytes: 1024 in buffer 0, 488 in buffer 1, num_buffers = 2.
    assert_eq!(&g.read(BUF, HDR)[10..12], &[2, 0]);
    let mut got = g.read(BUF + HDR as u64, 1024 - HDR);
    got.extend(g.read(BUF + 0x1000, 1500 - (1024 - HDR)));
    assert_eq!(got, f);
    assert_eq!(g.used_elem(0), (0, 1024));
    assert_eq!(g.used_elem(1), (1, 488));
    // The small frame takes one buffer.
    assert_eq!(&g.read(BUF + 0x2000, HDR)[10..12], &[1, 0]);
    assert_eq!(g.read(BUF + 0x2000 + HDR as u64, 60), small);
    assert_eq!(g.used_elem(2), (2, 72));
    assert_eq!(g.used_idx(), 3);

    // One buffer left, a 1500-byte frame needs two: dropped, the buffer stays available.
    let (done, _, _) = enqueue(&mut ring, std::slice::from_ref(&f), &stats);
    assert_eq!(done, 0);
    assert_eq!(stats.dropped_for(DropReason::NoGuestBuffer), 1);
    assert_eq!(g.used_idx(), 3);
    let (done, _, _) = enqueue(&mut ring, std::slice::from_ref(&small), &stats);
    assert_eq!(done, 1);
    assert_eq!(g.used_elem(3), (3, 72));
}

/// Fast path for the first frame, then a frame that needs two buffers: it and every later
/// frame of the burst take the general path, and the buffers are used in ring order.
#[test]
fn rx_fast_then_general_path() {
    let (g, mut ring) = four_mergeable_buffers();
    let stats = QueueStats::default();
    let (s1, big, s2) = (frame(60, 1), frame(1500, 2), frame(100, 3));
    let (done, _, fault) = enqueue(&mut ring, &[s1.clone(), big.clone(), s2.clone()], &stats);
    assert_eq!((done, fault), (3, None));
    assert_eq!(g.read(BUF + HDR as u64, 60), s1);
    let mut got = g.read(BUF + 0x1000 + HDR as u64, 1024 - HDR);
    got.extend(g.read(BUF + 0x2000, 1500 - (1024 - HDR)));
    assert_eq!(got, big);
    assert_eq!(&g.read(BUF + 0x1000, HDR)[10..12], &[2, 0]);
    assert_eq!(g.read(BUF + 0x3000 + HDR as u64, 100), s2);
    let used: Vec<(u32, u32)> = (0..4).map(|i| g.used_elem(i)).collect();
    assert_eq!(used, vec![(0, 72), (1, 1024), (2, 488), (3, 112)]);
    assert_eq!(g.used_idx(), 4);
}

/// The driver's available index is read again only when the last read does not cover the
/// burst.
#[test]
fn avail_index_read_again_when_needed() {
    let (mut g, mut ring) = four_mergeable_buffers_of(&[0, 1]);
    assert_eq!(ring.available_for(1), Ok(2));
    let stats = QueueStats::default();
    assert_eq!(enqueue(&mut ring, &[frame(60, 1)], &stats).0, 1);
    g.publish(&[2, 3]);
    // One buffer left as last read covers one chain: the new ones are not seen yet.
    assert_eq!(ring.available_for(1), Ok(1));
    assert_eq!(ring.available_for(2), Ok(3));
}

/// A frame that needs more buffers than the last read of the available index counted reads it
/// again before it is dropped.
#[test]
fn rx_mergeable_reads_avail_index_again() {
    let (mut g, mut ring) = four_mergeable_buffers_of(&[0, 1]);
    let stats = QueueStats::default();
    assert_eq!(enqueue(&mut ring, &[frame(60, 1)], &stats).0, 1);
    g.publish(&[2, 3]);
    // 12 + 1500 bytes: buffer 1 (the one counted) and buffer 2 (found on a fresh read).
    assert_eq!(enqueue(&mut ring, &[frame(1500, 2)], &stats).0, 1);
    assert_eq!(stats.dropped_for(DropReason::NoGuestBuffer), 0);
    assert_eq!(g.used_elem(1), (1, 1024));
    assert_eq!(g.used_elem(2), (2, 488));
}

#[test]
fn rx_mergeable_bad_chain_returns_gathered_buffers() {
    let mut g = MockGuest::new(0x10000, 8);
    g.write_desc(0, BUF, 1024, WRITE, 0);
    g.write_desc(1, 0xffff_0000, 1024, WRITE, 0);
    g.publish(&[0, 1]);
    let mut ring = g.ring(false, false, true);
    let stats = QueueStats::default();
    let (done, _, fault) = enqueue(&mut ring, &[frame(1500, 0)], &stats);
    assert_eq!((done, fault), (0, None));
    assert_eq!(stats.dropped_for(DropReason::BadAddress), 1);
    assert_eq!(g.used_idx(), 2);
    assert_eq!(g.used_elem(0), (0, 0));
    assert_eq!(g.used_elem(1), (1, 0));
}

#[test]
fn event_idx_notifications() {
    let mut g = MockGuest::new(0x10000, 16);
    for i in 0..16u16 {
        g.write_desc(i, BUF + 0x100 * u64::from(i), 256, WRITE, 0);
    }
    g.publish(&(0..16).collect::<Vec<_>>());
    let mut ring = g.ring(false, true, false);
    let stats = QueueStats::default();
    // The driver wants an interrupt once used entry 2 is there (used index passes 2).
    g.set_used_event(2);
    let (_, notify, _) = enqueue(&mut ring, &[frame(60, 0), frame(60, 1)], &stats);
    assert!(!notify, "used index 2 does not pass used_event 2");
    let (_, notify, _) = enqueue(&mut ring, &[frame(60, 2)], &stats);
    assert!(notify, "used index 3 passes used_event 2");
    let (_, notify, _) = enqueue(&mut ring, &[frame(60, 3)], &stats);
    assert!(!notify, "already notified for this event");
    // Without EVENT_IDX the NO_INTERRUPT flag decides.
    let mut ring2 = g.ring(false, false, false);
    g.write(MockGuest::AVAIL, &1u16.to_le_bytes());
    let (_, notify, _) = enqueue(&mut ring2, &[frame(60, 4)], &stats);
    assert!(!notify);
}

#[test]
fn walk_reports_errors() {
    let g = MockGuest::new(0x10000, 4);
    let ring = g.ring(false, false, false);
    let mut segs = Vec::new();
    g.write_desc(0, BUF, 10, NEXT, 1);
    g.write_desc(1, BUF, 10, NEXT, 2);
    g.write_desc(2, BUF, 10, NEXT, 3);
    g.write_desc(3, BUF, 10, NEXT, 0);
    assert_eq!(ring.walk(0, false, &mut segs), Err(ChainError::TooLong));
    g.write_desc(3, BUF, 10, 0, 0);
    segs.clear();
    assert_eq!(ring.walk(0, false, &mut segs), Ok(40));
    assert_eq!(segs.len(), 4);
}

/// Guest memory of two regions, `[0, split)` and `[split + gap, 0x10000)`.
fn two_regions(split: u64, gap: u64) -> std::sync::Arc<crate::ring::GuestMem> {
    use vm_memory::{GuestAddress, GuestMemoryMmap};
    let second = split + gap;
    std::sync::Arc::new(
        GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), split as usize),
            (GuestAddress(second), (0x10000 - second) as usize),
        ])
        .unwrap(),
    )
}

fn ring_config(desc: u64, avail: u64, used: u64) -> crate::ring::RingConfig {
    crate::ring::RingConfig {
        desc,
        avail,
        used,
        size: 8,
        base: 0,
        event_idx: false,
        indirect: true,
        hdr_len: HDR,
        mrg_rxbuf: false,
        csum: false,
        guest_csum: false,
    }
}

#[test]
fn ring_spanning_regions_is_refused() {
    // The available ring (0x1000..0x1016) crosses from one region into the next.
    let g = MockGuest::with_memory(two_regions(0x1008, 0), 8);
    let cfg = ring_config(0, MockGuest::AVAIL, MockGuest::USED);
    let err = SplitRing::new(g.mem.clone(), cfg).err();
    assert_eq!(err, Some(RingFault::SpansRegions("available ring")));
    // The used ring half outside memory, and misaligned.
    let g = MockGuest::new(0x10000, 8);
    let cfg = ring_config(0, MockGuest::AVAIL, 0xfff0);
    let err = SplitRing::new(g.mem.clone(), cfg).err();
    assert_eq!(err, Some(RingFault::Inaccessible("used ring")));
    let cfg = ring_config(0, MockGuest::AVAIL, MockGuest::USED + 1);
    let err = SplitRing::new(g.mem.clone(), cfg).err();
    assert_eq!(err, Some(RingFault::Inaccessible("used ring")));
}

/// Buffers and indirect tables may span two adjacent regions (the slow path copies them).
#[test]
fn buffers_spanning_regions() {
    let split = 0x8000;
    let mut g = MockGuest::with_memory(two_regions(split, 0), 8);
    // TX: header and frame in one buffer across the boundary.
    let f = frame(100, 11);
    let buf = split - 50;
    g.write(buf + HDR as u64, &f);
    g.write_desc(0, buf, (HDR + 100) as u32, 0, 0);
    g.publish(&[0]);
    let mut ring = g.ring(true, false, false);
    let stats = QueueStats::default();
    let (frames, fault) = dequeue(&mut ring, &stats);
    assert_eq!(fault, None);
    assert_eq!(frames, vec![f]);
    // TX through an indirect table across the boundary (entry 1 straddles it).
    let mut g = MockGuest::with_memory(two_regions(split, 0), 8);
    let table = split - 24;
    let f2 = frame(80, 12);
    g.write(BUF + HDR as u64, &f2[..40]);
    g.write(BUF + 0x100, &f2[40..]);
    g.write_desc_at(table, 0, BUF, (HDR + 40) as u32, NEXT, 1);
    g.write_desc_at(table, 1, BUF + 0x100, 40, 0, 0);
    g.write_desc(1, table, 32, INDIRECT, 0);
    g.publish(&[1]);
    let mut ring = g.ring(true, false, false);
    let (frames, fault) = dequeue(&mut ring, &stats);
    assert_eq!(fault, None);
    assert_eq!(frames, vec![f2]);

    // RX: a writable buffer across the boundary.
    let mut g = MockGuest::with_memory(two_regions(split, 0), 8);
    let buf = split - 30;
    g.write_desc(0, buf, 2048, WRITE, 0);
    g.publish(&[0]);
    let mut ring = g.ring(false, false, false);
    let f = frame(200, 13);
    let (done, _, fault) = enqueue(&mut ring, std::slice::from_ref(&f), &stats);
    assert_eq!((done, fault), (1, None));
    assert_eq!(g.read(buf + HDR as u64, 200), f);
    assert_eq!(g.used_elem(0), (0, (HDR + 200) as u32));
}

/// A buffer running into a hole between regions is a bad address, in both directions.
#[test]
fn buffer_into_a_hole_is_dropped() {
    let mut g = MockGuest::with_memory(two_regions(0x8000, 0x1000), 8);
    g.write_desc(0, 0x8000 - 40, 80, 0, 0);
    expect_tx_drop(&mut g, 0, false, DropReason::BadAddress);

    let mut g = MockGuest::with_memory(two_regions(0x8000, 0x1000), 8);
    g.write_desc(0, 0x8000 - 40, 2048, WRITE, 0);
    g.publish(&[0]);
    let mut ring = g.ring(false, false, false);
    let stats = QueueStats::default();
    let (done, _, fault) = enqueue(&mut ring, &[frame(60, 0)], &stats);
    assert_eq!((done, fault), (0, None));
    assert_eq!(stats.dropped_for(DropReason::BadAddress), 1);
    assert_eq!(g.used_elem(0), (0, 0));
    // An indirect table running into the hole.
    let mut g = MockGuest::with_memory(two_regions(0x8000, 0x1000), 8);
    g.write_desc(0, 0x8000 - 16, 32, INDIRECT, 0);
    expect_tx_drop(&mut g, 0, true, DropReason::BadAddress);
}

/// The driver's descriptor table need not be aligned; entries are read unaligned.
#[test]
fn unaligned_descriptor_table() {
    let table = 0x3003;
    let mut g = MockGuest::new(0x10000, 8);
    let f = frame(70, 21);
    g.write(BUF + HDR as u64, &f);
    g.write_desc_at(table, 5, BUF, (HDR + 70) as u32, 0, 0);
    g.publish(&[5]);
    let cfg = ring_config(table, MockGuest::AVAIL, MockGuest::USED);
    let mut ring = SplitRing::new(g.mem.clone(), cfg).unwrap();
    let (frames, fault) = dequeue(&mut ring, &QueueStats::default());
    assert_eq!(fault, None);
    assert_eq!(frames, vec![f]);
    assert_eq!(g.used_elem(0), (5, 0));
}

/// Ring parts ending exactly at the end of guest memory are fine; the used ring wraps.
#[test]
fn rings_at_the_end_of_memory_and_index_wrap() {
    let size: u16 = 8;
    let mem_size = 0x10000u64;
    let used = mem_size - (6 + 8 * u64::from(size));
    let avail = used - 0x20;
    let g = MockGuest::new(mem_size as usize, size);
    let cfg = crate::ring::RingConfig {
        size,
        indirect: false,
        ..ring_config(mem_size - 0x1000, avail, used)
    };
    let mut ring = SplitRing::new(g.mem.clone(), cfg).unwrap();
    let desc = mem_size - 0x1000;
    for i in 0..size {
        g.write_desc_at(desc, i, BUF + 0x100 * u64::from(i), 0x100, WRITE, 0);
    }
    let stats = QueueStats::default();
    // Three rounds over the ring: every slot of the avail and used rings is used.
    let mut idx: u16 = 0;
    for round in 0..3u8 {
        for i in 0..size {
            let slot = u64::from(idx % size);
            g.write(avail + 4 + 2 * slot, &i.to_le_bytes());
            idx = idx.wrapping_add(1);
        }
        g.write(avail + 2, &idx.to_le_bytes());
        let frames: Vec<_> = (0..size).map(|i| frame(60, round ^ i as u8)).collect();
        let (done, _, fault) = enqueue(&mut ring, &frames, &stats);
        assert_eq!((done, fault), (usize::from(size), None));
        let used_idx = u16::from_le_bytes(g.read(used + 2, 2).try_into().unwrap());
        assert_eq!(used_idx, idx);
        let last = g.read(used + 4 + 8 * u64::from(size - 1), 8);
        assert_eq!(last, [7, 0, 0, 0, 72, 0, 0, 0]);
    }
}

#[test]
fn fuzz_bodies_run() {
    crate::fuzzing::ring_bursts(&[0xff; 600]);
    crate::fuzzing::ring_bursts(&[]);
    crate::fuzzing::messages(&[1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    crate::fuzzing::messages(&[0xff; 100]);
}
