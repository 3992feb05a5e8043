//! A split virtqueue seen from the device side, over guest memory shared by the front-end.
//!
//! Everything the guest controls — ring indices, descriptor indices, addresses, lengths,
//! flags — is checked before use. A bad descriptor chain is a [`ChainError`] (the frame is
//! dropped and the chain returned); a ring that cannot be used at all is a [`RingFault`] (the
//! queue is marked broken).
//!
//! Fast path: the descriptor table, available ring and used ring are resolved to host memory
//! once, when the ring starts (each must lie within one memory region and be long enough for
//! the ring's size; a new memory table restarts the ring). Ring entries are then read and
//! written at an index taken modulo the ring size, with no further check. A one-descriptor
//! chain's buffer is resolved with one region lookup to a `HostBuf`, whose reads and writes
//! are checked against its length. All raw memory access lives in the `mapped` module below.
//! Longer chains take the general walk ([`SplitRing::walk`]) through vm-memory's accessors;
//! only a buffer (or indirect table) spanning two regions takes vm-memory's slowest path.
//!
//! Layout (virtio 1.x, 2.7): descriptor table of 16-byte entries `{addr u64, len u32, flags u16,
//! next u16}`; available ring `{flags u16, idx u16, ring[size] u16, used_event u16}`; used ring
//! `{flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16}`.
//!
//! Kicks: the port polls, so it asks the driver not to kick (`VRING_USED_F_NO_NOTIFY`; with
//! EVENT_IDX it leaves `avail_event` alone, which has the same effect). Interrupts: after a
//! burst the used index is published once and [`SplitRing::publish_used`] says whether the
//! driver wants to be told (EVENT_IDX `used_event`, else `VRING_AVAIL_F_NO_INTERRUPT`).

use std::cell::Cell;
use std::fmt;
use std::num::Wrapping;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use virtio_bindings::bindings::virtio_ring::{
    VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
    VRING_USED_F_NO_NOTIFY,
};
use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileMemory, VolatileSlice,
};

use port_api::prefetch;

pub(crate) use self::mapped::HostBuf;
use self::mapped::RingMemory;

/// The guest memory type: the front-end's memory table, mapped into this process.
pub type GuestMem = GuestMemoryMmap<()>;

/// Largest split ring the virtio spec allows.
pub const MAX_RING_SIZE: u16 = 32768;
const DESC_SIZE: u64 = 16;

/// One buffer of a descriptor chain (guest physical address and length; never empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seg {
    pub addr: u64,
    pub len: u32,
}

/// Why one descriptor chain was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// A `next` index past the end of the descriptor (or indirect) table.
    BadIndex,
    /// A writable buffer where a readable one was expected, or the other way round.
    BadFlags,
    /// Indirect descriptor not negotiated, nested, chained with NEXT, or of a bad length.
    BadIndirect,
    /// More descriptors than the table holds: too long, or a loop.
    TooLong,
    /// A buffer or table outside guest memory.
    BadAddress,
    /// The buffers add up to more than 4 GiB.
    LengthOverflow,
    /// The buffers cannot hold what must be written into them.
    NoRoom,
}

/// Why a ring cannot be used any more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingFault {
    /// The driver published more entries than the ring has.
    AvailIndexAhead { pending: u16, size: u16 },
    /// An available ring entry names a descriptor past the table.
    HeadOutOfRange { head: u16, size: u16 },
    /// A ring structure lies outside guest memory.
    Inaccessible(&'static str),
    /// A ring structure spans two memory regions.
    SpansRegions(&'static str),
}

impl fmt::Display for RingFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingFault::AvailIndexAhead { pending, size } => {
                write!(f, "avail index {pending} entries ahead of a ring of {size}")
            }
            RingFault::HeadOutOfRange { head, size } => {
                write!(f, "chain head {head} out of a ring of {size}")
            }
            RingFault::Inaccessible(what) => write!(f, "{what} outside guest memory"),
            RingFault::SpansRegions(what) => write!(f, "{what} spans two memory regions"),
        }
    }
}

/// Where a ring lives and how it is used, as negotiated over vhost-user.
#[derive(Clone, Copy, Debug)]
pub struct RingConfig {
    /// Guest physical addresses of the three ring parts.
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    /// Number of entries (a power of two, at most [`MAX_RING_SIZE`]).
    pub size: u16,
    /// First available entry to process (`SET_VRING_BASE`).
    pub base: u16,
    pub event_idx: bool,
    pub indirect: bool,
    /// virtio-net header length (10 or 12).
    pub hdr_len: usize,
    pub mrg_rxbuf: bool,
    /// Checksum offload negotiated: the guest may send frames with the checksum left to
    /// compute (CSUM), and takes them (GUEST_CSUM).
    pub csum: bool,
    pub guest_csum: bool,
}

/// Offsets inside the available ring: `{flags u16, idx u16, ring[size] u16, used_event u16}`.
const AVAIL_FLAGS: usize = 0;
const AVAIL_IDX: usize = 2;
const AVAIL_RING: usize = 4;
/// Offsets inside the used ring: `{flags u16, idx u16, ring[size] {id u32, len u32}, ...}`.
const USED_FLAGS: usize = 0;
const USED_IDX: usize = 2;
const USED_RING: usize = 4;

/// A running split ring.
pub struct SplitRing {
    mem: RingMemory,
    size: u16,
    // Cells, so that a burst can take chains and return them (`consume`, `push_used`) while it
    // holds slices of guest memory borrowed from the ring.
    next_avail: Cell<Wrapping<u16>>,
    /// The driver's available index as last read.
    avail_seen: Cell<Wrapping<u16>>,
    next_used: Cell<Wrapping<u16>>,
    /// `next_used` as last published to the driver.
    published: Wrapping<u16>,
    event_idx: bool,
    indirect: bool,
    pub hdr_len: usize,
    pub mrg_rxbuf: bool,
    pub csum: bool,
    pub guest_csum: bool,
}

/// A descriptor table being walked: the ring's own, or an indirect one.
#[derive(Clone, Copy)]
enum Table<'a> {
    /// Within one region (always for the ring's own table).
    Mapped(VolatileSlice<'a>),
    /// An indirect table spanning regions: read through vm-memory's general path.
    Spanning(GuestAddress),
}

impl SplitRing {
    /// Starts a ring: checks that each of its three parts lies in one region of `mem`, picks up
    /// the used index the driver sees, and asks the driver not to kick.
    ///
    /// If `base` differs from the used index (the previous back-end went away with chains in
    /// flight), processing resumes at the used index, as DPDK's vhost library does: in-flight
    /// transmit chains are sent again, in-flight receive buffers are reused.
    pub fn new(mem: Arc<GuestMem>, cfg: RingConfig) -> Result<SplitRing, RingFault> {
        let size = cfg.size;
        if size == 0 || size > MAX_RING_SIZE || !size.is_power_of_two() {
            return Err(RingFault::Inaccessible("ring of invalid size"));
        }
        let mem = RingMemory::new(
            mem,
            size,
            [
                (cfg.desc, "descriptor table"),
                (cfg.avail, "available ring"),
                (cfg.used, "used ring"),
            ],
        )?;
        let mut ring = SplitRing {
            mem,
            size,
            next_avail: Cell::new(Wrapping(cfg.base)),
            avail_seen: Cell::new(Wrapping(cfg.base)),
            next_used: Cell::new(Wrapping(0)),
            published: Wrapping(0),
            event_idx: cfg.event_idx,
            indirect: cfg.indirect,
            hdr_len: cfg.hdr_len,
            mrg_rxbuf: cfg.mrg_rxbuf,
            csum: cfg.csum,
            guest_csum: cfg.guest_csum,
        };
        let used_idx = load(ring.mem.used(), USED_IDX, "used ring")?;
        ring.next_used.set(Wrapping(used_idx));
        ring.published = ring.next_used.get();
        if ring.next_avail != ring.next_used {
            tracing::info!(
                base = cfg.base,
                used_idx,
                "vring base differs from the used index; resuming at the used index"
            );
            ring.next_avail.set(ring.next_used.get());
            ring.avail_seen.set(ring.next_used.get());
        }
        store(
            ring.mem.used(),
            USED_FLAGS,
            VRING_USED_F_NO_NOTIFY as u16,
            "used ring",
        )?;
        Ok(ring)
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    /// Index of the next available entry to process (what `GET_VRING_BASE` reports).
    pub fn next_avail(&self) -> u16 {
        self.next_avail.get().0
    }

    /// How many chains the driver has made available and the device has not taken yet.
    pub fn available(&self) -> Result<u16, RingFault> {
        let idx = load(self.mem.avail(), AVAIL_IDX, "available ring")?;
        let pending = (Wrapping(idx) - self.next_avail.get()).0;
        if pending > self.size {
            return Err(RingFault::AvailIndexAhead {
                pending,
                size: self.size,
            });
        }
        self.avail_seen.set(Wrapping(idx));
        Ok(pending)
    }

    /// [`Self::available`], but without reading the driver's index again while the last one
    /// read still covers `want` chains. That index sits in a line the driver keeps writing, so
    /// each read waits for a transfer from the driver's core; a guest receive ring usually holds
    /// many bursts' worth of buffers. The earlier read's acquire already made the chains up to
    /// that index visible.
    #[inline]
    pub fn available_for(&self, want: u16) -> Result<u16, RingFault> {
        let cached = (self.avail_seen.get() - self.next_avail.get()).0;
        if cached >= want && cached <= self.size {
            return Ok(cached);
        }
        self.available()
    }

    /// Takes the head of the next available chain. Only call after [`Self::available`] said
    /// there is one.
    pub fn pop_head(&self) -> Result<u16, RingFault> {
        let mut head = [0u16];
        self.peek_heads(&mut head)?;
        self.next_avail.set(self.next_avail.get() + Wrapping(1));
        Ok(head[0])
    }

    /// Reads the heads of the next `heads.len()` available chains without taking them (see
    /// [`Self::consume`]), each checked against the ring size. Only call for as many as
    /// [`Self::available`] said there are.
    pub fn peek_heads(&self, heads: &mut [u16]) -> Result<(), RingFault> {
        let next = self.next_avail.get();
        for (i, h) in heads.iter_mut().enumerate() {
            let head = self.mem.avail_entry((next + Wrapping(i as u16)).0);
            if head >= self.size {
                return Err(RingFault::HeadOutOfRange {
                    head,
                    size: self.size,
                });
            }
            *h = head;
        }
        Ok(())
    }

    /// Takes the next available chain, whose head [`Self::peek_heads`] read.
    #[inline]
    pub fn consume(&self) {
        self.next_avail.set(self.next_avail.get() + Wrapping(1));
    }

    /// Starts loading descriptor `head` into the CPU cache.
    #[inline]
    pub fn prefetch_desc(&self, head: u16) {
        prefetch::read(self.mem.desc_entry_ptr(head));
    }

    /// Starts fetching, for writing, the used ring entries the next `n` chains will take.
    pub fn prefetch_used(&self, n: u16) {
        let next = self.next_used.get();
        // Eight 8-byte entries per 64-byte line.
        for i in (0..n)
            .step_by(8)
            .chain(std::iter::once(n.saturating_sub(1)))
        {
            prefetch::write(self.mem.used_entry_ptr((next + Wrapping(i)).0));
        }
    }

    /// Gives back the last `n` popped heads (they will be popped again).
    pub fn unpop(&self, n: u16) {
        self.next_avail.set(self.next_avail.get() - Wrapping(n));
    }

    /// The fast path for the usual chain of one descriptor: the buffer of descriptor `head`
    /// (< size) as a host slice, if it is a single descriptor (no NEXT, not INDIRECT), of the
    /// wanted direction, not empty, and within one memory region. `None` otherwise: the caller
    /// then takes [`Self::walk`], which checks everything again and says what is wrong.
    #[inline]
    pub(crate) fn single(&self, head: u16, writable: bool) -> Option<HostBuf<'_>> {
        let (addr, len, flags, _) = split_desc(self.mem.desc_entry(head));
        let want = if writable {
            VRING_DESC_F_WRITE as u16
        } else {
            0
        };
        let mask = (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE) as u16;
        if flags & mask != want || len == 0 {
            return None;
        }
        self.mem.host_buf(addr, len as usize)
    }

    /// Walks the chain starting at `head` (< size), appending its buffers to `segs`. All
    /// buffers must be device-writable (`writable`) or all device-readable. Returns the total
    /// length of the chain.
    pub fn walk(&self, head: u16, writable: bool, segs: &mut Vec<Seg>) -> Result<u32, ChainError> {
        let mut table = Table::Mapped(self.mem.desc());
        let mut table_len = u32::from(self.size);
        let mut budget = table_len;
        let mut index = u32::from(head);
        let mut in_indirect = false;
        let mut total: u32 = 0;
        loop {
            if budget == 0 {
                return Err(ChainError::TooLong);
            }
            budget -= 1;
            if index >= table_len {
                return Err(ChainError::BadIndex);
            }
            let (addr, len, flags, next) = self.read_desc(table, index)?;
            if flags & VRING_DESC_F_INDIRECT as u16 != 0 {
                if !self.indirect || in_indirect || flags & VRING_DESC_F_NEXT as u16 != 0 {
                    return Err(ChainError::BadIndirect);
                }
                if len == 0 || u64::from(len) % DESC_SIZE != 0 {
                    return Err(ChainError::BadIndirect);
                }
                let entries = (u64::from(len) / DESC_SIZE) as u32;
                if entries > u32::from(self.size) {
                    return Err(ChainError::TooLong);
                }
                table = self.indirect_table(addr, len as usize)?;
                table_len = entries;
                budget = entries;
                index = 0;
                in_indirect = true;
                continue;
            }
            if (flags & VRING_DESC_F_WRITE as u16 != 0) != writable {
                return Err(ChainError::BadFlags);
            }
            total = total.checked_add(len).ok_or(ChainError::LengthOverflow)?;
            if len > 0 {
                if !self.in_memory(addr, len as usize) {
                    return Err(ChainError::BadAddress);
                }
                segs.push(Seg { addr, len });
            }
            if flags & VRING_DESC_F_NEXT as u16 == 0 {
                return Ok(total);
            }
            index = u32::from(next);
        }
    }

    /// Whether `len` bytes at `addr` are guest memory.
    fn in_memory(&self, addr: u64, len: usize) -> bool {
        self.mem.slice(addr, len).is_some()
            || GuestMemoryBackend::check_range(self.mem.guest(), GuestAddress(addr), len)
    }

    fn indirect_table(&self, addr: u64, len: usize) -> Result<Table<'_>, ChainError> {
        match self.mem.slice(addr, len) {
            Some(slice) => Ok(Table::Mapped(slice)),
            None if GuestMemoryBackend::check_range(self.mem.guest(), GuestAddress(addr), len) => {
                Ok(Table::Spanning(GuestAddress(addr)))
            }
            None => Err(ChainError::BadAddress),
        }
    }

    /// Reads entry `index` of a table that the caller checked holds more than `index` entries
    /// (the read is bounds-checked all the same).
    #[inline]
    fn read_desc(&self, table: Table<'_>, index: u32) -> Result<(u64, u32, u16, u16), ChainError> {
        let off = u64::from(index) * DESC_SIZE;
        let raw = match table {
            Table::Mapped(slice) => {
                let off = usize::try_from(off).map_err(|_| ChainError::BadAddress)?;
                // One unaligned 16-byte volatile load (the table is not trusted to be aligned).
                slice
                    .get_ref::<u128>(off)
                    .map_err(|_| ChainError::BadAddress)?
                    .load()
            }
            Table::Spanning(base) => {
                let addr = base.0.checked_add(off).ok_or(ChainError::BadAddress)?;
                let mut raw = [0u8; DESC_SIZE as usize];
                self.mem
                    .guest()
                    .read_slice(&mut raw, GuestAddress(addr))
                    .map_err(|_| ChainError::BadAddress)?;
                u128::from_ne_bytes(raw)
            }
        };
        Ok(split_desc(raw))
    }

    /// Copies the chain's bytes after the first `skip` into `dst` (exactly `dst.len()` bytes).
    pub fn gather(&self, segs: &[Seg], mut skip: usize, dst: &mut [u8]) -> Result<(), ChainError> {
        let guest = self.mem.guest();
        let mut off = 0;
        for seg in segs {
            let len = seg.len as usize;
            if skip >= len {
                skip -= len;
                continue;
            }
            let take = (len - skip).min(dst.len() - off);
            let addr = seg
                .addr
                .checked_add(skip as u64)
                .ok_or(ChainError::BadAddress)?;
            let part = &mut dst[off..off + take];
            match self.mem.slice(addr, take) {
                Some(src) => {
                    src.copy_to(part);
                }
                // Spanning regions (or outside memory): the general path sorts it out.
                None => guest
                    .read_slice(part, GuestAddress(addr))
                    .map_err(|_| ChainError::BadAddress)?,
            }
            off += take;
            skip = 0;
            if off == dst.len() {
                return Ok(());
            }
        }
        if off == dst.len() {
            Ok(())
        } else {
            Err(ChainError::NoRoom)
        }
    }

    /// Writes `parts`, one after the other, into the buffers `segs`.
    pub fn scatter(&self, segs: &[Seg], parts: &[&[u8]]) -> Result<(), ChainError> {
        let guest = self.mem.guest();
        let mut segs = segs.iter();
        // The current buffer, the bytes written into it, and its host slice (one lookup per
        // buffer; `None` when it spans regions).
        let mut cur: Option<(&Seg, usize, Option<VolatileSlice<'_>>)> = None;
        for part in parts {
            let mut data = *part;
            while !data.is_empty() {
                let (seg, done, slice) = match cur {
                    Some(c) if c.1 < c.0.len as usize => c,
                    _ => {
                        let s = segs.next().ok_or(ChainError::NoRoom)?;
                        (s, 0, self.mem.slice(s.addr, s.len as usize))
                    }
                };
                let n = (seg.len as usize - done).min(data.len());
                match slice.and_then(|s| s.subslice(done, n).ok()) {
                    Some(dst) => dst.copy_from(&data[..n]),
                    None => {
                        let addr = seg
                            .addr
                            .checked_add(done as u64)
                            .ok_or(ChainError::BadAddress)?;
                        guest
                            .write_slice(&data[..n], GuestAddress(addr))
                            .map_err(|_| ChainError::BadAddress)?
                    }
                }
                data = &data[n..];
                cur = Some((seg, done + n, slice));
            }
        }
        Ok(())
    }

    /// Returns a chain to the driver with `len` bytes written into it. The driver sees it after
    /// [`Self::publish_used`].
    #[inline]
    pub fn push_used(&self, head: u16, len: u32) {
        // `{id u32, len u32}`, little endian: one 8-byte store.
        let elem = u64::from(head) | (u64::from(len) << 32);
        self.mem.set_used_entry(self.next_used.get().0, elem);
        self.next_used.set(self.next_used.get() + Wrapping(1));
    }

    /// Publishes the used entries pushed since the last call. Returns whether the driver asked
    /// to be interrupted for them.
    pub fn publish_used(&mut self) -> Result<bool, RingFault> {
        let old = self.published;
        let new = self.next_used.get();
        if old == new {
            return Ok(false);
        }
        // Release: the used entries are visible before the index that covers them.
        store(self.mem.used(), USED_IDX, new.0, "used ring")?;
        self.published = new;
        // The used index must be visible before the driver's event index or flags are read.
        fence(Ordering::SeqCst);
        let avail = self.mem.avail();
        if self.event_idx {
            let used_event = load(
                avail,
                AVAIL_RING + 2 * usize::from(self.size),
                "available ring",
            )?;
            // vring_need_event(): notify if used_event is in [old, new).
            Ok((new - Wrapping(used_event) - Wrapping(1)) < (new - old))
        } else {
            let flags = load(avail, AVAIL_FLAGS, "available ring")?;
            Ok(flags & VRING_AVAIL_F_NO_INTERRUPT as u16 == 0)
        }
    }
}

/// A raw descriptor, as loaded (little endian), split into `(addr, len, flags, next)`.
#[inline]
fn split_desc(raw: u128) -> (u64, u32, u16, u16) {
    let raw = u128::from_le(raw);
    (
        raw as u64,
        (raw >> 64) as u32,
        (raw >> 96) as u16,
        (raw >> 112) as u16,
    )
}

/// An acquire load of a little-endian u16 at `off` of a ring part (which must be 2-aligned).
#[inline]
fn load(part: VolatileSlice<'_>, off: usize, what: &'static str) -> Result<u16, RingFault> {
    part.load::<u16>(off, Ordering::Acquire)
        .map(u16::from_le)
        .map_err(|_| RingFault::Inaccessible(what))
}

/// A release store of a little-endian u16 at `off` of a ring part (which must be 2-aligned).
#[inline]
fn store(
    part: VolatileSlice<'_>,
    off: usize,
    value: u16,
    what: &'static str,
) -> Result<(), RingFault> {
    part.store(value.to_le(), off, Ordering::Release)
        .map_err(|_| RingFault::Inaccessible(what))
}

/// The one place that holds host slices of guest memory across calls.
mod mapped;
