//! The one place that holds host slices of guest memory across calls: the ring's raw memory
//! access, and its only `unsafe` code.

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
            let whole = unsafe { VolatileSlice::new(whole.ptr_guard_mut().as_ptr(), whole.len()) };
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
        let ptr = self.avail_ptr.wrapping_add(off).cast::<Unaligned<u16>>();
        // SAFETY: `off + 2 <= AVAIL_RING + 2 * size`, within the available ring's length
        // checked in `new`; the mapping lives as long as `self` (see the type). Volatile:
        // the guest writes the ring concurrently. `Unaligned` has alignment 1.
        let v = unsafe { std::ptr::read_volatile(ptr) };
        u16::from_le(v.0)
    }

    /// Descriptor `index` (modulo the ring size) of the ring's own table, as loaded.
    #[inline]
    pub(super) fn desc_entry(&self, index: u16) -> u128 {
        let off = DESC_SIZE as usize * usize::from(index & self.mask);
        // SAFETY: `off + 16 <= 16 * size`, the table's length checked in `new`; otherwise
        // as in `avail_entry`.
        let v =
            unsafe { std::ptr::read_volatile(self.desc_ptr.add(off).cast::<Unaligned<u128>>()) };
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
        unsafe { std::ptr::write_unaligned(self.used_ptr.add(off).cast::<u64>(), elem.to_le()) };
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
        unsafe { port_api::copy::copy_bytes(src.as_ptr(), self.ptr.as_ptr().add(off), src.len()) };
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
