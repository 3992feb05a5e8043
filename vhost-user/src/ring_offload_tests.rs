//! Ring processing of large and offloaded frames against a synthetic guest: jumbo frames in
//! descriptor chains and over mergeable buffers, and checksum marks read from and written to
//! virtio-net headers.

use port_api::{Batch, PacketPool};

use crate::fuzzing::MockGuest;
use crate::ring_tests::{BUF, HDR, NEXT, WRITE, dequeue, enqueue, frame};
use crate::rxtx::{Scratch, dequeue_burst, enqueue_burst};
use crate::stats::{DropReason, QueueStats};

/// A 9,000-byte frame (MTU 8,986) the guest transmits as header plus three 4 KiB pages: it
/// arrives whole, in a large packet.
#[test]
fn jumbo_tx_chain() {
    let mut g = MockGuest::new(0x10000, 8);
    let f = frame(9000, 3);
    g.write(BUF, &[0u8; HDR]);
    for (i, part) in f.chunks(4096).enumerate() {
        g.write(BUF + 0x1000 * (i as u64 + 1), part);
        let next = if i < 2 { NEXT } else { 0 };
        g.write_desc(
            i as u16 + 1,
            BUF + 0x1000 * (i as u64 + 1),
            part.len() as u32,
            next,
            i as u16 + 2,
        );
    }
    g.write_desc(0, BUF, HDR as u32, NEXT, 1);
    g.publish(&[0]);
    let mut ring = g.ring(false, false, false);
    let stats = QueueStats::default();
    let (frames, fault) = dequeue(&mut ring, &stats);
    assert_eq!((fault, frames), (None, vec![f]));
    assert_eq!((stats.packets.get(), stats.bytes.get()), (1, 9000));
}

/// A jumbo frame to a guest with mergeable 4 KiB buffers takes three of them.
#[test]
fn jumbo_rx_over_mergeable_buffers() {
    let mut g = MockGuest::new(0x10000, 8);
    for i in 0..3u16 {
        g.write_desc(i, BUF + 0x1000 * u64::from(i), 4096, WRITE, 0);
    }
    g.publish(&[0, 1, 2]);
    let mut ring = g.ring(false, false, true);
    let stats = QueueStats::default();
    let f = frame(9000, 9);
    let (done, _, fault) = enqueue(&mut ring, std::slice::from_ref(&f), &stats);
    assert_eq!((done, fault), (1, None));
    assert_eq!(&g.read(BUF, HDR)[10..12], &[3, 0]);
    let mut got = g.read(BUF + HDR as u64, 4096 - HDR);
    got.extend(g.read(BUF + 0x1000, 4096));
    got.extend(g.read(BUF + 0x2000, 9000 + HDR - 8192));
    assert_eq!(got, f);
    assert_eq!(g.used_elem(2), (2, (9000 + HDR - 8192) as u32));
}

/// A transmit header of `flags`, `gso_type`, `csum_start`, `csum_offset` (12 bytes).
fn tx_header(flags: u8, gso_type: u8, start: u16, offset: u16) -> [u8; HDR] {
    let mut h = [0u8; HDR];
    h[0] = flags;
    h[1] = gso_type;
    h[6..8].copy_from_slice(&start.to_le_bytes());
    h[8..10].copy_from_slice(&offset.to_le_bytes());
    h
}

/// With checksum offload negotiated, a guest's NEEDS_CSUM frame arrives marked (one-descriptor
/// and chained layouts); a header asking for segmentation or a checksum outside the frame
/// drops its frame as `bad_header`.
#[test]
fn tx_checksum_marks_and_bad_headers() {
    let mut g = MockGuest::new(0x10000, 8);
    let f = frame(100, 4);
    let layouts: [(u16, [u8; HDR]); 4] = [
        (0, tx_header(1, 0, 34, 6)),
        (2, tx_header(1, 0, 34, 6)),
        (4, tx_header(0, 1, 0, 0)),
        (5, tx_header(1, 0, 90, 9)),
    ];
    for (i, (d, h)) in layouts.iter().enumerate() {
        let at = BUF + 0x1000 * i as u64;
        g.write(at, h);
        g.write(at + HDR as u64, &f);
        if *d == 2 {
            // Chained: header alone, then the frame.
            g.write_desc(2, at, HDR as u32, NEXT, 3);
            g.write_desc(3, at + HDR as u64, f.len() as u32, 0, 0);
        } else {
            g.write_desc(*d, at, (HDR + f.len()) as u32, 0, 0);
        }
    }
    g.publish(&[0, 2, 4, 5]);
    let mut ring = g.ring(false, false, false);
    ring.csum = true;
    let stats = QueueStats::default();
    let mut pool = PacketPool::with_capacity(8);
    let mut out = Batch::new();
    let burst = dequeue_burst(
        &mut ring,
        &mut Scratch::default(),
        &mut pool,
        &mut out,
        &stats,
    );
    assert_eq!(burst.done, 2);
    assert!(out.csum_marks(), "the batch says it holds marks");
    for p in out.iter() {
        assert_eq!((p.data(), p.csum_partial()), (&f[..], Some((34, 6))));
    }
    assert_eq!(stats.dropped_for(DropReason::BadHeader), 2);
}

/// To a guest that negotiated GUEST_CSUM a marked frame goes as it is, with NEEDS_CSUM and its
/// position in the header; to one that did not, with its checksum completed.
#[test]
fn rx_checksum_marks_go_through_or_are_completed() {
    let mut f = frame(120, 8);
    f[40..42].copy_from_slice(&[0x12, 0x34]);
    let mut done = f.clone();
    assert!(port_api::offload::complete(&mut done, 34, 6));
    for guest_csum in [true, false] {
        let mut g = MockGuest::new(0x10000, 8);
        g.write_desc(0, BUF, 2048, WRITE, 0);
        g.publish(&[0]);
        let mut ring = g.ring(false, false, false);
        ring.guest_csum = guest_csum;
        let mut pool = PacketPool::with_capacity(8);
        let mut pkts = Batch::new();
        let mut p = pool.get_for(f.len());
        assert!(p.set_data(&f) && p.set_csum_partial(34, 6));
        pkts.push(p).ok().unwrap();
        pkts.set_csum_marks(true);
        let stats = QueueStats::default();
        let burst = enqueue_burst(
            &mut ring,
            &mut Scratch::default(),
            &mut pkts,
            &mut pool,
            &stats,
        );
        assert_eq!(burst.done, 1);
        let hdr = g.read(BUF, HDR);
        let body = g.read(BUF + HDR as u64, f.len());
        if guest_csum {
            assert_eq!(&hdr[..10], &tx_header(1, 0, 34, 6)[..10]);
            assert_eq!(body, f);
        } else {
            assert_eq!(&hdr[..10], &[0; 10]);
            assert_eq!(body, done);
        }
    }
}
