//! The front-end's memory table: its regions mapped into this process, and the translation of
//! the front-end's own virtual addresses (used in `SET_VRING_ADDR`) to guest physical ones.
//!
//! A table is rejected as a whole (the message gets an error reply) when a region's fd is not a
//! regular file (memfd and hugetlbfs files are), when a region reaches past the end of its file
//! (touching it would raise SIGBUS), when it cannot be mapped, or when regions overlap in guest
//! physical or front-end virtual space.
//!
//! Not covered: a front-end that shrinks a file after it was mapped (QEMU seals its memfds;
//! the guest itself cannot do this).

use std::fs::File;
use std::sync::Arc;

use vm_memory::{FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

use crate::ring::GuestMem;

/// Most regions the port accepts (`GET_MAX_MEM_SLOTS`).
pub const MAX_REGIONS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("memory region fd is not a regular file")]
    NotAFile,
    #[error(
        "memory region (offset {offset:#x}, size {size:#x}) reaches past the end of its file ({file_len:#x} bytes)"
    )]
    BeyondFile {
        offset: u64,
        size: u64,
        file_len: u64,
    },
    #[error("memory region: {0}")]
    Io(#[from] std::io::Error),
    #[error("mapping a memory region failed: {0}")]
    Map(String),
    #[error("memory regions overlap or are invalid: {0}")]
    Layout(String),
    #[error("more than {MAX_REGIONS} memory regions")]
    TooMany,
    #[error("no memory region at {gpa:#x} of size {size:#x}")]
    NoSuchRegion { gpa: u64, size: u64 },
}

/// One region as the front-end described it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionDesc {
    pub guest_phys_addr: u64,
    pub memory_size: u64,
    pub user_addr: u64,
    pub mmap_offset: u64,
}

struct Region {
    desc: RegionDesc,
    mapping: Arc<GuestRegionMmap<()>>,
}

/// The mapped memory table. Cheap to clone; rings hold the [`GuestMem`] it hands out, so a
/// mapping stays alive until no ring uses it.
#[derive(Clone, Default)]
pub struct MemoryTable {
    regions: Vec<Arc<Region>>,
    guest: Option<Arc<GuestMem>>,
}

impl MemoryTable {
    /// Maps a whole table (`SET_MEM_TABLE`).
    pub fn from_regions(
        descs: &[RegionDesc],
        files: Vec<File>,
    ) -> Result<MemoryTable, MemoryError> {
        if descs.len() > MAX_REGIONS {
            return Err(MemoryError::TooMany);
        }
        if descs.len() != files.len() {
            return Err(MemoryError::Layout("one fd per region expected".into()));
        }
        let mut regions = Vec::with_capacity(descs.len());
        for (desc, file) in descs.iter().zip(files) {
            regions.push(Arc::new(map_region(*desc, file)?));
        }
        Self::build(regions)
    }

    /// A new table with one more region (`ADD_MEM_REG`).
    pub fn with_region(&self, desc: RegionDesc, file: File) -> Result<MemoryTable, MemoryError> {
        if self.regions.len() >= MAX_REGIONS {
            return Err(MemoryError::TooMany);
        }
        let mut regions = self.regions.clone();
        regions.push(Arc::new(map_region(desc, file)?));
        Self::build(regions)
    }

    /// A new table without the region at `gpa` of `size` bytes (`REM_MEM_REG`).
    pub fn without_region(&self, gpa: u64, size: u64) -> Result<MemoryTable, MemoryError> {
        let mut regions = self.regions.clone();
        let at = regions
            .iter()
            .position(|r| r.desc.guest_phys_addr == gpa && r.desc.memory_size == size)
            .ok_or(MemoryError::NoSuchRegion { gpa, size })?;
        regions.remove(at);
        if regions.is_empty() {
            return Ok(MemoryTable::default());
        }
        Self::build(regions)
    }

    fn build(mut regions: Vec<Arc<Region>>) -> Result<MemoryTable, MemoryError> {
        // Front-end virtual ranges must not overlap, or address translation is ambiguous.
        regions.sort_by_key(|r| r.desc.user_addr);
        for pair in regions.windows(2) {
            let a = &pair[0].desc;
            if a.user_addr + a.memory_size > pair[1].desc.user_addr {
                return Err(MemoryError::Layout(
                    "front-end address ranges overlap".into(),
                ));
            }
        }
        regions.sort_by_key(|r| r.desc.guest_phys_addr);
        let guest = GuestMemoryMmap::from_arc_regions(
            regions.iter().map(|r| Arc::clone(&r.mapping)).collect(),
        )
        .map_err(|e| MemoryError::Layout(e.to_string()))?;
        Ok(MemoryTable {
            regions,
            guest: Some(Arc::new(guest)),
        })
    }

    /// The mapped guest memory, if there is a table.
    pub fn guest(&self) -> Option<Arc<GuestMem>> {
        self.guest.clone()
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// Translates a front-end virtual address into a guest physical one.
    pub fn va_to_gpa(&self, va: u64) -> Option<u64> {
        self.regions.iter().find_map(|r| {
            let d = &r.desc;
            let off = va.checked_sub(d.user_addr)?;
            (off < d.memory_size).then(|| d.guest_phys_addr + off)
        })
    }
}

fn map_region(desc: RegionDesc, file: File) -> Result<Region, MemoryError> {
    // The vhost crate checked that the three address ranges do not overflow and the size is
    // not zero; check again, this function is also reached from tests and the fuzzer.
    let end = desc.mmap_offset.checked_add(desc.memory_size);
    if desc.memory_size == 0
        || end.is_none()
        || desc.guest_phys_addr.checked_add(desc.memory_size).is_none()
        || desc.user_addr.checked_add(desc.memory_size).is_none()
        || usize::try_from(desc.memory_size).is_err()
    {
        return Err(MemoryError::Layout(
            "region size or addresses overflow".into(),
        ));
    }
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(MemoryError::NotAFile);
    }
    if end.is_some_and(|end| end > meta.len()) {
        return Err(MemoryError::BeyondFile {
            offset: desc.mmap_offset,
            size: desc.memory_size,
            file_len: meta.len(),
        });
    }
    let mapping = MmapRegion::<()>::from_file(
        FileOffset::new(file, desc.mmap_offset),
        desc.memory_size as usize,
    )
    .map_err(|e| MemoryError::Map(e.to_string()))?;
    let region = GuestRegionMmap::new(mapping, GuestAddress(desc.guest_phys_addr))
        .ok_or_else(|| MemoryError::Layout("region wraps the address space".into()))?;
    Ok(Region {
        desc,
        mapping: Arc::new(region),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: u64) -> File {
        crate::fuzzing::unlinked_file(len)
    }

    fn region(gpa: u64, size: u64, user_addr: u64) -> RegionDesc {
        RegionDesc {
            guest_phys_addr: gpa,
            memory_size: size,
            user_addr,
            mmap_offset: 0,
        }
    }

    #[test]
    fn maps_and_translates() {
        let t = MemoryTable::from_regions(
            &[
                region(0x10_0000, 0x1_0000, 0x7f00_0000),
                region(0, 0x1_0000, 0x7e00_0000),
            ],
            vec![file(0x1_0000), file(0x1_0000)],
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t.va_to_gpa(0x7f00_0010), Some(0x10_0010));
        assert_eq!(t.va_to_gpa(0x7e00_ffff), Some(0xffff));
        assert_eq!(t.va_to_gpa(0x7e01_0000), None);
        let t = t.without_region(0, 0x1_0000).unwrap();
        assert_eq!(t.va_to_gpa(0x7e00_0000), None);
        let t = t
            .with_region(region(0x20_0000, 0x1000, 0x1000), file(0x1000))
            .unwrap();
        assert_eq!(t.va_to_gpa(0x1800), Some(0x20_0800));
    }

    #[test]
    fn rejects_bad_tables() {
        // Overlapping guest physical ranges.
        let e = MemoryTable::from_regions(
            &[region(0, 0x2000, 0x10000), region(0x1000, 0x2000, 0x20000)],
            vec![file(0x2000), file(0x2000)],
        );
        assert!(matches!(e, Err(MemoryError::Layout(_))));
        // Overlapping front-end ranges.
        let e = MemoryTable::from_regions(
            &[region(0, 0x2000, 0x10000), region(0x4000, 0x2000, 0x11000)],
            vec![file(0x2000), file(0x2000)],
        );
        assert!(matches!(e, Err(MemoryError::Layout(_))));
        // Past the end of the file.
        let e = MemoryTable::from_regions(&[region(0, 0x2000, 0)], vec![file(0x1000)]);
        assert!(matches!(e, Err(MemoryError::BeyondFile { .. })));
        // Not a regular file.
        let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd: std::os::fd::OwnedFd = sock.into();
        let e = MemoryTable::from_regions(&[region(0, 0x1000, 0)], vec![File::from(fd)]);
        assert!(matches!(e, Err(MemoryError::NotAFile)));
        // Unaligned offset: mmap refuses.
        let mut r = region(0, 0x1000, 0);
        r.mmap_offset = 10;
        let e = MemoryTable::from_regions(&[r], vec![file(0x2000)]);
        assert!(matches!(e, Err(MemoryError::Map(_))));
        // Sizes that overflow.
        let e = MemoryTable::from_regions(&[region(u64::MAX - 10, 0x1000, 0)], vec![file(0x1000)]);
        assert!(matches!(e, Err(MemoryError::Layout(_))));
        // Fd count mismatch.
        let e = MemoryTable::from_regions(&[region(0, 0x1000, 0)], vec![]);
        assert!(e.is_err());
        // Removing a region that is not there.
        assert!(MemoryTable::default().without_region(0, 1).is_err());
    }
}
