//! One AF_XDP socket: a queue of the interface, with its UMEM and its four rings.
//!
//! One UMEM of `frame_count` 2 KiB frames (enough for MTU 1500 plus the kernel's 256-byte XDP
//! headroom; 4 MiB for the default 2048 frames) backs the socket. Half of it at most is lent to the
//! kernel through the fill ring for receive, the other half at most is in flight on transmit, so
//! neither side can starve the other. Frames are copied into and out of pool
//! [`Packet`](crate::packet::Packet)s; the socket is bound in copy mode unless zero-copy is asked
//! for.
//!
//! Locking: receive state (RX + fill rings) and transmit state (TX + completion rings) have their
//! own mutexes; the UMEM free list has a third one, held only for free-list bookkeeping (never
//! while copying frame bytes).
//!
//! Wakeups: the socket is bound with `XDP_USE_NEED_WAKEUP`, and the queue makes a syscall only
//! when the kernel's flag on a ring asks for one ([`RingFlags`]): a `sendto` kick after a
//! transmit burst, a `recvfrom` when the kernel waits for receive buffers. In copy mode (all a
//! veth offers) the kernel asks for a kick after every transmit burst and never on receive.

use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard, PoisonError};

use xdp::nic::NicIndex;
use xdp::slab::Slab;
use xdp::socket::{SocketError, XdpSocket, XdpSocketBuilder};
use xdp::umem::{FrameSize, UmemCfgBuilder};
use xdp::{CompletionRing, RingConfigBuilder, RxRing, Umem, WakableFillRing, WakableTxRing};

use super::frames::Frames;
use super::options::{AfXdpError, AfXdpOptions};
use crate::counter::Counter;
use crate::packet::{Batch, MAX_BURST, MAX_FRAME, PacketPool};
use crate::port::{PortCounters, PortStats};
use crate::xsk_flags::RingFlags;
use port_api::copy_frame;

/// Largest ring a socket asks for (the kernel's default size).
const MAX_RING: u32 = 2048;

/// Receive side: owned by the PMD polling the queue.
struct RxState {
    ring: RxRing,
    fill: WakableFillRing,
    /// Frames given to the kernel through the fill ring and not yet back through the RX ring.
    in_kernel: u32,
    /// Fill (and RX) ring size: the most frames lent to the kernel for receive.
    budget: u32,
}

/// Transmit side: any PMD, serialised by the mutex.
struct TxState {
    ring: WakableTxRing,
    completion: CompletionRing,
    /// Frames queued for transmit and not yet back through the completion ring.
    in_flight: u32,
    /// TX (and completion) ring size: the most frames in flight.
    budget: u32,
}

pub(super) struct XskQueue {
    // Fields drop in declaration order: unmap the rings, close the socket, unmap the UMEM last.
    rx: Mutex<RxState>,
    tx: Mutex<TxState>,
    flags: RingFlags,
    socket: XdpSocket,
    umem: Mutex<Umem>,
    pub(super) queue: u32,
    pub(super) bind: &'static str,
    /// Syscalls the kernel asked for: receive wakeups and transmit kicks.
    pub(super) rx_wakeups: Counter,
    pub(super) tx_kicks: Counter,
    /// Receive counters written by the PMD polling this queue, transmit ones under `tx`.
    counters: PortCounters,
    name: String,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The kernel's counters of one socket.
pub(super) struct KernelStats {
    pub(super) rx_dropped: u64,
    pub(super) rx_ring_full: u64,
    pub(super) fill_ring_empty: u64,
    pub(super) tx_invalid: u64,
}

impl XskQueue {
    /// Binds an AF_XDP socket to `queue` of `ifindex` with its own UMEM, and lends the kernel
    /// its receive buffers. `port` names the port in logs.
    pub(super) fn open(
        port: &str,
        ifname: &str,
        ifindex: NicIndex,
        queue: u32,
        opts: &AfXdpOptions,
    ) -> Result<XskQueue, AfXdpError> {
        // Largest power of two <= frame_count / 2.
        let ring_size = (1u32 << (opts.frame_count / 2).ilog2()).min(MAX_RING);
        let sock_err = |cause: String| AfXdpError::Socket {
            ifname: ifname.to_string(),
            queue,
            cause,
        };
        let umem_cfg = UmemCfgBuilder {
            frame_size: FrameSize::TwoK,
            frame_count: opts.frame_count,
            ..Default::default()
        }
        .build()
        .map_err(|e| AfXdpError::Options(format!("{e}")))?;
        let mut umem = Umem::map(umem_cfg).map_err(|e| AfXdpError::Umem {
            frames: opts.frame_count,
            cause: e.to_string(),
        })?;

        let mut builder = XdpSocketBuilder::new().map_err(|e| sock_err(describe(&e)))?;
        let ring_cfg = RingConfigBuilder {
            rx_count: ring_size,
            tx_count: ring_size,
            fill_count: ring_size,
            completion_count: ring_size,
        }
        .build()
        .map_err(|e| AfXdpError::Options(format!("{e}")))?;
        // Also asks for XDP_USE_NEED_WAKEUP.
        let (rings, mut bind_flags) = builder
            .build_wakable_rings(&umem, ring_cfg)
            .map_err(|e| sock_err(describe(&e)))?;
        let bind = if opts.zero_copy {
            bind_flags.force_zerocopy();
            "zero-copy"
        } else {
            bind_flags.force_copy();
            "copy"
        };
        let socket = builder.bind(ifindex, queue, bind_flags).map_err(|e| {
            let hint = match &e {
                _ if opts.zero_copy => " (zero-copy needs driver support)".to_string(),
                SocketError::Bind(io) if io.raw_os_error() == Some(libc::EINVAL) => {
                    format!(" (does {ifname} have a queue {queue}?)")
                }
                _ => String::new(),
            };
            sock_err(format!("{}{hint}", describe(&e)))
        })?;
        let (Some(rx_ring), Some(tx_ring)) = (rings.rx_ring, rings.tx_ring) else {
            return Err(sock_err(
                "the kernel did not map the RX and TX rings".to_string(),
            ));
        };

        let flags = RingFlags::map(socket.as_raw_fd())
            .map_err(|e| sock_err(format!("mapping the rings' flags failed: {e}")))?;
        let mut fill = rings.fill_ring;
        // SAFETY: the UMEM outlives the socket: both live in the queue, which drops the socket
        // (and the rings) before the UMEM. No wakeup: nothing is bound to receive yet.
        let filled = unsafe { fill.enqueue(&mut umem, ring_size as usize, false) }
            .map_err(|e| sock_err(format!("filling the fill ring failed: {e}")))?;
        Ok(XskQueue {
            rx: Mutex::new(RxState {
                ring: rx_ring,
                fill,
                in_kernel: filled as u32,
                budget: ring_size,
            }),
            tx: Mutex::new(TxState {
                ring: tx_ring,
                completion: rings.completion_ring,
                in_flight: 0,
                budget: ring_size,
            }),
            flags,
            socket,
            umem: Mutex::new(umem),
            queue,
            bind,
            rx_wakeups: Counter::default(),
            tx_kicks: Counter::default(),
            counters: PortCounters::default(),
            name: port.to_string(),
        })
    }

    pub(super) fn socket_fd(&self) -> i32 {
        self.socket.as_raw_fd()
    }

    /// This queue's counters, with the frames the kernel dropped for the socket (RX ring full,
    /// no fill frame) in `rx_dropped`.
    pub(super) fn stats(&self) -> PortStats {
        let mut stats = self.counters.snapshot();
        if let Some(k) = self.kernel_stats() {
            stats.rx_dropped += k.rx_dropped + k.rx_ring_full;
        }
        stats
    }

    pub(super) fn kernel_stats(&self) -> Option<KernelStats> {
        let k = self.socket.statistics().ok()?;
        Some(KernelStats {
            rx_dropped: k.rx_dropped,
            rx_ring_full: k.rx_ring_full,
            fill_ring_empty: k.rx_fill_ring_empty_descs,
            tx_invalid: k.tx_invalid_descs,
        })
    }

    pub(super) fn rx_burst(&self, pool: &mut PacketPool, out: &mut Batch) -> usize {
        let mut rx = lock(&self.rx);
        let rx = &mut *rx;
        let mut frames = Frames::new(out.room());

        let received = if frames.available() == 0 {
            0
        } else {
            let umem = lock(&self.umem);
            // SAFETY: the frames point into the UMEM, which outlives them: they are all given
            // back below, before this function returns.
            unsafe { rx.ring.recv(&umem, &mut frames) }
        };

        let mut added = 0;
        let (mut dropped, mut bytes) = (0u64, 0u64);
        for frame in frames.received() {
            let len = frame.len();
            if len > MAX_FRAME {
                dropped += 1;
                continue;
            }
            let mut pkt = pool.get_for(len);
            copy_frame(pkt.prepare(len), &frame[..]);
            match out.push(pkt) {
                Ok(()) => {
                    added += 1;
                    bytes += len as u64;
                }
                Err(pkt) => {
                    pool.put(pkt);
                    dropped += 1;
                }
            }
        }

        // Give the frames back and top the fill ring up, in one UMEM lock.
        rx.in_kernel -= received as u32;
        if received > 0 || rx.in_kernel < rx.budget {
            let mut umem = lock(&self.umem);
            while let Some(frame) = frames.pop_back() {
                umem.free_packet(frame);
            }
            // At most `budget - in_kernel` frames: the fill ring has at least that much room.
            // SAFETY: as in `open`, the UMEM outlives the socket. Without a wakeup, the enqueue
            // makes no syscall and cannot fail.
            let filled = unsafe {
                rx.fill
                    .enqueue(&mut umem, (rx.budget - rx.in_kernel) as usize, false)
            };
            rx.in_kernel += filled.unwrap_or(0) as u32;
        }
        if self.flags.fill_needs_wakeup() {
            self.wake(Wakeup::Fill);
        }

        self.counters.rx_packets.add(added as u64);
        self.counters.rx_bytes.add(bytes);
        if dropped > 0 {
            self.counters.rx_dropped.add(dropped);
        }
        added
    }

    pub(super) fn tx_burst(&self, pkts: &mut Batch, pool: &mut PacketPool) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let mut tx = lock(&self.tx);
        let tx = &mut *tx;

        // Reap completions and take one frame per packet, within the in-flight budget.
        let mut free = Frames::new(MAX_BURST);
        {
            let mut umem = lock(&self.umem);
            let done = tx.completion.dequeue(&mut umem, tx.in_flight as usize);
            tx.in_flight -= done as u32;
            let room = (tx.budget - tx.in_flight) as usize;
            for _ in 0..pkts.len().min(room) {
                // SAFETY: the frame points into the UMEM; it goes to the TX ring or back to the
                // UMEM before this function returns, and the UMEM outlives the socket.
                match unsafe { umem.alloc() } {
                    Some(frame) => _ = free.push_front(frame),
                    None => break,
                }
            }
        }

        // Copy the packets in, outside the UMEM lock.
        let mut queue = Frames::new(MAX_BURST);
        let mut unused = Frames::new(MAX_BURST);
        let (mut bytes, mut dropped) = (0u64, 0u64);
        for pkt in pkts.drain() {
            match free.pop_back() {
                Some(mut frame) => {
                    if !pkt.is_empty() && frame.append(pkt.data()).is_ok() {
                        bytes += pkt.len() as u64;
                        _ = queue.push_front(frame);
                    } else {
                        dropped += 1;
                        _ = unused.push_front(frame);
                    }
                }
                None => dropped += 1,
            }
            pool.put(pkt);
        }

        let queued = queue.len();
        // SAFETY: as above, the frames belong to the UMEM, which outlives the socket. Without a
        // wakeup, the send makes no syscall and cannot fail.
        let sent = unsafe { tx.ring.send(&mut queue, false) }.unwrap_or(0);
        tx.in_flight += sent as u32;
        if sent < queued || !unused.is_empty() {
            // Not expected (the budget keeps the TX ring from filling up): return the frames.
            let mut umem = lock(&self.umem);
            while let Some(frame) = queue.pop_back() {
                bytes -= frame.len() as u64;
                dropped += 1;
                umem.free_packet(frame);
            }
            while let Some(frame) = unused.pop_back() {
                umem.free_packet(frame);
            }
        }
        // Also with nothing new: frames an earlier kick left in the ring go out.
        if tx.in_flight > 0 && self.flags.tx_needs_wakeup() {
            self.wake(Wakeup::Tx);
        }

        self.counters.tx_packets.add(sent as u64);
        self.counters.tx_bytes.add(bytes);
        if dropped > 0 {
            self.counters.tx_dropped.add(dropped);
        }
        sent
    }

    pub(super) fn tx_in_flight(&self) -> usize {
        let mut tx = lock(&self.tx);
        if tx.in_flight > 0 {
            let mut umem = lock(&self.umem);
            let outstanding = tx.in_flight as usize;
            let done = tx.completion.dequeue(&mut umem, outstanding);
            tx.in_flight -= done as u32;
        }
        // A caller waiting for room sends nothing until these go: kick them out.
        if tx.in_flight > 0 && self.flags.tx_needs_wakeup() {
            self.wake(Wakeup::Tx);
        }
        tx.in_flight as usize
    }

    /// The syscall the kernel asked for through a ring's need-wakeup flag: `recvfrom` to take
    /// the receive buffers in the fill ring, `sendto` to send what the TX ring holds. Neither
    /// carries data or blocks. A failure is left for the next call: EAGAIN/EBUSY/ENOBUFS mean
    /// the kernel keeps the descriptors and goes on at the next wakeup, ENETDOWN that the link
    /// is down.
    fn wake(&self, ring: Wakeup) {
        let fd = self.socket.as_raw_fd();
        let ret = match ring {
            Wakeup::Fill => {
                self.rx_wakeups.add(1);
                // SAFETY: recvfrom(2) with no buffer and no address on our own socket.
                unsafe {
                    libc::recvfrom(
                        fd,
                        std::ptr::null_mut(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                    )
                }
            }
            Wakeup::Tx => {
                self.tx_kicks.add(1);
                // SAFETY: sendto(2) with no buffer and no address on our own socket.
                unsafe {
                    libc::sendto(
                        fd,
                        std::ptr::null(),
                        0,
                        libc::MSG_DONTWAIT,
                        std::ptr::null(),
                        0,
                    )
                }
            }
        };
        if ret < 0 {
            let err = std::io::Error::last_os_error();
            tracing::trace!(port = %self.name, ?ring, "AF_XDP wakeup: {err}");
        }
    }
}

/// The ring a wakeup syscall is for.
#[derive(Clone, Copy, Debug)]
enum Wakeup {
    Fill,
    Tx,
}

/// A message for the `xdp` crate's socket errors (its Display is its Debug).
fn describe(e: &SocketError) -> String {
    match e {
        SocketError::SocketCreation(e) => {
            format!("creating the socket failed: {e} (needs root or CAP_NET_RAW)")
        }
        SocketError::Bind(e) => format!("bind failed: {e}"),
        SocketError::SetSockOpt { inner, option } => {
            format!("setsockopt {option:?} failed: {inner}")
        }
        SocketError::GetSockOpt { inner, option } => {
            format!("getsockopt {option:?} failed: {inner}")
        }
        SocketError::RingMap { inner, ring } => {
            format!("mapping the {ring:?} ring failed: {inner}")
        }
    }
}
