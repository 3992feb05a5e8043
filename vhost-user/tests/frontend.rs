//! The port driven by the `vhost` crate's front-end (no root, no DPDK): the handshake, a memory
//! table in a shared file, one queue pair, frames both ways, a hostile ring, ring stop, and
//! reconnection in server mode.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use port_api::{Batch, Packet, PacketPool, Port};
use vhost::vhost_user::message::{VhostUserHeaderFlag, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vhost_user::fuzzing::{MockGuest, status_of, unlinked_file};
use vhost_user::{DropReason, Mode, VhostUserOptions, VhostUserPort};
use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

const MEM_SIZE: usize = 1 << 20;
const QSIZE: u16 = 8;
const HDR: usize = 12;
/// Each virtqueue's rings get their own 64 KiB window of guest memory. The fake driver of
/// queue `q` sees its window at address 0, so descriptors carry `q * QUEUE_WINDOW + offset`.
const QUEUE_WINDOW: u64 = 0x1_0000;
const TXQ_BASE: u64 = QUEUE_WINDOW;

fn temp_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vhu-fe-{}-{tag}", std::process::id()))
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A front-end with guest memory in a shared file.
struct Front {
    fe: Frontend,
    mem: Arc<GuestMemoryMmap<()>>,
    calls: Vec<EventFd>,
    kicks: Vec<EventFd>,
}

impl Front {
    fn connect(path: &PathBuf) -> Front {
        let mut fe = None;
        wait_for("the port's socket", || {
            fe = Frontend::connect(path, 4).ok();
            fe.is_some()
        });
        let mut fe = fe.unwrap();
        fe.set_owner().unwrap();
        let features = fe.get_features().unwrap();
        assert_eq!(
            features & 0b11,
            0b11,
            "checksum offloads offered (CSUM, GUEST_CSUM)"
        );
        fe.set_features(features).unwrap();
        let proto = fe.get_protocol_features().unwrap();
        assert!(
            proto.contains(VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK)
        );
        assert!(!proto.contains(VhostUserProtocolFeatures::LOG_SHMFD));
        fe.set_protocol_features(
            VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK,
        )
        .unwrap();
        // Ask for an ack (or error reply) to every request.
        fe.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        assert_eq!(fe.get_queue_num().unwrap(), 2);

        let file = unlinked_file(MEM_SIZE as u64);
        let mem = GuestMemoryMmap::<()>::from_ranges_with_files([(
            GuestAddress(0),
            MEM_SIZE,
            Some(FileOffset::new(file, 0)),
        )])
        .unwrap();
        Front {
            fe,
            mem: Arc::new(mem),
            calls: Vec::new(),
            kicks: Vec::new(),
        }
    }

    fn region_info(&self) -> VhostUserMemoryRegionInfo {
        VhostUserMemoryRegionInfo::from_guest_region(self.mem.iter().next().unwrap()).unwrap()
    }

    /// This process' address of guest address `gpa` (what a front-end puts in SET_VRING_ADDR).
    fn va(&self, gpa: u64) -> u64 {
        self.mem.iter().next().unwrap().as_ptr() as u64 + gpa
    }

    /// Sets up virtqueue `q` with its rings at `q * QUEUE_WINDOW`; returns the fake driver.
    fn start_queue(&mut self, q: usize) -> MockGuest {
        let base = q as u64 * QUEUE_WINDOW;
        let cfg = VringConfigData {
            queue_max_size: QSIZE,
            queue_size: QSIZE,
            flags: 0,
            desc_table_addr: self.va(base),
            used_ring_addr: self.va(base + MockGuest::USED),
            avail_ring_addr: self.va(base + MockGuest::AVAIL),
            log_addr: None,
        };
        let call = EventFd::new(EFD_NONBLOCK).unwrap();
        let kick = EventFd::new(EFD_NONBLOCK).unwrap();
        self.fe.set_vring_num(q, QSIZE).unwrap();
        self.fe.set_vring_addr(q, &cfg).unwrap();
        self.fe.set_vring_base(q, 0).unwrap();
        self.fe.set_vring_call(q, &call).unwrap();
        self.fe.set_vring_kick(q, &kick).unwrap();
        self.fe.set_vring_enable(q, true).unwrap();
        self.calls.push(call);
        self.kicks.push(kick);
        // The fake driver sees the queue's window as its guest address 0.
        let window = GuestMemoryMmap::<()>::from_ranges_with_files([(
            GuestAddress(0),
            QUEUE_WINDOW as usize,
            Some(FileOffset::new(
                self.mem
                    .iter()
                    .next()
                    .unwrap()
                    .file_offset()
                    .unwrap()
                    .file()
                    .try_clone()
                    .unwrap(),
                base,
            )),
        )])
        .unwrap();
        MockGuest::with_memory(Arc::new(window), QSIZE)
    }
}

#[test]
fn handshake_traffic_hostile_ring_and_reconnect() {
    let path = temp_path("sock");
    let mut opts = VhostUserOptions::new(&path, Mode::Server);
    opts.max_queue_pairs = 2;
    let port = VhostUserPort::new("fe0", opts).unwrap();
    let mut front = Front::connect(&path);
    wait_for("connected", || port.is_connected());

    // Bad memory tables are refused with an error reply (REPLY_ACK).
    let good = front.region_info();
    let mut overlapping = good;
    overlapping.guest_phys_addr = 0x8_0000;
    overlapping.userspace_addr += 0x100_0000;
    assert!(front.fe.set_mem_table(&[good, overlapping]).is_err());
    let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut not_a_file = good;
    not_a_file.mmap_handle = std::os::fd::AsRawFd::as_raw_fd(&sock);
    assert!(front.fe.set_mem_table(&[not_a_file]).is_err());
    let mut too_big = good;
    too_big.memory_size = 2 * MEM_SIZE as u64;
    assert!(front.fe.set_mem_table(&[too_big]).is_err());
    assert_eq!(status_of(&port, "memory_regions"), "0");
    front.fe.set_mem_table(&[good]).unwrap();
    assert_eq!(status_of(&port, "memory_regions"), "1");

    let mut rxq = front.start_queue(0); // guest RX: the switch transmits into it
    let mut txq = front.start_queue(1); // guest TX: the switch receives from it
    wait_for("queue pair", || port.running_queue_pairs() == 1);
    assert!(port.link_up());
    assert!(status_of(&port, "feature_names").contains("MRG_RXBUF"));

    // Guest transmits one frame.
    let frame: Vec<u8> = (0..80u8).collect();
    txq.write(MockGuest::BUFFERS + HDR as u64, &frame);
    txq.write_desc(
        0,
        TXQ_BASE + MockGuest::BUFFERS,
        (HDR + frame.len()) as u32,
        0,
        0,
    );
    txq.publish(&[0]);
    let mut pool = PacketPool::with_capacity(64);
    let mut batch = Batch::new();
    assert_eq!(port.rx_burst(0, &mut pool, &mut batch), 1);
    assert_eq!(batch.iter().next().unwrap().data(), &frame[..]);
    batch.recycle(&mut pool);
    assert_eq!(txq.used_idx(), 1);
    assert_eq!(
        port.rx_burst(1, &mut pool, &mut batch),
        0,
        "queue pair 1 is not set up"
    );

    // The switch transmits to the guest; the driver gets an interrupt.
    rxq.write_desc(3, MockGuest::BUFFERS, 2048, 2, 0);
    rxq.publish(&[3]);
    let mut p = Packet::new();
    p.set_data(&frame);
    batch.push(p).ok().unwrap();
    assert_eq!(port.tx_burst(&mut batch, &mut pool), 1);
    assert_eq!(rxq.used_elem(0), (3, (HDR + frame.len()) as u32));
    assert_eq!(
        rxq.read(MockGuest::BUFFERS + HDR as u64, frame.len()),
        frame
    );
    assert_eq!(front.calls[0].read().unwrap(), 1);
    // No buffer left: counted drop.
    let mut p = Packet::new();
    p.set_data(&frame);
    batch.push(p).ok().unwrap();
    assert_eq!(port.tx_burst(&mut batch, &mut pool), 0);
    assert_eq!(port.drops(DropReason::NoGuestBuffer), 1);
    let stats = port.stats();
    assert_eq!(
        (stats.rx_packets, stats.tx_packets, stats.tx_dropped),
        (1, 1, 1)
    );

    // A chain that loops is dropped and counted; the queue keeps running.
    txq.write_desc(1, TXQ_BASE + MockGuest::BUFFERS, 100, 1, 2);
    txq.write_desc(2, TXQ_BASE + MockGuest::BUFFERS, 100, 1, 1);
    txq.publish(&[1]);
    assert_eq!(port.rx_burst(0, &mut pool, &mut batch), 0);
    assert_eq!(port.drops(DropReason::ChainTooLong), 1);
    assert_eq!(status_of(&port, "drop_chain_too_long"), "1");
    assert_eq!(port.running_queue_pairs(), 1);

    // A bogus avail index marks the queue broken instead of crashing.
    txq.set_avail_idx(txq.used_idx().wrapping_add(QSIZE + 1));
    assert_eq!(port.rx_burst(0, &mut pool, &mut batch), 0);
    assert!(
        status_of(&port, "broken").contains("vq1"),
        "{:?}",
        port.status()
    );
    assert_eq!(port.running_queue_pairs(), 0);

    // GET_VRING_BASE stops the ring and reports where it stopped.
    assert_eq!(front.fe.get_vring_base(0).unwrap(), 1);

    // The front-end leaves; the port forgets it and accepts the next one.
    drop(front);
    wait_for("disconnect", || !port.is_connected());
    assert!(!port.link_up());
    assert_eq!(status_of(&port, "broken"), "none");
    let mut front = Front::connect(&path);
    front.fe.set_mem_table(&[front.region_info()]).unwrap();
    let _rxq = front.start_queue(0);
    let mut txq = front.start_queue(1);
    wait_for("queue pair again", || port.running_queue_pairs() == 1);
    txq.write(MockGuest::BUFFERS + HDR as u64, &frame);
    txq.write_desc(
        0,
        TXQ_BASE + MockGuest::BUFFERS,
        (HDR + frame.len()) as u32,
        0,
        0,
    );
    txq.publish(&[0]);
    assert_eq!(port.rx_burst(0, &mut pool, &mut batch), 1);
    assert_eq!(status_of(&port, "connections"), "2");

    drop(port);
    assert!(!path.exists(), "the socket is removed with the port");
}

#[test]
fn client_mode_keeps_retrying() {
    let path = temp_path("client");
    let _ = std::fs::remove_file(&path);
    let port = VhostUserPort::new("fe1", VhostUserOptions::new(&path, Mode::Client)).unwrap();
    assert!(!port.is_connected());
    assert_eq!(
        port.rx_burst(0, &mut PacketPool::with_capacity(1), &mut Batch::new()),
        0
    );
    // Frames sent while nobody is there are dropped and counted.
    let mut batch = Batch::new();
    batch.push(Packet::new()).ok().unwrap();
    assert_eq!(
        port.tx_burst(&mut batch, &mut PacketPool::with_capacity(1)),
        0
    );
    assert_eq!(port.drops(DropReason::NotReady), 1);
    // The front-end shows up later: the port connects by itself.
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let (_conn, _) = listener.accept().unwrap();
    wait_for("connect", || port.is_connected());
    // Dropping the port ends its thread promptly even while connected.
    let t = Instant::now();
    drop(port);
    assert!(t.elapsed() < Duration::from_secs(2));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn invalid_options_are_refused() {
    let mut opts = VhostUserOptions::new(temp_path("bad"), Mode::Client);
    opts.max_queue_pairs = 0;
    assert!(VhostUserPort::new("x", opts.clone()).is_err());
    opts.max_queue_pairs = 1;
    opts.mtu = 9199;
    assert!(
        VhostUserPort::new("x", opts).is_err(),
        "past the largest frame"
    );
    let opts = VhostUserOptions::new("/nonexistent-dir/x.sock", Mode::Server);
    assert!(VhostUserPort::new("x", opts).is_err());
}
