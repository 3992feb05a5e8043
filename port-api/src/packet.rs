//! Packet buffers, the per-PMD buffer pool and the receive/transmit batch.
//!
//! A packet lives in one heap buffer owned by the PMD thread that received it. Ports copy bytes
//! in on receive and out on transmit, so buffers never migrate between threads and the steady
//! state allocates nothing: every buffer goes back to the pool it came from.
//!
//! Buffers come in two sizes: small ones (a 2 KiB frame) for the usual traffic and large ones
//! (a 9,216-byte jumbo frame) for the rest. One contiguous buffer per frame, rather than a chain
//! of 2 KiB segments, keeps every header parser and rewrite working on one slice. The handle
//! stays one pointer (to the metadata, which holds the byte buffer's pointer and length):
//! measured against a 16-byte handle to an unsized buffer and against an optional large buffer
//! beside a fixed small one, this cost small frames the fewest instructions (about 15 more per
//! packet through the pipeline than fixed 2 KiB buffers, `bench/instructions.sh`).

use crate::copy::copy_frame;
use crate::offload::{self, CsumPartial};

/// Packets handled per poll and per transmit call.
pub const MAX_BURST: usize = 32;
/// Space in front of the frame for pushed VLAN tags and tunnel headers.
pub const HEADROOM: usize = 256;
/// Largest frame a small buffer holds (without headroom).
pub const SMALL_FRAME: usize = 2048;
/// Largest frame any packet holds (without headroom): a jumbo frame of MTU 9,198 with one
/// VLAN tag, or MTU 9,000 with room to spare.
pub const MAX_FRAME: usize = 9216;
const SMALL_BUF: usize = HEADROOM + SMALL_FRAME;
const LARGE_BUF: usize = HEADROOM + MAX_FRAME;
const _: () = assert!(LARGE_BUF <= u16::MAX as usize);

/// One frame and the metadata the pipeline attaches to it. The handle is one pointer; the
/// metadata fields are reached through `Deref` (`pkt.tun_id`).
pub struct Packet {
    buf: Box<Buffer>,
}

/// Metadata, and the bytes (headroom and frame) in their own allocation.
struct Buffer {
    meta: Meta,
    bytes: Box<[u8]>,
}

/// What the pipeline knows about a packet besides its bytes.
pub struct Meta {
    // Frame bounds in the buffer; u16 suffices (LARGE_BUF fits).
    start: u16,
    len: u16,
    /// Tunnel metadata: VNI and outer IPv4 source/destination of a decapsulated packet, or the
    /// VNI a rule chose for encapsulation (`set_field:N->tun_id`). Zero otherwise.
    pub tun_id: u64,
    pub tun_src: u32,
    pub tun_dst: u32,
    /// What ingress (trust setting) or a `set_queue` action said about the frame's traffic
    /// class; an egress scheduler classes the rest by their markings.
    pub class: ClassHint,
    /// The L4 checksum its sender left to be computed (checksum offload), if any.
    pub csum: Option<CsumPartial>,
}

/// How the egress scheduler of a port with QoS should class a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClassHint {
    /// By its DSCP, else the PCP of its outer tag (the egress port's maps).
    #[default]
    Markings,
    /// Into this class (`set_queue:N`, 0-7).
    Queue(u8),
    /// By this PCP: the tag it arrived with on a port that trusts PCP (the tag may be gone).
    Pcp(u8),
    /// By its DSCP only: it came from an untrusted port, which re-marked its DSCP and whose
    /// tags say nothing.
    DscpOnly,
}

impl std::ops::Deref for Packet {
    type Target = Meta;

    #[inline]
    fn deref(&self) -> &Meta {
        &self.buf.meta
    }
}

impl std::ops::DerefMut for Packet {
    #[inline]
    fn deref_mut(&mut self) -> &mut Meta {
        &mut self.buf.meta
    }
}

const EMPTY_META: Meta = Meta {
    start: HEADROOM as u16,
    len: 0,
    tun_id: 0,
    tun_src: 0,
    tun_dst: 0,
    class: ClassHint::Markings,
    csum: None,
};

impl Packet {
    /// A small packet (frames up to [`SMALL_FRAME`]).
    pub fn new() -> Self {
        Packet {
            buf: Box::new(Buffer {
                meta: EMPTY_META,
                bytes: vec![0u8; SMALL_BUF].into_boxed_slice(),
            }),
        }
    }

    /// A large packet (frames up to [`MAX_FRAME`]).
    pub fn new_large() -> Self {
        Packet {
            buf: Box::new(Buffer {
                meta: EMPTY_META,
                bytes: vec![0u8; LARGE_BUF].into_boxed_slice(),
            }),
        }
    }

    /// The largest frame this packet's buffer holds.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.bytes.len() - HEADROOM
    }

    fn is_large(&self) -> bool {
        self.buf.bytes.len() > SMALL_BUF
    }

    /// The frame bytes.
    pub fn data(&self) -> &[u8] {
        let (s, l) = (usize::from(self.start), usize::from(self.len));
        &self.buf.bytes[s..s + l]
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        let (s, l) = (usize::from(self.start), usize::from(self.len));
        &mut self.buf.bytes[s..s + l]
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Replaces the frame with `bytes`; false (and an empty packet) if it does not fit.
    pub fn set_data(&mut self, bytes: &[u8]) -> bool {
        self.start = HEADROOM as u16;
        self.clear_meta();
        if bytes.len() > self.capacity() {
            self.len = 0;
            return false;
        }
        copy_frame(&mut self.buf.bytes[HEADROOM..HEADROOM + bytes.len()], bytes);
        self.len = bytes.len() as u16;
        true
    }

    /// A writable frame area of `len` bytes at the default offset, for ports that copy in place.
    /// `len` is clamped to [`Packet::capacity`] (take the packet from
    /// [`PacketPool::get_for`]).
    pub fn prepare(&mut self, len: usize) -> &mut [u8] {
        self.start = HEADROOM as u16;
        self.clear_meta();
        let len = len.min(self.capacity());
        self.len = len as u16;
        &mut self.buf.bytes[HEADROOM..HEADROOM + len]
    }

    /// The whole buffer and the frame's bounds in it, for header push/pop helpers that move the
    /// frame start into or out of the headroom.
    pub fn raw_mut(&mut self) -> (&mut [u8], usize, usize) {
        let (s, l) = (usize::from(self.start), usize::from(self.len));
        (&mut self.buf.bytes[..], s, l)
    }

    /// Sets new frame bounds after [`Packet::raw_mut`] edits. Out-of-range bounds are refused.
    pub fn set_bounds(&mut self, start: usize, len: usize) -> bool {
        match start.checked_add(len) {
            Some(end) if end <= self.buf.bytes.len() => {
                // Buffers are shorter than 65536 bytes, so both fit.
                self.start = start as u16;
                self.len = len as u16;
                true
            }
            _ => false,
        }
    }

    fn clear_meta(&mut self) {
        let m = &mut self.buf.meta;
        m.tun_id = 0;
        m.tun_src = 0;
        m.tun_dst = 0;
        m.class = ClassHint::Markings;
        m.csum = None;
    }

    /// Marks the frame's L4 checksum as left to compute: it starts `start` bytes into the
    /// frame and is stored `offset` bytes further. False (and nothing marked) if that does not
    /// fit the frame.
    pub fn set_csum_partial(&mut self, start: usize, offset: usize) -> bool {
        let fits = start
            .checked_add(offset)
            .is_some_and(|at| at + 2 <= self.len());
        if fits {
            self.buf.meta.csum = Some(CsumPartial {
                start: self.buf.meta.start + start as u16,
                offset: offset as u16,
            });
        }
        fits
    }

    /// Where the checksum left to compute starts in the frame, and its offset from there.
    pub fn csum_partial(&self) -> Option<(usize, usize)> {
        let c = self.csum?;
        let start = usize::from(c.start).checked_sub(usize::from(self.start))?;
        Some((start, usize::from(c.offset)))
    }

    /// Computes the checksum the sender left (a port that cannot carry it as is); false if the
    /// mark no longer fits the frame (then the frame should be dropped). True and nothing done
    /// without a mark.
    pub fn complete_csum(&mut self) -> bool {
        if self.csum.is_none() {
            return true;
        }
        let mark = self.csum_partial();
        self.buf.meta.csum = None;
        match mark {
            Some((start, offset)) => offload::complete(self.data_mut(), start, offset),
            None => false,
        }
    }

    /// Copies frame and metadata into `other` (used by flooding), which must be as large
    /// ([`PacketPool::get_for`] this packet's length); false, and `other` empty, if not.
    pub fn clone_into(&self, other: &mut Packet) -> bool {
        let end = usize::from(self.start) + usize::from(self.len);
        if end > other.buf.bytes.len() {
            other.len = 0;
            return false;
        }
        other.start = self.start;
        other.len = self.len;
        other.tun_id = self.tun_id;
        other.tun_src = self.tun_src;
        other.tun_dst = self.tun_dst;
        other.class = self.class;
        other.csum = self.csum;
        let (s, l) = (usize::from(self.start), usize::from(self.len));
        copy_frame(&mut other.buf.bytes[s..s + l], self.data());
        true
    }
}

impl Default for Packet {
    fn default() -> Self {
        Self::new()
    }
}

/// Free buffers owned by one PMD thread.
///
/// Small buffers are allocated up front. Large ones are allocated the first time jumbo frames
/// need them and kept from then on, so a switch without jumbo traffic pays no memory for them
/// and one with it allocates only while its traffic ramps up.
pub struct PacketPool {
    free: Vec<Packet>,
    free_large: Vec<Packet>,
    /// Small buffers allocated after start-up because the pool ran dry (should stay 0).
    pub grown: u64,
    /// Large buffers allocated so far.
    pub large: u64,
}

impl PacketPool {
    pub fn with_capacity(n: usize) -> Self {
        PacketPool {
            free: (0..n).map(|_| Packet::new()).collect(),
            free_large: Vec::new(),
            grown: 0,
            large: 0,
        }
    }

    /// A small packet.
    #[inline]
    pub fn get(&mut self) -> Packet {
        match self.free.pop() {
            Some(p) => p,
            None => {
                self.grown += 1;
                Packet::new()
            }
        }
    }

    /// A packet that holds a frame of `len` bytes (at most [`MAX_FRAME`]).
    #[inline]
    pub fn get_for(&mut self, len: usize) -> Packet {
        if len <= SMALL_FRAME {
            return self.get();
        }
        self.get_large()
    }

    #[cold]
    fn get_large(&mut self) -> Packet {
        match self.free_large.pop() {
            Some(p) => p,
            None => {
                self.large += 1;
                Packet::new_large()
            }
        }
    }

    #[inline]
    pub fn put(&mut self, p: Packet) {
        if p.is_large() {
            self.free_large.push(p);
        } else {
            self.free.push(p);
        }
    }

    /// Free small buffers.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Free large buffers.
    pub fn available_large(&self) -> usize {
        self.free_large.len()
    }

    /// Every large buffer this pool made is back in it, so the packets anywhere else are small
    /// (a foreign large packet could still turn up; filed as small, it just holds more).
    #[inline]
    fn all_large_home(&self) -> bool {
        self.free_large.len() as u64 >= self.large
    }
}

/// Up to [`MAX_BURST`] packets moving together through a stage.
pub struct Batch {
    pkts: Vec<Packet>,
    /// Some packet may carry a checksum mark ([`Meta::csum`]): set by the port that received
    /// them, carried by the pipeline to the batches it sends, so that nothing looks at the
    /// packets' marks when no port made any.
    csum_marks: bool,
}

impl Batch {
    pub fn new() -> Self {
        Batch {
            pkts: Vec::with_capacity(MAX_BURST),
            csum_marks: false,
        }
    }

    /// Says whether some packet may carry a checksum mark.
    #[inline]
    pub fn set_csum_marks(&mut self, marks: bool) {
        self.csum_marks = marks;
    }

    /// Some packet may carry a checksum mark.
    #[inline]
    pub fn csum_marks(&self) -> bool {
        self.csum_marks
    }

    pub fn len(&self) -> usize {
        self.pkts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.pkts.len() >= MAX_BURST
    }

    /// Room left before the batch is full.
    pub fn room(&self) -> usize {
        MAX_BURST.saturating_sub(self.pkts.len())
    }

    /// Adds a packet; a full batch hands it back.
    #[inline]
    pub fn push(&mut self, p: Packet) -> Result<(), Packet> {
        if self.is_full() {
            return Err(p);
        }
        self.pkts.push(p);
        Ok(())
    }

    pub fn as_slice(&self) -> &[Packet] {
        &self.pkts
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Packet> {
        self.pkts.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Packet> {
        self.pkts.iter_mut()
    }

    pub fn drain(&mut self) -> std::vec::Drain<'_, Packet> {
        self.pkts.drain(..)
    }

    /// Keeps the packets from index `start` on for which `keep` holds (in order) and returns
    /// the others to `pool`; returns how many went back.
    pub fn retain_from(
        &mut self,
        start: usize,
        pool: &mut PacketPool,
        mut keep: impl FnMut(&Packet) -> bool,
    ) -> usize {
        let start = start.min(self.pkts.len());
        if pool.all_large_home() {
            let before = pool.free.len();
            pool.free
                .extend(self.pkts.extract_if(start.., |p| !keep(p)));
            return pool.free.len() - before;
        }
        let mut n = 0;
        for p in self.pkts.extract_if(start.., |p| !keep(p)) {
            pool.put(p);
            n += 1;
        }
        n
    }

    /// Moves the packets for which `take` holds, in order, to `out` (as far as it has room;
    /// the rest stay). `take` sees each packet with its index in the batch before the move.
    pub fn move_where(&mut self, out: &mut Batch, mut take: impl FnMut(usize, &Packet) -> bool) {
        let mut i = 0;
        let room = out.room();
        let mut moved = 0;
        for p in self.pkts.extract_if(.., |p| {
            let t = moved < room && take(i, p);
            i += 1;
            moved += usize::from(t);
            t
        }) {
            out.pkts.push(p);
        }
    }

    /// Returns every packet to `pool`.
    pub fn recycle(&mut self, pool: &mut PacketPool) {
        // Without jumbo traffic: one copy of the array of handles.
        if pool.all_large_home() {
            pool.free.append(&mut self.pkts);
        } else {
            for p in self.pkts.drain(..) {
                pool.put(p);
            }
        }
    }
}

impl Default for Batch {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_data_and_clone_keep_the_frame() {
        let frame: Vec<u8> = (0..100u8).collect();
        let mut p = Packet::new();
        assert!(p.set_data(&frame));
        let mut q = Packet::new();
        assert!(p.clone_into(&mut q));
        assert_eq!((p.data(), q.data()), (&frame[..], &frame[..]));
    }

    #[test]
    fn jumbo_frames_take_large_buffers_and_go_back_to_their_list() {
        let mut pool = PacketPool::with_capacity(2);
        let jumbo = vec![0x5a; 9000];
        let mut small = pool.get_for(1500);
        assert_eq!(small.capacity(), SMALL_FRAME);
        assert!(
            !small.set_data(&jumbo),
            "a small buffer refuses a jumbo frame"
        );
        let mut big = pool.get_for(jumbo.len());
        assert_eq!((big.capacity(), pool.large), (MAX_FRAME, 1));
        assert!(big.set_data(&jumbo));
        assert!(
            !big.clone_into(&mut small),
            "a clone needs a buffer as large"
        );
        let mut copy = pool.get_for(big.len());
        assert!(big.clone_into(&mut copy));
        assert_eq!(copy.data(), &jumbo[..]);
        let mut b = Batch::new();
        for p in [small, big, copy] {
            b.push(p).ok().unwrap();
        }
        b.recycle(&mut pool);
        assert_eq!((pool.available(), pool.available_large()), (2, 2));
        let again = pool.get_for(MAX_FRAME);
        assert_eq!((again.capacity(), pool.large), (MAX_FRAME, 2));
        assert_eq!(
            pool.get_for(MAX_FRAME + 1).prepare(MAX_FRAME + 1).len(),
            MAX_FRAME
        );
    }

    fn batch_of(pool: &mut PacketPool, firsts: &[u8]) -> Batch {
        let mut b = Batch::new();
        for &f in firsts {
            let mut p = pool.get();
            assert!(p.set_data(&[f; 60]));
            b.push(p).ok().unwrap();
        }
        b
    }

    fn firsts(b: &Batch) -> Vec<u8> {
        b.iter().map(|p| p.data()[0]).collect()
    }

    #[test]
    fn retain_from_and_move_where_keep_order_and_buffers() {
        let mut pool = PacketPool::with_capacity(8);
        let mut b = batch_of(&mut pool, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(pool.available(), 2);
        assert_eq!(b.retain_from(2, &mut pool, |p| p.data()[0] % 2 == 0), 2);
        assert_eq!(firsts(&b), [1, 2, 4, 6]);
        assert_eq!(pool.available(), 4);
        let mut out = Batch::new();
        b.move_where(&mut out, |i, _| i % 2 == 1);
        assert_eq!((firsts(&b), firsts(&out)), (vec![1, 4], vec![2, 6]));
    }
}
