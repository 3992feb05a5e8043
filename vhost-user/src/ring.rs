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
mod mapped {
    use std::marker::PhantomData;
    use std::ptr::NonNull;
    use std::sync::Arc;

    use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryRegion, VolatileSlice};

    use super::{AVAIL_RING, DESC_SIZE, GuestMem, RingFault, USED_RING};

    /// Guest memory, with each region and the three parts of one ring (descriptor table,
    /// available ring, used ring) resolved to host slices once, when the ring starts.
    ///
    /// The slices are `'static` only inside this type: they are handed out reborrowed for as
    /// long as `self` is borrowed, and `mem`, which owns the mappings they point into, is never
    /// replaced or moved out. So no slice outlives its mapping. The same holds for the raw
    /// pointers to the ring parts, through which ring entries are read and written without a
    /// bounds check each time: an entry's index is taken modulo the ring size, and `new`
    /// checked that each part is long enough for `size` entries.
    pub(super) struct RingMemory {
        /// Every region: guest physical start address and the whole mapping.
        regions: Vec<(u64, VolatileSlice<'static>)>,
        desc: VolatileSlice<'static>,
        avail: VolatileSlice<'static>,
        used: VolatileSlice<'static>,
        /// Where `desc`, `avail` and `used` start.
        desc_ptr: *mut u8,
        avail_ptr: *mut u8,
        used_ptr: *mut u8,
        /// Ring size - 1 (the size is a power of two).
        mask: u16,
        mem: Arc<GuestMem>,
    }

    /// A `T` read or written at any alignment: the driver places the ring parts, and a read of
    /// a misaligned `u16` must not be undefined behaviour.
    #[derive(Clone, Copy)]
    #[repr(C, packed)]
    struct Unaligned<T: Copy>(T);

    // `VolatileSlice` and the raw pointers are not `Send` only because they are pointers. They
    // point into shared mappings (`MmapRegion` is `Send + Sync`) owned through `mem`, which is
    // `Send`; they are only used through volatile or atomic accesses, from whichever single
    // thread holds the ring (`&mut` or the queue's mutex).
    // SAFETY: as explained just above, moving a RingMemory to another thread is sound.
    unsafe impl Send for RingMemory {}

    impl RingMemory {
        /// Resolves the regions of `mem`, then each ring part `(guest address, name)` of a ring
        /// of `size` entries to a slice of one region.
        pub(super) fn new(
            mem: Arc<GuestMem>,
            size: u16,
            parts: [(u64, &'static str); 3],
        ) -> Result<RingMemory, RingFault> {
            if size == 0 || !size.is_power_of_two() {
                return Err(RingFault::Inaccessible("ring of invalid size"));
            }
            let n = usize::from(size);
            // Descriptor table; available ring `{flags, idx, ring[n], used_event}`; used ring
            // `{flags, idx, ring[n], avail_event}`.
            let lens = [
                DESC_SIZE as usize * n,
                AVAIL_RING + 2 * n + 2,
                USED_RING + 8 * n + 2,
            ];
            let mut regions = Vec::with_capacity(mem.num_regions());
            for region in mem.iter() {
                let whole = region
                    .as_volatile_slice()
                    .map_err(|_| RingFault::Inaccessible("memory region"))?;
                // `whole` is the whole mapping of one region of `mem`, `whole.len()` bytes. The
                // region is an `Arc<GuestRegionMmap>` inside the `GuestMem` that `RingMemory`
                // keeps alive through its `mem` field, and a region is unmapped only when its
                // last `Arc` drops: the memory stays mapped as long as this `RingMemory`
                // exists, and the `'static` slice is never handed out except reborrowed for the
                // lifetime of `&self`. All accesses through it (and the guest's) are volatile
                // or atomic, as with any `VolatileSlice` of guest memory.
                // SAFETY: the mapping outlives the slice, as explained just above.
                let whole =
                    unsafe { VolatileSlice::new(whole.ptr_guard_mut().as_ptr(), whole.len()) };
                regions.push((region.start_addr().0, whole));
            }
            let resolve =
                |(addr, what): (u64, &'static str), len: usize| match find(&regions, addr, len) {
                    Some(s) => Ok(s),
                    None if GuestMemoryBackend::check_range(&*mem, GuestAddress(addr), len) => {
                        Err(RingFault::SpansRegions(what))
                    }
                    None => Err(RingFault::Inaccessible(what)),
                };
            let [d, a, u] = parts;
            let desc = resolve(d, lens[0])?;
            let avail = resolve(a, lens[1])?;
            let used = resolve(u, lens[2])?;
            Ok(RingMemory {
                regions,
                desc_ptr: desc.ptr_guard_mut().as_ptr(),
                avail_ptr: avail.ptr_guard_mut().as_ptr(),
                used_ptr: used.ptr_guard_mut().as_ptr(),
                desc,
                avail,
                used,
                mask: size - 1,
                mem,
            })
        }

        /// Entry `idx` (modulo the ring size) of the available ring.
        #[inline]
        pub(super) fn avail_entry(&self, idx: u16) -> u16 {
            let off = AVAIL_RING + 2 * usize::from(idx & self.mask);
            // SAFETY: `off + 2 <= AVAIL_RING + 2 * size`, within the available ring's length
            // checked in `new`; the mapping lives as long as `self` (see the type). Volatile:
            // the guest writes the ring concurrently. `Unaligned` has alignment 1.
            let v = unsafe {
                std::ptr::read_volatile(self.avail_ptr.add(off).cast::<Unaligned<u16>>())
            };
            u16::from_le(v.0)
        }

        /// Descriptor `index` (modulo the ring size) of the ring's own table, as loaded.
        #[inline]
        pub(super) fn desc_entry(&self, index: u16) -> u128 {
            let off = DESC_SIZE as usize * usize::from(index & self.mask);
            // SAFETY: `off + 16 <= 16 * size`, the table's length checked in `new`; otherwise
            // as in `avail_entry`.
            let v = unsafe {
                std::ptr::read_volatile(self.desc_ptr.add(off).cast::<Unaligned<u128>>())
            };
            v.0
        }

        /// Where descriptor `index` (modulo the ring size) is, for a prefetch.
        #[inline]
        pub(super) fn desc_entry_ptr(&self, index: u16) -> *const u8 {
            self.desc_ptr
                .wrapping_add(DESC_SIZE as usize * usize::from(index & self.mask))
        }

        /// Where used entry `idx` (modulo the ring size) is, for a prefetch.
        #[inline]
        pub(super) fn used_entry_ptr(&self, idx: u16) -> *const u8 {
            self.used_ptr
                .wrapping_add(USED_RING + 8 * usize::from(idx & self.mask))
        }

        /// Writes used entry `idx` (modulo the ring size): `elem` in little endian.
        #[inline]
        pub(super) fn set_used_entry(&self, idx: u16, elem: u64) {
            let off = USED_RING + 8 * usize::from(idx & self.mask);
            // A plain unaligned store (a volatile one of a packed type goes through the stack):
            // the driver reads the entry only after `publish_used` stores the used index.
            // SAFETY: `off + 8 <= USED_RING + 8 * size`, within the used ring's length checked
            // in `new`; the mapping lives as long as `self`.
            unsafe {
                std::ptr::write_unaligned(self.used_ptr.add(off).cast::<u64>(), elem.to_le())
            };
        }

        /// All of the guest memory, for the general (slow) path.
        #[inline]
        pub(super) fn guest(&self) -> &GuestMem {
            &self.mem
        }

        /// `len` bytes at guest address `addr`, if they lie within one region.
        #[inline]
        pub(super) fn slice(&self, addr: u64, len: usize) -> Option<VolatileSlice<'_>> {
            find(&self.regions, addr, len)
        }

        /// `len` bytes at guest address `addr` as a [`HostBuf`], if they lie within one
        /// region.
        #[inline]
        pub(super) fn host_buf(&self, addr: u64, len: usize) -> Option<HostBuf<'_>> {
            let (whole, off) = locate(&self.regions, addr, len)?;
            // `off + len <= whole.len()` (`locate`): the whole buffer is in this mapping.
            let ptr = whole.ptr_guard_mut().as_ptr().wrapping_add(off);
            Some(HostBuf {
                ptr: NonNull::new(ptr)?,
                len,
                _mem: PhantomData,
            })
        }

        #[inline]
        pub(super) fn desc(&self) -> VolatileSlice<'_> {
            self.desc
        }

        #[inline]
        pub(super) fn avail(&self) -> VolatileSlice<'_> {
            self.avail
        }

        #[inline]
        pub(super) fn used(&self) -> VolatileSlice<'_> {
            self.used
        }
    }

    /// One guest buffer resolved to host memory: `len` bytes at `ptr`, all inside one region's
    /// mapping, which stays mapped while the `RingMemory` it came from is borrowed (`'a`).
    /// Every read and write is checked against `len`; the guest may change the bytes at any
    /// time, so they are only copied, never referenced.
    #[derive(Clone, Copy)]
    pub(crate) struct HostBuf<'a> {
        ptr: NonNull<u8>,
        len: usize,
        _mem: PhantomData<&'a RingMemory>,
    }

    impl HostBuf<'_> {
        #[inline]
        pub(crate) fn len(&self) -> usize {
            self.len
        }

        /// Where the buffer starts, for a prefetch.
        #[inline]
        pub(crate) fn as_ptr(&self) -> *const u8 {
            self.ptr.as_ptr()
        }

        /// Whether `n` bytes at `off` are inside the buffer.
        #[inline]
        fn holds(&self, off: usize, n: usize) -> bool {
            off <= self.len && n <= self.len - off
        }

        /// Copies the `dst.len()` bytes at `off` into `dst`; false (nothing copied) if they are
        /// not all in the buffer.
        #[inline]
        pub(crate) fn read(&self, off: usize, dst: &mut [u8]) -> bool {
            if !self.holds(off, dst.len()) {
                return false;
            }
            // The guest may write the bytes meanwhile: as with vm-memory's own bulk copy, the
            // copy then mixes old and new bytes, and it is parsed as untrusted anyway.
            // SAFETY: `[off, off + dst.len())` is inside the buffer (checked just above), mapped
            // for `'a`; `dst` is our own memory, so the two do not overlap.
            unsafe {
                port_api::copy::copy_bytes(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
            };
            true
        }

        /// Copies `src` to `off`; false (nothing written) if it does not fit.
        #[inline]
        pub(crate) fn write(&self, off: usize, src: &[u8]) -> bool {
            if !self.holds(off, src.len()) {
                return false;
            }
            // SAFETY: as in `read`, with the roles swapped.
            unsafe {
                port_api::copy::copy_bytes(src.as_ptr(), self.ptr.as_ptr().add(off), src.len())
            };
            true
        }

        /// Stores `v` at `off`, at any alignment, as one store; false if it does not fit.
        #[inline]
        pub(crate) fn store<T: Copy>(&self, off: usize, v: T) -> bool {
            if !self.holds(off, std::mem::size_of::<T>()) {
                return false;
            }
            // SAFETY: the `size_of::<T>()` bytes at `off` are inside the buffer (checked just
            // above). A plain unaligned store, as for used entries (`set_used_entry`): the
            // driver looks at the buffer only after the used index is published.
            unsafe { std::ptr::write_unaligned(self.ptr.as_ptr().add(off).cast::<T>(), v) };
            true
        }
    }

    /// The region holding all of `[addr, addr + len)` and the offset of `addr` in it, if one
    /// does.
    #[inline]
    fn locate<'r>(
        regions: &'r [(u64, VolatileSlice<'static>)],
        addr: u64,
        len: usize,
    ) -> Option<(&'r VolatileSlice<'static>, usize)> {
        // Regions do not overlap: at most one holds `addr`.
        let (start, whole) = regions.iter().find(|(start, whole)| {
            addr.checked_sub(*start)
                .is_some_and(|off| off < whole.len() as u64)
        })?;
        let off = (addr - start) as usize;
        (len <= whole.len() - off).then_some((whole, off))
    }

    /// The subslice of the region holding `[addr, addr + len)`, if one does.
    #[inline]
    fn find(
        regions: &[(u64, VolatileSlice<'static>)],
        addr: u64,
        len: usize,
    ) -> Option<VolatileSlice<'static>> {
        let (whole, off) = locate(regions, addr, len)?;
        whole.subslice(off, len).ok()
    }
}
