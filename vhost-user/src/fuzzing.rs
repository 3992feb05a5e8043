//! Test and fuzzing helpers: a fake guest driver over anonymous memory, and the entry points of
//! the fuzz targets in `vhost-user/fuzz`. Not a stable API.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use port_api::{Batch, MAX_BURST, PacketPool};
use vhost::vhost_user::BackendReqHandler;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::device::Shared;
use crate::protocol::{DeviceConfig, Protocol};
use crate::ring::{GuestMem, RingConfig, SplitRing};
use crate::rxtx::{Scratch, dequeue_burst, enqueue_burst};
use crate::stats::QueueStats;

/// A file of `len` bytes with no name (created in the temp dir, then unlinked), as a front-end
/// shares guest memory.
pub fn unlinked_file(len: u64) -> std::fs::File {
    let path = std::env::temp_dir().join(format!(
        "vhu-mem-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let f = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f.set_len(len).unwrap();
    f
}

/// The value of `key` in a port's status ("" when absent).
pub fn status_of(port: &crate::VhostUserPort, key: &str) -> String {
    use port_api::Port;
    port.status()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// A guest driver's side of one split ring in anonymous memory: descriptor table at 0, available
/// ring at [`MockGuest::AVAIL`], used ring at [`MockGuest::USED`], buffers from
/// [`MockGuest::BUFFERS`] on. Ring sizes up to 256.
pub struct MockGuest {
    pub mem: Arc<GuestMem>,
    pub size: u16,
    avail_idx: u16,
}

impl MockGuest {
    pub const AVAIL: u64 = 0x1000;
    pub const USED: u64 = 0x2000;
    pub const BUFFERS: u64 = 0x4000;

    pub fn new(mem_size: usize, size: u16) -> MockGuest {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), mem_size)]).unwrap();
        Self::with_memory(Arc::new(mem), size)
    }

    /// Over given memory (which must start at guest address 0 and span past `BUFFERS`).
    pub fn with_memory(mem: Arc<GuestMem>, size: u16) -> MockGuest {
        assert!(size <= 256);
        MockGuest {
            mem,
            size,
            avail_idx: 0,
        }
    }

    /// A device-side ring over this memory.
    pub fn ring(&self, indirect: bool, event_idx: bool, mrg_rxbuf: bool) -> SplitRing {
        let cfg = RingConfig {
            desc: 0,
            avail: Self::AVAIL,
            used: Self::USED,
            size: self.size,
            base: 0,
            event_idx,
            indirect,
            hdr_len: 12,
            mrg_rxbuf,
            csum: false,
            guest_csum: false,
        };
        SplitRing::new(Arc::clone(&self.mem), cfg).unwrap()
    }

    /// Writes descriptor `i` of the table at `table`.
    pub fn write_desc_at(&self, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..16].copy_from_slice(&next.to_le_bytes());
        self.mem
            .write_slice(&raw, GuestAddress(table + 16 * u64::from(i)))
            .unwrap();
    }

    pub fn write_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.write_desc_at(0, i, addr, len, flags, next);
    }

    pub fn write(&self, addr: u64, data: &[u8]) {
        self.mem.write_slice(data, GuestAddress(addr)).unwrap();
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }

    /// Makes chains available, as the driver does.
    pub fn publish(&mut self, heads: &[u16]) {
        for &h in heads {
            let slot = u64::from(self.avail_idx % self.size);
            self.write(Self::AVAIL + 4 + 2 * slot, &h.to_le_bytes());
            self.avail_idx = self.avail_idx.wrapping_add(1);
        }
        self.set_avail_idx(self.avail_idx);
    }

    pub fn set_avail_idx(&self, idx: u16) {
        self.write(Self::AVAIL + 2, &idx.to_le_bytes());
    }

    /// The driver's `used_event` (EVENT_IDX).
    pub fn set_used_event(&self, idx: u16) {
        self.write(
            Self::AVAIL + 4 + 2 * u64::from(self.size),
            &idx.to_le_bytes(),
        );
    }

    pub fn used_idx(&self) -> u16 {
        u16::from_le_bytes(self.read(Self::USED + 2, 2).try_into().unwrap())
    }

    /// Used ring entry `i`: (descriptor id, length).
    pub fn used_elem(&self, i: u16) -> (u32, u32) {
        let raw = self.read(Self::USED + 4 + 8 * u64::from(i % self.size), 8);
        (
            u32::from_le_bytes(raw[0..4].try_into().unwrap()),
            u32::from_le_bytes(raw[4..8].try_into().unwrap()),
        )
    }
}

/// Fuzz target body: the guest controls the whole ring memory (descriptor table, available
/// ring, indirect tables, buffers). Runs transmit and receive bursts over it; must never panic.
///
/// Input: byte 0 selects the ring size (2..=256) and the features (bit 7: checksum offload);
/// the rest is copied to guest
/// address 0 of a 64 KiB memory. The rings are packed from address 0 (descriptor table, then
/// available ring, then used ring), so short inputs already describe whole rings.
pub fn ring_bursts(data: &[u8]) {
    let Some((&sel, image)) = data.split_first() else {
        return;
    };
    let size = 2u16 << (sel & 0x7);
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
    let n = image.len().min(0x10000);
    mem.write_slice(&image[..n], GuestAddress(0)).unwrap();
    let avail = 16 * u64::from(size);
    let used = (avail + 6 + 2 * u64::from(size) + 3) & !3;
    let cfg = RingConfig {
        desc: 0,
        avail,
        used,
        size,
        base: 0,
        event_idx: sel & 0x08 != 0,
        indirect: sel & 0x10 != 0,
        hdr_len: if sel & 0x20 != 0 { 10 } else { 12 },
        mrg_rxbuf: sel & 0x40 != 0,
        csum: sel & 0x80 != 0,
        guest_csum: sel & 0x80 != 0,
    };
    let Ok(mut ring) = SplitRing::new(Arc::new(mem), cfg) else {
        return;
    };
    let mut scratch = Scratch::default();
    let mut pool = PacketPool::with_capacity(MAX_BURST);
    let stats = QueueStats::default();
    let mut out = Batch::new();
    for _ in 0..2 {
        let burst = dequeue_burst(&mut ring, &mut scratch, &mut pool, &mut out, &stats);
        out.recycle(&mut pool);
        if burst.fault.is_some() {
            return;
        }
        let mut pkts = Batch::new();
        for len in [60usize, 1514, 2048, 9000] {
            let mut p = pool.get_for(len);
            p.set_data(&vec![0xab; len]);
            // One frame with its checksum left to compute: delivered as such, or completed.
            p.set_csum_partial(34, 16);
            let _ = pkts.push(p);
        }
        pkts.set_csum_marks(true);
        let burst = enqueue_burst(&mut ring, &mut scratch, &mut pkts, &mut pool, &stats);
        if burst.fault.is_some() {
            return;
        }
    }
}

/// Fuzz target body: feeds `data` as a stream of vhost-user messages (no fds) to the port's
/// request handler until the stream ends or the handler gives up. Must never panic.
pub fn messages(data: &[u8]) {
    let Ok((mut frontend, backend)) = UnixStream::pair() else {
        return;
    };
    // Stays below the socket buffer, so the write cannot block.
    let data = &data[..data.len().min(64 * 1024)];
    if frontend.write_all(data).is_err() || frontend.shutdown(std::net::Shutdown::Write).is_err() {
        return;
    }
    // Drain the replies, or the handler would block once the socket buffer is full.
    let drain = std::thread::spawn(move || {
        let _ = std::io::copy(&mut frontend, &mut std::io::sink());
    });
    let shared = Arc::new(Shared::new(2));
    let config = DeviceConfig {
        max_queue_pairs: 2,
        mtu: 1500,
        mac: None,
        offloads: true,
    };
    let protocol = Arc::new(Mutex::new(Protocol::new(shared, config)));
    let mut handler = BackendReqHandler::from_stream(backend, protocol);
    for _ in 0..4096 {
        match handler.handle_request() {
            Ok(()) => {}
            Err(vhost::vhost_user::Error::ReqHandlerError(_))
            | Err(vhost::vhost_user::Error::InvalidParam)
            | Err(vhost::vhost_user::Error::InvalidOperation(_)) => {}
            Err(_) => break,
        }
    }
    drop(handler);
    let _ = drain.join();
}
