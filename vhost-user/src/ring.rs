//! A split virtqueue seen from the device side, over guest memory shared by the front-end.
//!
//! Everything the guest controls — ring indices, descriptor indices, addresses, lengths,
//! flags — is checked before use, and every access goes through vm-memory's bounds-checked
//! accessors. A bad descriptor chain is a [`ChainError`] (the frame is dropped and the chain
//! returned); a ring that cannot be used at all is a [`RingFault`] (the queue is marked broken).
//!
//! Layout (virtio 1.x, 2.7): descriptor table of 16-byte entries `{addr u64, len u32, flags u16,
//! next u16}`; available ring `{flags u16, idx u16, ring[size] u16, used_event u16}`; used ring
//! `{flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16}`.
//!
//! Kicks: the port polls, so it asks the driver not to kick (`VRING_USED_F_NO_NOTIFY`; with
//! EVENT_IDX it leaves `avail_event` alone, which has the same effect). Interrupts: after a
//! burst the used index is published once and [`SplitRing::publish_used`] says whether the
//! driver wants to be told (EVENT_IDX `used_event`, else `VRING_AVAIL_F_NO_INTERRUPT`).

use std::fmt;
use std::num::Wrapping;
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use virtio_bindings::bindings::virtio_ring::{
    VRING_AVAIL_F_NO_INTERRUPT, VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
    VRING_USED_F_NO_NOTIFY,
};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

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

/// A running split ring.
pub struct SplitRing {
    mem: Arc<GuestMem>,
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    size: u16,
    next_avail: Wrapping<u16>,
    next_used: Wrapping<u16>,
    /// `next_used` as last published to the driver.
    published: Wrapping<u16>,
    event_idx: bool,
    indirect: bool,
    pub hdr_len: usize,
    pub mrg_rxbuf: bool,
}

impl SplitRing {
    /// Starts a ring: checks that its three parts lie in `mem`, picks up the used index the
    /// driver sees, and asks the driver not to kick.
    ///
    /// If `base` differs from the used index (the previous back-end went away with chains in
    /// flight), processing resumes at the used index, as DPDK's vhost library does: in-flight
    /// transmit chains are sent again, in-flight receive buffers are reused.
    pub fn new(mem: Arc<GuestMem>, cfg: RingConfig) -> Result<SplitRing, RingFault> {
        let size = cfg.size;
        if size == 0 || size > MAX_RING_SIZE || !size.is_power_of_two() {
            return Err(RingFault::Inaccessible("ring of invalid size"));
        }
        let n = u64::from(size);
        let parts = [
            (cfg.desc, DESC_SIZE * n, "descriptor table"),
            (cfg.avail, 6 + 2 * n, "available ring"),
            (cfg.used, 6 + 8 * n, "used ring"),
        ];
        for (addr, len, what) in parts {
            if !GuestMemoryBackend::check_range(&*mem, GuestAddress(addr), len as usize) {
                return Err(RingFault::Inaccessible(what));
            }
        }
        let mut ring = SplitRing {
            mem,
            desc: GuestAddress(cfg.desc),
            avail: GuestAddress(cfg.avail),
            used: GuestAddress(cfg.used),
            size,
            next_avail: Wrapping(cfg.base),
            next_used: Wrapping(0),
            published: Wrapping(0),
            event_idx: cfg.event_idx,
            indirect: cfg.indirect,
            hdr_len: cfg.hdr_len,
            mrg_rxbuf: cfg.mrg_rxbuf,
        };
        let used_idx: u16 = ring.load(ring.used.0 + 2, "used ring")?;
        ring.next_used = Wrapping(used_idx);
        ring.published = ring.next_used;
        if ring.next_avail != ring.next_used {
            tracing::info!(
                base = cfg.base,
                used_idx,
                "vring base differs from the used index; resuming at the used index"
            );
            ring.next_avail = ring.next_used;
        }
        ring.store(ring.used.0, VRING_USED_F_NO_NOTIFY as u16, "used ring")?;
        Ok(ring)
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    /// Index of the next available entry to process (what `GET_VRING_BASE` reports).
    pub fn next_avail(&self) -> u16 {
        self.next_avail.0
    }

    /// How many chains the driver has made available and the device has not taken yet.
    pub fn available(&self) -> Result<u16, RingFault> {
        let idx = self.load(self.avail.0 + 2, "available ring")?;
        let pending = (Wrapping(idx) - self.next_avail).0;
        if pending > self.size {
            return Err(RingFault::AvailIndexAhead {
                pending,
                size: self.size,
            });
        }
        Ok(pending)
    }

    /// Takes the head of the next available chain. Only call after [`Self::available`] said
    /// there is one.
    pub fn pop_head(&mut self) -> Result<u16, RingFault> {
        let slot = u64::from(self.next_avail.0 % self.size);
        let head: u16 = self.load(self.avail.0 + 4 + 2 * slot, "available ring")?;
        if head >= self.size {
            return Err(RingFault::HeadOutOfRange {
                head,
                size: self.size,
            });
        }
        self.next_avail += Wrapping(1);
        Ok(head)
    }

    /// Gives back the last `n` popped heads (they will be popped again).
    pub fn unpop(&mut self, n: u16) {
        self.next_avail -= Wrapping(n);
    }

    /// Walks the chain starting at `head` (< size), appending its buffers to `segs`. All
    /// buffers must be device-writable (`writable`) or all device-readable. Returns the total
    /// length of the chain.
    pub fn walk(&self, head: u16, writable: bool, segs: &mut Vec<Seg>) -> Result<u32, ChainError> {
        let mut table = self.desc;
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
                if !GuestMemoryBackend::check_range(&*self.mem, GuestAddress(addr), len as usize) {
                    return Err(ChainError::BadAddress);
                }
                table = GuestAddress(addr);
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
                if !GuestMemoryBackend::check_range(&*self.mem, GuestAddress(addr), len as usize) {
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

    fn read_desc(
        &self,
        table: GuestAddress,
        index: u32,
    ) -> Result<(u64, u32, u16, u16), ChainError> {
        let addr = table
            .0
            .checked_add(u64::from(index) * DESC_SIZE)
            .ok_or(ChainError::BadAddress)?;
        let mut raw = [0u8; DESC_SIZE as usize];
        self.mem
            .read_slice(&mut raw, GuestAddress(addr))
            .map_err(|_| ChainError::BadAddress)?;
        let [
            a0,
            a1,
            a2,
            a3,
            a4,
            a5,
            a6,
            a7,
            l0,
            l1,
            l2,
            l3,
            f0,
            f1,
            n0,
            n1,
        ] = raw;
        Ok((
            u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            u32::from_le_bytes([l0, l1, l2, l3]),
            u16::from_le_bytes([f0, f1]),
            u16::from_le_bytes([n0, n1]),
        ))
    }

    /// Copies the chain's bytes after the first `skip` into `dst` (exactly `dst.len()` bytes).
    pub fn gather(&self, segs: &[Seg], mut skip: usize, dst: &mut [u8]) -> Result<(), ChainError> {
        let mut off = 0;
        for seg in segs {
            let len = seg.len as usize;
            if skip >= len {
                skip -= len;
                continue;
            }
            let take = (len - skip).min(dst.len() - off);
            let addr = GuestAddress(seg.addr + skip as u64);
            self.mem
                .read_slice(&mut dst[off..off + take], addr)
                .map_err(|_| ChainError::BadAddress)?;
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
        let mut segs = segs.iter();
        let mut cur: Option<(u64, usize)> = None; // (address, room) in the current buffer
        for part in parts {
            let mut data = *part;
            while !data.is_empty() {
                let (addr, room) = match cur {
                    Some(c) if c.1 > 0 => c,
                    _ => {
                        let s = segs.next().ok_or(ChainError::NoRoom)?;
                        (s.addr, s.len as usize)
                    }
                };
                let n = room.min(data.len());
                self.mem
                    .write_slice(&data[..n], GuestAddress(addr))
                    .map_err(|_| ChainError::BadAddress)?;
                data = &data[n..];
                cur = Some((addr + n as u64, room - n));
            }
        }
        Ok(())
    }

    /// Returns a chain to the driver with `len` bytes written into it. The driver sees it after
    /// [`Self::publish_used`].
    pub fn push_used(&mut self, head: u16, len: u32) -> Result<(), RingFault> {
        let slot = u64::from(self.next_used.0 % self.size);
        let mut elem = [0u8; 8];
        elem[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        elem[4..].copy_from_slice(&len.to_le_bytes());
        self.mem
            .write_slice(&elem, GuestAddress(self.used.0 + 4 + 8 * slot))
            .map_err(|_| RingFault::Inaccessible("used ring"))?;
        self.next_used += Wrapping(1);
        Ok(())
    }

    /// Publishes the used entries pushed since the last call. Returns whether the driver asked
    /// to be interrupted for them.
    pub fn publish_used(&mut self) -> Result<bool, RingFault> {
        let old = self.published;
        let new = self.next_used;
        if old == new {
            return Ok(false);
        }
        self.mem
            .store(
                new.0.to_le(),
                GuestAddress(self.used.0 + 2),
                Ordering::Release,
            )
            .map_err(|_| RingFault::Inaccessible("used ring"))?;
        self.published = new;
        // The used index must be visible before the driver's event index or flags are read.
        fence(Ordering::SeqCst);
        if self.event_idx {
            let used_event: u16 = self.load(
                self.avail.0 + 4 + 2 * u64::from(self.size),
                "available ring",
            )?;
            // vring_need_event(): notify if used_event is in [old, new).
            Ok((new - Wrapping(used_event) - Wrapping(1)) < (new - old))
        } else {
            let flags: u16 = self.load(self.avail.0, "available ring")?;
            Ok(flags & VRING_AVAIL_F_NO_INTERRUPT as u16 == 0)
        }
    }

    fn load(&self, addr: u64, what: &'static str) -> Result<u16, RingFault> {
        self.mem
            .load::<u16>(GuestAddress(addr), Ordering::Acquire)
            .map(u16::from_le)
            .map_err(|_| RingFault::Inaccessible(what))
    }

    fn store(&self, addr: u64, value: u16, what: &'static str) -> Result<(), RingFault> {
        self.mem
            .store(value.to_le(), GuestAddress(addr), Ordering::Release)
            .map_err(|_| RingFault::Inaccessible(what))
    }
}
